//! Scan coordination against a real catalog: full scans, watcher batches
//! (classified by a fresh stat, whatever the event said), tree sync.
use musicfs_control::config::Config;
use musicfs_control::daemon::{build_origins, open_catalog};
use musicfs_control::scanner::Scanner;
use musicfs_index::scan::ScanOptions;
use musicfs_index::{Template, ROOT_INO};
use musicfs_origins::Change;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

mod common;
use common::write_wav;

/// Every file name in the tree (depth-first), for comparisons.
fn tree_files(catalog: &musicfs_index::Catalog) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![ROOT_INO];
    while let Some(dir) = stack.pop() {
        for node in catalog.children(dir, 0, 10_000).expect("children") {
            match node.kind {
                musicfs_index::NodeKind::Dir => stack.push(node.ino),
                musicfs_index::NodeKind::File => {
                    out.push(String::from_utf8_lossy(&node.name).into_owned())
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn full_scan_then_watched_changes_update_the_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    write_wav(&lib.join("one.wav"), "One");
    write_wav(&lib.join("two.wav"), "Two");

    let catalog = open_catalog(&dir.path().join("c.db")).expect("catalog");
    let targets =
        build_origins(&catalog, &Config::default(), Some(("lib", &lib))).expect("origins");
    let template = Template::parse("$title").expect("template");
    let scanner = Scanner::new(catalog.clone(), template, ScanOptions::default(), targets);
    let invalidations = Arc::new(AtomicU64::new(0));
    {
        let n = invalidations.clone();
        scanner.set_invalidate(Box::new(move |_| {
            n.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let target = scanner.target("lib").expect("target").clone();

    let seen = Mutex::new(0u64);
    let outcome = scanner
        .full_scan(&target, &|p| *seen.lock().expect("lock") = p.done)
        .expect("scan");
    assert_eq!(outcome.report.changed, 2);
    assert_eq!(*seen.lock().expect("lock"), 2, "progress reached the end");
    assert_eq!(scanner.scans_completed(), 1);
    assert!(!scanner.scanning());
    assert!(target.progress().is_none(), "no progress once finished");
    assert_eq!(tree_files(&catalog), vec!["One.wav", "Two.wav"]);
    assert_eq!(invalidations.load(Ordering::SeqCst), 1);

    // A watcher batch: one file added, one removed, and an "upsert" of a
    // file that is already gone again (the stat decides: removed).
    write_wav(&lib.join("three.wav"), "Three");
    std::fs::remove_file(lib.join("one.wav")).expect("rm");
    let outcome = scanner
        .apply_changes(
            &target,
            vec![
                Change::Upsert(b"three.wav".to_vec()),
                Change::Remove(b"one.wav".to_vec()),
                Change::Upsert(b"ghost.wav".to_vec()),
            ],
        )
        .expect("apply");
    assert_eq!(outcome.report.changed, 1);
    assert_eq!(tree_files(&catalog), vec!["Three.wav", "Two.wav"]);
    assert_eq!(
        scanner.scans_completed(),
        1,
        "a watcher batch is not a full scan"
    );

    // Rescan falls back to a full scan.
    std::fs::remove_file(lib.join("two.wav")).expect("rm");
    let outcome = scanner
        .apply_changes(&target, vec![Change::Rescan])
        .expect("rescan");
    assert_eq!(outcome.report.removed, 1);
    assert_eq!(tree_files(&catalog), vec!["Three.wav"]);
    assert_eq!(scanner.scans_completed(), 2);

    // After cancel, scans refuse to start.
    scanner.cancel();
    assert!(scanner.full_scan(&target, &|_| {}).is_err());
}
