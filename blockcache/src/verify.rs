//! `ChunkStore::verify`: checks everything on the device against memory.
use crate::cdc::ChunkId;
use crate::checkpoint;
use crate::format::{JournalEntry, BLOCK};
use crate::journal::Journal;
use crate::store::{blocks_for, derive_bitmap, lock, ChunkStore};
use crate::{AlignedBuf, Result};
use std::collections::HashMap;

/// What `verify` found. Clean when `problems` and `corrupt_chunks` are empty.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Whether each superblock copy is valid.
    pub superblocks_valid: [bool; 2],
    pub chunks_checked: u64,
    /// Chunks whose bytes do not match their id (reported, not dropped:
    /// the next `get` drops them).
    pub corrupt_chunks: Vec<ChunkId>,
    /// Blocks where the allocator and the index disagree.
    pub bitmap_mismatches: u64,
    /// Everything else that is wrong, in words.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.corrupt_chunks.is_empty()
    }
}

impl ChunkStore {
    /// Checks both superblocks, that checkpoint + journal on the device
    /// reproduce the index in memory, that the bitmap matches the index and
    /// no extents overlap, and every chunk's checksum. Blocks writers while
    /// it runs.
    pub fn verify(&self) -> Result<VerifyReport> {
        let w = lock(&self.writer);
        let mut report = VerifyReport::default();
        let dev = &*self.dev;

        let copies = checkpoint::read_superblocks(dev)?;
        for (i, copy) in copies.iter().enumerate() {
            match copy {
                Ok(sb) => {
                    report.superblocks_valid[i] = true;
                    if sb.uuid != w.sb.uuid || sb.layout != w.sb.layout {
                        report.problems.push(format!(
                            "superblock copy {i} describes another store or layout"
                        ));
                    }
                }
                Err(why) => report.problems.push(format!("superblock copy {i}: {why}")),
            }
        }
        match &copies[w.sb.copy() as usize] {
            Ok(sb) if *sb == w.sb => {}
            _ => report.problems.push(format!(
                "the current superblock (generation {}) is not on the device",
                w.sb.generation
            )),
        }

        // Checkpoint + journal must rebuild exactly the index in memory.
        let st = self.read_state();
        match checkpoint::read(dev, &w.sb) {
            Err(e) => report.problems.push(format!("checkpoint: {e}")),
            Ok((records, saved_bitmap)) => {
                let (derived, _) = derive_bitmap(
                    &self.layout,
                    records.iter().map(|r| (ChunkId(r.id), r.start, r.len)),
                );
                let drift = derived.differences(&saved_bitmap);
                if drift != 0 {
                    report.problems.push(format!(
                        "checkpoint bitmap differs from its index in {drift} blocks"
                    ));
                }
                let mut index: HashMap<ChunkId, (u64, u32, u32)> = records
                    .iter()
                    .map(|r| (ChunkId(r.id), (r.start, r.len, r.refcount)))
                    .collect();
                let (entries, journal) =
                    Journal::replay(dev, &self.layout, w.sb.journal_seq, w.sb.seed())?;
                if journal.position() != w.journal.position() {
                    report.problems.push(format!(
                        "journal holds {} valid blocks on the device, {} were written",
                        journal.position(),
                        w.journal.position()
                    ));
                }
                for e in entries {
                    match e {
                        JournalEntry::Put { id, start, len } => {
                            index.insert(ChunkId(id), (start, len, 1));
                        }
                        JournalEntry::SetRef { id, refcount } => {
                            if let Some(r) = index.get_mut(&ChunkId(id)) {
                                r.2 = refcount;
                            }
                        }
                        JournalEntry::Delete { id } => {
                            index.remove(&ChunkId(id));
                        }
                    }
                }
                let same = index.len() == st.index.len()
                    && st
                        .index
                        .iter()
                        .all(|(id, e)| index.get(id) == Some(&(e.start, e.len, e.refcount)));
                if !same {
                    report.problems.push(format!(
                        "checkpoint + journal give {} chunks that differ from the {} in memory",
                        index.len(),
                        st.index.len()
                    ));
                }
            }
        }

        let (derived, overlapping) = derive_bitmap(
            &self.layout,
            st.index.iter().map(|(id, e)| (*id, e.start, e.len)),
        );
        for id in overlapping {
            report.problems.push(format!(
                "chunk {id}: extent out of range or overlapping another"
            ));
        }
        report.bitmap_mismatches = derived.differences(&st.alloc);
        if report.bitmap_mismatches != 0 {
            report.problems.push(format!(
                "allocation bitmap differs from the index in {} blocks",
                report.bitmap_mismatches
            ));
        }

        for (id, e) in st.index.iter() {
            let mut buf = AlignedBuf::zeroed(blocks_for(e.len) as usize * BLOCK);
            dev.read_at(
                &mut buf,
                crate::format::Layout::byte(self.layout.data_start + e.start),
            )?;
            report.chunks_checked += 1;
            if ChunkId::of(&buf.as_slice()[..e.len as usize]) != *id {
                report.corrupt_chunks.push(*id);
            }
        }
        Ok(report)
    }
}
