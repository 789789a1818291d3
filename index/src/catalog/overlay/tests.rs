//! Overlay and splice storage against a real temp-file catalog.
use super::super::*;
use crate::testutil::{edit, pairs, scanned, simple_render};

fn open_temp() -> (tempfile::TempDir, Catalog, OriginId) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
    let origin = cat.ensure_origin("m", "local", "/m").expect("origin");
    (dir, cat, origin)
}

const STAMP: Stamp = Stamp {
    size: 1000,
    mtime_ns: 5,
};

/// One file `a.flac` with an artist, two genres and a title.
fn one_file() -> (tempfile::TempDir, Catalog, OriginId, FileId) {
    let (dir, cat, origin) = open_temp();
    let tags = [
        ("artist", "A"),
        ("genre", "Rock"),
        ("genre", "Pop"),
        ("title", "T"),
    ];
    cat.apply_scan(
        origin,
        &[(b"a.flac".to_vec(), STAMP, scanned(&tags))],
        &[],
        &[],
    )
    .expect("scan");
    let id = cat
        .file_id_by_path(origin, b"a.flac")
        .expect("query")
        .expect("catalogued");
    (dir, cat, origin, id)
}

fn sync(cat: &Catalog) -> TreeChanges {
    cat.sync_tree_with("simple", &mut simple_render)
        .expect("sync")
}

#[test]
fn edits_replace_per_key_and_read_back() {
    let (_dir, cat, _, id) = one_file();
    assert!(cat.overlay(id).expect("overlay").is_empty());
    cat.set_overlay(id, &[edit("genre", &["Jazz", "Blues"]), edit("title", &[])])
        .expect("set");
    cat.set_overlay(id, &[edit("album", &["New"])])
        .expect("set");
    cat.set_overlay(id, &[edit("genre", &["Funk"])])
        .expect("set");
    assert_eq!(
        cat.overlay(id).expect("overlay"),
        vec![
            edit("album", &["New"]),
            edit("genre", &["Funk"]),
            edit("title", &[])
        ]
    );
    assert_eq!(
        cat.effective_tags(id).expect("effective"),
        pairs(&[("artist", "A"), ("genre", "Funk"), ("album", "New")])
    );
    // Scanned tags are untouched.
    assert_eq!(cat.tags(id).expect("tags").len(), 4);
}

#[test]
fn reset_some_keys_then_all() {
    let (_dir, cat, _, id) = one_file();
    cat.set_overlay(id, &[edit("genre", &["Jazz"]), edit("album", &["X"])])
        .expect("set");
    assert!(!cat.reset_overlay(id, &["year".to_string()]).expect("reset"));
    assert!(cat
        .reset_overlay(id, &["genre".to_string()])
        .expect("reset"));
    assert_eq!(
        cat.overlay(id).expect("overlay"),
        vec![edit("album", &["X"])]
    );
    assert_eq!(
        cat.effective_tags(id).expect("effective"),
        pairs(&[
            ("artist", "A"),
            ("genre", "Rock"),
            ("genre", "Pop"),
            ("title", "T"),
            ("album", "X")
        ])
    );
    assert!(cat.reset_overlay(id, &[]).expect("reset all"));
    assert!(cat.overlay(id).expect("overlay").is_empty());
    assert_eq!(
        cat.effective_tags(id).expect("eff"),
        cat.tags(id).expect("tags")
    );
    assert!(!cat.reset_overlay(id, &[]).expect("nothing left"));
}

#[test]
fn edits_move_the_file_in_the_next_sync_and_keep_others() {
    let (_dir, cat, origin, id) = one_file();
    cat.apply_scan(
        origin,
        &[(
            b"b.flac".to_vec(),
            STAMP,
            scanned(&[("artist", "Other"), ("title", "U")]),
        )],
        &[],
        &[],
    )
    .expect("scan");
    sync(&cat);
    let other = cat.resolve(b"Other/B/U.flac").expect("resolve").expect("b");
    assert!(cat.resolve(b"A/B/T.flac").expect("resolve").is_some());
    cat.set_overlay(id, &[edit("album", &["Fixed"]), edit("title", &["New T"])])
        .expect("set");
    let changes = sync(&cat);
    assert!(!changes.removed.is_empty(), "the old path went away");
    assert!(cat.resolve(b"A/B/T.flac").expect("resolve").is_none());
    let moved = cat
        .resolve(b"A/Fixed/New T.flac")
        .expect("resolve")
        .expect("edited path");
    assert_eq!(moved.file_id, Some(id));
    assert_eq!(moved.size, STAMP.size, "no splice yet: the original's size");
    let still = cat.resolve(b"Other/B/U.flac").expect("resolve").expect("b");
    assert_eq!(still.ino, other.ino, "untouched files keep their inode");
    // Reset brings the scanned path back.
    cat.reset_overlay(id, &[]).expect("reset");
    sync(&cat);
    assert!(cat.resolve(b"A/B/T.flac").expect("resolve").is_some());
    // Setting an edit equal to the stored one is not a change.
    cat.set_overlay(id, &[edit("genre", &["X"])]).expect("set");
    sync(&cat);
    cat.set_overlay(id, &[edit("genre", &["X"])])
        .expect("set again");
    assert!(sync(&cat).modified.is_empty());
}

#[test]
fn files_needing_splice_follow_edits_and_stamps() {
    let (_dir, cat, origin, id) = one_file();
    assert!(cat.files_needing_splice().expect("needing").is_empty());
    cat.set_overlay(id, &[edit("genre", &["Jazz"])])
        .expect("set");
    assert_eq!(cat.files_needing_splice().expect("needing"), vec![id]);
    // A rescan that changes the stamp keeps the edits (same file id).
    let newer = Stamp {
        size: 1001,
        mtime_ns: 6,
    };
    cat.apply_scan(
        origin,
        &[(b"a.flac".to_vec(), newer, scanned(&[("title", "T2")]))],
        &[],
        &[],
    )
    .expect("rescan");
    assert_eq!(
        cat.overlay(id).expect("kept"),
        vec![edit("genre", &["Jazz"])]
    );
    assert_eq!(
        cat.effective_tags(id).expect("eff"),
        pairs(&[("title", "T2"), ("genre", "Jazz")])
    );
    assert_eq!(cat.files_needing_splice().expect("needing"), vec![id]);
}

#[test]
fn removed_file_takes_its_overlay_along() {
    let (_dir, cat, origin, id) = one_file();
    cat.set_overlay(id, &[edit("genre", &["Jazz"])])
        .expect("set");
    cat.apply_scan(origin, &[], &[], &[b"a.flac".to_vec()])
        .expect("remove");
    assert!(cat.overlay(id).expect("overlay").is_empty());
    assert!(cat.files_needing_splice().expect("needing").is_empty());
    sync(&cat);
    assert_eq!(cat.counts().expect("counts").files, 0);
}

fn plan_of(header: &[u8], body_len: u64) -> crate::synth::Plan {
    use crate::synth::{Plan, Segment};
    Plan {
        segments: vec![
            Segment::Bytes(header.to_vec().into()),
            Segment::Original {
                offset: 42,
                len: body_len,
            },
        ],
    }
}

#[test]
fn a_valid_splice_sizes_the_node_until_the_stamp_changes() {
    let (_dir, cat, origin, id) = one_file();
    cat.set_overlay(id, &[edit("genre", &["Jazz"])])
        .expect("set");
    sync(&cat);
    let plan = plan_of(&[7u8; 100], 958);
    cat.set_splice(id, STAMP, &plan).expect("splice");
    assert_eq!(cat.splice(id).expect("splice"), Some(plan.clone()));
    assert!(cat.files_needing_splice().expect("needing").is_empty());
    let before = cat.resolve(b"A/B/T.flac").expect("resolve").expect("node");
    let changes = sync(&cat);
    let node = cat.resolve(b"A/B/T.flac").expect("resolve").expect("node");
    assert_eq!(node.size, 1058, "the plan's size");
    assert_eq!(node.ino, before.ino, "same entry, new size");
    assert!(changes.modified.contains(&node.ino));

    // The original changes on disk: the splice is stale, the node falls
    // back to the original's size and the file needs a new plan.
    let newer = Stamp {
        size: 2000,
        mtime_ns: 9,
    };
    let tags = [("artist", "A"), ("title", "T")];
    cat.apply_scan(
        origin,
        &[(b"a.flac".to_vec(), newer, scanned(&tags))],
        &[],
        &[],
    )
    .expect("rescan");
    assert_eq!(cat.splice(id).expect("splice"), None);
    assert_eq!(cat.files_needing_splice().expect("needing"), vec![id]);
    sync(&cat);
    let node = cat.resolve(b"A/B/T.flac").expect("resolve").expect("node");
    assert_eq!(node.size, 2000);

    // A new plan for the new stamp; then a new edit makes it stale again.
    cat.set_splice(id, newer, &plan_of(b"hdr", 1958))
        .expect("splice");
    sync(&cat);
    let node = cat.resolve(b"A/B/T.flac").expect("resolve").expect("node");
    assert_eq!(node.size, 1961);
    cat.set_overlay(id, &[edit("genre", &["Funk"])])
        .expect("set");
    assert_eq!(cat.splice(id).expect("splice"), None);
    assert_eq!(cat.files_needing_splice().expect("needing"), vec![id]);
    // Resetting everything leaves nothing to splice and the original size.
    cat.reset_overlay(id, &[]).expect("reset");
    assert!(cat.files_needing_splice().expect("needing").is_empty());
    sync(&cat);
    let node = cat.resolve(b"A/B/T.flac").expect("resolve").expect("node");
    assert_eq!(node.size, 2000);
}
