//! What the search index reads from the catalog: every file with its
//! tags as served (scanned tags with the overlay applied), streamed in
//! file-id order by a merge of three ordered scans, so a million files
//! cost three sequential reads rather than a million point queries.
//!
//! It opens its own read-only connection: a full pass takes seconds and
//! must not hold one of the catalog's pooled readers meanwhile.
use crate::catalog::FileId;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// One file as the index sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDoc {
    pub id: FileId,
    pub format: String,
    pub added: i64,
    /// `(canonical key, value)`, overlay applied.
    pub tags: Vec<(String, String)>,
}

impl SourceDoc {
    /// The values of `key`.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tags
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The year: the `year` tag, else the leading digits of `date`.
    pub fn year(&self) -> Option<i64> {
        let lead = |s: &str| -> Option<i64> {
            let digits: String = s
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            (digits.len() == 4).then(|| digits.parse().ok()).flatten()
        };
        self.values("year")
            .find_map(lead)
            .or_else(|| self.values("date").find_map(lead))
    }

    /// A hash of everything indexed, to tell a changed file from an
    /// unchanged one.
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.format.as_bytes());
        h.update(&[0]);
        h.update(&self.added.to_le_bytes());
        for (k, v) in &self.tags {
            h.update(k.as_bytes());
            h.update(&[0]);
            h.update(v.as_bytes());
            h.update(&[0]);
        }
        h.digest()
    }
}

pub fn open(catalog: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        catalog,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// The catalog's `files_version` (bumped by every write to files, tags
/// or the overlay), "0" when never set.
pub fn files_version(conn: &Connection) -> rusqlite::Result<String> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'files_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .unwrap_or_else(|| "0".into()))
}

/// Calls `each` for every catalogued file, in id order, within one read
/// transaction (one consistent snapshot).
pub fn for_each(
    conn: &Connection,
    mut each: impl FnMut(SourceDoc) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        let mut files =
            conn.prepare("SELECT id, format, coalesce(added, 0) FROM files ORDER BY id")?;
        let mut tags =
            conn.prepare("SELECT file_id, key, value FROM tags ORDER BY file_id, idx")?;
        let mut overlay =
            conn.prepare("SELECT file_id, key, value FROM overlay ORDER BY file_id, key, idx")?;
        let mut files = files.query([])?;
        let mut tags = Peeked::new(tags.query([])?)?;
        let mut overlay = Peeked::new(overlay.query([])?)?;
        while let Some(row) = files.next()? {
            let mut doc = SourceDoc {
                id: row.get(0)?,
                format: row.get(1)?,
                added: row.get(2)?,
                tags: Vec::new(),
            };
            while let Some((_, key, value)) = tags.take_for(doc.id)? {
                doc.tags.push((key, value.unwrap_or_default()));
            }
            let mut edits: Vec<(String, Option<String>)> = Vec::new();
            while let Some((_, key, value)) = overlay.take_for(doc.id)? {
                edits.push((key, value));
            }
            apply_overlay(&mut doc.tags, &edits);
            each(doc)?;
        }
        Ok(())
    })();
    conn.execute_batch("COMMIT")?;
    result
}

/// An edited key's values replace the scanned ones; a NULL value (the
/// key removed) leaves none.
fn apply_overlay(tags: &mut Vec<(String, String)>, edits: &[(String, Option<String>)]) {
    let mut i = 0;
    while i < edits.len() {
        let key = &edits[i].0;
        tags.retain(|(k, _)| k != key);
        while i < edits.len() && &edits[i].0 == key {
            if let Some(v) = &edits[i].1 {
                tags.push((key.clone(), v.clone()));
            }
            i += 1;
        }
    }
}

type Row3 = (FileId, String, Option<String>);

/// A `(file_id, key, value)` cursor with one row of look-ahead.
struct Peeked<'s> {
    rows: rusqlite::Rows<'s>,
    next: Option<Row3>,
}

impl<'s> Peeked<'s> {
    fn new(rows: rusqlite::Rows<'s>) -> rusqlite::Result<Peeked<'s>> {
        let mut p = Peeked { rows, next: None };
        p.advance()?;
        Ok(p)
    }
    fn advance(&mut self) -> rusqlite::Result<()> {
        self.next = match self.rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
            None => None,
        };
        Ok(())
    }
    /// The next row if it belongs to `id`; rows of files before `id`
    /// (there are none with foreign keys on) are skipped.
    fn take_for(&mut self, id: FileId) -> rusqlite::Result<Option<Row3>> {
        while matches!(&self.next, Some((f, _, _)) if *f < id) {
            self.advance()?;
        }
        match &self.next {
            Some((f, _, _)) if *f == id => {
                let row = self.next.take();
                self.advance()?;
                Ok(row)
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::pairs;

    #[test]
    fn overlay_replaces_and_removes_keys() {
        let mut tags = pairs(&[
            ("artist", "A"),
            ("genre", "Pop"),
            ("artist", "B"),
            ("title", "T"),
        ]);
        apply_overlay(
            &mut tags,
            &[
                ("artist".into(), Some("X".into())),
                ("artist".into(), Some("Y".into())),
                ("genre".into(), None),
            ],
        );
        assert_eq!(
            tags,
            pairs(&[("title", "T"), ("artist", "X"), ("artist", "Y")])
        );
    }

    #[test]
    fn year_from_year_or_date() {
        let doc = |p| SourceDoc {
            tags: pairs(p),
            ..Default::default()
        };
        assert_eq!(doc(&[("date", "1967-06-01")]).year(), Some(1967));
        assert_eq!(
            doc(&[("year", "1999"), ("date", "2001")]).year(),
            Some(1999)
        );
        assert_eq!(doc(&[("year", "99")]).year(), None);
    }
}
