use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

/// Errors from an origin, with the origin and path they concern.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("origin {origin}: {path}: {source}")]
    Io {
        origin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("origin {origin}: root {path} is not a readable directory: {source}")]
    BadRoot {
        origin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("origin {origin}: cannot watch: {message}")]
    Watch { origin: String, message: String },
}

impl Error {
    /// The errno to answer a FUSE request with.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } | Error::BadRoot { source, .. } => {
                source.raw_os_error().unwrap_or(match source.kind() {
                    // Errors made here (refused paths, odd file types) carry a
                    // kind but no OS code.
                    std::io::ErrorKind::InvalidInput => libc::EINVAL,
                    std::io::ErrorKind::NotFound => libc::ENOENT,
                    std::io::ErrorKind::PermissionDenied => libc::EACCES,
                    _ => libc::EIO,
                })
            }
            Error::Watch { .. } => libc::EIO,
        }
    }
}
