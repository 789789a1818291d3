//! The `musicfs.v1.Musicfs` gRPC service and the server around it.
use crate::cache::{CacheRef, CacheSlot};
use crate::error::Result;
use crate::scanner::{ScanOutcome, ScanTarget, Scanner};
use musicfs_fusefs::FsStats;
use musicfs_index::scan::ScanProgress as IndexProgress;
use musicfs_index::Catalog;
use musicfs_proto::v1 as pb;
use musicfs_proto::v1::musicfs_server::{Musicfs, MusicfsServer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

/// Scan errors returned by GetStatus when the client does not say.
const DEFAULT_MAX_ERRORS: usize = 100;
/// How long a Shutdown waits for open files when the client does not say.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
/// Progress messages of a rescan are sent at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Why the daemon stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The Shutdown RPC (already drained).
    Rpc,
    /// The filesystem was unmounted from outside (`fusermount3 -u`).
    Unmounted,
    Signal,
}

/// What the service reads and drives; shared with the daemon.
pub struct DaemonState {
    pub catalog: Arc<Catalog>,
    pub scanner: Arc<Scanner>,
    pub stats: Arc<FsStats>,
    pub mountpoint: PathBuf,
    pub mounted: AtomicBool,
    /// `[fuse] passthrough` as configured.
    pub passthrough_enabled: bool,
    pub started: Instant,
    /// The daemon's main loop listens here.
    pub stop: mpsc::UnboundedSender<StopCause>,
    /// The chunk cache (opened in the background; may have failed).
    pub cache: Arc<CacheSlot>,
    /// The configured cache device, for status while it is not open.
    pub cache_device: PathBuf,
    /// Search, collections, covers, prefetch, play log (also the mount's).
    pub library: Arc<crate::library::DaemonLibrary>,
}

/// Waits until no file is open or `timeout` passes; true when drained.
pub async fn drain(stats: &FsStats, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if stats.open_handles.load(Ordering::SeqCst) == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct ControlService {
    state: Arc<DaemonState>,
}

impl ControlService {
    pub fn new(state: Arc<DaemonState>) -> ControlService {
        ControlService { state }
    }
}

/// Serves the control API on `listener` until `stop` resolves, refusing
/// peers of other users.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: Arc<DaemonState>,
    stop: impl std::future::Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error> {
    let svc =
        MusicfsServer::with_interceptor(ControlService::new(state), crate::socket::check_peer);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
        .await
}

fn status_of(e: crate::Error) -> Status {
    Status::internal(e.to_string())
}

/// The open cache, or FAILED_PRECONDITION saying why there is none.
fn open_cache(state: &DaemonState) -> std::result::Result<CacheRef, Status> {
    state.cache.get().map_err(Status::failed_precondition)
}

/// Runs blocking cache work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> musicfs_blockcache::Result<T> + Send + 'static,
) -> std::result::Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))
}

/// The stats reply of an open store.
pub fn stats_reply(c: &CacheRef) -> pb::CacheStatsReply {
    let s = c.store.stats();
    pb::CacheStatsReply {
        state: "open".into(),
        error: String::new(),
        device: c.description.clone(),
        kind: c.kind.as_str().into(),
        io_backend: c.backend.into(),
        capacity_bytes: s.capacity_bytes,
        used_bytes: s.used_bytes,
        free_bytes: s.free_bytes,
        chunks: s.chunks,
        logical_bytes: s.logical_bytes,
        stored_bytes: s.stored_bytes,
        dedup_ratio: s.dedup_ratio(),
        hits: s.hits,
        misses: s.misses,
        evictions: s.evictions,
        corrupt_chunks: s.corrupt_chunks,
        pinned_chunks: s.pinned_chunks,
    }
}

/// The verify reply of a report.
pub fn verify_reply(r: &musicfs_blockcache::VerifyReport, device: &str) -> pb::VerifyCacheReply {
    pb::VerifyCacheReply {
        clean: r.is_clean(),
        superblocks_valid: r.superblocks_valid.to_vec(),
        chunks_checked: r.chunks_checked,
        corrupt_chunks: r.corrupt_chunks.iter().map(|id| id.to_string()).collect(),
        bitmap_mismatches: r.bitmap_mismatches,
        problems: r.problems.clone(),
        device: device.to_string(),
    }
}

/// The origins a request names: one by name, or all for "".
fn pick_targets(
    scanner: &crate::scanner::Scanner,
    name: &str,
) -> std::result::Result<Vec<Arc<ScanTarget>>, Status> {
    if name.is_empty() {
        return Ok(scanner.targets().to_vec());
    }
    match scanner.target(name) {
        Some(t) => Ok(vec![t.clone()]),
        None => {
            let known: Vec<&str> = scanner.targets().iter().map(|t| t.name()).collect();
            Err(Status::not_found(format!(
                "no origin named {name:?} is served (served: {})",
                known.join(", ")
            )))
        }
    }
}

fn unix_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn health_msg(t: &ScanTarget) -> pb::OriginHealth {
    let h = t.origin.health();
    pb::OriginHealth {
        name: t.name().to_string(),
        state: h.state.as_str().to_string(),
        since: unix_secs(h.since),
        last_error: h.last_error.unwrap_or_default(),
        consecutive_failures: h.consecutive_failures,
        latency_ms: h.last_latency.map_or(0, |d| d.as_millis() as u64),
        last_check: h.last_check.map_or(0, unix_secs),
    }
}

fn verify_msg(v: &crate::verify::VerifyState, finished: bool) -> pb::VerifyProgress {
    pb::VerifyProgress {
        origin: v.origin.clone(),
        total: v.total,
        done: v.done,
        hashed: v.hashed,
        changed: v.changed,
        failed: v.failed,
        bytes: v.bytes,
        current: v.current.clone(),
        finished,
        failures: if finished {
            v.failures.clone()
        } else {
            Vec::new()
        },
    }
}

fn progress_msg(origin: &str, p: &IndexProgress) -> pb::ScanProgress {
    pb::ScanProgress {
        origin: origin.to_string(),
        total: p.total,
        done: p.done,
        changed: p.changed,
        errors: p.errors,
        current_path: p.current.clone(),
        finished: false,
        report: None,
    }
}

fn finished_msg(origin: &str, outcome: &ScanOutcome) -> pb::ScanProgress {
    let r = &outcome.report;
    pb::ScanProgress {
        origin: origin.to_string(),
        total: r.changed + r.errors,
        done: r.changed + r.errors,
        changed: r.changed,
        errors: r.errors,
        current_path: String::new(),
        finished: true,
        report: Some(pb::ScanReport {
            origin: origin.to_string(),
            scanned: r.seen,
            changed: r.changed,
            removed: r.removed,
            errors: r.errors,
            duration_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
            tree_added: outcome.tree.added,
            tree_removed: outcome.tree.removed.len() as u64,
            errors_recorded: outcome.errors_recorded,
        }),
    }
}

/// Runs a full scan of `target` on a blocking thread, sending throttled
/// progress and the final message to `tx`.
async fn rescan_one(
    scanner: Arc<Scanner>,
    target: Arc<ScanTarget>,
    tx: mpsc::Sender<std::result::Result<pb::ScanProgress, Status>>,
) -> bool {
    let name = target.name().to_string();
    let progress_tx = tx.clone();
    let result = tokio::task::spawn_blocking(move || {
        let last = std::sync::Mutex::new(Instant::now() - PROGRESS_INTERVAL);
        let send = |p: &IndexProgress| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= PROGRESS_INTERVAL || p.done == p.total {
                *last = Instant::now();
                // A full channel or a gone client only costs a progress line.
                let _ = progress_tx.try_send(Ok(progress_msg(target.name(), p)));
            }
        };
        scanner.full_scan(&target, &send)
    })
    .await;
    let msg = match result {
        Ok(Ok(outcome)) => Ok(finished_msg(&name, &outcome)),
        Ok(Err(e)) => Err(Status::internal(format!("scan of {name} failed: {e}"))),
        Err(e) => Err(Status::internal(format!("scan of {name} failed: {e}"))),
    };
    let ok = msg.is_ok();
    tx.send(msg).await.is_ok() && ok
}

#[tonic::async_trait]
impl Musicfs for ControlService {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> std::result::Result<Response<pb::StatusReply>, Status> {
        let max = match request.get_ref().max_errors {
            0 => DEFAULT_MAX_ERRORS,
            n => n as usize,
        };
        let s = self.state.clone();
        let (counts, errors) = tokio::task::spawn_blocking(move || -> Result<_> {
            Ok((s.catalog.counts()?, s.catalog.scan_errors(max)?))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status_of)?;
        let s = &self.state;
        let unavailable = s
            .stats
            .passthrough_unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::SeqCst);
        let cache = s.cache.summary(&s.cache_device);
        Ok(Response::new(pb::StatusReply {
            mounted: s.mounted.load(Ordering::SeqCst),
            mountpoint: s.mountpoint.display().to_string(),
            pid: std::process::id(),
            template: s.scanner.template().source().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_ms: u64::try_from(s.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            origins: counts.origins,
            files: counts.files,
            dirs: counts.dirs,
            scan_errors: counts.scan_errors,
            errors: errors
                .into_iter()
                .map(|e| pb::ScanError {
                    origin: e.origin,
                    path: String::from_utf8_lossy(&e.rel_path).into_owned(),
                    message: e.message,
                    at: e.at,
                })
                .collect(),
            scanning: s.scanner.scanning(),
            scans_completed: s.scanner.scans_completed(),
            passthrough_opens: load(&s.stats.passthrough_opens),
            daemon_opens: load(&s.stats.daemon_opens),
            open_handles: load(&s.stats.open_handles),
            reads: load(&s.stats.reads),
            bytes_read: load(&s.stats.bytes_read),
            passthrough_active: s.passthrough_enabled && unavailable.is_none(),
            passthrough_unavailable: if s.passthrough_enabled {
                unavailable
            } else {
                Some("disabled in config".into())
            },
            cache_state: cache.state.to_string(),
            cache_device: cache.device,
            cache_error: cache.error,
            cache_hit_bytes: load(&s.stats.cache_hit_bytes),
            origin_bytes: load(&s.stats.origin_bytes),
            direct_reads: load(&s.stats.direct_reads),
            failovers: load(&s.stats.failovers),
            exports: load(&s.stats.exports),
        }))
    }

    async fn list_origins(
        &self,
        _request: Request<pb::ListOriginsRequest>,
    ) -> std::result::Result<Response<pb::ListOriginsReply>, Status> {
        let s = self.state.clone();
        let rows = tokio::task::spawn_blocking(move || s.catalog.origins())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| status_of(e.into()))?;
        let origins = rows
            .into_iter()
            .map(|o| {
                let progress = self
                    .state
                    .scanner
                    .target(&o.name)
                    .and_then(|t| t.progress())
                    .map(|p| progress_msg(&o.name, &p));
                let target = self.state.scanner.target(&o.name);
                let counters = target.map(|t| t.origin.counters()).unwrap_or_default();
                pb::OriginInfo {
                    health: target.map(|t| health_msg(t)),
                    priority: o.priority,
                    bytes_read: counters.bytes_read,
                    requests: counters.requests,
                    errors: counters.errors,
                    scan_bytes: target.map_or(0, |t| t.scan_bytes.load(Ordering::Relaxed)),
                    scan_files: target.map_or(0, |t| t.scan_files.load(Ordering::Relaxed)),
                    poll_interval_s: target
                        .and_then(|t| t.origin.settings().poll_interval)
                        .map_or(0, |d| d.as_secs()),
                    name: o.name,
                    kind: o.kind,
                    location: o.location,
                    files: o.files,
                    scan_errors: o.scan_errors,
                    last_scan: o.last_scan.unwrap_or(0),
                    scanning: progress.is_some(),
                    progress,
                }
            })
            .collect();
        Ok(Response::new(pb::ListOriginsReply { origins }))
    }

    type RescanOriginStream = ReceiverStream<std::result::Result<pb::ScanProgress, Status>>;

    async fn rescan_origin(
        &self,
        request: Request<pb::RescanOriginRequest>,
    ) -> std::result::Result<Response<Self::RescanOriginStream>, Status> {
        let name = request.into_inner().origin;
        let scanner = self.state.scanner.clone();
        let targets = pick_targets(&scanner, &name)?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            for target in targets {
                if !rescan_one(scanner.clone(), target, tx.clone()).await {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_origin_health(
        &self,
        request: Request<pb::GetOriginHealthRequest>,
    ) -> std::result::Result<Response<pb::GetOriginHealthReply>, Status> {
        let name = request.into_inner().name;
        let targets = pick_targets(&self.state.scanner, &name)?;
        Ok(Response::new(pb::GetOriginHealthReply {
            origins: targets.iter().map(|t| health_msg(t)).collect(),
        }))
    }

    type VerifyOriginStream = ReceiverStream<std::result::Result<pb::VerifyProgress, Status>>;

    async fn verify_origin(
        &self,
        request: Request<pb::VerifyOriginRequest>,
    ) -> std::result::Result<Response<Self::VerifyOriginStream>, Status> {
        let name = request.into_inner().name;
        let targets = pick_targets(&self.state.scanner, &name)?;
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            for target in targets {
                let send = |v: &crate::verify::VerifyState, finished: bool| {
                    let _ = tx.blocking_send(Ok(verify_msg(v, finished)));
                };
                match crate::verify::verify_origin(&state.catalog, &state.scanner, &target, &|v| {
                    send(v, false)
                }) {
                    Ok(v) => send(&v, true),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(status_of(e)));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_cache_stats(
        &self,
        _request: Request<pb::GetCacheStatsRequest>,
    ) -> std::result::Result<Response<pb::CacheStatsReply>, Status> {
        match self.state.cache.get() {
            Ok(c) => Ok(Response::new(stats_reply(&c))),
            Err(_) => {
                let summary = self.state.cache.summary(&self.state.cache_device);
                Ok(Response::new(pb::CacheStatsReply {
                    state: summary.state.into(),
                    error: summary.error,
                    device: summary.device,
                    ..pb::CacheStatsReply::default()
                }))
            }
        }
    }

    async fn clear_cache(
        &self,
        _request: Request<pb::ClearCacheRequest>,
    ) -> std::result::Result<Response<pb::ClearCacheReply>, Status> {
        let c = open_cache(&self.state)?;
        let before = c.store.stats();
        let store = c.store.clone();
        blocking(move || store.clear()).await?;
        tracing::info!(chunks = before.chunks, "chunk cache cleared");
        Ok(Response::new(pb::ClearCacheReply {
            chunks_dropped: before.chunks,
            bytes_freed: before.used_bytes,
        }))
    }

    async fn verify_cache(
        &self,
        _request: Request<pb::VerifyCacheRequest>,
    ) -> std::result::Result<Response<pb::VerifyCacheReply>, Status> {
        let c = open_cache(&self.state)?;
        let store = c.store.clone();
        let report = blocking(move || store.verify()).await?;
        if !report.is_clean() {
            tracing::warn!(problems = ?report.problems, corrupt = report.corrupt_chunks.len(), "cache verify found problems");
        }
        Ok(Response::new(verify_reply(&report, &c.description)))
    }

    async fn backup_cache(
        &self,
        request: Request<pb::BackupCacheRequest>,
    ) -> std::result::Result<Response<pb::BackupCacheReply>, Status> {
        let path = PathBuf::from(request.into_inner().path);
        if !path.is_absolute() {
            return Err(Status::invalid_argument(format!(
                "backup path {} is not absolute",
                path.display()
            )));
        }
        let c = open_cache(&self.state)?;
        let store = c.store.clone();
        let chunks = store.stats().chunks;
        let info = blocking(move || store.backup(&path, &mut |_, _| {})).await?;
        Ok(Response::new(pb::BackupCacheReply {
            bytes: info.payload_bytes,
            chunks,
        }))
    }

    async fn set_tags(
        &self,
        request: Request<pb::SetTagsRequest>,
    ) -> std::result::Result<Response<pb::SetTagsReply>, Status> {
        crate::tags::set_tags(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn reset_tags(
        &self,
        request: Request<pb::ResetTagsRequest>,
    ) -> std::result::Result<Response<pb::SetTagsReply>, Status> {
        crate::tags::reset_tags(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_track(
        &self,
        request: Request<pb::GetTrackRequest>,
    ) -> std::result::Result<Response<pb::Track>, Status> {
        crate::tags::get_track(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    type ImportBeetsStream = ReceiverStream<std::result::Result<pb::ImportProgress, Status>>;

    async fn import_beets(
        &self,
        request: Request<pb::ImportBeetsRequest>,
    ) -> std::result::Result<Response<Self::ImportBeetsStream>, Status> {
        crate::beets::import(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    type ExportCatalogStream = ReceiverStream<std::result::Result<pb::ExportChunk, Status>>;

    async fn export_catalog(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> std::result::Result<Response<Self::ExportCatalogStream>, Status> {
        crate::beets::export(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> std::result::Result<Response<pb::SearchReply>, Status> {
        crate::search::search(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> std::result::Result<Response<pb::ListCollectionsReply>, Status> {
        crate::search::list_collections(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> std::result::Result<Response<pb::Collection>, Status> {
        crate::search::create_collection(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_collection(
        &self,
        request: Request<pb::DeleteCollectionRequest>,
    ) -> std::result::Result<Response<pb::DeleteCollectionReply>, Status> {
        crate::search::delete_collection(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    type PrefetchStream = ReceiverStream<std::result::Result<pb::PrefetchProgress, Status>>;

    async fn prefetch(
        &self,
        request: Request<pb::PrefetchRequest>,
    ) -> std::result::Result<Response<Self::PrefetchStream>, Status> {
        crate::prefetch::prefetch(&self.state, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn shutdown(
        &self,
        request: Request<pb::ShutdownRequest>,
    ) -> std::result::Result<Response<pb::ShutdownReply>, Status> {
        let timeout = match request.get_ref().drain_timeout_ms {
            0 => DEFAULT_DRAIN,
            ms => Duration::from_millis(ms),
        };
        tracing::info!("shutdown requested; draining for up to {timeout:?}");
        let drained = drain(&self.state.stats, timeout).await;
        let open = self.state.stats.open_handles.load(Ordering::SeqCst);
        if !drained {
            tracing::warn!(
                open,
                "files still open after the drain timeout; unmounting anyway"
            );
        }
        // The main loop stops the server gracefully, so this reply still goes out.
        let _ = self.state.stop.send(StopCause::Rpc);
        Ok(Response::new(pb::ShutdownReply {
            drained,
            open_handles: open,
            pid: std::process::id(),
        }))
    }
}
