//! [`Plan`]: the served file as segments, its encoding for the catalog,
//! and reads through it.
//!
//! # Encoding (version 1)
//!
//! The catalog stores a plan as bytes (`splices.plan`). All integers are
//! little-endian.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "MFSP"
//! 4       1     version = 1
//! 5       4     segment count n
//! 9       ...   n segments, each a kind byte then its fields:
//!                 0 Bytes          u32 length, then that many bytes
//!                 1 Original       u64 offset, u64 length
//!                 2 OggRenumbered  u64 offset, u64 length, u32 seq_delta,
//!                                  u32 page count p, p × u64 page offset
//! end-8   8     xxh3-64 of every byte before it
//! ```
//!
//! [`Plan::decode`] checks the checksum first, then the magic and version,
//! bounds every length by the bytes left, and rejects trailing bytes: a
//! plan read back is exactly the plan written or an error.
use crate::{Error, Result};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

use super::ReadAt;

const MAGIC: &[u8; 4] = b"MFSP";
const VERSION: u8 = 1;
const KIND_BYTES: u8 = 0;
const KIND_ORIGINAL: u8 = 1;
const KIND_OGG: u8 = 2;
/// The smallest encoded segment (kind + an empty Bytes' length): bounds
/// the segment count a hostile header can claim.
const MIN_SEGMENT: usize = 5;

/// A piece of the served file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Synthesized bytes.
    Bytes(Arc<[u8]>),
    /// `len` bytes of the original from `offset`, as they are.
    Original { offset: u64, len: u64 },
    /// `len` bytes of the original from `offset`, a run of whole Ogg
    /// pages (starting at the absolute offsets `pages`) whose sequence
    /// numbers are served `seq_delta` higher (wrapping), CRCs recomputed:
    /// for when the rewritten header pages are not as many as before.
    OggRenumbered {
        offset: u64,
        len: u64,
        seq_delta: u32,
        pages: Arc<[u64]>,
    },
}

impl Segment {
    /// Served length of this segment.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::Original { len, .. } | Segment::OggRenumbered { len, .. } => *len,
        }
    }

    /// Whether the segment serves no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The served file: its segments in order. Deterministic for the same
/// original bytes and edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub segments: Vec<Segment>,
}

impl Plan {
    /// Total served size.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(Segment::len).sum()
    }

    /// Whether the plan serves no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the served file at `offset` into `buf`, from the synthesized
    /// bytes and the original behind `src`. Fills `buf` unless the plan
    /// ends first. An original shorter than the plan says is an
    /// `UnexpectedEof` error: the plan is stale, and serving zeros or a
    /// short read in the middle would corrupt the file.
    pub fn read_at(
        &self,
        src: &mut dyn ReadAt,
        offset: u64,
        buf: &mut [u8],
    ) -> std::io::Result<usize> {
        let mut done = 0usize;
        let mut seg_start = 0u64;
        for seg in &self.segments {
            if done == buf.len() {
                break;
            }
            let seg_len = seg.len();
            let seg_end = seg_start + seg_len;
            let pos = offset + done as u64;
            if pos >= seg_end {
                seg_start = seg_end;
                continue;
            }
            let at = pos - seg_start;
            let want = (seg_len - at).min((buf.len() - done) as u64) as usize;
            let out = &mut buf[done..done + want];
            match seg {
                Segment::Bytes(bytes) => {
                    out.copy_from_slice(&bytes[at as usize..at as usize + want]);
                }
                Segment::Original { offset: from, .. } => read_full(src, from + at, out)?,
                Segment::OggRenumbered {
                    offset: from,
                    len,
                    seq_delta,
                    pages,
                } => {
                    let mut filled = 0;
                    while filled < want {
                        let n = super::ogg::read_renumbered(
                            src,
                            *from,
                            *len,
                            *seq_delta,
                            pages,
                            at + filled as u64,
                            &mut out[filled..],
                        )?;
                        if n == 0 {
                            return Err(stale());
                        }
                        filled += n;
                    }
                }
            }
            done += want;
            seg_start = seg_end;
        }
        Ok(done)
    }

    /// The plan's bytes for the catalog (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for seg in &self.segments {
            match seg {
                Segment::Bytes(bytes) => {
                    out.push(KIND_BYTES);
                    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    out.extend_from_slice(bytes);
                }
                Segment::Original { offset, len } => {
                    out.push(KIND_ORIGINAL);
                    out.extend_from_slice(&offset.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                }
                Segment::OggRenumbered {
                    offset,
                    len,
                    seq_delta,
                    pages,
                } => {
                    out.push(KIND_OGG);
                    out.extend_from_slice(&offset.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&seq_delta.to_le_bytes());
                    out.extend_from_slice(&(pages.len() as u32).to_le_bytes());
                    for p in pages.iter() {
                        out.extend_from_slice(&p.to_le_bytes());
                    }
                }
            }
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a plan written by [`Plan::encode`]; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Plan> {
        let body_len = bytes
            .len()
            .checked_sub(8)
            .filter(|&n| n >= 9)
            .ok_or_else(|| bad(format!("{} bytes is too short", bytes.len())))?;
        let (body, sum) = bytes.split_at(body_len);
        let sum = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
        if xxh3_64(body) != sum {
            return Err(bad("checksum mismatch".into()));
        }
        if &body[..4] != MAGIC {
            return Err(bad("bad magic".into()));
        }
        if body[4] != VERSION {
            return Err(bad(format!("unknown version {}", body[4])));
        }
        let mut r = Reader {
            bytes: body,
            pos: 5,
        };
        let count = r.u32()? as usize;
        if count > r.left() / MIN_SEGMENT {
            return Err(bad(format!("{count} segments cannot fit")));
        }
        let mut segments = Vec::with_capacity(count);
        for _ in 0..count {
            let seg = match r.take(1)?[0] {
                KIND_BYTES => {
                    let n = r.u32()? as usize;
                    Segment::Bytes(Arc::from(r.take(n)?))
                }
                KIND_ORIGINAL => {
                    let offset = r.u64()?;
                    let len = r.u64()?;
                    Segment::Original { offset, len }
                }
                KIND_OGG => {
                    let offset = r.u64()?;
                    let len = r.u64()?;
                    let seq_delta = r.u32()?;
                    let n = r.u32()? as usize;
                    if n > r.left() / 8 {
                        return Err(bad(format!("{n} Ogg pages cannot fit")));
                    }
                    let pages = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
                    Segment::OggRenumbered {
                        offset,
                        len,
                        seq_delta,
                        pages: pages.into(),
                    }
                }
                other => return Err(bad(format!("unknown segment kind {other}"))),
            };
            if let Segment::Original { offset, len } | Segment::OggRenumbered { offset, len, .. } =
                seg
            {
                if offset.checked_add(len).is_none() {
                    return Err(bad("segment range overflows".into()));
                }
            }
            segments.push(seg);
        }
        if r.left() != 0 {
            return Err(bad(format!("{} trailing bytes", r.left())));
        }
        let plan = Plan { segments };
        if plan
            .segments
            .iter()
            .try_fold(0u64, |acc, s| acc.checked_add(s.len()))
            .is_none()
        {
            return Err(bad("total length overflows".into()));
        }
        Ok(plan)
    }
}

/// Builds a [`Plan`] piece by piece, merging adjacent synthesized bytes
/// and contiguous ranges of the original into single segments.
#[derive(Default)]
pub(super) struct Builder {
    segments: Vec<Segment>,
    pending: Vec<u8>,
}

impl Builder {
    pub(super) fn bytes(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    pub(super) fn original(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.flush();
        if let Some(Segment::Original {
            offset: prev,
            len: prev_len,
        }) = self.segments.last_mut()
        {
            if *prev + *prev_len == offset {
                *prev_len += len;
                return;
            }
        }
        self.segments.push(Segment::Original { offset, len });
    }

    /// `len` zeros of padding right before the audio at `audio_offset`.
    /// When the original has zeros there (`from_original`, see
    /// `choose_padding`) they are served from it and merge with the
    /// audio's range, so the plan stores no run of zeros.
    pub(super) fn padding(&mut self, audio_offset: u64, len: u64, from_original: bool) {
        if from_original {
            self.original(audio_offset - len, len);
        } else {
            self.bytes(&vec![0u8; len as usize]);
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let bytes = std::mem::take(&mut self.pending);
            self.segments.push(Segment::Bytes(bytes.into()));
        }
    }

    pub(super) fn finish(mut self) -> Plan {
        self.flush();
        Plan {
            segments: self.segments,
        }
    }
}

/// Reads exactly `buf.len()` bytes of the original at `offset`.
fn read_full(src: &mut dyn ReadAt, mut offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read_at(offset, &mut buf[filled..]) {
            Ok(0) => return Err(stale()),
            Ok(n) => {
                filled += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn stale() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the original is shorter than its splice plan says",
    )
}

fn bad(message: String) -> Error {
    Error::Synth(format!("splice plan: {message}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(bad(format!("truncated at byte {}", self.pos)));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::synth::Slice;

    /// Returns at most 3 bytes per call, to prove reads loop.
    struct Dribble<'a>(Slice<'a>);

    impl ReadAt for Dribble<'_> {
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.0.read_at(offset, &mut buf[..n])
        }
    }

    fn sample() -> Plan {
        Plan {
            segments: vec![
                Segment::Bytes(Arc::from(&b"HEADER"[..])),
                Segment::Original {
                    offset: 10,
                    len: 20,
                },
                Segment::Bytes(Arc::from(&b""[..])),
                Segment::Original { offset: 0, len: 4 },
            ],
        }
    }

    #[test]
    fn reads_cross_segments_and_stop_at_the_end() {
        let original: Vec<u8> = (0u8..40).collect();
        let plan = sample();
        let mut expected = b"HEADER".to_vec();
        expected.extend_from_slice(&original[10..30]);
        expected.extend_from_slice(&original[0..4]);
        assert_eq!(plan.len(), expected.len() as u64);
        let mut src = Dribble(Slice(&original));
        for offset in 0..=expected.len() + 2 {
            for len in [0usize, 1, 5, 7, 100] {
                let mut buf = vec![0xAA; len];
                let n = plan.read_at(&mut src, offset as u64, &mut buf).unwrap();
                let want = expected.get(offset..).unwrap_or(&[]);
                let want = &want[..want.len().min(len)];
                assert_eq!(&buf[..n], want, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn a_short_original_is_an_error_not_a_short_read() {
        let plan = sample();
        let short: Vec<u8> = (0u8..15).collect();
        let mut src = Slice(&short);
        let mut buf = vec![0; 30];
        let err = plan.read_at(&mut src, 0, &mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn decode_inverts_encode() {
        let mut plan = sample();
        plan.segments.push(Segment::OggRenumbered {
            offset: 100,
            len: 9000,
            seq_delta: u32::MAX,
            pages: Arc::from(&[100u64, 4196, 8292][..]),
        });
        let bytes = plan.encode();
        assert_eq!(&bytes[..4], b"MFSP");
        assert_eq!(Plan::decode(&bytes).unwrap(), plan);
        let empty = Plan { segments: vec![] };
        assert_eq!(Plan::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_rejected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(Plan::decode(&bad).is_err(), "byte {i} bit {bit:#x}");
            }
        }
        for n in 0..bytes.len() {
            assert!(Plan::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    /// With a valid checksum, malformed structure is still rejected.
    #[test]
    fn hostile_but_checksummed_input_is_rejected() {
        let seal = |mut body: Vec<u8>| {
            let sum = xxh3_64(&body);
            body.extend_from_slice(&sum.to_le_bytes());
            body
        };
        let mut huge = b"MFSP\x01".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Plan::decode(&seal(huge)).is_err());
        let mut version = b"MFSP\x02".to_vec();
        version.extend_from_slice(&0u32.to_le_bytes());
        assert!(Plan::decode(&seal(version)).is_err());
        let mut bytes_past_end = b"MFSP\x01".to_vec();
        bytes_past_end.extend_from_slice(&1u32.to_le_bytes());
        bytes_past_end.push(KIND_BYTES);
        bytes_past_end.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert!(Plan::decode(&seal(bytes_past_end)).is_err());
        let mut overflow = b"MFSP\x01".to_vec();
        overflow.extend_from_slice(&1u32.to_le_bytes());
        overflow.push(KIND_ORIGINAL);
        overflow.extend_from_slice(&u64::MAX.to_le_bytes());
        overflow.extend_from_slice(&2u64.to_le_bytes());
        assert!(Plan::decode(&seal(overflow)).is_err());
    }
}
