//! Random 64 KiB reads at queue depth 1 and 32: `UringBlockDevice`
//! (read_at / read_batch of 32) against plain O_DIRECT `pread` from 1 and
//! 32 threads, on the same image or device, side by side in one run.
//!
//! ```text
//! bench_device [PATH] [--size BYTES] [--secs S] [--rounds R] [--compare OTHER]
//! ```
//! Without PATH a temporary image of `--size` (default 256 MiB) is made and
//! filled (holes would be read without touching the disk). `--compare
//! OTHER` also runs the io_uring reads on OTHER (e.g. `/dev/ublkb0` vs its
//! backing image) and prints the ratio. Only reads: safe on a live store.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use musicfs_blockcache::{AlignedBuf, BlockDevice, ReadReq, UringBlockDevice};

const IO: usize = 64 << 10;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn offset(&mut self, size: u64) -> u64 {
        (self.next() % (size / IO as u64)) * IO as u64
    }
}

/// Bytes per second of `f` run repeatedly for `secs`; `f` returns bytes.
fn measure(secs: f64, mut f: impl FnMut() -> Result<u64, String>) -> Result<f64, String> {
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let mut bytes = 0u64;
    while start.elapsed() < limit {
        bytes += f()?;
    }
    Ok(bytes as f64 / start.elapsed().as_secs_f64())
}

fn uring_qd(dev: &UringBlockDevice, qd: usize, secs: f64) -> Result<f64, String> {
    let size = dev.size();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut reqs: Vec<ReadReq> = (0..qd)
        .map(|_| ReadReq {
            offset: 0,
            buf: AlignedBuf::zeroed(IO),
        })
        .collect();
    measure(secs, || {
        for r in reqs.iter_mut() {
            r.offset = rng.offset(size);
        }
        if qd == 1 {
            let r = &mut reqs[0];
            dev.read_at(&mut r.buf, r.offset)
                .map_err(|e| e.to_string())?;
        } else {
            dev.read_batch(&mut reqs).map_err(|e| e.to_string())?;
        }
        Ok((qd * IO) as u64)
    })
}

fn pread_threads(file: &File, size: u64, threads: usize, secs: f64) -> Result<f64, String> {
    let start = Instant::now();
    let total: Result<u64, String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<u64, String> {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                    let mut buf = AlignedBuf::zeroed(IO);
                    let mut bytes = 0u64;
                    let limit = Duration::from_secs_f64(secs);
                    while start.elapsed() < limit {
                        file.read_exact_at(buf.as_mut_slice(), rng.offset(size))
                            .map_err(|e| format!("pread: {e}"))?;
                        bytes += IO as u64;
                    }
                    Ok(bytes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "pread thread panicked".to_string())?)
            .sum()
    });
    Ok(total? as f64 / start.elapsed().as_secs_f64())
}

fn open_direct(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn fill(dev: &UringBlockDevice) -> Result<(), String> {
    let chunk = 1 << 20;
    let mut buf = AlignedBuf::zeroed(chunk);
    let mut rng = Rng(42);
    for b in buf.as_mut_slice().chunks_mut(8) {
        b.copy_from_slice(&rng.next().to_le_bytes());
    }
    let mut off = 0;
    while off + chunk as u64 <= dev.size() {
        dev.write_at(&buf, off).map_err(|e| e.to_string())?;
        off += chunk as u64;
    }
    dev.flush().map_err(|e| e.to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mbs(x: f64) -> String {
    format!("{:8.1} MB/s {:7.0} IOPS", x / 1e6, x / IO as f64)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut path, mut size, mut secs, mut compare) = (None, 256u64 << 20, 4.0f64, None);
    let mut rounds = 8usize;
    while let Some(a) = args.next() {
        let mut val = |n: &str| args.next().ok_or(format!("{n} needs a value"));
        match a.as_str() {
            "--size" => size = val("--size")?.parse().map_err(|e| format!("--size: {e}"))?,
            "--secs" => secs = val("--secs")?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--rounds" => {
                rounds = val("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--compare" => compare = Some(PathBuf::from(val("--compare")?)),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => path = Some(PathBuf::from(s)),
        }
    }
    let _tmp;
    let path = match path {
        Some(p) => p,
        None => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let p = dir.path().join("bench.img");
            _tmp = dir;
            let dev = UringBlockDevice::open(&p, Some(size)).map_err(|e| e.to_string())?;
            eprintln!("bench_device: filling {} MiB image", size >> 20);
            fill(&dev)?;
            p
        }
    };
    let dev = UringBlockDevice::open(&path, None).map_err(|e| e.to_string())?;
    let file = open_direct(&path)?;
    let size = dev.size();
    println!(
        "random 64 KiB reads on {} ({} MiB), {secs} s per line in {rounds} alternating rounds",
        path.display(),
        size >> 20
    );
    for qd in [1usize, 32] {
        // Short alternating rounds and medians: the disks these machines
        // have are shared and noisy; side by side in time is fairer.
        let (mut us, mut ps, mut ratios) = (vec![], vec![], vec![]);
        for r in 0..rounds {
            let (u, p) = if r % 2 == 0 {
                let u = uring_qd(&dev, qd, secs / rounds as f64)?;
                (u, pread_threads(&file, size, qd, secs / rounds as f64)?)
            } else {
                let p = pread_threads(&file, size, qd, secs / rounds as f64)?;
                (uring_qd(&dev, qd, secs / rounds as f64)?, p)
            };
            us.push(u);
            ps.push(p);
            ratios.push(u / p);
        }
        println!(
            "QD{qd:<2}  io_uring {}   pread x{qd:<2} {}   ratio {:.2} (median of {rounds})",
            mbs(median(&mut us)),
            mbs(median(&mut ps)),
            median(&mut ratios)
        );
    }
    if let Some(other) = compare {
        let odev = UringBlockDevice::open(&other, None).map_err(|e| e.to_string())?;
        println!(
            "io_uring random 64 KiB reads: {} vs {}",
            path.display(),
            other.display()
        );
        for qd in [1usize, 32] {
            let a = uring_qd(&dev, qd, secs)?;
            let b = uring_qd(&odev, qd, secs)?;
            println!(
                "QD{qd:<2}  {} {}   {} {}   ratio {:.2}",
                path.display(),
                mbs(a),
                other.display(),
                mbs(b),
                a / b
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAIL bench_device: {e}");
            ExitCode::FAILURE
        }
    }
}
