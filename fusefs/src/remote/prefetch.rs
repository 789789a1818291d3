//! Prefetch: fetching whole remote files into the chunk store with no
//! FUSE reader, through the same fill path reads use (one filler per
//! file, recipes saved, complete files exported).
//!
//! Eviction never takes pinned chunks (those of open files), so a
//! prefetch cannot evict what is playing; what it can do is churn — evict
//! its own earlier files, or everything else in the cache, to make room
//! for later ones. A [`PrefetchBudget`] prevents that: one request may
//! fill at most the store's low-watermark share (eviction's target), and
//! stops with [`Error::CacheTooSmall`] rather than go past it.
use super::recipe::Region;
use super::{RemoteFiles, StoreSource};
use crate::error::Error;
use crate::tree::Tree;
use crate::{FsConfig, FsStats, OriginTable};
use musicfs_blockcache::ChunkId;
use musicfs_index::FileRecord;
use std::sync::Arc;

/// The share of the store's data region one prefetch may fill: the store
/// evicts down to its low watermark (0.80 by default), so past this the
/// request would start evicting itself.
const FILL_SHARE: f64 = 0.8;

/// Fetches remote files into the chunk store; cheap to clone. Built from a
/// mount ([`crate::Mounted`] hands its [`crate::Library`] one at mount
/// time) so its fills share the mount's per-file state and pins.
#[derive(Clone)]
pub struct Prefetcher {
    files: Arc<RemoteFiles>,
}

/// What prefetching one file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefetched {
    /// Bytes the file occupies in the cache now.
    pub cached: u64,
    /// Of those, bytes fetched from the origin by this call.
    pub fetched: u64,
    /// The file is on a local origin: nothing to fetch.
    pub local: bool,
}

/// Why a file was not prefetched.
#[derive(Debug, thiserror::Error)]
pub enum PrefetchError {
    /// The chunk cache is not open (or disabled).
    #[error("no chunk cache is open")]
    NoStore,
    /// The request would fill more than the cache can hold without
    /// evicting the request's own earlier files.
    #[error(
        "the cache is too small for this prefetch: {need} more bytes wanted, \
         {room} left of what one prefetch may fill"
    )]
    CacheTooSmall { need: u64, room: u64 },
    #[error("{0}")]
    Fetch(#[from] Error),
}

/// How much one prefetch request may still add to the cache.
#[derive(Debug, Clone, Copy)]
pub struct PrefetchBudget {
    room: u64,
}

impl PrefetchBudget {
    /// Bytes still allowed.
    pub fn room(&self) -> u64 {
        self.room
    }

    /// Moves `bytes` of room into a budget of their own (one file of a
    /// request that several workers serve).
    pub fn take(&mut self, bytes: u64) -> Result<PrefetchBudget, PrefetchError> {
        if bytes > self.room {
            return Err(PrefetchError::CacheTooSmall {
                need: bytes,
                room: self.room,
            });
        }
        self.room -= bytes;
        Ok(PrefetchBudget { room: bytes })
    }
}

impl Prefetcher {
    pub(crate) fn new(files: Arc<RemoteFiles>) -> Prefetcher {
        Prefetcher { files }
    }

    /// A prefetcher of its own (no mount): fills share nothing with a
    /// mount's open files, so use it only where nothing is mounted.
    pub fn standalone(
        tree: Arc<dyn Tree>,
        origins: OriginTable,
        config: &FsConfig,
        stats: Arc<FsStats>,
        cache: Option<Arc<dyn StoreSource>>,
    ) -> Prefetcher {
        Prefetcher::new(Arc::new(RemoteFiles::new(
            tree,
            origins,
            config.remote.clone(),
            stats,
            cache,
        )))
    }

    /// The budget of a new request; `None` without a chunk store.
    pub fn budget(&self) -> Option<PrefetchBudget> {
        let store = self.files.store()?;
        let capacity = store.stats().capacity_bytes;
        Some(PrefetchBudget {
            room: (capacity as f64 * FILL_SHARE) as u64,
        })
    }

    /// Whether `record` lives on a local origin (its bytes need no cache).
    pub fn is_local(&self, record: &FileRecord) -> bool {
        self.files
            .origins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&record.origin_id)
            .is_some_and(|o| o.local_path(&record.rel_path).is_some())
    }

    /// Brings the whole of `record` into the chunk store (chunks evicted
    /// since they were cached are fetched again), charging its size to
    /// `budget`.
    pub fn fetch(
        &self,
        record: &FileRecord,
        budget: &mut PrefetchBudget,
    ) -> Result<Prefetched, PrefetchError> {
        if self.is_local(record) {
            return Ok(Prefetched {
                local: true,
                ..Prefetched::default()
            });
        }
        let files = &self.files;
        let store = files.store().ok_or(PrefetchError::NoStore)?;
        let size = record.stamp.size;
        budget.take(size)?;
        let state = files.enter(record, 0).map_err(PrefetchError::Fetch)?;
        let result = (|| -> Result<Prefetched, Error> {
            let mut fetched = 0u64;
            let window = files.config.window();
            // Not in the `for` head: a guard there would live through the loop.
            let regions = state.recipe().regions.len();
            for region in 0..regions {
                // Below the frontier: chunks evicted since are fetched again.
                let missing: Vec<(ChunkId, u64, usize)> = {
                    let recipe = state.recipe();
                    let r: &Region = &recipe.regions[region];
                    r.covering(r.start, r.frontier())
                        .into_iter()
                        .filter(|(id, _, _)| !store.contains(*id))
                        .collect()
                };
                for (id, at, len) in missing {
                    let bytes = state.candidates.fetch(at, len)?;
                    if ChunkId::of(&bytes) != id {
                        files.drop_recipe(&state);
                        return Err(Error::Read {
                            path: String::from_utf8_lossy(&record.rel_path)
                                .into_owned()
                                .into(),
                            offset: at,
                            source: std::io::Error::other("file changed at its origin"),
                        });
                    }
                    if let Err(e) = store.put(&bytes) {
                        tracing::warn!(chunk = %id, "putting a prefetched chunk: {e}");
                    }
                    state.pin_more(&store, &[id]);
                    fetched += len as u64;
                }
                loop {
                    let _filler = state.fill.lock().unwrap_or_else(|e| e.into_inner());
                    let (frontier, complete) = {
                        let r = &state.recipe().regions[region];
                        (r.frontier(), r.is_complete())
                    };
                    if complete {
                        break;
                    }
                    files.fill_window(&state, &store, region, 0, window)?;
                    let after = state.recipe().regions[region].frontier();
                    if after == frontier {
                        // A failed put or a dropped recipe: no progress to be had.
                        return Err(Error::Read {
                            path: String::from_utf8_lossy(&record.rel_path)
                                .into_owned()
                                .into(),
                            offset: frontier,
                            source: std::io::Error::other("the chunk store took nothing"),
                        });
                    }
                    fetched += after - frontier;
                }
            }
            Ok(Prefetched {
                cached: size,
                fetched,
                local: false,
            })
        })();
        files.leave(&state);
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{noise, DirOrigin, MemOrigin, MemTree};
    use musicfs_blockcache::{ChunkStore, FileBlockDevice, FormatOptions, StoreOptions};
    use musicfs_index::Stamp;
    use musicfs_origins::Origin;
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    use std::sync::RwLock;

    struct Fixed(Arc<ChunkStore>);
    impl StoreSource for Fixed {
        fn store(&self) -> Option<Arc<ChunkStore>> {
            Some(self.0.clone())
        }
    }

    struct Rig {
        _dir: tempfile::TempDir,
        tree: Arc<MemTree>,
        origin: Arc<MemOrigin>,
        files: Arc<RemoteFiles>,
        store: Arc<ChunkStore>,
    }

    fn rig(sizes: &[usize], store_bytes: u64) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let tree = Arc::new(MemTree::new());
        let origin = Arc::new(MemOrigin::new("remote", 0));
        for (i, &size) in sizes.iter().enumerate() {
            let rel = format!("{i}.flac");
            origin.put(rel.as_bytes(), noise(size, i as u64 + 1));
            let stamp = Stamp {
                size: size as u64,
                mtime_ns: 1,
            };
            tree.add_file(&format!("A/{rel}"), 1, rel.as_bytes(), stamp);
        }
        let local = DirOrigin {
            name: "local".into(),
            root: dir.path().to_path_buf(),
        };
        std::fs::write(dir.path().join("l.flac"), b"local bytes").unwrap();
        tree.add_file(
            "L/l.flac",
            2,
            b"l.flac",
            Stamp {
                size: 11,
                mtime_ns: 1,
            },
        );
        let dyn_origin: Arc<dyn Origin> = origin.clone();
        let origins: OriginTable = Arc::new(RwLock::new(HashMap::from([
            (1, dyn_origin),
            (2, Arc::new(local) as Arc<dyn Origin>),
        ])));
        let dev = FileBlockDevice::open(&dir.path().join("cache.img"), Some(store_bytes)).unwrap();
        ChunkStore::format(&dev, &FormatOptions::default()).unwrap();
        let store = Arc::new(ChunkStore::open(Arc::new(dev), StoreOptions::default()).unwrap());
        let files = Arc::new(RemoteFiles::new(
            tree.clone(),
            origins,
            super::super::RemoteConfig::default(),
            Arc::new(FsStats::default()),
            Some(Arc::new(Fixed(store.clone()))),
        ));
        Rig {
            _dir: dir,
            tree,
            origin,
            files,
            store,
        }
    }

    fn record(r: &Rig, id: i64) -> FileRecord {
        r.tree.file(id).unwrap().unwrap()
    }

    #[test]
    fn prefetch_fills_the_store_and_reads_then_cost_the_origin_nothing() {
        let r = rig(&[3 << 20], 256 << 20);
        let p = Prefetcher::new(r.files.clone());
        let rec = record(&r, 1);
        let mut budget = p.budget().unwrap();
        let before = budget.room();
        let done = p.fetch(&rec, &mut budget).unwrap();
        assert_eq!(done.cached, 3 << 20);
        assert_eq!(done.fetched, 3 << 20);
        assert!(!done.local);
        assert_eq!(budget.room(), before - (3 << 20));
        let served = r.origin.served();
        assert!(served >= 3 << 20);
        // Again: all cached, nothing fetched.
        let again = p.fetch(&rec, &mut p.budget().unwrap()).unwrap();
        assert_eq!(again.fetched, 0);
        assert_eq!(r.origin.served(), served);
        // A reader now gets every byte from the store.
        let handle = r.files.open(&rec, 0).unwrap();
        let mut buf = vec![0u8; 3 << 20];
        assert_eq!(handle.read_at(0, &mut buf).unwrap(), 3 << 20);
        assert_eq!(buf, noise(3 << 20, 1));
        assert_eq!(r.origin.served(), served, "the read fetched nothing");
    }

    #[test]
    fn prefetch_refetches_chunks_evicted_since() {
        let r = rig(&[1 << 20], 256 << 20);
        let p = Prefetcher::new(r.files.clone());
        let rec = record(&r, 1);
        p.fetch(&rec, &mut p.budget().unwrap()).unwrap();
        r.store.clear().unwrap();
        let again = p.fetch(&rec, &mut p.budget().unwrap()).unwrap();
        assert_eq!(again.fetched, 1 << 20, "every chunk was gone");
        assert_eq!(r.store.stats().stored_bytes, 1 << 20);
    }

    #[test]
    fn prefetch_stops_when_the_cache_is_too_small_instead_of_churning() {
        // A 16 MiB store lets one prefetch fill about 80% of its data region.
        let r = rig(&[6 << 20, 6 << 20, 6 << 20], 16 << 20);
        let p = Prefetcher::new(r.files.clone());
        let mut budget = p.budget().unwrap();
        p.fetch(&record(&r, 1), &mut budget).unwrap();
        p.fetch(&record(&r, 2), &mut budget).ok(); // may or may not fit
        let served = r.origin.served();
        let mut fits = 0;
        for id in 1..=3 {
            fits += p.fetch(&record(&r, id), &mut budget).is_ok() as u32;
        }
        let err = p.fetch(&record(&r, 3), &mut budget).unwrap_err();
        assert!(matches!(err, PrefetchError::CacheTooSmall { .. }), "{err}");
        assert!(err.to_string().contains("too small"));
        assert_eq!(fits, 0, "the budget is spent");
        assert_eq!(r.origin.served(), served, "a refused file fetches nothing");
        assert_eq!(r.store.stats().evictions, 0, "nothing evicted");
    }

    #[test]
    fn prefetch_never_evicts_the_chunks_of_an_open_file() {
        // File 1 is open (pinned); files 2 and 3 together overflow the
        // store, each prefetched with a budget of its own.
        let r = rig(&[5 << 20, 5 << 20, 5 << 20], 16 << 20);
        let p = Prefetcher::new(r.files.clone());
        p.fetch(&record(&r, 1), &mut p.budget().unwrap()).unwrap();
        let handle = r.files.open(&record(&r, 1), 0).unwrap();
        for id in [2, 3] {
            let _ = p.fetch(&record(&r, id), &mut p.budget().unwrap());
        }
        assert!(r.store.stats().evictions > 0, "the store had to evict");
        let served = r.origin.served();
        let mut buf = vec![0u8; 5 << 20];
        handle.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, noise(5 << 20, 1));
        assert_eq!(r.origin.served(), served, "the open file was not evicted");
    }

    #[test]
    fn prefetch_of_a_local_file_fetches_nothing() {
        let r = rig(&[], 16 << 20);
        let p = Prefetcher::new(r.files.clone());
        let rec = record(&r, 1);
        assert!(p.is_local(&rec));
        let done = p.fetch(&rec, &mut p.budget().unwrap()).unwrap();
        assert!(done.local);
        assert_eq!((done.fetched, done.cached), (0, 0));
        assert_eq!(r.store.stats().chunks, 0);
        assert_eq!(r.origin.calls.load(Ordering::SeqCst), 0);
    }
}
