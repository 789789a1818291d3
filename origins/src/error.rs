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
    /// A remote call failed. `transient` errors (connection refused or
    /// reset, timeouts, 5xx, throttling) are retried; others (auth, not
    /// found, bad config) are not. `message` never holds credentials.
    #[error("origin {origin}: {op} {path}: {message}")]
    Remote {
        origin: String,
        op: &'static str,
        path: String,
        message: String,
        transient: bool,
        /// ENOENT for a missing file, EACCES for refused access, EIO otherwise.
        errno: i32,
    },
    /// A call (with its retries) did not finish within its time limit.
    #[error("origin {origin}: {op} {path}: timed out after {after:?}")]
    Timeout {
        origin: String,
        op: &'static str,
        path: String,
        after: std::time::Duration,
    },
    /// The origin as a whole refused us (authentication, an unknown or
    /// changed host key): not retried, and the origin counts as down until
    /// a health check gets in.
    #[error("origin {origin}: {message}")]
    Refused { origin: String, message: String },
    /// The origin is marked down by its health checks; the call was not tried.
    #[error("origin {origin} is unavailable: {reason}")]
    Unavailable { origin: String, reason: String },
    /// The origin is shutting down; calls in flight were cancelled.
    #[error("origin {origin}: cancelled")]
    Cancelled { origin: String },
    /// The origin's settings cannot work (bad URL, unreadable key file).
    #[error("origin {origin}: {message}")]
    Config { origin: String, message: String },
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
            Error::Remote { errno, .. } => *errno,
            Error::Timeout { .. } | Error::Unavailable { .. } | Error::Cancelled { .. } => {
                libc::EIO
            }
            Error::Config { .. } => libc::EIO,
            Error::Refused { .. } => libc::EACCES,
        }
    }

    /// Worth retrying: the same call may well succeed a moment later.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Remote { transient, .. } => *transient,
            Error::Timeout { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::Interrupted
            ),
            _ => false,
        }
    }

    /// Says the origin itself is unreachable or failing (as opposed to one
    /// file being missing): health checks count these.
    pub fn is_origin_failure(&self) -> bool {
        match self {
            Error::Remote { errno, .. } => *errno == libc::EIO,
            Error::Timeout { .. } | Error::Unavailable { .. } | Error::Refused { .. } => true,
            Error::Io { .. } => self.is_transient(),
            _ => false,
        }
    }
}
