//! The overlay read benchmark: a file served with a synthesized tag header
//! (read through the daemon: header from memory, body by pread of the
//! original) against the same original read natively, side by side in one
//! run.
//!
//! ```text
//! cargo run --release -p musicfs-tests --example bench_overlay -- [--mb M] [--rounds R] [--dir D]
//! ```
//! (`scripts/bench-overlay.sh` builds the release `musicfs` and runs this.)
//!
//! The library: one FLAC and one MP3 of about M MB each (default 30; white
//! noise, so FLAC does not compress it; tagged by ffmpeg), generated once
//! under D (default /tmp/musicfs-bench-overlay) and reused. musicfs mounts
//! it, `musicfs tag set` edits title, artist and genre of both, and then
//! per round, page cache dropped before every read: the original read
//! natively, then the edited file read through the mount, each whole with
//! 128 KiB reads. Medians of R rounds (default 5) and their ratio.
//!
//! It never asserts on times. It exits non-zero only when something failed
//! to run, or the bytes read are not what the mount says. Needs root (to
//! drop the page cache).
use musicfs_tests::daemon::Env;
use musicfs_tests::tools;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const READ_SIZE: usize = 128 * 1024;

struct Args {
    mb: u64,
    rounds: usize,
    dir: PathBuf,
}

fn fail(msg: &str) -> ! {
    eprintln!("bench_overlay: {msg}");
    std::process::exit(1);
}

fn parse_args() -> Args {
    let mut args = Args {
        mb: 30,
        rounds: 5,
        dir: PathBuf::from("/tmp/musicfs-bench-overlay"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--mb" => args.mb = value().parse().unwrap_or_else(|_| fail("--mb: a number")),
            "--rounds" => {
                args.rounds = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--rounds: a number"))
            }
            "--dir" => args.dir = PathBuf::from(value()),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    args
}

/// `lib/bench.flac` and `lib/bench.mp3` of about `mb` MB under `dir`.
fn library(args: &Args) -> (PathBuf, Vec<PathBuf>) {
    let lib = args.dir.join(format!("lib-{}mb", args.mb));
    fs::create_dir_all(&lib).unwrap_or_else(|e| fail(&format!("mkdir {}: {e}", lib.display())));
    // FLAC of 16-bit noise (mono, as two equal channels): ~88 KB/s; MP3 at
    // 320 kbps: 40 KB/s.
    let specs = [
        (
            "bench.flac",
            args.mb as f64 * 1e6 / 88_200.0,
            &["-c:a", "flac", "-sample_fmt", "s16"][..],
        ),
        (
            "bench.mp3",
            args.mb as f64 * 1e6 / 40_000.0,
            &["-c:a", "libmp3lame", "-b:a", "320k"][..],
        ),
    ];
    let mut files = Vec::new();
    for (i, (name, seconds, codec)) in specs.iter().enumerate() {
        let path = lib.join(name);
        if !path.is_file() {
            let partial = lib.join(format!(
                "{name}.partial.{}",
                name.rsplit('.').next().unwrap()
            ));
            let st = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
                .arg(format!("anoisesrc=d={seconds:.0}:c=white:a=1:r=44100"))
                .args(["-ac", "2"])
                .args(*codec)
                .args([
                    "-metadata",
                    "title=Bench Title",
                    "-metadata",
                    "artist=Bench Artist",
                ])
                .args(["-metadata", "album=Bench Album", "-metadata"])
                .arg(format!("track={}", i + 1))
                .arg(&partial)
                .status()
                .unwrap_or_else(|e| fail(&format!("run ffmpeg: {e}")));
            if !st.success() {
                fail(&format!("ffmpeg could not make {}", path.display()));
            }
            fs::rename(&partial, &path).unwrap_or_else(|e| fail(&format!("rename: {e}")));
        }
        files.push(path);
    }
    (lib, files)
}

fn drop_caches() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3")
        .unwrap_or_else(|e| fail(&format!("cannot drop the page cache (run as root): {e}")));
}

/// Reads `path` whole, page cache dropped first: (bytes, MB/s).
fn timed_read(path: &Path) -> (u64, f64) {
    drop_caches();
    let start = Instant::now();
    let mut f =
        fs::File::open(path).unwrap_or_else(|e| fail(&format!("open {}: {e}", path.display())));
    let mut buf = vec![0u8; READ_SIZE];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| fail(&format!("read {}: {e}", path.display())));
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    (total, total as f64 / 1e6 / secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The mounted path of `origin`, found by `musicfs tag show` is not
/// possible before we know the path: walk the mount for the same bytes.
fn mounted(root: &Path, origin: &Path) -> PathBuf {
    let want = tools::sha256sum(origin);
    musicfs_tests::fsutil::files(root)
        .into_values()
        .find(|f| {
            f.meta.len() == fs::metadata(origin).unwrap().len() && tools::sha256sum(&f.path) == want
        })
        .map(|f| f.path)
        .unwrap_or_else(|| fail(&format!("{} is not served", origin.display())))
}

fn main() {
    let args = parse_args();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let (lib, files) = library(&args);
    println!("musicfs: {}", musicfs_tests::musicfs_bin().display());
    println!("library: {}", lib.display());
    let env = Env::new();
    let m = env.mount(&lib, &[]);
    env.wait_scans(1);
    let mut rows = Vec::new();
    for origin in &files {
        let before = mounted(m.root(), origin);
        let out = env.run_ok(&[
            "tag",
            "set",
            before.to_str().unwrap(),
            "title=Edited Bench Title",
            "artist=Edited Bench Artist",
            "genre=Benchmark",
        ]);
        let edited = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("  ").map(PathBuf::from))
            .unwrap_or_else(|| fail("tag set printed no path"));
        let served_size = fs::metadata(&edited).unwrap().len();
        let origin_size = fs::metadata(origin).unwrap().len();
        let (mut native, mut synth) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            let (n, mbps) = timed_read(origin);
            assert_eq!(n, origin_size, "native read of {}", origin.display());
            native.push(mbps);
            let (n, mbps) = timed_read(&edited);
            if n != served_size {
                fail(&format!(
                    "read {n} bytes of {}, the mount says {served_size}",
                    edited.display()
                ));
            }
            synth.push(mbps);
        }
        let format = origin.extension().unwrap().to_string_lossy().to_uppercase();
        rows.push((
            format,
            origin_size,
            served_size,
            median(native),
            median(synth),
        ));
    }
    let status = env.status();
    drop(m);
    println!(
        "\n| file | original | served | native MB/s | synthesized MB/s | synthesized ÷ native |"
    );
    println!("|---|---|---|---|---|---|");
    for (format, origin_size, served_size, native, synth) in &rows {
        println!(
            "| {format} | {:.1} MB | {:.1} MB (+{} B) | {native:.0} | {synth:.0} | {:.2} |",
            *origin_size as f64 / 1e6,
            *served_size as f64 / 1e6,
            *served_size as i64 - *origin_size as i64,
            synth / native
        );
    }
    println!(
        "\nmedians of {} rounds, page cache dropped before every read, {} KiB reads; \
         daemon_opens={} passthrough_opens={}",
        args.rounds,
        READ_SIZE / 1024,
        status["daemon_opens"],
        status["passthrough_opens"]
    );
    println!("command: {command_line}");
}
