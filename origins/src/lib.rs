//! Origins: where audio files live. musicfs only ever reads from them.
//!
//! One trait, [`Origin`], with few required methods; one implementation per
//! file: `LocalOrigin` (`local.rs`), `SftpOrigin` (`sftp.rs`), `S3Origin`
//! (`s3.rs`), `WebDavOrigin` (`webdav.rs`). Paths handed across the seam are
//! *relative* to the origin root, as raw bytes (`Vec<u8>`), so non-UTF-8
//! names survive.
//!
//! Around them: `remote` (the runtime, time limits, retries with backoff
//! and jitter, cancellation), [`ManagedOrigin`] (health checks, priority,
//! bandwidth and concurrency limits, transfer counters, polling for
//! origins that cannot be watched) and [`RangeReader`] (ranged, counted
//! reads for scanning without downloading whole files).

mod beneath;
mod dal;
mod error;
mod local;
mod managed;
mod poll;
mod ranged;
pub mod remote;
mod s3;
mod secret;
mod sftp;
mod watch;
mod webdav;

pub use error::{Error, Result};
pub use local::{LocalOrigin, DEFAULT_DEBOUNCE};
pub use managed::{CountersSnapshot, HealthSnapshot, HealthState, ManagedOrigin, OriginSettings};
pub use poll::start_poller;
pub use ranged::RangeReader;
pub use remote::RemoteOptions;
pub use s3::{S3Config, S3Origin};
pub use secret::Secret;
pub use sftp::{SftpAuth, SftpConfig, SftpOrigin};
pub use webdav::{WebDavConfig, WebDavOrigin};

use std::path::PathBuf;
use std::sync::mpsc::Sender;

/// What an origin says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the origin root, raw bytes, `/`-separated, no leading `/`.
    pub rel_path: Vec<u8>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// A change seen by a watcher (already debounced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A file appeared or its content changed: rescan it.
    Upsert(Vec<u8>),
    /// A file is gone.
    Remove(Vec<u8>),
    /// Something happened that cannot be pinned to files (overflow,
    /// directory moved in or out): rescan the whole origin.
    Rescan,
}

/// The kind of an origin, as shown to admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginKind {
    Local,
    Sftp,
    S3,
    WebDav,
}

impl OriginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::Local => "local",
            OriginKind::Sftp => "sftp",
            OriginKind::S3 => "s3",
            OriginKind::WebDav => "webdav",
        }
    }
    /// Remote origins are read through the chunk cache and polled for changes.
    pub fn is_remote(self) -> bool {
        self != OriginKind::Local
    }
}

/// Stops a watcher when dropped.
pub trait WatchGuard: Send {}

/// A place audio files live. Implementations never write to the origin.
pub trait Origin: Send + Sync {
    /// Short unique name (from config), e.g. `music`.
    fn name(&self) -> &str;
    fn kind(&self) -> OriginKind;
    /// Human-readable location (directory, URL) with no credentials in it.
    fn location(&self) -> String;
    /// Every regular file under the origin (audio or not: the scanner decides).
    /// Hidden files and directories (leading `.`) are skipped.
    fn list(&self) -> Result<Vec<Entry>>;
    /// Stat one file.
    fn stat(&self, rel_path: &[u8]) -> Result<Entry>;
    /// Read up to `buf.len()` bytes at `offset`; returns bytes read (0 at EOF).
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// For origins whose files are regular local files: the absolute path,
    /// usable for `open(O_RDONLY)` and kernel passthrough.
    fn local_path(&self, _rel_path: &[u8]) -> Option<PathBuf> {
        None
    }
    /// For origins whose files are regular local files: opens one read-only
    /// (`O_NOATIME` where allowed), confined below the origin's root — no
    /// `..`, no symlinks followed, only regular files. `None` when this origin
    /// has no local files. The FUSE layer uses it for passthrough backing fds
    /// and daemon reads.
    fn open_local(&self, _rel_path: &[u8]) -> Option<Result<std::fs::File>> {
        None
    }
    /// Start watching for changes; changes are sent (debounced) on `tx`
    /// until the guard is dropped. `Ok(None)` if this origin cannot watch.
    fn watch(&self, _tx: Sender<Change>) -> Result<Option<Box<dyn WatchGuard>>> {
        Ok(None)
    }
    /// A cheap check that the origin answers (stat of its root, a HEAD of
    /// the bucket), used by health checks.
    fn ping(&self) -> Result<()> {
        Ok(())
    }
    /// Cancels calls in flight and refuses new ones (daemon shutdown).
    fn cancel(&self) {}
    /// Whether reads would be tried now: false while health checks say the
    /// origin is down (readers then fail fast or use another origin).
    fn available(&self) -> bool {
        true
    }
    /// Where this origin stands when several hold the same track: lower
    /// is preferred.
    fn priority(&self) -> i32 {
        0
    }
}
