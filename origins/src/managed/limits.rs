//! The limits a [`ManagedOrigin`](super::ManagedOrigin) puts on its
//! calls: how many may be in flight, and how many bytes per second reads
//! may take.
use super::lock;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// At most `limit` calls in flight; the rest wait their turn.
pub(super) struct Slots {
    limit: usize,
    in_use: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    pub(super) fn new(limit: usize) -> Slots {
        Slots {
            limit,
            in_use: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    pub(super) fn acquire(&self) -> Option<SlotGuard<'_>> {
        if self.limit == 0 {
            return None;
        }
        let mut in_use = lock(&self.in_use);
        while *in_use >= self.limit {
            in_use = self.freed.wait(in_use).unwrap_or_else(|p| p.into_inner());
        }
        *in_use += 1;
        Some(SlotGuard { slots: self })
    }
}

pub(super) struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.slots.in_use) -= 1;
        self.slots.freed.notify_one();
    }
}

/// A token bucket shared by every thread reading from this origin.
///
/// A read takes its bytes up front and may drive the bucket into debt; it
/// then sleeps until the debt is paid at `rate`. Readers queue fairly that
/// way (each new one inherits the debt of those before it) and one big
/// read is not starved by many small ones. The bucket starts empty, so the
/// limit holds from the first byte: a scan started at mount time does not
/// get a free second of full speed.
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

struct BucketState {
    tokens: f64,
    last: Instant,
}

/// Bursts smaller than this would cut reads into tiny sleeps.
const MIN_BURST: f64 = 64.0 * 1024.0;

impl TokenBucket {
    pub(super) fn new(bytes_per_sec: u64) -> TokenBucket {
        let rate = bytes_per_sec.max(1) as f64;
        TokenBucket {
            rate,
            burst: rate.max(MIN_BURST),
            state: Mutex::new(BucketState {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    fn refill(&self, state: &mut BucketState) {
        let now = Instant::now();
        let earned = now.duration_since(state.last).as_secs_f64() * self.rate;
        state.tokens = (state.tokens + earned).min(self.burst);
        state.last = now;
    }

    /// Waits until `n` bytes may be read.
    pub(super) fn take(&self, n: u64) {
        let wait = {
            let mut state = lock(&self.state);
            self.refill(&mut state);
            state.tokens -= n as f64;
            if state.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-state.tokens / self.rate)
        };
        std::thread::sleep(wait);
    }

    pub(super) fn refund(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut state = lock(&self.state);
        self.refill(&mut state);
        state.tokens = (state.tokens + n as f64).min(self.burst);
    }
}
