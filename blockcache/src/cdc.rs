//! Content-defined chunking (FastCDC v2020) and chunk names (xxh3-128).
use crate::{Error, Result};
use std::io::Read;

/// A chunk's name: the xxh3-128 of its bytes. Also its checksum: every
/// read recomputes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub u128);

impl ChunkId {
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(xxhash_rust::xxh3::xxh3_128(data))
    }
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

impl std::str::FromStr for ChunkId {
    type Err = Error;
    fn from_str(s: &str) -> Result<ChunkId> {
        if s.len() != 32 {
            return Err(Error::Config(format!(
                "chunk id {s:?} is not 32 hex digits"
            )));
        }
        u128::from_str_radix(s, 16)
            .map(ChunkId)
            .map_err(|e| Error::Config(format!("chunk id {s:?}: {e}")))
    }
}

/// FastCDC sizes in bytes. Defaults: min 16 KiB, average 64 KiB, max 256 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdcParams {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
}

impl Default for CdcParams {
    fn default() -> CdcParams {
        CdcParams {
            min: 16 << 10,
            avg: 64 << 10,
            max: 256 << 10,
        }
    }
}

impl CdcParams {
    /// Checks the sizes against what FastCDC v2020 supports (even sizes,
    /// min ≤ avg ≤ max, each within the crate's bounds).
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
            && [self.min, self.avg, self.max].iter().all(|s| s % 2 == 0);
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "CDC sizes {self:?}: need even sizes with min in {MINIMUM_MIN}..={MINIMUM_MAX}, avg in \
                 {AVERAGE_MIN}..={AVERAGE_MAX}, max in {MAXIMUM_MIN}..={MAXIMUM_MAX}, min ≤ avg ≤ max"
            )))
        }
    }
}

/// Splits `reader` into content-defined chunks.
pub fn chunks<R: Read>(
    reader: R,
    params: &CdcParams,
) -> Result<impl Iterator<Item = Result<Vec<u8>>>> {
    params.validate()?;
    let stream = fastcdc::v2020::StreamCDC::new(reader, params.min, params.avg, params.max);
    Ok(stream.map(|chunk| chunk.map(|c| c.data).map_err(|e| Error::Source(e.into()))))
}

/// Cut points of an in-memory buffer: (offset, length) of each chunk.
pub fn cut_points(data: &[u8], params: &CdcParams) -> Result<Vec<(usize, usize)>> {
    params.validate()?;
    Ok(
        fastcdc::v2020::FastCDC::new(data, params.min, params.avg, params.max)
            .map(|c| (c.offset, c.length))
            .collect(),
    )
}

/// One chunk of a file's recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeChunk {
    pub id: ChunkId,
    pub len: u32,
}

/// How to reassemble a file: its chunks in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipe {
    pub chunks: Vec<RecipeChunk>,
}

impl Recipe {
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn chunk_sizes_respect_the_bounds_and_cover_the_input() {
        let data = Rng::new(1).bytes(3 << 20);
        let p = CdcParams::default();
        let pieces: Vec<Vec<u8>> = chunks(&data[..], &p)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert!(pieces.len() > 10);
        let (last, body) = pieces.split_last().unwrap();
        assert!(body.iter().all(|c| c.len() >= p.min && c.len() <= p.max));
        assert!(last.len() <= p.max);
        assert_eq!(pieces.concat(), data);
        let cuts = cut_points(&data, &p).unwrap();
        assert_eq!(
            cuts.len(),
            pieces.len(),
            "streaming and in-memory cuts agree"
        );
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let data = Rng::new(2).bytes(2 << 20);
        let mut edited = data.clone();
        edited.splice(1_000_000..1_000_000, *b"inserted");
        let ids = |d: &[u8]| -> std::collections::HashSet<ChunkId> {
            chunks(d, &CdcParams::default())
                .unwrap()
                .map(|c| ChunkId::of(&c.unwrap()))
                .collect()
        };
        let (a, b) = (ids(&data), ids(&edited));
        assert!(
            a.intersection(&b).count() + 3 >= a.len(),
            "{} of {} shared",
            a.intersection(&b).count(),
            a.len()
        );
    }

    #[test]
    fn params_are_validated_and_ids_round_trip_as_hex() {
        assert!(CdcParams {
            min: 16 << 10,
            avg: 8 << 10,
            max: 256 << 10
        }
        .validate()
        .is_err());
        assert!(CdcParams {
            min: 16_385,
            avg: 64 << 10,
            max: 256 << 10
        }
        .validate()
        .is_err());
        let id = ChunkId::of(b"abc");
        assert_eq!(id.to_string().parse::<ChunkId>().unwrap(), id);
        assert!("xyz".parse::<ChunkId>().is_err());
    }
}
