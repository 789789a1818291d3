//! [`DaemonLibrary`]: the daemon's side of the filesystem's
//! [`Library`] seam (search, collections, covers, prefetch, play log),
//! shared with the gRPC service through `DaemonState::library`.
use musicfs_fusefs::{CoverSize, Library};
use musicfs_index::{Catalog, FileId};
use std::sync::Arc;

pub struct DaemonLibrary {
    pub catalog: Arc<Catalog>,
    /// Background prefetch: the mount's prefetcher, next tracks.
    prefetch: crate::prefetch::PrefetchQueue,
    /// Cover art, set once the origins are known (`set_covers`).
    covers: std::sync::OnceLock<crate::covers::Covers>,
    /// The search index (opened and kept in step by `search::start_sync`).
    pub search: crate::search::SearchSlot,
    /// Open handles and the play log behind Recently/Most Played.
    plays: crate::search::PlayLog,
}

impl DaemonLibrary {
    pub fn new(catalog: Arc<Catalog>) -> DaemonLibrary {
        DaemonLibrary {
            search: crate::search::SearchSlot::default(),
            plays: crate::search::PlayLog::new(catalog.clone()),
            prefetch: crate::prefetch::PrefetchQueue::new(catalog.clone()),
            catalog,
            covers: std::sync::OnceLock::new(),
        }
    }
}

impl DaemonLibrary {
    /// Serves covers from `covers` (once; later calls are ignored).
    pub fn set_covers(&self, covers: crate::covers::Covers) {
        let _ = self.covers.set(covers);
    }
}

impl DaemonLibrary {
    /// The mount's prefetcher (for the Prefetch RPC), once mounted.
    pub fn prefetcher(&self) -> Option<&musicfs_fusefs::Prefetcher> {
        self.prefetch.prefetcher()
    }
}

impl Library for DaemonLibrary {
    fn attach(&self, prefetcher: musicfs_fusefs::Prefetcher) {
        self.prefetch.attach(prefetcher);
    }
    fn search(&self, query: &str, limit: usize) -> Result<Vec<FileId>, String> {
        let index = self
            .search
            .index()
            .ok_or_else(|| "the search index is still opening".to_string())?;
        let (hits, _) = index.search(query, limit).map_err(|e| e.to_string())?;
        Ok(hits.into_iter().map(|(id, _)| id).collect())
    }
    fn collections(&self) -> Vec<String> {
        crate::search::all_collections(self)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }
    fn collection(&self, name: &str, limit: usize) -> Option<Vec<FileId>> {
        let found = crate::search::find_collection(self, name)?;
        match crate::search::resolve(self, &found, limit) {
            Ok((ids, _)) => Some(ids),
            Err(e) => {
                tracing::warn!(name, "listing a collection: {e}");
                Some(Vec::new())
            }
        }
    }
    fn cover(&self, dir: u64, size: CoverSize) -> Option<Arc<[u8]>> {
        self.covers.get()?.cover(dir, size)
    }
    fn prefetch(&self, files: Vec<FileId>) {
        self.prefetch.enqueue(files);
    }
    fn opened(&self, file: FileId) {
        // The next tracks of the album, fetched before they are played.
        self.prefetch.opened(file);
        self.plays.opened(file);
    }
    fn released(&self, file: FileId, bytes_read: u64) {
        self.plays.released(file, bytes_read);
    }
}
