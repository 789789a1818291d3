//! Kernel passthrough: negotiation, failure policy and opening real files.
//!
//! Passthrough (Linux 6.9+) lets the kernel read a backing file directly;
//! registering one (`FUSE_DEV_IOC_BACKING_OPEN`) needs CAP_SYS_ADMIN. When
//! it cannot work the daemon serves reads itself, and says why once: in the
//! log and in [`FsStats::passthrough_unavailable`].
use crate::FsStats;
use fuser::{InitFlags, KernelConfig};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Session-wide passthrough state.
pub(crate) struct Passthrough {
    /// Negotiated with the kernel and not since found impossible.
    active: AtomicBool,
    stats: Arc<FsStats>,
    /// Errnos of per-file failures already logged (each is logged once).
    logged: Mutex<HashSet<i32>>,
}

/// What to do after `open_backing` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// This error means passthrough can never work in this session.
    Permanent,
    /// Only this file (or its filesystem) cannot be passed through.
    ThisFile,
}

/// Errors of `FUSE_DEV_IOC_BACKING_OPEN` that no later open can avoid:
/// no CAP_SYS_ADMIN or passthrough not negotiated (EPERM), the ioctl is
/// unknown (ENOTTY), or the kernel refuses backing files (EOPNOTSUPP).
pub(crate) fn classify(err: &io::Error) -> Failure {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::ENOTTY | libc::EOPNOTSUPP) => Failure::Permanent,
        _ => Failure::ThisFile,
    }
}

impl Passthrough {
    /// Inactive until [`negotiate`](Self::negotiate) runs at `init`.
    pub(crate) fn new(stats: Arc<FsStats>) -> Passthrough {
        Passthrough {
            active: AtomicBool::new(false),
            stats,
            logged: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Asks the kernel for passthrough if `wanted`; records why not otherwise.
    pub(crate) fn negotiate(&self, wanted: bool, kernel: &mut KernelConfig) {
        self.set_reason(None);
        if !wanted {
            tracing::info!("passthrough disabled in config: the daemon serves every read");
            self.set_reason(Some("disabled in config".to_string()));
            return;
        }
        if let Err(missing) = kernel.add_capabilities(InitFlags::FUSE_PASSTHROUGH) {
            let reason = format!(
                "the kernel does not offer FUSE passthrough (needs Linux 6.9+; missing {missing:?})"
            );
            tracing::warn!("{reason}: the daemon serves every read");
            self.set_reason(Some(reason));
            return;
        }
        // Depth 1: backing files must live on a plain (non-stacked)
        // filesystem, and this mount can itself be stacked under overlayfs.
        if let Err(max) = kernel.set_max_stack_depth(1) {
            let reason = format!("the kernel refuses stack depth 1 (max {max})");
            tracing::warn!("{reason}: the daemon serves every read");
            self.set_reason(Some(reason));
            return;
        }
        self.active.store(true, Ordering::Relaxed);
    }

    /// Records a failed `open_backing`; the caller falls back to the daemon
    /// path. Logs once per kind of failure.
    pub(crate) fn backing_failed(&self, err: &io::Error, path: &Path) -> Failure {
        let failure = classify(err);
        let errno = err.raw_os_error().unwrap_or(0);
        let first = self
            .logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(errno);
        match failure {
            Failure::Permanent => {
                let was_active = self.active.swap(false, Ordering::Relaxed);
                let why = if errno == libc::EPERM {
                    " (needs CAP_SYS_ADMIN)"
                } else {
                    ""
                };
                let reason = format!("registering a backing file failed: {err}{why}");
                if was_active {
                    tracing::warn!(
                        "{reason}; passthrough is off for this mount, the daemon serves reads"
                    );
                }
                self.set_reason(Some(reason));
            }
            Failure::ThisFile => {
                if first {
                    tracing::warn!(
                        path = %path.display(),
                        "passthrough refused for a file ({err}); the daemon serves it \
                         (further failures of this kind are not logged)"
                    );
                }
            }
        }
        failure
    }

    fn set_reason(&self, reason: Option<String>) {
        *self
            .stats
            .passthrough_unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reason;
    }
}

/// Opens a local file for reading without touching its atime. `O_NOATIME`
/// is refused (EPERM) for files we do not own without CAP_FOWNER; then a
/// plain `O_RDONLY` is fine. `O_NONBLOCK` keeps a FIFO planted where a file
/// was from hanging a FUSE worker; `O_NOFOLLOW` refuses a symlink swapped
/// in. Only regular files are returned: they are what passthrough accepts.
pub(crate) fn open_local(path: &Path) -> io::Result<File> {
    let open = |extra: libc::c_int| {
        File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC | extra)
            .open(path)
    };
    let file = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = OFlag::from_bits_retain(fcntl(&file, FcntlArg::F_GETFL)?);
    fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn classify_permanent_failures() {
        for errno in [libc::EPERM, libc::ENOTTY, libc::EOPNOTSUPP] {
            assert_eq!(
                classify(&io::Error::from_raw_os_error(errno)),
                Failure::Permanent
            );
        }
        for errno in [libc::ELOOP, libc::EBADF, libc::EINVAL] {
            assert_eq!(
                classify(&io::Error::from_raw_os_error(errno)),
                Failure::ThisFile
            );
        }
    }

    #[test]
    fn permanent_failure_turns_passthrough_off_and_says_why() {
        let stats = Arc::new(FsStats::default());
        let p = Passthrough::new(stats.clone());
        p.active.store(true, Ordering::Relaxed);
        p.backing_failed(&io::Error::from_raw_os_error(libc::ELOOP), Path::new("/a"));
        assert!(p.is_active());
        assert!(stats.passthrough_unavailable.lock().unwrap().is_none());
        p.backing_failed(&io::Error::from_raw_os_error(libc::EPERM), Path::new("/a"));
        assert!(!p.is_active());
        let reason = stats
            .passthrough_unavailable
            .lock()
            .unwrap()
            .clone()
            .unwrap();
        assert!(reason.contains("CAP_SYS_ADMIN"), "{reason}");
    }

    #[test]
    fn open_local_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let mut s = String::new();
        open_local(&path).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
        assert_eq!(
            open_local(&dir.path().join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // A FIFO must not block the open, and is refused.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(
            open_local(&fifo).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        // A symlink is refused.
        std::os::unix::fs::symlink(&path, dir.path().join("link")).unwrap();
        assert_eq!(
            open_local(&dir.path().join("link"))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ELOOP)
        );
        // The returned file is blocking again.
        let f = open_local(&path).unwrap();
        let flags = OFlag::from_bits_retain(fcntl(&f, FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NONBLOCK));
    }
}
