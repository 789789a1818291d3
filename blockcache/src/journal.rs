//! The append-only journal: index changes since the last checkpoint.
//!
//! Block `p` of the region carries sequence `journal_seq + p` (see
//! `format`). Appends write whole blocks after the last valid one and flush;
//! replay reads from block 0 and stops at the first block whose checksum,
//! kind, position or sequence is wrong — a torn or stale tail, dropped.
use crate::format::{self, JournalEntry, Layout, BLOCK, KIND_JOURNAL, PAYLOAD_LEN};
use crate::{AlignedBuf, BlockDevice, Result};

/// The journal's place on the device and its append position.
#[derive(Debug, Clone)]
pub struct Journal {
    start: u64,
    blocks: u64,
    /// Sequence number of block 0.
    seq0: u64,
    /// Blocks written since the last checkpoint.
    pos: u64,
    seed: u64,
}

/// Blocks read per request while replaying.
const REPLAY_READ_BLOCKS: u64 = 256;

impl Journal {
    /// An empty journal starting at `journal_seq`.
    pub fn new(layout: &Layout, journal_seq: u64, seed: u64) -> Journal {
        Journal {
            start: layout.journal_start,
            blocks: layout.journal_blocks,
            seq0: journal_seq,
            pos: 0,
            seed,
        }
    }

    /// Reads the valid prefix of the journal; returns its entries and the
    /// journal positioned after it.
    pub fn replay(
        dev: &dyn BlockDevice,
        layout: &Layout,
        journal_seq: u64,
        seed: u64,
    ) -> Result<(Vec<JournalEntry>, Journal)> {
        let mut journal = Journal::new(layout, journal_seq, seed);
        let mut entries = Vec::new();
        'read: while journal.pos < journal.blocks {
            let n = REPLAY_READ_BLOCKS.min(journal.blocks - journal.pos);
            let mut buf = AlignedBuf::zeroed(n as usize * BLOCK);
            dev.read_at(&mut buf, Layout::byte(journal.start + journal.pos))?;
            for block in buf.as_slice().chunks_exact(BLOCK) {
                let Some(opened) = format::open(block, KIND_JOURNAL, journal.pos, seed) else {
                    break 'read;
                };
                if opened.seq != journal.seq0 + journal.pos {
                    break 'read;
                }
                let Some(decoded) = JournalEntry::decode_all(opened.payload, opened.count) else {
                    break 'read;
                };
                entries.extend(decoded);
                journal.pos += 1;
            }
        }
        Ok((entries, journal))
    }

    /// Blocks needed to journal `entries`.
    pub fn blocks_for(entries: &[JournalEntry]) -> u64 {
        pack(entries).len() as u64
    }

    /// Blocks still free before a checkpoint is needed.
    pub fn room(&self) -> u64 {
        self.blocks - self.pos
    }

    pub fn capacity(&self) -> u64 {
        self.blocks
    }

    /// Blocks written since the last checkpoint.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The sequence number the next block would carry.
    pub fn next_seq(&self) -> u64 {
        self.seq0 + self.pos
    }

    /// Most entries one append may carry, so any append fits an empty journal.
    pub fn max_entries(&self) -> usize {
        (PAYLOAD_LEN / 29) * self.blocks as usize
    }

    /// Writes `entries` after the valid prefix and flushes. The caller
    /// checks `room` first (and checkpoints when it is short).
    pub fn append(&mut self, dev: &dyn BlockDevice, entries: &[JournalEntry]) -> Result<()> {
        let payloads = pack(entries);
        let n = payloads.len() as u64;
        debug_assert!(n <= self.room(), "journal append without room");
        let mut buf = AlignedBuf::zeroed(payloads.len() * BLOCK);
        for (i, ((count, payload), out)) in payloads
            .iter()
            .zip(buf.as_mut_slice().chunks_exact_mut(BLOCK))
            .enumerate()
        {
            let pos = self.pos + i as u64;
            format::seal(
                out,
                KIND_JOURNAL,
                *count,
                self.seq0 + pos,
                pos,
                payload,
                self.seed,
            );
        }
        dev.write_at(&buf, Layout::byte(self.start + self.pos))?;
        dev.flush()?;
        self.pos += n;
        Ok(())
    }
}

/// Packs entries into block payloads: (entry count, bytes).
fn pack(entries: &[JournalEntry]) -> Vec<(u32, Vec<u8>)> {
    let mut blocks: Vec<(u32, Vec<u8>)> = Vec::new();
    for e in entries {
        match blocks.last_mut() {
            Some((count, bytes)) if bytes.len() + e.encoded_len() <= PAYLOAD_LEN => {
                e.encode(bytes);
                *count += 1;
            }
            _ => {
                let mut bytes = Vec::with_capacity(PAYLOAD_LEN);
                e.encode(&mut bytes);
                blocks.push((1, bytes));
            }
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::CrashDevice;

    fn layout() -> Layout {
        Layout::compute(256, 8, 100).unwrap()
    }

    fn puts(from: u128, n: u128) -> Vec<JournalEntry> {
        (from..from + n)
            .map(|id| JournalEntry::Put {
                id,
                start: id as u64,
                len: 10,
            })
            .collect()
    }

    #[test]
    fn appended_entries_replay_in_order() {
        let dev = CrashDevice::new(256 * BLOCK as u64);
        let l = layout();
        let mut j = Journal::new(&l, 100, 7);
        j.append(&dev, &puts(0, 3)).unwrap();
        j.append(&dev, &puts(3, 200)).unwrap(); // spans two blocks
        assert_eq!(j.position(), 3);
        let (entries, replayed) = Journal::replay(&dev, &l, 100, 7).unwrap();
        assert_eq!(entries, puts(0, 203));
        assert_eq!(replayed.position(), 3);
        assert_eq!(replayed.next_seq(), 103);
    }

    #[test]
    fn replay_stops_at_a_garbled_block_and_ignores_other_sequences_and_seeds() {
        let dev = CrashDevice::new(256 * BLOCK as u64);
        let l = layout();
        let mut j = Journal::new(&l, 100, 7);
        for i in 0..4 {
            j.append(&dev, &puts(i, 1)).unwrap();
        }
        // Garble block 2: blocks 0 and 1 survive, 3 is ignored after the gap.
        let mut b = AlignedBuf::zeroed(BLOCK);
        dev.read_at(&mut b, Layout::byte(l.journal_start + 2))
            .unwrap();
        b.as_mut_slice()[600] ^= 1;
        dev.write_at(&b, Layout::byte(l.journal_start + 2)).unwrap();
        let (entries, replayed) = Journal::replay(&dev, &l, 100, 7).unwrap();
        assert_eq!(entries, puts(0, 2));
        assert_eq!(replayed.position(), 2);
        // A journal that expects another generation, or another store, sees nothing.
        assert!(Journal::replay(&dev, &l, 108, 7).unwrap().0.is_empty());
        assert!(Journal::replay(&dev, &l, 100, 8).unwrap().0.is_empty());
    }
}
