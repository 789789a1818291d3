use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

/// Errors of the daemon, the control client and the config loader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file cannot be read or holds an unknown key or bad value.
    #[error("config file {path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    /// A `MUSICFS_*` environment variable is unknown or has a bad value.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A value (from any source) that does not make sense, named by its key.
    #[error("config key `{key}`: {message}")]
    BadValue { key: String, message: String },
    /// A usage mistake on the command line not caught by the parser.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Index(#[from] musicfs_index::Error),
    #[error(transparent)]
    Origin(#[from] musicfs_origins::Error),
    #[error(transparent)]
    Cache(#[from] musicfs_blockcache::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Nothing listens on the control socket.
    #[error("no daemon answers on {}", socket.display())]
    NoDaemon { socket: PathBuf },
    /// A daemon already answers on the control socket.
    #[error("a daemon already answers on {}; stop it first (musicfs shutdown)", socket.display())]
    SocketBusy { socket: PathBuf },
    /// The daemon answered a request with an error.
    #[error("{message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("{0}")]
    Daemon(String),
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let message = if s.message().is_empty() {
            format!("control request failed: {}", s.code())
        } else {
            s.message().to_string()
        };
        Error::Rpc {
            code: s.code(),
            message,
        }
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Config and usage errors exit with status 2, everything else with 1.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::ConfigFile { .. }
                | Error::Env { .. }
                | Error::BadValue { .. }
                | Error::Usage(_)
                | Error::Index(musicfs_index::Error::Template { .. })
        )
    }
}
