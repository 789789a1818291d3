//! beets interop: reading a beets `library.db` and matching its items to
//! catalogued files; the catalog-as-served rows an export is made of.
//!
//! beets keeps one row per track in `items`: `path` (bytes; absolute for
//! files outside beets' own directory, as after `beet import -C`, and in
//! beets 2.x relative to that directory for files inside it), text
//! columns where "" means unset, integer columns where 0 means unset, and
//! in beets 2.x multi-valued columns (`genres`, `composers`, ...) joined
//! with `\␀`. Only the columns a database has are read, so libraries of
//! older beets (single `genre`, `composer`) import too.
//!
//! An unset beets field is taken as "no opinion": the file keeps what it
//! has. beets reads fewer tags than the scanner derives (`year` from
//! `date`, `comment` from `description`), so treating unset as "remove"
//! would strip tags on the first import.
use crate::catalog::{Catalog, FileId};
use crate::synth::TagEdit;
use crate::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One beets item: its path and the fields it sets, in canonical keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeetsItem {
    pub path: Vec<u8>,
    /// Set fields only; each key once, multi-valued fields split.
    pub fields: Vec<TagEdit>,
}

/// How a beets column becomes a canonical key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// beets 2.x list columns, `\␀`-joined.
    List,
    /// 0 = unset.
    Number,
    /// `comp`: true = "1"; false is unset.
    Flag,
}

/// `(beets column, canonical key, kind)`. For a key listed twice (beets
/// 2.x renamed `genre` to `genres`), the first set column wins.
const COLUMNS: &[(&str, &str, Kind)] = &[
    ("title", "title", Kind::Text),
    ("artist", "artist", Kind::Text),
    ("album", "album", Kind::Text),
    ("albumartist", "albumartist", Kind::Text),
    ("track", "track", Kind::Number),
    ("tracktotal", "tracktotal", Kind::Number),
    ("disc", "disc", Kind::Number),
    ("disctotal", "disctotal", Kind::Number),
    ("year", "year", Kind::Number),
    ("genres", "genre", Kind::List),
    ("genre", "genre", Kind::Text),
    ("composers", "composer", Kind::List),
    ("composer", "composer", Kind::Text),
    ("arrangers", "arranger", Kind::List),
    ("arranger", "arranger", Kind::Text),
    ("lyricists", "lyricist", Kind::List),
    ("lyricist", "lyricist", Kind::Text),
    ("remixers", "remixer", Kind::List),
    ("comp", "compilation", Kind::Flag),
    ("comments", "comment", Kind::Text),
    ("grouping", "grouping", Kind::Text),
    ("label", "label", Kind::Text),
    ("disctitle", "disctitle", Kind::Text),
    ("subtitle", "subtitle", Kind::Text),
    ("work", "work", Kind::Text),
    ("bpm", "bpm", Kind::Number),
    ("isrc", "isrc", Kind::Text),
    ("barcode", "barcode", Kind::Text),
    ("catalognum", "catalognum", Kind::Text),
    ("country", "country", Kind::Text),
    ("media", "media", Kind::Text),
    ("language", "language", Kind::Text),
    ("script", "script", Kind::Text),
    ("initial_key", "initial_key", Kind::Text),
    ("artist_sort", "artist_sort", Kind::Text),
    ("albumartist_sort", "albumartist_sort", Kind::Text),
    ("composer_sort", "composer_sort", Kind::Text),
    ("acoustid_id", "acoustid_id", Kind::Text),
    ("mb_trackid", "musicbrainz_trackid", Kind::Text),
    (
        "mb_releasetrackid",
        "musicbrainz_releasetrackid",
        Kind::Text,
    ),
    ("mb_albumid", "musicbrainz_albumid", Kind::Text),
    (
        "mb_releasegroupid",
        "musicbrainz_releasegroupid",
        Kind::Text,
    ),
    ("mb_artistid", "musicbrainz_artistid", Kind::Text),
    ("mb_albumartistid", "musicbrainz_albumartistid", Kind::Text),
    ("mb_workid", "musicbrainz_workid", Kind::Text),
];

/// Keys compared as numbers: "1" == "01" == "1/10".
const NUMERIC_KEYS: &[&str] = &["track", "tracktotal", "disc", "disctotal", "year", "bpm"];

/// beets 2.x's separator of list values in one column.
const LIST_SEPARATOR: &str = "\\\u{2400}";

fn not_beets(db: &Path, why: &str) -> Error {
    Error::Scan {
        path: db.display().to_string(),
        message: format!("not a beets library.db: {why}"),
    }
}

/// Reads every item of the beets library at `db` (opened read-only; beets
/// may be running). A missing file or one without beets' `items` table
/// is an error saying so.
pub fn read_library(db: &Path) -> Result<Vec<BeetsItem>> {
    if !db.is_file() {
        return Err(Error::Scan {
            path: db.display().to_string(),
            message: "no such beets library.db".into(),
        });
    }
    let sql_err = |source| Error::Sqlite {
        path: db.display().to_string(),
        source,
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_err)?;
    let present: HashSet<String> = match conn.prepare("SELECT name FROM pragma_table_info('items')")
    {
        Ok(mut stmt) => stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| not_beets(db, &e.to_string()))?,
        // Not SQLite at all ("file is not a database").
        Err(e) => return Err(not_beets(db, &e.to_string())),
    };
    if !present.contains("path") {
        return Err(not_beets(db, "no items table with a path column"));
    }
    let columns: Vec<&(&str, &str, Kind)> = COLUMNS
        .iter()
        .filter(|(col, _, _)| present.contains(*col))
        .collect();
    let mut select = String::from("SELECT path");
    for (col, _, _) in &columns {
        select.push_str(", \"");
        select.push_str(col);
        select.push('"');
    }
    select.push_str(" FROM items ORDER BY id");
    let mut stmt = conn.prepare(&select).map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        let path = match row.get_ref(0).map_err(sql_err)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => continue,
        };
        let mut fields: Vec<TagEdit> = Vec::new();
        for (i, (_, key, kind)) in columns.iter().enumerate() {
            if fields.iter().any(|f| f.key == *key) {
                continue;
            }
            let values = column_values(row.get_ref(i + 1).map_err(sql_err)?, *kind);
            if !values.is_empty() {
                fields.push(TagEdit {
                    key: key.to_string(),
                    values,
                });
            }
        }
        items.push(BeetsItem { path, fields });
    }
    Ok(items)
}

/// A beets value as canonical tag values; empty when unset.
fn column_values(value: rusqlite::types::ValueRef<'_>, kind: Kind) -> Vec<String> {
    use rusqlite::types::ValueRef as V;
    let number = match value {
        V::Integer(n) => Some(n),
        V::Real(f) => Some(f as i64),
        V::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        _ => None,
    };
    match kind {
        Kind::Number => number
            .filter(|n| *n > 0)
            .map(|n| vec![n.to_string()])
            .unwrap_or_default(),
        Kind::Flag => match number {
            Some(n) if n != 0 => vec!["1".to_string()],
            _ => Vec::new(),
        },
        Kind::Text | Kind::List => {
            let text = match value {
                V::Text(t) | V::Blob(t) => String::from_utf8_lossy(t).into_owned(),
                V::Integer(n) => n.to_string(),
                _ => return Vec::new(),
            };
            let parts: Vec<&str> = if kind == Kind::Text {
                vec![&text]
            } else if text.contains(LIST_SEPARATOR) {
                text.split(LIST_SEPARATOR).collect()
            } else {
                // What beets itself does with a list column lacking its
                // separator (values written by older versions).
                text.split("; ").collect()
            };
            parts
                .into_iter()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        }
    }
}

/// Whether the file's `current` values of `key` already say what beets'
/// `wanted` values say.
fn same_values(key: &str, current: &[&str], wanted: &[String]) -> bool {
    if NUMERIC_KEYS.contains(&key) {
        let number = |v: &str| {
            let first = v.split('/').next().unwrap_or("").trim();
            first.parse::<u64>().ok()
        };
        return match (current.first(), wanted.first()) {
            (Some(c), Some(w)) => number(c).is_some() && number(c) == number(w),
            _ => false,
        };
    }
    if current.len() == wanted.len() && current.iter().zip(wanted).all(|(c, w)| *c == w) {
        return true;
    }
    // A single-valued beets field shows the first of a file's values
    // (mediafile reads one), or all of them joined: with "; ", or with
    // the NULs ID3v2.4 and Vorbis values carry, which the scanner splits.
    wanted.len() == 1
        && (current.first() == Some(&wanted[0].as_str())
            || current.join("; ") == wanted[0]
            || current.join("\0") == wanted[0])
}

/// Matches beets items to catalogued files of local origins by path.
pub struct Matcher<'a> {
    catalog: &'a Catalog,
    /// Absolute path (as the origin's location spells it, and
    /// canonicalized) → file.
    by_path: HashMap<Vec<u8>, FileId>,
    /// beets' library directory, for the relative paths beets 2.x stores
    /// for files inside it: not in the database (it is in beets' config),
    /// so inferred from the first relative path found in the catalog.
    beets_dir: Option<Vec<u8>>,
    /// Linear searches left for inferring `beets_dir`.
    inferences_left: u32,
}

/// How many unmatched relative paths may each cost a pass over every
/// catalogued path before relative paths are given up on.
const MAX_INFERENCES: u32 = 8;

/// A matched item: the file and the edits that make it serve beets'
/// values (empty when it already does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub file: FileId,
    pub edits: Vec<TagEdit>,
}

impl<'a> Matcher<'a> {
    /// Indexes the paths of every file on a local origin.
    pub fn new(catalog: &'a Catalog) -> Result<Matcher<'a>> {
        use std::os::unix::ffi::OsStrExt;
        let mut by_path = HashMap::new();
        for origin in catalog.origins()? {
            if origin.kind != "local" {
                continue;
            }
            let mut roots = vec![origin.location.as_bytes().to_vec()];
            if let Ok(canonical) = std::fs::canonicalize(&origin.location) {
                let canonical = canonical.as_os_str().as_bytes().to_vec();
                if canonical != roots[0] {
                    roots.push(canonical);
                }
            }
            for (id, rel_path, _) in catalog.origin_files(origin.id)? {
                for root in &roots {
                    by_path.entry(join(root, &rel_path)).or_insert(id);
                }
            }
        }
        Ok(Matcher {
            catalog,
            by_path,
            beets_dir: None,
            inferences_left: MAX_INFERENCES,
        })
    }

    /// The file `item` describes, if catalogued, with the edits it needs.
    ///
    /// A key needs an edit when beets' value differs from the file's
    /// scanned value, or from the overlay's if the key is edited already
    /// (an overlay equal to beets' value needs none: importing again
    /// changes nothing). A key beets sets back to the scanned value gets
    /// the scanned values as its edit.
    pub fn match_item(&mut self, item: &BeetsItem) -> Result<Option<Match>> {
        let Some(file) = self.lookup(&item.path) else {
            return Ok(None);
        };
        let scanned = self.catalog.tags(file)?;
        let overlay = self.catalog.overlay(file)?;
        let mut edits = Vec::new();
        for field in &item.fields {
            let scanned_values: Vec<&str> = scanned
                .iter()
                .filter(|(k, _)| *k == field.key)
                .map(|(_, v)| v.as_str())
                .collect();
            let matches_scanned = same_values(&field.key, &scanned_values, &field.values);
            match overlay.iter().find(|e| e.key == field.key) {
                Some(edited) => {
                    let edited_values: Vec<&str> =
                        edited.values.iter().map(String::as_str).collect();
                    if same_values(&field.key, &edited_values, &field.values) {
                        continue;
                    }
                    let values = if matches_scanned {
                        scanned_values.iter().map(|v| v.to_string()).collect()
                    } else {
                        field.values.clone()
                    };
                    if values != edited.values {
                        edits.push(TagEdit {
                            key: field.key.clone(),
                            values,
                        });
                    }
                }
                None if !matches_scanned => edits.push(field.clone()),
                None => {}
            }
        }
        Ok(Some(Match { file, edits }))
    }

    fn lookup(&mut self, path: &[u8]) -> Option<FileId> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        if !path.starts_with(b"/") {
            return self.lookup_relative(path);
        }
        if let Some(&id) = self.by_path.get(path) {
            return Some(id);
        }
        let os = std::ffi::OsString::from_vec(path.to_vec());
        let canonical = std::fs::canonicalize(&os).ok()?;
        self.by_path.get(canonical.as_os_str().as_bytes()).copied()
    }

    /// A path relative to beets' library directory: joined to the
    /// directory once known, else found by suffix (which teaches the
    /// directory for the items after it).
    fn lookup_relative(&mut self, rel: &[u8]) -> Option<FileId> {
        if let Some(dir) = &self.beets_dir {
            return self.by_path.get(&join(dir, rel)).copied();
        }
        if self.inferences_left == 0 || rel.is_empty() {
            return None;
        }
        self.inferences_left -= 1;
        let mut suffix = b"/".to_vec();
        suffix.extend_from_slice(rel);
        let (full, id) = self
            .by_path
            .iter()
            .filter(|(full, _)| full.ends_with(&suffix))
            .min_by(|a, b| a.0.cmp(b.0))?;
        self.beets_dir = Some(full[..full.len() - suffix.len()].to_vec());
        Some(*id)
    }
}

/// `root/rel`, with exactly one `/` between.
fn join(root: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut out = root.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    out
}

/// One catalogued file as it is served, for exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub file: FileId,
    /// Where the file is in the mount (`None` if the tree does not show
    /// it: a duplicate on a less preferred origin, or not yet synced).
    pub virtual_path: Option<Vec<u8>>,
    pub origin: String,
    /// The file's path inside its origin.
    pub origin_path: Vec<u8>,
    pub format: String,
    /// Served size: the synthesized layout's when tags are edited.
    pub size: u64,
    pub duration_ms: u64,
    /// Effective tags: scanned with the overlay applied.
    pub tags: Vec<(String, String)>,
}

#[cfg(test)]
mod tests;
