//! Filling: extending a region's recipe by one window from its frontier.
//!
//! A window is fetched as `inflight` parallel ranged reads, cut by FastCDC
//! from the frontier (a chunk boundary of the region, so the cuts are the
//! ones chunking the whole region would give), and every chunk but the
//! last is stored and appended; the last is complete only if the window
//! reached the region's end, else the next window starts with it.
use super::{FileState, RemoteFiles};
use crate::error::{Error, Result};
use musicfs_blockcache::{cut_points, ChunkStore};
use std::sync::Arc;

/// Bytes fetched from a frontier: `bytes` start at the absolute `start`.
pub(crate) struct Window {
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl RemoteFiles {
    /// Fetches `window` bytes from `region`'s frontier, or up to `want_end`
    /// if that is farther (clipped to the region), stores its complete
    /// chunks, extends and saves the recipe. The caller holds `state.fill`.
    pub(crate) fn fill_window(
        self: &Arc<Self>,
        state: &Arc<FileState>,
        store: &Arc<ChunkStore>,
        region: usize,
        want_end: u64,
        window: u64,
    ) -> Result<Window> {
        let (start, region_end) = {
            let r = &state.recipe().regions[region];
            (r.frontier(), r.end())
        };
        let window_end = region_end.min(want_end.max(start + window));
        let len = (window_end - start) as usize;
        let bytes = state
            .candidates
            .fetch_parallel(start, len, self.config.inflight)?;
        let cuts = cut_points(&bytes, &self.config.cdc).map_err(|e| Error::Read {
            path: String::from_utf8_lossy(&state.record.rel_path)
                .into_owned()
                .into(),
            offset: start,
            source: std::io::Error::other(e.to_string()),
        })?;
        let complete = if window_end == region_end {
            cuts.len()
        } else {
            cuts.len().saturating_sub(1)
        };
        let slices: Vec<&[u8]> = cuts[..complete]
            .iter()
            .map(|&(at, n)| &bytes[at..at + n])
            .collect();
        if slices.is_empty() {
            return Ok(Window { start, bytes });
        }
        // The store is a cache: a failed put costs a refetch later, not this read.
        let ids = match store.put_batch(&slices) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(file = state.record.id, "storing fetched chunks: {e}");
                return Ok(Window { start, bytes });
            }
        };
        let (encoded, done) = {
            let mut recipe = state.recipe_mut();
            let r = &mut recipe.regions[region];
            // A dropped recipe (the file changed) moved the frontier: keep out.
            if r.frontier() != start {
                return Ok(Window { start, bytes });
            }
            for (id, s) in ids.iter().zip(&slices) {
                r.push(*id, s.len() as u32);
            }
            (recipe.encode(), recipe.is_complete())
        };
        state.pin_more(store, &ids);
        if let Err(e) = self.tree.set_recipe(state.record.id, &encoded) {
            tracing::warn!(file = state.record.id, "saving recipe: {e}");
        }
        if done {
            self.spawn_export(state, store);
        }
        Ok(Window { start, bytes })
    }
}
