//! An in-memory [`Tree`] for tests of the FUSE layer that need no SQLite.
use crate::tree::Tree;
use crate::{FsConfig, FsStats, Mounted, OriginTable};
use musicfs_index::{
    Counts, FileId, FileRecord, Node, NodeKind, OriginId, Result, Stamp, ROOT_INO,
};
use musicfs_origins::{Entry, Origin, OriginKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Mounts like [`crate::mount_tree`] but without the kernel's read-only
/// mount flag, so write requests reach the daemon: tests use it to check
/// that the filesystem itself answers `EROFS`, not only the VFS.
pub fn mount_without_ro_flag(
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
) -> std::io::Result<Mounted> {
    crate::session::mount(
        tree,
        origins,
        config,
        stats,
        mountpoint,
        false,
        None,
        Arc::new(crate::library::NoLibrary),
    )
}

/// A local directory as an origin, for tests (the real `LocalOrigin` lives
/// in musicfs-origins; this one only does what the filesystem needs).
pub struct DirOrigin {
    pub name: String,
    pub root: PathBuf,
}

impl DirOrigin {
    fn path(&self, rel_path: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel_path))
    }
    fn io(&self, rel_path: &[u8], source: std::io::Error) -> musicfs_origins::Error {
        musicfs_origins::Error::Io {
            origin: self.name.clone(),
            path: self.path(rel_path),
            source,
        }
    }
}

impl Origin for DirOrigin {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Local
    }
    fn location(&self) -> String {
        self.root.display().to_string()
    }
    fn list(&self) -> musicfs_origins::Result<Vec<Entry>> {
        Ok(Vec::new())
    }
    fn stat(&self, rel_path: &[u8]) -> musicfs_origins::Result<Entry> {
        let m = std::fs::metadata(self.path(rel_path)).map_err(|e| self.io(rel_path, e))?;
        Ok(Entry {
            rel_path: rel_path.to_vec(),
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        })
    }
    fn read_at(
        &self,
        rel_path: &[u8],
        offset: u64,
        buf: &mut [u8],
    ) -> musicfs_origins::Result<usize> {
        let file = std::fs::File::open(self.path(rel_path)).map_err(|e| self.io(rel_path, e))?;
        file.read_at(buf, offset).map_err(|e| self.io(rel_path, e))
    }
    fn local_path(&self, rel_path: &[u8]) -> Option<PathBuf> {
        Some(self.path(rel_path))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A remote origin in memory, for tests of the remote read path: files
/// are byte vectors, every byte served is counted, and it can be told to
/// fail, to look down, or to be slow.
pub struct MemOrigin {
    pub name: String,
    files: RwLock<HashMap<Vec<u8>, Arc<Vec<u8>>>>,
    /// Bytes returned by `read_at` so far.
    pub served: AtomicU64,
    /// `read_at` calls so far.
    pub calls: AtomicU64,
    /// While set, every `read_at` fails (EIO).
    pub failing: AtomicBool,
    /// Fail every read after this many more succeed (u64::MAX = never).
    pub fail_after: AtomicU64,
    /// What `available()` answers.
    pub up: AtomicBool,
    pub priority: i32,
    /// Sleep this long in each `read_at` (a slow link).
    pub latency: Duration,
}

impl MemOrigin {
    pub fn new(name: &str, priority: i32) -> MemOrigin {
        MemOrigin {
            name: name.to_string(),
            files: RwLock::new(HashMap::new()),
            served: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            fail_after: AtomicU64::new(u64::MAX),
            up: AtomicBool::new(true),
            priority,
            latency: Duration::ZERO,
        }
    }

    /// Adds or replaces a file.
    pub fn put(&self, rel_path: &[u8], data: Vec<u8>) {
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rel_path.to_vec(), Arc::new(data));
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    fn remote_error(&self, rel_path: &[u8], message: &str, errno: i32) -> musicfs_origins::Error {
        musicfs_origins::Error::Remote {
            origin: self.name.clone(),
            op: "read",
            path: String::from_utf8_lossy(rel_path).into_owned(),
            message: message.to_string(),
            transient: errno == libc::EIO,
            errno,
        }
    }
}

impl Origin for MemOrigin {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Sftp
    }
    fn location(&self) -> String {
        format!("mem:{}", self.name)
    }
    fn list(&self) -> musicfs_origins::Result<Vec<Entry>> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        Ok(files
            .iter()
            .map(|(p, d)| Entry {
                rel_path: p.clone(),
                size: d.len() as u64,
                mtime_ns: 0,
            })
            .collect())
    }
    fn stat(&self, rel_path: &[u8]) -> musicfs_origins::Result<Entry> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        let data = files
            .get(rel_path)
            .ok_or_else(|| self.remote_error(rel_path, "no such file", libc::ENOENT))?;
        Ok(Entry {
            rel_path: rel_path.to_vec(),
            size: data.len() as u64,
            mtime_ns: 0,
        })
    }
    fn read_at(
        &self,
        rel_path: &[u8],
        offset: u64,
        buf: &mut [u8],
    ) -> musicfs_origins::Result<usize> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        let allowed = self
            .fail_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n != u64::MAX && n > 0).then(|| n - 1)
            });
        if self.failing.load(Ordering::SeqCst) || allowed == Ok(0) || allowed == Err(0) {
            return Err(self.remote_error(rel_path, "injected failure", libc::EIO));
        }
        let data = self
            .files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(rel_path)
            .cloned()
            .ok_or_else(|| self.remote_error(rel_path, "no such file", libc::ENOENT))?;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        self.served.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
    fn available(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
    fn priority(&self) -> i32 {
        self.priority
    }
}

/// A virtual tree kept in memory. Inodes are handed out in insertion order,
/// like the catalog's.
pub struct MemTree {
    inner: RwLock<Inner>,
    /// Saved chunk recipes by file.
    recipes: Mutex<HashMap<FileId, Vec<u8>>>,
    /// Replica records by the file they copy.
    replicas: Mutex<HashMap<FileId, Vec<FileRecord>>>,
}

struct Inner {
    nodes: BTreeMap<u64, Node>,
    /// `(parent, name) → ino`, for lookups.
    names: HashMap<(u64, Vec<u8>), u64>,
    /// `(parent, ino)`, for keyset-paginated listings.
    children: BTreeSet<(u64, u64)>,
    files: BTreeMap<FileId, FileRecord>,
    next_ino: u64,
}

impl Default for MemTree {
    fn default() -> Self {
        Self::new()
    }
}

impl MemTree {
    /// A tree holding only the root directory.
    pub fn new() -> MemTree {
        let root = Node {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: Vec::new(),
            kind: NodeKind::Dir,
            file_id: None,
            size: 0,
            mtime_ns: 0,
        };
        MemTree {
            inner: RwLock::new(Inner {
                nodes: BTreeMap::from([(ROOT_INO, root)]),
                names: HashMap::new(),
                children: BTreeSet::new(),
                files: BTreeMap::new(),
                next_ino: ROOT_INO + 1,
            }),
            recipes: Mutex::new(HashMap::new()),
            replicas: Mutex::new(HashMap::new()),
        }
    }

    /// Changes a file's catalog record (a rescan's doing: new stamp, new
    /// audio bounds).
    pub fn update_file(&self, id: FileId, change: impl FnOnce(&mut FileRecord)) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = inner.files.get_mut(&id) {
            change(record);
        }
    }

    /// Declares that `rel_path` on `origin_id` holds the same bytes as `id`.
    pub fn add_replica(&self, id: FileId, origin_id: OriginId, rel_path: &[u8]) {
        let Some(mut record) = self.file(id).ok().flatten() else {
            return;
        };
        record.id = 1_000_000 + id;
        record.origin_id = origin_id;
        record.rel_path = rel_path.to_vec();
        lock(&self.replicas).entry(id).or_default().push(record);
    }

    /// The saved recipe bytes of `id` (what the remote read path persisted).
    pub fn saved_recipe(&self, id: FileId) -> Option<Vec<u8>> {
        lock(&self.recipes).get(&id).cloned()
    }

    /// Adds a file at the virtual `path` (`a/b/c.flac`), creating missing
    /// directories, served from `rel_path` of origin `origin_id` with the
    /// given stamp. The node's size is `stamp.size`. Returns its inode.
    pub fn add_file(&self, path: &str, origin_id: OriginId, rel_path: &[u8], stamp: Stamp) -> u64 {
        self.add_file_sized(path, origin_id, rel_path, stamp, stamp.size)
    }

    /// Like [`add_file`](Self::add_file) with a served size different from
    /// the real file's (what an overlay does).
    pub fn add_file_sized(
        &self,
        path: &str,
        origin_id: OriginId,
        rel_path: &[u8],
        stamp: Stamp,
        served_size: u64,
    ) -> u64 {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut parent = ROOT_INO;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((leaf, dirs)) = parts.split_last() else {
            return ROOT_INO;
        };
        for dir in dirs {
            parent = match inner.find(parent, dir.as_bytes()) {
                Some(ino) => ino,
                None => inner.insert(parent, dir, NodeKind::Dir, None, 0, stamp.mtime_ns),
            };
            if let Some(n) = inner.nodes.get_mut(&parent) {
                n.mtime_ns = n.mtime_ns.max(stamp.mtime_ns);
            }
        }
        let file_id = inner.files.len() as FileId + 1;
        inner.files.insert(
            file_id,
            FileRecord {
                id: file_id,
                origin_id,
                rel_path: rel_path.to_vec(),
                stamp,
                format: String::new(),
                audio_offset: 0,
                audio_length: stamp.size,
            },
        );
        inner.insert(
            parent,
            leaf,
            NodeKind::File,
            Some(file_id),
            served_size,
            stamp.mtime_ns,
        )
    }

    /// Removes the node `ino` (and nothing below it).
    pub fn remove(&self, ino: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = inner.nodes.remove(&ino) {
            inner.names.remove(&(node.parent, node.name));
            inner.children.remove(&(node.parent, ino));
        }
    }
}

impl Inner {
    fn find(&self, parent: u64, name: &[u8]) -> Option<u64> {
        self.names.get(&(parent, name.to_vec())).copied()
    }

    fn insert(
        &mut self,
        parent: u64,
        name: &str,
        kind: NodeKind,
        file_id: Option<FileId>,
        size: u64,
        mtime_ns: i64,
    ) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.names.insert((parent, name.as_bytes().to_vec()), ino);
        self.children.insert((parent, ino));
        self.nodes.insert(
            ino,
            Node {
                ino,
                parent,
                name: name.as_bytes().to_vec(),
                kind,
                file_id,
                size,
                mtime_ns,
            },
        );
        ino
    }
}

impl Tree for MemTree {
    fn node(&self, ino: u64) -> Result<Option<Node>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        Ok(inner.nodes.get(&ino).cloned())
    }
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Node>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        Ok(inner
            .find(parent, name)
            .and_then(|ino| inner.nodes.get(&ino).cloned()))
    }
    fn children(&self, parent: u64, after: u64, limit: usize) -> Result<Vec<Node>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        Ok(inner
            .children
            .range((parent, after.saturating_add(1))..(parent, u64::MAX))
            .take(limit)
            .filter_map(|(_, ino)| inner.nodes.get(ino).cloned())
            .collect())
    }
    fn file(&self, id: FileId) -> Result<Option<FileRecord>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        Ok(inner.files.get(&id).cloned())
    }
    fn replicas(&self, id: FileId) -> Result<Vec<FileRecord>> {
        Ok(lock(&self.replicas).get(&id).cloned().unwrap_or_default())
    }
    fn recipe(&self, id: FileId) -> Result<Option<Vec<u8>>> {
        Ok(lock(&self.recipes).get(&id).cloned())
    }
    fn set_recipe(&self, id: FileId, data: &[u8]) -> Result<()> {
        lock(&self.recipes).insert(id, data.to_vec());
        Ok(())
    }
    fn counts(&self) -> Result<Counts> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let dirs = inner
            .nodes
            .values()
            .filter(|n| n.kind == NodeKind::Dir)
            .count() as u64;
        Ok(Counts {
            origins: 1,
            files: inner.nodes.len() as u64 - dirs,
            dirs,
            scan_errors: 0,
        })
    }
}

/// Deterministic pseudo-random bytes (xorshift), different for every
/// seed, so reads can be compared with what was written.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_directories_and_pages_children() {
        let t = MemTree::new();
        let stamp = Stamp {
            size: 10,
            mtime_ns: 5,
        };
        let a = t.add_file("A/B/1.flac", 1, b"x/1.flac", stamp);
        let b = t.add_file("A/B/2.flac", 1, b"x/2.flac", stamp);
        let dir_a = t.lookup(ROOT_INO, b"A").unwrap().unwrap();
        let dir_b = t.lookup(dir_a.ino, b"B").unwrap().unwrap();
        let kids = t.children(dir_b.ino, 0, 10).unwrap();
        assert_eq!(kids.iter().map(|n| n.ino).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(t.children(dir_b.ino, a, 10).unwrap().len(), 1);
        assert_eq!(t.children(dir_b.ino, 0, 1).unwrap().len(), 1);
        assert_eq!(t.counts().unwrap().files, 2);
    }
}
