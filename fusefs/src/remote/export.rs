//! Exports: fully cached remote files written out as regular files, so
//! an open can hand the kernel a passthrough backing file and the file
//! reads at native speed.
//!
//! An export is named `<file_id>-<xxh3-128 of the stamp, hex>`: a file
//! changed at its origin gets a new name, and the stale export ages out.
//! Exports are kept under a byte budget, least recently opened deleted
//! first (an in-memory LRU, seeded from the files' mtimes at start).
//! They are written to a temporary name and renamed, so a crash never
//! leaves a partial export under a real name.
use super::recipe::FileRecipe;
use musicfs_blockcache::{ChunkId, ChunkStore};
use musicfs_index::{FileId, Stamp};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Chunks read from the store per batch while writing an export.
const BATCH: usize = 64;
const TEMP_SUFFIX: &str = ".partial";

pub(crate) struct Exports {
    dir: PathBuf,
    budget: u64,
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// name → (size, last use tick)
    files: HashMap<String, (u64, u64)>,
    total: u64,
    tick: u64,
}

pub(crate) fn export_name(file_id: FileId, stamp: Stamp) -> String {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&stamp.size.to_le_bytes());
    key[8..].copy_from_slice(&stamp.mtime_ns.to_le_bytes());
    format!("{file_id}-{}", ChunkId::of(&key))
}

impl Exports {
    /// Opens (creating) the export directory and indexes what it holds.
    pub(crate) fn open(dir: &Path, budget: u64) -> io::Result<Exports> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(std::time::SystemTime, String, u64)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            if name.ends_with(TEMP_SUFFIX) {
                // Left by a crash mid-export.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            found.push((mtime, name, meta.len()));
        }
        found.sort();
        let mut lru = Lru::default();
        for (_, name, size) in found {
            lru.tick += 1;
            lru.total += size;
            lru.files.insert(name, (size, lru.tick));
        }
        let exports = Exports {
            dir: dir.to_path_buf(),
            budget,
            lru: Mutex::new(lru),
        };
        exports.trim(None);
        Ok(exports)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn path(&self, file_id: FileId, stamp: Stamp) -> PathBuf {
        self.dir.join(export_name(file_id, stamp))
    }

    pub(crate) fn exists(&self, file_id: FileId, stamp: Stamp) -> bool {
        self.lock().files.contains_key(&export_name(file_id, stamp))
    }

    /// The export of this file version if it exists with the right size,
    /// opened for passthrough; marks it recently used.
    pub(crate) fn open_export(&self, file_id: FileId, stamp: Stamp) -> Option<(File, PathBuf)> {
        let name = export_name(file_id, stamp);
        let path = self.dir.join(&name);
        let file = crate::passthrough::open_local(&path).ok()?;
        if file.metadata().ok()?.len() != stamp.size {
            return None;
        }
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some(e) = lru.files.get_mut(&name) {
            e.1 = tick;
        }
        Some((file, path))
    }

    /// Writes the file `recipe` describes from the store (every chunk
    /// verified). Returns false, writing nothing, if it does not fit the
    /// budget or a chunk is no longer in the store.
    pub(crate) fn write(
        &self,
        store: &ChunkStore,
        file_id: FileId,
        recipe: &FileRecipe,
    ) -> io::Result<bool> {
        let size = recipe.stamp.size;
        if size > self.budget || !recipe.is_complete() {
            return Ok(false);
        }
        let name = export_name(file_id, recipe.stamp);
        let temp = self.dir.join(format!(".{name}{TEMP_SUFFIX}"));
        let result = self.write_temp(store, recipe, &temp);
        match result {
            Ok(true) => {}
            other => {
                let _ = std::fs::remove_file(&temp);
                return other;
            }
        }
        std::fs::rename(&temp, self.dir.join(&name))?;
        {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            if let Some((old, _)) = lru.files.insert(name.clone(), (size, tick)) {
                lru.total -= old;
            }
            lru.total += size;
        }
        self.trim(Some(&name));
        Ok(true)
    }

    fn write_temp(&self, store: &ChunkStore, recipe: &FileRecipe, temp: &Path) -> io::Result<bool> {
        let mut out = io::BufWriter::with_capacity(1 << 20, File::create(temp)?);
        let ids: Vec<ChunkId> = recipe.ids().collect();
        for group in ids.chunks(BATCH) {
            let mut next = 0;
            let mut failed: Option<io::Error> = None;
            let complete = store
                .read_verified(group, |i, data| {
                    if i == next && failed.is_none() {
                        match out.write_all(data) {
                            Ok(()) => next += 1,
                            Err(e) => failed = Some(e),
                        }
                    }
                })
                .map_err(io::Error::other)?;
            if let Some(e) = failed {
                return Err(e);
            }
            if !complete || next != group.len() {
                return Ok(false);
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok(file.metadata()?.len() == recipe.stamp.size)
    }

    /// Deletes the least recently used exports (never `keep`) until under budget.
    fn trim(&self, keep: Option<&str>) {
        let mut lru = self.lock();
        while lru.total > self.budget {
            let victim = lru
                .files
                .iter()
                .filter(|(name, _)| Some(name.as_str()) != keep)
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(name, _)| name.clone());
            let Some(victim) = victim else { break };
            let (size, _) = lru.files.remove(&victim).expect("present");
            lru.total -= size;
            // An export open in passthrough keeps its inode until closed.
            if let Err(e) = std::fs::remove_file(self.dir.join(&victim)) {
                tracing::warn!(export = %victim, "removing an export over budget: {e}");
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.lock().total
    }
}
