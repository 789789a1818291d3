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
    /// Lower is preferred when several origins hold the same track.
    pub priority: i32,
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
        // Readers do indexed point queries; the kernel's page cache holds the
        // file. SQLite's default 2 MiB per connection, times the pool, was a
        // fifth of the daemon's idle memory at 100k tracks.
        conn.pragma_update(None, "cache_size", -256)?;
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
                        (SELECT count(*) FROM scan_errors e WHERE e.origin_id = o.id),
                        o.priority
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
                    priority: r.get(7)?,
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
                                    bit_depth, has_art, quick_hash, dup_key, content_hash, added)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, NULL,
                         unixepoch())
                 ON CONFLICT (origin_id, rel_path) DO UPDATE SET
                    size = excluded.size, mtime_ns = excluded.mtime_ns, format = excluded.format,
                    audio_offset = excluded.audio_offset, audio_length = excluded.audio_length,
                    duration_ms = excluded.duration_ms, bitrate = excluded.bitrate,
                    sample_rate = excluded.sample_rate, channels = excluded.channels,
                    bit_depth = excluded.bit_depth, has_art = excluded.has_art,
                    quick_hash = excluded.quick_hash, dup_key = excluded.dup_key,
                    content_hash = NULL
                 RETURNING id",
            )?;
            let mut clear_tags = c.prepare_cached("DELETE FROM tags WHERE file_id = ?1")?;
            let mut forget_path = c.prepare_cached("DELETE FROM rendered WHERE file_id = ?1")?;
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
                        scanned.quick_hash as i64,
                        crate::identity::dup_key(
                            &scanned.tags,
                            p.duration_ms,
                            stamp.size,
                            scanned.quick_hash
                        ),
                    ],
                    |r| r.get(0),
                )?;
                clear_tags.execute([id])?;
                forget_path.execute([id])?;
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

    /// Files on other origins with the same bytes as `id`: same size and
    /// quick hash (or, once `musicfs verify` has hashed both, the same
    /// content hash). See [`Tree::replicas`](../musicfs_fusefs).
    pub fn replicas(&self, id: FileId) -> Result<Vec<FileRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.id, r.origin_id, r.rel_path, r.size, r.mtime_ns, r.format,
                        r.audio_offset, r.audio_length
                 FROM files f JOIN files r ON r.dup_key = f.dup_key
                 WHERE f.id = ?1 AND r.id != f.id AND r.origin_id != f.origin_id
                   AND r.size = f.size
                   AND (r.quick_hash = f.quick_hash
                        OR (r.content_hash IS NOT NULL AND r.content_hash = f.content_hash))",
            )?;
            let rows = stmt.query_map([id], file_record)?;
            rows.collect()
        })
    }

    /// Sets where an origin stands among origins holding the same tracks
    /// (lower preferred); the tree is re-synced on the next sync if it changed.
    pub fn set_origin_priority(&self, origin: OriginId, priority: i32) -> Result<()> {
        self.write(|c| {
            let changed = c
                .prepare_cached(
                    "UPDATE origins SET priority = ?2 WHERE id = ?1 AND priority != ?2",
                )?
                .execute(params![origin, priority])?;
            if changed > 0 {
                tree::files_changed(c)?;
            }
            Ok(())
        })
    }

    /// Records a file's full content hash (xxh3-128, from `musicfs verify`)
    /// if its stamp is still `stamp`; returns the hash recorded before.
    pub fn set_content_hash(&self, id: FileId, stamp: Stamp, hash: u128) -> Result<Option<u128>> {
        self.write(|c| {
            let before: Option<Vec<u8>> = c
                .prepare_cached("SELECT content_hash FROM files WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?
                .flatten();
            c.prepare_cached(
                "UPDATE files SET content_hash = ?2 WHERE id = ?1 AND size = ?3 AND mtime_ns = ?4",
            )?
            .execute(params![
                id,
                hash.to_be_bytes().to_vec(),
                to_sql_u64(stamp.size),
                stamp.mtime_ns
            ])?;
            Ok(before
                .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                .map(u128::from_be_bytes))
        })
    }

    /// Every file of an origin: (id, relative path, stamp), for `musicfs verify`.
    pub fn origin_files(&self, origin: OriginId) -> Result<Vec<(FileId, Vec<u8>, Stamp)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, rel_path, size, mtime_ns FROM files WHERE origin_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([origin], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Stamp {
                        size: r.get::<_, i64>(2)?.max(0) as u64,
                        mtime_ns: r.get(3)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// A remote file's saved chunk recipe.
    pub fn recipe(&self, id: FileId) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            c.prepare_cached("SELECT data FROM recipes WHERE file_id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()
        })
    }

    /// Saves a remote file's chunk recipe (dropped with the file).
    pub fn set_recipe(&self, id: FileId, data: &[u8]) -> Result<()> {
        self.write(|c| {
            c.prepare_cached(
                "INSERT INTO recipes (file_id, data) VALUES (?1, ?2)
                 ON CONFLICT (file_id) DO UPDATE SET data = excluded.data",
            )?
            .execute(params![id, data])?;
            Ok(())
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

    /// [`Catalog::sync_tree`], but renders every file afresh instead of
    /// trusting the cached paths of unchanged files (the cache is keyed by
    /// template and musicfs version; this is the escape hatch).
    pub fn rebuild_tree(&self, template: &Template) -> Result<TreeChanges> {
        self.write(tree::forget_rendered)?;
        self.sync_tree(template)
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
            .query_row([id], file_record)
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

/// A `FileRecord` from a row of `id, origin_id, rel_path, size, mtime_ns,
/// format, audio_offset, audio_length`.
fn file_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
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
}

pub(crate) mod collections;
mod overlay;

#[cfg(test)]
mod tests;
