//! The per-file recipe of a remote file and its persisted encoding.
//!
//! A remote file is split into three regions — header `[0, audio_offset)`,
//! body `[audio_offset, audio_offset + audio_length)`, trailer (the rest) —
//! and each is cut by FastCDC from its own start, so a tag edit that
//! shifts the body still finds every body chunk. Per region the recipe
//! lists the chunks known so far from the region start; the bytes they
//! cover are the region's *frontier*. Recipes hold no store references:
//! a chunk evicted from the store is refetched by its byte range.
//!
//! # Encoding (version 1, all integers little-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `MFRC` |
//! | 4 | version, `1` |
//! | 5..13 | stamp size, u64 |
//! | 13..21 | stamp mtime_ns, i64 |
//! | then 3 times (header, body, trailer): | |
//! | +0..8 | region start (absolute file offset), u64 |
//! | +8..16 | region length, u64 |
//! | +16..20 | chunk count `n`, u32 |
//! | +20.. | `n` × (chunk id: xxh3-128 as u128, 16 bytes; chunk length, u32) |
//! | last 16 | checksum: xxh3-128 (`ChunkId::of`) of every byte before it, u128 |
//!
//! Decoding rejects a bad magic, version or checksum, trailing bytes,
//! regions that do not tile `[0, size)` in order, empty chunks, and chunks
//! that overrun their region. An empty byte string means "no recipe" (what
//! a dropped recipe is saved as).
use musicfs_blockcache::{ChunkId, RecipeChunk};
use musicfs_index::{FileRecord, Stamp};

const MAGIC: &[u8; 4] = b"MFRC";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 21;
const REGION_HEAD_LEN: usize = 20;
const CHUNK_LEN: usize = 20;
const CHECKSUM_LEN: usize = 16;

/// Index of the body in [`FileRecipe::regions`].
pub(crate) const BODY: usize = 1;

/// Why saved recipe bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Garbage(pub &'static str);

impl std::fmt::Display for Garbage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable recipe: {}", self.0)
    }
}

/// The chunks known so far of one region, from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    pub start: u64,
    pub len: u64,
    chunks: Vec<RecipeChunk>,
    /// Offset of each chunk from the region start (for binary search).
    offsets: Vec<u64>,
    covered: u64,
}

impl Region {
    pub(crate) fn new(start: u64, len: u64) -> Region {
        Region {
            start,
            len,
            chunks: Vec::new(),
            offsets: Vec::new(),
            covered: 0,
        }
    }

    pub(crate) fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Absolute offset up to which the chunks are known.
    pub(crate) fn frontier(&self) -> u64 {
        self.start + self.covered
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.covered == self.len
    }

    pub(crate) fn chunks(&self) -> &[RecipeChunk] {
        &self.chunks
    }

    /// Appends a chunk at the frontier; refuses one that would overrun the region.
    pub(crate) fn push(&mut self, id: ChunkId, len: u32) -> bool {
        if len == 0 || self.covered + len as u64 > self.len {
            return false;
        }
        self.offsets.push(self.covered);
        self.chunks.push(RecipeChunk { id, len });
        self.covered += len as u64;
        true
    }

    /// The same chunks moved to start at `start` (the body after a tag edit).
    pub(crate) fn moved_to(&self, start: u64) -> Region {
        Region {
            start,
            ..self.clone()
        }
    }

    /// Chunks overlapping the absolute range `[from, to)` (below the
    /// frontier): (id, absolute start, length).
    pub(crate) fn covering(&self, from: u64, to: u64) -> Vec<(ChunkId, u64, usize)> {
        let (rel_from, rel_to) = (from.saturating_sub(self.start), to - self.start);
        let first = self.offsets.partition_point(|&o| o <= rel_from).max(1) - 1;
        let mut out = Vec::new();
        for (c, &o) in self.chunks[first..].iter().zip(&self.offsets[first..]) {
            if o >= rel_to {
                break;
            }
            out.push((c.id, self.start + o, c.len as usize));
        }
        out
    }
}

/// What is known of one remote file's chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRecipe {
    pub stamp: Stamp,
    pub regions: [Region; 3],
}

/// (start, len) of header, body and trailer for `record`, clamped so they
/// always tile `[0, size)` even if the catalog's audio bounds are off.
pub(crate) fn layout(record: &FileRecord) -> [(u64, u64); 3] {
    let size = record.stamp.size;
    let body_start = record.audio_offset.min(size);
    let body_len = record.audio_length.min(size - body_start);
    let trailer = body_start + body_len;
    [
        (0, body_start),
        (body_start, body_len),
        (trailer, size - trailer),
    ]
}

impl FileRecipe {
    /// An empty recipe for `record`'s current stamp and regions.
    pub(crate) fn empty(record: &FileRecord) -> FileRecipe {
        let [h, b, t] = layout(record);
        FileRecipe {
            stamp: record.stamp,
            regions: [
                Region::new(h.0, h.1),
                Region::new(b.0, b.1),
                Region::new(t.0, t.1),
            ],
        }
    }

    /// Whether this recipe describes `record` as it is now.
    pub(crate) fn fits(&self, record: &FileRecord) -> bool {
        self.stamp == record.stamp
            && self
                .regions
                .iter()
                .zip(layout(record))
                .all(|(r, (start, len))| r.start == start && r.len == len)
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.regions.iter().all(Region::is_complete)
    }

    /// The non-empty region holding byte `pos` (None at or past the end).
    pub(crate) fn region_at(&self, pos: u64) -> Option<usize> {
        self.regions
            .iter()
            .position(|r| r.len > 0 && r.start <= pos && pos < r.end())
    }

    /// Every chunk id, each region in order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.regions
            .iter()
            .flat_map(|r| r.chunks.iter().map(|c| c.id))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let chunks: usize = self.regions.iter().map(|r| r.chunks.len()).sum();
        let mut out = Vec::with_capacity(
            HEADER_LEN + 3 * REGION_HEAD_LEN + chunks * CHUNK_LEN + CHECKSUM_LEN,
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.stamp.size.to_le_bytes());
        out.extend_from_slice(&self.stamp.mtime_ns.to_le_bytes());
        for r in &self.regions {
            out.extend_from_slice(&r.start.to_le_bytes());
            out.extend_from_slice(&r.len.to_le_bytes());
            out.extend_from_slice(&(r.chunks.len() as u32).to_le_bytes());
            for c in &r.chunks {
                out.extend_from_slice(&c.id.0.to_le_bytes());
                out.extend_from_slice(&c.len.to_le_bytes());
            }
        }
        let sum = ChunkId::of(&out).0;
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// `Ok(None)` for an empty (dropped) recipe.
    pub(crate) fn decode(data: &[u8]) -> Result<Option<FileRecipe>, Garbage> {
        if data.is_empty() {
            return Ok(None);
        }
        if data.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(Garbage("too short"));
        }
        let (body, sum) = data.split_at(data.len() - CHECKSUM_LEN);
        if &body[..4] != MAGIC {
            return Err(Garbage("bad magic"));
        }
        if body[4] != VERSION {
            return Err(Garbage("unknown version"));
        }
        if ChunkId::of(body).0 != u128::from_le_bytes(sum.try_into().expect("16 bytes")) {
            return Err(Garbage("bad checksum"));
        }
        let mut cur = Cursor { data: body, at: 5 };
        let stamp = Stamp {
            size: cur.u64()?,
            mtime_ns: cur.u64()? as i64,
        };
        let mut regions = Vec::with_capacity(3);
        let mut expected_start = 0u64;
        for _ in 0..3 {
            let start = cur.u64()?;
            let len = cur.u64()?;
            if start != expected_start {
                return Err(Garbage("regions do not tile the file"));
            }
            expected_start = start.checked_add(len).ok_or(Garbage("region overflows"))?;
            let mut region = Region::new(start, len);
            let n = cur.u32()? as usize;
            if n > cur.remaining() / CHUNK_LEN {
                return Err(Garbage("chunk count past the end"));
            }
            for _ in 0..n {
                let id = ChunkId(cur.u128()?);
                if !region.push(id, cur.u32()?) {
                    return Err(Garbage("chunk empty or past its region"));
                }
            }
            regions.push(region);
        }
        if expected_start != stamp.size {
            return Err(Garbage("regions do not end at the file size"));
        }
        if cur.remaining() != 0 {
            return Err(Garbage("trailing bytes"));
        }
        let regions: [Region; 3] = regions.try_into().expect("three regions");
        Ok(Some(FileRecipe { stamp, regions }))
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Garbage> {
        let bytes = self
            .data
            .get(self.at..self.at + N)
            .ok_or(Garbage("truncated"))?;
        self.at += N;
        Ok(bytes.try_into().expect("N bytes"))
    }
    fn u32(&mut self) -> Result<u32, Garbage> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, Garbage> {
        self.take().map(u64::from_le_bytes)
    }
    fn u128(&mut self) -> Result<u128, Garbage> {
        self.take().map(u128::from_le_bytes)
    }
    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64, audio_offset: u64, audio_length: u64) -> FileRecord {
        FileRecord {
            id: 1,
            origin_id: 1,
            rel_path: b"a.flac".to_vec(),
            stamp: Stamp { size, mtime_ns: 42 },
            format: "flac".into(),
            audio_offset,
            audio_length,
        }
    }

    fn sample() -> FileRecipe {
        let mut r = FileRecipe::empty(&record(1000, 100, 800));
        assert!(r.regions[0].push(ChunkId::of(b"h"), 100));
        assert!(r.regions[1].push(ChunkId::of(b"b1"), 300));
        assert!(r.regions[1].push(ChunkId::of(b"b2"), 200));
        r
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(FileRecipe::decode(&bytes).unwrap(), Some(r.clone()));
        assert_eq!(FileRecipe::decode(&[]).unwrap(), None);
        assert!(r.regions[0].is_complete() && !r.regions[1].is_complete());
        assert_eq!(r.regions[1].frontier(), 600);
        assert!(r.regions[2].chunks().is_empty());
        assert!(!r.is_complete());
    }

    #[test]
    fn garbage_is_rejected() {
        let good = sample().encode();
        // Any flipped byte is caught (magic, version, or checksum).
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(FileRecipe::decode(&bad).is_err(), "flip at {i} accepted");
        }
        for len in 1..good.len() {
            assert!(FileRecipe::decode(&good[..len]).is_err(), "cut at {len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(FileRecipe::decode(&long).is_err());
        assert_eq!(
            FileRecipe::decode(b"not a recipe at all, really not, no, it is not").unwrap_err(),
            Garbage("bad magic")
        );
        // Well-checksummed but inconsistent: a chunk overrunning its region.
        let mut body = good[..good.len() - CHECKSUM_LEN].to_vec();
        let first_chunk_len = HEADER_LEN + REGION_HEAD_LEN + 16;
        body[first_chunk_len..first_chunk_len + 4].copy_from_slice(&101u32.to_le_bytes());
        let sum = ChunkId::of(&body).0.to_le_bytes();
        body.extend_from_slice(&sum);
        assert_eq!(
            FileRecipe::decode(&body).unwrap_err(),
            Garbage("chunk empty or past its region")
        );
    }

    #[test]
    fn layout_clamps_and_regions_find_bytes() {
        let r = FileRecipe::empty(&record(1000, 2000, 5));
        assert_eq!(r.regions[0].len, 1000);
        assert_eq!(r.regions[1].len + r.regions[2].len, 0);
        let s = sample();
        assert_eq!(s.region_at(0), Some(0));
        assert_eq!(s.region_at(100), Some(1));
        assert_eq!(s.region_at(999), Some(2));
        assert_eq!(s.region_at(1000), None);
        let got: Vec<u64> = s.regions[1]
            .covering(150, 450)
            .iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(got, vec![100, 400]);
        let got: Vec<u64> = s.regions[1]
            .covering(400, 401)
            .iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(got, vec![400]);
        assert!(s.fits(&record(1000, 100, 800)));
        assert!(!s.fits(&record(1000, 90, 800)));
    }
}
