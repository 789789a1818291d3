//! Checkpoints: a snapshot of the index and the bitmap written to the
//! inactive slot, then made current by a superblock write. Two slots, so a
//! crash mid-checkpoint leaves the previous one, still named by the
//! previous superblock, intact.
use crate::alloc::Allocator;
use crate::format::{
    self, IndexRecord, Layout, Superblock, BLOCK, INDEX_PER_BLOCK, INDEX_RECORD_LEN, KIND_BITMAP,
    KIND_INDEX, PAYLOAD_LEN,
};
use crate::{AlignedBuf, BlockDevice, Error, Result};

/// Blocks read per request while loading.
const READ_BLOCKS: usize = 256;

/// Writes `records` and `bitmap` into `slot` as checkpoint `generation`
/// (not flushed: the caller flushes before pointing a superblock at it).
pub fn write(
    dev: &dyn BlockDevice,
    layout: &Layout,
    slot: u8,
    generation: u64,
    seed: u64,
    records: &[IndexRecord],
    bitmap: &Allocator,
) -> Result<()> {
    let start = layout.slot_start[slot as usize];
    let index_blocks = records.len().div_ceil(INDEX_PER_BLOCK);
    if index_blocks as u64 > layout.index_blocks {
        return Err(Error::Config(format!(
            "{} chunks exceed the index capacity {}",
            records.len(),
            layout.index_capacity()
        )));
    }
    let mut payload = vec![0u8; PAYLOAD_LEN];
    for (piece_no, piece) in records.chunks(INDEX_PER_BLOCK * READ_BLOCKS).enumerate() {
        let first = piece_no * READ_BLOCKS;
        let mut buf = AlignedBuf::zeroed(piece.len().div_ceil(INDEX_PER_BLOCK) * BLOCK);
        for (i, (group, out)) in piece
            .chunks(INDEX_PER_BLOCK)
            .zip(buf.as_mut_slice().chunks_exact_mut(BLOCK))
            .enumerate()
        {
            payload.fill(0);
            for (r, slot) in group.iter().zip(payload.chunks_exact_mut(INDEX_RECORD_LEN)) {
                r.encode(slot);
            }
            format::seal(
                out,
                KIND_INDEX,
                group.len() as u32,
                generation,
                (first + i) as u64,
                &payload,
                seed,
            );
        }
        dev.write_at(&buf, Layout::byte(start + first as u64))?;
    }
    let bytes = bitmap.as_bytes();
    let mut buf = AlignedBuf::zeroed(layout.bitmap_blocks as usize * BLOCK);
    for (i, out) in buf.as_mut_slice().chunks_exact_mut(BLOCK).enumerate() {
        let piece = bytes
            .get(i * PAYLOAD_LEN..)
            .map_or(&[][..], |rest| &rest[..rest.len().min(PAYLOAD_LEN)]);
        format::seal(
            out,
            KIND_BITMAP,
            piece.len() as u32,
            generation,
            i as u64,
            piece,
            seed,
        );
    }
    dev.write_at(&buf, Layout::byte(start + layout.index_blocks))?;
    Ok(())
}

/// Loads the checkpoint the superblock names: its index records and the
/// bitmap persisted with them.
pub fn read(dev: &dyn BlockDevice, sb: &Superblock) -> Result<(Vec<IndexRecord>, Allocator)> {
    let layout = &sb.layout;
    let start = layout.slot_start[sb.active_slot as usize];
    let seed = sb.seed();
    let corrupt = |detail: String| Error::Corrupt {
        device: dev.describe(),
        detail,
    };
    let want = sb.checkpoint_entries as usize;
    let index_blocks = want.div_ceil(INDEX_PER_BLOCK);
    let mut records = Vec::with_capacity(want);
    for first in (0..index_blocks).step_by(READ_BLOCKS) {
        let n = READ_BLOCKS.min(index_blocks - first);
        let mut buf = AlignedBuf::zeroed(n * BLOCK);
        dev.read_at(&mut buf, Layout::byte(start + first as u64))?;
        for (i, block) in buf.as_slice().chunks_exact(BLOCK).enumerate() {
            let pos = (first + i) as u64;
            let opened = format::open(block, KIND_INDEX, pos, seed)
                .filter(|o| o.seq == sb.checkpoint_gen && o.count as usize <= INDEX_PER_BLOCK)
                .ok_or_else(|| {
                    corrupt(format!(
                        "checkpoint {} index block {pos} in slot {} is damaged",
                        sb.checkpoint_gen, sb.active_slot
                    ))
                })?;
            for rec in opened
                .payload
                .chunks_exact(INDEX_RECORD_LEN)
                .take(opened.count as usize)
            {
                records.push(IndexRecord::decode(rec));
            }
        }
    }
    if records.len() != want {
        return Err(corrupt(format!(
            "checkpoint {} holds {} chunks, the superblock says {want}",
            sb.checkpoint_gen,
            records.len()
        )));
    }
    let mut buf = AlignedBuf::zeroed(layout.bitmap_blocks as usize * BLOCK);
    dev.read_at(&mut buf, Layout::byte(start + layout.index_blocks))?;
    let mut bytes = Vec::with_capacity(layout.data_blocks.div_ceil(8) as usize);
    for (i, block) in buf.as_slice().chunks_exact(BLOCK).enumerate() {
        let opened = format::open(block, KIND_BITMAP, i as u64, seed)
            .filter(|o| o.seq == sb.checkpoint_gen && o.count as usize <= PAYLOAD_LEN)
            .ok_or_else(|| {
                corrupt(format!(
                    "checkpoint {} bitmap block {i} is damaged",
                    sb.checkpoint_gen
                ))
            })?;
        bytes.extend_from_slice(&opened.payload[..opened.count as usize]);
    }
    Ok((records, Allocator::from_bytes(&bytes, layout.data_blocks)))
}

/// Writes the superblock to its copy (not flushed).
pub fn write_superblock(dev: &dyn BlockDevice, sb: &Superblock) -> Result<()> {
    let buf = AlignedBuf::from_slice(&sb.encode());
    dev.write_at(&buf, Layout::byte(sb.copy()))
}

/// Both superblock copies, decoded or with the reason they are not valid.
pub fn read_superblocks(
    dev: &dyn BlockDevice,
) -> Result<[std::result::Result<Superblock, String>; 2]> {
    let mut buf = AlignedBuf::zeroed(2 * BLOCK);
    dev.read_at(&mut buf, 0)?;
    let (a, b) = buf.as_slice().split_at(BLOCK);
    Ok([Superblock::decode(a), Superblock::decode(b)])
}
