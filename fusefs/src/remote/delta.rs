//! Delta sync: what a saved recipe keeps when its file changed at the origin.
//!
//! Most changes to a music file are tag edits: the header (and maybe a
//! trailer) changes, the audio body stays byte for byte, perhaps at a new
//! offset. Since the body is chunked from its own start, its chunks stay
//! valid. The check is cheap: the body has the same length, and its first
//! and last 4 KiB at the new offsets (fetched from the origin) equal the
//! old body's (read from the store). Then the body chunks are kept and the
//! header and trailer start over; otherwise the recipe is dropped.
use super::fetch::Candidates;
use super::recipe::{FileRecipe, Region, BODY};
use crate::error::Result;
use musicfs_blockcache::{ChunkStore, Recipe};
use musicfs_index::FileRecord;

/// Bytes compared at each end of the body.
const PROBE: u64 = 4096;

/// The recipe to use for `record` given the stale `old` one.
pub(crate) fn reconcile(
    old: &FileRecipe,
    record: &FileRecord,
    store: &ChunkStore,
    candidates: &Candidates,
) -> Result<FileRecipe> {
    let mut fresh = FileRecipe::empty(record);
    let (old_body, new_body) = (&old.regions[BODY], &fresh.regions[BODY]);
    if old_body.len != new_body.len || old_body.len == 0 || !old_body.is_complete() {
        return Ok(fresh);
    }
    let len = old_body.len;
    let k = PROBE.min(len);
    let Some(old_head) = stored_range(store, old_body, 0, k)? else {
        return Ok(fresh);
    };
    let Some(old_tail) = stored_range(store, old_body, len - k, k)? else {
        return Ok(fresh);
    };
    let new_head = candidates.fetch(new_body.start, k as usize)?;
    if new_head != old_head {
        return Ok(fresh);
    }
    let new_tail = candidates.fetch(new_body.start + len - k, k as usize)?;
    if new_tail != old_tail {
        return Ok(fresh);
    }
    tracing::info!(
        file = record.id,
        "file changed at its origin but its audio body did not: body chunks kept"
    );
    fresh.regions[BODY] = old_body.moved_to(new_body.start);
    Ok(fresh)
}

/// `len` bytes at `rel` (from the region start) from the store; None if a
/// chunk is missing.
fn stored_range(
    store: &ChunkStore,
    region: &Region,
    rel: u64,
    len: u64,
) -> Result<Option<Vec<u8>>> {
    let recipe = Recipe {
        chunks: region.chunks().to_vec(),
    };
    store.read_recipe(&recipe, rel, len).or_else(|e| {
        tracing::warn!("reading the chunk store: {e}");
        Ok(None)
    })
}
