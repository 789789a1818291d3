//! Change detection by polling, for origins that cannot be watched: the
//! origin is listed every interval and the listing compared (size, mtime)
//! with the previous one.
//! STUB: to be written.
use crate::{Change, Origin, WatchGuard};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// Lists `origin` every `interval` on a thread of its own and sends an
/// `Upsert` for each new or changed file and a `Remove` for each file gone.
/// The first listing is the baseline (nothing sent). A failed listing is
/// skipped (the next one compares with the last good one). Stops when the
/// guard is dropped.
pub fn start_poller(
    _origin: Arc<dyn Origin>,
    _interval: Duration,
    _tx: Sender<Change>,
) -> Box<dyn WatchGuard> {
    todo!()
}
