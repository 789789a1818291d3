//! [`RangeReader`]: `Read + Seek` over an origin's ranged reads, fetching
//! only the pieces a tag reader asks for (the header, the trailing tags),
//! so scanning a remote library does not download it.
//!
//! Fetch policy, tuned for tag readers (lofty, our body walkers), which
//! read small pieces, mostly forward, and jump to the end for trailing tags:
//! - A miss fetches from the read position at least `block` bytes; `block`
//!   starts at 16 KiB and doubles (up to 256 KiB) for each miss that carries
//!   on where the previous fetch ended, so walking a long header costs a few
//!   round trips, while a header-only scan costs one or two small ones.
//!   Moving the position with `seek` starts over at 16 KiB.
//! - A miss in the last 64 KiB fetches exactly up to the end of the file,
//!   from a 4 KiB boundary: ID3v1, APE and Lyrics3 tags and Ogg's last page
//!   are small, and a fetch of 16 KiB for the last 128 bytes would waste
//!   most of it.
//! - Fetched pieces stay in memory (8 MiB at most, oldest dropped first) and
//!   never overlap, so nothing is fetched twice while it is held.
use crate::{Error, Origin};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const FIRST_BLOCK: u64 = 16 * 1024;
const MAX_BLOCK: u64 = 256 * 1024;
const TAIL: u64 = 64 * 1024;
const TAIL_ALIGN: u64 = 4 * 1024;
const MAX_HELD: u64 = 8 * 1024 * 1024;

pub struct RangeReader {
    origin: Arc<dyn Origin>,
    rel_path: Vec<u8>,
    size: u64,
    pos: u64,
    fetched: Arc<AtomicU64>,
    /// Fetched pieces by start offset; they never overlap.
    held: BTreeMap<u64, Vec<u8>>,
    /// Start offsets in the order fetched, for dropping the oldest.
    fetch_order: VecDeque<u64>,
    held_bytes: u64,
    block: u64,
    /// Where the previous fetch ended, to tell a sequential miss.
    last_fetch_end: Option<u64>,
}

impl RangeReader {
    /// `fetched` is added every byte fetched from the origin.
    pub fn new(
        origin: Arc<dyn Origin>,
        rel_path: Vec<u8>,
        size: u64,
        fetched: Arc<AtomicU64>,
    ) -> RangeReader {
        RangeReader {
            origin,
            rel_path,
            size,
            pos: 0,
            fetched,
            held: BTreeMap::new(),
            fetch_order: VecDeque::new(),
            held_bytes: 0,
            block: FIRST_BLOCK,
            last_fetch_end: None,
        }
    }

    /// The path it reads.
    pub fn rel_path(&self) -> &[u8] {
        &self.rel_path
    }

    /// The file's size, as given.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes `[0, len)` if all of them are held in memory, so the
    /// caller can seed the chunk cache with a header it already paid for.
    pub fn fetched_prefix(&self, len: u64) -> Option<Vec<u8>> {
        if len > self.size {
            return None;
        }
        let mut out = Vec::with_capacity(len as usize);
        for (&start, data) in self.held.range(..len) {
            if start != out.len() as u64 {
                return None;
            }
            let take = (len - start).min(data.len() as u64) as usize;
            out.extend_from_slice(&data[..take]);
        }
        (out.len() as u64 == len).then_some(out)
    }

    /// The longest prefix `[0, n)` held in memory (empty if the start of
    /// the file is not held), at most `max` bytes.
    pub fn held_prefix(&self, max: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (&start, data) in self.held.range(..max) {
            if start != out.len() as u64 {
                break;
            }
            let take = (max - start).min(data.len() as u64) as usize;
            out.extend_from_slice(&data[..take]);
        }
        out
    }

    /// The longest run of held bytes ending at the end of the file, at
    /// most `max`, as (its offset, its bytes); empty if the end is not held.
    pub fn held_suffix(&self, max: u64) -> (u64, Vec<u8>) {
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut start = self.size;
        for (&at, data) in self.held.range(..self.size).rev() {
            if at + data.len() as u64 != start || self.size - at > max {
                break;
            }
            pieces.push(data);
            start = at;
        }
        let bytes: Vec<u8> = pieces.into_iter().rev().flatten().copied().collect();
        (start, bytes)
    }

    /// The held piece containing `pos`, as (its start, its bytes).
    fn piece_at(&self, pos: u64) -> Option<(u64, &[u8])> {
        let (&start, data) = self.held.range(..=pos).next_back()?;
        (pos < start + data.len() as u64).then_some((start, data.as_slice()))
    }

    /// What to fetch for a miss at `self.pos` wanting `want` bytes: a range
    /// inside the gap around `pos`, so it overlaps nothing held.
    fn plan(&mut self, want: u64) -> (u64, u64) {
        let pos = self.pos;
        let gap_start = match self.held.range(..pos).next_back() {
            Some((&start, data)) => start + data.len() as u64,
            None => 0,
        };
        let gap_end = match self.held.range(pos..).next() {
            Some((&start, _)) => start,
            None => self.size,
        };
        let (start, end) = if self.size - pos <= TAIL {
            // At least the last TAIL_ALIGN bytes: trailing tags are read
            // backwards from the end, and the scan's quick hash wants them.
            let aligned = pos - pos % TAIL_ALIGN;
            (aligned.min(self.size.saturating_sub(TAIL_ALIGN)), self.size)
        } else {
            if self.last_fetch_end == Some(pos) {
                self.block = (self.block * 2).min(MAX_BLOCK);
            }
            // A big request (a 64 KiB `BufReader` filling up) gets one
            // block and a short read: a tag reader seldom needs all of it,
            // and one that does comes back at once, sequentially, for a
            // doubled block.
            let _ = want;
            (pos, (pos + self.block).min(self.size))
        };
        (start.max(gap_start), end.min(gap_end))
    }

    fn fetch(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let mut data = vec![0u8; (end - start) as usize];
        let mut filled = 0;
        while filled < data.len() {
            let n = self
                .origin
                .read_at(&self.rel_path, start + filled as u64, &mut data[filled..])
                .map_err(to_io)?;
            if n == 0 {
                // The file shrank under us: hold what there is.
                break;
            }
            filled += n;
            self.fetched.fetch_add(n as u64, Ordering::Relaxed);
        }
        data.truncate(filled);
        self.last_fetch_end = Some(start + filled as u64);
        if filled == 0 {
            return Ok(());
        }
        self.held_bytes += filled as u64;
        self.held.insert(start, data);
        self.fetch_order.push_back(start);
        while self.held_bytes > MAX_HELD && self.fetch_order.len() > 1 {
            let oldest = self.fetch_order.pop_front().expect("more than one piece");
            if let Some(old) = self.held.remove(&oldest) {
                self.held_bytes -= old.len() as u64;
            }
        }
        Ok(())
    }
}

/// Keeps the origin's message, and the kind where one fits. Never
/// `Interrupted`, even for transient errors: `read_exact` would retry that
/// forever, and the origin has already done its retries.
fn to_io(e: Error) -> std::io::Error {
    let kind = match e.errno() {
        libc::ENOENT => std::io::ErrorKind::NotFound,
        libc::EACCES => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.size - self.pos);
        if self.piece_at(self.pos).is_none() {
            let (start, end) = self.plan(want);
            self.fetch(start, end)?;
        }
        let Some((start, data)) = self.piece_at(self.pos) else {
            // The origin had less than the size said: end of file.
            return Ok(0);
        };
        let from = (self.pos - start) as usize;
        let n = (data.len() - from).min(want as usize);
        buf[..n].copy_from_slice(&data[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let (base, offset) = match pos {
            SeekFrom::Start(p) => (p, 0),
            SeekFrom::End(off) => (self.size, off),
            SeekFrom::Current(off) => (self.pos, off),
        };
        let new = base.checked_add_signed(offset).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        // `stream_position()` seeks by 0: that is no jump.
        if new != self.pos {
            self.block = FIRST_BLOCK;
            self.pos = new;
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn held_prefix_stops_at_the_first_gap() {
        let origin = Memory::new(1 << 20);
        let (mut r, _) = reader(&origin);
        assert!(r.held_prefix(1 << 20).is_empty());
        let mut buf = [0u8; 100];
        r.read_exact(&mut buf).unwrap();
        let head = r.held_prefix(1 << 20);
        assert_eq!(head.len() as u64, FIRST_BLOCK);
        r.seek(SeekFrom::End(-10)).unwrap();
        r.read_exact(&mut buf[..10]).unwrap();
        assert_eq!(
            r.held_prefix(1 << 20).len() as u64,
            FIRST_BLOCK,
            "the tail is not contiguous"
        );
        assert_eq!(r.held_prefix(10).len(), 10);
        let (at, tail) = r.held_suffix(1 << 20);
        assert_eq!(at + tail.len() as u64, 1 << 20);
        assert!(tail.len() >= 10 && tail[..] == origin.data[at as usize..]);
        assert!(r.held_suffix(5).1.is_empty(), "longer than max");
    }

    use super::*;
    use crate::{Entry, OriginKind, Result};
    use std::sync::Mutex;

    /// A file in memory, recording each ranged read it answers.
    struct Memory {
        data: Vec<u8>,
        reads: Mutex<Vec<(u64, usize)>>,
        fail: Option<i32>,
        /// Answers at most this much per call, as servers may.
        max_answer: usize,
    }

    impl Memory {
        fn new(size: usize) -> Arc<Memory> {
            let data = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            Arc::new(Memory {
                data,
                reads: Mutex::new(Vec::new()),
                fail: None,
                max_answer: usize::MAX,
            })
        }
        fn failing(errno: i32) -> Arc<Memory> {
            Arc::new(Memory {
                data: vec![0; 1000],
                reads: Mutex::new(Vec::new()),
                fail: Some(errno),
                max_answer: usize::MAX,
            })
        }
        fn round_trips(&self) -> usize {
            self.reads.lock().unwrap().len()
        }
    }

    impl Origin for Memory {
        fn name(&self) -> &str {
            "memory"
        }
        fn kind(&self) -> OriginKind {
            OriginKind::S3
        }
        fn location(&self) -> String {
            "memory".into()
        }
        fn list(&self) -> Result<Vec<Entry>> {
            unimplemented!()
        }
        fn stat(&self, _rel_path: &[u8]) -> Result<Entry> {
            unimplemented!()
        }
        fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
            if let Some(errno) = self.fail {
                return Err(Error::Remote {
                    origin: "memory".into(),
                    op: "read",
                    path: String::from_utf8_lossy(rel_path).into_owned(),
                    message: "the server said no".into(),
                    transient: false,
                    errno,
                });
            }
            self.reads.lock().unwrap().push((offset, buf.len()));
            let start = (offset as usize).min(self.data.len());
            let n = buf.len().min(self.data.len() - start).min(self.max_answer);
            buf[..n].copy_from_slice(&self.data[start..start + n]);
            Ok(n)
        }
    }

    fn reader(origin: &Arc<Memory>) -> (RangeReader, Arc<AtomicU64>) {
        let fetched = Arc::new(AtomicU64::new(0));
        let size = origin.data.len() as u64;
        let r = RangeReader::new(origin.clone(), b"f.flac".to_vec(), size, fetched.clone());
        (r, fetched)
    }

    #[test]
    fn ranged_reads_the_whole_file_exactly() {
        let origin = Memory::new(3 * 1024 * 1024 + 777);
        let (mut r, fetched) = reader(&origin);
        let mut out = Vec::new();
        // Odd-sized reads, to cross piece boundaries.
        let mut buf = vec![0u8; 10_007];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert!(out == origin.data, "bytes differ from the file");
        // Sequential: each byte fetched once, in few round trips thanks to
        // the growing block (16, 32, ... 256 KiB).
        assert_eq!(fetched.load(Ordering::Relaxed), origin.data.len() as u64);
        let trips = origin.round_trips();
        assert!(trips <= 20, "{trips} round trips for 3 MiB");
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn ranged_header_and_tail_scan_fetches_little() {
        let origin = Memory::new(5_000_000);
        let (mut r, fetched) = reader(&origin);
        // A tag reader: small reads through the first 20 KiB...
        let mut header = vec![0u8; 20 * 1024];
        for piece in header.chunks_mut(1000) {
            r.read_exact(piece).unwrap();
        }
        assert!(header == origin.data[..20 * 1024]);
        // ...then the ID3v1 tag at the end.
        assert_eq!(r.seek(SeekFrom::End(-128)).unwrap(), 5_000_000 - 128);
        let mut tail = [0u8; 128];
        r.read_exact(&mut tail).unwrap();
        assert!(tail[..] == origin.data[5_000_000 - 128..]);
        let total = fetched.load(Ordering::Relaxed);
        assert!(total < 64 * 1024, "fetched {total} bytes for a header scan");
        // The tail fetch took the last 4 KiB (the quick hash's sample), to
        // the end and no further.
        let reads = origin.reads.lock().unwrap().clone();
        let &(off, len) = reads.last().unwrap();
        assert_eq!(off + len as u64, 5_000_000);
        assert_eq!(len, 4096, "tail fetch of {len} bytes");
        assert_eq!(
            total,
            (16 + 32) * 1024 + 4096,
            "two blocks for 20 KiB, and the tail"
        );
    }

    #[test]
    fn ranged_held_bytes_are_not_fetched_again() {
        let origin = Memory::new(1_000_000);
        let (mut r, fetched) = reader(&origin);
        let mut buf = [0u8; 32];
        // APE-style: footer at the end, then the tag just before it.
        r.seek(SeekFrom::End(-32)).unwrap();
        r.read_exact(&mut buf).unwrap();
        r.seek(SeekFrom::End(-2000)).unwrap();
        let mut tag = vec![0u8; 2000];
        r.read_exact(&mut tag).unwrap();
        assert!(tag[..] == origin.data[1_000_000 - 2000..]);
        // The footer's fetch took the last 4 KiB, which holds the tag too.
        assert_eq!(fetched.load(Ordering::Relaxed), 4096);
        assert_eq!(origin.round_trips(), 1);
        // Going back over the header costs nothing either.
        r.seek(SeekFrom::Start(0)).unwrap();
        r.read_exact(&mut buf).unwrap();
        let after_header = fetched.load(Ordering::Relaxed);
        r.seek(SeekFrom::Start(3)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(fetched.load(Ordering::Relaxed), after_header);
        assert!(buf[..] == origin.data[3..35]);
    }

    #[test]
    fn ranged_prefix_only_when_held() {
        let origin = Memory::new(200_000);
        let (mut r, _) = reader(&origin);
        assert_eq!(r.fetched_prefix(10), None);
        let mut buf = [0u8; 10];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(r.fetched_prefix(0), Some(Vec::new()));
        assert_eq!(
            r.fetched_prefix(16 * 1024).as_deref(),
            Some(&origin.data[..16 * 1024])
        );
        assert_eq!(r.fetched_prefix(16 * 1024 + 1), None);
        // Across two pieces.
        r.seek(SeekFrom::Start(16 * 1024)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(
            r.fetched_prefix(20_000).as_deref(),
            Some(&origin.data[..20_000])
        );
        assert_eq!(r.fetched_prefix(300_000), None);
    }

    #[test]
    fn ranged_never_holds_more_than_the_cap() {
        let origin = Memory::new(12 * 1024 * 1024);
        let (mut r, _) = reader(&origin);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        assert!(sink == origin.data);
        assert!(r.held_bytes <= MAX_HELD);
        assert_eq!(
            r.held_bytes,
            r.held.values().map(|v| v.len() as u64).sum::<u64>()
        );
        // The start was dropped, the end is still there.
        assert_eq!(r.fetched_prefix(1), None);
        assert!(r.piece_at(12 * 1024 * 1024 - 1).is_some());
    }

    #[test]
    fn ranged_seek_semantics() {
        let origin = Memory::new(1000);
        let (mut r, _) = reader(&origin);
        assert_eq!(r.seek(SeekFrom::Start(100)).unwrap(), 100);
        assert_eq!(r.seek(SeekFrom::Current(-40)).unwrap(), 60);
        assert_eq!(r.seek(SeekFrom::Current(5)).unwrap(), 65);
        assert_eq!(r.stream_position().unwrap(), 65);
        let mut b = [0u8; 1];
        r.read_exact(&mut b).unwrap();
        assert_eq!(b[0], origin.data[65]);
        assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), 999);
        r.read_exact(&mut b).unwrap();
        assert_eq!(b[0], origin.data[999]);
        assert_eq!(r.read(&mut b).unwrap(), 0);
        // Past the end is allowed, and reads nothing.
        assert_eq!(r.seek(SeekFrom::End(10)).unwrap(), 1010);
        assert_eq!(r.read(&mut b).unwrap(), 0);
        let err = r.seek(SeekFrom::Current(-2000)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(r.seek(SeekFrom::End(-1001)).is_err());
        // A failed seek leaves the position alone.
        assert_eq!(r.stream_position().unwrap(), 1010);
    }

    #[test]
    fn ranged_origin_errors_surface_with_their_message() {
        let origin = Memory::failing(libc::EIO);
        let (mut r, fetched) = reader(&origin);
        let mut buf = [0u8; 10];
        let err = r.read_exact(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Other);
        assert!(err.to_string().contains("the server said no"), "{err}");
        assert!(err.to_string().contains("f.flac"), "{err}");
        assert_eq!(fetched.load(Ordering::Relaxed), 0);

        let (mut r, _) = reader(&Memory::failing(libc::ENOENT));
        assert_eq!(
            r.read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }

    #[test]
    fn ranged_short_answers_are_completed() {
        let mut memory = Memory::new(1_000_000);
        Arc::get_mut(&mut memory).unwrap().max_answer = 1000;
        let (mut r, fetched) = reader(&memory);
        let mut buf = vec![0u8; 5000];
        r.seek(SeekFrom::Start(7)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert!(buf[..] == memory.data[7..5007]);
        // One 16 KiB block, in 1000-byte answers.
        assert_eq!(fetched.load(Ordering::Relaxed), 16 * 1024);
        assert_eq!(memory.round_trips(), 17);
    }

    #[test]
    fn ranged_short_origin_is_eof_not_a_loop() {
        let origin = Memory::new(100);
        let fetched = Arc::new(AtomicU64::new(0));
        // The catalog thinks the file is bigger than it now is.
        let mut r = RangeReader::new(origin.clone(), b"f".to_vec(), 150, fetched);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == origin.data);
    }
}
