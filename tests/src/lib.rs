//! Helpers for the musicfs end-to-end tests: where the binary is, the
//! generated corpus and its manifest, a per-test daemon environment, a
//! [`Mount`] guard that always unmounts, bounded waits, and the real tools
//! (ffprobe, mutagen, cmp, sha256sum) the tests read the mount with.
//!
//! Every test gets its own tempdir, catalog, socket and log, and its own
//! XDG directories, so nothing touches the user's real config.

pub mod corpus;
pub mod daemon;
pub mod faultproxy;
pub mod fsutil;
pub mod remote;
pub mod servers;
pub mod tools;

pub use corpus::{corpus, Corpus, CorpusFile, Kind};
pub use daemon::{Env, Mount};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `musicfs` binary under test: `$MUSICFS_BIN`, else
/// `$CARGO_TARGET_DIR/debug/musicfs`, else `<repo>/target/debug/musicfs`.
/// Panics with a clear message when it has not been built: a missing binary
/// is a failure, not a reason to skip.
pub fn musicfs_bin() -> PathBuf {
    let bin = match std::env::var_os("MUSICFS_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            let target = if target.is_relative() {
                repo_root().join(target)
            } else {
                target
            };
            target.join("debug").join("musicfs")
        }
    };
    assert!(
        bin.is_file(),
        "the musicfs binary is not at {} — build it first (`cargo build -p musicfs-control`) or set MUSICFS_BIN",
        bin.display()
    );
    bin
}

/// Why FUSE tests cannot run here, if they cannot: no `/dev/fuse` or no
/// `fusermount3`. Nothing else is a reason to skip.
pub fn fuse_skip_reason() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent (no FUSE in this kernel or container)".into());
    }
    if tools::which("fusermount3").is_none() {
        return Some("fusermount3 is not installed (run scripts/setup.sh)".into());
    }
    None
}

/// Writes a line to the real stderr, past the test harness's capture, so
/// skips and measurements show in `cargo test` output even when tests pass.
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Returns early from a test, saying so loudly, when FUSE is truly absent.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if let Some(reason) = $crate::fuse_skip_reason() {
            $crate::note(&format!("SKIPPED {}: {}", module_path!(), reason));
            return;
        }
    };
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after
/// `timeout` saying what was awaited.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`wait_for`] for a condition.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    wait_for(what, timeout, || check().then_some(()))
}

/// Deterministic noise (xorshift64*), different for every seed: file
/// contents the origin tests can compare reads with.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
