//! Serves a ublk block device over a backing file or partition until
//! SIGTERM or SIGINT, then deletes it. Used by scripts/vmtest.sh.
//!
//! ```text
//! ublk_serve BACKING [--id N] [--queues Q] [--depth D] [--size BYTES]
//! ```
//! `--size` creates (or extends) BACKING as a sparse file of that size.
//! `--id N` first deletes a device N left behind by a killed server.
//! Prints `READY /dev/ublkbN` on stdout once the device is usable.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use musicfs_blockcache::{UblkOptions, UblkServer};

struct Args {
    backing: PathBuf,
    opts: UblkOptions,
    size: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut backing = None;
    let mut opts = UblkOptions::default();
    let mut size = None;
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--id" => opts.id = Some(val("--id")?.parse().map_err(|e| format!("--id: {e}"))?),
            "--queues" => {
                opts.queues = val("--queues")?
                    .parse()
                    .map_err(|e| format!("--queues: {e}"))?
            }
            "--depth" => {
                opts.depth = val("--depth")?
                    .parse()
                    .map_err(|e| format!("--depth: {e}"))?
            }
            "--size" => size = Some(val("--size")?.parse().map_err(|e| format!("--size: {e}"))?),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => backing = Some(PathBuf::from(s)),
        }
    }
    let backing = backing
        .ok_or("usage: ublk_serve BACKING [--id N] [--queues Q] [--depth D] [--size BYTES]")?;
    Ok(Args {
        backing,
        opts,
        size,
    })
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it spawns
/// after), so that `wait_for_signal` can take them synchronously.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it,
    // and pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by block_signals; `sig` is a valid out
    // pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ublk_serve: {e}");
            return ExitCode::from(2);
        }
    };
    let set = block_signals();
    if let Some(size) = args.size {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&args.backing)
            .and_then(|f| {
                if f.metadata()?.len() < size {
                    f.set_len(size)?;
                }
                Ok(f)
            });
        if let Err(e) = f {
            eprintln!("ublk_serve: {}: {e}", args.backing.display());
            return ExitCode::FAILURE;
        }
    }
    let server = match UblkServer::start_with(&args.backing, &args.opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ublk_serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("READY {}", server.device_path().display());
    let _ = std::io::stdout().flush();
    let sig = wait_for_signal(&set);
    eprintln!(
        "ublk_serve: signal {sig}, removing {}",
        server.device_path().display()
    );
    match server.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ublk_serve: {e}");
            ExitCode::FAILURE
        }
    }
}
