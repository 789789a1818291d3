//! The daemon: catalog + origins + scanner + FUSE mount + control server.
//!
//! Order matters for the "mount returns in < 500 ms" promise: the catalog is
//! opened (cheap), the filesystem mounted with the tree as it is, the
//! control socket bound, readiness reported, and only then do the tree
//! rebuild (if the template changed), the incremental scans and the origin
//! watchers start, in the background.
//!
//! It stops on SIGINT/SIGTERM/SIGHUP (drain, then unmount), on the Shutdown
//! RPC (already drained), or when the filesystem is unmounted from outside
//! (`fusermount3 -u`); in every case the socket is removed and `run`
//! returns `Ok`.
use crate::cache::CacheSlot;
use crate::config::{Config, OriginConfig};
use crate::detach::Ready;
use crate::error::{Error, Result};
use crate::scanner::{origin_table, ScanTarget, Scanner};
use crate::service::{self, DaemonState, StopCause};
use musicfs_fusefs::{FsConfig, FsStats, Mounted, OriginTable};
use musicfs_index::scan::ScanOptions;
use musicfs_index::{Catalog, OriginId, Template};
use musicfs_origins::{LocalOrigin, Origin, WatchGuard};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What `musicfs mount` asks for beyond the config.
#[derive(Debug, Clone)]
pub struct MountRequest {
    /// A local directory to serve as origin `name` (besides the config's origins).
    pub source: Option<PathBuf>,
    /// Name of the origin `source` becomes. Default "local".
    pub name: String,
    pub mountpoint: PathBuf,
}

/// How long the control server may take to finish in-flight requests.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long to wait for the FUSE session to end after unmounting.
const SESSION_END_TIMEOUT: Duration = Duration::from_secs(12);
/// The same when files are still open: a lazily detached session only ends
/// when they close, and exiting (closing /dev/fuse) ends it for good.
const SESSION_END_TIMEOUT_BUSY: Duration = Duration::from_secs(1);

/// Runs the daemon in this process until it stops. Failures before the
/// filesystem is mounted and the socket listens are reported on `ready`.
pub fn run(config: &Config, req: &MountRequest, mut ready: Option<Ready>) -> Result<()> {
    let result = run_inner(config, req, &mut ready);
    if let (Err(e), Some(r)) = (&result, ready.as_mut()) {
        r.fail(if e.is_usage() { 2 } else { 1 }, &e.to_string());
    }
    result
}

/// Opens (creating its directory) the catalog.
pub fn open_catalog(path: &Path) -> Result<Arc<Catalog>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create catalog directory {}", dir.display()), e))?;
    }
    Ok(Arc::new(Catalog::open(path)?))
}

/// The canonical mountpoint, if it is a directory that no musicfs is
/// mounted on already (FUSE would happily stack a second one on top).
pub fn check_mountpoint(path: &Path) -> Result<PathBuf> {
    let dead = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTCONN);
    let first = std::fs::canonicalize(path);
    if matches!(&first, Err(e) if dead(e)) {
        clear_dead_mount(path);
    }
    let canonical = first
        .or_else(|_| std::fs::canonicalize(path))
        .map_err(|e| {
            let hint = if dead(&e) {
                format!(" (a dead FUSE mount: fusermount3 -u {})", path.display())
            } else {
                String::new()
            };
            Error::Usage(format!("mountpoint {}: {e}{hint}", path.display()))
        })?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mounted_musicfs(&mountinfo).any(|p| p == canonical) {
        // Cached attributes can make a dead mount look alive; listing it
        // needs the daemon.
        match std::fs::read_dir(&canonical) {
            Err(e) if dead(&e) => clear_dead_mount(&canonical),
            _ => {
                return Err(Error::Daemon(format!(
                    "{} is already a musicfs mount (musicfs shutdown, or fusermount3 -u {})",
                    canonical.display(),
                    canonical.display()
                )))
            }
        }
    }
    if !canonical.is_dir() {
        return Err(Error::Usage(format!(
            "mountpoint {} is not a directory",
            path.display()
        )));
    }
    Ok(canonical)
}

/// A musicfs whose daemon died (SIGKILL, crash) leaves a mount that answers
/// ENOTCONN; detach it so a new daemon can take its place. Mounts of other
/// filesystems are left alone.
fn clear_dead_mount(path: &Path) {
    let Ok(cwd) = std::env::current_dir() else {
        return;
    };
    let absolute = cwd.join(path);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mounted_musicfs(&mountinfo).any(|p| p == absolute) {
        return;
    }
    tracing::warn!(mountpoint = %absolute.display(), "detaching the dead mount of a musicfs that is gone");
    let detached = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(&absolute)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !detached {
        if let Err(e) = nix::mount::umount2(&absolute, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mountpoint = %absolute.display(), "cannot detach the dead mount: {e}");
        }
    }
}

/// Mount points of musicfs filesystems in a /proc/self/mountinfo text.
fn mounted_musicfs(mountinfo: &str) -> impl Iterator<Item = PathBuf> + '_ {
    mountinfo.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split(' ').next()?;
        let source = right.split(' ').nth(1).unwrap_or("");
        let is_musicfs =
            fstype == "fuse.musicfs" || (fstype.starts_with("fuse") && source == "musicfs");
        if !is_musicfs {
            return None;
        }
        left.split(' ')
            .nth(4)
            .map(|p| PathBuf::from(unescape_mountinfo(p)))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                u8::try_from(v).ok()
            });
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// The remote read path's settings from `[cache]`.
pub fn remote_config(config: &Config) -> musicfs_fusefs::RemoteConfig {
    let export = config.cache.export_size.0;
    musicfs_fusefs::RemoteConfig {
        cdc: config.cdc_params(),
        readahead: config.cache.readahead.0.max(1 << 20),
        export_dir: (export > 0).then(|| config.cache_dir.join("export")),
        export_budget: export,
        ..musicfs_fusefs::RemoteConfig::default()
    }
}

/// Scan options from the config.
pub fn scan_options(config: &Config) -> ScanOptions {
    ScanOptions {
        threads: config.scan.threads,
        ..ScanOptions::default()
    }
}

/// Makes the origins to scan (local, SFTP, S3, WebDAV, each wrapped in a
/// [`ManagedOrigin`]) and catalog rows for them. Served: the config's
/// `[[origins]]` plus `source` (replacing a config origin of the same
/// name); when that is empty, the local origins the catalog already knows.
/// Nothing is contacted here (a remote origin that is down must not stop
/// a mount), and the catalog's files are not counted (that is what keeps
/// mount time flat).
pub fn build_origins(
    catalog: &Catalog,
    config: &Config,
    source: Option<(&str, &Path)>,
) -> Result<Vec<Arc<ScanTarget>>> {
    let mut wanted: Vec<OriginConfig> = config.origins.clone();
    if let Some((name, path)) = source {
        wanted.retain(|o| o.name != name);
        wanted.push(OriginConfig::local(name, path));
    }
    if wanted.is_empty() {
        wanted = catalog
            .origins()?
            .into_iter()
            .filter(|o| o.kind == "local")
            .map(|o| OriginConfig::local(&o.name, Path::new(&o.location)))
            .collect();
    }
    if wanted.is_empty() {
        return Err(Error::Usage(
            "nothing to serve: give a SOURCE directory, or [[origins]] in the config file".into(),
        ));
    }
    let debounce = Duration::from_millis(config.scan.debounce_ms);
    let env = |k: &str| std::env::var(k).ok();
    let home = dirs::home_dir();
    let mut targets = Vec::new();
    for (position, o) in wanted.iter().enumerate() {
        let origin = o.build(position, debounce, &env, home.as_deref())?;
        let id = catalog.ensure_origin(&o.name, origin.kind().as_str(), &origin.location())?;
        catalog.set_origin_priority(id, origin.priority())?;
        targets.push(Arc::new(ScanTarget::new(id, origin)));
    }
    Ok(targets)
}

/// Catalogued local origins that are not served (not scanned, not
/// watched) but whose files are still in the tree: registered for reading
/// so those files stay readable. (Remote origins removed from the config
/// have no credentials any more; their files read as EIO until removed.)
pub fn unserved_origins(
    catalog: &Catalog,
    served: &[Arc<ScanTarget>],
) -> Result<Vec<(OriginId, Arc<LocalOrigin>)>> {
    let mut extra = Vec::new();
    for row in catalog.origins()? {
        if row.kind != "local" || served.iter().any(|t| t.id == row.id) {
            continue;
        }
        match LocalOrigin::new(row.name.clone(), &row.location) {
            Ok(o) => extra.push((row.id, Arc::new(o))),
            Err(e) => tracing::warn!(origin = row.name, "catalogued origin not readable: {e}"),
        }
    }
    Ok(extra)
}

fn run_inner(config: &Config, req: &MountRequest, ready: &mut Option<Ready>) -> Result<()> {
    let started = Instant::now();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        catalog = %config.catalog.display(),
        socket = %config.socket.display(),
        passthrough = config.fuse.passthrough,
        template = %config.template,
        "musicfs daemon starting"
    );
    let template = Template::parse(&config.template)?;
    let mountpoint = check_mountpoint(&req.mountpoint)?;
    crate::socket::prepare(&config.socket)?;
    let catalog = open_catalog(&config.catalog)?;
    tracing::debug!("catalog open at {:?}", started.elapsed());
    let source = req.source.as_deref().map(|p| (req.name.as_str(), p));
    let targets = build_origins(&catalog, config, source)?;
    tracing::debug!("origins ready at {:?}", started.elapsed());
    let scanner = Arc::new(Scanner::new(
        catalog.clone(),
        template,
        scan_options(config),
        targets,
    ));
    let stats = Arc::new(FsStats::default());
    let fs_config = FsConfig {
        passthrough: config.fuse.passthrough,
        ttl: Duration::from_millis(config.fuse.ttl_ms),
        threads: config.fuse.threads,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        allow_other: config.fuse.allow_other,
        fsname: "musicfs".into(),
        remote: remote_config(config),
    };
    let table = origin_table(scanner.targets());
    // The cache opens beside the mount, in the background (below): a new
    // image is formatted first, and a ublk device takes a moment to come
    // up. The mount never waits for it; remote reads go straight to their
    // origin until it is open.
    let cache = Arc::new(CacheSlot::default());
    cache.set_seeds(scanner.seeds().clone());
    let library = Arc::new(crate::library::DaemonLibrary::new(catalog.clone()));
    // Opens the search index off the mount's path and keeps it in step.
    crate::search::start_sync(&library);
    library.set_covers(crate::covers::Covers::new(
        catalog.clone(),
        table.clone(),
        Some(&config.cache_dir),
    ));
    let mounted = musicfs_fusefs::mount_library(
        catalog.clone(),
        table.clone(),
        fs_config,
        stats.clone(),
        &mountpoint,
        Some(cache.clone()),
        library.clone(),
    )
    .map_err(|e| Error::Daemon(format!("cannot mount at {}: {e}", mountpoint.display())))?;
    let mounted = Arc::new(mounted);
    tracing::info!(mountpoint = %mountpoint.display(), "mounted in {:?}", started.elapsed());
    {
        // Weak: the scanner must not keep the mount alive past shutdown.
        let weak = Arc::downgrade(&mounted);
        scanner.set_invalidate(Box::new(move |changes| {
            if let Some(m) = weak.upgrade() {
                m.invalidate(changes);
            }
        }));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("musicfs-ctl")
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the control runtime", e));
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            unmount(mounted, false);
            return Err(e);
        }
    };
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    let cache_opener = {
        let cache = cache.clone();
        let config = config.clone();
        std::thread::Builder::new()
            .name("musicfs-cache-open".into())
            .spawn(move || cache.open(&config))
            .map_err(|e| tracing::error!("cannot start the cache opener thread: {e}"))
            .ok()
    };
    let state = Arc::new(DaemonState {
        catalog,
        scanner: scanner.clone(),
        stats: stats.clone(),
        mountpoint: mountpoint.clone(),
        mounted: true.into(),
        passthrough_enabled: config.fuse.passthrough,
        started,
        stop: stop_tx.clone(),
        cache: cache.clone(),
        cache_device: crate::cache::offline_path(config),
        library,
    });
    let outcome = runtime.block_on(serve_until_stop(
        config,
        state.clone(),
        mounted.clone(),
        table,
        stop_rx,
        ready,
    ));
    let cause = match outcome {
        Ok(cause) => cause,
        Err(e) => {
            scanner.cancel();
            unmount(mounted, false);
            close_cache(&cache, cache_opener);
            return Err(e);
        }
    };
    scanner.cancel();
    state.mounted.store(false, Ordering::SeqCst);
    drop(state);
    unmount(mounted, stats.open_handles.load(Ordering::SeqCst) > 0);
    runtime.shutdown_timeout(Duration::from_secs(1));
    close_cache(&cache, cache_opener);
    tracing::info!(?cause, "stopped");
    Ok(())
}

/// Closes the cache (checkpoint, then the ublk device stops) once the
/// opener is done, so the ublk server never outlives the daemon.
fn close_cache(cache: &CacheSlot, opener: Option<std::thread::JoinHandle<()>>) {
    cache.close();
    if let Some(opener) = opener {
        // An open still running sees the slot closed and closes at once.
        if opener.join().is_err() {
            tracing::warn!("the cache opener thread panicked");
        }
    }
}

/// Binds the socket, reports readiness, starts the background work, and
/// waits for a reason to stop; returns it once the server is down and the
/// socket removed.
async fn serve_until_stop(
    config: &Config,
    state: Arc<DaemonState>,
    mounted: Arc<Mounted>,
    table: OriginTable,
    mut stop_rx: mpsc::UnboundedReceiver<StopCause>,
    ready: &mut Option<Ready>,
) -> Result<StopCause> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("install SIGINT handler", e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Error::io("install SIGTERM handler", e))?;
    let mut sighup =
        signal(SignalKind::hangup()).map_err(|e| Error::io("install SIGHUP handler", e))?;

    let socket = config.socket.clone();
    let listener = crate::socket::bind(&socket)?;
    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::serve(listener, state.clone(), async move {
        let _ = server_stop_rx.await;
    }));
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "control socket listening");
    if let Some(r) = ready.as_mut() {
        r.ok();
    }

    // `fusermount3 -u` ends the session; `wait` returns and we stop too.
    {
        let mounted = mounted.clone();
        let stop = state.stop.clone();
        std::thread::Builder::new()
            .name("musicfs-wait".into())
            .spawn(move || {
                mounted.wait();
                let _ = stop.send(StopCause::Unmounted);
            })
            .map_err(|e| Error::io("start the unmount watcher", e))?;
    }
    let guards: Arc<Mutex<Vec<Box<dyn WatchGuard>>>> = Arc::default();
    start_background(
        state.scanner.clone(),
        state.catalog.clone(),
        table,
        guards.clone(),
    );

    let cause = tokio::select! {
        c = stop_rx.recv() => c.unwrap_or(StopCause::Signal),
        _ = sigint.recv() => StopCause::Signal,
        _ = sigterm.recv() => StopCause::Signal,
        _ = sighup.recv() => StopCause::Signal,
    };
    tracing::info!(?cause, "stopping");
    state.scanner.cancel();
    if cause == StopCause::Signal && !service::drain(&state.stats, service::DEFAULT_DRAIN).await {
        tracing::warn!("files still open after the drain timeout; unmounting anyway");
    }
    // After the drain (open files kept reading): remote calls still in
    // flight, scans and polls, end now instead of at their deadlines.
    for target in state.scanner.targets() {
        if target.origin.kind().is_remote() {
            target.origin.cancel();
        }
    }
    // Watchers first: their batches would only be cancelled anyway.
    guards.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let _ = server_stop_tx.send(());
    match tokio::time::timeout(SERVER_STOP_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!("control server: {e}"),
        Ok(Err(e)) => tracing::warn!("control server task: {e}"),
        Err(_) => tracing::warn!("control server did not stop in time"),
    }
    if let Err(e) = std::fs::remove_file(&socket) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(socket = %socket.display(), "cannot remove control socket: {e}");
        }
    }
    Ok(cause)
}

/// Set once, waited on by others.
#[derive(Default)]
struct Flag {
    set: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Flag {
    fn set(&self) {
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
    fn is_set(&self) -> bool {
        *self.set.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wait(&self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            set = self.cv.wait(set).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Starts, on plain threads: the registration of unserved origins, the
/// tree rebuild if the template changed, one full incremental scan per
/// origin, and, beside the scan, the watchers (setting up inotify on a
/// large tree takes seconds; the scan need not wait for it). A scan that
/// listed the origin before the watchers were up is followed by a second,
/// cheap one once they are, so no change falls between the two.
fn start_background(
    scanner: Arc<Scanner>,
    catalog: Arc<Catalog>,
    table: OriginTable,
    guards: Arc<Mutex<Vec<Box<dyn WatchGuard>>>>,
) {
    let watching = Arc::new(Flag::default());
    {
        let scanner = scanner.clone();
        let done = watching.clone();
        let spawned = std::thread::Builder::new()
            .name("musicfs-watch-setup".into())
            .spawn(move || {
                let started = Instant::now();
                for target in scanner.targets() {
                    start_watcher(&scanner, target, &guards);
                    if target.origin.kind().is_remote() {
                        start_health_checks(&scanner, target, &guards);
                    }
                }
                tracing::info!("watchers up in {:?}", started.elapsed());
                done.set();
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the watcher setup thread: {e}");
            watching.set();
        }
    }
    let spawned = std::thread::Builder::new()
        .name("musicfs-scan".into())
        .spawn(move || {
            match unserved_origins(&catalog, scanner.targets()) {
                Ok(extra) => {
                    let mut t = table.write().unwrap_or_else(|e| e.into_inner());
                    for (id, origin) in extra {
                        tracing::info!(origin = origin.name(), "serving reads only (not scanned)");
                        t.insert(id, origin);
                    }
                }
                Err(e) => tracing::warn!("cannot list catalogued origins: {e}"),
            }
            match catalog.tree_template() {
                Ok(Some(t)) if t == scanner.template().source() => {}
                Ok(previous) => {
                    tracing::info!(
                        ?previous,
                        template = scanner.template().source(),
                        "template changed: rebuilding the tree"
                    );
                    if let Err(e) = scanner.sync_tree() {
                        tracing::error!("tree rebuild failed: {e}");
                    }
                }
                Err(e) => tracing::error!("cannot read the tree's template: {e}"),
            }
            let scan_all = || {
                for target in scanner.targets() {
                    match scanner.full_scan(target, &|_| {}) {
                        Ok(_) => {}
                        Err(_) if scanner.cancelled() => return false,
                        Err(e) => tracing::error!(origin = target.name(), "scan failed: {e}"),
                    }
                }
                true
            };
            let listed_before_watching = !watching.is_set();
            if scan_all() && listed_before_watching {
                watching.wait();
                tracing::info!("rescanning for changes made while the watchers started");
                scan_all();
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the scanner thread: {e}");
    }
}

/// Health checks of a remote origin; when it comes back after being down,
/// a full (incremental) scan catches up with what changed meanwhile.
fn start_health_checks(
    scanner: &Arc<Scanner>,
    target: &Arc<ScanTarget>,
    guards: &Arc<Mutex<Vec<Box<dyn WatchGuard>>>>,
) {
    let weak_scanner = Arc::downgrade(scanner);
    let weak_target = Arc::downgrade(target);
    let was_down = std::sync::atomic::AtomicBool::new(false);
    target.origin.on_health_change(Box::new(move |state| {
        use musicfs_origins::HealthState;
        match state {
            HealthState::Down => was_down.store(true, Ordering::SeqCst),
            HealthState::Up if was_down.swap(false, Ordering::SeqCst) => {
                let (Some(scanner), Some(target)) = (weak_scanner.upgrade(), weak_target.upgrade())
                else {
                    return;
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("musicfs-catchup-{}", target.name()))
                    .spawn(move || {
                        tracing::info!(origin = target.name(), "origin is back: rescanning");
                        if let Err(e) = scanner.full_scan(&target, &|_| {}) {
                            if !scanner.cancelled() {
                                tracing::warn!(origin = target.name(), "catch-up scan failed: {e}");
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("cannot start a catch-up scan: {e}");
                }
            }
            _ => {}
        }
    }));
    let guard = target.origin.start_health_checks();
    guards.lock().unwrap_or_else(|e| e.into_inner()).push(guard);
}

fn start_watcher(
    scanner: &Arc<Scanner>,
    target: &Arc<ScanTarget>,
    guards: &Arc<Mutex<Vec<Box<dyn WatchGuard>>>>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    match target.origin.watch(tx) {
        Ok(Some(guard)) => guards.lock().unwrap_or_else(|e| e.into_inner()).push(guard),
        Ok(None) => {
            tracing::info!(
                origin = target.name(),
                "origin cannot be watched; changes need `musicfs rescan`"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(
                origin = target.name(),
                "cannot watch: {e}; changes need `musicfs rescan`"
            );
            return;
        }
    }
    let scanner = scanner.clone();
    let target = target.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("musicfs-watch-{}", target.name()))
        .spawn(move || {
            // Ends when the guard (and with it the sender) is dropped.
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                match scanner.apply_changes(&target, batch) {
                    Ok(_) => {}
                    Err(_) if scanner.cancelled() => return,
                    Err(e) => {
                        tracing::warn!(origin = target.name(), "applying changes failed: {e}")
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the watcher thread: {e}");
    }
}

/// Unmounts (lazily if busy) and waits, bounded, for the FUSE session to
/// end. `unmount_shared` works while the waiter thread sits in `wait`.
/// When files are still open the session cannot end cleanly; exiting then
/// closes /dev/fuse, which ends it for good, so the wait is short.
fn unmount(mounted: Arc<Mounted>, busy: bool) {
    let grace = if busy {
        SESSION_END_TIMEOUT_BUSY
    } else {
        SESSION_END_TIMEOUT
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("musicfs-unmount".into())
        .spawn(move || {
            let _ = tx.send(mounted.unmount_shared());
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the unmount thread: {e}");
        return;
    }
    match rx.recv_timeout(grace) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("unmount: {e}"),
        Err(_) => tracing::warn!("FUSE session did not end within {grace:?}; exiting anyway"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_musicfs_mounts_in_mountinfo() {
        let text = "36 27 0:31 / /tmp rw - tmpfs tmpfs rw\n\
            42 27 0:39 / /mnt/my\\040music ro,nosuid - fuse.musicfs musicfs ro,user_id=0\n\
            43 27 0:40 / /mnt/other ro - fuse.sshfs host:/x ro\n";
        let found: Vec<PathBuf> = mounted_musicfs(text).collect();
        assert_eq!(found, vec![PathBuf::from("/mnt/my music")]);
    }
}
