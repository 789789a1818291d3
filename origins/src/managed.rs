//! [`ManagedOrigin`]: any origin with health checks, a priority, bandwidth
//! and concurrency limits, transfer counters, and polling for changes when
//! the origin cannot be watched. It is itself an [`Origin`], so the rest of
//! musicfs never sees the difference.
//! STUB: to be written.
use crate::{Change, Entry, Origin, OriginKind, Result, WatchGuard};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Per-origin settings (config `[[origins]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginSettings {
    /// Lower is preferred when several origins hold the same track.
    pub priority: i32,
    /// List the origin this often and apply what changed, for origins that
    /// cannot be watched. `None` = never (local origins use inotify).
    pub poll_interval: Option<Duration>,
    /// Bytes per second read from the origin at most. `None` = unlimited.
    pub bandwidth: Option<u64>,
    /// Calls in flight at most. Default 4.
    pub concurrency: usize,
    /// Health check period while up; while down, checks run every
    /// `health_interval / 5` (at least 1 s) so recovery is noticed soon.
    /// Default 30 s.
    pub health_interval: Duration,
}

impl Default for OriginSettings {
    fn default() -> Self {
        OriginSettings {
            priority: 0,
            poll_interval: None,
            bandwidth: None,
            concurrency: 4,
            health_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Not contacted yet.
    Unknown,
    Up,
    /// The last call or check failed with an origin failure; reads fail
    /// fast (`Error::Unavailable`) until a check succeeds.
    Down,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Up => "up",
            HealthState::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    pub state: HealthState,
    /// When `state` last changed.
    pub since: SystemTime,
    /// The failure that made it down (no credentials in it).
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Duration of the last successful check.
    pub last_latency: Option<Duration>,
    pub last_check: Option<SystemTime>,
}

/// Monotonic counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Bytes read from the origin (reads and scans).
    pub bytes_read: u64,
    /// Calls made (list, stat, read).
    pub requests: u64,
    /// Calls that failed.
    pub errors: u64,
}

pub struct ManagedOrigin {
    inner: Arc<dyn Origin>,
    settings: OriginSettings,
}

impl ManagedOrigin {
    pub fn new(inner: Arc<dyn Origin>, settings: OriginSettings) -> Arc<ManagedOrigin> {
        Arc::new(ManagedOrigin { inner, settings })
    }
    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }
    pub fn inner(&self) -> &Arc<dyn Origin> {
        &self.inner
    }
    pub fn health(&self) -> HealthSnapshot {
        todo!()
    }
    pub fn counters(&self) -> CountersSnapshot {
        todo!()
    }
    /// Calls `f(new_state)` on every health change (e.g. a rescan when an
    /// origin comes back). Set once, before health checks start.
    pub fn on_health_change(&self, _f: Box<dyn Fn(HealthState) + Send + Sync>) {
        todo!()
    }
    /// Starts the periodic health checks (`ping`) on a thread of their
    /// own; they stop when the guard is dropped.
    pub fn start_health_checks(self: &Arc<Self>) -> Box<dyn WatchGuard> {
        todo!()
    }
}

impl Origin for ManagedOrigin {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> OriginKind {
        self.inner.kind()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn list(&self) -> Result<Vec<Entry>> {
        self.inner.list()
    }
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        self.inner.stat(rel_path)
    }
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.inner.read_at(rel_path, offset, buf)
    }
    fn local_path(&self, rel_path: &[u8]) -> Option<std::path::PathBuf> {
        self.inner.local_path(rel_path)
    }
    fn open_local(&self, rel_path: &[u8]) -> Option<Result<std::fs::File>> {
        self.inner.open_local(rel_path)
    }
    fn watch(&self, tx: Sender<Change>) -> Result<Option<Box<dyn WatchGuard>>> {
        self.inner.watch(tx)
    }
    fn ping(&self) -> Result<()> {
        self.inner.ping()
    }
    fn cancel(&self) {
        self.inner.cancel()
    }
    fn priority(&self) -> i32 {
        self.settings.priority
    }
}
