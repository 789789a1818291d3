//! The catalog: the one owner of the SQLite database.
//!
//! Concurrency: FUSE calls arrive on many threads at once. Reads check out a
//! read-only connection from a small pool (WAL lets them run beside the
//! writer) and use cached prepared statements, so a `node()` or `lookup()`
//! costs a mutex, a B-tree probe and no SQL parsing. All writes go through
//! one connection behind a mutex; SQLite allows one writer at a time anyway,
//! so queueing here instead of in `busy_timeout` keeps write latency
//! predictable.
//!
//! Snapshot reuse: starting and ending a WAL read transaction costs two
//! `fcntl`s and a WAL-index check, about three times the lookup itself. So a
//! pooled connection keeps its read transaction open between calls and
//! starts a fresh one only when this catalog has committed a write since
//! (a generation counter), or when the snapshot is older than
//! [`MAX_SNAPSHOT_AGE`] (bounding how stale a write by another process can
//! look). After each commit the writer also ends the snapshots of idle
//! pooled connections, so they never hold back a WAL checkpoint. Every read
//! sees every write this `Catalog` finished before the read began.
use crate::scan::{AudioProps, ScannedFile};
use crate::schema;
use crate::template::Template;
use crate::tree;
use crate::{Error, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Inode number of the root directory of the virtual tree.
pub const ROOT_INO: u64 = 1;

pub type OriginId = i64;
pub type FileId = i64;

/// Size and mtime of a file as last seen; a rescan rereads a file only when
/// its stamp changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
}

#[derive(Debug, Clone)]
pub struct OriginRow {
    pub id: OriginId,
    pub name: String,
    pub kind: String,
    pub location: String,
    pub files: u64,
    pub scan_errors: u64,
    /// Unix seconds of the end of the last completed scan, if any.
    pub last_scan: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
}

/// One entry of the virtual tree. `ino` is the FUSE inode number: stable as
/// long as the entry keeps its virtual path, never reused (AUTOINCREMENT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub ino: u64,
    pub parent: u64,
    /// Sanitised path component (never empty except for the root, no `/`, no NUL, ≤ 255 bytes).
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// For files: the catalog file behind it.
    pub file_id: Option<FileId>,
    /// Files: the exact size of the served bytes. Dirs: 0.
    pub size: u64,
    /// Files: the file's mtime. Dirs: the newest mtime below them (stable between changes).
    pub mtime_ns: i64,
}

/// Everything the read path needs to know about a catalogued file.
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub id: FileId,
    pub origin_id: OriginId,
    pub rel_path: Vec<u8>,
    pub stamp: Stamp,
    /// Lower-case container name: "flac", "mp3", "ogg", "opus", "m4a", "wav", "aiff", "wv", "ape", ...
    pub format: String,
    pub audio_offset: u64,
    pub audio_length: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub origins: u64,
    pub files: u64,
    pub dirs: u64,
    pub scan_errors: u64,
}

#[derive(Debug, Clone)]
pub struct ScanErrorRow {
    pub origin: String,
    pub rel_path: Vec<u8>,
    pub message: String,
    /// Unix seconds.
    pub at: i64,
}

/// What a tree sync changed, so the FUSE layer can invalidate kernel caches.
#[derive(Debug, Clone, Default)]
pub struct TreeChanges {
    /// `(parent ino, name)` of entries removed or renamed away.
    pub removed: Vec<(u64, Vec<u8>)>,
    /// Inodes kept whose size or mtime changed (page cache must be dropped).
    pub modified: Vec<u64>,
    /// Directories whose listing changed.
    pub dirs_changed: Vec<u64>,
    pub added: u64,
}

/// Idle read-only connections kept for reuse. More concurrent readers than
/// this still work: extra connections are opened on demand and closed after.
const MAX_IDLE_READERS: usize = 8;

/// The oldest snapshot a read may be answered from when this process has not
/// written meanwhile; only writes by other processes can be missed that long.
const MAX_SNAPSHOT_AGE: Duration = Duration::from_millis(100);

/// How long a connection waits for a lock held by another process (a
/// `musicfs scan` beside a mounted daemon) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `SELECT <node columns> FROM nodes <rest>` as a literal, so hot-path
/// statements are found in the statement cache without formatting a string.
macro_rules! select_nodes {
    ($rest:literal) => {
        concat!(
            "SELECT ino, parent, name, kind, file_id, size, mtime_ns FROM nodes ",
            $rest
        )
    };
}

/// A pooled read-only connection and the read transaction it may hold open.
struct Reader {
    conn: Connection,
    /// Writer generation when the open read transaction began, and when.
    snapshot: Option<(u64, Instant)>,
}

impl Reader {
    fn end_snapshot(&mut self) -> rusqlite::Result<()> {
        if self.snapshot.is_some() {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            self.snapshot = None;
        }
        Ok(())
    }

    /// Makes sure a read transaction no older than `generation` is open.
    fn fresh_snapshot(&mut self, generation: u64) -> rusqlite::Result<()> {
        if let Some((seen, since)) = self.snapshot {
            if seen == generation && since.elapsed() < MAX_SNAPSHOT_AGE {
                return Ok(());
            }
            self.end_snapshot()?;
        }
        // Deferred: the WAL snapshot is taken by the first SELECT, which
        // runs after `generation` was read, so it is at least that new.
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        self.snapshot = Some((generation, Instant::now()));
        Ok(())
    }
}

/// The catalog database. Cheap to share (`Arc<Catalog>`), `Send + Sync`.
pub struct Catalog {
    path: PathBuf,
    /// `path` as text, for error context.
    display: String,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Reader>>,
    /// Bumped after every committed write; see the module docs.
    generation: AtomicU64,
}

/// Locks a mutex whether or not a thread panicked while holding it: a
/// connection stays usable (an unfinished transaction rolls back when it is
/// dropped), and the pool is only a `Vec`.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// SQLite integers are signed; sizes and inode numbers never reach 2^63, and
/// an out-of-range inode from the kernel simply matches no row.
fn to_sql_u64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn node_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Node> {
    let ino = row.get::<_, i64>(0)? as u64;
    let parent = row.get::<_, i64>(1)? as u64;
    Ok(Node {
        ino,
        // The root is its own parent, as FUSE expects for "..".
        parent: if ino == ROOT_INO { ROOT_INO } else { parent },
        name: row.get(2)?,
        kind: if row.get::<_, i64>(3)? == 0 {
            NodeKind::Dir
        } else {
            NodeKind::File
        },
        file_id: row.get(4)?,
        size: row.get::<_, i64>(5)?.max(0) as u64,
        mtime_ns: row.get(6)?,
    })
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`, WAL mode, and runs
    /// migrations. Reads nothing but the schema version: cheap at mount.
    pub fn open(path: &Path) -> Result<Catalog> {
        let display = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                context: format!("creating catalog directory {}", dir.display()),
                source,
            })?;
        }
        let sql_err = |source| Error::Sqlite {
            path: display.clone(),
            source,
        };
        let mut writer = Connection::open(path).map_err(sql_err)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
        // journal_mode answers with a row, so it cannot go through pragma_update.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "catalog is not in WAL mode; readers will block on writes");
        }
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        writer
            .pragma_update(None, "foreign_keys", true)
            .map_err(sql_err)?;
        // A full tree rebuild writes tens of MB of WAL; once checkpointed,
        // give the space back instead of keeping the file at its peak.
        writer
            .pragma_update(None, "journal_size_limit", 32 * 1024 * 1024)
            .map_err(sql_err)?;
        schema::migrate(&mut writer, &display)?;
        Ok(Catalog {
            path: path.to_path_buf(),
            display,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        })
    }

    /// Where the catalog lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql_err(&self, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.display.clone(),
            source,
        }
    }

    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Runs `f` on a pooled read-only connection, inside a read transaction
    /// that includes every write this catalog committed before the call.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let pooled = lock(&self.readers).pop();
        let mut reader = match pooled {
            Some(reader) => reader,
            None => Reader {
                conn: self.open_reader().map_err(|e| self.sql_err(e))?,
                snapshot: None,
            },
        };
        let generation = self.generation.load(Ordering::Acquire);
        let result = reader
            .fresh_snapshot(generation)
            .and_then(|()| f(&reader.conn));
        match result {
            Ok(value) => {
                let mut pool = lock(&self.readers);
                if pool.len() < MAX_IDLE_READERS {
                    pool.push(reader);
                }
                Ok(value)
            }
            // The connection's state is unknown; dropping it rolls back
            // whatever it held, and the pool opens a new one when needed.
            Err(e) => Err(self.sql_err(e)),
        }
    }

    /// Runs `f` inside one write transaction (BEGIN IMMEDIATE: the write
    /// lock is taken up front, so the transaction cannot fail half way for
    /// lack of it). Commits if `f` succeeds, rolls back otherwise.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql_err(e))?;
        let value = f(&tx).map_err(|e| self.sql_err(e))?;
        tx.commit().map_err(|e| self.sql_err(e))?;
        self.generation.fetch_add(1, Ordering::Release);
        // Idle readers would otherwise keep their old snapshots (and pin the
        // WAL) until next used; busy ones see the new generation on return.
        for reader in lock(&self.readers).iter_mut() {
            if let Err(e) = reader.end_snapshot() {
                tracing::warn!(error = %e, "ending a catalog read snapshot");
            }
        }
        Ok(value)
    }

    // ---- origins ----
    /// The id of the origin named `name`, creating or updating its row.
    pub fn ensure_origin(&self, name: &str, kind: &str, location: &str) -> Result<OriginId> {
        self.write(|c| {
            c.query_row(
                "INSERT INTO origins (name, kind, location) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, location = excluded.location
                 RETURNING id",
                params![name, kind, location],
                |r| r.get(0),
            )
        })
    }
    pub fn origins(&self) -> Result<Vec<OriginRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT o.id, o.name, o.kind, o.location, o.last_scan,
                        (SELECT count(*) FROM files f WHERE f.origin_id = o.id),
                        (SELECT count(*) FROM scan_errors e WHERE e.origin_id = o.id)
                 FROM origins o ORDER BY o.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(OriginRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    kind: r.get(2)?,
                    location: r.get(3)?,
                    last_scan: r.get(4)?,
                    files: r.get::<_, i64>(5)? as u64,
                    scan_errors: r.get::<_, i64>(6)? as u64,
                })
            })?;
            rows.collect()
        })
    }
    /// Records that a full scan of the origin finished now.
    pub fn mark_scanned(&self, origin: OriginId) -> Result<()> {
        self.write(|c| {
            c.execute(
                "UPDATE origins SET last_scan = ?2 WHERE id = ?1",
                params![origin, now_unix()],
            )
            .map(drop)
        })
    }

    // ---- scanning (writers) ----
    /// Stamps of every known path of the origin, catalogued files and recorded
    /// scan errors alike, so unchanged files (good or bad) are not reread.
    pub fn stamps(&self, origin: OriginId) -> Result<HashMap<Vec<u8>, Stamp>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT rel_path, size, mtime_ns FROM files WHERE origin_id = ?1
                 UNION ALL
                 SELECT rel_path, size, mtime_ns FROM scan_errors WHERE origin_id = ?1",
            )?;
            let mut rows = stmt.query([origin])?;
            let mut out = HashMap::new();
            while let Some(r) = rows.next()? {
                let stamp = Stamp {
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    mtime_ns: r.get(2)?,
                };
                out.insert(r.get(0)?, stamp);
            }
            Ok(out)
        })
    }
    /// Applies a batch of scan results in one transaction. `upserts` replace
    /// the file's row, tags and properties (keeping its `FileId`) and clear
    /// any scan error for the path; `errors` record scan errors (and drop a
    /// catalogued file at that path); `removed` drop files and errors.
    ///
    /// The virtual tree is not touched: call [`Catalog::sync_tree`] after a
    /// scan (or a batch of live changes) to publish the result.
    pub fn apply_scan(
        &self,
        origin: OriginId,
        upserts: &[(Vec<u8>, Stamp, ScannedFile)],
        errors: &[(Vec<u8>, Stamp, String)],
        removed: &[Vec<u8>],
    ) -> Result<()> {
        self.write(|c| {
            let mut upsert = c.prepare_cached(
                "INSERT INTO files (origin_id, rel_path, size, mtime_ns, format, audio_offset,
                                    audio_length, duration_ms, bitrate, sample_rate, channels,
                                    bit_depth, has_art)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (origin_id, rel_path) DO UPDATE SET
                    size = excluded.size, mtime_ns = excluded.mtime_ns, format = excluded.format,
                    audio_offset = excluded.audio_offset, audio_length = excluded.audio_length,
                    duration_ms = excluded.duration_ms, bitrate = excluded.bitrate,
                    sample_rate = excluded.sample_rate, channels = excluded.channels,
                    bit_depth = excluded.bit_depth, has_art = excluded.has_art
                 RETURNING id",
            )?;
            let mut clear_tags = c.prepare_cached("DELETE FROM tags WHERE file_id = ?1")?;
            let mut add_tag = c.prepare_cached(
                "INSERT INTO tags (file_id, idx, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut clear_error =
                c.prepare_cached("DELETE FROM scan_errors WHERE origin_id = ?1 AND rel_path = ?2")?;
            let mut drop_file =
                c.prepare_cached("DELETE FROM files WHERE origin_id = ?1 AND rel_path = ?2")?;
            let mut record_error = c.prepare_cached(
                "INSERT INTO scan_errors (origin_id, rel_path, size, mtime_ns, message, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (origin_id, rel_path) DO UPDATE SET
                    size = excluded.size, mtime_ns = excluded.mtime_ns,
                    message = excluded.message, at = excluded.at",
            )?;

            for (rel_path, stamp, scanned) in upserts {
                let p = &scanned.props;
                let id: FileId = upsert.query_row(
                    params![
                        origin,
                        rel_path,
                        to_sql_u64(stamp.size),
                        stamp.mtime_ns,
                        scanned.format,
                        to_sql_u64(scanned.audio_offset),
                        to_sql_u64(scanned.audio_length),
                        to_sql_u64(p.duration_ms),
                        p.bitrate_kbps,
                        p.sample_rate,
                        p.channels,
                        p.bit_depth,
                        scanned.has_art,
                    ],
                    |r| r.get(0),
                )?;
                clear_tags.execute([id])?;
                for (idx, (key, value)) in scanned.tags.iter().enumerate() {
                    add_tag.execute(params![id, idx as i64, key, value])?;
                }
                clear_error.execute(params![origin, rel_path])?;
            }
            let at = now_unix();
            for (rel_path, stamp, message) in errors {
                // Tags go with the file (ON DELETE CASCADE).
                drop_file.execute(params![origin, rel_path])?;
                record_error.execute(params![
                    origin,
                    rel_path,
                    to_sql_u64(stamp.size),
                    stamp.mtime_ns,
                    message,
                    at
                ])?;
            }
            for rel_path in removed {
                drop_file.execute(params![origin, rel_path])?;
                clear_error.execute(params![origin, rel_path])?;
            }
            if !upserts.is_empty() || !errors.is_empty() || !removed.is_empty() {
                tree::files_changed(c)?;
            }
            Ok(())
        })
    }

    /// Drops every file and scan error of an origin (it was removed from the
    /// configuration, or is about to be rescanned from nothing). The origin
    /// row stays. Returns how many files were dropped. Call
    /// [`Catalog::sync_tree`] afterwards.
    pub fn remove_origin_files(&self, origin: OriginId) -> Result<u64> {
        self.write(|c| {
            let files = c.execute("DELETE FROM files WHERE origin_id = ?1", [origin])?;
            c.execute("DELETE FROM scan_errors WHERE origin_id = ?1", [origin])?;
            tree::files_changed(c)?;
            Ok(files as u64)
        })
    }

    /// The catalogued file at `rel_path` on `origin`, if any (for live
    /// changes: which inodes does a modified file back?).
    pub fn file_id_by_path(&self, origin: OriginId, rel_path: &[u8]) -> Result<Option<FileId>> {
        self.read(|c| {
            c.prepare_cached("SELECT id FROM files WHERE origin_id = ?1 AND rel_path = ?2")?
                .query_row(params![origin, rel_path], |r| r.get(0))
                .optional()
        })
    }

    // ---- the virtual tree ----
    /// The template the tree was last built with, if any.
    pub fn tree_template(&self) -> Result<Option<String>> {
        self.meta(tree::META_TEMPLATE)
    }

    /// A value from the catalog's small key/value table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()
        })
    }

    /// Stores a value in the catalog's small key/value table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.write(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
    }

    /// Brings the virtual tree in line with the files and `template`: every
    /// file gets the path the template gives it (collisions get a stable
    /// suffix), nodes whose path survives keep their inode, others are
    /// removed, new ones get fresh never-reused inodes. Idempotent.
    ///
    /// One write transaction: readers see the old tree until it commits,
    /// then the whole new one.
    pub fn sync_tree(&self, template: &Template) -> Result<TreeChanges> {
        let mut render =
            |fields: &crate::fields::FileFields<'_>, ext: &str| template.render(fields, ext);
        self.sync_tree_with(template.source(), &mut render)
    }

    pub(crate) fn sync_tree_with(
        &self,
        template_source: &str,
        render: &mut tree::Render<'_>,
    ) -> Result<TreeChanges> {
        let started = std::time::Instant::now();
        let changes = self.write(|c| tree::sync(c, template_source, render))?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            added = changes.added,
            removed = changes.removed.len(),
            modified = changes.modified.len(),
            "tree synced"
        );
        Ok(changes)
    }

    // ---- reads for the filesystem (hot path; all indexed point queries) ----
    pub fn node(&self, ino: u64) -> Result<Option<Node>> {
        self.read(|c| {
            c.prepare_cached(select_nodes!("WHERE ino = ?1"))?
                .query_row([to_sql_u64(ino)], node_from_row)
                .optional()
        })
    }
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Node>> {
        self.read(|c| {
            c.prepare_cached(select_nodes!("WHERE parent = ?1 AND name = ?2"))?
                .query_row(params![to_sql_u64(parent), name], node_from_row)
                .optional()
        })
    }
    /// Children of `parent` with `ino > after`, in inode order, at most
    /// `limit` (keyset pagination: FUSE readdir offsets are inode numbers).
    pub fn children(&self, parent: u64, after: u64, limit: usize) -> Result<Vec<Node>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(select_nodes!(
                "WHERE parent = ?1 AND ino > ?2 ORDER BY ino LIMIT ?3"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(
                params![to_sql_u64(parent), to_sql_u64(after), limit],
                node_from_row,
            )?;
            rows.collect()
        })
    }
    /// The node at a `/`-separated virtual path (empty or "/" is the root);
    /// one `lookup` per component. For tools and tests, not the FUSE hot path.
    pub fn resolve(&self, path: &[u8]) -> Result<Option<Node>> {
        let mut node = match self.node(ROOT_INO)? {
            Some(root) => root,
            None => return Ok(None),
        };
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            node = match self.lookup(node.ino, comp)? {
                Some(child) => child,
                None => return Ok(None),
            };
        }
        Ok(Some(node))
    }
    /// The virtual path of `ino` ("" for the root), for logs and status.
    pub fn virtual_path(&self, ino: u64) -> Result<Option<Vec<u8>>> {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != ROOT_INO {
            match self.node(at)? {
                // A cycle cannot exist (parents are created first), but a
                // corrupt catalog must not hang the caller.
                Some(n) if parts.len() < 4096 => {
                    parts.push(n.name);
                    at = n.parent;
                }
                _ => return Ok(None),
            }
        }
        parts.reverse();
        Ok(Some(parts.join(&b'/')))
    }
    /// The inodes a file appears under (normally one), so a change to the
    /// file can be announced to the kernel.
    pub fn inos_of_file(&self, id: FileId) -> Result<Vec<u64>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT ino FROM nodes WHERE file_id = ?1 ORDER BY ino")?;
            let rows = stmt.query_map([id], |r| Ok(r.get::<_, i64>(0)? as u64))?;
            rows.collect()
        })
    }
    pub fn file(&self, id: FileId) -> Result<Option<FileRecord>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, origin_id, rel_path, size, mtime_ns, format, audio_offset, audio_length
                 FROM files WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(FileRecord {
                    id: r.get(0)?,
                    origin_id: r.get(1)?,
                    rel_path: r.get(2)?,
                    stamp: Stamp {
                        size: r.get::<_, i64>(3)?.max(0) as u64,
                        mtime_ns: r.get(4)?,
                    },
                    format: r.get(5)?,
                    audio_offset: r.get::<_, i64>(6)?.max(0) as u64,
                    audio_length: r.get::<_, i64>(7)?.max(0) as u64,
                })
            })
            .optional()
        })
    }
    /// Audio properties and whether the file carries embedded art.
    pub fn props(&self, id: FileId) -> Result<Option<(AudioProps, bool)>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT duration_ms, bitrate, sample_rate, channels, bit_depth, has_art
                 FROM files WHERE id = ?1",
            )?
            .query_row([id], |r| {
                let props = AudioProps {
                    duration_ms: r.get::<_, i64>(0)?.max(0) as u64,
                    bitrate_kbps: r.get(1)?,
                    sample_rate: r.get(2)?,
                    channels: r.get(3)?,
                    bit_depth: r.get(4)?,
                };
                Ok((props, r.get(5)?))
            })
            .optional()
        })
    }
    /// Tags of a file as `(key, value)` in a stable order; multi-valued keys repeat.
    pub fn tags(&self, id: FileId) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT key, value FROM tags WHERE file_id = ?1 ORDER BY idx")?;
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
    /// Totals; `dirs` does not count the root.
    pub fn counts(&self) -> Result<Counts> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT (SELECT count(*) FROM origins),
                        (SELECT count(*) FROM files),
                        (SELECT count(*) FROM nodes WHERE kind = 0 AND ino != 1),
                        (SELECT count(*) FROM scan_errors)",
            )?
            .query_row([], |r| {
                Ok(Counts {
                    origins: r.get::<_, i64>(0)? as u64,
                    files: r.get::<_, i64>(1)? as u64,
                    dirs: r.get::<_, i64>(2)? as u64,
                    scan_errors: r.get::<_, i64>(3)? as u64,
                })
            })
        })
    }
    /// The most recent scan errors first, at most `limit`.
    pub fn scan_errors(&self, limit: usize) -> Result<Vec<ScanErrorRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT o.name, e.rel_path, e.message, e.at
                 FROM scan_errors e JOIN origins o ON o.id = e.origin_id
                 ORDER BY e.at DESC, o.name, e.rel_path LIMIT ?1",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map([limit], |r| {
                Ok(ScanErrorRow {
                    origin: r.get(0)?,
                    rel_path: r.get(1)?,
                    message: r.get(2)?,
                    at: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FileFields;
    use crate::template::Fields;
    use std::time::Instant;

    fn open_temp() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
        (dir, cat)
    }

    fn scanned(tags: &[(&str, &str)]) -> ScannedFile {
        ScannedFile {
            format: "flac".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            props: AudioProps {
                duration_ms: 1000,
                sample_rate: Some(44_100),
                ..Default::default()
            },
            audio_offset: 42,
            audio_length: 958,
            has_art: false,
        }
    }

    fn stamp(size: u64, mtime_ns: i64) -> Stamp {
        Stamp { size, mtime_ns }
    }

    type Upsert = (Vec<u8>, Stamp, ScannedFile);

    fn up(path: &str, st: Stamp, tags: &[(&str, &str)]) -> Upsert {
        (path.as_bytes().to_vec(), st, scanned(tags))
    }

    /// `artist/album/title.ext`, independent of the template engine.
    fn simple_render(f: &FileFields<'_>, ext: &str) -> Vec<String> {
        let get = |k: &str, d: &str| f.get(k).unwrap_or_else(|| d.to_string());
        vec![
            get("artist", "A"),
            get("album", "B"),
            format!("{}.{ext}", get("title", "T")),
        ]
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
                    let (artist, album) =
                        (format!("Artist {}", i / 200), format!("Album {}", i / 10));
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
}
