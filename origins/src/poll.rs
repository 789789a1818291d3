//! Change detection by polling, for origins that cannot be watched: the
//! origin is listed every interval and the listing compared (size, mtime)
//! with the previous one.
use crate::{Change, Entry, Origin, WatchGuard};
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// Lists `origin` every `interval` on a thread of its own and sends an
/// `Upsert` for each new or changed file and a `Remove` for each file gone.
/// The first listing is the baseline (nothing sent). A failed listing is
/// skipped (the next one compares with the last good one). Stops when the
/// guard is dropped, or when nobody receives on `tx` any more.
pub fn start_poller(
    origin: Arc<dyn Origin>,
    interval: Duration,
    tx: Sender<Change>,
) -> Box<dyn WatchGuard> {
    // Dropping the guard drops `stop`, which wakes the thread's
    // `recv_timeout` at once with `Disconnected`: no sleeping to wait out.
    let (stop, stopped) = mpsc::channel::<()>();
    let name = origin.name().to_string();
    let thread_name = format!("poll-{name}");
    let spawned = std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            let mut previous: Option<Snapshot> = None;
            loop {
                match origin.list() {
                    Ok(entries) => {
                        let current = Snapshot::of(entries);
                        if let Some(prev) = &previous {
                            for change in prev.diff(&current) {
                                if tx.send(change).is_err() {
                                    return;
                                }
                            }
                        }
                        previous = Some(current);
                    }
                    Err(e) => {
                        tracing::debug!(origin = %name, error = %e, "poll: listing failed, skipped");
                    }
                }
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
    if let Err(e) = spawned {
        // Without a thread there is no polling; say so rather than panic the
        // daemon over a change feed.
        tracing::error!(thread = %thread_name, error = %e, "cannot start poller thread");
    }
    Box::new(PollGuard { _stop: stop })
}

struct PollGuard {
    _stop: Sender<()>,
}

impl WatchGuard for PollGuard {}

/// One listing, keyed by path: what a file looked like.
struct Snapshot {
    files: HashMap<Vec<u8>, (u64, i64)>,
    /// Paths in listing order, so changes come out in a stable order.
    order: Vec<Vec<u8>>,
}

impl Snapshot {
    fn of(entries: Vec<Entry>) -> Snapshot {
        let mut files = HashMap::with_capacity(entries.len());
        let mut order = Vec::with_capacity(entries.len());
        for e in entries {
            if files
                .insert(e.rel_path.clone(), (e.size, e.mtime_ns))
                .is_none()
            {
                order.push(e.rel_path);
            }
        }
        Snapshot { files, order }
    }

    /// What changed from `self` to `next`: upserts in `next`'s order, then
    /// removals in `self`'s order.
    fn diff(&self, next: &Snapshot) -> Vec<Change> {
        let mut changes = Vec::new();
        for path in &next.order {
            if self.files.get(path) != next.files.get(path) {
                changes.push(Change::Upsert(path.clone()));
            }
        }
        for path in &self.order {
            if !next.files.contains_key(path) {
                changes.push(Change::Remove(path.clone()));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, OriginKind, Result};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// An origin whose listing the test sets; `None` makes listing fail.
    struct Listed {
        listing: Mutex<Option<Vec<Entry>>>,
        lists: AtomicUsize,
    }

    impl Listed {
        fn new(entries: Vec<Entry>) -> Arc<Listed> {
            Arc::new(Listed {
                listing: Mutex::new(Some(entries)),
                lists: AtomicUsize::new(0),
            })
        }
        fn set(&self, entries: Option<Vec<Entry>>) {
            *self.listing.lock().unwrap() = entries;
        }
    }

    impl Origin for Listed {
        fn name(&self) -> &str {
            "listed"
        }
        fn kind(&self) -> OriginKind {
            OriginKind::S3
        }
        fn location(&self) -> String {
            "memory".into()
        }
        fn list(&self) -> Result<Vec<Entry>> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            self.listing.lock().unwrap().clone().ok_or(Error::Remote {
                origin: "listed".into(),
                op: "list",
                path: String::new(),
                message: "connection reset".into(),
                transient: true,
                errno: libc::EIO,
            })
        }
        fn stat(&self, _rel_path: &[u8]) -> Result<Entry> {
            unimplemented!("the poller only lists")
        }
        fn read_at(&self, _rel_path: &[u8], _offset: u64, _buf: &mut [u8]) -> Result<usize> {
            unimplemented!("the poller only lists")
        }
    }

    fn entry(path: &str, size: u64, mtime_ns: i64) -> Entry {
        Entry {
            rel_path: path.as_bytes().to_vec(),
            size,
            mtime_ns,
        }
    }

    fn upsert(p: &str) -> Change {
        Change::Upsert(p.as_bytes().to_vec())
    }

    fn remove(p: &str) -> Change {
        Change::Remove(p.as_bytes().to_vec())
    }

    /// Waits until `origin` has been listed `n` times in all.
    fn await_lists(origin: &Listed, n: usize) {
        let start = std::time::Instant::now();
        while origin.lists.load(Ordering::SeqCst) < n {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "poller did not list {n} times"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    const TICK: Duration = Duration::from_millis(40);

    #[test]
    fn poll_baseline_then_upserts_and_removes() {
        let origin = Listed::new(vec![entry("a.flac", 10, 1), entry("b.flac", 20, 2)]);
        let (tx, rx) = mpsc::channel();
        let _guard = start_poller(origin.clone(), TICK, tx);
        await_lists(&origin, 1);
        // The baseline says nothing.
        assert!(rx.recv_timeout(TICK * 3).is_err());

        // a changes size, b's mtime moves, c appears.
        origin.set(Some(vec![
            entry("a.flac", 11, 1),
            entry("b.flac", 20, 3),
            entry("c.flac", 5, 5),
        ]));
        let got: Vec<Change> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("a change"))
            .collect();
        assert_eq!(
            got,
            vec![upsert("a.flac"), upsert("b.flac"), upsert("c.flac")]
        );

        // b goes; nothing else changes.
        origin.set(Some(vec![entry("a.flac", 11, 1), entry("c.flac", 5, 5)]));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            remove("b.flac")
        );
        // Unchanged listings after that say nothing.
        let seen = origin.lists.load(Ordering::SeqCst);
        await_lists(&origin, seen + 2);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn poll_failed_listing_is_skipped_not_a_removal() {
        let origin = Listed::new(vec![entry("a.flac", 10, 1)]);
        let (tx, rx) = mpsc::channel();
        let _guard = start_poller(origin.clone(), TICK, tx);
        await_lists(&origin, 1);
        origin.set(None);
        let seen = origin.lists.load(Ordering::SeqCst);
        await_lists(&origin, seen + 3);
        assert!(rx.try_recv().is_err(), "a failed listing removed files");
        // Compared with the last good listing, not with the failure.
        origin.set(Some(vec![entry("a.flac", 10, 1), entry("new.flac", 1, 1)]));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            upsert("new.flac")
        );
        assert!(rx.recv_timeout(TICK * 3).is_err());
    }

    #[test]
    fn poll_failed_first_listing_next_good_one_is_baseline() {
        let origin = Listed::new(vec![]);
        origin.set(None);
        let (tx, rx) = mpsc::channel();
        let _guard = start_poller(origin.clone(), TICK, tx);
        await_lists(&origin, 2);
        origin.set(Some(vec![entry("a.flac", 10, 1)]));
        let seen = origin.lists.load(Ordering::SeqCst);
        await_lists(&origin, seen + 3);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn poll_stops_when_guard_drops() {
        let origin = Listed::new(vec![]);
        let (tx, _rx) = mpsc::channel();
        // A long interval: only a prompt wake-up lets the thread end.
        let guard = start_poller(origin.clone(), Duration::from_secs(3600), tx);
        await_lists(&origin, 1);
        drop(guard);
        // The thread owned the last other reference to the origin.
        let start = std::time::Instant::now();
        while Arc::strong_count(&origin) > 1 {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "poller thread still alive after its guard dropped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(origin.lists.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn poll_stops_when_receiver_is_gone() {
        let origin = Listed::new(vec![entry("a.flac", 1, 1)]);
        let (tx, rx) = mpsc::channel();
        let _guard = start_poller(origin.clone(), TICK, tx);
        await_lists(&origin, 1);
        drop(rx);
        origin.set(Some(vec![entry("a.flac", 2, 1)]));
        let start = std::time::Instant::now();
        while Arc::strong_count(&origin) > 1 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "poller kept running with nobody receiving"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
