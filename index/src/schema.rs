//! Schema and migrations.
//!
//! The schema version lives in `PRAGMA user_version` (a header field: reading
//! it touches no table, so opening stays cheap however big the catalog is).
//! [`MIGRATIONS`]`[n]` takes a database from version `n` to `n + 1`; each
//! step runs in its own transaction together with the version bump, so a
//! crash mid-migration leaves the previous version intact. A database newer
//! than [`MIGRATIONS`] knows is refused rather than guessed at.
//!
//! Layout (v1):
//! - `origins`: one row per configured origin; `name` is the user's handle.
//! - `files`: one row per catalogued audio file, keyed by `(origin_id,
//!   rel_path)`; `rel_path` is raw bytes (paths need not be UTF-8). Ids come
//!   from AUTOINCREMENT so a dropped file's id is never handed to another.
//! - `tags`: `(file_id, idx)` keeps each file's tags in scan order; multi-valued
//!   keys repeat. WITHOUT ROWID so a file's tags are one contiguous range.
//! - `scan_errors`: paths that could not be read, with the stamp they had, so
//!   an unchanged bad file is not reread on every scan.
//! - `nodes`: the virtual tree. `ino` is the FUSE inode number, AUTOINCREMENT
//!   so numbers are never reused; the root is `ino` 1 with `parent` 0.
//!   `kind` 0 = directory, 1 = file. `(parent, name)` is unique (lookup);
//!   `(parent, ino)` serves keyset readdir.
//! - `meta`: small key/value settings (the tree's template source, the files
//!   version the tree was synced at).
//!
//! Added in v4 (see the migration): `overlay`, `splices`, `collections`,
//! `plays`, `files.added`.
//!
//! Added in v2:
//! - `rendered`: each file's rendered path components joined by `/`, valid
//!   for the template in `meta.render_key`. Whoever changes a file's row or
//!   tags must delete its `rendered` row (deleting the file cascades).
use crate::{Error, Result};
use rusqlite::Connection;

/// Step `n` migrates from version `n` to `n + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // v0 -> v1: the initial schema.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE origins (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        name      TEXT NOT NULL UNIQUE,
        kind      TEXT NOT NULL,
        location  TEXT NOT NULL,
        last_scan INTEGER
    );

    CREATE TABLE files (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        origin_id    INTEGER NOT NULL REFERENCES origins(id) ON DELETE CASCADE,
        rel_path     BLOB NOT NULL,
        size         INTEGER NOT NULL,
        mtime_ns     INTEGER NOT NULL,
        format       TEXT NOT NULL,
        audio_offset INTEGER NOT NULL,
        audio_length INTEGER NOT NULL,
        duration_ms  INTEGER NOT NULL,
        bitrate      INTEGER,
        sample_rate  INTEGER,
        channels     INTEGER,
        bit_depth    INTEGER,
        has_art      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (origin_id, rel_path)
    );

    CREATE TABLE tags (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        idx     INTEGER NOT NULL,
        key     TEXT NOT NULL,
        value   TEXT NOT NULL,
        PRIMARY KEY (file_id, idx)
    ) WITHOUT ROWID;

    CREATE TABLE scan_errors (
        origin_id INTEGER NOT NULL REFERENCES origins(id) ON DELETE CASCADE,
        rel_path  BLOB NOT NULL,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        message   TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (origin_id, rel_path)
    ) WITHOUT ROWID;

    CREATE TABLE nodes (
        ino      INTEGER PRIMARY KEY AUTOINCREMENT,
        parent   INTEGER NOT NULL,
        name     BLOB NOT NULL,
        kind     INTEGER NOT NULL,
        file_id  INTEGER,
        size     INTEGER NOT NULL DEFAULT 0,
        mtime_ns INTEGER NOT NULL DEFAULT 0,
        UNIQUE (parent, name)
    );
    CREATE INDEX nodes_parent_ino ON nodes (parent, ino);
    CREATE INDEX nodes_file ON nodes (file_id) WHERE file_id IS NOT NULL;

    INSERT INTO nodes (ino, parent, name, kind) VALUES (1, 0, x'', 0);
    "#,
    // v1 -> v2: a cache of each file's rendered virtual path, so a tree sync
    // after a few live changes renders only those files.
    r#"
    CREATE TABLE rendered (
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        path    BLOB NOT NULL
    );
    "#,
    // v2 -> v3: remote origins and federation. An origin's priority; per
    // file a dedup key (same track on several origins), a quick hash
    // (size + sampled bytes: replicas that are byte-identical), the full
    // content hash once `musicfs verify` computed it; chunk recipes of
    // remote files.
    r#"
    ALTER TABLE origins ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN dup_key INTEGER;
    ALTER TABLE files ADD COLUMN quick_hash INTEGER;
    ALTER TABLE files ADD COLUMN content_hash BLOB;
    CREATE INDEX files_dup_key ON files (dup_key) WHERE dup_key IS NOT NULL;
    CREATE TABLE recipes (
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        data    BLOB NOT NULL
    );
    "#,
    // v3 -> v4: metadata overlay, collections, the play log. `overlay`
    // holds tag edits by canonical key (a removed key is one row with a
    // NULL value); `splices` the synthesized layout of an edited file and
    // the stamp of the original it was computed from; `files.added` when
    // a file was first catalogued (existing files: the migration's time).
    r#"
    CREATE TABLE overlay (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        key     TEXT NOT NULL,
        idx     INTEGER NOT NULL,
        value   TEXT,
        PRIMARY KEY (file_id, key, idx)
    ) WITHOUT ROWID;
    CREATE TABLE splices (
        file_id     INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        size        INTEGER NOT NULL,
        mtime_ns    INTEGER NOT NULL,
        served_size INTEGER NOT NULL,
        plan        BLOB NOT NULL
    );
    CREATE TABLE collections (
        name    TEXT PRIMARY KEY,
        query   TEXT NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE plays (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        at      INTEGER NOT NULL
    );
    CREATE INDEX plays_file ON plays (file_id);
    CREATE INDEX plays_at ON plays (at);
    ALTER TABLE files ADD COLUMN added INTEGER;
    UPDATE files SET added = unixepoch();
    "#,
];

/// The version this build writes.
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database at `path` (already opened as `conn`) up to
/// [`CURRENT_VERSION`]. Only the writer connection calls this.
pub(crate) fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    migrate_with(conn, path, MIGRATIONS)?;
    tracing::trace!(path, version = CURRENT_VERSION, "catalog schema current");
    Ok(())
}

fn migrate_with(conn: &mut Connection, path: &str, steps: &[&str]) -> Result<()> {
    let sql_err = |source| Error::Sqlite {
        path: path.to_string(),
        source,
    };
    let supported = steps.len() as i64;
    let found = user_version(conn).map_err(sql_err)?;
    if found > supported {
        return Err(Error::SchemaTooNew {
            path: path.to_string(),
            found,
            supported,
        });
    }
    for (from, step) in steps.iter().enumerate().skip(found.max(0) as usize) {
        // IMMEDIATE: take the write lock before reading the version again, so
        // two processes opening a fresh catalog at once do not both migrate.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        if user_version(&tx).map_err(sql_err)? != from as i64 {
            // Someone else migrated this step meanwhile.
            continue;
        }
        tx.execute_batch(step).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        tracing::debug!(path, version = from + 1, "catalog migrated");
    }
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Connection {
        Connection::open_in_memory().expect("in-memory sqlite")
    }

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let mut conn = mem();
        migrate(&mut conn, ":memory:").expect("migrate");
        assert_eq!(user_version(&conn).expect("version"), CURRENT_VERSION);
        let root: (i64, i64) = conn
            .query_row("SELECT ino, kind FROM nodes WHERE parent = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("root node");
        assert_eq!(root, (1, 0));
        // A second run must not re-execute the CREATE statements.
        migrate(&mut conn, ":memory:").expect("second migrate");
    }

    #[test]
    fn v1_catalog_upgrades_in_place() {
        let mut conn = mem();
        migrate_with(&mut conn, "t", &MIGRATIONS[..1]).expect("v1");
        conn.execute_batch(
            "INSERT INTO origins (name, kind, location) VALUES ('m', 'local', '/m');
             INSERT INTO nodes (parent, name, kind) VALUES (1, x'41', 0);",
        )
        .expect("v1 data");
        migrate(&mut conn, "t").expect("to current");
        assert_eq!(user_version(&conn).expect("version"), CURRENT_VERSION);
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))
            .expect("nodes");
        assert_eq!(kept, 2, "root and the v1 node survive");
        let rendered: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'rendered'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(rendered, 1, "v2 added the rendered-path cache");
    }

    #[test]
    fn runs_later_steps_only() {
        let mut conn = mem();
        let steps = ["CREATE TABLE a (x)", "CREATE TABLE b (x)"];
        migrate_with(&mut conn, "t", &steps[..1]).expect("v1");
        migrate_with(&mut conn, "t", &steps).expect("v2");
        assert_eq!(user_version(&conn).expect("version"), 2);
        conn.execute("INSERT INTO b VALUES (1)", [])
            .expect("table b exists");
    }

    #[test]
    fn failed_step_leaves_previous_version() {
        let mut conn = mem();
        let steps = ["CREATE TABLE a (x)", "CREATE TABLE b (x); THIS IS NOT SQL"];
        assert!(migrate_with(&mut conn, "t", &steps).is_err());
        assert_eq!(user_version(&conn).expect("version"), 1);
        let b_exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(b_exists, 0, "the failed step was rolled back");
    }

    #[test]
    fn refuses_newer_schema() {
        let mut conn = mem();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 5)
            .expect("set version");
        match migrate(&mut conn, "cat.db") {
            Err(Error::SchemaTooNew {
                found, supported, ..
            }) => {
                assert_eq!(found, CURRENT_VERSION + 5);
                assert_eq!(supported, CURRENT_VERSION);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
