//! The on-disk format of the chunk store, version 1.
//!
//! All integers are little-endian. The device is divided into 4096-byte
//! blocks (`BLOCK`); every region starts and ends on a block boundary.
//!
//! ```text
//! block 0              superblock copy 0
//! block 1              superblock copy 1
//! journal_start ..     journal region (journal_blocks blocks), a ring restarted at each checkpoint
//! slot_start[0] ..     checkpoint slot 0: index_blocks index blocks, then bitmap_blocks bitmap blocks
//! slot_start[1] ..     checkpoint slot 1: the same
//! data_start ..        data region (data_blocks blocks): chunk extents, zero-padded to a block
//! ```
//!
//! ## Superblock (blocks 0 and 1)
//!
//! Both copies hold the same layout; each update writes the next
//! generation to copy `generation % 2`, so one copy always holds the
//! previous, complete superblock. Opening takes the valid copy with the
//! higher generation.
//!
//! | bytes       | field                                                          |
//! |-------------|----------------------------------------------------------------|
//! | 0..8        | magic `b"MUSFSCHK"`                                            |
//! | 8..12       | format version (u32) = 1                                       |
//! | 12..16      | block size (u32) = 4096                                        |
//! | 16..32      | uuid (16 random bytes, fixed at format)                        |
//! | 32..40      | superblock generation (u64), +1 at every superblock write      |
//! | 40..48      | total blocks (u64)                                             |
//! | 48..56      | journal_start (u64, block)                                     |
//! | 56..64      | journal_blocks (u64)                                           |
//! | 64..72      | slot_start\[0\] (u64, block)                                   |
//! | 72..80      | slot_start\[1\] (u64, block)                                   |
//! | 80..88      | index_blocks per slot (u64)                                    |
//! | 88..96      | bitmap_blocks per slot (u64)                                   |
//! | 96..104     | data_start (u64, block)                                        |
//! | 104..112    | data_blocks (u64)                                              |
//! | 112..120    | checkpoint generation (u64) of the active checkpoint           |
//! | 120         | active checkpoint slot (u8, 0 or 1)                            |
//! | 121..128    | zero                                                           |
//! | 128..136    | journal_seq (u64): sequence number expected at journal block 0 |
//! | 136..144    | entries in the active checkpoint's index (u64)                 |
//! | 144..4088   | zero                                                           |
//! | 4088..4096  | xxh3-64 (seed 0) of bytes 0..4088                              |
//!
//! ## Metadata blocks (journal, index, bitmap)
//!
//! Every other metadata block has the same frame:
//!
//! | bytes       | field                                                              |
//! |-------------|--------------------------------------------------------------------|
//! | 0..4        | kind (u32): `JRNL`, `INDX` or `BITM` as ASCII                      |
//! | 4..8        | count (u32): entries (journal, index) or payload bytes (bitmap)    |
//! | 8..16       | sequence (u64): journal sequence number, or checkpoint generation  |
//! | 16..24      | position (u64): the block's index within its region or slot part  |
//! | 24..4088    | payload (4064 bytes)                                               |
//! | 4088..4096  | xxh3-64 of bytes 0..4088, seeded with the store's uuid             |
//!
//! The uuid seed makes blocks left over from an earlier format of the same
//! device fail their checksum; the sequence and position make blocks left
//! over from an earlier checkpoint or journal generation fail their check.
//!
//! ## Journal payload
//!
//! A packed list of `count` entries, each starting with a tag byte:
//!
//! | tag | entry    | bytes after the tag                                            |
//! |-----|----------|----------------------------------------------------------------|
//! | 1   | put      | id (u128, 16) · extent start (u64, data-relative block) · length (u32) |
//! | 2   | set ref  | id (16) · refcount (u32)                                       |
//! | 3   | delete   | id (16)                                                        |
//!
//! A journal block at position `p` is valid only if its checksum matches
//! and its sequence equals `journal_seq + p`; replay stops at the first
//! block that is not (the torn or stale tail). Each checkpoint moves
//! `journal_seq` past every sequence number the region could still hold
//! (the next sequence plus the region size), so stale blocks never match.
//!
//! ## Index payload
//!
//! `count` records of 40 bytes: id (u128, 16) · extent start (u64,
//! data-relative block) · length in bytes (u32) · refcount (u32) · last use
//! (u64, a logical clock). The chunk's checksum is its id: the xxh3-128 of
//! its bytes, recomputed on every read.
//!
//! ## Bitmap payload
//!
//! One bit per data block, set when allocated; bit `i` is bit `i % 8`
//! (least significant first) of byte `i / 8` of the bitmap, which is split
//! into 4064-byte pieces, one per block (`count` = bytes used).
use crate::{Error, Result};

/// The store's block size; equal to the device alignment.
pub const BLOCK: usize = crate::ALIGN;
pub const MAGIC: &[u8; 8] = b"MUSFSCHK";
pub const VERSION: u32 = 1;

pub const KIND_JOURNAL: u32 = u32::from_le_bytes(*b"JRNL");
pub const KIND_INDEX: u32 = u32::from_le_bytes(*b"INDX");
pub const KIND_BITMAP: u32 = u32::from_le_bytes(*b"BITM");

const CHECKSUM_AT: usize = BLOCK - 8;
/// Start of a metadata block's payload.
pub const PAYLOAD_AT: usize = 24;
/// Payload bytes per metadata block.
pub const PAYLOAD_LEN: usize = CHECKSUM_AT - PAYLOAD_AT;
/// Bytes per index record.
pub const INDEX_RECORD_LEN: usize = 40;
/// Index records per index block.
pub const INDEX_PER_BLOCK: usize = PAYLOAD_LEN / INDEX_RECORD_LEN;
/// Bitmap bits per bitmap block.
pub const BITS_PER_BLOCK: u64 = (PAYLOAD_LEN * 8) as u64;

fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
fn get_u128(b: &[u8], at: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    u128::from_le_bytes(a)
}
fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    b[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Where the regions lie, in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub total_blocks: u64,
    pub journal_start: u64,
    pub journal_blocks: u64,
    pub slot_start: [u64; 2],
    pub index_blocks: u64,
    pub bitmap_blocks: u64,
    pub data_start: u64,
    pub data_blocks: u64,
}

impl Layout {
    /// Lays out a device of `total_blocks` with a journal of
    /// `journal_blocks` and room for `index_capacity` chunks per checkpoint.
    pub fn compute(total_blocks: u64, journal_blocks: u64, index_capacity: u64) -> Result<Layout> {
        let index_blocks = index_capacity.div_ceil(INDEX_PER_BLOCK as u64).max(1);
        // Sized for every block of the device, a slight overestimate of the
        // data region that avoids solving for it.
        let bitmap_blocks = total_blocks.div_ceil(BITS_PER_BLOCK).max(1);
        let slot_blocks = index_blocks + bitmap_blocks;
        let journal_start = 2;
        let slot0 = journal_start + journal_blocks;
        let slot1 = slot0 + slot_blocks;
        let data_start = slot1 + slot_blocks;
        if journal_blocks < 2 || data_start + 16 > total_blocks {
            return Err(Error::Config(format!(
                "device of {total_blocks} blocks is too small for a journal of {journal_blocks} \
                 blocks and an index of {index_capacity} chunks"
            )));
        }
        Ok(Layout {
            total_blocks,
            journal_start,
            journal_blocks,
            slot_start: [slot0, slot1],
            index_blocks,
            bitmap_blocks,
            data_start,
            data_blocks: total_blocks - data_start,
        })
    }

    /// Chunks one checkpoint slot can hold.
    pub fn index_capacity(&self) -> u64 {
        self.index_blocks * INDEX_PER_BLOCK as u64
    }

    pub fn byte(block: u64) -> u64 {
        block * BLOCK as u64
    }
}

/// The decoded superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub uuid: [u8; 16],
    pub generation: u64,
    pub layout: Layout,
    pub checkpoint_gen: u64,
    pub active_slot: u8,
    pub journal_seq: u64,
    pub checkpoint_entries: u64,
}

impl Superblock {
    /// The seed of every metadata block's checksum.
    pub fn seed(&self) -> u64 {
        uuid_seed(&self.uuid)
    }

    /// Which of the two copies this generation is written to.
    pub fn copy(&self) -> u64 {
        self.generation % 2
    }

    pub fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let l = &self.layout;
        put(&mut b, 0, MAGIC);
        put(&mut b, 8, &VERSION.to_le_bytes());
        put(&mut b, 12, &(BLOCK as u32).to_le_bytes());
        put(&mut b, 16, &self.uuid);
        put(&mut b, 32, &self.generation.to_le_bytes());
        put(&mut b, 40, &l.total_blocks.to_le_bytes());
        put(&mut b, 48, &l.journal_start.to_le_bytes());
        put(&mut b, 56, &l.journal_blocks.to_le_bytes());
        put(&mut b, 64, &l.slot_start[0].to_le_bytes());
        put(&mut b, 72, &l.slot_start[1].to_le_bytes());
        put(&mut b, 80, &l.index_blocks.to_le_bytes());
        put(&mut b, 88, &l.bitmap_blocks.to_le_bytes());
        put(&mut b, 96, &l.data_start.to_le_bytes());
        put(&mut b, 104, &l.data_blocks.to_le_bytes());
        put(&mut b, 112, &self.checkpoint_gen.to_le_bytes());
        b[120] = self.active_slot;
        put(&mut b, 128, &self.journal_seq.to_le_bytes());
        put(&mut b, 136, &self.checkpoint_entries.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&b[..CHECKSUM_AT]);
        put(&mut b, CHECKSUM_AT, &sum.to_le_bytes());
        b
    }

    /// Decodes one superblock copy; `Err` says why it is not valid.
    pub fn decode(b: &[u8]) -> std::result::Result<Superblock, String> {
        if b.len() < BLOCK {
            return Err("short block".into());
        }
        if &b[0..8] != MAGIC {
            return Err("no musicfs chunk store magic".into());
        }
        let sum = xxhash_rust::xxh3::xxh3_64(&b[..CHECKSUM_AT]);
        if sum != get_u64(b, CHECKSUM_AT) {
            return Err("checksum mismatch".into());
        }
        let version = get_u32(b, 8);
        if version != VERSION {
            return Err(format!(
                "format version {version}, this build reads {VERSION}"
            ));
        }
        let block = get_u32(b, 12);
        if block as usize != BLOCK {
            return Err(format!("block size {block}, expected {BLOCK}"));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let layout = Layout {
            total_blocks: get_u64(b, 40),
            journal_start: get_u64(b, 48),
            journal_blocks: get_u64(b, 56),
            slot_start: [get_u64(b, 64), get_u64(b, 72)],
            index_blocks: get_u64(b, 80),
            bitmap_blocks: get_u64(b, 88),
            data_start: get_u64(b, 96),
            data_blocks: get_u64(b, 104),
        };
        let sane = layout.journal_start == 2
            && layout.slot_start[0] == layout.journal_start + layout.journal_blocks
            && layout.slot_start[1]
                == layout.slot_start[0] + layout.index_blocks + layout.bitmap_blocks
            && layout.data_start
                == layout.slot_start[1] + layout.index_blocks + layout.bitmap_blocks
            && layout.data_start.checked_add(layout.data_blocks) == Some(layout.total_blocks)
            && layout.bitmap_blocks * BITS_PER_BLOCK >= layout.data_blocks;
        if !sane {
            return Err(format!("inconsistent layout {layout:?}"));
        }
        let active_slot = b[120];
        if active_slot > 1 {
            return Err(format!("active slot {active_slot}"));
        }
        let checkpoint_entries = get_u64(b, 136);
        if checkpoint_entries > layout.index_capacity() {
            return Err(format!(
                "{checkpoint_entries} checkpoint entries exceed the index"
            ));
        }
        Ok(Superblock {
            uuid,
            generation: get_u64(b, 32),
            layout,
            checkpoint_gen: get_u64(b, 112),
            active_slot,
            journal_seq: get_u64(b, 128),
            checkpoint_entries,
        })
    }
}

pub fn uuid_seed(uuid: &[u8; 16]) -> u64 {
    get_u64(uuid, 0) ^ get_u64(uuid, 8)
}

/// Frames a metadata block: header, payload (at most PAYLOAD_LEN bytes), checksum.
pub fn seal(
    out: &mut [u8],
    kind: u32,
    count: u32,
    seq: u64,
    position: u64,
    payload: &[u8],
    seed: u64,
) {
    debug_assert!(payload.len() <= PAYLOAD_LEN && out.len() == BLOCK);
    out.fill(0);
    put(out, 0, &kind.to_le_bytes());
    put(out, 4, &count.to_le_bytes());
    put(out, 8, &seq.to_le_bytes());
    put(out, 16, &position.to_le_bytes());
    put(out, PAYLOAD_AT, payload);
    let sum = xxhash_rust::xxh3::xxh3_64_with_seed(&out[..CHECKSUM_AT], seed);
    put(out, CHECKSUM_AT, &sum.to_le_bytes());
}

/// A metadata block that passed its checks.
pub struct Opened<'a> {
    pub count: u32,
    pub seq: u64,
    pub payload: &'a [u8],
}

/// Checks a metadata block's checksum, kind and position; the caller
/// checks the sequence.
pub fn open(block: &[u8], kind: u32, position: u64, seed: u64) -> Option<Opened<'_>> {
    let sum = xxhash_rust::xxh3::xxh3_64_with_seed(&block[..CHECKSUM_AT], seed);
    if sum != get_u64(block, CHECKSUM_AT)
        || get_u32(block, 0) != kind
        || get_u64(block, 16) != position
    {
        return None;
    }
    Some(Opened {
        count: get_u32(block, 4),
        seq: get_u64(block, 8),
        payload: &block[PAYLOAD_AT..CHECKSUM_AT],
    })
}

/// One chunk's index record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    pub id: u128,
    pub start: u64,
    pub len: u32,
    pub refcount: u32,
    pub last_use: u64,
}

impl IndexRecord {
    pub fn encode(&self, out: &mut [u8]) {
        put(out, 0, &self.id.to_le_bytes());
        put(out, 16, &self.start.to_le_bytes());
        put(out, 24, &self.len.to_le_bytes());
        put(out, 28, &self.refcount.to_le_bytes());
        put(out, 32, &self.last_use.to_le_bytes());
    }
    pub fn decode(b: &[u8]) -> IndexRecord {
        IndexRecord {
            id: get_u128(b, 0),
            start: get_u64(b, 16),
            len: get_u32(b, 24),
            refcount: get_u32(b, 28),
            last_use: get_u64(b, 32),
        }
    }
}

/// One change to the index, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalEntry {
    Put { id: u128, start: u64, len: u32 },
    SetRef { id: u128, refcount: u32 },
    Delete { id: u128 },
}

impl JournalEntry {
    pub fn encoded_len(&self) -> usize {
        match self {
            JournalEntry::Put { .. } => 29,
            JournalEntry::SetRef { .. } => 21,
            JournalEntry::Delete { .. } => 17,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            JournalEntry::Put { id, start, len } => {
                out.push(1);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&start.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
            JournalEntry::SetRef { id, refcount } => {
                out.push(2);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&refcount.to_le_bytes());
            }
            JournalEntry::Delete { id } => {
                out.push(3);
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }

    /// Decodes `count` entries; `None` if the payload does not hold them.
    pub fn decode_all(payload: &[u8], count: u32) -> Option<Vec<JournalEntry>> {
        let mut out = Vec::with_capacity(count as usize);
        let mut at = 0;
        for _ in 0..count {
            let tag = *payload.get(at)?;
            let need = match tag {
                1 => 29,
                2 => 21,
                3 => 17,
                _ => return None,
            };
            let e = payload.get(at..at + need)?;
            let id = get_u128(e, 1);
            out.push(match tag {
                1 => JournalEntry::Put {
                    id,
                    start: get_u64(e, 17),
                    len: get_u32(e, 25),
                },
                2 => JournalEntry::SetRef {
                    id,
                    refcount: get_u32(e, 17),
                },
                _ => JournalEntry::Delete { id },
            });
            at += need;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            uuid: *b"0123456789abcdef",
            generation: 7,
            layout: Layout::compute(10_000, 64, 2_000).unwrap(),
            checkpoint_gen: 3,
            active_slot: 1,
            journal_seq: 99,
            checkpoint_entries: 12,
        }
    }

    #[test]
    fn superblock_round_trips_and_rejects_any_flipped_byte() {
        let sb = sample();
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b).unwrap(), sb);
        assert_eq!(&b[0..8], MAGIC);
        assert_eq!(get_u32(&b, 8), VERSION);
        assert_eq!(get_u64(&b, 128), 99);
        for at in [0, 9, 20, 33, 100, 120, 200, 4095] {
            let mut bad = b;
            bad[at] ^= 0x40;
            assert!(Superblock::decode(&bad).is_err(), "flip at {at} accepted");
        }
    }

    #[test]
    fn layout_regions_are_disjoint_and_fill_the_device() {
        let l = Layout::compute(10_000, 64, 2_000).unwrap();
        assert_eq!(l.slot_start[0], 66);
        assert_eq!(l.index_blocks, 2_000u64.div_ceil(INDEX_PER_BLOCK as u64));
        assert_eq!(l.data_start + l.data_blocks, 10_000);
        assert!(Layout::compute(40, 64, 10).is_err());
    }

    #[test]
    fn metadata_blocks_check_seed_kind_and_position() {
        let mut b = vec![0u8; BLOCK];
        seal(&mut b, KIND_JOURNAL, 2, 41, 5, b"payload", 1234);
        let o = open(&b, KIND_JOURNAL, 5, 1234).unwrap();
        assert_eq!((o.count, o.seq), (2, 41));
        assert_eq!(&o.payload[..7], b"payload");
        assert!(
            open(&b, KIND_JOURNAL, 5, 1235).is_none(),
            "other store's seed"
        );
        assert!(open(&b, KIND_INDEX, 5, 1234).is_none(), "wrong kind");
        assert!(open(&b, KIND_JOURNAL, 6, 1234).is_none(), "misplaced block");
        b[100] ^= 1;
        assert!(open(&b, KIND_JOURNAL, 5, 1234).is_none(), "flipped byte");
    }

    #[test]
    fn journal_entries_round_trip_and_reject_garbage() {
        let entries = [
            JournalEntry::Put {
                id: u128::MAX - 3,
                start: 77,
                len: 65_536,
            },
            JournalEntry::SetRef { id: 5, refcount: 2 },
            JournalEntry::Delete { id: 9 },
        ];
        let mut buf = Vec::new();
        for e in &entries {
            e.encode(&mut buf);
        }
        assert_eq!(
            buf.len(),
            entries.iter().map(|e| e.encoded_len()).sum::<usize>()
        );
        assert_eq!(JournalEntry::decode_all(&buf, 3).unwrap(), entries);
        assert!(JournalEntry::decode_all(&buf, 4).is_none());
        buf[0] = 9;
        assert!(JournalEntry::decode_all(&buf, 3).is_none());
    }

    #[test]
    fn index_records_round_trip() {
        let r = IndexRecord {
            id: 1 << 100,
            start: 3,
            len: 4097,
            refcount: 2,
            last_use: 55,
        };
        let mut b = [0u8; INDEX_RECORD_LEN];
        r.encode(&mut b);
        assert_eq!(IndexRecord::decode(&b), r);
    }
}
