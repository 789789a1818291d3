//! The mounted tree: template layout, fallbacks, collisions, hostile tags.
use musicfs_tests::{corpus, fsutil, require_fuse, tools, CorpusFile, Env};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn listing(files: &BTreeMap<String, fsutil::Found>) -> String {
    files.keys().cloned().collect::<Vec<_>>().join("\n")
}

/// Virtual files the daemon may add next to the music (album art).
fn is_virtual_extra(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    matches!(
        name,
        "cover.jpg" | "folder.jpg" | "cover.png" | "folder.png"
    )
}

fn audio_files(root: &Path) -> BTreeMap<String, fsutil::Found> {
    fsutil::files(root)
        .into_iter()
        .filter(|(rel, _)| !is_virtual_extra(rel))
        .collect()
}

#[test]
fn default_template_tree_matches_manifest() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let files = audio_files(m.root());
    let mut checked = 0;
    for f in c.audio().filter(|f| f.predictable()) {
        let want = f.default_path();
        let found = files.get(&want).unwrap_or_else(|| {
            panic!(
                "{} should be at {want:?}; the mount has:\n{}",
                f.path,
                listing(&files)
            )
        });
        let origin = std::fs::metadata(c.origin_path(f)).expect("stat origin");
        assert_eq!(found.meta.len(), f.size, "size of {want}");
        assert_eq!(
            (found.meta.mtime(), found.meta.mtime_nsec()),
            (origin.mtime(), origin.mtime_nsec()),
            "mtime of {want} must be the origin's"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} predictable files checked");

    // A file without a track number still lands in its album folder.
    let trackless = files
        .keys()
        .find(|rel| rel.starts_with("Plain Artist/Plain Album/") && rel.ends_with("Trackless.ogg"));
    assert!(
        trackless.is_some(),
        "no Trackless.ogg in Plain Artist/Plain Album:\n{}",
        listing(&files)
    );

    // Exactly the audio files, nothing malformed, nothing that is not audio.
    assert_eq!(
        files.len(),
        c.audio().count(),
        "the mount should show each audio file once; it has:\n{}",
        listing(&files)
    );
    assert!(
        !files
            .keys()
            .any(|rel| rel.ends_with(".txt") || rel.ends_with(".json")),
        "non-audio files must not be in the tree:\n{}",
        listing(&files)
    );
    for (rel, found) in &files {
        assert!(
            found.meta.len() > 0,
            "{rel}: zero-byte (malformed) file in the tree"
        );
    }
}

#[test]
fn custom_template_tree_matches_manifest() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &["--template", CorpusFile::CUSTOM_TEMPLATE]);
    let status = env.wait_scans(1);
    assert_eq!(
        status["template"].as_str(),
        Some(CorpusFile::CUSTOM_TEMPLATE),
        "status should report the template in use"
    );
    let files = audio_files(m.root());
    let mut checked = 0;
    for f in c.audio().filter(|f| f.predictable()) {
        let Some(want) = f.custom_path() else {
            continue;
        };
        assert!(
            files.contains_key(&want),
            "{} should be at {want:?} under {:?}; the mount has:\n{}",
            f.path,
            CorpusFile::CUSTOM_TEMPLATE,
            listing(&files)
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} files checked");
    assert_eq!(
        files.len(),
        c.audio().count(),
        "mount has:\n{}",
        listing(&files)
    );
}

#[test]
fn colliding_paths_get_distinct_names() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let files = audio_files(m.root());
    let twins: Vec<&String> = files
        .keys()
        .filter(|rel| rel.starts_with("Echo/Twice/"))
        .collect();
    assert_eq!(
        twins.len(),
        2,
        "two colliding files, two names:\n{}",
        listing(&files)
    );
    assert!(
        twins
            .iter()
            .any(|rel| rel.as_str() == "Echo/Twice/01 - Same Song.flac"),
        "one keeps the plain name: {twins:?}"
    );
    for rel in &twins {
        assert!(
            rel.contains("Same Song") && rel.ends_with(".flac"),
            "suffix keeps title and extension: {rel}"
        );
    }
    let mut got: Vec<String> = twins
        .iter()
        .map(|rel| tools::sha256sum(&m.root().join(rel)))
        .collect();
    let mut want: Vec<String> = c
        .audio()
        .filter(|f| f.collision.is_some())
        .map(|f| f.sha256.clone())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "each colliding name serves one of the two originals"
    );
}

#[test]
fn hostile_tags_stay_inside_the_mount() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let root = std::fs::canonicalize(m.root()).expect("canonicalize mount");
    for entry in fsutil::walk(m.root(), true) {
        for comp in entry.rel.split('/') {
            assert!(
                comp != "." && comp != ".." && !comp.is_empty(),
                "bad component in {:?}",
                entry.rel
            );
            assert!(!comp.contains('\0'), "NUL in {:?}", entry.rel);
            assert!(
                comp.len() <= 255,
                "component of {} bytes in {:?}",
                comp.len(),
                entry.rel
            );
            assert!(
                !comp.starts_with('.'),
                "hidden (leading dot) component in {:?}",
                entry.rel
            );
        }
        let real = std::fs::canonicalize(&entry.path)
            .unwrap_or_else(|e| panic!("canonicalize {}: {e}", entry.path.display()));
        assert!(
            real.starts_with(&root),
            "{} resolves outside the mount: {}",
            entry.rel,
            real.display()
        );
        assert!(
            !entry.meta.file_type().is_symlink(),
            "{} is a symlink",
            entry.rel
        );
    }
    // Every hostile file is present, served with its own bytes.
    let mounted: Vec<String> = audio_files(m.root())
        .values()
        .map(|f| tools::sha256sum(&f.path))
        .collect();
    for f in c.audio().filter(|f| f.hostile) {
        assert!(
            mounted.contains(&f.sha256),
            "hostile file {} ({:?}) is missing from the mount",
            f.path,
            f.tags
        );
    }
}
