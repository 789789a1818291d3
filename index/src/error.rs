use crate::search::ParseError;

pub type Result<T> = std::result::Result<T, Error>;

/// Errors of the catalog, scanner, synthesizer, cover art and search
/// index, with context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("catalog {path}: schema version {found} is newer than this musicfs understands ({supported}); upgrade musicfs")]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("template {template:?}: {message} at byte {position}")]
    Template {
        template: String,
        position: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Scan { path: String, message: String },
    /// A header could not be synthesized (malformed or unsupported original).
    #[error("synthesizing tags: {0}")]
    Synth(String),
    /// A picture that is not a decodable JPEG or PNG, is over the size
    /// limits, or an audio file whose embedded art cannot be read.
    #[error("{context}: {message}")]
    Picture { context: String, message: String },
    /// A search query that does not parse: the caller's mistake, not a
    /// fault of the index (control answers it with INVALID_ARGUMENT).
    #[error("query {query:?}: {error}")]
    Query { query: String, error: ParseError },
    #[error("search index {context}: {source}")]
    SearchIndex {
        context: String,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The errno to answer a FUSE request with.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            _ => libc::EIO,
        }
    }
}
