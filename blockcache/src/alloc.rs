//! The allocation bitmap of the data region: one bit per block, set when
//! allocated. Kept in memory, persisted with each checkpoint, and
//! re-derivable from the index (the index is the truth; see `store`).
use bitvec::prelude::*;

/// Next-fit allocator of contiguous block runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocator {
    bits: BitVec<u8, Lsb0>,
    used: u64,
    /// Where the next search starts, so allocations spread over the region
    /// instead of reusing the first freed blocks over and over.
    cursor: usize,
}

impl Allocator {
    /// A bitmap of `blocks` free blocks.
    pub fn new(blocks: u64) -> Allocator {
        Allocator {
            bits: bitvec![u8, Lsb0; 0; blocks as usize],
            used: 0,
            cursor: 0,
        }
    }

    /// A bitmap from its persisted bytes (see `format`), `blocks` long.
    pub fn from_bytes(bytes: &[u8], blocks: u64) -> Allocator {
        let mut bits = BitVec::<u8, Lsb0>::from_slice(bytes);
        bits.resize(blocks as usize, false);
        let used = bits.count_ones() as u64;
        Allocator {
            bits,
            used,
            cursor: 0,
        }
    }

    /// The persisted form: bit `i` is bit `i % 8` of byte `i / 8`.
    pub fn as_bytes(&self) -> &[u8] {
        self.bits.as_raw_slice()
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// Finds and marks `n` contiguous free blocks; `None` when no run is long enough.
    pub fn alloc(&mut self, n: u64) -> Option<u64> {
        let n = n as usize;
        let len = self.bits.len();
        if n == 0 || n > len {
            return None;
        }
        let start = self.cursor.min(len);
        let found = self
            .find_run(start, len, n)
            .or_else(|| self.find_run(0, (start + n).min(len), n))?;
        self.bits[found..found + n].fill(true);
        self.used += n as u64;
        self.cursor = found + n;
        Some(found as u64)
    }

    /// A run of `n` zeros starting in `from..to`.
    fn find_run(&self, from: usize, to: usize, n: usize) -> Option<usize> {
        let len = self.bits.len();
        let mut pos = from;
        while pos < to {
            let zero = pos + self.bits[pos..].first_zero()?;
            if zero >= to || zero + n > len {
                return None;
            }
            match self.bits[zero..zero + n].first_one() {
                None => return Some(zero),
                Some(one) => pos = zero + one + 1,
            }
        }
        None
    }

    /// Marks `n` blocks from `start` allocated (rebuilding from the index).
    /// Returns false, changing nothing, if any was already allocated or the
    /// run is out of range.
    pub fn mark(&mut self, start: u64, n: u64) -> bool {
        let Some(range) = self.range(start, n) else {
            return false;
        };
        if self.bits[range.clone()].any() {
            return false;
        }
        self.used += range.len() as u64;
        self.bits[range].fill(true);
        true
    }

    /// Frees `n` blocks from `start`.
    pub fn free(&mut self, start: u64, n: u64) {
        if let Some(range) = self.range(start, n) {
            let freed = self.bits[range.clone()].count_ones() as u64;
            self.bits[range].fill(false);
            self.used -= freed;
        }
    }

    fn range(&self, start: u64, n: u64) -> Option<std::ops::Range<usize>> {
        let end = start.checked_add(n)?;
        (end <= self.bits.len() as u64).then_some(start as usize..end as usize)
    }

    /// Blocks whose bits differ between two bitmaps.
    pub fn differences(&self, other: &Allocator) -> u64 {
        (self.bits.clone() ^ other.bits.clone()).count_ones() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_contiguous_runs_and_reuses_freed_space() {
        let mut a = Allocator::new(20);
        assert_eq!(a.alloc(5), Some(0));
        assert_eq!(a.alloc(5), Some(5));
        assert_eq!(a.alloc(5), Some(10));
        assert_eq!(a.used(), 15);
        a.free(5, 5);
        assert_eq!(a.used(), 10);
        // 5 free at the end (15..20) is tried first (next fit), then the hole.
        assert_eq!(a.alloc(5), Some(15));
        assert_eq!(a.alloc(6), None, "the only hole is 5 long");
        assert_eq!(a.alloc(5), Some(5));
        assert_eq!(a.alloc(1), None);
        assert_eq!(a.used(), 20);
    }

    #[test]
    fn skips_holes_too_short_for_the_request() {
        let mut a = Allocator::new(16);
        assert!(a.mark(2, 1));
        assert!(a.mark(6, 1));
        assert_eq!(a.alloc(4), Some(7));
        assert_eq!(a.alloc(3), Some(11));
        assert_eq!(a.alloc(3), Some(3), "wraps around to the hole 3..6");
        assert_eq!(a.alloc(3), None);
    }

    #[test]
    fn mark_reports_clashes_and_bytes_round_trip() {
        let mut a = Allocator::new(100);
        assert!(a.mark(10, 20));
        assert!(!a.mark(25, 10), "overlap");
        assert!(!a.mark(95, 10), "past the end");
        assert_eq!(a.used(), 20, "a refused mark changes nothing");
        assert!(!a.bits[30]);
        let b = Allocator::from_bytes(a.as_bytes(), 100);
        assert_eq!(b.used(), 20);
        assert_eq!(a.differences(&b), 0);
        let mut c = b.clone();
        c.free(10, 1);
        assert_eq!(a.differences(&c), 1);
    }
}
