//! Ranged reads from a remote file's origins, with failover.
//!
//! A file's candidates are its own record and its replicas (byte-identical
//! copies on other origins). Every range is read from the best candidate
//! at that moment — available first, then by priority, then the file's own
//! origin — and retried on the next one when it fails, even in the middle
//! of a read: the bytes are the same. The origins bound their own calls, so
//! nothing here waits without limit.
use super::Seed;
use crate::FsStats;
use musicfs_origins::{Error as OriginError, Origin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// One place the file's bytes can be read from.
pub(crate) struct Candidate {
    pub origin: Arc<dyn Origin>,
    pub rel_path: Vec<u8>,
    /// The file's own record (preferred among equals).
    pub own: bool,
}

/// Where a remote file's bytes can be read.
pub(crate) struct Candidates {
    list: Vec<Candidate>,
    stats: Arc<FsStats>,
    /// The file's first and last bytes as its scan fetched them (same stamp).
    seed: Option<Arc<Seed>>,
}

impl Candidates {
    pub(crate) fn new(list: Vec<Candidate>, stats: Arc<FsStats>) -> Candidates {
        Candidates {
            list,
            stats,
            seed: None,
        }
    }

    pub(crate) fn with_seed(mut self, seed: Option<Arc<Seed>>) -> Candidates {
        self.seed = seed.filter(|s| !s.is_empty());
        self
    }

    /// The candidates in the order to try them now.
    fn ordered(&self) -> Vec<&Candidate> {
        let mut order: Vec<&Candidate> = self.list.iter().collect();
        order.sort_by_key(|c| (!c.origin.available(), c.origin.priority(), !c.own));
        order
    }

    /// Exactly `len` bytes at `offset`, from the first candidate that
    /// delivers them all. Counts the bytes as fetched from an origin.
    pub(crate) fn fetch(&self, offset: u64, len: usize) -> Result<Vec<u8>, OriginError> {
        if let Some(tail) = self.seed.as_ref().and_then(|s| s.tail_range(offset, len)) {
            return Ok(tail.to_vec());
        }
        let held = match &self.seed {
            Some(seed) if offset < seed.head.len() as u64 => {
                let start = offset as usize;
                &seed.head[start..seed.head.len().min(start + len)]
            }
            _ => &[][..],
        };
        if held.is_empty() {
            return self.fetch_from_origins(offset, len);
        }
        let mut out = held.to_vec();
        if out.len() < len {
            let rest = self.fetch_from_origins(offset + out.len() as u64, len - out.len())?;
            out.extend_from_slice(&rest);
        }
        Ok(out)
    }

    fn fetch_from_origins(&self, offset: u64, len: usize) -> Result<Vec<u8>, OriginError> {
        let mut buf = vec![0u8; len];
        let mut last = None;
        for (tried, c) in self.ordered().into_iter().enumerate() {
            if tried > 0 {
                self.stats.failovers.fetch_add(1, Relaxed);
            }
            match read_exact(c, offset, &mut buf) {
                Ok(()) => {
                    self.stats.origin_bytes.fetch_add(len as u64, Relaxed);
                    return Ok(buf);
                }
                Err(e) => {
                    tracing::warn!(
                        origin = c.origin.name(),
                        offset,
                        len,
                        "remote read failed: {e}"
                    );
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| OriginError::Config {
            origin: "?".into(),
            message: "no origin holds this file".into(),
        }))
    }

    /// `len` bytes at `offset` as `pieces` ranged reads run in parallel
    /// (each with its own failover), concatenated.
    pub(crate) fn fetch_parallel(
        &self,
        offset: u64,
        len: usize,
        pieces: usize,
    ) -> Result<Vec<u8>, OriginError> {
        let piece = len.div_ceil(pieces.max(1)).max(1);
        if piece >= len {
            return self.fetch(offset, len);
        }
        let ranges: Vec<(u64, usize)> = (0..len)
            .step_by(piece)
            .map(|at| (offset + at as u64, piece.min(len - at)))
            .collect();
        let parts: Vec<Result<Vec<u8>, OriginError>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|&(at, n)| s.spawn(move || self.fetch(at, n)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a fetch thread panicked"))
                .collect()
        });
        let mut out = Vec::with_capacity(len);
        for part in parts {
            out.extend_from_slice(&part?);
        }
        Ok(out)
    }
}

/// Fills `buf` from `offset`; a file shorter than that is an error (it
/// changed since the catalog saw it).
fn read_exact(c: &Candidate, offset: u64, buf: &mut [u8]) -> Result<(), OriginError> {
    let mut done = 0;
    while done < buf.len() {
        let n = c
            .origin
            .read_at(&c.rel_path, offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            return Err(OriginError::Io {
                origin: c.origin.name().to_string(),
                path: String::from_utf8_lossy(&c.rel_path).into_owned().into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ends at {} (wanted up to {})",
                        offset + done as u64,
                        offset + buf.len() as u64
                    ),
                ),
            });
        }
        done += n;
    }
    Ok(())
}
