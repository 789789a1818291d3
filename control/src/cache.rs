//! The chunk cache, as the daemon and the offline `musicfs cache` commands
//! see it: which device `[cache]` names, opening it (creating and
//! formatting musicfs's own default image on first use; serving a ublk
//! device over the backing first for `kind = "ublk"`), claiming it so no
//! two processes open one store, and the checks before `cache format`.
//!
//! A ublk device's block `i` is its backing's block `i`, so offline
//! commands open a ublk cache's backing directly; only the daemon serves
//! `/dev/ublkbN`, and it stops serving it when it stops.
use crate::config::{CacheKind, Config};
use crate::error::{Error, Result};
use musicfs_blockcache::{
    self as bc, BlockDevice, ChunkStore, DeviceClaim, FormatOptions, StoreOptions,
};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An open chunk store and what keeps it open. Fields drop in order: the
/// store before the ublk device under it, the claim last.
pub struct OpenCache {
    store: Arc<ChunkStore>,
    /// The device, for messages, e.g. `/dev/ublkb0 (io_uring, O_DIRECT)`.
    pub description: String,
    /// `io_uring` or `pread` (the fallback).
    pub backend: &'static str,
    pub kind: CacheKind,
    /// Whether it was formatted by this open (a new image).
    pub formatted: bool,
    /// The claim on `/dev/ublkbN` while this process serves it, so `cache
    /// format` (even with `--force`) and mounts refuse the live device.
    #[cfg(feature = "ublk")]
    ublk_claim: Option<std::fs::File>,
    #[cfg(feature = "ublk")]
    ublk: Option<bc::UblkServer>,
    _claim: DeviceClaim,
}

impl std::fmt::Debug for OpenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCache")
            .field("device", &self.description)
            .finish()
    }
}

/// How an open may treat a device that is not a chunk store yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create and format the default image when it is missing or empty
    /// (the daemon).
    DefaultImage,
    /// Never create or format (offline inspection).
    Never,
}

fn claim(path: &Path) -> Result<DeviceClaim> {
    match DeviceClaim::acquire(path)? {
        Ok(claim) => Ok(claim),
        Err(busy) => Err(Error::Daemon(busy)),
    }
}

/// An exclusive (`O_EXCL`) open of a block device: while held, mounts and
/// `cache format` (which tests the same) refuse it.
#[cfg(feature = "ublk")]
fn hold_exclusive(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(format!("open {} exclusively", path.display()), e))
}

/// Whether `path` is a new image: missing, empty, or all zeros where a
/// store or filesystem would have its superblock.
fn is_blank_image(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("stat {}", path.display()), e)),
        Ok(m) if !m.is_file() => Ok(false),
        Ok(m) if m.len() == 0 => Ok(true),
        Ok(_) => {
            use std::io::Read;
            let mut head = vec![0u8; 128 << 10];
            let mut f = std::fs::File::open(path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
                }
            }
            Ok(head[..n].iter().all(|&b| b == 0))
        }
    }
}

/// Creates the image file (and its directory) if missing; sparse.
fn ensure_image(path: &Path, size: u64) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if path.starts_with("/dev") {
        return Err(Error::Usage(format!("{} does not exist", path.display())));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create cache directory {}", dir.display()), e))?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(format!("create cache image {}", path.display()), e))?;
    f.set_len(size)
        .map_err(|e| Error::io(format!("size cache image {}", path.display()), e))?;
    Ok(())
}

fn backend_of(dev: &dyn BlockDevice) -> &'static str {
    if dev.describe().contains("io_uring") {
        "io_uring"
    } else {
        "pread"
    }
}

/// Store options from `[cache]`.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        high_watermark: config.cache.high_watermark,
        low_watermark: config.cache.low_watermark,
        max_chunk_len: (config.cdc_params().max).max(StoreOptions::default().max_chunk_len),
        ..StoreOptions::default()
    }
}

fn not_formatted_hint(e: bc::Error, path: &Path) -> Error {
    match e {
        bc::Error::NotFormatted { .. } => Error::Daemon(format!(
            "{e} (format it with: musicfs cache format {})",
            path.display()
        )),
        other => other.into(),
    }
}

impl OpenCache {
    /// Opens the cache `[cache]` names. `Create::DefaultImage` lets it make
    /// and format musicfs's default image; and for `kind = "ublk"` it
    /// serves the ublk device (the daemon); `Create::Never` opens what is
    /// there, a ublk cache through its backing.
    pub fn open(config: &Config, create: Create) -> Result<OpenCache> {
        let kind = config.cache.kind;
        let daemon = create == Create::DefaultImage;
        let path = match kind {
            CacheKind::Ublk => config.ublk_backing(),
            _ => config.cache_device(),
        };
        // Only the image musicfs keeps at its default place is made and
        // formatted unasked; anything else is formatted with `cache format`.
        let may_format =
            daemon && kind != CacheKind::Device && path == config.cache_dir.join("cache.img");
        let blank = kind != CacheKind::Device && is_blank_image(&path)?;
        if kind != CacheKind::Device {
            if !path.exists() && !may_format {
                return Err(Error::Daemon(format!(
                    "no cache image at {} yet (a mounted daemon creates it, or: musicfs cache format {})",
                    path.display(),
                    path.display()
                )));
            }
            ensure_image(&path, config.cache.size.0)?;
        }
        let claim = claim(&path)?;
        let format = blank && may_format;
        #[cfg(feature = "ublk")]
        let (ublk, ublk_claim, dev_path) = if kind == CacheKind::Ublk && daemon {
            let options = bc::UblkOptions {
                id: Some(config.cache.ublk_id),
                ..bc::UblkOptions::default()
            };
            let server = bc::UblkServer::start_with(&path, &options)?;
            let dev = server.device_path().to_path_buf();
            // The backing's claim does not cover the device node: without
            // this, `cache format /dev/ublkbN --force` overwrote the live
            // store under the daemon. An O_EXCL open (what `cache format`
            // and mount test) and no flock: udev takes a shared flock on a
            // new device while it probes it.
            let dev_claim = match hold_exclusive(&dev) {
                Ok(c) => c,
                Err(e) => {
                    if let Err(stop) = server.stop() {
                        tracing::warn!(device = %dev.display(), "stopping the ublk device: {stop}");
                    }
                    return Err(e);
                }
            };
            (Some(server), Some(dev_claim), dev)
        } else {
            (None, None, path.clone())
        };
        #[cfg(not(feature = "ublk"))]
        let dev_path = if kind == CacheKind::Ublk && daemon {
            return Err(Error::Daemon(
                "this musicfs was built without ublk support (cargo feature `ublk`)".into(),
            ));
        } else {
            path.clone()
        };
        let dev: Arc<dyn BlockDevice> = Arc::from(bc::open_best(&dev_path, None)?);
        if format {
            ChunkStore::format(&*dev, &FormatOptions::default())?;
            tracing::info!(device = %dev.describe(), bytes = dev.size(), "formatted a new chunk cache");
        }
        let description = dev.describe();
        let backend = backend_of(&*dev);
        let store = ChunkStore::open(dev, store_options(config))
            .map_err(|e| not_formatted_hint(e, &path))?;
        Ok(OpenCache {
            store: Arc::new(store),
            description,
            backend,
            kind,
            formatted: format,
            #[cfg(feature = "ublk")]
            ublk_claim,
            #[cfg(feature = "ublk")]
            ublk,
            _claim: claim,
        })
    }

    pub fn store(&self) -> &Arc<ChunkStore> {
        &self.store
    }

    /// Checkpoints, closes the store, then stops serving the ublk device
    /// (if this process serves one) and releases the claim.
    pub fn close(self) {
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!(device = %self.description, "final cache checkpoint failed: {e}");
        }
        // A request still running (a verify, a backup) holds the store; let
        // it finish, bounded, before the device goes away under it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.store) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let OpenCache {
            store,
            description,
            #[cfg(feature = "ublk")]
            ublk,
            #[cfg(feature = "ublk")]
            ublk_claim,
            _claim,
            ..
        } = self;
        drop(store);
        #[cfg(feature = "ublk")]
        drop(ublk_claim);
        #[cfg(feature = "ublk")]
        if let Some(server) = ublk {
            if let Err(e) = server.stop() {
                tracing::warn!(device = %description, "stopping the ublk device: {e}");
            }
        }
        tracing::info!(device = %description, "chunk cache closed");
        drop(_claim);
    }
}

/// The daemon's cache: opening in the background, open, failed, or closed.
#[derive(Default)]
pub struct CacheSlot {
    state: Mutex<SlotState>,
    /// Headers remote scans fetched (see `seeds.rs`).
    seeds: std::sync::OnceLock<Arc<crate::seeds::Seeds>>,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Opening,
    Open(OpenCache),
    Failed(String),
    Closed,
}

/// What `status` shows of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSummary {
    /// `opening`, `open`, `failed` or `closed`.
    pub state: &'static str,
    pub device: String,
    pub error: String,
}

/// A handle on the open store for one request.
pub struct CacheRef {
    pub store: Arc<ChunkStore>,
    pub description: String,
    pub backend: &'static str,
    pub kind: CacheKind,
}

/// The remote read path asks the slot for the store on every read: `None`
/// until it is open (reads then go straight to the origin).
impl musicfs_fusefs::StoreSource for CacheSlot {
    fn store(&self) -> Option<Arc<ChunkStore>> {
        match &*self.lock() {
            SlotState::Open(c) => Some(c.store.clone()),
            _ => None,
        }
    }
    fn seed(
        &self,
        origin: musicfs_index::OriginId,
        rel_path: &[u8],
        stamp: musicfs_index::Stamp,
    ) -> Option<Arc<musicfs_fusefs::Seed>> {
        self.seeds.get()?.get(origin, rel_path, stamp)
    }
}

impl CacheSlot {
    /// Shares the scanner's [`Seeds`](crate::seeds::Seeds) with the remote
    /// read path (once, before mounting).
    pub fn set_seeds(&self, seeds: Arc<crate::seeds::Seeds>) {
        let _ = self.seeds.set(seeds);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the cache on this thread and fills the slot (the daemon calls
    /// it on a thread of its own: formatting a new image takes a moment).
    /// If the daemon stopped meanwhile, the cache is closed again at once.
    pub fn open(&self, config: &Config) {
        let started = Instant::now();
        let outcome = OpenCache::open(config, Create::DefaultImage);
        let mut state = self.lock();
        match outcome {
            Ok(cache) if matches!(*state, SlotState::Closed) => {
                drop(state);
                cache.close();
            }
            Ok(cache) => {
                let s = cache.store.stats();
                tracing::info!(
                    device = %cache.description,
                    chunks = s.chunks,
                    used_bytes = s.used_bytes,
                    capacity_bytes = s.capacity_bytes,
                    formatted = cache.formatted,
                    "chunk cache open in {:?}",
                    started.elapsed()
                );
                *state = SlotState::Open(cache);
            }
            Err(e) => {
                tracing::error!(
                    "chunk cache unavailable: {e}; the mount works without it (local origins do not use it)"
                );
                if !matches!(*state, SlotState::Closed) {
                    *state = SlotState::Failed(e.to_string());
                }
            }
        }
    }

    pub fn summary(&self, config_device: &Path) -> CacheSummary {
        let device = config_device.display().to_string();
        match &*self.lock() {
            SlotState::Opening => CacheSummary {
                state: "opening",
                device,
                error: String::new(),
            },
            SlotState::Open(c) => CacheSummary {
                state: "open",
                device: c.description.clone(),
                error: String::new(),
            },
            SlotState::Failed(e) => CacheSummary {
                state: "failed",
                device,
                error: e.clone(),
            },
            SlotState::Closed => CacheSummary {
                state: "closed",
                device,
                error: String::new(),
            },
        }
    }

    /// The open store, or why there is none.
    pub fn get(&self) -> std::result::Result<CacheRef, String> {
        match &*self.lock() {
            SlotState::Open(c) => Ok(CacheRef {
                store: c.store.clone(),
                description: c.description.clone(),
                backend: c.backend,
                kind: c.kind,
            }),
            SlotState::Opening => Err("the cache is still being opened".into()),
            SlotState::Failed(e) => Err(format!("the cache could not be opened: {e}")),
            SlotState::Closed => Err("the cache is closed (the daemon is stopping)".into()),
        }
    }

    /// Closes the cache (stopping its ublk device); later opens are undone.
    pub fn close(&self) {
        let previous = std::mem::replace(&mut *self.lock(), SlotState::Closed);
        if let SlotState::Open(cache) = previous {
            cache.close();
        }
    }
}

/// What `cache format` did.
#[derive(Debug)]
pub struct Formatted {
    pub description: String,
    pub capacity_bytes: u64,
    /// The signature `--force` overwrote, if any.
    pub overwrote: Option<&'static str>,
}

/// `musicfs cache format DEVICE`: refuses a device in use (mounted, swap,
/// held, attached to a loop device, claimed by a musicfs process) always,
/// and one carrying a filesystem, partition table or store unless `force`.
/// A missing path becomes a sparse image file of `size` (default: the
/// configured size).
pub fn format_device(
    config: &Config,
    path: &Path,
    size: Option<u64>,
    force: bool,
) -> Result<Formatted> {
    if !path.exists() {
        ensure_image(path, size.unwrap_or(config.cache.size.0))?;
    }
    if let Some(why) = bc::in_use(path)? {
        return Err(Error::Daemon(format!(
            "refusing to format {}: {why}",
            path.display()
        )));
    }
    let overwrote = bc::probe(path)?;
    if let Some(sig) = overwrote.filter(|_| !force) {
        return Err(Error::Daemon(format!(
            "refusing to format {}: it holds {sig} (use --force to overwrite it)",
            path.display()
        )));
    }
    let _claim = claim(path)?;
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    let size = match size {
        Some(s) => Some(s),
        // An empty image file gets the configured size.
        None if meta.is_file() && meta.len() == 0 => Some(config.cache.size.0),
        None => None,
    };
    if meta.file_type().is_block_device() || meta.is_file() {
        let dev = bc::open_best(path, size)?;
        ChunkStore::format(&*dev, &FormatOptions::default())?;
        let description = dev.describe();
        let dev: Arc<dyn BlockDevice> = Arc::from(dev);
        let store = ChunkStore::open(dev, store_options(config))?;
        Ok(Formatted {
            description,
            capacity_bytes: store.stats().capacity_bytes,
            overwrote,
        })
    } else {
        Err(Error::Usage(format!(
            "{} is neither a block device nor a regular file",
            path.display()
        )))
    }
}

/// Where offline commands find the cache's bytes (for `ublk`, the backing).
pub fn offline_path(config: &Config) -> PathBuf {
    match config.cache.kind {
        CacheKind::Ublk => config.ublk_backing(),
        _ => config.cache_device(),
    }
}

/// `musicfs cache restore FILE` onto the configured device, offline:
/// checks the backup, writes it, opens the store and verifies it.
pub fn restore(
    config: &Config,
    file: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(bc::BackupInfo, bc::VerifyReport, bc::Stats)> {
    let info = bc::check_backup(file)?;
    let path = offline_path(config);
    if config.cache.kind != CacheKind::Device {
        ensure_image(&path, config.cache.size.0.max(info.store_bytes))?;
    }
    if let Some(why) = bc::in_use(&path)? {
        return Err(Error::Daemon(format!(
            "refusing to restore onto {}: {why}",
            path.display()
        )));
    }
    let _claim = claim(&path)?;
    let size = (config.cache.kind != CacheKind::Device).then_some(info.store_bytes);
    let dev: Arc<dyn BlockDevice> = Arc::from(bc::open_best(&path, size)?);
    bc::restore_backup(&*dev, file, progress)?;
    let store = ChunkStore::open(dev, store_options(config))?;
    let report = store.verify()?;
    Ok((info, report, store.stats()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    fn config(dir: &Path) -> Config {
        let mut c = Config {
            cache_dir: dir.join("cache"),
            ..Config::default()
        };
        c.cache.size = ByteSize(16 << 20);
        c.cache.device = Some(c.cache_dir.join("cache.img"));
        c
    }

    #[test]
    fn the_daemon_creates_the_default_image_and_reopens_its_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path());
        let err = OpenCache::open(&c, Create::Never).expect_err("no image yet");
        assert!(err.to_string().contains("no cache image"), "{err}");
        let cache = OpenCache::open(&c, Create::DefaultImage).expect("create");
        assert!(cache.formatted);
        let id = cache.store().put(b"hello cache").expect("put");
        let busy = OpenCache::open(&c, Create::Never).expect_err("claimed");
        assert!(busy.to_string().contains("in use"), "{busy}");
        cache.close();
        let again = OpenCache::open(&c, Create::DefaultImage).expect("reopen");
        assert!(!again.formatted, "existing content is kept");
        assert_eq!(
            again.store().get(id).expect("get").as_deref(),
            Some(&b"hello cache"[..])
        );
    }

    #[test]
    fn a_foreign_image_is_never_formatted_by_the_daemon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        let other = dir.path().join("other.img");
        std::fs::write(&other, vec![1u8; 1 << 20]).expect("write");
        c.cache.device = Some(other.clone());
        let err = OpenCache::open(&c, Create::DefaultImage).expect_err("foreign");
        assert!(err.to_string().contains("cache format"), "{err}");
        assert_eq!(std::fs::read(&other).expect("read"), vec![1u8; 1 << 20]);
    }

    #[test]
    fn format_refuses_a_signature_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path());
        let img = dir.path().join("x.img");
        let mut bytes = vec![0u8; 4 << 20];
        bytes[0..4].copy_from_slice(b"XFSB");
        std::fs::write(&img, &bytes).expect("write");
        let err = format_device(&c, &img, None, false).expect_err("xfs");
        assert!(err.to_string().contains("an xfs filesystem"), "{err}");
        let f = format_device(&c, &img, None, true).expect("forced");
        assert_eq!(f.overwrote, Some("an xfs filesystem"));
        let err = format_device(&c, &img, None, false).expect_err("store");
        assert!(err.to_string().contains("a musicfs chunk store"), "{err}");
        let new = dir.path().join("new.img");
        let f = format_device(&c, &new, Some(8 << 20), false).expect("new");
        assert!(f.capacity_bytes > 0 && f.capacity_bytes < 8 << 20);
    }
}
