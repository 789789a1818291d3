//! Scan coordination: one scan per origin at a time, progress for `status`,
//! tree sync and kernel-cache invalidation after every scan.
//!
//! Used by the daemon (initial scan, watcher batches, `RescanOrigin`) and by
//! `musicfs scan` (no mount, so no invalidation). All methods block; the
//! daemon calls them from plain threads or `spawn_blocking`.
use crate::error::{Error, Result};
use musicfs_index::scan::{
    scan_origin, scan_paths, ReadSeek, ScanOptions, ScanProgress, ScanReport,
};
use musicfs_index::{Catalog, OriginId, Stamp, Template, TreeChanges};
use musicfs_origins::{Change, ManagedOrigin, Origin, RangeReader};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Instant;

/// How often a long full scan syncs the tree while it runs.
const TREE_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Called with what a tree sync changed (the mount's `invalidate`).
pub type Invalidate = Box<dyn Fn(&TreeChanges) + Send + Sync>;

/// An origin the daemon scans and watches.
pub struct ScanTarget {
    pub id: OriginId,
    pub origin: Arc<ManagedOrigin>,
    /// Bytes fetched from a remote origin by scans (tag reads), and files
    /// read by them: `musicfs origins` shows bytes per track.
    pub scan_bytes: Arc<AtomicU64>,
    pub scan_files: AtomicU64,
    /// Held for the whole of a scan of this origin.
    busy: Mutex<()>,
    /// The running scan's progress, if any.
    progress: Mutex<Option<ScanProgress>>,
}

impl ScanTarget {
    pub fn new(id: OriginId, origin: Arc<ManagedOrigin>) -> ScanTarget {
        ScanTarget {
            id,
            origin,
            scan_bytes: Arc::default(),
            scan_files: AtomicU64::new(0),
            busy: Mutex::new(()),
            progress: Mutex::new(None),
        }
    }
    pub fn name(&self) -> &str {
        self.origin.name()
    }
    /// The progress of the running scan of this origin, if one runs.
    pub fn progress(&self) -> Option<ScanProgress> {
        lock(&self.progress).clone()
    }
}

/// A full scan's outcome: the scanner's report and the tree sync's changes.
#[derive(Debug, Clone, Default)]
pub struct ScanOutcome {
    pub report: ScanReport,
    pub tree: TreeChanges,
    /// Scan errors the origin has now (unchanged bad files included).
    pub errors_recorded: u64,
}

pub struct Scanner {
    catalog: Arc<Catalog>,
    template: Template,
    opts: ScanOptions,
    targets: Vec<Arc<ScanTarget>>,
    /// `sync_tree` runs one at a time (it rewrites the whole tree diff).
    tree_lock: Mutex<()>,
    invalidate: OnceLock<Invalidate>,
    scans_completed: AtomicU64,
    running: AtomicU64,
    /// Set at shutdown: running scans stop between files.
    cancel: AtomicBool,
    /// Where remote scans leave the headers they fetched.
    seeds: Arc<crate::seeds::Seeds>,
}

/// Poisoning only means another scan thread panicked; the data (progress,
/// a unit) is still fine to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decrements `running` however the scan ends.
struct Running<'a>(&'a AtomicU64, &'a Mutex<Option<ScanProgress>>);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        *lock(self.1) = None;
    }
}

impl Scanner {
    pub fn new(
        catalog: Arc<Catalog>,
        template: Template,
        opts: ScanOptions,
        targets: Vec<Arc<ScanTarget>>,
    ) -> Scanner {
        Scanner {
            catalog,
            template,
            opts,
            targets,
            tree_lock: Mutex::new(()),
            invalidate: OnceLock::new(),
            scans_completed: AtomicU64::new(0),
            running: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            seeds: Arc::default(),
        }
    }

    /// Headers remote scans fetched, for the remote read path.
    pub fn seeds(&self) -> &Arc<crate::seeds::Seeds> {
        &self.seeds
    }

    /// Installs the mount's invalidation hook (once, after mounting).
    pub fn set_invalidate(&self, f: Invalidate) {
        let _ = self.invalidate.set(f);
    }

    pub fn template(&self) -> &Template {
        &self.template
    }
    pub fn targets(&self) -> &[Arc<ScanTarget>] {
        &self.targets
    }
    pub fn target(&self, name: &str) -> Option<&Arc<ScanTarget>> {
        self.targets.iter().find(|t| t.name() == name)
    }
    /// Some scan (full or of watched changes) is running.
    pub fn scanning(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }
    /// Full scans finished since start.
    pub fn scans_completed(&self) -> u64 {
        self.scans_completed.load(Ordering::SeqCst)
    }
    /// Stops running scans between files and refuses new ones.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    /// [`cancel`](Self::cancel) was called: scans end early, on purpose.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Brings the tree in line with the catalog and tells the mount.
    /// Edited files whose original changed (or that have new edits) get
    /// their synthesized layout first, so the tree shows their served size.
    pub fn sync_tree(&self) -> Result<TreeChanges> {
        crate::tags::refresh_splices_blocking(&self.catalog, &self.targets);
        let _g = lock(&self.tree_lock);
        let changes = self.catalog.sync_tree(&self.template)?;
        // A sync of a large library builds the whole tree in memory for a
        // moment; hand those pages back instead of idling on them.
        crate::memory::release_free_heap();
        if let Some(inv) = self.invalidate.get() {
            inv(&changes);
        }
        Ok(changes)
    }

    /// Tells the mount that `changes` happened outside a tree sync (an
    /// edit that changed a file's bytes but not its size or path).
    pub fn invalidate(&self, changes: &TreeChanges) {
        if let Some(inv) = self.invalidate.get() {
            inv(changes);
        }
    }

    /// Full incremental scan of one origin, then a tree sync. Waits for a
    /// scan of the same origin that is already running.
    pub fn full_scan(
        &self,
        target: &ScanTarget,
        progress: &(dyn Fn(&ScanProgress) + Sync),
    ) -> Result<ScanOutcome> {
        let _busy = lock(&target.busy);
        if self.cancelled() {
            return Err(Error::Daemon("shutting down".into()));
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        *lock(&target.progress) = Some(ScanProgress::default());
        let _running = Running(&self.running, &target.progress);
        let started = Instant::now();

        let entries: Vec<(Vec<u8>, Stamp)> = target
            .origin
            .list()?
            .into_iter()
            .map(|e| {
                let stamp = Stamp {
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                };
                (e.rel_path, stamp)
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let open = open_fn(target, &stop, &self.cancel, &self.seeds);
        let record = |p: &ScanProgress| {
            *lock(&target.progress) = Some(p.clone());
            progress(p);
        };
        // A first scan of a large library takes minutes: sync the tree now
        // and then meanwhile, so the mount fills up as files are read.
        let finished = (Mutex::new(false), std::sync::Condvar::new());
        let report = std::thread::scope(|s| {
            s.spawn(|| {
                let mut done = lock(&finished.0);
                loop {
                    let (d, _) = finished
                        .1
                        .wait_timeout(done, TREE_SYNC_INTERVAL)
                        .unwrap_or_else(|e| e.into_inner());
                    done = d;
                    if *done || self.cancelled() {
                        return;
                    }
                    drop(done);
                    if let Err(e) = self.sync_tree() {
                        tracing::warn!(origin = target.name(), "tree sync during scan: {e}");
                    }
                    done = lock(&finished.0);
                }
            });
            let report = scan_origin(
                &self.catalog,
                target.id,
                entries,
                &open,
                &self.opts,
                &record,
                &stop,
            );
            *lock(&finished.0) = true;
            finished.1.notify_all();
            report
        })?;
        if self.cancelled() {
            // Shutting down: what was read is saved; the tree sync can wait
            // for the next start (it runs after every scan).
            return Err(Error::Daemon("shutting down".into()));
        }
        if !report.cancelled {
            self.catalog.mark_scanned(target.id)?;
        } else if !target.origin.available() {
            // What was read is saved; the rest waits for the origin.
            let _ = self.sync_tree();
            return Err(Error::Daemon(format!(
                "origin {} went down during the scan; it resumes when the origin is back",
                target.name()
            )));
        }
        let tree = self.sync_tree()?;
        let errors_recorded = self
            .catalog
            .origins()?
            .into_iter()
            .find(|o| o.id == target.id)
            .map_or(0, |o| o.scan_errors);
        self.scans_completed.fetch_add(1, Ordering::SeqCst);
        tracing::info!(
            origin = target.name(),
            seen = report.seen,
            changed = report.changed,
            errors = report.errors,
            removed = report.removed,
            tree_added = tree.added,
            tree_removed = tree.removed.len(),
            "full scan done in {:?}",
            started.elapsed()
        );
        Ok(ScanOutcome {
            report,
            tree,
            errors_recorded,
        })
    }

    /// Applies a batch of watcher changes: rereads what changed, drops what
    /// is gone (each path's state is taken from a fresh stat, so the order
    /// of events does not matter), or rescans everything on `Rescan`.
    pub fn apply_changes(&self, target: &ScanTarget, changes: Vec<Change>) -> Result<ScanOutcome> {
        let mut paths: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        for change in changes {
            match change {
                Change::Rescan => return self.full_scan(target, &|_| {}),
                Change::Upsert(p) | Change::Remove(p) => {
                    paths.insert(p, ());
                }
            }
        }
        let _busy = lock(&target.busy);
        if self.cancelled() {
            return Err(Error::Daemon("shutting down".into()));
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(&self.running, &target.progress);
        let mut upserts = Vec::new();
        let mut removed = Vec::new();
        for (path, ()) in paths {
            match target.origin.stat(&path) {
                Ok(e) => upserts.push((
                    path,
                    Stamp {
                        size: e.size,
                        mtime_ns: e.mtime_ns,
                    },
                )),
                Err(e) if e.errno() == libc::ENOENT => removed.push(path),
                // The origin failing is not the file being gone.
                Err(e) => return Err(e.into()),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let open = open_fn(target, &stop, &self.cancel, &self.seeds);
        let report = scan_paths(
            &self.catalog,
            target.id,
            upserts,
            removed,
            &open,
            &self.opts,
            &stop,
        )?;
        let tree = self.sync_tree()?;
        tracing::info!(
            origin = target.name(),
            changed = report.changed,
            errors = report.errors,
            removed = report.removed,
            tree_added = tree.added,
            tree_removed = tree.removed.len(),
            "applied watched changes"
        );
        Ok(ScanOutcome {
            report,
            tree,
            errors_recorded: 0,
        })
    }
}

/// How the scanner opens a file: a local file as it is; a remote one
/// through a [`RangeReader`], which fetches only what the tag reader asks
/// for and counts it. `stop` is the scan's cancel flag: set on shutdown,
/// and when a read fails because the origin went down, so the files that
/// fail next are not recorded as scan errors (and dropped from the tree).
fn open_fn<'a>(
    target: &'a ScanTarget,
    stop: &'a Arc<AtomicBool>,
    shutdown: &'a AtomicBool,
    seeds: &'a Arc<crate::seeds::Seeds>,
) -> impl Fn(&[u8], &Stamp) -> std::io::Result<Box<dyn ReadSeek>> + Sync + 'a {
    move |rel: &[u8], stamp: &Stamp| {
        if shutdown.load(Ordering::Relaxed) {
            stop.store(true, Ordering::SeqCst);
        }
        let guard = |e: std::io::Error| {
            if !target.origin.available() {
                stop.store(true, Ordering::SeqCst);
            }
            e
        };
        if let Some(opened) = target.origin.open_local(rel) {
            return opened
                .map(|f| Box::new(f) as Box<dyn ReadSeek>)
                .map_err(|e| guard(std::io::Error::other(e.to_string())));
        }
        target.scan_files.fetch_add(1, Ordering::Relaxed);
        let origin: Arc<dyn Origin> = target.origin.clone();
        let reader = RangeReader::new(origin, rel.to_vec(), stamp.size, target.scan_bytes.clone());
        Ok(Box::new(Guarded {
            inner: reader,
            origin: target.origin.clone(),
            stop: stop.clone(),
            seeds: seeds.clone(),
            origin_id: target.id,
            stamp: *stamp,
        }))
    }
}

/// A remote scan's reader: raises the scan's stop flag when a read fails
/// because its origin is down, and when dropped leaves the file's first
/// and last bytes it fetched in `seeds` for the first read of the file.
struct Guarded {
    inner: RangeReader,
    origin: Arc<ManagedOrigin>,
    stop: Arc<AtomicBool>,
    seeds: Arc<crate::seeds::Seeds>,
    origin_id: OriginId,
    stamp: Stamp,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let max = crate::seeds::MAX_SEED;
        let (tail_offset, tail) = self.inner.held_suffix(max);
        let seed = musicfs_fusefs::Seed {
            head: self.inner.held_prefix(max),
            tail_offset,
            tail,
        };
        self.seeds
            .put(self.origin_id, self.inner.rel_path(), self.stamp, seed);
    }
}

impl Guarded {
    fn check<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if r.is_err() && !self.origin.available() {
            self.stop.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl std::io::Read for Guarded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.inner.read(buf);
        self.check(r)
    }
}

impl std::io::Seek for Guarded {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let r = self.inner.seek(pos);
        self.check(r)
    }
}

/// The origins table the filesystem reads through, holding the targets;
/// more (read-only) origins can be added later.
pub fn origin_table(targets: &[Arc<ScanTarget>]) -> musicfs_fusefs::OriginTable {
    let map: std::collections::HashMap<OriginId, Arc<dyn Origin>> = targets
        .iter()
        .map(|t| (t.id, t.origin.clone() as Arc<dyn Origin>))
        .collect();
    Arc::new(RwLock::new(map))
}
