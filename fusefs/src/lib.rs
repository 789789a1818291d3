//! The musicfs FUSE filesystem (fuser, multi-threaded).
//!
//! Inode numbers are the catalog's node ids. Reads of an untouched local
//! file go through kernel passthrough when the kernel and our privileges
//! allow it; otherwise the daemon serves them with `pread`. Every write
//! operation answers `EROFS`.
//!
//! Modules: [`attr`](attr) (nodes as FUSE attributes), `fs` (the fuser
//! `Filesystem`), `handles` (open handles, one mode per inode),
//! `passthrough` (negotiation and fallback policy), `remote` (remote files
//! through the chunk store), `xattr`, `session`
//! (mounting, invalidation, unmounting) and [`tree`] (what the filesystem
//! reads from the catalog).

mod attr;
mod error;
mod fs;
mod handles;
pub mod library;
mod passthrough;
mod remote;
mod session;
pub mod testutil;
pub mod tree;
mod virt;
mod xattr;

pub use error::{Error, Result};
pub use library::{CoverSize, Library, NoLibrary};
pub use remote::{
    PrefetchBudget, PrefetchError, Prefetched, Prefetcher, RemoteConfig, Seed, StoreSource,
};
pub use session::Mounted;
pub use tree::Tree;

use musicfs_index::{Catalog, OriginId};
use musicfs_origins::Origin;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// How remote files are read through the chunk store.
    pub remote: RemoteConfig,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            passthrough: true,
            ttl: Duration::from_secs(1),
            threads: 4,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            allow_other: false,
            fsname: "musicfs".to_string(),
            remote: RemoteConfig::default(),
        }
    }
}

/// Counters shown by `musicfs status`; all monotonic except `open_handles`.
#[derive(Debug, Default)]
pub struct FsStats {
    pub passthrough_opens: AtomicU64,
    pub daemon_opens: AtomicU64,
    pub open_handles: AtomicU64,
    pub reads: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Bytes of remote files served from the chunk store.
    pub cache_hit_bytes: AtomicU64,
    /// Bytes fetched from origins for reads (fills, refetches, direct reads).
    pub origin_bytes: AtomicU64,
    /// Remote reads served uncached: far past the cached part, or no store.
    pub direct_reads: AtomicU64,
    /// Remote fetches retried on another origin after one failed.
    pub failovers: AtomicU64,
    /// Fully cached remote files exported for passthrough.
    pub exports: AtomicU64,
    /// Why passthrough is not in use, once known (None = in use or not tried yet).
    pub passthrough_unavailable: Mutex<Option<String>>,
}

/// A plain copy of [`FsStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsStatsSnapshot {
    pub passthrough_opens: u64,
    pub daemon_opens: u64,
    pub open_handles: u64,
    pub reads: u64,
    pub bytes_read: u64,
    pub cache_hit_bytes: u64,
    pub origin_bytes: u64,
    pub direct_reads: u64,
    pub failovers: u64,
    pub exports: u64,
    pub passthrough_unavailable: Option<String>,
}

impl FsStats {
    pub fn snapshot(&self) -> FsStatsSnapshot {
        FsStatsSnapshot {
            passthrough_opens: self.passthrough_opens.load(Ordering::Relaxed),
            daemon_opens: self.daemon_opens.load(Ordering::Relaxed),
            open_handles: self.open_handles.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            cache_hit_bytes: self.cache_hit_bytes.load(Ordering::Relaxed),
            origin_bytes: self.origin_bytes.load(Ordering::Relaxed),
            direct_reads: self.direct_reads.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            exports: self.exports.load(Ordering::Relaxed),
            passthrough_unavailable: self
                .passthrough_unavailable
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Mounts the filesystem at `mountpoint` and serves it on background threads.
pub fn mount(
    catalog: Arc<Catalog>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
) -> std::io::Result<Mounted> {
    mount_tree(catalog, origins, config, stats, mountpoint)
}

/// [`mount`] over any [`Tree`] (tests mount a [`testutil::MemTree`]).
pub fn mount_tree(
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
) -> std::io::Result<Mounted> {
    mount_library(
        tree,
        origins,
        config,
        stats,
        mountpoint,
        None,
        Arc::new(NoLibrary),
    )
}

/// [`mount_tree`] with a chunk store for remote files: their reads go
/// through `cache` (while it has a store) instead of straight to the origin.
pub fn mount_with_cache(
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
    cache: Arc<dyn StoreSource>,
) -> std::io::Result<Mounted> {
    mount_library(
        tree,
        origins,
        config,
        stats,
        mountpoint,
        Some(cache),
        Arc::new(NoLibrary),
    )
}

/// The daemon's mount: a chunk store for remote files (when given) and a
/// [`Library`] behind the virtual folders, covers and prefetch.
#[allow(clippy::too_many_arguments)]
pub fn mount_library(
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
    cache: Option<Arc<dyn StoreSource>>,
    library: Arc<dyn Library>,
) -> std::io::Result<Mounted> {
    session::mount(
        tree, origins, config, stats, mountpoint, true, cache, library,
    )
}
