//! Virtual tree sync: brings the `nodes` table in line with the files and a
//! template.
//!
//! The whole job is bulk and in memory, inside the caller's write
//! transaction: stream every file (with its tags) once and render its path,
//! build the wanted tree, load every existing node, then walk both trees from
//! the root together. A wanted entry whose `(parent ino, name)` already exists
//! with the same kind keeps its inode; everything else is inserted (fresh
//! AUTOINCREMENT inodes, never reused) and existing nodes not reached are
//! deleted. So an entry keeps its inode exactly as long as its full virtual
//! path survives, whatever the template.
//!
//! Rendering is cached: `rendered` keeps each file's path for the current
//! template (and musicfs version); `apply_scan` drops a file's entry when
//! the file changes, so a sync after a few live changes renders only those
//! files. A sync when neither files nor template changed returns at once.
//!
//! Collisions: files are placed in `FileId` order, so the oldest file keeps
//! the plain name; a later file whose name is taken (by a file or by a
//! directory) gets ` (xxxxxxxx)` before its extension, the first 8 hex digits
//! of xxh3-64 over its origin id and relative path. The suffix depends only on
//! the file's own identity, so it does not change when other colliding files
//! come and go.
use crate::catalog::{FileId, TreeChanges, ROOT_INO};
use crate::fields::{FileFields, FileInfo};
use crate::synth::TagEdit;
use crate::template::{sanitize_component, with_suffix, MAX_NAME_BYTES as NAME_MAX};
use rusqlite::{params, Connection};
use std::collections::{BTreeSet, HashMap, HashSet};
use xxhash_rust::xxh3::xxh3_64;

/// The `meta` key holding the source of the template the tree was built with.
pub(crate) const META_TEMPLATE: &str = "tree_template";

/// Renders one file to its path components; the last one is the file name
/// (extension already appended), the others directories.
pub(crate) type Render<'a> = dyn FnMut(&FileFields<'_>, &str) -> Vec<String> + 'a;

/// One file, rendered.
struct Placed {
    file_id: FileId,
    origin_id: i64,
    /// Dedup key and the rank (priority, origin id) of the file's origin:
    /// of files sharing a key, only those of the best-ranked origin are placed.
    dup_key: Option<i64>,
    rank: (i64, i64),
    /// xxh3-64 of the file's identity; source of its collision suffix.
    identity: u64,
    ext: String,
    components: Vec<String>,
    size: u64,
    mtime_ns: i64,
}

/// A node of the wanted tree. Directories are created before their children,
/// so a child's index is always greater than its parent's.
struct Wanted {
    name: Vec<u8>,
    parent: usize,
    /// `Some` for files.
    file: Option<FileId>,
    size: u64,
    mtime_ns: i64,
    children: Vec<usize>,
    by_name: HashMap<Vec<u8>, usize>,
}

/// A row of the `nodes` table.
struct Existing {
    ino: u64,
    parent: u64,
    name: Vec<u8>,
    is_dir: bool,
    file_id: Option<FileId>,
    size: u64,
    mtime_ns: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Unseen,
    Kept,
    Deleted,
}

/// `meta` key: a counter bumped by every write to files or tags.
const META_FILES_VERSION: &str = "files_version";
/// `meta` key: the files version the tree was last synced at.
const META_TREE_FILES_VERSION: &str = "tree_files_version";

/// Records that files or tags changed, so the next [`sync`] cannot skip.
/// Every writer of `files` or `tags` calls this in its transaction.
pub(crate) fn files_changed(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
    )?
    .execute([META_FILES_VERSION])
    .map(drop)
}

fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])
    .map(drop)
}

/// `meta` key: what the cached paths in `rendered` were rendered with.
const META_RENDER_KEY: &str = "render_key";

/// What a cached rendered path depends on besides the file: the template
/// and the code that renders it (a new musicfs may render differently).
fn render_key(template_source: &str) -> String {
    format!("{template_source}\n{}", env!("CARGO_PKG_VERSION"))
}

/// Forgets every cached rendered path, so the next [`sync`] renders all
/// files again.
pub(crate) fn forget_rendered(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM rendered", [])?;
    conn.execute(
        "DELETE FROM meta WHERE key IN (?1, ?2)",
        params![META_RENDER_KEY, META_TREE_FILES_VERSION],
    )?;
    Ok(())
}

/// Syncs the tree; `conn` must be inside a write transaction. When neither
/// the files nor the template changed since the last sync, the tree is
/// already right and nothing is read (a rescan that found no change, a
/// daemon start).
pub(crate) fn sync(
    conn: &Connection,
    template_source: &str,
    render: &mut Render<'_>,
) -> rusqlite::Result<TreeChanges> {
    let files_version = get_meta(conn, META_FILES_VERSION)?.unwrap_or_else(|| "0".to_string());
    let key = render_key(template_source);
    let same_render = get_meta(conn, META_RENDER_KEY)?.as_deref() == Some(key.as_str());
    if same_render
        && get_meta(conn, META_TREE_FILES_VERSION)?.as_deref() == Some(files_version.as_str())
    {
        return Ok(TreeChanges::default());
    }
    if !same_render {
        conn.execute("DELETE FROM rendered", [])?;
    }
    let placed = render_all(conn, render)?;
    let wanted = build_wanted(placed);
    let changes = apply(conn, &wanted)?;
    set_meta(conn, META_TEMPLATE, template_source)?;
    set_meta(conn, META_RENDER_KEY, &key)?;
    set_meta(conn, META_TREE_FILES_VERSION, &files_version)?;
    Ok(changes)
}

/// Gives every file its path components: from the `rendered` cache when the
/// file did not change since it was rendered, otherwise by rendering it
/// (and caching the result).
///
/// Tags of the files to render come from one ordered scan of `tags` merged
/// with the files on file id when many files need rendering (a first sync,
/// a template change), or from point queries when few do (live changes).
/// Overlay edits are few: the files that have any are listed once, and
/// only theirs are read, by point query, and merged in.
///
/// A file whose splice is valid for its stamp is shown at the plan's size.
fn render_all(conn: &Connection, render: &mut Render<'_>) -> rusqlite::Result<Vec<Placed>> {
    let (total, missing): (i64, i64) = conn.query_row(
        "SELECT count(*), count(*) - (SELECT count(*) FROM rendered) FROM files",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let bulk_tags = missing * 8 > total;
    let mut files_stmt = conn.prepare(
        "SELECT f.id, f.origin_id, f.rel_path, f.size, f.mtime_ns, f.format, f.duration_ms,
                f.bitrate, f.sample_rate, f.channels, f.bit_depth, r.path, f.dup_key, o.priority,
                CASE WHEN s.size = f.size AND s.mtime_ns = f.mtime_ns THEN s.served_size END
         FROM files f LEFT JOIN rendered r ON r.file_id = f.id
              JOIN origins o ON o.id = f.origin_id
              LEFT JOIN splices s ON s.file_id = f.id
         ORDER BY f.id",
    )?;
    let edited: HashSet<FileId> = conn
        .prepare("SELECT DISTINCT file_id FROM overlay")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tags_scan =
        conn.prepare("SELECT file_id, key, value FROM tags ORDER BY file_id, idx")?;
    let mut tags_of =
        conn.prepare("SELECT key, value FROM tags WHERE file_id = ?1 ORDER BY idx")?;
    let mut tag_rows = if bulk_tags {
        Some(tags_scan.query([])?)
    } else {
        None
    };
    let mut pending_tag: Option<(FileId, String, String)> = None;
    let mut placed = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut newly_rendered = Vec::new();
    let mut file_rows = files_stmt.query([])?;
    while let Some(row) = file_rows.next()? {
        let info = FileInfo {
            id: row.get(0)?,
            origin_id: row.get(1)?,
            rel_path: row.get(2)?,
            size: row.get::<_, i64>(3)?.max(0) as u64,
            mtime_ns: row.get(4)?,
            format: row.get(5)?,
            duration_ms: row.get::<_, i64>(6)?.max(0) as u64,
            bitrate: row.get(7)?,
            sample_rate: row.get(8)?,
            channels: row.get(9)?,
            bit_depth: row.get(10)?,
        };
        let ext = info.ext();
        let cached = row
            .get::<_, Option<Vec<u8>>>(11)?
            .and_then(|path| String::from_utf8(path).ok())
            .map(|path| path.split('/').map(str::to_string).collect::<Vec<_>>())
            .filter(|components| components.iter().all(|c| is_valid_name(c)));
        let components = match cached {
            Some(components) => components,
            None => {
                let mut tags = match &mut tag_rows {
                    Some(rows) => merge_tags(rows, &mut pending_tag, info.id)?,
                    None => tags_of
                        .query_map([info.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                };
                if edited.contains(&info.id) {
                    tags = merge_overlay(tags, &overlay_edits(conn, info.id)?);
                }
                let components = render_one(&info, &tags, &ext, render);
                newly_rendered.push((info.id, components.join("/")));
                components
            }
        };
        let mut identity_src = info.origin_id.to_le_bytes().to_vec();
        identity_src.extend_from_slice(&info.rel_path);
        let dup_key: Option<i64> = row.get(12)?;
        let priority: i64 = row.get(13)?;
        // A splice computed from other bytes than the file's now is stale:
        // the original is served as it is until the plan is redone.
        let served_size = row
            .get::<_, Option<i64>>(14)?
            .map_or(info.size, |s| s.max(0) as u64);
        placed.push(Placed {
            file_id: info.id,
            origin_id: info.origin_id,
            dup_key,
            rank: (priority, info.origin_id),
            identity: xxh3_64(&identity_src),
            ext,
            components,
            size: served_size,
            mtime_ns: info.mtime_ns,
        });
    }
    drop(file_rows);
    drop(tag_rows);
    // Written after the scan: a statement should not read a table that is
    // being changed under it.
    let mut cache = conn.prepare(
        "INSERT INTO rendered (file_id, path) VALUES (?1, ?2)
         ON CONFLICT (file_id) DO UPDATE SET path = excluded.path",
    )?;
    for (id, path) in newly_rendered {
        cache.execute(params![id, path.as_bytes()])?;
    }
    Ok(dedup_across_origins(placed))
}

/// Federation: a track held by several origins (same dedup key, see
/// `identity.rs`) is placed once, from the best-ranked origin (lowest
/// priority, then oldest origin); copies inside that one origin all stay.
fn dedup_across_origins(mut placed: Vec<Placed>) -> Vec<Placed> {
    let mut best: HashMap<i64, (i64, i64)> = HashMap::new();
    for p in &placed {
        if let Some(key) = p.dup_key {
            best.entry(key)
                .and_modify(|r| *r = (*r).min(p.rank))
                .or_insert(p.rank);
        }
    }
    placed.retain(|p| match p.dup_key {
        Some(key) => best.get(&key).is_none_or(|r| r.1 == p.origin_id),
        None => true,
    });
    placed
}

/// The tags of file `id` from the ordered tag scan `rows`; `pending` holds
/// the row read past the previous file. Rows of files that need no
/// rendering are skipped after decoding only their file id.
fn merge_tags(
    rows: &mut rusqlite::Rows<'_>,
    pending: &mut Option<(FileId, String, String)>,
    id: FileId,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    if let Some((pid, key, value)) = pending.take() {
        if pid > id {
            *pending = Some((pid, key, value));
            return Ok(tags);
        }
        if pid == id {
            tags.push((key, value));
        }
    }
    while let Some(t) = rows.next()? {
        let tid: FileId = t.get(0)?;
        if tid < id {
            continue;
        }
        let tag = (t.get(1)?, t.get(2)?);
        if tid == id {
            tags.push(tag);
        } else {
            *pending = Some((tid, tag.0, tag.1));
            break;
        }
    }
    Ok(tags)
}

/// A file's overlay edits, by key (a removed key has no values).
pub(crate) fn overlay_edits(conn: &Connection, id: FileId) -> rusqlite::Result<Vec<TagEdit>> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value FROM overlay WHERE file_id = ?1 ORDER BY key, idx")?;
    let mut rows = stmt.query([id])?;
    let mut edits: Vec<TagEdit> = Vec::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let value: Option<String> = row.get(1)?;
        if edits.last().is_none_or(|e| e.key != key) {
            edits.push(TagEdit {
                key,
                values: Vec::new(),
            });
        }
        if let (Some(value), Some(edit)) = (value, edits.last_mut()) {
            edit.values.push(value);
        }
    }
    Ok(edits)
}

/// Scanned tags with `edits` applied: an edited key's values take the
/// place of its first scanned value (its later ones go), a removed key is
/// gone, and keys the file did not have follow in the edits' order. The
/// order of everything else is kept, so a rendered path only changes
/// where a tag did.
pub(crate) fn merge_overlay(
    scanned: Vec<(String, String)>,
    edits: &[TagEdit],
) -> Vec<(String, String)> {
    if edits.is_empty() {
        return scanned;
    }
    let edit_of = |key: &str| edits.iter().find(|e| e.key == key);
    let mut placed: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(scanned.len() + edits.len());
    for (key, value) in scanned {
        match edit_of(&key) {
            None => out.push((key, value)),
            Some(edit) => {
                if placed.insert(edit.key.as_str()) {
                    out.extend(edit.values.iter().map(|v| (edit.key.clone(), v.clone())));
                }
            }
        }
    }
    for edit in edits {
        if placed.insert(edit.key.as_str()) {
            out.extend(edit.values.iter().map(|v| (edit.key.clone(), v.clone())));
        }
    }
    out
}

/// Renders one file, re-checking every component: the template engine
/// sanitises, but the tree is what the kernel is told, whatever renders.
fn render_one(
    info: &FileInfo,
    tags: &[(String, String)],
    ext: &str,
    render: &mut Render<'_>,
) -> Vec<String> {
    let mut components = render(&FileFields { info, tags }, ext);
    if components.is_empty() {
        // A template engine never returns nothing, but a file must land somewhere.
        components.push(info.filename());
    }
    for c in &mut components {
        if !is_valid_name(c) {
            *c = sanitize_component(c, "_");
        }
    }
    components
}

/// A name the kernel can be given: not empty, `.` or `..`, no `/` or NUL,
/// at most 255 bytes.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= NAME_MAX
        && !name.bytes().any(|b| b == b'/' || b == 0)
}

/// Builds the wanted tree (index 0 is the root). Directories first, then
/// files in id order, so a file never takes a name a directory needs and the
/// oldest file of a collision keeps the plain name.
fn build_wanted(placed: Vec<Placed>) -> Vec<Wanted> {
    let mut tree = vec![Wanted::dir(Vec::new(), 0)];
    let mut file_parents = Vec::with_capacity(placed.len());
    for p in &placed {
        let mut at = 0;
        for comp in &p.components[..p.components.len() - 1] {
            at = match tree[at].by_name.get(comp.as_bytes()) {
                Some(&child) => child,
                None => {
                    let child = tree.len();
                    tree.push(Wanted::dir(comp.as_bytes().to_vec(), at));
                    tree[at].by_name.insert(comp.as_bytes().to_vec(), child);
                    tree[at].children.push(child);
                    child
                }
            };
        }
        file_parents.push(at);
    }
    for (p, parent) in placed.into_iter().zip(file_parents) {
        let plain = p.components.last().map(String::as_str).unwrap_or_default();
        let mut name = plain.to_string();
        let mut attempt = 0u32;
        while tree[parent].by_name.contains_key(name.as_bytes()) {
            attempt += 1;
            name = suffixed(plain, &p.ext, p.identity, attempt);
        }
        let child = tree.len();
        tree.push(Wanted {
            name: name.clone().into_bytes(),
            parent,
            file: Some(p.file_id),
            size: p.size,
            mtime_ns: p.mtime_ns,
            children: Vec::new(),
            by_name: HashMap::new(),
        });
        tree[parent].by_name.insert(name.into_bytes(), child);
        tree[parent].children.push(child);
    }
    // A directory's mtime is the newest below it; children come after
    // parents, so one pass from the end settles every level.
    for i in (1..tree.len()).rev() {
        let (parent, mtime) = (tree[i].parent, tree[i].mtime_ns);
        if tree[parent].mtime_ns < mtime {
            tree[parent].mtime_ns = mtime;
        }
    }
    for node in &mut tree {
        node.by_name = HashMap::new();
    }
    // New inodes are handed out in walk order; by name gives a tidy readdir
    // order to programs that do not sort.
    for i in 0..tree.len() {
        let mut children = std::mem::take(&mut tree[i].children);
        children.sort_by(|&a, &b| tree[a].name.cmp(&tree[b].name));
        tree[i].children = children;
    }
    tree
}

/// The name a colliding file tries at its `attempt`th go: the first 8 hex
/// digits of its identity hash, then all 16, then 16 and a counter (only if
/// two identities share a full 64-bit hash).
fn suffixed(plain: &str, ext: &str, identity: u64, attempt: u32) -> String {
    let tag = match attempt {
        0 | 1 => format!("{:08x}", identity >> 32),
        2 => format!("{identity:016x}"),
        n => format!("{identity:016x}-{n}"),
    };
    with_suffix(plain, ext, &format!(" ({tag})"))
}

impl Wanted {
    fn dir(name: Vec<u8>, parent: usize) -> Wanted {
        Wanted {
            name,
            parent,
            file: None,
            size: 0,
            mtime_ns: 0,
            children: Vec::new(),
            by_name: HashMap::new(),
        }
    }
}

/// Diffs the wanted tree against the `nodes` table and writes the difference.
fn apply(conn: &Connection, wanted: &[Wanted]) -> rusqlite::Result<TreeChanges> {
    let mut existing = Vec::new();
    {
        let mut stmt =
            conn.prepare("SELECT ino, parent, name, kind, file_id, size, mtime_ns FROM nodes")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            existing.push(Existing {
                ino: row.get::<_, i64>(0)? as u64,
                parent: row.get::<_, i64>(1)? as u64,
                name: row.get(2)?,
                is_dir: row.get::<_, i64>(3)? == 0,
                file_id: row.get(4)?,
                size: row.get::<_, i64>(5)?.max(0) as u64,
                mtime_ns: row.get(6)?,
            });
        }
    }
    let mut index: HashMap<(u64, &[u8]), usize> = HashMap::with_capacity(existing.len());
    let mut root = None;
    for (i, e) in existing.iter().enumerate() {
        if e.ino == ROOT_INO {
            root = Some(i);
        } else {
            index.insert((e.parent, &e.name[..]), i);
        }
    }
    let mut fate = vec![Fate::Unseen; existing.len()];
    let mut changes = TreeChanges::default();
    let mut dirs_changed = BTreeSet::new();

    let mut insert = conn.prepare(
        "INSERT INTO nodes (parent, name, kind, file_id, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut update =
        conn.prepare("UPDATE nodes SET file_id = ?2, size = ?3, mtime_ns = ?4 WHERE ino = ?1")?;
    let mut delete = conn.prepare("DELETE FROM nodes WHERE ino = ?1")?;

    // The root always exists (created by the schema); only its mtime moves.
    match root {
        Some(r) => {
            fate[r] = Fate::Kept;
            if existing[r].mtime_ns != wanted[0].mtime_ns {
                update.execute(params![
                    ROOT_INO as i64,
                    None::<i64>,
                    0i64,
                    wanted[0].mtime_ns
                ])?;
                changes.modified.push(ROOT_INO);
            }
        }
        None => {
            conn.execute(
                "INSERT INTO nodes (ino, parent, name, kind, mtime_ns) VALUES (?1, 0, x'', 0, ?2)",
                params![ROOT_INO as i64, wanted[0].mtime_ns],
            )?;
        }
    }

    let mut stack = vec![(0usize, ROOT_INO)];
    while let Some((dir, dir_ino)) = stack.pop() {
        for &c in &wanted[dir].children {
            let w = &wanted[c];
            let is_dir = w.file.is_none();
            if let Some(&e) = index.get(&(dir_ino, &w.name[..])) {
                let old = &existing[e];
                if old.is_dir == is_dir {
                    fate[e] = Fate::Kept;
                    if old.file_id != w.file || old.size != w.size || old.mtime_ns != w.mtime_ns {
                        update.execute(params![
                            old.ino as i64,
                            w.file,
                            w.size as i64,
                            w.mtime_ns
                        ])?;
                        changes.modified.push(old.ino);
                    }
                    if is_dir {
                        stack.push((c, old.ino));
                    }
                    continue;
                }
                // Same name, other kind: the old entry must go before the
                // new one can take the name.
                delete.execute(params![old.ino as i64])?;
                fate[e] = Fate::Deleted;
                changes.removed.push((old.parent, old.name.clone()));
            }
            insert.execute(params![
                dir_ino as i64,
                &w.name[..],
                if is_dir { 0i64 } else { 1i64 },
                w.file,
                w.size as i64,
                w.mtime_ns
            ])?;
            let ino = conn.last_insert_rowid() as u64;
            changes.added += 1;
            dirs_changed.insert(dir_ino);
            if is_dir {
                stack.push((c, ino));
            }
        }
    }

    let kept_dirs: BTreeSet<u64> = existing
        .iter()
        .zip(&fate)
        .filter(|(e, f)| e.is_dir && **f == Fate::Kept)
        .map(|(e, _)| e.ino)
        .collect();
    for (e, f) in existing.iter().zip(&fate) {
        if *f != Fate::Unseen {
            continue;
        }
        delete.execute(params![e.ino as i64])?;
        changes.removed.push((e.parent, e.name.clone()));
        if kept_dirs.contains(&e.parent) {
            dirs_changed.insert(e.parent);
        }
    }
    changes.dirs_changed = dirs_changed.into_iter().collect();
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::pairs;

    #[test]
    fn overlay_replaces_in_place_removes_and_appends() {
        let scanned = pairs(&[
            ("artist", "A"),
            ("genre", "Rock"),
            ("title", "T"),
            ("genre", "Pop"),
            ("comment", "c"),
        ]);
        let edit = |k: &str, v: &[&str]| TagEdit {
            key: k.into(),
            values: v.iter().map(|s| s.to_string()).collect(),
        };
        let got = merge_overlay(
            scanned.clone(),
            &[
                edit("comment", &[]),
                edit("genre", &["Jazz"]),
                edit("mood", &["calm", "slow"]),
            ],
        );
        assert_eq!(
            got,
            pairs(&[
                ("artist", "A"),
                ("genre", "Jazz"),
                ("title", "T"),
                ("mood", "calm"),
                ("mood", "slow"),
            ])
        );
        assert_eq!(merge_overlay(scanned.clone(), &[]), scanned);
    }

    #[test]
    fn name_validity() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert!(!is_valid_name(&"x".repeat(256)));
        for good in ["a", "...", ".hidden", "é", &"x".repeat(255)] {
            assert!(is_valid_name(good), "{good:?}");
        }
    }

    #[test]
    fn suffix_goes_before_extension_within_name_max() {
        assert_eq!(
            suffixed("Title.flac", "flac", 0x3f2a_9c1b_0000_0000, 1),
            "Title (3f2a9c1b).flac"
        );
        assert_eq!(
            suffixed("Title", "", 0x3f2a_9c1b_0000_0000, 1),
            "Title (3f2a9c1b)"
        );
        assert_eq!(suffixed("T.mp3", "mp3", 0x1, 2), "T (0000000000000001).mp3");
        assert_eq!(
            suffixed("T.mp3", "mp3", 0x1, 3),
            "T (0000000000000001-3).mp3"
        );
        let long = format!("{}.flac", "é".repeat(125)); // 250 + 5 bytes
        let out = suffixed(&long, "flac", u64::MAX, 1);
        assert!(out.len() <= NAME_MAX, "{} bytes", out.len());
        assert!(out.ends_with("é (ffffffff).flac"), "{out}");
    }
}
