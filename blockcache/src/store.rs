//! `ChunkStore`: content-addressed chunks on a `BlockDevice`, crash-safe.
//!
//! Ordering rule: a chunk's data is written and flushed before the journal
//! record that makes it reachable; a chunk's delete record is flushed
//! before its blocks can be reused. Recovery is: the newer valid
//! superblock, its checkpoint, the journal's valid prefix, then a fresh
//! checkpoint (so no stale journal block can ever be taken for a new one).
//!
//! Locks, always taken in this order: `writer` (serialises every change and
//! its I/O), `pins`, `state`. Reads hold `state` shared while their I/O
//! runs, so blocks are never freed and reused under a reader.
use crate::alloc::Allocator;
use crate::cdc::{self, CdcParams, ChunkId, Recipe, RecipeChunk};
use crate::checkpoint;
use crate::format::{IndexRecord, JournalEntry, Layout, Superblock, BLOCK};
use crate::journal::Journal;
use crate::{AlignedBuf, BlockDevice, Error, Result};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How to lay out a new store.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// Journal size in blocks; default 1024 (4 MiB), at most a sixteenth of the device.
    pub journal_blocks: Option<u64>,
    /// Chunks the index can hold; default one per four data blocks (16 KiB,
    /// the default minimum chunk size).
    pub index_capacity: Option<u64>,
}

/// How to run an open store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Fraction of the data region above which eviction starts; default 0.90.
    pub high_watermark: f64,
    /// Fraction eviction brings usage down to; default 0.80.
    pub low_watermark: f64,
    /// Largest chunk `put` accepts; default 16 MiB.
    pub max_chunk_len: usize,
    /// Chunks per group commit in `put_stream`; default 32.
    pub batch_chunks: usize,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            high_watermark: 0.90,
            low_watermark: 0.80,
            max_chunk_len: 16 << 20,
            batch_chunks: 32,
        }
    }
}

impl StoreOptions {
    fn validate(&self) -> Result<()> {
        let ok = 0.0 < self.low_watermark
            && self.low_watermark < self.high_watermark
            && self.high_watermark <= 1.0
            && self.max_chunk_len > 0
            && self.batch_chunks > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "need 0 < low watermark < high watermark ≤ 1 and non-zero sizes: {self:?}"
            )))
        }
    }
}

/// Counters and sizes, for `musicfs cache stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Size of the data region.
    pub capacity_bytes: u64,
    /// Data blocks in use, in bytes.
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub chunks: u64,
    /// Bytes callers stored, counting every reference (Σ length × refcount).
    pub logical_bytes: u64,
    /// Bytes of distinct chunks (Σ length).
    pub stored_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub corrupt_chunks: u64,
    pub pinned_chunks: u64,
}

impl Stats {
    /// Logical ÷ stored bytes; 1.0 for an empty store.
    pub fn dedup_ratio(&self) -> f64 {
        if self.stored_bytes == 0 {
            1.0
        } else {
            self.logical_bytes as f64 / self.stored_bytes as f64
        }
    }
}

pub(crate) struct Entry {
    pub(crate) start: u64,
    pub(crate) len: u32,
    pub(crate) refcount: u32,
    pub(crate) last_use: AtomicU64,
}

pub(crate) struct State {
    pub(crate) index: HashMap<ChunkId, Entry>,
    pub(crate) alloc: Allocator,
    logical_bytes: u64,
    stored_bytes: u64,
}

pub(crate) struct Writer {
    pub(crate) sb: Superblock,
    pub(crate) journal: Journal,
    /// Set when a metadata write failed: what is durable is unknown until reopened.
    poisoned: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) corrupt_chunks: AtomicU64,
}

/// See the module docs. `Send + Sync`: share it behind an `Arc`.
pub struct ChunkStore {
    pub(crate) dev: Arc<dyn BlockDevice>,
    pub(crate) layout: Layout,
    pub(crate) opts: StoreOptions,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) pins: Mutex<HashMap<ChunkId, u32>>,
    pub(crate) state: RwLock<State>,
    /// Logical clock for recency.
    clock: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) bufs: crate::read::BufPool,
}

/// Data blocks a chunk of `len` bytes occupies (at least one).
pub(crate) fn blocks_for(len: u32) -> u64 {
    (len as u64).div_ceil(BLOCK as u64).max(1)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Derives the bitmap from index records; returns it and the records whose
/// extents are out of range or overlap an earlier one.
pub(crate) fn derive_bitmap<'a>(
    layout: &Layout,
    records: impl Iterator<Item = (ChunkId, u64, u32)> + 'a,
) -> (Allocator, Vec<ChunkId>) {
    let mut alloc = Allocator::new(layout.data_blocks);
    let mut sorted: Vec<_> = records.collect();
    sorted.sort_by_key(|&(id, start, _)| (start, id));
    let mut bad = Vec::new();
    for (id, start, len) in sorted {
        if !alloc.mark(start, blocks_for(len)) {
            bad.push(id);
        }
    }
    (alloc, bad)
}

fn random_uuid() -> Result<[u8; 16]> {
    use std::io::Read;
    let mut uuid = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut uuid))
        .map_err(|source| Error::Io {
            device: "/dev/urandom".into(),
            op: "read",
            offset: 0,
            source,
        })?;
    Ok(uuid)
}

impl ChunkStore {
    /// Writes an empty store onto `dev`, replacing whatever it held.
    pub fn format(dev: &dyn BlockDevice, opts: &FormatOptions) -> Result<()> {
        let total = dev.size() / BLOCK as u64;
        let journal_blocks = opts.journal_blocks.unwrap_or(1024.min(total / 16).max(2));
        let index_capacity = opts.index_capacity.unwrap_or(total / 4).max(1);
        let layout = Layout::compute(total, journal_blocks, index_capacity)?;
        let uuid = random_uuid()?;
        let mut sb = Superblock {
            uuid,
            generation: 0,
            layout,
            checkpoint_gen: 1,
            active_slot: 0,
            journal_seq: 1,
            checkpoint_entries: 0,
        };
        checkpoint::write(
            dev,
            &layout,
            0,
            1,
            sb.seed(),
            &[],
            &Allocator::new(layout.data_blocks),
        )?;
        dev.flush()?;
        checkpoint::write_superblock(dev, &sb)?;
        sb.generation = 1;
        checkpoint::write_superblock(dev, &sb)?;
        dev.flush()?;
        tracing::info!(device = %dev.describe(), data_bytes = layout.data_blocks * BLOCK as u64, "formatted chunk store");
        Ok(())
    }

    /// Opens the store on `dev`: recovers from any crash, then checkpoints.
    pub fn open(dev: Arc<dyn BlockDevice>, opts: StoreOptions) -> Result<ChunkStore> {
        opts.validate()?;
        let copies = checkpoint::read_superblocks(&*dev)?;
        let mut candidates: Vec<Superblock> = copies
            .iter()
            .filter_map(|c| c.as_ref().ok().cloned())
            .collect();
        if candidates.is_empty() {
            let why: Vec<String> = copies
                .iter()
                .filter_map(|c| c.as_ref().err().cloned())
                .collect();
            return Err(Error::NotFormatted {
                device: dev.describe(),
                detail: why.join("; "),
            });
        }
        candidates.sort_by_key(|sb| std::cmp::Reverse(sb.generation));
        let mut last_err = None;
        for sb in candidates {
            if sb.layout.total_blocks * BLOCK as u64 > dev.size() {
                last_err = Some(Error::Corrupt {
                    device: dev.describe(),
                    detail: format!(
                        "store of {} blocks on a device of {} bytes",
                        sb.layout.total_blocks,
                        dev.size()
                    ),
                });
                continue;
            }
            match Self::recover(dev.clone(), &opts, sb) {
                Ok(store) => return Ok(store),
                Err(e) => {
                    tracing::warn!(device = %dev.describe(), error = %e, "superblock unusable, trying the other copy");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::NotFormatted {
            device: dev.describe(),
            detail: "no superblock".into(),
        }))
    }

    fn recover(
        dev: Arc<dyn BlockDevice>,
        opts: &StoreOptions,
        sb: Superblock,
    ) -> Result<ChunkStore> {
        let layout = sb.layout;
        let (records, saved_bitmap) = checkpoint::read(&*dev, &sb)?;
        let (ckpt_bitmap, _) = derive_bitmap(
            &layout,
            records.iter().map(|r| (ChunkId(r.id), r.start, r.len)),
        );
        let bitmap_drift = ckpt_bitmap.differences(&saved_bitmap);
        if bitmap_drift != 0 {
            tracing::warn!(device = %dev.describe(), blocks = bitmap_drift, "persisted bitmap disagrees with the index; rebuilt from the index");
        }
        let mut index: HashMap<ChunkId, IndexRecord> =
            records.into_iter().map(|r| (ChunkId(r.id), r)).collect();
        let max_use = index.values().map(|r| r.last_use).max().unwrap_or(0);
        let (entries, journal) = Journal::replay(&*dev, &layout, sb.journal_seq, sb.seed())?;
        for e in &entries {
            match *e {
                JournalEntry::Put { id, start, len } => {
                    index.insert(
                        ChunkId(id),
                        IndexRecord {
                            id,
                            start,
                            len,
                            refcount: 1,
                            last_use: max_use + 1,
                        },
                    );
                }
                JournalEntry::SetRef { id, refcount } => {
                    if let Some(r) = index.get_mut(&ChunkId(id)) {
                        r.refcount = refcount;
                    }
                }
                JournalEntry::Delete { id } => {
                    index.remove(&ChunkId(id));
                }
            }
        }
        let (alloc, bad) = derive_bitmap(
            &layout,
            index.values().map(|r| (ChunkId(r.id), r.start, r.len)),
        );
        for id in &bad {
            tracing::warn!(device = %dev.describe(), chunk = %id, "extent out of range or overlapping; chunk dropped");
            index.remove(id);
        }
        let mut state = State {
            index: HashMap::with_capacity(index.len()),
            alloc,
            logical_bytes: 0,
            stored_bytes: 0,
        };
        for (id, r) in index {
            state.logical_bytes += r.len as u64 * r.refcount as u64;
            state.stored_bytes += r.len as u64;
            state.index.insert(
                id,
                Entry {
                    start: r.start,
                    len: r.len,
                    refcount: r.refcount,
                    last_use: AtomicU64::new(r.last_use),
                },
            );
        }
        tracing::debug!(device = %dev.describe(), chunks = state.index.len(), replayed = entries.len(), "chunk store recovered");
        let store = ChunkStore {
            dev,
            layout,
            opts: opts.clone(),
            writer: Mutex::new(Writer {
                sb,
                journal,
                poisoned: false,
            }),
            pins: Mutex::new(HashMap::new()),
            state: RwLock::new(state),
            clock: AtomicU64::new(max_use + 2),
            bufs: crate::read::BufPool::new(),
            counters: Counters {
                corrupt_chunks: AtomicU64::new(bad.len() as u64),
                ..Counters::default()
            },
        };
        // A fresh checkpoint moves the journal past every block the crashed
        // run may have left beyond the valid prefix.
        store.checkpoint_locked(&mut lock(&store.writer))?;
        Ok(store)
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Relaxed)
    }

    pub(crate) fn data_byte(&self, start: u64) -> u64 {
        Layout::byte(self.layout.data_start + start)
    }

    /// The device, for messages.
    pub fn describe(&self) -> String {
        self.dev.describe()
    }

    /// Stores one chunk; returns its id. Durable when this returns.
    pub fn put(&self, data: &[u8]) -> Result<ChunkId> {
        Ok(self.put_batch(&[data])?[0])
    }

    /// Stores several chunks with one data flush and one journal flush
    /// (group commit). A chunk already present gains a reference.
    pub fn put_batch(&self, chunks: &[&[u8]]) -> Result<Vec<ChunkId>> {
        if let Some(c) = chunks.iter().find(|c| c.len() > self.opts.max_chunk_len) {
            return Err(Error::TooLarge {
                len: c.len(),
                max: self.opts.max_chunk_len,
            });
        }
        let ids: Vec<ChunkId> = chunks.iter().map(|c| ChunkId::of(c)).collect();
        let mut w = lock(&self.writer);
        // Each chunk needs at most two entries (put, set ref).
        let per_commit = (w.journal.max_entries() / 2).clamp(1, 256);
        for (slice, slice_ids) in chunks.chunks(per_commit).zip(ids.chunks(per_commit)) {
            self.put_locked(&mut w, slice, slice_ids)?;
        }
        Ok(ids)
    }

    fn put_locked(&self, w: &mut Writer, chunks: &[&[u8]], ids: &[ChunkId]) -> Result<()> {
        self.check_poisoned(w)?;
        // Plan: which chunks are new, how many references each id gains.
        let mut new: Vec<usize> = Vec::new();
        let mut gained: HashMap<ChunkId, u32> = HashMap::new();
        {
            let st = self.read_state();
            for (i, id) in ids.iter().enumerate() {
                let count = gained.entry(*id).or_insert(0);
                if *count == 0 && !st.index.contains_key(id) {
                    new.push(i);
                }
                *count += 1;
            }
        }
        let protect: HashSet<ChunkId> = ids.iter().copied().collect();
        let need: u64 = new
            .iter()
            .map(|&i| blocks_for(chunks[i].len() as u32))
            .sum();
        self.make_room(w, need, new.len(), &protect)?;

        let mut extents: Vec<(usize, u64)> = Vec::with_capacity(new.len());
        let undo = |extents: &[(usize, u64)], st: &mut State| {
            for &(i, start) in extents {
                st.alloc.free(start, blocks_for(chunks[i].len() as u32));
            }
        };
        for &i in &new {
            let n = blocks_for(chunks[i].len() as u32);
            let mut tries = 0;
            loop {
                let got = self.write_state().alloc.alloc(n);
                if let Some(start) = got {
                    extents.push((i, start));
                    break;
                }
                // Fragmented: evict the least recently used until a run fits.
                tries += 1;
                let evicted = if tries <= 64 {
                    self.evict_lru(w, 16, &protect)?
                } else {
                    0
                };
                if evicted == 0 {
                    undo(&extents, &mut self.write_state());
                    return Err(Error::Full {
                        device: self.dev.describe(),
                        len: chunks[i].len(),
                    });
                }
            }
        }

        // Data first, flushed, then the records that make it reachable.
        if !extents.is_empty() {
            let bufs: Vec<(u64, AlignedBuf)> = extents
                .iter()
                .map(|&(i, start)| (self.data_byte(start), AlignedBuf::from_slice(chunks[i])))
                .collect();
            let writes: Vec<(u64, &AlignedBuf)> = bufs.iter().map(|(o, b)| (*o, b)).collect();
            if let Err(e) = self
                .dev
                .write_batch(&writes)
                .and_then(|()| self.dev.flush())
            {
                undo(&extents, &mut self.write_state());
                return Err(e);
            }
        }
        let mut entries = Vec::with_capacity(extents.len() + gained.len());
        let mut refcounts: HashMap<ChunkId, u32> = HashMap::new();
        {
            let st = self.read_state();
            for &(i, start) in &extents {
                entries.push(JournalEntry::Put {
                    id: ids[i].0,
                    start,
                    len: chunks[i].len() as u32,
                });
            }
            for (id, &n) in &gained {
                let base = st.index.get(id).map_or(0, |e| e.refcount);
                let refcount = base.saturating_add(n);
                refcounts.insert(*id, refcount);
                if refcount != 1 {
                    entries.push(JournalEntry::SetRef { id: id.0, refcount });
                }
            }
        }
        self.commit(w, &entries)?;

        let now = self.tick();
        let mut st = self.write_state();
        for &(i, start) in &extents {
            let len = chunks[i].len() as u32;
            st.stored_bytes += len as u64;
            st.index.insert(
                ids[i],
                Entry {
                    start,
                    len,
                    refcount: 0,
                    last_use: AtomicU64::new(now),
                },
            );
        }
        for (id, refcount) in refcounts {
            if let Some(e) = st.index.get_mut(&id) {
                let added = refcount - e.refcount;
                e.refcount = refcount;
                e.last_use.store(now, Relaxed);
                let len = e.len as u64;
                st.logical_bytes += len * added as u64;
            }
        }
        Ok(())
    }

    fn check_poisoned(&self, w: &Writer) -> Result<()> {
        if w.poisoned {
            Err(Error::Poisoned {
                device: self.dev.describe(),
            })
        } else {
            Ok(())
        }
    }

    /// Journals `entries` (checkpointing first if the journal is full).
    fn commit(&self, w: &mut Writer, entries: &[JournalEntry]) -> Result<()> {
        self.check_poisoned(w)?;
        if entries.is_empty() {
            return Ok(());
        }
        if Journal::blocks_for(entries) > w.journal.room() {
            self.checkpoint_locked(w)?;
        }
        let dev = self.dev.clone();
        w.journal
            .append(&*dev, entries)
            .inspect_err(|_| w.poisoned = true)
    }

    /// Journals deletes of `victims` and frees their blocks; returns how many went.
    pub(crate) fn delete_locked(&self, w: &mut Writer, victims: &[ChunkId]) -> Result<usize> {
        let per_commit = w.journal.max_entries().max(1);
        let mut gone = 0;
        for group in victims.chunks(per_commit) {
            let entries: Vec<JournalEntry> = group
                .iter()
                .map(|id| JournalEntry::Delete { id: id.0 })
                .collect();
            self.commit(w, &entries)?;
            let mut st = self.write_state();
            for id in group {
                if let Some(e) = st.index.remove(id) {
                    st.alloc.free(e.start, blocks_for(e.len));
                    st.stored_bytes -= e.len as u64;
                    st.logical_bytes -= e.len as u64 * e.refcount as u64;
                    gone += 1;
                }
            }
        }
        Ok(gone)
    }

    /// Where the chunk lies on the device: (byte offset, length). For
    /// benchmarks and diagnostics; reads go through `get`.
    pub fn locate(&self, id: ChunkId) -> Option<(u64, u32)> {
        self.read_state()
            .index
            .get(&id)
            .map(|e| (self.data_byte(e.start), e.len))
    }

    pub fn contains(&self, id: ChunkId) -> bool {
        self.read_state().index.contains_key(&id)
    }

    /// Drops one reference; the chunk is deleted when none remain.
    /// Returns false if the chunk is not stored.
    pub fn release(&self, id: ChunkId) -> Result<bool> {
        let mut w = lock(&self.writer);
        let Some(refcount) = self.read_state().index.get(&id).map(|e| e.refcount) else {
            return Ok(false);
        };
        if refcount <= 1 {
            self.delete_locked(&mut w, &[id])?;
        } else {
            self.commit(
                &mut w,
                &[JournalEntry::SetRef {
                    id: id.0,
                    refcount: refcount - 1,
                }],
            )?;
            let mut st = self.write_state();
            if let Some(e) = st.index.get_mut(&id) {
                e.refcount = refcount - 1;
                let len = e.len as u64;
                st.logical_bytes -= len;
            }
        }
        Ok(true)
    }

    /// Keeps the chunk from eviction until as many `unpin`s (open files).
    pub fn pin(&self, id: ChunkId) {
        *lock(&self.pins).entry(id).or_insert(0) += 1;
    }

    pub fn unpin(&self, id: ChunkId) {
        let mut pins = lock(&self.pins);
        if let Some(n) = pins.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&id);
            }
        }
    }

    /// Writes a checkpoint and trims the journal.
    pub fn checkpoint(&self) -> Result<()> {
        let mut w = lock(&self.writer);
        self.check_poisoned(&w)?;
        self.checkpoint_locked(&mut w)
    }

    fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        let (records, bitmap) = {
            let st = self.read_state();
            let records: Vec<IndexRecord> = st
                .index
                .iter()
                .map(|(id, e)| IndexRecord {
                    id: id.0,
                    start: e.start,
                    len: e.len,
                    refcount: e.refcount,
                    last_use: e.last_use.load(Relaxed),
                })
                .collect();
            // From the index, not the allocator: blocks allocated for a put
            // whose record is not yet journaled must read as free after a crash.
            let (bitmap, _) = derive_bitmap(
                &self.layout,
                records.iter().map(|r| (ChunkId(r.id), r.start, r.len)),
            );
            (records, bitmap)
        };
        let slot = 1 - w.sb.active_slot;
        let sb = Superblock {
            generation: w.sb.generation + 1,
            checkpoint_gen: w.sb.checkpoint_gen + 1,
            active_slot: slot,
            journal_seq: w.journal.next_seq() + w.journal.capacity(),
            checkpoint_entries: records.len() as u64,
            ..w.sb.clone()
        };
        let dev = &*self.dev;
        let written = checkpoint::write(
            dev,
            &self.layout,
            slot,
            sb.checkpoint_gen,
            sb.seed(),
            &records,
            &bitmap,
        )
        .and_then(|()| dev.flush())
        .and_then(|()| checkpoint::write_superblock(dev, &sb))
        .and_then(|()| dev.flush());
        if let Err(e) = written {
            w.poisoned = true;
            return Err(e);
        }
        w.journal = Journal::new(&self.layout, sb.journal_seq, sb.seed());
        w.sb = sb;
        Ok(())
    }

    /// Drops every chunk.
    pub fn clear(&self) -> Result<()> {
        let mut w = lock(&self.writer);
        self.check_poisoned(&w)?;
        {
            let mut st = self.write_state();
            st.index.clear();
            st.alloc = Allocator::new(self.layout.data_blocks);
            st.logical_bytes = 0;
            st.stored_bytes = 0;
        }
        self.checkpoint_locked(&mut w)
    }

    pub fn stats(&self) -> Stats {
        let st = self.read_state();
        let block = BLOCK as u64;
        Stats {
            capacity_bytes: self.layout.data_blocks * block,
            used_bytes: st.alloc.used() * block,
            free_bytes: (self.layout.data_blocks - st.alloc.used()) * block,
            chunks: st.index.len() as u64,
            logical_bytes: st.logical_bytes,
            stored_bytes: st.stored_bytes,
            hits: self.counters.hits.load(Relaxed),
            misses: self.counters.misses.load(Relaxed),
            evictions: self.counters.evictions.load(Relaxed),
            corrupt_chunks: self.counters.corrupt_chunks.load(Relaxed),
            pinned_chunks: lock(&self.pins).len() as u64,
        }
    }

    /// The ids of every stored chunk.
    pub fn ids(&self) -> Vec<ChunkId> {
        self.read_state().index.keys().copied().collect()
    }

    /// Chunks `reader` (FastCDC) and stores every chunk; returns the recipe.
    pub fn put_stream<R: std::io::Read>(&self, reader: R, params: &CdcParams) -> Result<Recipe> {
        let mut recipe = Recipe::default();
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let flush = |batch: &mut Vec<Vec<u8>>, recipe: &mut Recipe| -> Result<()> {
            let refs: Vec<&[u8]> = batch.iter().map(|c| c.as_slice()).collect();
            let ids = self.put_batch(&refs)?;
            recipe.chunks.extend(
                ids.into_iter()
                    .zip(batch.iter())
                    .map(|(id, c)| RecipeChunk {
                        id,
                        len: c.len() as u32,
                    }),
            );
            batch.clear();
            Ok(())
        };
        for chunk in cdc::chunks(reader, params)? {
            batch.push(chunk?);
            if batch.len() >= self.opts.batch_chunks {
                flush(&mut batch, &mut recipe)?;
            }
        }
        flush(&mut batch, &mut recipe)?;
        Ok(recipe)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "crash_tests.rs"]
mod crash_tests;

#[cfg(test)]
#[path = "kill9_tests.rs"]
mod kill9_tests;
