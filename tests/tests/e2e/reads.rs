//! Reading through the mount: bytes identical to the origin (passthrough
//! and daemon path), tags read by independent readers.
use musicfs_tests::{corpus, fsutil, require_fuse, tools, Env};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;

/// Reads every mounted file with real tools and checks it against the
/// manifest: each audio original is served exactly once, byte for byte.
fn check_all_bytes(env: &Env) {
    let c = corpus();
    let root = &env.mnt;
    let files = fsutil::files(root);
    let mut by_sha: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rel, found) in &files {
        by_sha
            .entry(tools::sha256sum(&found.path))
            .or_default()
            .push(rel.clone());
    }
    for f in c.audio() {
        let served = by_sha.get(&f.sha256).map(Vec::len).unwrap_or(0);
        assert_eq!(
            served, 1,
            "{} should be served exactly once (sha256 {}), found {served}",
            f.path, f.sha256
        );
    }
    // `cmp` against the original, and reads at offsets (pread), for the
    // files whose virtual path is known.
    for f in c.audio().filter(|f| f.predictable()) {
        let mounted = root.join(f.default_path());
        let origin = c.origin_path(f);
        assert!(
            tools::cmp(&origin, &mounted),
            "cmp {} {} differ",
            origin.display(),
            mounted.display()
        );
        let want = std::fs::read(&origin).expect("read origin");
        let file = std::fs::File::open(&mounted).expect("open mounted file");
        for offset in [0, want.len() / 3, want.len().saturating_sub(100)] {
            let len = 4096.min(want.len() - offset);
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset as u64)
                .unwrap_or_else(|e| panic!("pread {} at {offset}: {e}", mounted.display()));
            assert!(
                buf == want[offset..offset + len],
                "{} differs at offset {offset}",
                mounted.display()
            );
        }
        // Reading past the end gives nothing, not an error.
        let mut buf = [0u8; 16];
        let n = file
            .read_at(&mut buf, want.len() as u64 + 10)
            .expect("pread past EOF");
        assert_eq!(n, 0, "read past EOF of {}", mounted.display());
    }
}

#[test]
fn files_are_byte_identical_through_passthrough() {
    require_fuse!();
    let env = Env::new();
    let _m = env.mount(&corpus().dir, &[]);
    env.wait_scans(1);
    check_all_bytes(&env);
    let s = env.status();
    musicfs_tests::note(&format!(
        "MEASURED passthrough_opens={} daemon_opens={} passthrough_active={} passthrough_unavailable={}",
        s["passthrough_opens"],
        s["daemon_opens"],
        s["passthrough_active"],
        s["passthrough_unavailable"]
    ));
    assert!(
        s["passthrough_opens"].as_u64().unwrap_or(0) > 0,
        "kernel {} as root should use passthrough; status: passthrough_opens={} daemon_opens={} unavailable={}",
        kernel_release(),
        s["passthrough_opens"],
        s["daemon_opens"],
        s["passthrough_unavailable"]
    );
    assert_eq!(s["passthrough_active"].as_bool(), Some(true), "status: {s}");
}

#[test]
fn files_are_byte_identical_without_passthrough() {
    require_fuse!();
    let env = Env::new();
    let _m = env.mount(&corpus().dir, &["--no-passthrough"]);
    env.wait_scans(1);
    check_all_bytes(&env);
    let s = env.status();
    assert!(
        s["daemon_opens"].as_u64().unwrap_or(0) > 0,
        "daemon path should serve opens: {s}"
    );
    assert_eq!(
        s["passthrough_opens"].as_u64(),
        Some(0),
        "--no-passthrough: {s}"
    );
}

#[test]
fn independent_tag_readers_agree_with_the_catalog() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let mut checked = 0;
    for f in c.audio().filter(|f| f.predictable()) {
        let rel = f.default_path();
        let mounted = m.root().join(&rel);
        // ffprobe reads the tags of the mounted file...
        let probed = tools::ffprobe_tags(&mounted);
        for key in ["title", "artist", "album"] {
            assert_eq!(
                probed.get(key).map(String::as_str),
                f.tag(key),
                "ffprobe {key} of {rel} (origin {}): {probed:?}",
                f.path
            );
        }
        // ...and the catalog's path for it is what those tags give.
        let mut from_probe = f.clone();
        from_probe.tags = probed
            .into_iter()
            .filter(|(k, _)| {
                [
                    "title",
                    "artist",
                    "album",
                    "albumartist",
                    "track",
                    "disc",
                    "disctotal",
                ]
                .contains(&k.as_str())
            })
            .collect();
        assert_eq!(
            from_probe.default_path(),
            rel,
            "path from ffprobe's tags vs the catalog's"
        );
        // mutagen reads every tag the generator wrote.
        let read = tools::mutagen_tags(&mounted);
        for (key, value) in &f.tags {
            if key == "compilation" && f.format == "wv" {
                continue;
            }
            assert_eq!(
                read.get(key),
                Some(value),
                "mutagen {key} of {rel}: {read:?}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} files checked");
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}
