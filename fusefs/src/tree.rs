//! What the filesystem needs from the catalog, as a trait so the FUSE layer
//! can be exercised against an in-memory tree ([`crate::testutil::MemTree`])
//! as well as the real SQLite [`Catalog`].
use musicfs_index::synth::Plan;
use musicfs_index::{Catalog, Counts, FileId, FileRecord, Node, Result};

/// Read-only view of the virtual tree. Every method is a point query on the
/// hot path; implementations must be cheap and thread-safe.
pub trait Tree: Send + Sync + 'static {
    fn node(&self, ino: u64) -> Result<Option<Node>>;
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Node>>;
    /// Children of `parent` with `ino > after`, in inode order, at most `limit`.
    fn children(&self, parent: u64, after: u64, limit: usize) -> Result<Vec<Node>>;
    fn file(&self, id: FileId) -> Result<Option<FileRecord>>;
    fn counts(&self) -> Result<Counts>;
    /// Files on *other* origins holding the same bytes as `id` (same size
    /// and quick hash, or same content hash): where a read may go when
    /// `id`'s origin is down, even in the middle of a read. Unordered.
    fn replicas(&self, _id: FileId) -> Result<Vec<FileRecord>> {
        Ok(Vec::new())
    }
    /// The saved chunk recipe of a remote file (opaque bytes; the remote
    /// read path owns their format).
    fn recipe(&self, _id: FileId) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Saves (replaces) a remote file's chunk recipe.
    fn set_recipe(&self, _id: FileId, _data: &[u8]) -> Result<()> {
        Ok(())
    }
    /// The synthesized layout a file is served with, when its tags were
    /// edited (valid for its current stamp); `None` = serve it as it is.
    fn splice(&self, _id: FileId) -> Result<Option<Plan>> {
        Ok(None)
    }
    /// The file nodes showing catalog file `id` (usually one).
    fn inos_of_file(&self, _id: FileId) -> Result<Vec<u64>> {
        Ok(Vec::new())
    }
}

impl Tree for Catalog {
    fn node(&self, ino: u64) -> Result<Option<Node>> {
        Catalog::node(self, ino)
    }
    fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Node>> {
        Catalog::lookup(self, parent, name)
    }
    fn children(&self, parent: u64, after: u64, limit: usize) -> Result<Vec<Node>> {
        Catalog::children(self, parent, after, limit)
    }
    fn file(&self, id: FileId) -> Result<Option<FileRecord>> {
        Catalog::file(self, id)
    }
    fn counts(&self) -> Result<Counts> {
        Catalog::counts(self)
    }
    fn replicas(&self, id: FileId) -> Result<Vec<FileRecord>> {
        Catalog::replicas(self, id)
    }
    fn recipe(&self, id: FileId) -> Result<Option<Vec<u8>>> {
        Catalog::recipe(self, id)
    }
    fn set_recipe(&self, id: FileId, data: &[u8]) -> Result<()> {
        Catalog::set_recipe(self, id, data)
    }
    fn splice(&self, id: FileId) -> Result<Option<Plan>> {
        Catalog::splice(self, id)
    }
    fn inos_of_file(&self, id: FileId) -> Result<Vec<u64>> {
        Catalog::inos_of_file(self, id)
    }
}
