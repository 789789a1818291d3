//! kill -9 of a real process writing to an image file, in a loop: the test
//! binary re-executes itself as the writer (`writer_child`, active only
//! when `CHILD_ENV` names the image), kills it at random moments, reopens,
//! verifies, and checks every chunk the writer reported complete.
use super::*;
use crate::testutil::Rng;
use crate::FileBlockDevice;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "MUSICFS_BLOCKCACHE_KILL9_IMAGE";
const SEED_ENV: &str = "MUSICFS_BLOCKCACHE_KILL9_SEED";
const IMAGE_SIZE: u64 = 256 << 20;

/// The chunk named by `seed`: 1 byte to 64 KiB of pseudo-random bytes.
fn chunk_for(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let len = 1 + rng.below(64 << 10) as usize;
    rng.bytes(len)
}

fn open_image(path: &Path) -> Result<ChunkStore> {
    let dev = Arc::new(FileBlockDevice::open(path, None)?);
    ChunkStore::open(dev, StoreOptions::default())
}

/// The writer: puts chunks forever, printing each seed once its put returned.
#[test]
fn writer_child() {
    let Ok(image) = std::env::var(CHILD_ENV) else {
        return;
    };
    let base: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let store = open_image(Path::new(&image)).unwrap();
    let mut out = std::io::stdout().lock();
    let mut seed = base;
    loop {
        // Alternate single puts and group commits.
        let n = if seed.is_multiple_of(3) { 3 } else { 1 };
        let chunks: Vec<Vec<u8>> = (seed..seed + n).map(chunk_for).collect();
        let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        store.put_batch(&refs).unwrap();
        for s in seed..seed + n {
            writeln!(out, "done {s}").unwrap();
        }
        out.flush().unwrap();
        seed += n;
    }
}

#[test]
fn kill_9_of_a_writing_process_never_loses_a_completed_chunk() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("cache.img");
    {
        let dev = FileBlockDevice::open(&image, Some(IMAGE_SIZE)).unwrap();
        ChunkStore::format(
            &dev,
            &FormatOptions {
                journal_blocks: Some(64),
                ..FormatOptions::default()
            },
        )
        .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(99);
    let mut completed: Vec<(u64, ChunkId)> = Vec::new();
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store::kill9_tests::writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &image)
            .env(SEED_ENV, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seeds = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seed) = line
                    .strip_prefix("done ")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    seeds.push(seed);
                }
            }
            seeds
        });
        std::thread::sleep(Duration::from_millis(30 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let seeds = reader.join().unwrap();

        let store =
            open_image(&image).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let report = store.verify().unwrap();
        assert!(report.is_clean(), "round {round}: {report:#?}");
        assert_eq!(store.stats().evictions, 0);
        // This round's chunks read back byte for byte; earlier rounds' are
        // still there (verify has just checked every stored chunk's bytes
        // against its id, and the id is the hash of the bytes).
        for &seed in &seeds {
            let data = chunk_for(seed);
            let id = ChunkId::of(&data);
            let got = store.get(id).unwrap();
            assert!(
                got.as_deref() == Some(data.as_slice()),
                "round {round}: completed chunk {seed} lost or wrong"
            );
            completed.push((seed, id));
        }
        for &(seed, id) in &completed {
            assert!(
                store.contains(id),
                "round {round}: chunk {seed} of an earlier round lost"
            );
        }
    }
    eprintln!(
        "{} chunks completed over 20 kill -9 rounds",
        completed.len()
    );
    assert!(
        completed.len() >= 20,
        "the writer completed only {} chunks in 20 rounds",
        completed.len()
    );
}
