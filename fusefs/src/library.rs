//! [`Library`]: what the filesystem asks the rest of musicfs for beyond
//! the tree: search results, collections, cover art, prefetch, and the
//! play log. Every method has a do-nothing default, so a mount without a
//! library (unit tests, `mount_tree`) simply shows no virtual folders'
//! contents and no covers.
use musicfs_index::FileId;
use std::sync::Arc;

/// Which rendition of an album's cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoverSize {
    /// The picture as found (embedded or beside the tracks), `cover.jpg`.
    Original,
    /// At most 600 px on the longer side.
    Medium,
    /// At most 200 px on the longer side.
    Thumbnail,
}

/// Implemented by the daemon (`musicfs-control`). Called on FUSE worker
/// threads: implementations must be thread-safe and quick, or cache.
pub trait Library: Send + Sync + 'static {
    /// Files matching a search query (beets-like syntax), best first, at
    /// most `limit`. `Err` carries a message for a malformed query.
    fn search(&self, _query: &str, _limit: usize) -> Result<Vec<FileId>, String> {
        Ok(Vec::new())
    }
    /// Names of the collections, built-in and saved.
    fn collections(&self) -> Vec<String> {
        Vec::new()
    }
    /// The files of a collection, in its order, at most `limit`; `None`
    /// when there is no such collection.
    fn collection(&self, _name: &str, _limit: usize) -> Option<Vec<FileId>> {
        None
    }
    /// The cover of the album folder `dir` (a directory node of the tree)
    /// as JPEG bytes; `None` when it has none. May be slow the first time
    /// (extraction, resizing); implementations cache.
    fn cover(&self, _dir: u64, _size: CoverSize) -> Option<Arc<[u8]>> {
        None
    }
    /// The mount hands over its prefetcher once, before serving any
    /// request, so prefetches fill the same per-file state (and respect
    /// the same pins) as the mount's reads.
    fn attach(&self, _prefetcher: crate::Prefetcher) {}
    /// Prefetch these files into the chunk cache in the background.
    fn prefetch(&self, _files: Vec<FileId>) {}
    /// A track was opened (for reading its bytes, through any path).
    fn opened(&self, _file: FileId) {}
    /// A handle on a track was released after `bytes_read` bytes were
    /// read through the daemon (0 for passthrough handles).
    fn released(&self, _file: FileId, _bytes_read: u64) {}
}

/// The library of a mount that has none.
pub struct NoLibrary;

impl Library for NoLibrary {}
