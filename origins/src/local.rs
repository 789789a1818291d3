//! `LocalOrigin`: a directory on this machine.
use crate::{Entry, Origin, OriginKind, Result};
use std::path::PathBuf;

/// A local directory. Files are opened `O_RDONLY|O_NOATIME` (falling back to
/// `O_RDONLY` where `O_NOATIME` is refused) so reads do not even touch atime.
pub struct LocalOrigin {
    name: String,
    root: PathBuf,
}

impl LocalOrigin {
    /// Fails with `Error::BadRoot` if `root` is not a readable directory.
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self> {
        todo!()
    }
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Origin for LocalOrigin {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Local
    }
    fn location(&self) -> String {
        self.root.display().to_string()
    }
    fn list(&self) -> Result<Vec<Entry>> {
        todo!()
    }
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        todo!()
    }
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        todo!()
    }
}
