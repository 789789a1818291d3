//! Overlay edits and splice plans: tags edited in the catalog (never in
//! the origin file) and the synthesized layout the file is served with.
//!
//! - `overlay`: per file and canonical key, the values the key is served
//!   with (none = the key is removed from the served file).
//! - `splices`: per edited file, the encoded [`Plan`] and the stamp of the
//!   original it was computed from; valid only while the file's stamp is
//!   the same. The tree shows a file with a valid splice at the plan's size.
use super::{Catalog, FileId, Stamp};
use crate::synth::{Plan, TagEdit};
use crate::Result;

impl Catalog {
    /// Applies `edits` to a file's overlay: each key given replaces that
    /// key's earlier edit. Keys not given keep their edits.
    pub fn set_overlay(&self, _id: FileId, _edits: &[TagEdit]) -> Result<()> {
        Ok(())
    }
    /// Drops a file's overlay edits of `keys` (all when empty) and, when
    /// none is left, its splice. True when something was dropped.
    pub fn reset_overlay(&self, _id: FileId, _keys: &[String]) -> Result<bool> {
        Ok(false)
    }
    /// A file's overlay edits, by key.
    pub fn overlay(&self, _id: FileId) -> Result<Vec<TagEdit>> {
        Ok(Vec::new())
    }
    /// A file's tags as served: scanned tags with the overlay applied.
    pub fn effective_tags(&self, id: FileId) -> Result<Vec<(String, String)>> {
        self.tags(id)
    }
    /// Records the plan a file is served with, computed from the original
    /// with stamp `stamp`.
    pub fn set_splice(&self, _id: FileId, _stamp: Stamp, _plan: &Plan) -> Result<()> {
        Ok(())
    }
    /// The plan a file is served with, if it has one valid for its
    /// current stamp.
    pub fn splice(&self, _id: FileId) -> Result<Option<Plan>> {
        Ok(None)
    }
    /// Files with overlay edits but no valid splice (new edits, or the
    /// original changed since): the daemon computes their plans.
    pub fn files_needing_splice(&self) -> Result<Vec<FileId>> {
        Ok(Vec::new())
    }
}
