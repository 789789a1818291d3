//! Prefetch: fills the chunk cache with remote files before anyone reads
//! them — on request (gRPC `Prefetch`, `musicfs prefetch`, a lookup under
//! `/.prefetch/`) and for the next tracks of an album being played.
//!
//! The work is done by the mount's [`Prefetcher`] (handed over at mount
//! time), so prefetch fills share the mount's per-file state and never
//! evict chunks pinned by open files. Files on local origins need nothing:
//! they count as done at once.
use crate::service::DaemonState;
use musicfs_fusefs::{Library, PrefetchError, Prefetcher};
use musicfs_index::{Catalog, FileId, NodeKind};
use musicfs_proto::v1 as pb;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Files fetched at once, by a request or by the background queue: two
/// keep a link busy without starving playback's own reads.
const CONCURRENCY: usize = 2;
/// Tracks after the opened one that are prefetched.
const NEXT_TRACKS: usize = 2;
/// Background requests waiting at most; more are dropped (a media
/// server's scan opens every file: it must not queue the whole library).
const QUEUE_MAX: usize = 256;
/// Files one request resolves to at most.
const REQUEST_MAX_FILES: usize = 100_000;
/// Errors reported per request at most.
const ERRORS_MAX: usize = 10;
/// Children read to find an album's next tracks.
const ALBUM_MAX: usize = 2000;

/// Background prefetch: a bounded, deduplicated queue served by
/// [`CONCURRENCY`] threads once the mount hands over its prefetcher.
pub struct PrefetchQueue {
    catalog: Arc<Catalog>,
    prefetcher: OnceLock<Prefetcher>,
    inner: Arc<Queue>,
}

#[derive(Default)]
struct Queue {
    state: Mutex<Pending>,
    ready: Condvar,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    /// Files queued or being fetched.
    queued: HashSet<FileId>,
    closed: bool,
}

enum Job {
    Fetch(FileId),
    /// Find and fetch the tracks after this one.
    NextOf(FileId),
}

impl PrefetchQueue {
    pub fn new(catalog: Arc<Catalog>) -> PrefetchQueue {
        PrefetchQueue {
            catalog,
            prefetcher: OnceLock::new(),
            inner: Arc::new(Queue::default()),
        }
    }

    /// The mount's prefetcher, once mounted.
    pub fn prefetcher(&self) -> Option<&Prefetcher> {
        self.prefetcher.get()
    }

    /// Takes the mount's prefetcher and starts the workers (once).
    pub fn attach(&self, prefetcher: Prefetcher) {
        if self.prefetcher.set(prefetcher.clone()).is_err() {
            return;
        }
        for i in 0..CONCURRENCY {
            let (queue, catalog, p) =
                (self.inner.clone(), self.catalog.clone(), prefetcher.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("musicfs-prefetch-{i}"))
                .spawn(move || work(&queue, &catalog, &p));
            if let Err(e) = spawned {
                tracing::warn!("cannot start a prefetch thread: {e}");
            }
        }
    }

    fn push(&self, job: Job) {
        let mut p = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        if p.jobs.len() >= QUEUE_MAX {
            tracing::debug!("prefetch queue full: request dropped");
            return;
        }
        if let Job::Fetch(id) = job {
            if !p.queued.insert(id) {
                return;
            }
        }
        p.jobs.push_back(job);
        self.inner.ready.notify_one();
    }

    /// Queues `files` for the background workers (quick: called on FUSE threads).
    pub fn enqueue(&self, files: Vec<FileId>) {
        for id in files {
            self.push(Job::Fetch(id));
        }
    }

    /// A track was opened: queue the tracks after it in its folder.
    pub fn opened(&self, file: FileId) {
        if self.prefetcher.get().is_some() {
            self.push(Job::NextOf(file));
        }
    }
}

impl Drop for PrefetchQueue {
    fn drop(&mut self) {
        let mut p = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        p.closed = true;
        self.inner.ready.notify_all();
    }
}

fn work(queue: &Queue, catalog: &Catalog, prefetcher: &Prefetcher) {
    loop {
        let job = {
            let mut p = queue.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if p.closed {
                    return;
                }
                if let Some(job) = p.jobs.pop_front() {
                    break job;
                }
                p = queue.ready.wait(p).unwrap_or_else(|e| e.into_inner());
            }
        };
        match job {
            Job::Fetch(id) => {
                if let Err(e) = fetch_one(catalog, prefetcher, id) {
                    tracing::info!(file = id, "background prefetch: {e}");
                }
                let mut p = queue.state.lock().unwrap_or_else(|e| e.into_inner());
                p.queued.remove(&id);
            }
            Job::NextOf(id) => match next_tracks(catalog, id, NEXT_TRACKS) {
                Ok(next) => {
                    let mut p = queue.state.lock().unwrap_or_else(|e| e.into_inner());
                    for n in next {
                        let remote = catalog
                            .file(n)
                            .ok()
                            .flatten()
                            .is_some_and(|r| !prefetcher.is_local(&r));
                        if remote && p.queued.insert(n) {
                            p.jobs.push_back(Job::Fetch(n));
                            queue.ready.notify_one();
                        }
                    }
                }
                Err(e) => tracing::debug!(file = id, "finding the next tracks: {e}"),
            },
        }
    }
}

/// Prefetches one file with a budget of its own.
fn fetch_one(
    catalog: &Catalog,
    prefetcher: &Prefetcher,
    id: FileId,
) -> Result<musicfs_fusefs::Prefetched, String> {
    let record = catalog
        .file(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("file {id} is no longer catalogued"))?;
    if prefetcher.is_local(&record) {
        return Ok(musicfs_fusefs::Prefetched {
            local: true,
            ..Default::default()
        });
    }
    let mut budget = prefetcher
        .budget()
        .ok_or_else(|| PrefetchError::NoStore.to_string())?;
    prefetcher
        .fetch(&record, &mut budget)
        .map_err(|e| e.to_string())
}

/// The up to `n` file nodes after `file`'s node in its folder, in name order.
pub(crate) fn next_tracks(
    catalog: &Catalog,
    file: FileId,
    n: usize,
) -> musicfs_index::Result<Vec<FileId>> {
    let Some(&ino) = catalog.inos_of_file(file)?.first() else {
        return Ok(Vec::new());
    };
    let Some(node) = catalog.node(ino)? else {
        return Ok(Vec::new());
    };
    let mut siblings = catalog.children(node.parent, 0, ALBUM_MAX)?;
    siblings.retain(|s| s.kind == NodeKind::File);
    siblings.sort_by(|a, b| a.name.cmp(&b.name));
    let at = siblings.iter().position(|s| s.ino == ino);
    Ok(at
        .map(|i| {
            siblings[i + 1..]
                .iter()
                .filter_map(|s| s.file_id)
                .take(n)
                .collect()
        })
        .unwrap_or_default())
}

/// Every file at or below the tree node `ino` (depth first, name order).
fn files_below(catalog: &Catalog, ino: u64) -> musicfs_index::Result<Vec<FileId>> {
    let mut out = Vec::new();
    let mut stack = vec![ino];
    while let Some(at) = stack.pop() {
        let Some(node) = catalog.node(at)? else {
            continue;
        };
        if node.kind == NodeKind::File {
            out.extend(node.file_id);
            continue;
        }
        let mut children = Vec::new();
        let mut after = 0;
        loop {
            let batch = catalog.children(at, after, 512)?;
            after = batch.last().map_or(after, |c| c.ino);
            let full = batch.len() == 512;
            children.extend(batch);
            if !full {
                break;
            }
        }
        children.sort_by(|a, b| b.name.cmp(&a.name)); // popped in name order
        stack.extend(children.iter().map(|c| c.ino));
        if out.len() > REQUEST_MAX_FILES {
            break;
        }
    }
    out.truncate(REQUEST_MAX_FILES);
    Ok(out)
}

/// The files a request's virtual path stands for: a tree file or folder,
/// a `.search/<query>` or `.collections/<name>` folder, or any of those
/// under `.prefetch/`.
fn resolve(state: &DaemonState, path: &str) -> Result<Vec<FileId>, Status> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let parts = match parts.first() {
        Some(&".prefetch") => &parts[1..],
        _ => &parts[..],
    };
    let limit = REQUEST_MAX_FILES;
    match parts {
        [".search", query] => state
            .library
            .search(query, limit)
            .map_err(|e| Status::invalid_argument(format!("search {query:?}: {e}"))),
        [".collections", name] => state
            .library
            .collection(name, limit)
            .ok_or_else(|| Status::not_found(format!("no collection named {name:?}"))),
        [".search" | ".collections", ..] => Err(Status::invalid_argument(
            "prefetch a whole .search or .collections folder, or the track's own path",
        )),
        _ => {
            let joined = parts.join("/");
            let node = state
                .catalog
                .resolve(joined.as_bytes())
                .map_err(|e| Status::internal(e.to_string()))?
                .ok_or_else(|| Status::not_found(format!("no such path in the mount: {path}")))?;
            files_below(&state.catalog, node.ino).map_err(|e| Status::internal(e.to_string()))
        }
    }
}

/// Progress shared by a request's workers.
#[derive(Default)]
struct Tally {
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    bytes_fetched: AtomicU64,
    errors: Mutex<Vec<String>>,
}

pub async fn prefetch(
    state: &Arc<DaemonState>,
    req: pb::PrefetchRequest,
) -> Result<ReceiverStream<Result<pb::PrefetchProgress, Status>>, Status> {
    let prefetcher = state
        .library
        .prefetcher()
        .cloned()
        .ok_or_else(|| Status::unavailable("the filesystem is not mounted"))?;
    let s = state.clone();
    let path = req.path.clone();
    let files = tokio::task::spawn_blocking(move || resolve(&s, &path))
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
    let catalog = state.catalog.clone();
    let records: Vec<_> = {
        let catalog = catalog.clone();
        tokio::task::spawn_blocking(move || {
            files
                .iter()
                .filter_map(|id| catalog.file(*id).ok().flatten())
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    };
    let files_total = records.len() as u64;
    let bytes_total: u64 = records.iter().map(|r| r.stamp.size).sum();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let path = req.path;
    std::thread::Builder::new()
        .name("musicfs-prefetch-req".into())
        .spawn(move || {
            let tally = Tally::default();
            let next = AtomicU64::new(0);
            let budget = Mutex::new(prefetcher.budget());
            // Set when the cache cannot hold the rest: stop, do not churn.
            let stop = std::sync::atomic::AtomicBool::new(false);
            let progress = |done: bool| pb::PrefetchProgress {
                files_total,
                files_done: tally.files_done.load(Ordering::Relaxed),
                bytes_total,
                bytes_done: tally.bytes_done.load(Ordering::Relaxed),
                bytes_fetched: tally.bytes_fetched.load(Ordering::Relaxed),
                done,
                errors: tally
                    .errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            };
            std::thread::scope(|scope| {
                for _ in 0..CONCURRENCY {
                    scope.spawn(|| loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(record) = records.get(i) else { return };
                        let outcome = if prefetcher.is_local(record) {
                            Ok(musicfs_fusefs::Prefetched {
                                local: true,
                                ..Default::default()
                            })
                        } else {
                            // Charge the budget up front, so two workers
                            // cannot both take the last room.
                            let charged =
                                match budget.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                                    None => Err(PrefetchError::NoStore),
                                    Some(b) => b.take(record.stamp.size),
                                };
                            charged.and_then(|mut b| prefetcher.fetch(record, &mut b))
                        };
                        match outcome {
                            Ok(p) => {
                                tally.files_done.fetch_add(1, Ordering::Relaxed);
                                tally
                                    .bytes_done
                                    .fetch_add(record.stamp.size, Ordering::Relaxed);
                                tally.bytes_fetched.fetch_add(p.fetched, Ordering::Relaxed);
                            }
                            Err(e) => {
                                if matches!(
                                    e,
                                    PrefetchError::CacheTooSmall { .. } | PrefetchError::NoStore
                                ) {
                                    stop.store(true, Ordering::Relaxed);
                                }
                                let name = String::from_utf8_lossy(&record.rel_path).into_owned();
                                tracing::info!(file = %name, "prefetch: {e}");
                                let mut errors =
                                    tally.errors.lock().unwrap_or_else(|e| e.into_inner());
                                if errors.len() < ERRORS_MAX {
                                    errors.push(format!("{name}: {e}"));
                                }
                            }
                        }
                        // A closed stream (the client went) does not stop the work.
                        let _ = tx.blocking_send(Ok(progress(false)));
                    });
                }
            });
            let last = progress(true);
            tracing::info!(
                path = %path,
                files = last.files_done,
                of = files_total,
                fetched = last.bytes_fetched,
                "prefetch done"
            );
            let _ = tx.blocking_send(Ok(last));
        })
        .map_err(|e| Status::internal(format!("cannot start a prefetch thread: {e}")))?;
    Ok(ReceiverStream::new(rx))
}
