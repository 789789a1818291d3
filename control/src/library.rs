//! [`DaemonLibrary`]: the daemon's side of the filesystem's
//! [`Library`] seam (search, collections, covers, prefetch, play log),
//! shared with the gRPC service through `DaemonState::library`.
use musicfs_fusefs::{CoverSize, Library};
use musicfs_index::{Catalog, FileId};
use std::sync::Arc;

pub struct DaemonLibrary {
    pub catalog: Arc<Catalog>,
}

impl DaemonLibrary {
    pub fn new(catalog: Arc<Catalog>) -> DaemonLibrary {
        DaemonLibrary { catalog }
    }
}

impl Library for DaemonLibrary {
    fn search(&self, _query: &str, _limit: usize) -> Result<Vec<FileId>, String> {
        Ok(Vec::new())
    }
    fn collections(&self) -> Vec<String> {
        Vec::new()
    }
    fn collection(&self, _name: &str, _limit: usize) -> Option<Vec<FileId>> {
        None
    }
    fn cover(&self, _dir: u64, _size: CoverSize) -> Option<Arc<[u8]>> {
        None
    }
    fn prefetch(&self, _files: Vec<FileId>) {}
    fn opened(&self, _file: FileId) {}
    fn released(&self, _file: FileId, _bytes_read: u64) {}
}
