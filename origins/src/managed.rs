//! [`ManagedOrigin`]: any origin with health checks, a priority, bandwidth
//! and concurrency limits, transfer counters, and polling for changes when
//! the origin cannot be watched. It is itself an [`Origin`], so the rest of
//! musicfs never sees the difference.
//!
//! Health follows every call: a success marks the origin up, a failure of
//! the origin itself ([`Error::is_origin_failure`]: unreachable, timed out,
//! server errors) marks it down; a missing file does not. While down, calls
//! fail fast with [`Error::Unavailable`] instead of each waiting out the
//! remote time limits, and only the health checks (`ping`) touch the origin
//! until one succeeds.
use crate::{Change, Entry, Error, Origin, OriginKind, Result, WatchGuard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

mod limits;
use limits::{Slots, TokenBucket};

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
    /// Calls in flight at most; 0 = unlimited. Default 4.
    pub concurrency: usize,
    /// Health check period while up (or not yet contacted). Default 30 s.
    pub health_interval: Duration,
    /// Health check period while down, shorter so that recovery is noticed
    /// soon. Default 2 s.
    pub down_check_interval: Duration,
}

impl Default for OriginSettings {
    fn default() -> Self {
        OriginSettings {
            priority: 0,
            poll_interval: None,
            bandwidth: None,
            concurrency: 4,
            health_interval: Duration::from_secs(30),
            down_check_interval: Duration::from_secs(2),
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
    /// Calls refused without trying, because the origin was down (not in
    /// `requests` or `errors`: the origin never saw them).
    pub refused: u64,
}

type HealthCallback = Arc<dyn Fn(HealthState) + Send + Sync>;

pub struct ManagedOrigin {
    inner: Arc<dyn Origin>,
    settings: OriginSettings,
    /// For handing the poller an `Arc` of ourselves from `watch(&self)`.
    me: Weak<ManagedOrigin>,
    health: Mutex<Health>,
    /// Serialises callback delivery so transitions arrive in order.
    delivering: Mutex<()>,
    on_change: Mutex<Option<HealthCallback>>,
    /// The running health checker, woken when a call marks us down so it
    /// switches to the short period at once.
    checker: Mutex<Option<Weak<CheckerSignal>>>,
    bytes_read: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    slots: Slots,
    bucket: Option<TokenBucket>,
}

struct Health {
    snap: HealthSnapshot,
    /// Transitions not yet handed to the callback, in the order they happened.
    pending: Vec<HealthState>,
}

impl ManagedOrigin {
    pub fn new(inner: Arc<dyn Origin>, settings: OriginSettings) -> Arc<ManagedOrigin> {
        Arc::new_cyclic(|me| ManagedOrigin {
            slots: Slots::new(settings.concurrency),
            bucket: settings.bandwidth.map(TokenBucket::new),
            inner,
            settings,
            me: me.clone(),
            health: Mutex::new(Health {
                snap: HealthSnapshot {
                    state: HealthState::Unknown,
                    since: SystemTime::now(),
                    last_error: None,
                    consecutive_failures: 0,
                    last_latency: None,
                    last_check: None,
                },
                pending: Vec::new(),
            }),
            delivering: Mutex::new(()),
            on_change: Mutex::new(None),
            checker: Mutex::new(None),
            bytes_read: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }
    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }
    pub fn inner(&self) -> &Arc<dyn Origin> {
        &self.inner
    }
    pub fn health(&self) -> HealthSnapshot {
        lock(&self.health).snap.clone()
    }
    pub fn counters(&self) -> CountersSnapshot {
        CountersSnapshot {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
    /// Calls `f(new_state)` on every health change (e.g. a rescan when an
    /// origin comes back). Set once, before health checks start.
    pub fn on_health_change(&self, f: Box<dyn Fn(HealthState) + Send + Sync>) {
        *lock(&self.on_change) = Some(Arc::from(f));
    }
    /// Starts the periodic health checks (`ping`) on a thread of their
    /// own; they stop when the guard is dropped. The first check runs at
    /// once.
    pub fn start_health_checks(self: &Arc<Self>) -> Box<dyn WatchGuard> {
        let signal = Arc::new(CheckerSignal::default());
        *lock(&self.checker) = Some(Arc::downgrade(&signal));
        let weak = Arc::downgrade(self);
        let thread_signal = signal.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("health-{}", self.name()))
            .spawn(move || run_checks(weak, thread_signal));
        if let Err(e) = spawned {
            tracing::error!(origin = %self.name(), error = %e, "cannot start health checks");
        }
        Box::new(CheckerGuard { signal })
    }

    /// One health check: ping the origin, record the outcome.
    fn check(&self) -> Result<()> {
        let start = Instant::now();
        let result = self.inner.ping();
        let latency = start.elapsed();
        match &result {
            Ok(()) => self.record_success(Some(latency)),
            Err(e) => self.record_failure(e, true),
        }
        result
    }

    fn check_interval(&self) -> Duration {
        match lock(&self.health).snap.state {
            HealthState::Down => self.settings.down_check_interval,
            HealthState::Up | HealthState::Unknown => self.settings.health_interval,
        }
    }

    /// Runs one list/stat/read through the limits and the health record.
    fn call<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.refuse_if_down()?;
        let _slot = self.slots.acquire();
        // It may have gone down while this call waited for a slot.
        self.refuse_if_down()?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = f();
        match &result {
            Ok(_) => self.record_success(None),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.record_failure(e, false);
            }
        }
        result
    }

    fn refuse_if_down(&self) -> Result<()> {
        let health = lock(&self.health);
        if health.snap.state != HealthState::Down {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Err(Error::Unavailable {
            origin: self.name().to_string(),
            reason: health
                .snap
                .last_error
                .clone()
                .unwrap_or_else(|| "health check failed".into()),
        })
    }

    /// `latency` is given by health checks only (the snapshot's latency
    /// and last check are about checks, not reads of arbitrary sizes).
    fn record_success(&self, latency: Option<Duration>) {
        let changed = {
            let mut health = lock(&self.health);
            let snap = &mut health.snap;
            snap.consecutive_failures = 0;
            if let Some(latency) = latency {
                snap.last_latency = Some(latency);
                snap.last_check = Some(SystemTime::now());
            }
            let changed = snap.state != HealthState::Up;
            if changed {
                snap.state = HealthState::Up;
                snap.since = SystemTime::now();
                health.pending.push(HealthState::Up);
            }
            changed
        };
        if changed {
            tracing::info!(origin = %self.name(), "origin is up");
            self.deliver();
        }
    }

    fn record_failure(&self, e: &Error, from_check: bool) {
        if !e.is_origin_failure() {
            // One missing or refused file says nothing about the origin,
            // but a check that fails this way still counts as a check.
            if from_check {
                lock(&self.health).snap.last_check = Some(SystemTime::now());
            }
            return;
        }
        let changed = {
            let mut health = lock(&self.health);
            let snap = &mut health.snap;
            snap.consecutive_failures = snap.consecutive_failures.saturating_add(1);
            snap.last_error = Some(e.to_string());
            if from_check {
                snap.last_check = Some(SystemTime::now());
            }
            let changed = snap.state != HealthState::Down;
            if changed {
                snap.state = HealthState::Down;
                snap.since = SystemTime::now();
                health.pending.push(HealthState::Down);
            }
            changed
        };
        if changed {
            tracing::warn!(origin = %self.name(), error = %e, "origin is down");
            if let Some(signal) = lock(&self.checker).as_ref().and_then(Weak::upgrade) {
                signal.kick();
            }
            self.deliver();
        }
    }

    /// Hands pending transitions to the callback, outside the health lock
    /// (the callback may well ask for `health()`), one deliverer at a time
    /// so they arrive in the order they happened.
    fn deliver(&self) {
        let _one_at_a_time = lock(&self.delivering);
        let pending = std::mem::take(&mut lock(&self.health).pending);
        let callback = lock(&self.on_change).clone();
        if let Some(callback) = callback {
            for state in pending {
                callback(state);
            }
        }
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
        self.call(|| self.inner.list())
    }
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        self.call(|| self.inner.stat(rel_path))
    }
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.call(|| {
            if let Some(bucket) = &self.bucket {
                bucket.take(buf.len() as u64);
            }
            let result = self.inner.read_at(rel_path, offset, buf);
            let got = *result.as_ref().unwrap_or(&0);
            if let Some(bucket) = &self.bucket {
                // Short reads and failures give back what they did not use.
                bucket.refund((buf.len() - got) as u64);
            }
            self.bytes_read.fetch_add(got as u64, Ordering::Relaxed);
            result
        })
    }
    fn local_path(&self, rel_path: &[u8]) -> Option<std::path::PathBuf> {
        self.inner.local_path(rel_path)
    }
    fn open_local(&self, rel_path: &[u8]) -> Option<Result<std::fs::File>> {
        self.inner.open_local(rel_path)
    }
    fn watch(&self, tx: Sender<Change>) -> Result<Option<Box<dyn WatchGuard>>> {
        if let Some(guard) = self.inner.watch(tx.clone())? {
            return Ok(Some(guard));
        }
        let (Some(interval), Some(me)) = (self.settings.poll_interval, self.me.upgrade()) else {
            return Ok(None);
        };
        // Polling goes through this managed origin, so its listings obey
        // the limits, are counted, and feed the health record.
        Ok(Some(crate::start_poller(me, interval, tx)))
    }
    fn ping(&self) -> Result<()> {
        self.check()
    }
    fn cancel(&self) {
        self.inner.cancel()
    }
    fn available(&self) -> bool {
        lock(&self.health).snap.state != HealthState::Down
    }
    fn priority(&self) -> i32 {
        self.settings.priority
    }
}

/// A poisoned lock only means a callback or fake panicked mid-update; the
/// data (counters, a health record) is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wakes the health-check thread: to stop, or to reschedule.
#[derive(Default)]
struct CheckerSignal {
    state: Mutex<CheckerWake>,
    cv: Condvar,
}

#[derive(Default)]
struct CheckerWake {
    stopped: bool,
    kicked: bool,
}

impl CheckerSignal {
    fn kick(&self) {
        lock(&self.state).kicked = true;
        self.cv.notify_all();
    }
}

struct CheckerGuard {
    signal: Arc<CheckerSignal>,
}

impl WatchGuard for CheckerGuard {}

impl Drop for CheckerGuard {
    fn drop(&mut self) {
        lock(&self.signal.state).stopped = true;
        self.signal.cv.notify_all();
    }
}

/// The health-check loop. Holds the origin only weakly between checks, so
/// a forgotten guard does not keep a dropped origin alive.
fn run_checks(origin: Weak<ManagedOrigin>, signal: Arc<CheckerSignal>) {
    let mut next = Instant::now();
    loop {
        {
            let mut wake = lock(&signal.state);
            loop {
                if wake.stopped {
                    return;
                }
                if wake.kicked {
                    // A call just marked the origin down: switch to the short
                    // period from now rather than wait out the long one.
                    wake.kicked = false;
                    match origin.upgrade() {
                        Some(o) => next = Instant::now() + o.check_interval(),
                        None => return,
                    }
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                wake = signal
                    .cv
                    .wait_timeout(wake, next - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let Some(o) = origin.upgrade() else { return };
        let _ = o.check();
        // The check itself may have kicked us; its interval is set here.
        lock(&signal.state).kicked = false;
        next = Instant::now() + o.check_interval();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Ok,
        /// A transient server failure: the origin is failing.
        Fail,
        /// The file is missing: the origin is fine.
        NotFound,
        /// Blocks until the mode changes.
        Hang,
    }

    /// An origin whose behaviour the test switches, counting what reaches it.
    struct Fake {
        mode: Mutex<Mode>,
        mode_changed: Condvar,
        calls: AtomicUsize,
        pings: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        /// How long each call takes, to make calls overlap.
        work: Duration,
    }

    impl Fake {
        fn new(work: Duration) -> Arc<Fake> {
            Arc::new(Fake {
                mode: Mutex::new(Mode::Ok),
                mode_changed: Condvar::new(),
                calls: AtomicUsize::new(0),
                pings: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                work,
            })
        }
        fn set(&self, mode: Mode) {
            *self.mode.lock().unwrap() = mode;
            self.mode_changed.notify_all();
        }
        fn behave(&self, op: &'static str) -> Result<()> {
            let mut mode = self.mode.lock().unwrap();
            while *mode == Mode::Hang {
                mode = self.mode_changed.wait(mode).unwrap();
            }
            match *mode {
                Mode::Ok | Mode::Hang => Ok(()),
                Mode::Fail => Err(remote_error(op, true, libc::EIO)),
                Mode::NotFound => Err(remote_error(op, false, libc::ENOENT)),
            }
        }
        fn enter(&self, op: &'static str) -> Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.work);
            let result = self.behave(op);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    fn remote_error(op: &'static str, transient: bool, errno: i32) -> Error {
        Error::Remote {
            origin: "fake".into(),
            op,
            path: "x".into(),
            message: format!("{op} failed (errno {errno})"),
            transient,
            errno,
        }
    }

    impl Origin for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn kind(&self) -> OriginKind {
            OriginKind::Sftp
        }
        fn location(&self) -> String {
            "sftp://fake/".into()
        }
        fn list(&self) -> Result<Vec<Entry>> {
            self.enter("list")?;
            Ok(vec![Entry {
                rel_path: b"a.flac".to_vec(),
                size: 1,
                mtime_ns: 1,
            }])
        }
        fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
            self.enter("stat")?;
            Ok(Entry {
                rel_path: rel_path.to_vec(),
                size: 1 << 20,
                mtime_ns: 1,
            })
        }
        fn read_at(&self, _rel_path: &[u8], _offset: u64, buf: &mut [u8]) -> Result<usize> {
            self.enter("read")?;
            buf.fill(7);
            Ok(buf.len())
        }
        fn ping(&self) -> Result<()> {
            self.pings.fetch_add(1, Ordering::SeqCst);
            self.behave("ping")
        }
    }

    fn settings() -> OriginSettings {
        OriginSettings {
            health_interval: Duration::from_secs(3600),
            down_check_interval: Duration::from_millis(100),
            ..OriginSettings::default()
        }
    }

    fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "waited in vain for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn managed_failure_marks_down_and_fails_fast() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(fake.clone(), settings());
        assert_eq!(origin.health().state, HealthState::Unknown);
        origin.stat(b"a").unwrap();
        assert_eq!(origin.health().state, HealthState::Up);
        assert!(origin.available());

        fake.set(Mode::Fail);
        let err = origin.stat(b"a").unwrap_err();
        assert!(matches!(err, Error::Remote { .. }), "{err}");
        let health = origin.health();
        assert_eq!(health.state, HealthState::Down);
        assert_eq!(health.consecutive_failures, 1);
        assert!(health
            .last_error
            .as_deref()
            .unwrap()
            .contains("stat failed"));
        assert!(!origin.available());

        // Down: nothing reaches the origin, and the reason is the last error.
        let calls = fake.calls.load(Ordering::SeqCst);
        let mut buf = [0u8; 16];
        for _ in 0..5 {
            match origin.read_at(b"a", 0, &mut buf).unwrap_err() {
                Error::Unavailable { origin, reason } => {
                    assert_eq!(origin, "fake");
                    assert!(reason.contains("stat failed"), "{reason}");
                }
                other => panic!("expected Unavailable, got {other}"),
            }
        }
        assert!(origin.list().is_err());
        assert_eq!(fake.calls.load(Ordering::SeqCst), calls);
        let counters = origin.counters();
        assert_eq!(counters.refused, 6);
        assert_eq!(counters.requests, 2);
        assert_eq!(counters.errors, 1);
    }

    #[test]
    fn managed_missing_file_does_not_mark_down() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(fake.clone(), settings());
        origin.stat(b"a").unwrap();
        fake.set(Mode::NotFound);
        for _ in 0..3 {
            assert!(origin.stat(b"gone").is_err());
        }
        assert_eq!(origin.health().state, HealthState::Up);
        assert_eq!(origin.health().consecutive_failures, 0);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);
        assert_eq!(origin.counters().errors, 3);
    }

    #[test]
    fn managed_health_checks_recover_and_report_in_order() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(fake.clone(), settings());
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        origin.on_health_change(Box::new(move |s| tx.lock().unwrap().send(s).unwrap()));
        let _checks = origin.start_health_checks();
        // The first check runs at once: Unknown -> Up.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(2)).unwrap(),
            HealthState::Up
        );
        let health = origin.health();
        assert!(health.last_check.is_some() && health.last_latency.is_some());

        fake.set(Mode::Fail);
        assert!(origin.stat(b"a").is_err());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(2)).unwrap(),
            HealthState::Down
        );
        // Checks while down come every down_check_interval (100 ms), not
        // every health_interval (an hour): the failed call rescheduled them.
        let pings = fake.pings.load(Ordering::SeqCst);
        wait_until("checks while down", || {
            fake.pings.load(Ordering::SeqCst) >= pings + 2
        });
        assert_eq!(origin.health().state, HealthState::Down);
        assert!(origin.health().consecutive_failures >= 3);

        fake.set(Mode::Ok);
        // Within a few down periods, far below the hour-long up period.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(2)).unwrap(),
            HealthState::Up
        );
        origin.stat(b"a").unwrap();
        assert!(rx.try_recv().is_err(), "a transition was reported twice");
    }

    #[test]
    fn managed_health_guard_stops_checks_promptly_even_mid_ping() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(fake.clone(), settings());
        fake.set(Mode::Fail);
        let guard = origin.start_health_checks();
        wait_until("a failed check", || {
            origin.health().state == HealthState::Down
        });
        let start = Instant::now();
        drop(guard);
        assert!(start.elapsed() < Duration::from_millis(100));
        // Whatever check was running has finished; none follow.
        std::thread::sleep(Duration::from_millis(50));
        let pings = fake.pings.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(fake.pings.load(Ordering::SeqCst), pings);

        // A hung ping does not hold up dropping the guard either.
        fake.set(Mode::Hang);
        let guard = origin.start_health_checks();
        wait_until("a hung ping", || fake.pings.load(Ordering::SeqCst) > pings);
        let start = Instant::now();
        drop(guard);
        assert!(start.elapsed() < Duration::from_millis(100));
        fake.set(Mode::Ok);
    }

    #[test]
    fn managed_concurrency_limit_holds() {
        let fake = Fake::new(Duration::from_millis(15));
        let origin = ManagedOrigin::new(
            fake.clone(),
            OriginSettings {
                concurrency: 3,
                ..settings()
            },
        );
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut buf = [0u8; 64];
                    for _ in 0..5 {
                        origin.read_at(b"a", 0, &mut buf).unwrap();
                    }
                });
            }
        });
        let max = fake.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 3, "{max} calls in flight with a limit of 3");
        assert!(max >= 2, "calls were serialised ({max} in flight at most)");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 40);
    }

    #[test]
    fn managed_zero_concurrency_is_unlimited() {
        let fake = Fake::new(Duration::from_millis(50));
        let origin = ManagedOrigin::new(
            fake.clone(),
            OriginSettings {
                concurrency: 0,
                ..settings()
            },
        );
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| origin.stat(b"a").unwrap());
            }
        });
        assert!(fake.max_in_flight.load(Ordering::SeqCst) > 4);
    }

    #[test]
    fn managed_bandwidth_limit_slows_reads() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(
            fake.clone(),
            OriginSettings {
                bandwidth: Some(1 << 20),
                ..settings()
            },
        );
        let start = Instant::now();
        // Two threads share the one bucket.
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut buf = vec![0u8; 32 * 1024];
                    for _ in 0..8 {
                        assert_eq!(origin.read_at(b"a", 0, &mut buf).unwrap(), buf.len());
                    }
                });
            }
        });
        // 512 KiB at 1 MiB/s: half a second, give or take timer slack.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "512 KiB took {took:?}");
        assert_eq!(origin.counters().bytes_read, 512 * 1024);
    }

    #[test]
    fn managed_counters_count() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(fake.clone(), settings());
        let mut buf = [0u8; 100];
        origin.read_at(b"a", 0, &mut buf).unwrap();
        origin.read_at(b"a", 100, &mut buf[..50]).unwrap();
        origin.list().unwrap();
        fake.set(Mode::NotFound);
        assert!(origin.stat(b"a").is_err());
        assert_eq!(
            origin.counters(),
            CountersSnapshot {
                bytes_read: 150,
                requests: 4,
                errors: 1,
                refused: 0,
            }
        );
    }

    #[test]
    fn managed_polls_through_itself_when_inner_cannot_watch() {
        let fake = Fake::new(Duration::ZERO);
        let origin = ManagedOrigin::new(
            fake.clone(),
            OriginSettings {
                poll_interval: Some(Duration::from_millis(20)),
                ..settings()
            },
        );
        let (tx, _rx) = mpsc::channel();
        let guard = origin.watch(tx).unwrap().expect("a poller");
        wait_until("polls", || origin.counters().requests >= 3);
        assert_eq!(origin.health().state, HealthState::Up);
        drop(guard);

        let unpolled = ManagedOrigin::new(fake, settings());
        let (tx, _rx) = mpsc::channel();
        assert!(unpolled.watch(tx).unwrap().is_none());
    }

    #[test]
    fn managed_priority_comes_from_settings() {
        let origin = ManagedOrigin::new(
            Fake::new(Duration::ZERO),
            OriginSettings {
                priority: 7,
                ..settings()
            },
        );
        assert_eq!(origin.priority(), 7);
    }
}
