//! The musicfs FUSE filesystem (fuser, multi-threaded).
//!
//! Inode numbers are the catalog's node ids. Reads of an untouched local
//! file go through kernel passthrough when the kernel and our privileges
//! allow it; otherwise the daemon serves them with `pread`. Every write
//! operation answers `EROFS`.

use musicfs_index::{Catalog, OriginId, TreeChanges};
use musicfs_origins::Origin;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Origins by catalog id; shared with the daemon, which may add origins.
pub type OriginTable = Arc<RwLock<HashMap<OriginId, Arc<dyn Origin>>>>;

/// Settings the daemon hands the filesystem.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Try kernel passthrough for untouched local files. Default true.
    pub passthrough: bool,
    /// How long the kernel may cache attributes and entries. Default 1 s.
    pub ttl: Duration,
    /// FUSE worker threads. Default 4.
    pub threads: usize,
    /// Owner shown for every entry. Default: the daemon's uid/gid.
    pub uid: u32,
    pub gid: u32,
    /// Mount with `allow_other` (needs root or `user_allow_other`). Default false.
    pub allow_other: bool,
    /// Name shown in `/proc/mounts`. Default "musicfs".
    pub fsname: String,
}

/// Counters shown by `musicfs status`; all monotonic except `open_handles`.
#[derive(Debug, Default)]
pub struct FsStats {
    pub passthrough_opens: AtomicU64,
    pub daemon_opens: AtomicU64,
    pub open_handles: AtomicU64,
    pub reads: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Why passthrough is not in use, once known (None = in use or not tried yet).
    pub passthrough_unavailable: Mutex<Option<String>>,
}

/// A live mount.
pub struct Mounted {
    // session handle, notifier, ...
}

/// Mounts the filesystem at `mountpoint` and serves it on background threads.
pub fn mount(
    catalog: Arc<Catalog>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
) -> std::io::Result<Mounted> {
    todo!()
}

impl Mounted {
    /// Tells the kernel to forget cached entries and pages that `changes` made stale.
    pub fn invalidate(&self, changes: &TreeChanges) {
        todo!()
    }
    /// Blocks until the filesystem is unmounted (by us or by `fusermount3 -u`).
    pub fn wait(&self) {
        todo!()
    }
    /// Unmounts (lazily if busy) and waits for the session to end.
    pub fn unmount(self) -> std::io::Result<()> {
        todo!()
    }
}
