//! One test's musicfs environment (tempdir, catalog, socket, log, XDG
//! dirs, mountpoint), running the CLI with bounded time, and the [`Mount`]
//! guard that unmounts even when the test panics.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any single CLI command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a background scan of the small corpus may take.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub catalog: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub mnt: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("musicfs-e2e.")
            .tempdir()
            .expect("create test tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("create mountpoint");
        Env {
            catalog: dir.path().join("catalog.db"),
            socket: dir.path().join("control.sock"),
            log: dir.path().join("musicfs.log"),
            mnt,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `musicfs --catalog … --socket … --log-file …` with XDG dirs inside
    /// the tempdir and no inherited `MUSICFS_*` variables.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(crate::musicfs_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MUSICFS_") {
                cmd.env_remove(key);
            }
        }
        let xdg = self.path().join("xdg");
        for (var, sub) in [
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ] {
            cmd.env(var, xdg.join(sub));
        }
        cmd.arg("--catalog")
            .arg(&self.catalog)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--log-file")
            .arg(&self.log)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `musicfs <args>` to completion (bounded by [`COMMAND_TIMEOUT`]).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        run_bounded(cmd, COMMAND_TIMEOUT)
    }

    /// Runs `musicfs <args>` and panics unless it exits 0.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "musicfs {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        out
    }

    /// `musicfs mount SOURCE MNT <extra>`; panics unless it exits 0.
    pub fn mount(&self, source: &Path, extra: &[&str]) -> Mount<'_> {
        let mut args = vec![
            "mount",
            source.to_str().expect("UTF-8 source"),
            self.mnt.to_str().expect("UTF-8 mountpoint"),
        ];
        args.extend_from_slice(extra);
        self.mount_with(&args)
    }

    /// Runs `musicfs ARGS` (a `mount` command line); panics unless it
    /// exits 0 and the mountpoint is mounted.
    pub fn mount_with(&self, args: &[&str]) -> Mount<'_> {
        // The guard comes first: a failed mount is still cleaned up on drop.
        let mut mount = Mount {
            env: self,
            elapsed: Duration::ZERO,
            pid: None,
        };
        let start = Instant::now();
        self.run_ok(args);
        mount.elapsed = start.elapsed();
        assert!(
            is_mounted(&self.mnt),
            "`musicfs mount` returned 0 but {} is not in /proc/self/mountinfo",
            self.mnt.display()
        );
        mount.pid = self
            .status()
            .get("pid")
            .and_then(Value::as_i64)
            .map(|p| p as i32);
        mount
    }

    /// `musicfs status --json`, parsed; panics if the daemon does not answer.
    pub fn status(&self) -> Value {
        let out = self.run_ok(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Waits until the daemon has finished at least `n` scans and is not scanning.
    pub fn wait_scans(&self, n: u64) -> Value {
        crate::wait_for("the background scan to finish", SCAN_TIMEOUT, || {
            let s = self.status();
            let done = s["scans_completed"].as_u64().unwrap_or(0) >= n
                && !s["scanning"].as_bool().unwrap_or(true);
            done.then_some(s)
        })
    }

    /// The last lines of the daemon log, for failure messages.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(40);
                format!(
                    "--- daemon log {} (last {} lines) ---\n{}",
                    self.log.display(),
                    lines.len() - from,
                    lines[from..].join("\n")
                )
            }
            Err(e) => format!("--- no daemon log at {}: {e}", self.log.display()),
        }
    }
}

/// A mounted musicfs. Dropping it unmounts (`fusermount3 -u`, then lazily)
/// and makes sure the daemon is gone, even when the test is panicking.
pub struct Mount<'a> {
    pub env: &'a Env,
    /// How long `musicfs mount` took to return.
    pub elapsed: Duration,
    /// The daemon's pid as `status --json` reported it.
    pub pid: Option<i32>,
}

impl Mount<'_> {
    pub fn root(&self) -> &Path {
        &self.env.mnt
    }

    /// Waits (bounded) for the daemon process to exit.
    pub fn wait_daemon_exit(&self, timeout: Duration) {
        if let Some(pid) = self.pid {
            crate::wait_until(&format!("daemon pid {pid} to exit"), timeout, || {
                !process_alive(pid)
            });
        }
    }
}

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.env.log_tail());
        }
        let mnt = &self.env.mnt;
        if is_mounted(mnt) {
            let ok = Command::new("fusermount3")
                .arg("-u")
                .arg(mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("fusermount3").arg("-uz").arg(mnt).status();
            }
        }
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if process_alive(pid) {
                eprintln!("daemon pid {pid} still alive 10 s after unmount; killing it");
                // SAFETY: kill(2) on a pid this test's mount started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Whether `path` is a mountpoint in this mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `pid` is a live (not zombie) process.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Runs `cmd` to completion, killing it and panicking after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for {desc}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on the child this function spawned.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!(
                "{desc} did not finish within {timeout:?} (if it detached a daemon: \
                 does the daemon still hold the caller's stdout/stderr open?)"
            );
        }
    }
}
