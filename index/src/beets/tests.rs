//! beets library reading and matching, against a database laid out as
//! beets 2.x lays out `items` (the columns used here), and a real catalog.
use super::*;
use crate::catalog::Stamp;
use crate::scan::ScannedFile;
use crate::testutil::{self, edit};
use std::path::PathBuf;

/// `(path, title, artist, album, track, year, genres, comp)` of an item.
type Row<'a> = (&'a [u8], &'a str, &'a str, &'a str, i64, i64, &'a str, i64);

/// A beets-like `library.db` at `dir/library.db` with `rows`.
fn beets_db(dir: &Path, rows: &[Row<'_>]) -> PathBuf {
    let db = dir.join("library.db");
    let conn = Connection::open(&db).expect("create");
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, title TEXT, artist TEXT,
            album TEXT, albumartist TEXT, track INTEGER, tracktotal INTEGER, year INTEGER,
            genres TEXT, comp INTEGER, length REAL, mb_trackid TEXT);",
    )
    .expect("schema");
    for r in rows {
        conn.execute(
            "INSERT INTO items (path, title, artist, album, albumartist, track, tracktotal,
                                year, genres, comp, length, mb_trackid)
             VALUES (?1, ?2, ?3, ?4, '', ?5, 0, ?6, ?7, ?8, 3.0, '')",
            rusqlite::params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7],
        )
        .expect("row");
    }
    db
}

#[test]
fn reads_set_fields_in_canonical_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genres = format!("Rock{LIST_SEPARATOR}Pop");
    let db = beets_db(
        dir.path(),
        &[
            (b"/m/a.flac", "T", "A", "Al", 3, 2019, &genres, 1),
            (b"/m/\xffb.mp3", "", "B", "", 0, 0, "Jazz", 0),
        ],
    );
    let items = read_library(&db).expect("read");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].path, b"/m/a.flac");
    assert_eq!(
        items[0].fields,
        vec![
            edit("title", &["T"]),
            edit("artist", &["A"]),
            edit("album", &["Al"]),
            edit("track", &["3"]),
            edit("year", &["2019"]),
            edit("genre", &["Rock", "Pop"]),
            edit("compilation", &["1"]),
        ]
    );
    // Unset text (""), numbers (0) and flags (false) are not fields; the
    // path's bytes are kept as they are.
    assert_eq!(items[1].path, b"/m/\xffb.mp3");
    assert_eq!(
        items[1].fields,
        vec![edit("artist", &["B"]), edit("genre", &["Jazz"])]
    );
}

#[test]
fn missing_or_foreign_files_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = read_library(&dir.path().join("nope.db")).expect_err("missing");
    assert!(
        missing.to_string().contains("no such beets library.db"),
        "{missing}"
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, vec![b'x'; 4096]).expect("write");
    let foreign = read_library(&text).expect_err("not sqlite");
    assert!(
        foreign.to_string().contains("not a beets library.db"),
        "{foreign}"
    );
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .expect("db")
        .execute_batch("CREATE TABLE songs (path BLOB)")
        .expect("table");
    let err = read_library(&other).expect_err("no items");
    assert!(err.to_string().contains("not a beets library.db"), "{err}");
}

#[test]
fn numbers_compare_as_numbers_and_lists_in_order() {
    assert!(same_values("track", &["01"], &["1".into()]));
    assert!(same_values("track", &["1/10"], &["1".into()]));
    assert!(!same_values("track", &["2"], &["1".into()]));
    assert!(!same_values("track", &[], &["1".into()]));
    assert!(same_values(
        "genre",
        &["Rock", "Pop"],
        &["Rock".into(), "Pop".into()]
    ));
    assert!(!same_values(
        "genre",
        &["Pop", "Rock"],
        &["Rock".into(), "Pop".into()]
    ));
    // beets shows the first of a multi-valued tag in a single field.
    assert!(same_values("artist", &["A", "B"], &["A".into()]));
    assert!(!same_values("artist", &["A"], &["B".into()]));
    assert!(same_values("title", &["Ti", "tle"], &["Ti\0tle".into()]));
}

/// [`testutil::scanned`], three seconds long.
fn scanned(tags: &[(&str, &str)]) -> ScannedFile {
    let mut file = testutil::scanned(tags);
    file.props.duration_ms = 3000;
    file
}

/// A catalog with one local origin at `root` holding `a.flac` (and `b.flac`).
fn catalog(dir: &Path, root: &str) -> (Catalog, FileId, FileId) {
    let cat = Catalog::open(&dir.join("catalog.db")).expect("open");
    let origin = cat.ensure_origin("m", "local", root).expect("origin");
    let stamp = Stamp {
        size: 1000,
        mtime_ns: 1,
    };
    let a = scanned(&[
        ("title", "T"),
        ("artist", "A"),
        ("album", "Al"),
        ("track", "3"),
        ("tracktotal", "9"),
        ("year", "2019"),
        ("genre", "Rock"),
        ("genre", "Pop"),
    ]);
    let b = scanned(&[("title", "U"), ("artist", "A")]);
    cat.apply_scan(
        origin,
        &[
            (b"a.flac".to_vec(), stamp, a),
            (b"sub/b.flac".to_vec(), stamp, b),
        ],
        &[],
        &[],
    )
    .expect("scan");
    let id = |p: &[u8]| cat.file_id_by_path(origin, p).expect("q").expect("file");
    let (a, b) = (id(b"a.flac"), id(b"sub/b.flac"));
    (cat, a, b)
}

#[test]
fn matches_by_path_and_edits_only_what_differs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let music = dir.path().join("music");
    std::fs::create_dir_all(music.join("sub")).expect("mkdir");
    let (cat, a, b) = catalog(dir.path(), music.to_str().expect("utf-8"));
    let genres = format!("Rock{LIST_SEPARATOR}Pop");
    let a_path = format!("{}/a.flac", music.display());
    // Through a symlinked directory: matched once both are canonicalized.
    std::os::unix::fs::symlink(&music, dir.path().join("link")).expect("symlink");
    std::fs::write(music.join("sub/b.flac"), b"x").expect("file");
    let b_path = format!("{}/link/sub/b.flac", dir.path().display());
    let db = beets_db(
        dir.path(),
        &[
            // Same tags but for the album; track "3" vs 3, genres in order.
            (
                a_path.as_bytes(),
                "T",
                "A",
                "New Album",
                3,
                2019,
                &genres,
                0,
            ),
            (b_path.as_bytes(), "U", "A", "", 0, 0, "Jazz", 0),
            (b"/elsewhere/x.flac", "X", "Y", "Z", 1, 2000, "", 0),
        ],
    );
    let items = read_library(&db).expect("read");
    let mut matcher = Matcher::new(&cat).expect("matcher");
    let m = matcher.match_item(&items[0]).expect("match").expect("a");
    assert_eq!(m.file, a);
    assert_eq!(m.edits, vec![edit("album", &["New Album"])]);
    let m = matcher.match_item(&items[1]).expect("match").expect("b");
    assert_eq!(m.file, b);
    assert_eq!(m.edits, vec![edit("genre", &["Jazz"])]);
    assert_eq!(matcher.match_item(&items[2]).expect("match"), None);

    // Once applied, importing again needs nothing.
    cat.set_overlay(a, &[edit("album", &["New Album"])])
        .expect("set");
    let m = matcher.match_item(&items[0]).expect("match").expect("a");
    assert!(m.edits.is_empty(), "{:?}", m.edits);
    // beets changed its mind back to the scanned value: the overlay
    // follows, with the file's own values.
    cat.set_overlay(a, &[edit("track", &["7"])]).expect("set");
    let m = matcher.match_item(&items[0]).expect("match").expect("a");
    assert_eq!(m.edits, vec![edit("track", &["3"])]);
}

#[test]
fn served_files_list_virtual_paths_and_effective_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cat, a, b) = catalog(dir.path(), "/music");
    cat.set_overlay(a, &[edit("album", &["Fixed"]), edit("genre", &[])])
        .expect("set");
    let mut render = |f: &crate::fields::FileFields<'_>, ext: &str| {
        use crate::template::Fields;
        vec![
            f.get("album").unwrap_or_else(|| "none".into()),
            format!("{}.{ext}", f.get("title").unwrap_or_default()),
        ]
    };
    cat.sync_tree_with("t", &mut render).expect("sync");
    let rows = cat.served_files().expect("served");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].file, a);
    assert_eq!(rows[0].virtual_path.as_deref(), Some(&b"Fixed/T.flac"[..]));
    assert_eq!(rows[0].origin, "m");
    assert_eq!(rows[0].origin_path, b"a.flac");
    assert_eq!((rows[0].size, rows[0].duration_ms), (1000, 3000));
    let tags: Vec<(&str, &str)> = rows[0]
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("title", "T"),
            ("artist", "A"),
            ("album", "Fixed"),
            ("track", "3"),
            ("tracktotal", "9"),
            ("year", "2019"),
        ]
    );
    assert_eq!(rows[1].file, b);
    assert_eq!(rows[1].virtual_path.as_deref(), Some(&b"none/U.flac"[..]));
}

#[test]
fn relative_paths_resolve_against_the_inferred_beets_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cat, a, b) = catalog(dir.path(), "/srv/music");
    // beets 2.x stores paths inside its directory relative to it.
    let db = beets_db(
        dir.path(),
        &[
            (b"not/catalogued.flac", "X", "Y", "Z", 1, 2000, "", 0),
            (b"sub/b.flac", "U", "A", "", 0, 0, "", 0),
            (b"a.flac", "T", "A", "Al", 3, 2019, "", 0),
            (b"b.flac", "U", "A", "", 0, 0, "", 0),
        ],
    );
    let items = read_library(&db).expect("read");
    let mut matcher = Matcher::new(&cat).expect("matcher");
    assert_eq!(matcher.match_item(&items[0]).expect("match"), None);
    let found = |m: Option<Match>| m.map(|m| m.file);
    assert_eq!(
        found(matcher.match_item(&items[1]).expect("match")),
        Some(b)
    );
    assert_eq!(matcher.beets_dir.as_deref(), Some(&b"/srv/music"[..]));
    assert_eq!(
        found(matcher.match_item(&items[2]).expect("match")),
        Some(a)
    );
    // Joined to the directory, not matched by suffix: "b.flac" is not
    // "sub/b.flac".
    assert_eq!(matcher.match_item(&items[3]).expect("match"), None);
}
