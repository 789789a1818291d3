//! The catalog: the one owner of the SQLite database.
use crate::scan::ScannedFile;
use crate::template::Template;
use crate::Result;
use std::path::Path;

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

/// The catalog database. Cheap to share (`Arc<Catalog>`), `Send + Sync`.
pub struct Catalog {
    // connection pool + writer; see catalog.rs implementation
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`, WAL mode, and runs
    /// migrations. Reads nothing but the schema version: cheap at mount.
    pub fn open(path: &Path) -> Result<Catalog> {
        todo!()
    }

    // ---- origins ----
    /// The id of the origin named `name`, creating or updating its row.
    pub fn ensure_origin(&self, name: &str, kind: &str, location: &str) -> Result<OriginId> {
        todo!()
    }
    pub fn origins(&self) -> Result<Vec<OriginRow>> {
        todo!()
    }
    /// Records that a full scan of the origin finished now.
    pub fn mark_scanned(&self, origin: OriginId) -> Result<()> {
        todo!()
    }

    // ---- scanning (writers) ----
    /// Stamps of every known path of the origin, catalogued files and recorded
    /// scan errors alike, so unchanged files (good or bad) are not reread.
    pub fn stamps(&self, origin: OriginId) -> Result<std::collections::HashMap<Vec<u8>, Stamp>> {
        todo!()
    }
    /// Applies a batch of scan results in one transaction. `upserts` replace
    /// the file's row, tags and properties (keeping its `FileId`) and clear
    /// any scan error for the path; `errors` record scan errors (and drop a
    /// catalogued file at that path); `removed` drop files and errors.
    pub fn apply_scan(
        &self,
        origin: OriginId,
        upserts: &[(Vec<u8>, Stamp, ScannedFile)],
        errors: &[(Vec<u8>, Stamp, String)],
        removed: &[Vec<u8>],
    ) -> Result<()> {
        todo!()
    }

    // ---- the virtual tree ----
    /// The template the tree was last built with, if any.
    pub fn tree_template(&self) -> Result<Option<String>> {
        todo!()
    }
    /// Brings the virtual tree in line with the files and `template`: every
    /// file gets the path the template gives it (collisions get a stable
    /// suffix), nodes whose path survives keep their inode, others are
    /// removed, new ones get fresh never-reused inodes. Idempotent.
    pub fn sync_tree(&self, template: &Template) -> Result<TreeChanges> {
        todo!()
    }

    // ---- reads for the filesystem (hot path; all indexed point queries) ----
    pub fn node(&self, ino: u64) -> Result<Option<Node>> {
        todo!()
    }
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Node>> {
        todo!()
    }
    /// Children of `parent` with `ino > after`, in inode order, at most
    /// `limit` (keyset pagination: FUSE readdir offsets are inode numbers).
    pub fn children(&self, parent: u64, after: u64, limit: usize) -> Result<Vec<Node>> {
        todo!()
    }
    pub fn file(&self, id: FileId) -> Result<Option<FileRecord>> {
        todo!()
    }
    /// Tags of a file as `(key, value)` in a stable order; multi-valued keys repeat.
    pub fn tags(&self, id: FileId) -> Result<Vec<(String, String)>> {
        todo!()
    }
    pub fn counts(&self) -> Result<Counts> {
        todo!()
    }
    pub fn scan_errors(&self, limit: usize) -> Result<Vec<ScanErrorRow>> {
        todo!()
    }
}
