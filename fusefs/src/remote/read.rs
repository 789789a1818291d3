//! Serving one FUSE read of a remote file.
//!
//! The range is walked in segments, each inside one region: below the
//! region's frontier from the store; at or just past it (within the
//! file's current window) by filling the next window; farther (a seek, a
//! tag reader looking at the end) straight from the origin, uncached.
//! Readers below the frontier never wait for the filler.
//!
//! The window follows the access pattern, like the kernel's read-ahead: a
//! first or random read fills two average chunks (128 KiB by default), and
//! each read that starts where the previous one ended doubles it, up to
//! `fetch_size × inflight` (4 MiB). Only sequential reading starts windows
//! in the background. So a media server reading tags costs a few hundred
//! KiB per file, and playback streams in 4 MiB windows.
use super::fill::Window;
use super::{FileState, RemoteFiles};
use crate::error::{Error, Result};
use musicfs_blockcache::{ChunkId, ChunkStore};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

impl RemoteFiles {
    pub(crate) fn read(
        self: &Arc<Self>,
        state: &Arc<FileState>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let size = state.record.stamp.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let end = size.min(offset + buf.len() as u64);
        let out = &mut buf[..(end - offset) as usize];
        let Some(store) = self.store() else {
            self.direct(state, offset, out)?;
            return Ok(out.len());
        };
        let (window, sequential) = self.note_read(state, offset, end);
        let mut pos = offset;
        while pos < end {
            let dst = &mut out[(pos - offset) as usize..];
            pos += self.segment(state, &store, pos, end, dst, window)?;
        }
        if sequential {
            self.read_ahead(state, &store, end, window);
        }
        Ok(out.len())
    }

    /// Records a read of `[offset, end)`; returns the window it earns and
    /// whether the file is being read sequentially.
    fn note_read(&self, state: &FileState, offset: u64, end: u64) -> (u64, bool) {
        let mut p = state.pattern.lock().unwrap_or_else(|e| e.into_inner());
        // The kernel splits one read(2) into pieces and may send them a
        // little out of order: "follows" allows for a gap of one window.
        let follows = offset >= p.last_end.saturating_sub(p.window)
            && offset <= p.last_end.saturating_add(p.window);
        p.window = if follows {
            (p.window * 2).min(self.config.window())
        } else {
            self.config.first_window()
        };
        p.last_end = end;
        (p.window, follows)
    }

    /// Reads `out` at `offset` from the origin, uncached.
    fn direct(&self, state: &FileState, offset: u64, out: &mut [u8]) -> Result<()> {
        let bytes = state.candidates.fetch(offset, out.len())?;
        out.copy_from_slice(&bytes);
        self.stats.direct_reads.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Serves a prefix of `[pos, end)` that lies in one region; returns
    /// its length (0 = look again: the frontier moved meanwhile).
    fn segment(
        self: &Arc<Self>,
        state: &Arc<FileState>,
        store: &Arc<ChunkStore>,
        pos: u64,
        end: u64,
        dst: &mut [u8],
        window: u64,
    ) -> Result<u64> {
        let (region, frontier, seg_end) = {
            let recipe = state.recipe();
            let i = recipe.region_at(pos).expect("pos is inside the file");
            let r = &recipe.regions[i];
            (i, r.frontier(), end.min(r.end()))
        };
        if pos < frontier {
            let stop = seg_end.min(frontier);
            self.serve_stored(state, store, region, pos, stop, dst)?;
            return Ok(stop - pos);
        }
        if pos - frontier <= window {
            let _filler = state.fill.lock().unwrap_or_else(|e| e.into_inner());
            let frontier = state.recipe().regions[region].frontier();
            if pos < frontier || pos - frontier > window {
                return Ok(0);
            }
            let Window { start, bytes } =
                self.fill_window(state, store, region, seg_end, window)?;
            let stop = seg_end.min(start + bytes.len() as u64);
            let n = (stop - pos) as usize;
            let from = (pos - start) as usize;
            dst[..n].copy_from_slice(&bytes[from..from + n]);
            return Ok(stop - pos);
        }
        let n = (seg_end - pos) as usize;
        self.direct(state, pos, &mut dst[..n])?;
        Ok(seg_end - pos)
    }

    /// Copies `[pos, stop)` (below the frontier of `region`) from the
    /// store into `dst`; a chunk missing or corrupt is refetched by range.
    fn serve_stored(
        &self,
        state: &FileState,
        store: &Arc<ChunkStore>,
        region: usize,
        pos: u64,
        stop: u64,
        dst: &mut [u8],
    ) -> Result<()> {
        let chunks = state.recipe().regions[region].covering(pos, stop);
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.0).collect();
        let mut served = vec![false; chunks.len()];
        // Returns the bytes copied.
        let mut copy = |i: usize, data: &[u8]| {
            let (_, at, len) = chunks[i];
            let (from, to) = (pos.max(at), stop.min(at + len as u64));
            dst[(from - pos) as usize..(to - pos) as usize]
                .copy_from_slice(&data[(from - at) as usize..(to - at) as usize]);
            to - from
        };
        let mut hit = 0u64;
        let read = store.read_verified(&ids, |i, data| {
            hit += copy(i, data);
            served[i] = true;
        });
        if let Err(e) = read {
            // The bytes are still at the origin: serve from there.
            tracing::warn!(file = state.record.id, "reading the chunk store: {e}");
            served.iter_mut().for_each(|s| *s = false);
            hit = 0;
        }
        self.stats.cache_hit_bytes.fetch_add(hit, Relaxed);
        for (i, &(id, at, len)) in chunks.iter().enumerate() {
            if served[i] {
                continue;
            }
            let bytes = state.candidates.fetch(at, len)?;
            if ChunkId::of(&bytes) != id {
                self.drop_recipe(state);
                tracing::error!(
                    file = state.record.id,
                    path = %String::from_utf8_lossy(&state.record.rel_path),
                    offset = at,
                    "the origin's bytes differ from the cached chunk: the file changed \
                     at its origin; recipe dropped, a rescan will pick up the change"
                );
                return Err(Error::Read {
                    path: String::from_utf8_lossy(&state.record.rel_path)
                        .into_owned()
                        .into(),
                    offset: at,
                    source: std::io::Error::other("file changed at its origin"),
                });
            }
            match store.put(&bytes) {
                Ok(_) => state.pin_more(store, &[id]),
                Err(e) => tracing::warn!(chunk = %id, "putting a refetched chunk: {e}"),
            }
            copy(i, &bytes);
        }
        Ok(())
    }

    /// Starts the next window in the background when a sequential read
    /// ended within `readahead` of an incomplete region's frontier (one
    /// per file).
    fn read_ahead(
        self: &Arc<Self>,
        state: &Arc<FileState>,
        store: &Arc<ChunkStore>,
        end: u64,
        window: u64,
    ) {
        let region = {
            let recipe = state.recipe();
            recipe.regions.iter().position(|r| {
                !r.is_complete() && r.frontier().abs_diff(end) <= self.config.readahead
            })
        };
        let Some(region) = region else { return };
        if state.background.swap(true, Relaxed) {
            return;
        }
        // Counted as a user so the state outlives a close meanwhile.
        let user = self
            .lock_files()
            .get_mut(&state.record.id)
            .and_then(|(s, u)| {
                Arc::ptr_eq(s, state).then(|| {
                    *u += 1;
                    s.clone()
                })
            });
        let had_user = user.is_some();
        let (files, state2, store) = (self.clone(), state.clone(), store.clone());
        let spawned = std::thread::Builder::new()
            .name("musicfs-readahead".into())
            .spawn(move || {
                {
                    let _filler = state2.fill.lock().unwrap_or_else(|e| e.into_inner());
                    let frontier = state2.recipe().regions[region].frontier();
                    let complete = state2.recipe().regions[region].is_complete();
                    if !complete && frontier.abs_diff(end) <= files.config.readahead {
                        if let Err(e) = files.fill_window(&state2, &store, region, frontier, window)
                        {
                            tracing::debug!(file = state2.record.id, "read-ahead: {e}");
                        }
                    }
                }
                state2.background.store(false, Relaxed);
                if let Some(s) = user {
                    files.leave(&s);
                }
            });
        if spawned.is_err() {
            state.background.store(false, Relaxed);
            if had_user {
                self.leave(state);
            }
        }
    }
}
