//! Remote files read through the chunk store.
//!
//! A remote file has no local bytes; its origin answers ranged reads that
//! may take tens of milliseconds and may fail. Reads go through the chunk
//! store instead: what is below a region's frontier comes from the store
//! (verified), what is just past it is fetched a window at a time, cut by
//! FastCDC, stored and appended to the file's recipe; what is far past it
//! (a seek) is read straight from the origin. Sequential reads start the
//! next window in the background. A file whose regions are all complete is
//! exported as a regular file and opened in passthrough from then on.
//!
//! Modules: [`recipe`] (the per-file recipe and its encoding), [`fetch`]
//! (ranged reads with failover across replicas), `fill` (windows: fetch,
//! chunk, store, extend), `delta` (keeping the body of a file whose tags
//! changed), `read` (serving a FUSE read), `export` (passthrough exports).
//!
//! Store references: `put_batch` gives each chunk a reference, but
//! eviction (blockcache `evict.rs`) ignores reference counts — it skips
//! only pinned chunks — so recipes keep those references without keeping
//! anything from eviction, and must not `release` them: a release of the
//! last reference deletes the chunk at once. Chunks of open files are
//! pinned instead, and unpinned at the last release.
mod delta;
mod export;
mod fetch;
mod fill;
mod prefetch;
mod read;
mod recipe;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tree::Tree;
use crate::{FsStats, OriginTable};
use export::Exports;
use fetch::{Candidate, Candidates};
use musicfs_blockcache::{CdcParams, ChunkId, ChunkStore};
use musicfs_index::{FileId, FileRecord, OriginId, Stamp};
use recipe::FileRecipe;

pub use prefetch::{PrefetchBudget, PrefetchError, Prefetched, Prefetcher};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

/// How remote files are read and cached.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// FastCDC sizes. Default `CdcParams::default()` (16/64/256 KiB).
    pub cdc: CdcParams,
    /// Reads up to this far past a region's frontier extend it (and a
    /// read ending this close to it starts the next window in the
    /// background); farther reads go uncached to the origin. Default 8 MiB.
    pub readahead: u64,
    /// Size of one ranged read from an origin. Default 1 MiB.
    pub fetch_size: u64,
    /// Ranged reads in flight per window. Default 4.
    pub inflight: usize,
    /// Where fully cached files are exported for passthrough. Default None
    /// (no exports).
    pub export_dir: Option<PathBuf>,
    /// Bytes the exports may take. Default 2 GiB.
    pub export_budget: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            cdc: CdcParams::default(),
            readahead: 8 << 20,
            fetch_size: 1 << 20,
            inflight: 4,
            export_dir: None,
            export_budget: 2 << 30,
        }
    }
}

impl RemoteConfig {
    /// The largest window fetched from a frontier at once, reached by
    /// sequential reading (at least two maximal chunks, so such a window
    /// always completes one).
    fn window(&self) -> u64 {
        (self.fetch_size.max(1) * self.inflight.max(1) as u64).max(2 * self.cdc.max as u64)
    }
    /// The window of a file's first read, or of a read that is not
    /// sequential: two average chunks. A tag reader (a media server's scan)
    /// reads a few KiB at the start and end of each file and goes; it must
    /// not pull megabytes. Sequential reads double it up to [`window`].
    fn first_window(&self) -> u64 {
        (2 * self.cdc.avg as u64).min(self.window())
    }
}

/// How a file is being read: where the last read ended and the window
/// that pattern has earned (doubling while reads follow each other).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pattern {
    pub last_end: u64,
    pub window: u64,
}

/// Hands the filesystem the chunk store, once (and while) there is one.
pub trait StoreSource: Send + Sync {
    /// `None` while the cache is not open or is disabled.
    fn store(&self) -> Option<Arc<ChunkStore>>;
    /// The first bytes of a remote file as a scan just fetched them (its
    /// header, read for the tags), if they are still held and `stamp` is
    /// the version they came from: the first window of the file is taken
    /// from them instead of fetched again. That is what keeps a resync
    /// after a tag edit to the new header plus a few KiB.
    fn seed(&self, _origin: OriginId, _rel_path: &[u8], _stamp: Stamp) -> Option<Arc<Seed>> {
        None
    }
}

/// Bytes of a remote file a scan already fetched: its first bytes and its
/// last ones (trailing tags, the quick hash's sample).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// Bytes `[0, head.len())`.
    pub head: Vec<u8>,
    /// Bytes `[tail_offset, tail_offset + tail.len())`.
    pub tail_offset: u64,
    pub tail: Vec<u8>,
}

impl Seed {
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes `[offset, offset + len)` if the tail holds all of them.
    pub(crate) fn tail_range(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let from = offset.checked_sub(self.tail_offset)? as usize;
        self.tail.get(from..from.checked_add(len)?)
    }
}

/// The remote read path's shared state: one per mount.
pub(crate) struct RemoteFiles {
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    config: RemoteConfig,
    stats: Arc<FsStats>,
    cache: Option<Arc<dyn StoreSource>>,
    exports: Option<Exports>,
    /// Files open or being filled, with their users.
    files: Mutex<HashMap<FileId, (Arc<FileState>, usize)>>,
    no_store_logged: AtomicBool,
}

/// Pins held for a file's open handles.
struct Pins {
    store: Arc<ChunkStore>,
    ids: Vec<ChunkId>,
}

/// One remote file while it is open or being filled.
pub(crate) struct FileState {
    record: FileRecord,
    candidates: Candidates,
    recipe: RwLock<FileRecipe>,
    /// Held by the one filler of this file.
    fill: Mutex<()>,
    /// A background window is under way.
    background: AtomicBool,
    exporting: AtomicBool,
    /// Open handles and their pins.
    open: Mutex<(usize, Option<Pins>)>,
    /// The access pattern, for the window size and read-ahead.
    pattern: Mutex<Pattern>,
}

impl FileState {
    fn recipe(&self) -> std::sync::RwLockReadGuard<'_, FileRecipe> {
        self.recipe.read().unwrap_or_else(|e| e.into_inner())
    }
    fn recipe_mut(&self) -> std::sync::RwLockWriteGuard<'_, FileRecipe> {
        self.recipe.write().unwrap_or_else(|e| e.into_inner())
    }
    fn lock_open(&self) -> std::sync::MutexGuard<'_, (usize, Option<Pins>)> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pins `ids` too if the file is open on `store` (new chunks of a playing file).
    fn pin_more(&self, store: &Arc<ChunkStore>, ids: &[ChunkId]) {
        let mut open = self.lock_open();
        if let (n, Some(pins)) = &mut *open {
            if *n > 0 && Arc::ptr_eq(&pins.store, store) {
                for id in ids {
                    store.pin(*id);
                    pins.ids.push(*id);
                }
            }
        }
    }
}

impl RemoteFiles {
    pub(crate) fn new(
        tree: Arc<dyn Tree>,
        origins: OriginTable,
        config: RemoteConfig,
        stats: Arc<FsStats>,
        cache: Option<Arc<dyn StoreSource>>,
    ) -> RemoteFiles {
        let exports = config.export_dir.as_ref().and_then(|dir| {
            match Exports::open(dir, config.export_budget) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "exports disabled: cannot use the export directory: {e}");
                    None
                }
            }
        });
        if let Err(e) = config.cdc.validate() {
            tracing::error!("remote files will not be cached: {e}");
        }
        RemoteFiles {
            tree,
            origins,
            config,
            stats,
            cache,
            exports,
            files: Mutex::new(HashMap::new()),
            no_store_logged: AtomicBool::new(false),
        }
    }

    /// The chunk store, if there is one now (said once in the log when not).
    fn store(&self) -> Option<Arc<ChunkStore>> {
        let store = self
            .cache
            .as_ref()
            .and_then(|c| c.store())
            .filter(|_| self.config.cdc.validate().is_ok());
        if store.is_none() && !self.no_store_logged.swap(true, Relaxed) {
            tracing::info!("no chunk store: remote files are read straight from their origins");
        }
        store
    }

    /// The export of `record`'s current version, opened, if there is one.
    pub(crate) fn export_for(&self, record: &FileRecord) -> Option<(std::fs::File, PathBuf)> {
        self.exports.as_ref()?.open_export(record.id, record.stamp)
    }

    fn candidates(&self, record: &FileRecord, ino: u64) -> Result<Candidates> {
        let origins = self.origins.read().unwrap_or_else(|e| e.into_inner());
        let own = origins
            .get(&record.origin_id)
            .cloned()
            .ok_or(Error::UnknownOrigin {
                ino,
                origin_id: record.origin_id,
            })?;
        let mut list = vec![Candidate {
            origin: own,
            rel_path: record.rel_path.clone(),
            own: true,
        }];
        let replicas = match self.tree.replicas(record.id) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(file = record.id, "listing replicas: {e}");
                Vec::new()
            }
        };
        for r in replicas {
            if let Some(origin) = origins.get(&r.origin_id) {
                list.push(Candidate {
                    origin: origin.clone(),
                    rel_path: r.rel_path,
                    own: false,
                });
            }
        }
        let seed = self
            .cache
            .as_ref()
            .and_then(|c| c.seed(record.origin_id, &record.rel_path, record.stamp));
        Ok(Candidates::new(list, self.stats.clone()).with_seed(seed))
    }

    /// The state of `record`'s file, created (recipe loaded and brought up
    /// to date) if nobody holds it; counts one more user.
    fn enter(&self, record: &FileRecord, ino: u64) -> Result<Arc<FileState>> {
        {
            let mut files = self.lock_files();
            if let Some((state, users)) = files.get_mut(&record.id) {
                if same_version(&state.record, record) {
                    *users += 1;
                    return Ok(state.clone());
                }
            }
        }
        let candidates = self.candidates(record, ino)?;
        let recipe = self.load_recipe(record, &candidates);
        let state = Arc::new(FileState {
            record: record.clone(),
            candidates,
            recipe: RwLock::new(recipe),
            fill: Mutex::new(()),
            background: AtomicBool::new(false),
            exporting: AtomicBool::new(false),
            open: Mutex::new((0, None)),
            pattern: Mutex::new(Pattern {
                last_end: u64::MAX,
                window: self.config.first_window(),
            }),
        });
        let mut files = self.lock_files();
        // Someone may have raced us here: use theirs (one filler per file).
        match files.get_mut(&record.id) {
            Some((existing, users)) if same_version(&existing.record, record) => {
                *users += 1;
                Ok(existing.clone())
            }
            _ => {
                files.insert(record.id, (state.clone(), 1));
                Ok(state)
            }
        }
    }

    /// One user less; the state is forgotten with its last user.
    fn leave(&self, state: &Arc<FileState>) {
        let mut files = self.lock_files();
        if let Some((existing, users)) = files.get_mut(&state.record.id) {
            if Arc::ptr_eq(existing, state) {
                *users -= 1;
                if *users == 0 {
                    files.remove(&state.record.id);
                }
            }
        }
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, HashMap<FileId, (Arc<FileState>, usize)>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The saved recipe if it still describes the file; else what the
    /// delta check keeps of it (saved); else an empty one.
    fn load_recipe(&self, record: &FileRecord, candidates: &Candidates) -> FileRecipe {
        let saved = match self.tree.recipe(record.id) {
            Ok(Some(bytes)) => match FileRecipe::decode(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(file = record.id, "{e}; starting afresh");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(file = record.id, "loading recipe: {e}");
                None
            }
        };
        let Some(saved) = saved else {
            return FileRecipe::empty(record);
        };
        if saved.fits(record) {
            return saved;
        }
        let Some(store) = self.store() else {
            // Cannot compare without the store; decide when there is one.
            return FileRecipe::empty(record);
        };
        match delta::reconcile(&saved, record, &store, candidates) {
            Ok(recipe) => {
                self.save(record.id, &recipe);
                recipe
            }
            Err(e) => {
                tracing::warn!(file = record.id, "checking a changed file's recipe: {e}");
                FileRecipe::empty(record)
            }
        }
    }

    fn save(&self, file_id: FileId, recipe: &FileRecipe) {
        if let Err(e) = self.tree.set_recipe(file_id, &recipe.encode()) {
            tracing::warn!(file = file_id, "saving recipe: {e}");
        }
    }

    /// Forgets a recipe that no longer matches the origin's bytes.
    fn drop_recipe(&self, state: &FileState) {
        *state.recipe_mut() = FileRecipe::empty(&state.record);
        if let Err(e) = self.tree.set_recipe(state.record.id, &[]) {
            tracing::warn!(file = state.record.id, "dropping recipe: {e}");
        }
    }

    /// Opens a handle on a remote file.
    pub(crate) fn open(self: &Arc<Self>, record: &FileRecord, ino: u64) -> Result<RemoteHandle> {
        let state = self.enter(record, ino)?;
        let mut open = state.lock_open();
        open.0 += 1;
        if open.0 == 1 {
            if let Some(store) = self.store() {
                let ids: Vec<ChunkId> = state
                    .recipe()
                    .ids()
                    .filter(|id| store.contains(*id))
                    .collect();
                for id in &ids {
                    store.pin(*id);
                }
                open.1 = Some(Pins { store, ids });
            }
        }
        drop(open);
        Ok(RemoteHandle {
            files: self.clone(),
            state,
        })
    }

    /// Writes the export of a complete file on a background thread, once.
    fn spawn_export(self: &Arc<Self>, state: &Arc<FileState>, store: &Arc<ChunkStore>) {
        let Some(exports) = &self.exports else { return };
        if !state.recipe().is_complete() || exports.exists(state.record.id, state.record.stamp) {
            return;
        }
        if state.exporting.swap(true, Relaxed) {
            return;
        }
        let record = state.record.clone();
        let users = self.lock_files().get_mut(&record.id).map(|(s, u)| {
            *u += 1;
            s.clone()
        });
        let (files, state, store) = (self.clone(), state.clone(), store.clone());
        let spawned = std::thread::Builder::new()
            .name("musicfs-export".into())
            .spawn(move || {
                let recipe = state.recipe().clone();
                match files
                    .exports
                    .as_ref()
                    .expect("checked")
                    .write(&store, record.id, &recipe)
                {
                    Ok(true) => {
                        files.stats.exports.fetch_add(1, Relaxed);
                        tracing::debug!(file = record.id, "exported for passthrough");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(file = record.id, "exporting: {e}"),
                }
                state.exporting.store(false, Relaxed);
                if let Some(s) = users {
                    files.leave(&s);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start an export thread: {e}");
        }
    }
}

/// Whether two records describe the same bytes at the same place.
fn same_version(a: &FileRecord, b: &FileRecord) -> bool {
    a.id == b.id
        && a.origin_id == b.origin_id
        && a.rel_path == b.rel_path
        && a.stamp == b.stamp
        && a.audio_offset == b.audio_offset
        && a.audio_length == b.audio_length
}

/// A daemon-mode handle on a remote file.
pub(crate) struct RemoteHandle {
    files: Arc<RemoteFiles>,
    state: Arc<FileState>,
}

impl RemoteHandle {
    /// Up to `buf.len()` bytes at `offset` (short only at end of file).
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.files.read(&self.state, offset, buf)
    }
}

impl Drop for RemoteHandle {
    /// The last handle unpins the file's chunks and exports it if complete.
    fn drop(&mut self) {
        let pins = {
            let mut open = self.state.lock_open();
            open.0 -= 1;
            if open.0 == 0 {
                open.1.take()
            } else {
                None
            }
        };
        if let Some(pins) = pins {
            for id in &pins.ids {
                pins.store.unpin(*id);
            }
            self.files.spawn_export(&self.state, &pins.store);
        }
        self.files.leave(&self.state);
    }
}
