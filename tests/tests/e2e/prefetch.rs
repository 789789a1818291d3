//! Prefetch from a real SFTP origin (OpenSSH's sshd on loopback) through
//! a real mount: `musicfs prefetch <album>` fills the chunk cache so the
//! album then reads with nothing fetched from the origin; a `stat` under
//! `/.prefetch/` does the same in the background; opening a track queues
//! the next tracks of its album.
use musicfs_tests::remote::{
    counter, drop_page_cache, mount_configured, noise_flac, origin, served_dir, sftp_origin,
    write_config, FAST,
};
use musicfs_tests::servers::sshd::Sshd;
use musicfs_tests::{note, require_fuse, wait_for, Env};
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

const ARTIST: &str = "Prefetched";

fn album(root: &Path, name: &str, tracks: u32, seed: u32) -> u64 {
    let mut total = 0;
    for n in 1..=tracks {
        let path = root.join(format!("{ARTIST}/{name}/{n:02}.flac"));
        let track = n.to_string();
        let title = format!("Track {n}");
        noise_flac(
            &path,
            6,
            seed + n,
            &[
                ("title", &title),
                ("artist", ARTIST),
                ("album_artist", ARTIST),
                ("album", name),
                ("track", &track),
            ],
        );
        total += std::fs::metadata(&path).unwrap().len();
    }
    total
}

fn stored_bytes(env: &Env) -> u64 {
    let out = env.run_ok(&["cache", "stats", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("cache stats --json");
    v["stored_bytes"].as_u64().expect("stored_bytes")
}

/// Reads every track of the mounted album whole (page cache dropped
/// first); returns the bytes the origin served meanwhile.
fn origin_bytes_to_read(env: &Env, dir: &Path) -> u64 {
    let before = counter(&origin(env, "nas"), "bytes_read");
    let mut tracks: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "flac"))
        .collect();
    tracks.sort();
    assert!(!tracks.is_empty(), "no tracks in {}", dir.display());
    for t in &tracks {
        drop_page_cache(t);
        let mut bytes = Vec::new();
        std::fs::File::open(t)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes.len() as u64, std::fs::metadata(t).unwrap().len());
    }
    counter(&origin(env, "nas"), "bytes_read") - before
}

#[test]
fn prefetch_fills_the_cache_so_reads_fetch_nothing() {
    require_fuse!();
    let served = served_dir("musicfs-prefetch-");
    let first = album(served.path(), "First", 3, 10);
    let second = album(served.path(), "Second", 3, 20);
    let third = album(served.path(), "Third", 3, 30);
    musicfs_tests::remote::open_tree(served.path());
    let sshd = Sshd::start(served.path());
    let env = Env::new();
    let config = sftp_origin("nas", &sshd, sshd.port(), served.path(), FAST);
    write_config(&env, "", "", &config);
    let m = mount_configured(&env);
    env.wait_scans(1);
    wait_for("the cache to open", Duration::from_secs(30), || {
        (env.status()["cache_state"] == "open").then_some(())
    });
    let root = m.root();

    // 1. musicfs prefetch <album>: every byte in the cache, then a read
    // of the whole album costs the origin nothing.
    let before = stored_bytes(&env);
    let started = Instant::now();
    let out = env.run_ok(&[
        "prefetch",
        root.join(format!("{ARTIST}/First")).to_str().unwrap(),
    ]);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prefetched 3/3 files"), "{text}");
    let grown = stored_bytes(&env) - before;
    assert!(
        grown >= first,
        "the cache grew by {grown} bytes for an album of {first}"
    );
    let fetched = origin_bytes_to_read(&env, &root.join(format!("{ARTIST}/First")));
    note(&format!(
        "prefetch: `musicfs prefetch` of {first} bytes took {took:?}, cache +{grown}; \
         reading the album then fetched {fetched} bytes from the origin"
    ));
    assert_eq!(fetched, 0, "a prefetched album reads from the cache alone");
    // Again: nothing to fetch.
    let out = env.run_ok(&["prefetch", &format!("{ARTIST}/First")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 B fetched"), "{text}");

    // 2. stat /.prefetch/<album> prefetches in the background.
    let before = stored_bytes(&env);
    let mirror = root.join(format!(".prefetch/{ARTIST}/Second"));
    assert!(std::fs::metadata(&mirror).unwrap().is_dir());
    let grown = wait_for(
        "the background prefetch of Second",
        Duration::from_secs(60),
        || {
            let grown = stored_bytes(&env) - before;
            (grown >= second).then_some(grown)
        },
    );
    // The workers may still be saving the last recipe: give them a moment.
    std::thread::sleep(Duration::from_millis(500));
    let fetched = origin_bytes_to_read(&env, &root.join(format!("{ARTIST}/Second")));
    note(&format!(
        "prefetch: stat .prefetch of {second} bytes grew the cache by {grown}; \
         reading it then fetched {fetched} bytes"
    ));
    assert_eq!(fetched, 0, "stat under .prefetch prefetched the album");

    // 3. Opening track 1 of Third queues tracks 2 and 3.
    let dir = root.join(format!("{ARTIST}/Third"));
    let before = stored_bytes(&env);
    let one = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("01"))
        .expect("track 1");
    let mut f = std::fs::File::open(&one).unwrap();
    let mut head = [0u8; 4096];
    f.read_exact(&mut head).unwrap();
    let min_next = third * 2 / 3 * 9 / 10;
    wait_for(
        "the next tracks to be cached",
        Duration::from_secs(60),
        || (stored_bytes(&env) - before >= min_next).then_some(()),
    );
    drop(f);
    std::thread::sleep(Duration::from_millis(500));
    let nas = counter(&origin(&env, "nas"), "bytes_read");
    for n in ["02", "03"] {
        let p = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(n))
            .unwrap();
        drop_page_cache(&p);
        std::fs::read(&p).unwrap();
    }
    assert_eq!(
        counter(&origin(&env, "nas"), "bytes_read") - nas,
        0,
        "tracks 2 and 3 were prefetched when track 1 was opened"
    );
}
