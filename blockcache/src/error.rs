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
}

impl Error {
    /// The errno to answer a FUSE request with.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Unaligned { .. } | Error::OutOfRange { .. } => libc::EINVAL,
        }
    }
}
