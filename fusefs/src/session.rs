//! Mounting, cache invalidation and unmounting.
//!
//! The fuser session runs on a supervisor thread that spawns the worker
//! threads (one cloned `/dev/fuse` fd each) and joins them. The session ends
//! when the kernel disconnects: after our unmount, after `fusermount3 -u`,
//! or after an abort through `/sys/fs/fuse/connections`.
use crate::fs::MusicFs;
use crate::library::Library;
use crate::tree::Tree;
use crate::{FsConfig, FsStats, OriginTable, StoreSource};
use fuser::{Config, INodeNo, MountOption, Notifier, Session, SessionACL, SessionUnmounter};
use musicfs_index::TreeChanges;
use nix::mount::{MntFlags, MsFlags};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an unmount waits for the session to end before aborting the
/// connection (open files keep a lazily detached mount alive).
const END_GRACE: Duration = Duration::from_secs(5);

/// A flag the supervisor thread raises when the session is over.
#[derive(Default)]
struct Ended {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Ended {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
    fn is_set(&self) -> bool {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Waits until set or `timeout` passed (forever if `None`); returns whether set.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            match deadline {
                None => done = self.cv.wait(done).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    done = self
                        .cv
                        .wait_timeout(done, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        true
    }
}

/// Raises the flag even if the session thread panics.
struct SetOnDrop(Arc<Ended>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A live mount.
pub struct Mounted {
    mountpoint: PathBuf,
    notifier: Notifier,
    unmounter: Mutex<Unmounter>,
    ended: Arc<Ended>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The kernel's FUSE connection number (the mount's minor device).
    connection: Option<u32>,
}

fn mount_options(config: &FsConfig, read_only_flag: bool) -> Config {
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        if read_only_flag {
            MountOption::RO
        } else {
            MountOption::RW
        },
        MountOption::FSName(config.fsname.clone()),
        MountOption::Subtype("musicfs".to_string()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    // No auto_unmount: fuser only allows it with allow_other. The daemon
    // unmounts on shutdown; a crashed daemon leaves an ENOTCONN mount that
    // `fusermount3 -u` clears.
    cfg.acl = if config.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    cfg.n_threads = Some(config.threads.max(1));
    cfg.clone_fd = true;
    cfg
}

/// Mounts with mount(2) ourselves so `/proc/mounts` shows the type
/// `fuse.musicfs` (fuser's direct mount says plain `fuse`). `Ok(None)` when
/// we lack the privilege; fuser then mounts through fusermount3.
fn mount_direct(
    mountpoint: &Path,
    config: &FsConfig,
    read_only_flag: bool,
) -> io::Result<Option<OwnedFd>> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")?;
    let mut data = format!(
        "fd={},rootmode={:o},user_id={},group_id={},default_permissions",
        dev.as_raw_fd(),
        libc::S_IFDIR | 0o555,
        nix::unistd::getuid(),
        nix::unistd::getgid(),
    );
    if config.allow_other {
        data.push_str(",allow_other");
    }
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME;
    if read_only_flag {
        flags |= MsFlags::MS_RDONLY;
    }
    match nix::mount::mount(
        Some(config.fsname.as_str()),
        mountpoint,
        Some("fuse.musicfs"),
        flags,
        Some(data.as_str()),
    ) {
        Ok(()) => Ok(Some(OwnedFd::from(dev))),
        Err(nix::errno::Errno::EPERM) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The pieces of a mount are independent values; a builder would only
/// move these arguments into fields.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mount(
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    config: FsConfig,
    stats: Arc<FsStats>,
    mountpoint: &Path,
    read_only_flag: bool,
    cache: Option<Arc<dyn StoreSource>>,
    library: Arc<dyn Library>,
) -> io::Result<Mounted> {
    let context =
        |e: io::Error| io::Error::new(e.kind(), format!("mounting {}: {e}", mountpoint.display()));
    let mountpoint = mountpoint.canonicalize().map_err(context)?;
    let fs = MusicFs::new(tree, origins, &config, stats, cache, library);
    let options = mount_options(&config, read_only_flag);
    // Both paths complete the INIT handshake (passthrough is negotiated there).
    let (mut session, direct) =
        match mount_direct(&mountpoint, &config, read_only_flag).map_err(context)? {
            Some(fd) => match Session::from_fd(fs, fd, options.acl, options.clone()) {
                Ok(session) => (session, true),
                Err(e) => {
                    let _ = nix::mount::umount2(&mountpoint, MntFlags::MNT_DETACH);
                    return Err(context(e));
                }
            },
            None => (
                Session::new(fs, &mountpoint, &options).map_err(context)?,
                false,
            ),
        };
    let notifier = session.notifier();
    let unmounter = session.unmount_callable();
    let ended = Arc::new(Ended::default());
    let flag = SetOnDrop(ended.clone());
    let thread = std::thread::Builder::new()
        .name("musicfs-fuse".to_string())
        .spawn(move || {
            let _flag = flag;
            match session.run() {
                Ok(()) => tracing::info!("FUSE session ended"),
                Err(e) => tracing::warn!("FUSE session ended: {e}"),
            }
        })?;
    // Needs the workers running: the kernel asks us for the root's attributes.
    let connection = std::fs::metadata(&mountpoint)
        .ok()
        .map(|m| nix::sys::stat::minor(m.dev()) as u32);
    tracing::info!(mountpoint = %mountpoint.display(), threads = config.threads, direct, "mounted");
    Ok(Mounted {
        mountpoint,
        notifier,
        unmounter: Mutex::new(if direct {
            Unmounter::Direct
        } else {
            Unmounter::Fuser(unmounter)
        }),
        ended,
        thread: Mutex::new(Some(thread)),
        connection,
    })
}

/// Who unmounts: we (mounted with mount(2)) or fuser (fusermount3).
enum Unmounter {
    Direct,
    Fuser(SessionUnmounter),
}

impl Unmounter {
    fn unmount(&mut self, mountpoint: &Path) -> io::Result<()> {
        match self {
            Unmounter::Fuser(u) => u.unmount(),
            Unmounter::Direct => match nix::mount::umount2(mountpoint, MntFlags::empty()) {
                // Already gone (fusermount3 -u raced us): nothing to do.
                Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

impl Mounted {
    /// Where the filesystem is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the session has ended (unmounted by us or by `fusermount3 -u`).
    pub fn is_ended(&self) -> bool {
        self.ended.is_set()
    }

    /// Tells the kernel to forget cached entries and pages that `changes` made stale.
    /// Must not be called from inside a FUSE request handler (the kernel
    /// may wait on that very request: deadlock).
    pub fn invalidate(&self, changes: &TreeChanges) {
        if self.ended.is_set() {
            return;
        }
        for (parent, name) in &changes.removed {
            let result = self
                .notifier
                .inval_entry(INodeNo(*parent), OsStr::from_bytes(name));
            log_inval("entry", *parent, result);
        }
        for ino in changes.modified.iter().chain(&changes.dirs_changed) {
            // Offset 0, length 0: attributes and every cached page.
            log_inval(
                "inode",
                *ino,
                self.notifier.inval_inode(INodeNo(*ino), 0, 0),
            );
        }
    }

    /// Blocks until the filesystem is unmounted (by us or by `fusermount3 -u`).
    pub fn wait(&self) {
        self.ended.wait(None);
        self.join();
    }

    /// Unmounts (lazily if busy) and waits for the session to end.
    pub fn unmount(self) -> io::Result<()> {
        self.unmount_shared()
    }

    /// [`unmount`](Self::unmount) through a shared handle (`Arc<Mounted>`,
    /// e.g. while another thread sits in [`wait`](Self::wait), which then
    /// returns). Idempotent; a no-op once the session has ended. Waits up
    /// to 5 s for the session to end, then aborts the connection through
    /// fusectl (if mounted) and waits 5 s more before giving up.
    pub fn unmount_shared(&self) -> io::Result<()> {
        if !self.ended.is_set() {
            let result = self
                .unmounter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unmount(&self.mountpoint);
            match result {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    tracing::warn!(
                        mountpoint = %self.mountpoint.display(),
                        "mount busy; detaching lazily"
                    );
                    nix::mount::umount2(&self.mountpoint, MntFlags::MNT_DETACH)
                        .map_err(io::Error::from)?;
                }
                Err(e) => return Err(e),
            }
        }
        if !self.ended.wait(Some(END_GRACE)) {
            self.abort_connection();
            if !self.ended.wait(Some(END_GRACE)) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("FUSE session on {} did not end", self.mountpoint.display()),
                ));
            }
        }
        self.join();
        Ok(())
    }

    /// Last resort when files stay open on a detached mount: abort the
    /// connection through fusectl (if mounted), failing pending requests.
    fn abort_connection(&self) {
        let Some(conn) = self.connection else { return };
        let path = format!("/sys/fs/fuse/connections/{conn}/abort");
        match std::fs::write(&path, b"1") {
            Ok(()) => tracing::warn!(%path, "FUSE session still busy; connection aborted"),
            Err(e) => tracing::warn!(%path, "FUSE session still busy; cannot abort: {e}"),
        }
    }

    fn join(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("FUSE session thread panicked");
            }
        }
    }
}

impl Drop for Mounted {
    /// A mount must not outlive its handle: unmount if nobody did.
    fn drop(&mut self) {
        let running = self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if running {
            if let Err(e) = self.unmount_shared() {
                tracing::warn!("unmounting {}: {e}", self.mountpoint.display());
            }
        }
    }
}

fn log_inval(what: &str, ino: u64, result: io::Result<()>) {
    if let Err(e) = result {
        // ENOENT (nothing cached) is already filtered by fuser; anything
        // else only costs a stale cache entry until its TTL runs out.
        tracing::debug!(ino, "invalidating {what}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_only_without_auto_unmount() {
        let cfg = mount_options(
            &FsConfig {
                fsname: "lib".into(),
                threads: 0,
                ..FsConfig::default()
            },
            true,
        );
        assert!(cfg.mount_options.contains(&MountOption::RO));
        assert!(cfg.mount_options.contains(&MountOption::DefaultPermissions));
        assert!(cfg
            .mount_options
            .contains(&MountOption::FSName("lib".into())));
        assert!(!cfg.mount_options.contains(&MountOption::AutoUnmount));
        assert_eq!(cfg.acl, SessionACL::Owner);
        assert_eq!(cfg.n_threads, Some(1));
        assert!(cfg.clone_fd);
        let cfg = mount_options(
            &FsConfig {
                allow_other: true,
                ..FsConfig::default()
            },
            true,
        );
        assert_eq!(cfg.acl, SessionACL::All);
    }

    #[test]
    fn ended_flag_wakes_waiters() {
        let ended = Arc::new(Ended::default());
        assert!(!ended.wait(Some(Duration::from_millis(10))));
        let e2 = ended.clone();
        let t = std::thread::spawn(move || e2.wait(None));
        std::thread::sleep(Duration::from_millis(20));
        drop(SetOnDrop(ended.clone()));
        assert!(t.join().unwrap());
        assert!(ended.is_set());
    }
}
