use super::*;
use crate::{Catalog, ScannedFile, Stamp};

fn scanned(format: &str, tags: &[(&str, &str)]) -> ScannedFile {
    ScannedFile {
        format: format.into(),
        tags: crate::testutil::pairs(tags),
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    origin: i64,
    index: SearchIndex,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let catalog = Catalog::open(&path).unwrap();
        let origin = catalog.ensure_origin("o", "local", "/x").unwrap();
        let index = SearchIndex::open(&SearchIndex::dir_for(&path), &path).unwrap();
        Fixture {
            _dir: dir,
            catalog,
            origin,
            index,
        }
    }

    fn put(&self, path: &str, format: &str, tags: &[(&str, &str)]) -> FileId {
        let stamp = Stamp {
            size: 1,
            mtime_ns: 1,
        };
        self.catalog
            .apply_scan(
                self.origin,
                &[(path.as_bytes().to_vec(), stamp, scanned(format, tags))],
                &[],
                &[],
            )
            .unwrap();
        self.catalog
            .file_id_by_path(self.origin, path.as_bytes())
            .unwrap()
            .unwrap()
    }

    fn ids(&self, query: &str) -> Vec<FileId> {
        let (hits, total) = self.index.search(query, 100).unwrap();
        assert_eq!(total as usize, hits.len(), "{query}");
        let mut ids: Vec<FileId> = hits.into_iter().map(|(id, _)| id).collect();
        ids.sort();
        ids
    }
}

fn library() -> (Fixture, [FileId; 4]) {
    let f = Fixture::new();
    let help = f.put(
        "a.flac",
        "flac",
        &[
            ("artist", "The Beatles"),
            ("album", "Help!"),
            ("title", "Yesterday"),
            ("year", "1965"),
            ("genre", "Pop"),
        ],
    );
    let love = f.put(
        "b.mp3",
        "mp3",
        &[
            ("artist", "The Beatles"),
            ("album", "Let It Be"),
            ("title", "Let It Be"),
            ("date", "1970-05-08"),
        ],
    );
    let halo = f.put(
        "c.m4a",
        "m4a",
        &[
            ("artist", "Beyoncé"),
            ("album", "I Am... Sasha Fierce"),
            ("title", "Halo"),
            ("year", "2008"),
        ],
    );
    let live = f.put(
        "d.ogg",
        "ogg",
        &[
            ("artist", "Lovely Band"),
            ("title", "Live Forever"),
            ("composer", "Noel Gallagher"),
            ("year", "1994"),
        ],
    );
    let report = f.index.sync().unwrap();
    assert!(report.ran);
    assert_eq!((report.indexed, report.files), (4, 4));
    (f, [help, love, halo, live])
}

#[test]
fn search_fields_ranges_phrases_and_negation() {
    let (f, [help, love, halo, live]) = library();
    assert_eq!(f.ids("artist:beatles"), vec![help, love]);
    assert_eq!(f.ids("artist:beat"), vec![help, love], "prefix");
    assert_eq!(f.ids("artist:beatles year:1960..1969"), vec![help]);
    assert_eq!(f.ids("year:1990.."), vec![halo, live]);
    assert_eq!(f.ids("year:..1969"), vec![help]);
    assert_eq!(f.ids("year:1970"), vec![love], "year from date");
    assert_eq!(f.ids(r#""let it be""#), vec![love]);
    assert_eq!(f.ids(r#"title:"it let""#), Vec::<FileId>::new());
    assert_eq!(f.ids("artist:beatles -yesterday"), vec![love]);
    assert_eq!(f.ids("^beatles"), vec![halo, live], "only exclusions");
    assert_eq!(f.ids("format:OGG"), vec![live]);
    assert_eq!(f.ids("composer:gallagher"), vec![live]);
    assert_eq!(f.ids("gallagher"), vec![live], "bare words see every field");
    assert_eq!(f.ids("artist:gallagher"), Vec::<FileId>::new());
}

#[test]
fn accents_fold_both_ways() {
    let (f, [_, _, halo, _]) = library();
    assert_eq!(f.ids("beyonce"), vec![halo]);
    assert_eq!(f.ids("BEYONCÉ"), vec![halo]);
    assert_eq!(f.ids("artist:beyoncé"), vec![halo]);
}

#[test]
fn fuzzy_words_rank_below_exact_ones() {
    let (f, [help, love, _, live]) = library();
    // One typo.
    assert_eq!(f.ids("yesterdya"), vec![help]);
    assert_eq!(f.ids("beatels"), vec![help, love]);
    // Short words are not fuzzy: "halo" is 4 chars, "hal" (prefix) is fine,
    // "hlo" neither exact, prefix nor fuzzy.
    assert!(f.ids("hlo").is_empty());
    // "live" exactly (live) and one typo away from "love"... no file has
    // "love" — "lovely" is a prefix-only match of "love", not of "live".
    let (hits, _) = f.index.search("live", 10).unwrap();
    assert_eq!(hits[0].0, live);
    let (hits, _) = f.index.search("lovely", 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, live);
}

#[test]
fn malformed_queries_are_errors_with_positions() {
    let (f, _) = library();
    let err = f.index.search("love artst:x", 10).unwrap_err().to_string();
    assert!(
        err.contains("unknown field \"artst\"") && err.contains("at byte 5"),
        "{err}"
    );
    assert!(SearchIndex::check("year:1960..1969").is_ok());
    assert!(SearchIndex::check("year:x").is_err());
}

#[test]
fn sync_follows_changes_and_skips_when_unchanged() {
    let (f, [help, love, _, _]) = library();
    let again = f.index.sync().unwrap();
    assert!(!again.ran);
    // A retag: only that file is reindexed.
    f.put(
        "a.flac",
        "flac",
        &[("artist", "The Rutles"), ("title", "Yesterday")],
    );
    let r = f.index.sync().unwrap();
    assert_eq!((r.ran, r.indexed, r.removed, r.files), (true, 1, 0, 4));
    assert_eq!(f.ids("artist:beatles"), vec![love]);
    assert_eq!(f.ids("rutles"), vec![help]);
    // A removal.
    f.catalog
        .apply_scan(f.origin, &[], &[], &[b"b.mp3".to_vec()])
        .unwrap();
    let r = f.index.sync().unwrap();
    assert_eq!((r.indexed, r.removed, r.files), (0, 1, 3));
    assert!(f.ids("artist:beatles").is_empty());
}

#[test]
fn reopening_keeps_the_index_and_its_version() {
    let (f, [help, ..]) = library();
    let path = f.catalog.path().to_path_buf();
    drop(f.index);
    let index = SearchIndex::open(&SearchIndex::dir_for(&path), &path).unwrap();
    assert_eq!(index.len(), 4);
    assert!(!index.sync().unwrap().ran, "version kept in the commit");
    let (hits, _) = index.search("yesterday", 10).unwrap();
    assert_eq!(hits[0].0, help);
    let r = index.rebuild().unwrap();
    assert_eq!((r.indexed, r.files), (4, 4));
}
