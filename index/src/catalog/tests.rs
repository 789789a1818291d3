//! Catalog tests against real temp-file databases.
use super::*;
use crate::fields::FileFields;
use crate::template::Fields;
use crate::testutil::{self, simple_render};
use std::time::Instant;

fn open_temp() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
    (dir, cat)
}

/// [`testutil::scanned`] with a sample rate.
fn scanned(tags: &[(&str, &str)]) -> ScannedFile {
    let mut file = testutil::scanned(tags);
    file.props.sample_rate = Some(44_100);
    file
}

fn stamp(size: u64, mtime_ns: i64) -> Stamp {
    Stamp { size, mtime_ns }
}

type Upsert = (Vec<u8>, Stamp, ScannedFile);

fn up(path: &str, st: Stamp, tags: &[(&str, &str)]) -> Upsert {
    (path.as_bytes().to_vec(), st, scanned(tags))
}

fn sync_simple(cat: &Catalog) -> TreeChanges {
    cat.sync_tree_with("simple", &mut simple_render)
        .expect("sync")
}

fn ino(cat: &Catalog, path: &str) -> Option<u64> {
    cat.resolve(path.as_bytes())
        .expect("resolve")
        .map(|n| n.ino)
}

/// Every (virtual path, ino) of the tree, depth first.
fn walk(cat: &Catalog) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), ROOT_INO)];
    while let Some((path, dir)) = stack.pop() {
        for n in cat.children(dir, 0, usize::MAX).expect("children") {
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            if n.kind == NodeKind::Dir {
                stack.push((p.clone(), n.ino));
            }
            out.push((p, n.ino));
        }
    }
    out.sort();
    out
}

#[test]
fn opens_fresh_in_new_dirs_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/b/catalog.db");
    {
        let cat = Catalog::open(&path).expect("open fresh");
        assert_eq!(cat.counts().expect("counts"), Counts::default());
        let root = cat.node(ROOT_INO).expect("node").expect("root exists");
        assert_eq!((root.kind, root.parent), (NodeKind::Dir, ROOT_INO));
        assert_eq!(cat.tree_template().expect("template"), None);
        cat.ensure_origin("music", "local", "/music")
            .expect("origin");
    }
    let cat = Catalog::open(&path).expect("reopen");
    assert_eq!(cat.counts().expect("counts").origins, 1);
    let mode: String = Connection::open(&path)
        .and_then(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[test]
fn refuses_a_newer_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path).expect("open"));
    Connection::open(&path)
        .and_then(|c| c.pragma_update(None, "user_version", 999))
        .expect("bump version");
    match Catalog::open(&path) {
        Err(Error::SchemaTooNew { found: 999, .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a catalog from the future"),
    }
}

#[test]
fn origins_are_upserted_by_name() {
    let (_d, cat) = open_temp();
    let a = cat.ensure_origin("music", "local", "/old").expect("origin");
    let b = cat.ensure_origin("music", "local", "/new").expect("origin");
    let c = cat.ensure_origin("other", "local", "/x").expect("origin");
    assert_eq!(a, b);
    assert_ne!(a, c);
    cat.mark_scanned(a).expect("mark");
    let rows = cat.origins().expect("origins");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].location, "/new");
    assert!(rows[0].last_scan.is_some());
    assert!(rows[1].last_scan.is_none());
}

#[test]
fn apply_scan_upsert_error_remove() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("music", "local", "/m").expect("origin");
    cat.apply_scan(
        o,
        &[
            up("a.flac", stamp(10, 1), &[("title", "A"), ("artist", "X")]),
            up("b.flac", stamp(20, 2), &[]),
        ],
        &[],
        &[],
    )
    .expect("scan");
    let a = cat
        .file_id_by_path(o, b"a.flac")
        .expect("q")
        .expect("a catalogued");
    let b = cat
        .file_id_by_path(o, b"b.flac")
        .expect("q")
        .expect("b catalogued");
    assert_eq!(cat.tags(a).expect("tags").len(), 2);

    // Rescan of a changed file: same id, tags replaced, not appended.
    cat.apply_scan(
        o,
        &[up("a.flac", stamp(11, 3), &[("title", "A2")])],
        &[],
        &[],
    )
    .expect("rescan");
    assert_eq!(cat.file_id_by_path(o, b"a.flac").expect("q"), Some(a));
    assert_eq!(
        cat.tags(a).expect("tags"),
        vec![("title".to_string(), "A2".to_string())]
    );
    let rec = cat.file(a).expect("file").expect("exists");
    assert_eq!(
        (rec.stamp, rec.audio_offset, rec.format.as_str()),
        (stamp(11, 3), 42, "flac")
    );
    let (props, has_art) = cat.props(a).expect("props").expect("exists");
    assert_eq!((props.sample_rate, has_art), (Some(44_100), false));

    // The file goes bad: the row and its tags go, the error is recorded.
    cat.apply_scan(
        o,
        &[],
        &[(b"a.flac".to_vec(), stamp(12, 4), "truncated".into())],
        &[],
    )
    .expect("error");
    assert_eq!(cat.file(a).expect("file").map(|f| f.id), None);
    assert!(cat.tags(a).expect("tags").is_empty());
    let errors = cat.scan_errors(10).expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].origin.as_str(), &errors[0].rel_path[..]),
        ("music", &b"a.flac"[..])
    );
    let stamps = cat.stamps(o).expect("stamps");
    assert_eq!(
        stamps.get(&b"a.flac"[..]),
        Some(&stamp(12, 4)),
        "bad files keep their stamp"
    );
    assert_eq!(stamps.get(&b"b.flac"[..]), Some(&stamp(20, 2)));

    // Fixed again: the error clears.
    cat.apply_scan(o, &[up("a.flac", stamp(13, 5), &[])], &[], &[])
        .expect("fixed");
    assert!(cat.scan_errors(10).expect("errors").is_empty());

    // Removed: file and any error gone.
    cat.apply_scan(
        o,
        &[],
        &[(b"c.mp3".to_vec(), stamp(1, 1), "not audio".into())],
        &[],
    )
    .expect("error c");
    cat.apply_scan(o, &[], &[], &[b"b.flac".to_vec(), b"c.mp3".to_vec()])
        .expect("remove");
    assert_eq!(cat.file(b).expect("file").map(|f| f.id), None);
    let counts = cat.counts().expect("counts");
    assert_eq!((counts.files, counts.scan_errors), (1, 0));
    assert_eq!(cat.origins().expect("origins")[0].files, 1);

    assert_eq!(cat.remove_origin_files(o).expect("remove origin"), 1);
    assert_eq!(cat.counts().expect("counts").files, 0);
}

#[test]
fn inodes_survive_resync_reopen_and_moves_get_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.db");
    let cat = Catalog::open(&path).expect("open");
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    cat.apply_scan(
        o,
        &[
            up(
                "1.flac",
                stamp(100, 10),
                &[("artist", "X"), ("album", "P"), ("title", "one")],
            ),
            up(
                "2.flac",
                stamp(200, 20),
                &[("artist", "X"), ("album", "P"), ("title", "two")],
            ),
            up(
                "3.flac",
                stamp(300, 30),
                &[("artist", "Y"), ("album", "Q"), ("title", "three")],
            ),
        ],
        &[],
        &[],
    )
    .expect("scan");
    let first = sync_simple(&cat);
    assert_eq!(first.added, 7, "2 artists, 2 albums, 3 files");
    let tree = walk(&cat);
    assert_eq!(tree.len(), 7);
    let one = cat.resolve(b"X/P/one.flac").expect("resolve").expect("one");
    assert_eq!(
        (one.kind, one.size, one.mtime_ns),
        (NodeKind::File, 100, 10)
    );
    assert_eq!(
        cat.node(ino(&cat, "X/P").expect("dir"))
            .expect("n")
            .expect("n")
            .mtime_ns,
        20
    );
    assert_eq!(cat.node(ROOT_INO).expect("n").expect("root").mtime_ns, 30);
    assert_eq!(
        cat.tree_template().expect("meta").as_deref(),
        Some("simple")
    );

    // Idempotent.
    let again = sync_simple(&cat);
    assert_eq!(
        (
            again.added,
            again.removed.len(),
            again.modified.len(),
            again.dirs_changed.len()
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(walk(&cat), tree);

    // Reopen: same tree, same inodes.
    drop(cat);
    let cat = Catalog::open(&path).expect("reopen");
    assert_eq!(walk(&cat), tree);
    assert_eq!(sync_simple(&cat).added, 0);
    let max_before = tree.iter().map(|(_, i)| *i).max().expect("nodes");

    // Content change, same path: same inode, reported modified, dir mtimes follow.
    cat.apply_scan(
        o,
        &[up(
            "1.flac",
            stamp(150, 40),
            &[("artist", "X"), ("album", "P"), ("title", "one")],
        )],
        &[],
        &[],
    )
    .expect("modify");
    let ch = sync_simple(&cat);
    assert_eq!(ino(&cat, "X/P/one.flac"), Some(one.ino));
    assert!(ch.modified.contains(&one.ino));
    assert!(
        ch.modified.contains(&ino(&cat, "X/P").expect("dir")),
        "dir mtime moved"
    );
    assert_eq!(
        cat.resolve(b"X/P/one.flac").expect("r").expect("n").size,
        150
    );
    assert_eq!(ch.added, 0);

    // Retag moves "three" to another artist: new inode, the old dirs vanish.
    let y = ino(&cat, "Y").expect("Y");
    let three = ino(&cat, "Y/Q/three.flac").expect("three");
    cat.apply_scan(
        o,
        &[up(
            "3.flac",
            stamp(300, 30),
            &[("artist", "X"), ("album", "Q"), ("title", "three")],
        )],
        &[],
        &[],
    )
    .expect("retag");
    let ch = sync_simple(&cat);
    assert_eq!(ino(&cat, "Y"), None, "an empty directory disappears");
    let moved = ino(&cat, "X/Q/three.flac").expect("moved");
    assert_ne!(moved, three);
    assert!(moved > max_before, "inode numbers are never reused");
    assert!(ch.removed.contains(&(ROOT_INO, b"Y".to_vec())));
    assert!(ch.removed.contains(&(y, b"Q".to_vec())));
    assert!(ch.dirs_changed.contains(&ROOT_INO));
    assert!(ch.dirs_changed.contains(&ino(&cat, "X").expect("X")));
    assert_eq!(cat.node(three).expect("n"), None);
    assert_eq!(
        cat.inos_of_file(cat.file_id_by_path(o, b"3.flac").expect("q").expect("id"))
            .expect("inos"),
        vec![moved]
    );
    assert_eq!(
        cat.virtual_path(moved).expect("p").as_deref(),
        Some(&b"X/Q/three.flac"[..])
    );

    // Everything removed: only the root is left.
    cat.apply_scan(
        o,
        &[],
        &[],
        &[b"1.flac".to_vec(), b"2.flac".to_vec(), b"3.flac".to_vec()],
    )
    .expect("remove");
    sync_simple(&cat);
    assert!(walk(&cat).is_empty());
    assert_eq!(cat.counts().expect("counts").dirs, 0);
}

#[test]
fn collisions_get_stable_identity_suffixes() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    let same = [("artist", "X"), ("album", "P"), ("title", "Song")];
    cat.apply_scan(
        o,
        &[
            up("a.flac", stamp(1, 1), &same),
            up("b.flac", stamp(2, 2), &same),
        ],
        &[],
        &[],
    )
    .expect("scan");
    sync_simple(&cat);
    let names = |cat: &Catalog| -> Vec<String> {
        let p = ino(cat, "X/P").expect("album");
        let mut v: Vec<String> = cat
            .children(p, 0, 100)
            .expect("children")
            .into_iter()
            .map(|n| String::from_utf8_lossy(&n.name).into_owned())
            .collect();
        v.sort();
        v
    };
    let two = names(&cat);
    assert_eq!(two.len(), 2);
    assert!(two.contains(&"Song.flac".to_string()), "{two:?}");
    let suffixed = two
        .iter()
        .find(|n| *n != "Song.flac")
        .expect("suffixed")
        .clone();
    assert!(
        suffixed.starts_with("Song (") && suffixed.ends_with(").flac") && suffixed.len() == 20,
        "{suffixed}"
    );
    // Oldest file keeps the plain name.
    let plain = cat.resolve(b"X/P/Song.flac").expect("r").expect("n");
    assert_eq!(plain.file_id, cat.file_id_by_path(o, b"a.flac").expect("q"));
    let suffixed_ino = ino(&cat, &format!("X/P/{suffixed}")).expect("ino");

    cat.apply_scan(o, &[up("c.flac", stamp(3, 3), &same)], &[], &[])
        .expect("third");
    let ch = sync_simple(&cat);
    let three = names(&cat);
    assert_eq!(three.len(), 3);
    assert!(
        three.contains(&suffixed),
        "second file's name is unchanged: {three:?}"
    );
    assert_eq!(ino(&cat, &format!("X/P/{suffixed}")), Some(suffixed_ino));
    assert_eq!((ch.added, ch.removed.len()), (1, 0));
    // Deterministic: a rebuilt tree gives the same names.
    assert_eq!(sync_simple(&cat).added, 0);
}

#[test]
fn a_file_name_that_a_directory_needs_gets_suffixed() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    // A renderer whose depth follows the title: file 2 needs a
    // directory named "x.flac", the very name file 1 renders to.
    cat.apply_scan(
        o,
        &[
            up("1.flac", stamp(1, 1), &[("title", "x")]),
            up("2.flac", stamp(2, 2), &[("title", "x.flac/y")]),
        ],
        &[],
        &[],
    )
    .expect("scan");
    let mut render = |f: &FileFields<'_>, ext: &str| -> Vec<String> {
        let t = f.get("title").unwrap_or_default();
        let mut parts: Vec<String> = t.split('/').map(str::to_string).collect();
        if let Some(last) = parts.last_mut() {
            last.push('.');
            last.push_str(ext);
        }
        parts
    };
    cat.sync_tree_with("depth", &mut render).expect("sync");
    let dir = cat
        .resolve(b"x.flac")
        .expect("r")
        .expect("dir wins the name");
    assert_eq!(dir.kind, NodeKind::Dir);
    let files: Vec<Node> = cat.children(ROOT_INO, 0, 10).expect("children");
    assert_eq!(files.len(), 2);
    assert!(files
        .iter()
        .any(|n| n.kind == NodeKind::File && n.name.starts_with(b"x (")));
}

#[test]
fn keyset_pagination_over_10k_children() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    let ups: Vec<Upsert> = (0..10_000)
        .map(|i| {
            up(
                &format!("{i}.flac"),
                stamp(i, i as i64),
                &[("title", &format!("t{i:05}"))],
            )
        })
        .collect();
    cat.apply_scan(o, &ups, &[], &[]).expect("scan");
    let mut flat = |f: &FileFields<'_>, ext: &str| {
        vec![format!("{}.{ext}", f.get("title").unwrap_or_default())]
    };
    cat.sync_tree_with("flat", &mut flat).expect("sync");
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = cat.children(ROOT_INO, after, 1000).expect("page");
        let Some(last) = page.last() else { break };
        after = last.ino;
        seen.extend(page);
    }
    eprintln!(
        "readdir of 10k children in pages of 1000: {:?}",
        started.elapsed()
    );
    assert_eq!(seen.len(), 10_000);
    assert!(seen.windows(2).all(|w| w[0].ino < w[1].ino));
    // Fresh entries are numbered in name order.
    assert!(seen.windows(2).all(|w| w[0].name < w[1].name));
    let n = seen[4321].clone();
    assert_eq!(
        cat.lookup(ROOT_INO, &n.name).expect("lookup"),
        Some(n.clone())
    );

    let started = Instant::now();
    let rounds = 20_000;
    for i in 0..rounds {
        let node = cat.node(seen[i % seen.len()].ino).expect("node");
        assert!(node.is_some());
    }
    let per_node = started.elapsed() / rounds as u32;
    let started = Instant::now();
    for i in 0..rounds {
        assert!(cat
            .lookup(ROOT_INO, &seen[i % seen.len()].name)
            .expect("lookup")
            .is_some());
    }
    eprintln!(
        "node(): {per_node:?}/call, lookup(): {:?}/call",
        started.elapsed() / rounds as u32
    );
}

#[test]
fn reads_see_own_writes_at_once_and_other_processes_soon() {
    let (dir, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    assert_eq!(cat.file_id_by_path(o, b"a.flac").expect("q"), None);
    assert_eq!(
        cat.counts().expect("counts").files,
        0,
        "pooled reader now holds a snapshot"
    );
    cat.apply_scan(o, &[up("a.flac", stamp(1, 1), &[])], &[], &[])
        .expect("scan");
    assert_eq!(
        cat.counts().expect("counts").files,
        1,
        "own write visible immediately"
    );

    // Another process (here: another Catalog on the same file).
    let other = Catalog::open(&dir.path().join("catalog.db")).expect("second handle");
    other
        .apply_scan(o, &[up("b.flac", stamp(1, 1), &[])], &[], &[])
        .expect("scan");
    std::thread::sleep(MAX_SNAPSHOT_AGE + Duration::from_millis(20));
    assert_eq!(
        cat.counts().expect("counts").files,
        2,
        "foreign write visible after the snapshot age"
    );
    // An idle reader keeps its snapshot until the next commit releases
    // it; then nothing pins the WAL and a full checkpoint can finish.
    cat.mark_scanned(o).expect("a write");
    let (busy, _, _): (i64, i64, i64) = lock(&cat.writer)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    assert_eq!(busy, 0, "no reader pins the WAL");
}

#[test]
fn concurrent_readers_beside_a_writer() {
    let (_d, cat) = open_temp();
    let cat = std::sync::Arc::new(cat);
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    let ups: Vec<Upsert> = (0..500)
        .map(|i| {
            up(
                &format!("{i}.flac"),
                stamp(i, 1),
                &[("album", &format!("al{}", i % 10))],
            )
        })
        .collect();
    cat.apply_scan(o, &ups, &[], &[]).expect("scan");
    sync_simple(&cat);
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let cat = cat.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let kids = cat.children(ROOT_INO, 0, 100).expect("children");
                    for k in kids {
                        // A sync may delete it between the two reads; if it is
                        // still there it must be the same entry.
                        if let Some(n) = cat.node(k.ino).expect("node") {
                            assert_eq!((n.parent, &n.name), (ROOT_INO, &k.name));
                        }
                    }
                }
            })
        })
        .collect();
    for round in 0..5 {
        let ups: Vec<Upsert> = (0..50)
            .map(|i| {
                up(
                    &format!("{i}.flac"),
                    stamp(i, round + 2),
                    &[("album", &format!("r{round}"))],
                )
            })
            .collect();
        cat.apply_scan(o, &ups, &[], &[]).expect("scan");
        sync_simple(&cat);
    }
    for r in readers {
        r.join().expect("reader thread");
    }
    assert!(lock(&cat.readers).len() <= MAX_IDLE_READERS);
}

#[test]
fn real_template_change_keeps_surviving_paths() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    cat.apply_scan(
        o,
        &[
            up(
                "a.flac",
                stamp(1, 1),
                &[
                    ("albumartist", "X"),
                    ("album", "P"),
                    ("title", "one"),
                    ("track", "1"),
                ],
            ),
            up(
                "b.mp3",
                stamp(2, 2),
                &[
                    ("albumartist", "X"),
                    ("album", "Q"),
                    ("title", "two"),
                    ("track", "2"),
                ],
            ),
        ],
        &[],
        &[],
    )
    .expect("scan");
    let t1 = Template::parse("$albumartist/$album/$title").expect("parse");
    cat.sync_tree(&t1).expect("sync");
    let x = ino(&cat, "X").expect("X");
    let one = ino(&cat, "X/P/one.flac").expect("one");
    assert!(ino(&cat, "X/Q/two.mp3").is_some());
    assert_eq!(
        cat.tree_template().expect("meta").as_deref(),
        Some(t1.source())
    );

    let t2 = Template::parse("$albumartist/$track $title").expect("parse");
    let ch = cat.sync_tree(&t2).expect("resync");
    assert_eq!(
        ino(&cat, "X"),
        Some(x),
        "a surviving directory keeps its inode"
    );
    let moved = ino(&cat, "X/01 one.flac").expect("moved");
    assert_ne!(moved, one);
    assert_eq!(ino(&cat, "X/P"), None);
    assert_eq!(ch.added, 2);

    // Back again: the old path exists again but under a fresh inode.
    cat.sync_tree(&t1).expect("back");
    let again = ino(&cat, "X/P/one.flac").expect("one again");
    assert!(again > moved && again != one, "inodes are never reused");
}

#[test]
fn hostile_tags_stay_one_component() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    let long = "x".repeat(300);
    let hostile: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("albumartist", "../.."),
            ("album", ".."),
            ("title", "../../etc/passwd"),
        ],
        vec![("albumartist", "/"), ("album", "."), ("title", "a/b\0c")],
        vec![
            ("albumartist", ".hidden"),
            ("album", &long),
            ("title", &long),
        ],
        vec![
            ("albumartist", "\0"),
            ("album", "a\u{0}/b"),
            ("title", "..."),
        ],
    ];
    let ups: Vec<Upsert> = hostile
        .iter()
        .enumerate()
        .map(|(i, t)| up(&format!("{i}.flac"), stamp(1, 1), t))
        .collect();
    cat.apply_scan(o, &ups, &[], &[]).expect("scan");
    cat.sync_tree(&Template::parse(crate::DEFAULT_TEMPLATE).expect("default"))
        .expect("sync");
    let tree = walk(&cat);
    let files: Vec<_> = tree.iter().filter(|(p, _)| p.ends_with(".flac")).collect();
    assert_eq!(files.len(), hostile.len(), "{tree:?}");
    for (path, ino) in &tree {
        let node = cat.node(*ino).expect("node").expect("exists");
        let name = &node.name;
        assert!(!name.is_empty() && name.len() <= 255, "{path}");
        assert!(!name.contains(&b'/') && !name.contains(&0), "{path}");
        assert!(name.first() != Some(&b'.'), "{path}");
        if node.kind == NodeKind::File {
            assert_eq!(path.matches('/').count(), 3, "file at depth 3: {path}");
        }
    }
}

#[test]
fn sync_100k_files_timing() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    let started = Instant::now();
    let total = 100_000u64;
    for batch in 0..(total / 5000) {
        let ups: Vec<Upsert> = (batch * 5000..(batch + 1) * 5000)
            .map(|i| {
                let (artist, album) = (format!("Artist {}", i / 200), format!("Album {}", i / 10));
                let (title, track) = (format!("Title {i}"), format!("{}", i % 10 + 1));
                up(
                    &format!("{artist}/{album}/{i}.flac"),
                    stamp(i, i as i64),
                    &[
                        ("albumartist", &artist),
                        ("album", &album),
                        ("title", &title),
                        ("track", &track),
                        ("genre", "Rock"),
                    ],
                )
            })
            .collect();
        cat.apply_scan(o, &ups, &[], &[]).expect("scan");
    }
    eprintln!("catalogued {total} files in {:?}", started.elapsed());
    let template = Template::parse(crate::DEFAULT_TEMPLATE).expect("template");
    let started = Instant::now();
    let ch = cat.sync_tree(&template).expect("first sync");
    eprintln!(
        "first sync of {total} files: {:?} ({} nodes added)",
        started.elapsed(),
        ch.added
    );
    let started = Instant::now();
    let ch = cat.sync_tree(&template).expect("second sync");
    eprintln!("resync with nothing changed: {:?}", started.elapsed());
    assert_eq!((ch.added, ch.removed.len(), ch.modified.len()), (0, 0, 0));
    let one = up(
        "Artist 0/Album 0/0.flac",
        stamp(1, 10_000_000),
        &[
            ("albumartist", "Artist 0"),
            ("album", "Album 0"),
            ("title", "Title 0"),
            ("track", "1"),
        ],
    );
    cat.apply_scan(o, &[one], &[], &[]).expect("touch one");
    let started = Instant::now();
    let ch = cat.sync_tree(&template).expect("third sync");
    eprintln!(
        "resync of {total} files after one file changed: {:?}",
        started.elapsed()
    );
    assert_eq!((ch.added, ch.removed.len()), (0, 0));
    assert_eq!(
        ch.modified.len(),
        4,
        "the file, its album, artist and the root: {ch:?}"
    );
    assert_eq!(cat.counts().expect("counts").files, total);
    let started = Instant::now();
    drop(Catalog::open(cat.path()).expect("reopen"));
    eprintln!("reopen with {total} files: {:?}", started.elapsed());
}

#[test]
fn a_careless_renderer_cannot_break_the_tree() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    cat.apply_scan(
        o,
        &[
            up("a.flac", stamp(1, 1), &[]),
            up("b.flac", stamp(2, 2), &[]),
        ],
        &[],
        &[],
    )
    .expect("scan");
    let mut bad = |_: &FileFields<'_>, _: &str| -> Vec<String> {
        vec!["..".into(), "".into(), "a/b\0c".into(), "x".repeat(300)]
    };
    cat.sync_tree_with("bad", &mut bad).expect("sync");
    let tree = walk(&cat);
    assert_eq!(tree.len(), 5, "3 dirs and 2 files: {tree:?}");
    for (path, ino) in &tree {
        let n = cat.node(*ino).expect("node").expect("exists");
        assert!(!n.name.is_empty() && n.name.len() <= 255, "{path}");
        assert!(n.name != b"." && n.name != b"..", "{path}");
        assert!(!n.name.contains(&b'/') && !n.name.contains(&0), "{path}");
    }
}

#[test]
fn cached_paths_follow_retags_and_rebuild_agrees() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").expect("origin");
    let tags = |i: usize, album: &str| -> Vec<(String, String)> {
        vec![
            ("artist".into(), "X".into()),
            ("album".into(), album.into()),
            ("title".into(), format!("t{i}")),
        ]
    };
    let ups: Vec<Upsert> = (0..20)
        .map(|i| {
            let mut f = scanned(&[]);
            f.tags = tags(i, "P");
            (format!("{i}.flac").into_bytes(), stamp(1, 1), f)
        })
        .collect();
    cat.apply_scan(o, &ups, &[], &[]).expect("scan");
    sync_simple(&cat);
    let before = walk(&cat);

    // One retag among twenty: rendered alone (point query of its tags).
    let mut f = scanned(&[]);
    f.tags = tags(7, "Q");
    cat.apply_scan(o, &[(b"7.flac".to_vec(), stamp(1, 1), f)], &[], &[])
        .expect("retag");
    let ch = sync_simple(&cat);
    assert_eq!(ch.added, 2, "album dir Q and the moved file: {ch:?}");
    assert!(ino(&cat, "X/Q/t7.flac").is_some());
    assert_eq!(ino(&cat, "X/P/t7.flac"), None);
    for (path, i) in &before {
        if !path.contains("t7.") {
            assert_eq!(ino(&cat, path.trim_start_matches('/')), Some(*i), "{path}");
        }
    }
    // Rendering everything afresh agrees with the cache.
    let after = walk(&cat);
    let template = Template::parse("$artist/$album/$title").expect("parse");
    cat.sync_tree(&template).expect("real template");
    let real = walk(&cat);
    let ch = cat.rebuild_tree(&template).expect("rebuild");
    assert_eq!((ch.added, ch.removed.len(), ch.modified.len()), (0, 0, 0));
    assert_eq!(walk(&cat), real);
    assert_eq!(after, real, "same paths from another template: same inodes");
}

#[test]
fn a_track_on_two_origins_shows_once_from_the_preferred_origin() {
    let (_d, cat) = open_temp();
    let nas = cat.ensure_origin("nas", "sftp", "sftp://nas/m").unwrap();
    let s3 = cat.ensure_origin("s3", "s3", "s3://b/m").unwrap();
    let song = [("artist", "A"), ("album", "B"), ("title", "Song")];
    let only_s3 = [("artist", "A"), ("album", "B"), ("title", "Other")];
    cat.apply_scan(nas, &[up("x/song.flac", stamp(1000, 1), &song)], &[], &[])
        .unwrap();
    cat.apply_scan(
        s3,
        &[
            up("y/song.flac", stamp(1000, 5), &song),
            up("y/other.flac", stamp(1000, 5), &only_s3),
        ],
        &[],
        &[],
    )
    .unwrap();
    sync_simple(&cat);
    let paths: Vec<String> = walk(&cat).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["/A", "/A/B", "/A/B/Other.flac", "/A/B/Song.flac"]);
    let node = cat.resolve(b"/A/B/Song.flac").unwrap().unwrap();
    let shown = cat.file(node.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(shown.origin_id, nas, "the older origin wins a tie");
    let replicas = cat.replicas(shown.id).unwrap();
    assert_eq!(replicas.len(), 1);
    assert_eq!(replicas[0].origin_id, s3);
    assert_eq!(replicas[0].rel_path, b"y/song.flac");

    // Preferring the bucket moves the track to its copy.
    cat.set_origin_priority(s3, -1).unwrap();
    sync_simple(&cat);
    let node = cat.resolve(b"/A/B/Song.flac").unwrap().unwrap();
    let shown = cat.file(node.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(shown.origin_id, s3);
    assert_eq!(walk(&cat).len(), 4);

    // Same tags but other bytes: still one entry, but not a replica to read from.
    let mut changed = up("x/song.flac", stamp(1000, 2), &song);
    changed.2.quick_hash = 8;
    cat.apply_scan(nas, &[changed], &[], &[]).unwrap();
    assert!(cat.replicas(shown.id).unwrap().is_empty());
}

#[test]
fn two_copies_inside_one_origin_both_stay() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "local", "/m").unwrap();
    let song = [("artist", "A"), ("album", "B"), ("title", "Song")];
    cat.apply_scan(
        o,
        &[
            up("1.flac", stamp(1000, 1), &song),
            up("2.flac", stamp(1000, 1), &song),
        ],
        &[],
        &[],
    )
    .unwrap();
    sync_simple(&cat);
    assert_eq!(walk(&cat).len(), 4, "{:?}", walk(&cat));
}

#[test]
fn recipes_are_kept_with_their_file_and_dropped_with_it() {
    let (_d, cat) = open_temp();
    let o = cat.ensure_origin("m", "s3", "s3://b").unwrap();
    cat.apply_scan(
        o,
        &[up("a.flac", stamp(10, 1), &[("title", "T")])],
        &[],
        &[],
    )
    .unwrap();
    let id = cat.file_id_by_path(o, b"a.flac").unwrap().unwrap();
    assert_eq!(cat.recipe(id).unwrap(), None);
    cat.set_recipe(id, b"r1").unwrap();
    cat.set_recipe(id, b"r2").unwrap();
    assert_eq!(cat.recipe(id).unwrap().as_deref(), Some(&b"r2"[..]));
    cat.apply_scan(
        o,
        &[up("a.flac", stamp(11, 2), &[("title", "T")])],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        cat.recipe(id).unwrap().as_deref(),
        Some(&b"r2"[..]),
        "kept across a rescan"
    );
    cat.apply_scan(o, &[], &[], &[b"a.flac".to_vec()]).unwrap();
    assert_eq!(cat.recipe(id).unwrap(), None);
}
