//! Saved collections (a name and a search query, shown at
//! `/.collections/<name>/`) and the play log that feeds the built-in
//! "Recently Played" and "Most Played".
//!
//! The catalog stores and validates; running a saved query, "Recently
//! Added" and the per-decade collections belong to the search index,
//! which has the served tags and `added` at hand.
use super::{now_unix, Catalog, FileId};
use crate::{Error, Result};
use rusqlite::{params, OptionalExtension};

/// A play of the same file within this many seconds of the last one
/// counts once (a player that reopens a file to seek, a media server's
/// double open).
pub const PLAY_DEBOUNCE_SECS: i64 = 60;

/// Names of the built-in collections that are not per decade.
pub const RECENTLY_ADDED: &str = "Recently Added";
pub const RECENTLY_PLAYED: &str = "Recently Played";
pub const MOST_PLAYED: &str = "Most Played";

/// A collection saved by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCollection {
    pub name: String,
    pub query: String,
    /// Unix seconds.
    pub created: i64,
}

/// Whether `name` names a built-in collection: one of the three fixed
/// names or a decade such as "1960s".
pub fn is_builtin_name(name: &str) -> bool {
    [RECENTLY_ADDED, RECENTLY_PLAYED, MOST_PLAYED]
        .iter()
        .any(|b| b.eq_ignore_ascii_case(name))
        || decade_of_name(name).is_some()
}

/// The first year of a decade collection's name ("1960s" → 1960).
pub fn decade_of_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix('s')?;
    if digits.len() != 4 || !digits.ends_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why `name` cannot name a saved collection, if it cannot: it becomes a
/// directory name under `/.collections/`.
pub fn check_collection_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("a collection name cannot be empty".into());
    }
    if name.len() > 100 {
        return Err(format!(
            "a collection name is at most 100 bytes ({} given)",
            name.len()
        ));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(format!("collection name {name:?} contains '/' or NUL"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} cannot name a collection"));
    }
    if is_builtin_name(name) {
        return Err(format!("{name:?} is a built-in collection"));
    }
    Ok(())
}

impl Catalog {
    /// Saves (or replaces the query of) a collection. The name is checked
    /// with [`check_collection_name`]; an invalid one is an `EINVAL` I/O
    /// error. The query is stored as given: the caller checks its syntax.
    pub fn create_collection(&self, name: &str, query: &str) -> Result<()> {
        check_collection_name(name).map_err(|message| Error::Io {
            context: message,
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        self.write(|c| {
            c.execute(
                "INSERT INTO collections (name, query, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET query = excluded.query",
                params![name, query, now_unix()],
            )
            .map(drop)
        })
    }

    /// Deletes a saved collection; false when there was none by that name.
    pub fn delete_collection(&self, name: &str) -> Result<bool> {
        self.write(|c| {
            c.execute("DELETE FROM collections WHERE name = ?1", [name])
                .map(|n| n > 0)
        })
    }

    /// The saved collections, by name.
    pub fn saved_collections(&self) -> Result<Vec<SavedCollection>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, query, created FROM collections ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(SavedCollection {
                    name: r.get(0)?,
                    query: r.get(1)?,
                    created: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn saved_collection(&self, name: &str) -> Result<Option<SavedCollection>> {
        self.read(|c| {
            c.prepare_cached("SELECT name, query, created FROM collections WHERE name = ?1")?
                .query_row([name], |r| {
                    Ok(SavedCollection {
                        name: r.get(0)?,
                        query: r.get(1)?,
                        created: r.get(2)?,
                    })
                })
                .optional()
        })
    }

    /// Logs a play of `file` at `at` (unix seconds), unless the same file
    /// was logged less than [`PLAY_DEBOUNCE_SECS`] before. True when
    /// logged. A file no longer catalogued is not logged.
    pub fn record_play(&self, file: FileId, at: i64) -> Result<bool> {
        self.write(|c| {
            let last: Option<i64> = c
                .prepare_cached("SELECT max(at) FROM plays WHERE file_id = ?1")?
                .query_row([file], |r| r.get(0))?;
            if last.is_some_and(|last| (at - last).abs() < PLAY_DEBOUNCE_SECS) {
                return Ok(false);
            }
            let inserted = c
                .prepare_cached(
                    "INSERT INTO plays (file_id, at) SELECT id, ?2 FROM files WHERE id = ?1",
                )?
                .execute(params![file, at])?;
            Ok(inserted > 0)
        })
    }

    /// How many plays of `file` are logged.
    pub fn play_count(&self, file: FileId) -> Result<u64> {
        self.read(|c| {
            c.prepare_cached("SELECT count(*) FROM plays WHERE file_id = ?1")?
                .query_row([file], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    /// Files by their last play, newest first, at most `limit`.
    pub fn recently_played(&self, limit: usize) -> Result<Vec<FileId>> {
        self.read(|c| {
            // Walks the `at` index newest first and stops after `limit`
            // distinct files, instead of grouping the whole log.
            let mut stmt =
                c.prepare_cached("SELECT file_id FROM plays ORDER BY at DESC, rowid DESC")?;
            let mut rows = stmt.query([])?;
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(row) = rows.next()? else { break };
                let id: FileId = row.get(0)?;
                if seen.insert(id) {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// Files by play count, most first (ties: the latest played first),
    /// at most `limit`.
    pub fn most_played(&self, limit: usize) -> Result<Vec<FileId>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT file_id FROM plays GROUP BY file_id
                 ORDER BY count(*) DESC, max(at) DESC, file_id LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| r.get(0))?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ScannedFile, Stamp};

    fn catalog_with(n: usize) -> (tempfile::TempDir, Catalog, Vec<FileId>) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("c.db")).unwrap();
        let origin = catalog.ensure_origin("o", "local", "/x").unwrap();
        let stamp = Stamp {
            size: 1,
            mtime_ns: 1,
        };
        let upserts: Vec<_> = (0..n)
            .map(|i| {
                (
                    format!("{i}.flac").into_bytes(),
                    stamp,
                    ScannedFile::default(),
                )
            })
            .collect();
        catalog.apply_scan(origin, &upserts, &[], &[]).unwrap();
        let ids = (0..n)
            .map(|i| {
                catalog
                    .file_id_by_path(origin, format!("{i}.flac").as_bytes())
                    .unwrap()
                    .unwrap()
            })
            .collect();
        (dir, catalog, ids)
    }

    #[test]
    fn names_are_checked() {
        assert!(check_collection_name("Road trip").is_ok());
        assert!(check_collection_name("Ünïcødé").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "Recently Added",
            "most played",
            "1960s",
        ] {
            assert!(check_collection_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_collection_name(&"x".repeat(101)).is_err());
        assert!(check_collection_name(&"x".repeat(100)).is_ok());
        assert_eq!(decade_of_name("1960s"), Some(1960));
        assert_eq!(decade_of_name("1965s"), None);
        assert_eq!(decade_of_name("60s"), None);
    }

    #[test]
    fn saved_collections_round_trip() {
        let (_d, c, _) = catalog_with(0);
        c.create_collection("b", "artist:x").unwrap();
        c.create_collection("a", "year:1960..").unwrap();
        c.create_collection("b", "artist:y").unwrap();
        let names: Vec<_> = c
            .saved_collections()
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.query))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a".to_string(), "year:1960..".to_string()),
                ("b".to_string(), "artist:y".to_string())
            ]
        );
        let err = c.create_collection("../x", "q").unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(err.to_string().contains("'/'"), "{err}");
        assert!(c.delete_collection("a").unwrap());
        assert!(!c.delete_collection("a").unwrap());
        assert_eq!(c.saved_collection("b").unwrap().unwrap().query, "artist:y");
        assert!(c.saved_collection("a").unwrap().is_none());
    }

    #[test]
    fn plays_are_debounced_and_ranked() {
        let (_d, c, ids) = catalog_with(3);
        let [a, b, x] = [ids[0], ids[1], ids[2]];
        assert!(c.record_play(a, 1000).unwrap());
        assert!(!c.record_play(a, 1030).unwrap(), "within the de-bounce");
        assert!(c.record_play(a, 1060).unwrap());
        assert!(c.record_play(b, 1100).unwrap());
        assert!(c.record_play(x, 900).unwrap());
        assert!(!c.record_play(9999, 2000).unwrap(), "not catalogued");
        assert_eq!(c.play_count(a).unwrap(), 2);
        assert_eq!(c.recently_played(10).unwrap(), vec![b, a, x]);
        assert_eq!(c.recently_played(2).unwrap(), vec![b, a]);
        assert_eq!(c.most_played(10).unwrap(), vec![a, b, x]);
        assert_eq!(c.most_played(1).unwrap(), vec![a]);
    }
}
