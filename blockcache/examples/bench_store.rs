//! Chunk store benchmark; prints every ratio in one run.
//!
//! ```text
//! cargo run --release -p musicfs-blockcache --example bench_store -- [IMAGE_OR_DEVICE] [SIZE_MIB]
//! ```
//! IMAGE_OR_DEVICE defaults to a fresh image under /var/tmp (deleted at the
//! end); a block device such as /dev/ublkb0 is formatted (destroying it).
//!
//! 1. FastCDC v2020 + xxh3-128 throughput on one core.
//! 2. Random 64 KiB chunk reads through the store ÷ plain O_DIRECT reads of
//!    the same extents, at queue depth 1 and 32 (a batch of 32 per call).
//! 3. Reassembling a 30 MB file from its recipe ÷ a sequential O_DIRECT
//!    read of the same number of bytes from the device.
use musicfs_blockcache::{
    cut_points, open_best, AlignedBuf, BlockDevice, CdcParams, ChunkId, ChunkStore, FormatOptions,
    ReadReq, StoreOptions,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 << 10;
const SLICE: Duration = Duration::from_millis(250);
const SLICES: usize = 12;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let temp;
    let path = match args.first() {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            temp = tempfile::Builder::new()
                .prefix("bench-store")
                .suffix(".img")
                .tempfile_in("/var/tmp")?;
            temp.path().to_path_buf()
        }
    };
    let size_mib: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1024);

    cdc_throughput()?;

    let dev: Arc<dyn BlockDevice> = Arc::from(open_best(&path, Some(size_mib << 20))?);
    println!("device: {}", dev.describe());
    ChunkStore::format(&*dev, &FormatOptions::default())?;
    let store = ChunkStore::open(dev.clone(), StoreOptions::default())?;

    // 256 MiB of distinct 64 KiB chunks, put in batches.
    let mut rng = Rng::new(1);
    let n = ((size_mib << 20) / 4 / CHUNK as u64).min(4096) as usize;
    let mut ids = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..n / 32 {
        let batch: Vec<Vec<u8>> = (0..32).map(|_| rng.bytes(CHUNK)).collect();
        let refs: Vec<&[u8]> = batch.iter().map(|c| c.as_slice()).collect();
        ids.extend(store.put_batch(&refs)?);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "put {} x 64 KiB in batches of 32: {:.0} MB/s",
        ids.len(),
        ids.len() as f64 * CHUNK as f64 / secs / 1e6
    );
    let extents: Vec<u64> = ids
        .iter()
        .map(|id| {
            store
                .locate(*id)
                .map(|(off, _)| off)
                .ok_or("chunk vanished")
        })
        .collect::<Result<_, _>>()?;

    for qd in [1usize, 32] {
        let store_read = |rng: &mut Rng| {
            let pick: Vec<ChunkId> = (0..qd)
                .map(|_| ids[rng.below(ids.len() as u64) as usize])
                .collect();
            // The read path's way in: verified chunks handed over in place.
            let mut bytes = 0usize;
            let all = store.read_verified(&pick, |_, data| bytes += data.len())?;
            assert!(all && bytes == qd * CHUNK);
            Ok(())
        };
        let raw_read = |rng: &mut Rng| {
            let mut reqs: Vec<ReadReq> = (0..qd)
                .map(|_| ReadReq {
                    offset: extents[rng.below(extents.len() as u64) as usize],
                    buf: AlignedBuf::zeroed(CHUNK),
                })
                .collect();
            dev.read_batch(&mut reqs)
        };
        let (store_rate, raw_rate) = interleaved(store_read, raw_read)?;
        let (store_rate, raw_rate) = (store_rate * qd as f64, raw_rate * qd as f64);
        println!(
            "random 64 KiB reads, QD{qd:<2}: store {:>8.0}/s ({:>5.0} MB/s), raw O_DIRECT {:>8.0}/s ({:>5.0} MB/s), ratio {:.2}",
            store_rate,
            store_rate * CHUNK as f64 / 1e6,
            raw_rate,
            raw_rate * CHUNK as f64 / 1e6,
            store_rate / raw_rate
        );
    }

    let file = Rng::new(2).bytes(30 << 20);
    let recipe = store.put_stream(&file[..], &CdcParams::default())?;
    let first = store
        .locate(recipe.chunks[0].id)
        .ok_or("recipe chunk vanished")?
        .0;
    let back = store
        .read_recipe(&recipe, 0, u64::MAX)?
        .ok_or("recipe chunk missing")?;
    assert!(back == file, "reassembled file differs");
    let (store_rate, raw_rate) = interleaved(
        |_| {
            store
                .read_recipe(&recipe, 0, u64::MAX)
                .map(|d| assert!(d.is_some()))
        },
        |_| {
            let mut buf = AlignedBuf::zeroed(1 << 20);
            let mut off = first;
            while off < first + file.len() as u64 {
                dev.read_at(&mut buf, off)?;
                off += buf.len() as u64;
            }
            Ok(())
        },
    )?;
    println!(
        "reassemble 30 MB: store {:.0} MB/s, raw sequential O_DIRECT (1 MiB reads) {:.0} MB/s, ratio {:.2}",
        file.len() as f64 * store_rate / 1e6,
        file.len() as f64 * raw_rate / 1e6,
        store_rate / raw_rate
    );
    let s = store.stats();
    println!(
        "stats: {} chunks, {} MB stored, dedup {:.2}",
        s.chunks,
        s.stored_bytes / 1_000_000,
        s.dedup_ratio()
    );
    Ok(())
}

/// Calls per second of `a` and of `b`, measured in alternating slices so
/// both see the same machine (other work, device caches).
fn interleaved(
    mut a: impl FnMut(&mut Rng) -> musicfs_blockcache::Result<()>,
    mut b: impl FnMut(&mut Rng) -> musicfs_blockcache::Result<()>,
) -> musicfs_blockcache::Result<(f64, f64)> {
    let mut rng = Rng::new(3);
    for _ in 0..5 {
        a(&mut rng)?;
        b(&mut rng)?;
    }
    let (mut calls, mut time) = ([0u64; 2], [0f64; 2]);
    for _ in 0..SLICES {
        for (k, op) in [
            &mut a as &mut dyn FnMut(&mut Rng) -> musicfs_blockcache::Result<()>,
            &mut b,
        ]
        .into_iter()
        .enumerate()
        {
            let t = Instant::now();
            while t.elapsed() < SLICE {
                op(&mut rng)?;
                calls[k] += 1;
            }
            time[k] += t.elapsed().as_secs_f64();
        }
    }
    Ok((calls[0] as f64 / time[0], calls[1] as f64 / time[1]))
}

fn cdc_throughput() -> Result<(), Box<dyn std::error::Error>> {
    let data = Rng::new(9).bytes(256 << 20);
    let params = CdcParams::default();
    let mut best = f64::MAX;
    let mut chunks = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let cuts = cut_points(&data, &params)?;
        let mut acc = 0u128;
        for &(off, len) in &cuts {
            acc ^= ChunkId::of(&data[off..off + len]).0;
        }
        std::hint::black_box(acc);
        best = best.min(t.elapsed().as_secs_f64());
        chunks = cuts.len();
    }
    println!(
        "CDC (FastCDC v2020 16/64/256 KiB) + xxh3-128, one core: {:.2} GB/s ({} chunks, avg {} KiB)",
        data.len() as f64 / best / 1e9,
        chunks,
        data.len() / chunks / 1024
    );
    Ok(())
}

/// xorshift64*, so the benchmark needs no test-only code.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}
