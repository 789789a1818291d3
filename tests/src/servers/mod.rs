//! Real servers on loopback for the remote-origin tests, started by the
//! tests themselves and stopped when their guard drops: OpenSSH's sshd
//! ([`sshd`]), SeaweedFS's S3 gateway ([`s3`]), rclone's WebDAV server
//! ([`webdav`]). Each serves a directory the test fills.

pub mod s3;
pub mod sshd;
pub mod webdav;

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Waits until something accepts connections on `127.0.0.1:port`.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Kills a server started in a process group of its own
/// (`process_group(0)`): SIGKILL to the whole group, then reaps it.
pub(crate) fn kill_group(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        // SAFETY: kill(2) on the process group this helper created; no
        // memory is involved.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// The last 40 lines of a server's log, for failure messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
