//! The read path of `ChunkStore`: single chunks, batches, file recipes.
//!
//! Every chunk read is verified against its id (the xxh3-128 of its
//! bytes); a mismatch drops the chunk (journaled), counts it, and serves
//! nothing. Batches read adjacent extents with one request (up to 1 MiB)
//! and go to the device in windows of up to 4 MiB; a helper thread stays
//! one window ahead, so hashing and copying overlap the device's work.
use crate::cdc::{ChunkId, Recipe};
use crate::format::BLOCK;
use crate::store::{blocks_for, lock, ChunkStore};
use crate::{AlignedBuf, ReadReq, Result};
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

/// One chunk of a batch: its position in the request, extent start, length.
type Planned = (usize, u64, usize);

/// Adjacent extents are read with one request up to this size (a file's
/// chunks are usually allocated back to back).
const MAX_RUN_BYTES: u64 = 1 << 20;
/// One window (one `read_batch`) holds at most this many bytes and requests.
const MAX_WINDOW_BYTES: u64 = 4 << 20;
const MAX_WINDOW_RUNS: usize = 64;

/// Run-sized read buffers kept for reuse: a fresh zeroed megabyte per run
/// costs about as much as hashing it. Chunk-sized reads allocate afresh: in
/// measurements here, pooling those made single reads slower, not faster.
/// Holds at most 8 MiB while idle.
pub(crate) struct BufPool {
    free: Mutex<Vec<AlignedBuf>>,
}

const POOLED_MIN: usize = 256 << 10;
const POOLED_BUF: usize = MAX_RUN_BYTES as usize;
const POOL_KEEP: usize = 8;

impl BufPool {
    pub(crate) fn new() -> BufPool {
        BufPool {
            free: Mutex::new(Vec::new()),
        }
    }

    /// A buffer of `len` bytes (a multiple of BLOCK); pooled bytes are stale.
    fn take(&self, len: usize) -> AlignedBuf {
        if !(POOLED_MIN < len && len <= POOLED_BUF) {
            return AlignedBuf::zeroed(len);
        }
        let mut buf = lock(&self.free)
            .pop()
            .unwrap_or_else(|| AlignedBuf::zeroed(POOLED_BUF));
        buf.set_len(len);
        buf
    }

    fn give(&self, buf: AlignedBuf) {
        if buf.capacity() == POOLED_BUF {
            let mut free = lock(&self.free);
            if free.len() < POOL_KEEP {
                free.push(buf);
            }
        }
    }
}

/// Contiguous extents read as one request: `plan[plan]`, `blocks` from `start`.
struct Run {
    plan: Range<usize>,
    start: u64,
    blocks: u64,
}

fn runs(plan: &[Planned]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (k, &(_, start, len)) in plan.iter().enumerate() {
        let blocks = blocks_for(len as u32);
        match runs.last_mut() {
            Some(r)
                if r.start + r.blocks == start
                    && (r.blocks + blocks) * BLOCK as u64 <= MAX_RUN_BYTES =>
            {
                r.plan.end = k + 1;
                r.blocks += blocks;
            }
            _ => runs.push(Run {
                plan: k..k + 1,
                start,
                blocks,
            }),
        }
    }
    runs
}

/// Groups runs into windows (ranges of `runs`), each one batch of requests.
fn windows(runs: &[Run]) -> Vec<Range<usize>> {
    let mut windows: Vec<Range<usize>> = Vec::new();
    let mut bytes = 0;
    for (k, r) in runs.iter().enumerate() {
        let len = r.blocks * BLOCK as u64;
        match windows.last_mut() {
            Some(w) if w.len() < MAX_WINDOW_RUNS && bytes + len <= MAX_WINDOW_BYTES => {
                w.end = k + 1;
                bytes += len;
            }
            _ => {
                windows.push(k..k + 1);
                bytes = len;
            }
        }
    }
    windows
}

impl ChunkStore {
    /// The chunk's bytes, verified against its id; `None` if absent or
    /// found corrupt (then it is dropped and counted, never served).
    pub fn get(&self, id: ChunkId) -> Result<Option<Vec<u8>>> {
        let (start, len, buf) = {
            let st = self.read_state();
            let Some(e) = st.index.get(&id) else {
                self.counters.misses.fetch_add(1, Relaxed);
                return Ok(None);
            };
            e.last_use.store(self.tick(), Relaxed);
            let mut buf = self.bufs.take(blocks_for(e.len) as usize * BLOCK);
            if let Err(err) = self.dev.read_at(&mut buf, self.data_byte(e.start)) {
                self.bufs.give(buf);
                return Err(err);
            }
            (e.start, e.len as usize, buf)
        };
        let data = &buf.as_slice()[..len];
        let good = ChunkId::of(data) == id;
        let out = good.then(|| data.to_vec());
        self.bufs.give(buf);
        if good {
            self.counters.hits.fetch_add(1, Relaxed);
            Ok(out)
        } else {
            self.counters.misses.fetch_add(1, Relaxed);
            self.drop_corrupt(id, start)?;
            Ok(None)
        }
    }

    /// Several chunks read concurrently; `None` for each absent or corrupt one.
    pub fn get_many(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        self.read_verified(ids, |i, data| out[i] = Some(data.to_vec()))?;
        Ok(out)
    }

    /// `len` bytes from `offset` of the file `recipe` describes (shorter at
    /// its end); `None` if any chunk needed is missing or corrupt.
    pub fn read_recipe(&self, recipe: &Recipe, offset: u64, len: u64) -> Result<Option<Vec<u8>>> {
        let end = offset.saturating_add(len).min(recipe.len());
        let mut wanted = Vec::new();
        let mut at = 0u64;
        for c in &recipe.chunks {
            let (s, e) = (at, at + c.len as u64);
            if e > offset && s < end {
                wanted.push((
                    c.id,
                    (offset.max(s) - s) as usize,
                    (end.min(e) - s) as usize,
                ));
            }
            at = e;
            if at >= end {
                break;
            }
        }
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        // Bounded groups keep memory flat for long ranges; chunks arrive in
        // order, so each is copied once, straight into place.
        for group in wanted.chunks(256) {
            let ids: Vec<ChunkId> = group.iter().map(|w| w.0).collect();
            let mut next = 0;
            let complete = self.read_verified(&ids, |i, data| {
                if i == next {
                    let (_, from, to) = group[i];
                    out.extend_from_slice(&data[from..to]);
                    next += 1;
                }
            })?;
            if !complete || next != group.len() {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// Reads and verifies `ids` (one batch, concurrent on io_uring), handing
    /// each good chunk to `sink` in order of `ids` as a slice of the read
    /// buffer — no copy, so a read path can move the bytes straight into its
    /// reply. Absent or corrupt chunks are skipped (corrupt ones dropped and
    /// counted, as with [`get`](Self::get)); returns whether all were present
    /// and intact.
    pub fn read_verified(
        &self,
        ids: &[ChunkId],
        mut sink: impl FnMut(usize, &[u8]),
    ) -> Result<bool> {
        let mut corrupt = Vec::new();
        let mut good = 0usize;
        {
            // Held across the I/O: blocks are never freed under a reader.
            let st = self.read_state();
            let now = self.tick();
            let mut plan: Vec<Planned> = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                if let Some(e) = st.index.get(id) {
                    e.last_use.store(now, Relaxed);
                    plan.push((i, e.start, e.len as usize));
                }
            }
            let runs = runs(&plan);
            let windows = windows(&runs);
            let read = |window: &Range<usize>| -> Result<Vec<ReadReq>> {
                let mut reqs: Vec<ReadReq> = runs[window.clone()]
                    .iter()
                    .map(|r| ReadReq {
                        offset: self.data_byte(r.start),
                        buf: self.bufs.take(r.blocks as usize * BLOCK),
                    })
                    .collect();
                match self.dev.read_batch(&mut reqs) {
                    Ok(()) => Ok(reqs),
                    Err(e) => {
                        reqs.into_iter().for_each(|r| self.bufs.give(r.buf));
                        Err(e)
                    }
                }
            };
            let mut check = |window: &Range<usize>, reqs: Vec<ReadReq>| {
                for (run, req) in runs[window.clone()].iter().zip(reqs) {
                    let mut at = 0;
                    for &(i, start, len) in &plan[run.plan.clone()] {
                        let data = &req.buf.as_slice()[at..at + len];
                        at += blocks_for(len as u32) as usize * BLOCK;
                        if ChunkId::of(data) == ids[i] {
                            sink(i, data);
                            good += 1;
                        } else {
                            corrupt.push((ids[i], start));
                        }
                    }
                    self.bufs.give(req.buf);
                }
            };
            if windows.len() <= 1 {
                for w in &windows {
                    let reqs = read(w)?;
                    check(w, reqs);
                }
            } else {
                std::thread::scope(|s| -> Result<()> {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    let (windows_ref, read) = (&windows, &read);
                    s.spawn(move || {
                        for w in windows_ref {
                            let done = read(w);
                            let failed = done.is_err();
                            if tx.send(done).is_err() || failed {
                                break;
                            }
                        }
                    });
                    for (w, reqs) in windows.iter().zip(rx) {
                        check(w, reqs?);
                    }
                    Ok(())
                })?;
            }
        }
        self.counters.hits.fetch_add(good as u64, Relaxed);
        self.counters
            .misses
            .fetch_add((ids.len() - good) as u64, Relaxed);
        let complete = good == ids.len();
        for (id, start) in corrupt {
            self.drop_corrupt(id, start)?;
        }
        Ok(complete)
    }

    /// Drops a chunk that failed its checksum, unless it was replaced meanwhile.
    fn drop_corrupt(&self, id: ChunkId, start: u64) -> Result<()> {
        let mut w = lock(&self.writer);
        let still_there = self
            .read_state()
            .index
            .get(&id)
            .is_some_and(|e| e.start == start);
        if still_there {
            tracing::warn!(device = %self.dev.describe(), chunk = %id, "chunk failed its checksum; dropped");
            self.counters.corrupt_chunks.fetch_add(1, Relaxed);
            self.delete_locked(&mut w, &[id])?;
        }
        Ok(())
    }
}
