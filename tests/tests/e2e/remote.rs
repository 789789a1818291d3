//! Remote origins read THROUGH THE MOUNT: the real `musicfs` binary mounts
//! a library spread over a local directory, a real sshd, a real S3 server
//! (SeaweedFS) and a real WebDAV server (rclone), configured by a config
//! file, and real tools read the mount. Faults come from a TCP proxy
//! between the daemon and a server, never from mocks.
//!
//! This file: one library from four origins, what a scan reads, `verify`,
//! and credentials. Federation, failover, polling and delta sync are in
//! `remote_federation.rs`; the offline mount in `remote_offline.rs`.
use musicfs_tests::remote::{
    counter, drop_page_cache, local_origin, mount_configured, noise_track, origin, origins,
    s3_origin, served_dir, sftp_origin, webdav_origin, write_config, FAST,
};
use musicfs_tests::servers::s3::S3Server;
use musicfs_tests::servers::sshd::Sshd;
use musicfs_tests::servers::webdav::WebDav;
use musicfs_tests::{corpus, fsutil, note, require_fuse, tools, Env};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "remote_federation.rs"]
mod federation;
#[path = "remote_offline.rs"]
mod offline;

const DAV_USER: &str = "musicfs";
const DAV_PASS: &str = "dav-pass-7c1e";

/// Virtual files the daemon may add next to the music (album art).
pub(crate) fn is_virtual_extra(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    matches!(
        name,
        "cover.jpg" | "folder.jpg" | "cover.png" | "folder.png"
    )
}

/// The music files of the mount, by path relative to its root.
pub(crate) fn music(root: &Path) -> BTreeMap<String, PathBuf> {
    fsutil::files(root)
        .into_iter()
        .filter(|(rel, _)| !is_virtual_extra(rel))
        .map(|(rel, f)| (rel, f.path))
        .collect()
}

fn listing(files: &BTreeMap<String, PathBuf>) -> String {
    files.keys().cloned().collect::<Vec<_>>().join("\n")
}

/// Reads every file whole, from the daemon (the page cache dropped first).
fn read_all(files: &BTreeMap<String, PathBuf>) -> u64 {
    let mut total = 0;
    for path in files.values() {
        drop_page_cache(path);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        total += bytes.len() as u64;
    }
    total
}

/// The corpus split by file into four directories (local, sftp, s3,
/// webdav), each file under its corpus path: every origin gets some
/// audio, and the malformed and non-audio files are spread too.
///
/// The files of a collision group (same tags, different bytes) stay on
/// one origin: across origins, equal tags and duration are by design the
/// same track on two origins and shown once (index/src/identity.rs).
fn split_corpus(parts: [&Path; 4]) -> [Vec<String>; 4] {
    let c = corpus();
    let mut names: [Vec<String>; 4] = Default::default();
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, f) in c.files.iter().enumerate() {
        let part = match &f.collision {
            Some(group) => *groups.entry(group).or_insert(i % 4),
            None => i % 4,
        };
        let dest = parts[part].join(&f.path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(c.origin_path(f), &dest)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", f.path, dest.display()));
        names[part].push(f.path.clone());
    }
    names
}

/// One library from four origins: every track at its template path, every
/// remote file byte-equal to its source, a second read served from the
/// chunk cache alone, and `verify` hashing every file of each remote origin.
#[test]
fn one_library_from_four_origins() {
    require_fuse!();
    let c = corpus();
    let local = tempfile::tempdir().unwrap();
    let sftp_root = served_dir("musicfs-remote-sftp-");
    let s3_dir = tempfile::tempdir().unwrap();
    let dav_root = tempfile::tempdir().unwrap();
    let names = split_corpus([
        local.path(),
        sftp_root.path(),
        s3_dir.path(),
        dav_root.path(),
    ]);
    musicfs_tests::remote::open_tree(sftp_root.path());

    let sshd = Sshd::start(sftp_root.path());
    let s3 = S3Server::start();
    s3.create_bucket("music");
    s3.upload(s3_dir.path(), "music", "lib");
    let dav = WebDav::start(dav_root.path(), DAV_USER, DAV_PASS);

    let env = Env::new();
    let config = [
        local_origin("home", local.path()),
        sftp_origin("nas", &sshd, sshd.port(), sftp_root.path(), FAST),
        s3_origin("bucket", &s3, &s3.endpoint(), "music", "lib/", FAST),
        webdav_origin("dav", &dav.url(), DAV_USER, DAV_PASS, FAST),
    ]
    .concat();
    // No exports: a reread must go through the daemon's chunk cache, where
    // it is counted, not through a passthrough file.
    write_config(&env, "", "export_size = \"0\"", &config);
    let m = mount_configured(&env);
    env.wait_scans(4);

    let files = music(m.root());
    let mut checked = 0;
    for f in c.audio().filter(|f| f.predictable()) {
        let want = f.default_path();
        let mounted = files.get(&want).unwrap_or_else(|| {
            panic!(
                "{} should be at {want:?}; the mount has:\n{}",
                f.path,
                listing(&files)
            )
        });
        assert!(
            tools::cmp(mounted, &c.origin_path(f)),
            "{want} (from {}) differs from its source",
            f.path
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} predictable tracks checked");
    assert_eq!(
        files.len(),
        c.audio().count(),
        "each audio file once, nothing else; the mount has:\n{}",
        listing(&files)
    );
    // The unpredictable ones (hostile tags, collisions) too: the mount
    // holds exactly the corpus's audio contents.
    let mut want: Vec<String> = c.audio().map(|f| f.sha256.clone()).collect();
    let mut got: Vec<String> = files.values().map(|p| tools::sha256sum(p)).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "contents of the mounted files");

    // Every remote origin served some of it.
    for o in origins(&env) {
        let name = o["name"].as_str().unwrap_or_default();
        assert!(counter(&o, "files") > 0, "origin {name} has no files: {o}");
    }

    // A second read comes from the chunk cache alone.
    let before = env.status();
    let remote_bytes: u64 = c
        .audio()
        .enumerate()
        .filter(|(_, f)| !names[0].contains(&f.path))
        .map(|(_, f)| f.size)
        .sum();
    let read = read_all(&files);
    let after = env.status();
    let origin_delta = counter(&after, "origin_bytes") - counter(&before, "origin_bytes");
    let hit_delta = counter(&after, "cache_hit_bytes") - counter(&before, "cache_hit_bytes");
    note(&format!(
        "remote: four origins: reread {read} bytes ({remote_bytes} remote): \
         origin_bytes +{origin_delta}, cache_hit_bytes +{hit_delta}"
    ));
    // (The first read may fetch nothing: these files are small enough
    // that the scan already fetched them whole, and the read path takes
    // a file's first bytes from the scan's seed.)
    assert_eq!(
        origin_delta, 0,
        "the second read must not fetch from the origins"
    );
    assert!(
        hit_delta >= remote_bytes,
        "the second read of {remote_bytes} remote bytes must be cache hits; +{hit_delta}"
    );

    // verify hashes every file of each remote origin.
    for (name, part) in [("nas", 1), ("bucket", 2), ("dav", 3)] {
        let on_origin = c.audio().filter(|f| names[part].contains(&f.path)).count() as u64;
        let files = counter(&origin(&env, name), "files");
        let out = env.run_ok(&["verify", name]);
        let text = String::from_utf8_lossy(&out.stdout);
        let hashed = text
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(&format!("verified {name}: "))?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or_else(|| panic!("verify {name} printed no count:\n{text}"));
        note(&format!(
            "remote: verify {name}: {hashed} hashed, {files} catalogued, {on_origin} audio files on the origin"
        ));
        assert!(on_origin > 0, "the split left {name} without audio");
        assert_eq!(files, on_origin, "origin {name} catalogues its audio files");
        assert_eq!(
            hashed, on_origin,
            "verify {name} hashes every audio file:\n{text}"
        );
    }
}

/// Scans read the tags, not the audio: per remote origin, the bytes a
/// scan fetched per track are a small part of a track, and nothing else
/// was read before any file was opened.
#[test]
fn scans_read_only_the_tags() {
    require_fuse!();
    let sftp_root = served_dir("musicfs-remote-sftp-");
    let s3_dir = tempfile::tempdir().unwrap();
    let dav_root = tempfile::tempdir().unwrap();
    // Three formats whose tags sit in different places: FLAC (front),
    // MP3 (ID3v2 front; the frames follow), M4A (moov atom at the end).
    let mut sizes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (i, (name, dir)) in [
        ("nas", sftp_root.path()),
        ("bucket", s3_dir.path()),
        ("dav", dav_root.path()),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = i as u32 * 10;
        let album = format!("Album {name}");
        let tracks: [(&str, u32, &[&str]); 3] = [
            ("01.flac", 12, &["-c:a", "flac", "-sample_fmt", "s16"]),
            ("02.mp3", 50, &["-c:a", "libmp3lame", "-b:a", "320k"]),
            ("03.m4a", 60, &["-c:a", "aac", "-b:a", "256k"]),
        ];
        for (n, (file, secs, codec)) in tracks.into_iter().enumerate() {
            let path = dir.join("Artist").join(&album).join(file);
            let track = (n + 1).to_string();
            let title = format!("Song {n} of {name}");
            noise_track(
                &path,
                secs,
                seed + n as u32,
                &[
                    ("title", &title),
                    ("artist", "Scan Artist"),
                    ("album_artist", "Scan Artist"),
                    ("album", &album),
                    ("track", &track),
                ],
                codec,
            );
            sizes
                .entry(name)
                .or_default()
                .push(std::fs::metadata(&path).unwrap().len());
        }
    }
    musicfs_tests::remote::open_tree(sftp_root.path());
    let sshd = Sshd::start(sftp_root.path());
    let s3 = S3Server::start();
    s3.create_bucket("music");
    s3.upload(s3_dir.path(), "music", "");
    let dav = WebDav::start(dav_root.path(), DAV_USER, DAV_PASS);

    let env = Env::new();
    let config = [
        sftp_origin("nas", &sshd, sshd.port(), sftp_root.path(), FAST),
        s3_origin("bucket", &s3, &s3.endpoint(), "music", "", FAST),
        webdav_origin("dav", &dav.url(), DAV_USER, DAV_PASS, FAST),
    ]
    .concat();
    write_config(&env, "", "", &config);
    let m = mount_configured(&env);
    env.wait_scans(3);
    // Listing and stat-ing the tree reads no file.
    let files = music(m.root());
    assert_eq!(files.len(), 9, "nine tracks:\n{}", listing(&files));

    for o in origins(&env) {
        let name = o["name"].as_str().unwrap().to_string();
        let sizes = &sizes[name.as_str()];
        let total: u64 = sizes.iter().sum();
        let mean = total / sizes.len() as u64;
        let scan_bytes = counter(&o, "scan_bytes");
        let scan_files = counter(&o, "scan_files");
        let bytes_read = counter(&o, "bytes_read");
        assert_eq!(scan_files, sizes.len() as u64, "{name}: files scanned: {o}");
        let per_track = scan_bytes / scan_files;
        note(&format!(
            "remote: scan of {name}: {scan_bytes} bytes for {scan_files} tracks = \
             {per_track} per track (mean track {mean}, {:.1}%); bytes_read {bytes_read} of {total}",
            per_track as f64 * 100.0 / mean as f64
        ));
        assert!(
            per_track * 4 < mean,
            "{name}: a scan read {per_track} bytes per track, not under 25% of the mean track ({mean})"
        );
        assert!(
            per_track < 256 * 1024,
            "{name}: a scan read {per_track} bytes per track (over 256 KiB)"
        );
        assert!(
            bytes_read * 4 < total,
            "{name}: {bytes_read} bytes read from the origin before any file was opened, \
             of {total} in its files"
        );
    }
}

/// Credentials in the config never show: not in `config show`, not in the
/// daemon's log (at debug level), not on its command line; a refused
/// password is a clear error in `origins --json` that does not repeat it.
#[test]
fn credentials_stay_out_of_sight() {
    require_fuse!();
    let c = corpus();
    let root = served_dir("musicfs-remote-cred-");
    let f = c
        .audio()
        .find(|f| f.predictable())
        .expect("a predictable track");
    let dest = root.path().join(&f.path);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(c.origin_path(f), &dest).unwrap();
    musicfs_tests::remote::open_tree(root.path());
    let sshd = Sshd::start(root.path());
    let s3 = S3Server::start();
    s3.create_bucket("music");
    let s3_src = tempfile::tempdir().unwrap();
    let g = c
        .audio()
        .filter(|g| g.predictable() && g.default_path() != f.default_path())
        .nth(1)
        .expect("another predictable track");
    let s3_dest = s3_src.path().join(&g.path);
    std::fs::create_dir_all(s3_dest.parent().unwrap()).unwrap();
    std::fs::copy(c.origin_path(g), &s3_dest).unwrap();
    s3.upload(s3_src.path(), "music", "");

    let password = sshd.password();
    let wrong = "wrong-Pw-5d81e0c3a9";
    let secret = s3.secret_key().to_string();
    let env = Env::new();
    let config = [
        musicfs_tests::remote::sftp_password_origin(
            "nas",
            &sshd,
            sshd.port(),
            root.path(),
            &password,
            FAST,
        ),
        musicfs_tests::remote::sftp_password_origin(
            "badnas",
            &sshd,
            sshd.port(),
            root.path(),
            wrong,
            FAST,
        ),
        s3_origin("bucket", &s3, &s3.endpoint(), "music", "", FAST),
    ]
    .concat();
    write_config(&env, "log_level = \"debug\"", "", &config);
    let secrets = [password.as_str(), wrong, secret.as_str()];
    let leaks = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows a secret ({s:?}):\n{text}");
        }
    };

    let shown = env.run_ok(&["config", "show"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    leaks("musicfs config show", &shown);
    assert!(
        shown.matches("<redacted>").count() >= 3,
        "config show should mark the three secrets <redacted>:\n{shown}"
    );

    let m = mount_configured(&env);
    // nas and bucket scan; badnas cannot log in.
    env.wait_scans(2);
    let mounted = m.root().join(f.default_path());
    assert!(
        tools::cmp(&mounted, &c.origin_path(f)),
        "{} read with the password differs from its source",
        f.default_path()
    );
    assert!(
        tools::cmp(&m.root().join(g.default_path()), &c.origin_path(g)),
        "{} read with the S3 secret differs from its source",
        g.default_path()
    );
    assert_eq!(origin(&env, "nas")["health"]["state"], "up");

    let origins_json = env.run_ok(&["origins", "--json"]);
    leaks(
        "origins --json",
        &String::from_utf8_lossy(&origins_json.stdout),
    );
    let origins_text = env.run_ok(&["origins"]);
    leaks("origins", &String::from_utf8_lossy(&origins_text.stdout));
    let status = env.run_ok(&["status"]);
    leaks("status", &String::from_utf8_lossy(&status.stdout));
    let pid = m.pid.expect("the daemon's pid");
    leaks(
        "the daemon's command line",
        &musicfs_tests::remote::cmdline_of(pid),
    );
    let log = std::fs::read_to_string(&env.log).expect("read the daemon log");
    assert!(
        log.contains("badnas"),
        "the debug log should mention the failing origin:\n{}",
        env.log_tail()
    );
    leaks("the daemon log", &log);

    // The refused login: a clear error, without the password. Checked
    // last, after the daemon has tried it for a while (polls, checks).
    let waited = std::time::Instant::now();
    let bad = loop {
        let o = origin(&env, "badnas");
        if !o["health"]["last_error"].as_str().unwrap_or("").is_empty() {
            break o;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "badnas (wrong password) shows no last_error after 15 s of failing: {o}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let err = bad["health"]["last_error"].as_str().unwrap().to_string();
    note(&format!(
        "remote: a wrong SFTP password: state {}, last_error {err:?}",
        bad["health"]["state"]
    ));
    leaks("badnas's last_error", &err);
    let lower = err.to_lowercase();
    assert!(
        lower.contains("auth") || lower.contains("password") || lower.contains("denied"),
        "the error of a refused password should say so: {err:?}"
    );
    assert_ne!(
        bad["health"]["state"], "up",
        "an origin that cannot log in is not up: {bad}"
    );
}
