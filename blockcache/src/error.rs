pub type Result<T> = std::result::Result<T, Error>;

/// Errors from the chunk store and its devices, with context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{device}: {op} at offset {offset}: {source}")]
    Io {
        device: String,
        op: &'static str,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{device}: unaligned {op}: offset {offset}, length {len} (alignment {align})")]
    Unaligned {
        device: String,
        op: &'static str,
        offset: u64,
        len: usize,
        align: usize,
    },
    #[error("{device}: {op} past the end: offset {offset} + {len} > size {size}")]
    OutOfRange {
        device: String,
        op: &'static str,
        offset: u64,
        len: usize,
        size: u64,
    },
    #[error("invalid chunk store configuration: {0}")]
    Config(String),
    #[error("{device}: not a musicfs chunk store: {detail}")]
    NotFormatted { device: String, detail: String },
    #[error("{device}: chunk store metadata is damaged: {detail}")]
    Corrupt { device: String, detail: String },
    #[error(
        "{device}: no room for a chunk of {len} bytes (everything left is pinned or fragmented)"
    )]
    Full { device: String, len: usize },
    #[error("chunk of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("{device}: an earlier write failed; reopen the chunk store to recover")]
    Poisoned { device: String },
    #[error("reading a chunk stream: {0}")]
    Source(#[source] std::io::Error),
}

impl Error {
    /// The errno to answer a FUSE request with.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Unaligned { .. } | Error::OutOfRange { .. } | Error::Config(_) => libc::EINVAL,
            Error::NotFormatted { .. } | Error::Corrupt { .. } | Error::Poisoned { .. } => {
                libc::EIO
            }
            Error::Full { .. } => libc::ENOSPC,
            Error::TooLarge { .. } => libc::EFBIG,
            Error::Source(source) => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}
