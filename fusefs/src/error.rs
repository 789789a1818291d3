//! The crate's one error type; every variant maps to the errno a FUSE
//! request is answered with.
use musicfs_index::OriginId;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog failed; the request gets `EIO`.
    #[error("catalog: {0}")]
    Catalog(#[from] musicfs_index::Error),
    /// A node points at a file row that is gone (the tree and files are
    /// updated in one transaction, so this is a race with a rescan).
    #[error("inode {ino}: catalog file {file_id} is missing")]
    MissingFile { ino: u64, file_id: i64 },
    /// The catalog names an origin the daemon has not configured.
    #[error("inode {ino}: origin {origin_id} is not configured")]
    UnknownOrigin { ino: u64, origin_id: OriginId },
    /// Opening the real file of a local origin failed.
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading an open local file failed.
    #[error("reading {path} at {offset}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Origin(#[from] musicfs_origins::Error),
}

impl Error {
    /// The errno to answer a FUSE request with.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Catalog(_) | Error::UnknownOrigin { .. } => libc::EIO,
            Error::MissingFile { .. } => libc::ENOENT,
            Error::Open { source, .. } | Error::Read { source, .. } => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
            Error::Origin(e) => e.errno(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_keeps_the_os_error_of_an_open() {
        let e = Error::Open {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(e.errno(), libc::EACCES);
        assert!(e.to_string().contains("/x"));
        let e = Error::UnknownOrigin {
            ino: 5,
            origin_id: 9,
        };
        assert_eq!(e.errno(), libc::EIO);
    }
}
