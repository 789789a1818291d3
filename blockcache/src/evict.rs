//! Eviction: least recently used first, never a pinned chunk (a chunk of
//! an open file) nor one the current put needs. Runs when a put would pass
//! the high watermark (of space or of index slots) and frees down to the
//! low one; deletes are journaled and flushed before the blocks are reused.
use crate::cdc::ChunkId;
use crate::store::{blocks_for, lock, ChunkStore, Writer};
use crate::Result;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

impl ChunkStore {
    /// Least recently used chunks that are neither pinned nor protected,
    /// until `blocks` blocks and `entries` index slots are covered.
    fn pick_victims(
        &self,
        pins: &HashMap<ChunkId, u32>,
        blocks: u64,
        entries: usize,
        protect: &HashSet<ChunkId>,
    ) -> Vec<ChunkId> {
        let st = self.read_state();
        let mut candidates: Vec<(u64, ChunkId, u64)> = st
            .index
            .iter()
            .filter(|(id, _)| !pins.contains_key(id) && !protect.contains(id))
            .map(|(id, e)| (e.last_use.load(Relaxed), *id, blocks_for(e.len)))
            .collect();
        candidates.sort_unstable();
        let (mut freed, mut victims) = (0u64, Vec::new());
        for (_, id, n) in candidates {
            if freed >= blocks && victims.len() >= entries {
                break;
            }
            freed += n;
            victims.push(id);
        }
        victims
    }

    /// Evicts down to the low watermark if `need` more blocks (and
    /// `need_entries` index slots) would pass the high watermark.
    pub(crate) fn make_room(
        &self,
        w: &mut Writer,
        need: u64,
        need_entries: usize,
        protect: &HashSet<ChunkId>,
    ) -> Result<()> {
        let data = self.layout.data_blocks;
        let high = (data as f64 * self.opts.high_watermark) as u64;
        let low = (data as f64 * self.opts.low_watermark) as u64;
        let cap = self.layout.index_capacity() as usize;
        let (used, chunks) = {
            let st = self.read_state();
            (st.alloc.used(), st.index.len())
        };
        let over_space = used + need > high;
        let over_index = chunks + need_entries > cap;
        if !over_space && !over_index {
            return Ok(());
        }
        let blocks = if over_space {
            (used + need).saturating_sub(low)
        } else {
            0
        };
        let entries = if over_index {
            (chunks + need_entries).saturating_sub(cap * 4 / 5)
        } else {
            0
        };
        let pins = lock(&self.pins);
        let victims = self.pick_victims(&pins, blocks, entries, protect);
        let gone = self.delete_locked(w, &victims)?;
        self.counters.evictions.fetch_add(gone as u64, Relaxed);
        tracing::debug!(device = %self.dev.describe(), evicted = gone, "evicted least recently used chunks");
        Ok(())
    }

    /// Evicts up to `n` least recently used chunks; returns how many went.
    pub(crate) fn evict_lru(
        &self,
        w: &mut Writer,
        n: usize,
        protect: &HashSet<ChunkId>,
    ) -> Result<usize> {
        let pins = lock(&self.pins);
        let victims = self.pick_victims(&pins, 0, n, protect);
        let gone = self.delete_locked(w, &victims)?;
        self.counters.evictions.fetch_add(gone as u64, Relaxed);
        Ok(gone)
    }
}
