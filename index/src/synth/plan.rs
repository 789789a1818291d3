//! [`Plan`]: the served file as segments, its encoding for the catalog,
//! and reads through it.
use std::sync::Arc;

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

/// The served file: its segments in order. Deterministic for the same
/// original bytes and edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub segments: Vec<Segment>,
}

impl Plan {
    /// Total served size.
    pub fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::Original { len, .. } | Segment::OggRenumbered { len, .. } => *len,
            })
            .sum()
    }
}
