//! Overlay edits and splice plans: tags edited in the catalog (never in
//! the origin file) and the synthesized layout the file is served with.
//!
//! - `overlay`: per file and canonical key, the values the key is served
//!   with (none = the key is removed from the served file).
//! - `splices`: per edited file, the encoded [`Plan`] and the stamp of the
//!   original it was computed from; valid only while the file's stamp is
//!   the same. The tree shows a file with a valid splice at the plan's size.
//!
//! Every write here changes what the tree shows (a path rendered from the
//! tags, a node's size), so each drops the file's cached rendered path and
//! bumps the files version in the same transaction: the next tree sync
//! cannot skip, and renders just the files touched.
//!
//! A plan is computed from a set of edits; any change to the edits drops
//! the file's splice, so [`Catalog::files_needing_splice`] finds the file
//! again instead of serving a layout of the old tags.
use super::{to_sql_u64, Catalog, FileId, Stamp, ROOT_INO};
use crate::beets::CatalogEntry;
use crate::synth::{Plan, TagEdit};
use crate::tree;
use crate::Result;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};

/// Drops what was derived from a file's overlay (its rendered path and its
/// splice) and makes the next tree sync look at it again.
fn overlay_changed(conn: &Connection, id: FileId) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM rendered WHERE file_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM splices WHERE file_id = ?1")?
        .execute([id])?;
    tree::files_changed(conn)
}

/// The stored rows of one key, in order (`None` = removed).
fn key_rows(conn: &Connection, id: FileId, key: &str) -> rusqlite::Result<Vec<Option<String>>> {
    let mut stmt = conn
        .prepare_cached("SELECT value FROM overlay WHERE file_id = ?1 AND key = ?2 ORDER BY idx")?;
    let rows = stmt.query_map(params![id, key], |r| r.get(0))?;
    rows.collect()
}

/// How an edit is stored: its values in order, or one NULL for a removal.
fn rows_of(edit: &TagEdit) -> Vec<Option<String>> {
    if edit.values.is_empty() {
        vec![None]
    } else {
        edit.values.iter().cloned().map(Some).collect()
    }
}

impl Catalog {
    /// Applies `edits` to a file's overlay: each key given replaces that
    /// key's earlier edit. Keys not given keep their edits.
    ///
    /// Giving a key the edit it already has changes nothing (the file's
    /// splice stays valid), so repeating an import is free.
    pub fn set_overlay(&self, id: FileId, edits: &[TagEdit]) -> Result<()> {
        self.write(|c| {
            let mut changed = false;
            for edit in edits {
                let wanted = rows_of(edit);
                if key_rows(c, id, &edit.key)? == wanted {
                    continue;
                }
                changed = true;
                c.prepare_cached("DELETE FROM overlay WHERE file_id = ?1 AND key = ?2")?
                    .execute(params![id, edit.key])?;
                let mut add = c.prepare_cached(
                    "INSERT INTO overlay (file_id, key, idx, value) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (idx, value) in wanted.iter().enumerate() {
                    add.execute(params![id, edit.key, idx as i64, value])?;
                }
            }
            if changed {
                overlay_changed(c, id)?;
            }
            Ok(())
        })
    }

    /// Drops a file's overlay edits of `keys` (all when empty) and, when
    /// none is left, its splice. True when something was dropped.
    ///
    /// When some edits are left the splice is dropped too: it was laid
    /// out for the old set of edits and must be computed again.
    pub fn reset_overlay(&self, id: FileId, keys: &[String]) -> Result<bool> {
        self.write(|c| {
            let dropped = if keys.is_empty() {
                c.prepare_cached("DELETE FROM overlay WHERE file_id = ?1")?
                    .execute([id])?
            } else {
                let mut stmt =
                    c.prepare_cached("DELETE FROM overlay WHERE file_id = ?1 AND key = ?2")?;
                let mut n = 0;
                for key in keys {
                    n += stmt.execute(params![id, key])?;
                }
                n
            };
            if dropped > 0 {
                overlay_changed(c, id)?;
            }
            Ok(dropped > 0)
        })
    }

    /// A file's overlay edits, by key.
    pub fn overlay(&self, id: FileId) -> Result<Vec<TagEdit>> {
        self.read(|c| tree::overlay_edits(c, id))
    }

    /// A file's tags as served: scanned tags with the overlay applied. An
    /// edited key takes the place of its first scanned value (its other
    /// scanned values go), a removed key is gone, keys the file did not
    /// have come last in key order.
    pub fn effective_tags(&self, id: FileId) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let tags = c
                .prepare_cached("SELECT key, value FROM tags WHERE file_id = ?1 ORDER BY idx")?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let edits = tree::overlay_edits(c, id)?;
            Ok(tree::merge_overlay(tags, &edits))
        })
    }

    /// Records the plan a file is served with, computed from the original
    /// with stamp `stamp`.
    pub fn set_splice(&self, id: FileId, stamp: Stamp, plan: &Plan) -> Result<()> {
        let encoded = plan.encode();
        self.write(|c| {
            c.prepare_cached(
                "INSERT INTO splices (file_id, size, mtime_ns, served_size, plan)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (file_id) DO UPDATE SET size = excluded.size,
                    mtime_ns = excluded.mtime_ns, served_size = excluded.served_size,
                    plan = excluded.plan",
            )?
            .execute(params![
                id,
                to_sql_u64(stamp.size),
                stamp.mtime_ns,
                to_sql_u64(plan.len()),
                encoded
            ])?;
            // The node's size changes with the plan; the path does not.
            tree::files_changed(c)
        })
    }

    /// The plan a file is served with, if it has one valid for its
    /// current stamp.
    pub fn splice(&self, id: FileId) -> Result<Option<Plan>> {
        let encoded: Option<Vec<u8>> = self.read(|c| {
            c.prepare_cached(
                "SELECT s.plan FROM splices s JOIN files f ON f.id = s.file_id
                 WHERE s.file_id = ?1 AND s.size = f.size AND s.mtime_ns = f.mtime_ns",
            )?
            .query_row([id], |r| r.get(0))
            .optional()
        })?;
        encoded.map(|bytes| Plan::decode(&bytes)).transpose()
    }

    /// Files with overlay edits but no valid splice (new edits, or the
    /// original changed since): the daemon computes their plans.
    pub fn files_needing_splice(&self) -> Result<Vec<FileId>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT DISTINCT o.file_id FROM overlay o
                   JOIN files f ON f.id = o.file_id
                   LEFT JOIN splices s ON s.file_id = o.file_id
                        AND s.size = f.size AND s.mtime_ns = f.mtime_ns
                 WHERE s.file_id IS NULL
                 ORDER BY o.file_id",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }
    /// Every catalogued file as served (effective tags, served size,
    /// virtual path), in file id order: what an export lists. One read
    /// snapshot, bulk scans; the overlay is read only for edited files.
    pub fn served_files(&self) -> Result<Vec<CatalogEntry>> {
        self.read(|c| {
            // Virtual paths: every node once, then each file's path by
            // walking up in memory.
            let mut nodes: HashMap<i64, (i64, Vec<u8>)> = HashMap::new();
            let mut node_of_file: HashMap<FileId, i64> = HashMap::new();
            {
                let mut stmt =
                    c.prepare("SELECT ino, parent, name, file_id FROM nodes ORDER BY ino")?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let ino: i64 = r.get(0)?;
                    nodes.insert(ino, (r.get(1)?, r.get(2)?));
                    if let Some(file) = r.get::<_, Option<FileId>>(3)? {
                        node_of_file.entry(file).or_insert(ino);
                    }
                }
            }
            let path_of = |mut ino: i64| -> Option<Vec<u8>> {
                let mut parts = Vec::new();
                while ino != ROOT_INO as i64 {
                    let (parent, name) = nodes.get(&ino)?;
                    // A corrupt catalog must not loop forever.
                    if parts.len() > 4096 {
                        return None;
                    }
                    parts.push(name.as_slice());
                    ino = *parent;
                }
                parts.reverse();
                Some(parts.join(&b'/'))
            };
            let edited: HashSet<FileId> = c
                .prepare("SELECT DISTINCT file_id FROM overlay")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out: Vec<CatalogEntry> = Vec::new();
            let mut index: HashMap<FileId, usize> = HashMap::new();
            {
                let mut stmt = c.prepare(
                    "SELECT f.id, o.name, f.rel_path, f.format, f.duration_ms,
                            CASE WHEN s.size = f.size AND s.mtime_ns = f.mtime_ns
                                 THEN s.served_size ELSE f.size END
                     FROM files f JOIN origins o ON o.id = f.origin_id
                          LEFT JOIN splices s ON s.file_id = f.id
                     ORDER BY f.id",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let file: FileId = r.get(0)?;
                    index.insert(file, out.len());
                    out.push(CatalogEntry {
                        file,
                        virtual_path: node_of_file.get(&file).and_then(|&ino| path_of(ino)),
                        origin: r.get(1)?,
                        origin_path: r.get(2)?,
                        format: r.get(3)?,
                        duration_ms: r.get::<_, i64>(4)?.max(0) as u64,
                        size: r.get::<_, i64>(5)?.max(0) as u64,
                        tags: Vec::new(),
                    });
                }
            }
            {
                let mut stmt =
                    c.prepare("SELECT file_id, key, value FROM tags ORDER BY file_id, idx")?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    if let Some(&i) = index.get(&r.get::<_, FileId>(0)?) {
                        out[i].tags.push((r.get(1)?, r.get(2)?));
                    }
                }
            }
            for entry in &mut out {
                if edited.contains(&entry.file) {
                    let edits = tree::overlay_edits(c, entry.file)?;
                    entry.tags = tree::merge_overlay(std::mem::take(&mut entry.tags), &edits);
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests;
