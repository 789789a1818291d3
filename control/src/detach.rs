//! Starting the daemon in the background.
//!
//! `musicfs mount` (without `--foreground`) re-executes itself with the same
//! arguments plus `--foreground --ready-fd N`, in a new session, stdin from
//! /dev/null and stdout/stderr appended to the log file. The child writes
//! one line on fd N once it is mounted and its socket listens (`ok`), or
//! why it failed (`error CODE MESSAGE`); the parent waits for that line, so
//! `mount` returns as soon as the filesystem is usable and reports failures
//! with the right exit code.
use crate::error::{Error, Result};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the parent waits for the daemon to mount before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The child's end of the readiness pipe.
pub struct Ready {
    pipe: Option<File>,
}

impl Ready {
    /// Takes ownership of the inherited fd `fd`. Fails if it is not open.
    pub fn from_fd(fd: i32) -> Result<Ready> {
        // SAFETY: F_GETFD only reads the descriptor's flags; a bad fd gives EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Usage(format!("--ready-fd {fd}: {e}")));
        }
        // SAFETY: the fd is open (checked above) and was created for this
        // process alone by the parent `musicfs mount`; nothing else in this
        // process refers to it, so owning and later closing it is sound.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Keep it out of processes we start ourselves (fusermount3).
        let _ = nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        Ok(Ready {
            pipe: Some(File::from(owned)),
        })
    }

    /// Mounted and listening.
    pub fn ok(&mut self) {
        self.send("ok\n");
    }

    /// Could not start; `code` is the exit code the parent should use.
    pub fn fail(&mut self, code: i32, message: &str) {
        let one_line = message.replace('\n', " ");
        self.send(&format!("error {code} {one_line}\n"));
    }

    fn send(&mut self, line: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            // The parent may be gone (killed); the daemon runs on regardless.
            let _ = pipe.write_all(line.as_bytes());
        }
    }
}

/// The child's arguments: ours plus `--foreground --ready-fd FD`, placed
/// before a `--` (after which they would be taken as positionals).
fn child_args(args: &[OsString], fd: i32) -> Vec<OsString> {
    let extra = [
        OsString::from("--foreground"),
        OsString::from("--ready-fd"),
        OsString::from(fd.to_string()),
    ];
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut out = args[..at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&args[at..]);
    out
}

/// Starts the daemon detached and waits until it is mounted. Returns its pid.
/// `args` are this process's arguments without the program name.
pub fn spawn_detached(args: &[OsString], log_file: &Path) -> Result<u32> {
    if let Some(dir) = log_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create log directory {}", dir.display()), e))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .map_err(|e| Error::io(format!("open log file {}", log_file.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io(format!("open log file {}", log_file.display()), e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("find the musicfs executable", e))?;

    // Both ends are created without CLOEXEC; the read end gets it at once so
    // only the write end reaches the child.
    let (read_end, write_end) =
        nix::unistd::pipe().map_err(|e| Error::io("create readiness pipe", e.into()))?;
    nix::fcntl::fcntl(
        &read_end,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| Error::io("set up readiness pipe", e.into()))?;

    let mut cmd = Command::new(&exe);
    cmd.args(child_args(args, write_end.as_raw_fd()))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent; it detaches the daemon from our terminal and process group.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("start {}", exe.display()), e))?;
    // Our copy of the write end must go, or EOF never comes if the child dies.
    drop(write_end);

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut pipe = File::from(read_end);
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            return Err(Error::Daemon(format!(
                "the daemon (pid {}) did not report within {} s; see {}",
                child.id(),
                READY_TIMEOUT.as_secs(),
                log_file.display()
            )))
        }
    };
    let line = line.trim();
    if line == "ok" {
        return Ok(child.id());
    }
    if let Some(rest) = line.strip_prefix("error ") {
        let (code, message) = rest.split_once(' ').unwrap_or(("1", rest));
        let _ = child.wait();
        return Err(if code == "2" {
            Error::Usage(message.to_string())
        } else {
            Error::Daemon(message.to_string())
        });
    }
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    Err(Error::Daemon(format!(
        "the daemon exited before mounting ({status}); see {}",
        log_file.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn readiness_flags_go_before_a_double_dash() {
        assert_eq!(
            child_args(&os(&["mount", "/a", "/b"]), 7),
            os(&["mount", "/a", "/b", "--foreground", "--ready-fd", "7"])
        );
        assert_eq!(
            child_args(&os(&["mount", "--", "/a", "/b"]), 7),
            os(&["mount", "--foreground", "--ready-fd", "7", "--", "/a", "/b"])
        );
    }

    #[test]
    fn child_args_parse_as_a_foreground_mount() {
        use clap::Parser;
        let args = child_args(&os(&["--socket", "/s", "mount", "--", "/a", "/b"]), 9);
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once(OsString::from("musicfs")).chain(args))
                .expect("parse");
        let crate::cli::Command::Mount(m) = cli.command else {
            panic!("not a mount")
        };
        assert!(m.foreground);
        assert_eq!(m.ready_fd, Some(9));
        assert_eq!(m.source_and_mountpoint(), (Some("/a".into()), "/b".into()));
    }
}
