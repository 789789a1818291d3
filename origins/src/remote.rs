//! What every remote origin shares: the runtime their async clients run
//! on, per-call time limits, bounded retries with exponential backoff and
//! jitter, and cancellation.
//!
//! The [`Origin`](crate::Origin) trait is synchronous (FUSE worker threads
//! and scanner threads call it), the protocol clients are async. [`call`]
//! bridges the two: it runs the future on the shared origins runtime and
//! waits for it on the calling thread, which works from any thread,
//! including one that belongs to another tokio runtime.
use crate::{Error, Result};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Time limits and retries of one origin's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// One attempt's time limit. Default 5 s.
    pub timeout: Duration,
    /// Retries after a transient failure (so at most `retries + 1`
    /// attempts). Default 3.
    pub retries: u32,
    /// First backoff; doubled after each attempt, with full jitter. Default 100 ms.
    pub backoff: Duration,
    /// Largest backoff. Default 2 s.
    pub backoff_max: Duration,
    /// Limit on one call with all its retries: a reader never waits longer
    /// than this for an origin. Default 10 s.
    pub deadline: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        }
    }
}

/// The runtime remote origins' clients run on: two worker threads shared
/// by every remote origin of the process, started on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("musicfs-origin")
            .enable_all()
            .build()
            .expect("cannot start the origins runtime")
    })
}

/// Cancels an origin's calls in flight and refuses new ones once fired.
#[derive(Debug, Default, Clone)]
pub struct Cancel {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    fired: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn fire(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }
    pub fn is_fired(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }
    /// Resolves once fired.
    pub async fn fired(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }
}

/// What to name in errors: the origin, the operation and the path.
#[derive(Debug, Clone, Copy)]
pub struct CallSite<'a> {
    pub origin: &'a str,
    pub op: &'static str,
    pub path: &'a str,
}

/// Runs `attempt` on the origins runtime until it succeeds, fails with a
/// non-transient error, runs out of retries, or passes the deadline; each
/// attempt is limited to `opts.timeout`. Blocks the calling thread.
pub fn call<T, F, Fut>(
    opts: &RemoteOptions,
    cancel: &Cancel,
    site: CallSite<'_>,
    attempt: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let fut = call_async(
        opts.clone(),
        cancel.clone(),
        site.origin.to_string(),
        site.op,
        site.path.to_string(),
        attempt,
    );
    block_on(fut)
}

/// Runs `fut` on the origins runtime and waits for it on this thread.
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("origins runtime task dropped")
}

/// The async form of [`call`], for code already on the origins runtime.
pub async fn call_async<T, F, Fut>(
    opts: RemoteOptions,
    cancel: Cancel,
    origin: String,
    op: &'static str,
    path: String,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut backoff = opts.backoff;
    let mut tries = 0u32;
    loop {
        if cancel.is_fired() {
            return Err(Error::Cancelled { origin });
        }
        let left = opts.deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Timeout {
                origin,
                op,
                path,
                after: opts.deadline,
            });
        }
        let limit = opts.timeout.min(left);
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, attempt()) => r,
            _ = cancel.fired() => return Err(Error::Cancelled { origin }),
        };
        let err = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => Error::Timeout {
                origin: origin.clone(),
                op,
                path: path.clone(),
                after: limit,
            },
        };
        tries += 1;
        if !err.is_transient() || tries > opts.retries {
            return Err(err);
        }
        let pause = jitter(backoff).min(opts.deadline.saturating_sub(started.elapsed()));
        tracing::debug!(origin, op, tries, ?pause, "retrying after: {err}");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.fired() => return Err(Error::Cancelled { origin }),
        }
        backoff = (backoff * 2).min(opts.backoff_max);
    }
}

/// "Full jitter": a uniformly random pause in `[0, max]`, so clients that
/// failed together do not retry together.
pub fn jitter(max: Duration) -> Duration {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let r = xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes());
    let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(r % (nanos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn site() -> CallSite<'static> {
        CallSite {
            origin: "o",
            op: "read",
            path: "a.flac",
        }
    }

    fn transient() -> Error {
        Error::Remote {
            origin: "o".into(),
            op: "read",
            path: "a.flac".into(),
            message: "connection reset".into(),
            transient: true,
            errno: libc::EIO,
        }
    }

    fn quick() -> RemoteOptions {
        RemoteOptions {
            timeout: Duration::from_millis(200),
            retries: 3,
            backoff: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            deadline: Duration::from_secs(2),
        }
    }

    #[test]
    fn retries_transient_failures_then_succeeds() {
        let n = Arc::new(AtomicU32::new(0));
        let m = n.clone();
        let v = call(&quick(), &Cancel::default(), site(), move || {
            let k = m.fetch_add(1, Ordering::SeqCst);
            async move {
                if k < 2 {
                    Err(transient())
                } else {
                    Ok(k)
                }
            }
        })
        .unwrap();
        assert_eq!(v, 2);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn gives_up_after_the_retries() {
        let n = Arc::new(AtomicU32::new(0));
        let m = n.clone();
        let e = call(&quick(), &Cancel::default(), site(), move || {
            m.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(transient()) }
        })
        .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn does_not_retry_permanent_failures() {
        let n = Arc::new(AtomicU32::new(0));
        let m = n.clone();
        let e = call(&quick(), &Cancel::default(), site(), move || {
            m.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<(), _>(Error::Remote {
                    origin: "o".into(),
                    op: "read",
                    path: "a".into(),
                    message: "not found".into(),
                    transient: false,
                    errno: libc::ENOENT,
                })
            }
        })
        .unwrap_err();
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_hanging_call_times_out_within_the_deadline() {
        let opts = RemoteOptions {
            timeout: Duration::from_millis(100),
            retries: 100,
            deadline: Duration::from_millis(500),
            ..quick()
        };
        let t = Instant::now();
        let e = call(&opts, &Cancel::default(), site(), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn cancel_stops_a_call_in_flight() {
        let cancel = Cancel::default();
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            c.fire();
        });
        let opts = RemoteOptions {
            timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(30),
            ..quick()
        };
        let t = Instant::now();
        let e = call(&opts, &cancel, site(), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, Error::Cancelled { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        for _ in 0..1000 {
            assert!(jitter(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
