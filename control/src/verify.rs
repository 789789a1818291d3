//! `musicfs verify`: content hashes on demand.
//!
//! Change detection compares size and mtime, which is cheap but can miss an
//! edit that kept both (some sync tools restore mtimes). Verify reads every
//! file of an origin whole, records its xxh3-128 in the catalog, and
//! rescans the files whose hash differs from the one recorded before, so
//! the tree, the replicas and the cached chunks follow. It reads through
//! the origin (counted in its transfer figures), not through the cache.
use crate::error::Result;
use crate::scanner::{ScanTarget, Scanner};
use musicfs_index::Catalog;
use musicfs_origins::{Change, Origin};
use xxhash_rust::xxh3::Xxh3;

/// Bytes per ranged read while hashing.
const PIECE: usize = 1 << 20;

/// Progress and outcome of verifying one origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyState {
    pub origin: String,
    pub total: u64,
    pub done: u64,
    pub hashed: u64,
    pub changed: u64,
    pub failed: u64,
    pub bytes: u64,
    pub current: String,
    /// "path: message" of each file that could not be read (at most 20).
    pub failures: Vec<String>,
}

/// Hashes every catalogued file of `target`; `progress` is called after
/// each file. Stops early (with what it has) when the scanner is cancelled.
pub fn verify_origin(
    catalog: &Catalog,
    scanner: &Scanner,
    target: &ScanTarget,
    progress: &dyn Fn(&VerifyState),
) -> Result<VerifyState> {
    let files = catalog.origin_files(target.id)?;
    let mut state = VerifyState {
        origin: target.name().to_string(),
        total: files.len() as u64,
        ..VerifyState::default()
    };
    let mut changed = Vec::new();
    let mut buf = vec![0u8; PIECE];
    for (id, rel, stamp) in files {
        if scanner.cancelled() {
            break;
        }
        state.current = String::from_utf8_lossy(&rel).into_owned();
        match hash_file(target.origin.as_ref(), &rel, &mut buf) {
            Ok((hash, len)) => {
                state.bytes += len;
                if len != stamp.size {
                    // Grew or shrank since the scan: the next scan sees it.
                    changed.push(rel);
                    state.changed += 1;
                } else {
                    state.hashed += 1;
                    let before = catalog.set_content_hash(id, stamp, hash)?;
                    if before.is_some_and(|b| b != hash) {
                        tracing::warn!(
                            origin = target.name(),
                            file = %state.current,
                            "content changed with size and mtime unchanged: rescanning it"
                        );
                        changed.push(rel);
                        state.changed += 1;
                    }
                }
            }
            Err(e) => {
                state.failed += 1;
                if state.failures.len() < 20 {
                    state.failures.push(format!("{}: {e}", state.current));
                }
            }
        }
        state.done += 1;
        progress(&state);
    }
    if !changed.is_empty() {
        let changes = changed.into_iter().map(Change::Upsert).collect();
        scanner.apply_changes(target, changes)?;
    }
    Ok(state)
}

/// xxh3-128 of a whole file read by ranges, and its length.
fn hash_file(
    origin: &dyn Origin,
    rel: &[u8],
    buf: &mut [u8],
) -> musicfs_origins::Result<(u128, u64)> {
    let mut hasher = Xxh3::new();
    let mut offset = 0u64;
    loop {
        let n = origin.read_at(rel, offset, buf)?;
        if n == 0 {
            return Ok((hasher.digest128(), offset));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}
