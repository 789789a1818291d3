//! The chunk-store suite on any block device or image: used by
//! scripts/vmtest.sh on `/dev/ublkbN`, runnable by hand on an image file.
//!
//! ```text
//! store_suite DEVICE full [N]          format, put, get, dedup, reopen, verify
//! store_suite DEVICE format            format only
//! store_suite DEVICE write SEED N      put chunks 0..N of SEED, printing
//!                                      `ACK i` once chunk i is durable
//! store_suite DEVICE check SEED N [ACKS]
//!                                      reopen, `verify` clean, every present
//!                                      chunk byte-exact, every chunk acked
//!                                      in file ACKS present
//! ```
//! Chunk `i` of seed `s` is a deterministic pseudo-random buffer, so the
//! checker knows every expected byte without any state from the writer.
//! Exits 0 on success, 1 on any mismatch or error (with a `FAIL` line).
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use musicfs_blockcache::{
    open_best, BlockDevice, ChunkId, ChunkStore, FormatOptions, StoreOptions,
};

type Res<T> = Result<T, String>;

/// Chunk `i` of seed `seed`: 16 KiB to 144 KiB of xorshift bytes.
fn chunk(seed: u64, i: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03))
        | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = (16 << 10) + (next() % (128 << 10)) as usize;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&next().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn open_dev(path: &Path) -> Res<Arc<dyn BlockDevice>> {
    let dev = open_best(path, None).map_err(|e| format!("open {}: {e}", path.display()))?;
    Ok(Arc::from(dev))
}

fn open_store(path: &Path) -> Res<ChunkStore> {
    ChunkStore::open(open_dev(path)?, StoreOptions::default())
        .map_err(|e| format!("open store: {e}"))
}

fn format(path: &Path) -> Res<()> {
    let dev = open_dev(path)?;
    ChunkStore::format(&*dev, &FormatOptions::default()).map_err(|e| format!("format: {e}"))?;
    println!("formatted {}", dev.describe());
    Ok(())
}

fn write(path: &Path, seed: u64, n: u64) -> Res<()> {
    let store = open_store(path)?;
    let out = std::io::stdout();
    for i in 0..n {
        let data = chunk(seed, i);
        let id = store.put(&data).map_err(|e| format!("put {i}: {e}"))?;
        if id != ChunkId::of(&data) {
            return Err(format!("put {i}: id {id:?} is not the hash of the data"));
        }
        // `put` returned: the chunk is durable. Say so at once, so a
        // kill of the server right after still counts it.
        let mut o = out.lock();
        let _ = writeln!(o, "ACK {i}");
        let _ = o.flush();
    }
    Ok(())
}

fn check(path: &Path, seed: u64, n: u64, acks: Option<&Path>) -> Res<()> {
    let acked: HashSet<u64> = match acks {
        None => HashSet::new(),
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .lines()
            .filter_map(|l| l.strip_prefix("ACK ")?.trim().parse().ok())
            .collect(),
    };
    let store = open_store(path)?;
    let report = store.verify().map_err(|e| format!("verify: {e}"))?;
    if !report.is_clean() {
        return Err(format!("verify not clean: {report:?}"));
    }
    let (mut present, mut missing) = (0u64, 0u64);
    for i in 0..n {
        let data = chunk(seed, i);
        match store
            .get(ChunkId::of(&data))
            .map_err(|e| format!("get {i}: {e}"))?
        {
            Some(got) if got == data => present += 1,
            Some(_) => return Err(format!("chunk {i}: wrong bytes served")),
            None if acked.contains(&i) => {
                return Err(format!("chunk {i}: acknowledged but missing"))
            }
            None => missing += 1,
        }
    }
    let stats = store.stats();
    if stats.corrupt_chunks != 0 {
        return Err(format!("{} corrupt chunks found", stats.corrupt_chunks));
    }
    println!(
        "checked {n} chunks: {present} present, {missing} missing (unacknowledged), {} acknowledged; verify clean",
        acked.len()
    );
    Ok(())
}

fn full(path: &Path, n: u64) -> Res<()> {
    format(path)?;
    let seed = 7;
    {
        let store = open_store(path)?;
        // Singles and one group-committed batch.
        for i in 0..n / 2 {
            store
                .put(&chunk(seed, i))
                .map_err(|e| format!("put {i}: {e}"))?;
        }
        let rest: Vec<Vec<u8>> = (n / 2..n).map(|i| chunk(seed, i)).collect();
        let refs: Vec<&[u8]> = rest.iter().map(|v| v.as_slice()).collect();
        store
            .put_batch(&refs)
            .map_err(|e| format!("put_batch: {e}"))?;
        // Dedup: the same chunks again take no space.
        let before = store.stats();
        for i in 0..n / 4 {
            store
                .put(&chunk(seed, i))
                .map_err(|e| format!("re-put {i}: {e}"))?;
        }
        let after = store.stats();
        if after.used_bytes != before.used_bytes || after.chunks != before.chunks {
            return Err(format!("dedup: space grew from {before:?} to {after:?}"));
        }
        if after.dedup_ratio() <= 1.0 {
            return Err(format!(
                "dedup ratio {} after storing chunks twice",
                after.dedup_ratio()
            ));
        }
        // Batch read back.
        let ids: Vec<ChunkId> = (0..n).map(|i| ChunkId::of(&chunk(seed, i))).collect();
        let got = store.get_many(&ids).map_err(|e| format!("get_many: {e}"))?;
        for (i, g) in got.iter().enumerate() {
            if g.as_deref() != Some(chunk(seed, i as u64).as_slice()) {
                return Err(format!("get_many: chunk {i} wrong or missing"));
            }
        }
        store.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
        println!(
            "stored {n} chunks: {} bytes used, dedup ratio {:.2}",
            after.used_bytes,
            after.dedup_ratio()
        );
    }
    // Reopen (recovery path) and check every byte.
    let all = std::env::temp_dir().join(format!("store_suite_acks_{}", std::process::id()));
    let acks: String = (0..n).map(|i| format!("ACK {i}\n")).collect();
    std::fs::write(&all, acks).map_err(|e| format!("{}: {e}", all.display()))?;
    let r = check(path, seed, n, Some(&all));
    let _ = std::fs::remove_file(&all);
    r
}

fn run(args: &[String]) -> Res<()> {
    let num = |i: usize, name: &str| -> Res<u64> {
        args.get(i)
            .ok_or(format!("missing {name}"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))
    };
    let path = Path::new(
        args.first()
            .ok_or("usage: store_suite DEVICE full|format|write|check ...")?,
    );
    match args.get(1).map(String::as_str) {
        Some("full") => full(path, if args.len() > 2 { num(2, "N")? } else { 64 }),
        Some("format") => format(path),
        Some("write") => write(path, num(2, "SEED")?, num(3, "N")?),
        Some("check") => check(
            path,
            num(2, "SEED")?,
            num(3, "N")?,
            args.get(4).map(Path::new),
        ),
        other => Err(format!("unknown mode {other:?}")),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAIL store_suite {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}
