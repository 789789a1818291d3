//! The virtual folders through a real mount of the generated corpus:
//! `/.search/<query>/` lists the matching tracks under their own inodes,
//! a track read through it is the tree's track, album folders with art
//! show `cover.jpg`, and `/.prefetch/` mirrors the tree.
use musicfs_tests::{corpus, require_fuse, tools, wait_for, Env};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// A result entry's name: the last three components of the track's path.
fn entry_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    parts[parts.len().saturating_sub(3)..].join(" - ")
}

#[test]
fn search_folders_covers_and_the_prefetch_mirror() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let root = m.root();

    // The dot folders are in the root listing (ls -a shows them).
    let top = names(root);
    for dot in [".search", ".collections", ".prefetch"] {
        assert!(top.contains(dot), "{dot} missing from the root: {top:?}");
    }

    // What the search service finds is what the folder lists.
    let hits: BTreeSet<String> = wait_for(
        "the index to hold Motörhead",
        Duration::from_secs(30),
        || {
            let out = env.run(&["search", "--json", "artist:motorhead"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let hits: BTreeSet<String> = v["hits"]
                .as_array()?
                .iter()
                .filter_map(|h| h["path"].as_str().map(str::to_string))
                .collect();
            (hits.len() == 4).then_some(hits)
        },
    );
    let folder = root.join(".search/artist:motorhead");
    let listed = names(&folder);
    let want: BTreeSet<String> = hits.iter().map(|p| entry_name(p)).collect();
    assert_eq!(listed, want, "ls {}", folder.display());

    for path in &hits {
        let real = root.join(path);
        let through = folder.join(entry_name(path));
        let (a, b) = (
            std::fs::metadata(&real).unwrap(),
            std::fs::metadata(&through).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "{path}: the track's own inode");
        assert_eq!(a.len(), b.len());
        assert!(tools::cmp(&real, &through), "cmp {path} through .search");
    }
    assert!(
        std::fs::metadata(folder.join("no such track.flac")).is_err(),
        "unknown names are ENOENT"
    );
    assert!(
        std::fs::write(folder.join("x"), b"x").is_err(),
        "result folders are read-only"
    );
    let bad = std::fs::metadata(root.join(".search/year:abc..(")).map(|_| ());
    assert!(bad.is_err(), "a malformed query is not a folder");

    // Covers: every album folder whose tracks carry art shows cover.jpg,
    // a JPEG whose size is its stat size; hidden smaller renditions too.
    let mut albums = 0;
    for f in c.audio().filter(|f| f.predictable() && f.has_art) {
        let dir = root.join(f.default_path());
        let dir = dir.parent().unwrap();
        let cover = dir.join("cover.jpg");
        let bytes =
            std::fs::read(&cover).unwrap_or_else(|e| panic!("read {}: {e}", cover.display()));
        assert_eq!(&bytes[..2], b"\xFF\xD8", "{} is a JPEG", cover.display());
        assert_eq!(bytes.len() as u64, std::fs::metadata(&cover).unwrap().len());
        let thumb = std::fs::read(dir.join(".cover-thumb.jpg")).expect("thumbnail");
        assert_eq!(&thumb[..2], b"\xFF\xD8");
        assert!(
            names(dir).contains("cover.jpg"),
            "listed in {}",
            dir.display()
        );
        albums += 1;
    }
    assert!(albums > 0, "the corpus has tracks with art");
    // A folder without tracks (an artist's) has no cover.
    let artist = root.join(hits.iter().next().unwrap());
    let artist = artist.parent().unwrap().parent().unwrap();
    assert!(!names(artist).contains("cover.jpg"));

    // The prefetch mirror shows the tree's folders and tracks.
    let any = hits.iter().next().unwrap();
    let mirrored = root.join(".prefetch").join(any);
    assert_eq!(
        std::fs::metadata(&mirrored).unwrap().ino(),
        std::fs::metadata(root.join(any)).unwrap().ino()
    );
    let album = Path::new(any).parent().unwrap();
    assert_eq!(
        names(&root.join(".prefetch").join(album)),
        names(&root.join(album))
            .into_iter()
            .filter(|n| !n.starts_with('.') && !n.starts_with("cover."))
            .collect()
    );
}
