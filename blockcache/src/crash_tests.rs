//! Crash simulation through every write point of put, evict, release,
//! checkpoint and the journal-full checkpoint: count the device writes and
//! flushes an operation makes, then for each k crash at op k (with and
//! without tearing, keeping none, all or a random subset of the unflushed
//! writes), reopen, and check the store opens, verifies clean, and serves
//! only the bytes that were put.
use super::*;
use crate::testutil::{CrashDevice, Rng, Survivors};

const SIZE: u64 = 2 << 20;

fn format_opts() -> FormatOptions {
    FormatOptions {
        journal_blocks: Some(3),
        index_capacity: Some(200),
    }
}

fn opts() -> StoreOptions {
    StoreOptions {
        high_watermark: 0.9,
        low_watermark: 0.7,
        ..StoreOptions::default()
    }
}

/// A crash scenario: the chunks stored before it, and the operation.
struct Scenario {
    name: &'static str,
    prefix: Vec<Vec<u8>>,
    /// Whether the operation damages a chunk's data on purpose (then
    /// `verify` may report it until a read drops it).
    damages: bool,
    /// Whether the operation must evict (checked in the dry run).
    evicts: bool,
    op: fn(&ChunkStore, &mut Rng) -> Result<()>,
}

fn chunk(rng: &mut Rng, max_blocks: u64) -> Vec<u8> {
    let len = 1 + rng.below(max_blocks * BLOCK as u64) as usize;
    rng.bytes(len)
}

fn scenarios() -> Vec<Scenario> {
    let mut rng = Rng::new(42);
    let small: Vec<Vec<u8>> = (0..12).map(|_| chunk(&mut rng, 3)).collect();
    // Enough to sit just under the high watermark of ~450 data blocks.
    let nearly_full: Vec<Vec<u8>> = (0..100).map(|_| rng.bytes(4 * BLOCK)).collect();
    vec![
        Scenario {
            name: "put_batch of new and duplicate chunks",
            prefix: small.clone(),
            damages: false,
            evicts: false,
            op: |s, rng| {
                let (a, b) = (chunk(rng, 3), chunk(rng, 5));
                let known = sorted_ids(s)[0];
                let dup = s.get(known)?.unwrap_or_default();
                s.put_batch(&[&a, &b, &dup, &a]).map(|_| ())
            },
        },
        Scenario {
            name: "put that evicts",
            prefix: nearly_full.clone(),
            damages: false,
            evicts: true,
            op: |s, rng| {
                let big = rng.bytes(60 * BLOCK);
                s.put(&big).map(|_| ())
            },
        },
        Scenario {
            name: "release to zero and below",
            prefix: small.clone(),
            damages: false,
            evicts: false,
            op: |s, _| {
                let ids = sorted_ids(s);
                s.release(ids[0])?;
                s.release(ids[1])?;
                Ok(())
            },
        },
        Scenario {
            name: "clear",
            prefix: small.clone(),
            damages: false,
            evicts: false,
            op: |s, _| s.clear(),
        },
        Scenario {
            name: "checkpoint",
            prefix: small.clone(),
            damages: false,
            evicts: false,
            op: |s, _| s.checkpoint(),
        },
        Scenario {
            name: "puts that fill the journal",
            prefix: small.clone(),
            damages: false,
            evicts: false,
            op: |s, rng| {
                for _ in 0..5 {
                    s.put(&chunk(rng, 2))?;
                }
                Ok(())
            },
        },
        Scenario {
            name: "dropping a corrupt chunk",
            prefix: small,
            damages: true,
            evicts: false,
            op: |s, _| {
                let ids = sorted_ids(s);
                let start = s.read_state().index[&ids[0]].start;
                // Garble it through the device, as a failing disk would.
                let mut buf = AlignedBuf::zeroed(BLOCK);
                s.dev.read_at(&mut buf, s.data_byte(start))?;
                buf.as_mut_slice()[0] ^= 1;
                s.dev.write_at(&buf, s.data_byte(start))?;
                s.get(ids[0]).map(|_| ())
            },
        },
    ]
}

fn sorted_ids(s: &ChunkStore) -> Vec<ChunkId> {
    let mut ids = s.ids();
    ids.sort();
    ids
}

fn base_image(prefix: &[Vec<u8>]) -> Vec<u8> {
    let dev = Arc::new(CrashDevice::new(SIZE));
    ChunkStore::format(&*dev, &format_opts()).unwrap();
    let store = ChunkStore::open(dev.clone(), opts()).unwrap();
    for c in prefix {
        store.put(c).unwrap();
    }
    drop(store);
    dev.image()
}

/// Opens the crashed image and checks everything; returns the chunk count.
fn check_recovered(
    image: Vec<u8>,
    known: &HashMap<ChunkId, Vec<u8>>,
    must_have: &[ChunkId],
    damaged: bool,
    what: &str,
) -> usize {
    let dev = Arc::new(CrashDevice::from_image(image));
    let store =
        ChunkStore::open(dev, opts()).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{what}: {report:#?}");
    assert!(
        damaged || report.corrupt_chunks.is_empty(),
        "{what}: {report:#?}"
    );
    for id in store.ids() {
        let expected = known
            .get(&id)
            .unwrap_or_else(|| panic!("{what}: chunk {id} was never put"));
        match store.get(id).unwrap() {
            Some(got) => assert!(
                got == *expected,
                "{what}: chunk {id} reads back wrong bytes"
            ),
            // Only a chunk damaged on purpose may turn out unreadable.
            None => assert!(damaged, "{what}: chunk {id} listed but unreadable"),
        }
    }
    assert!(
        store.verify().unwrap().is_clean(),
        "{what}: unclean after reading every chunk"
    );
    for id in must_have {
        assert!(
            store.contains(*id),
            "{what}: chunk {id}, durable before the crash, is missing"
        );
    }
    // The recovered store keeps working.
    let fresh = b"after recovery".to_vec();
    let id = store.put(&fresh).unwrap();
    assert_eq!(store.get(id).unwrap(), Some(fresh));
    assert!(
        store.verify().unwrap().is_clean(),
        "{what}: unclean after a put"
    );
    store.ids().len()
}

#[test]
fn a_crash_at_any_write_point_leaves_a_consistent_store() {
    let mut crash_points = 0;
    for sc in scenarios() {
        let base = base_image(&sc.prefix);
        let mut known: HashMap<ChunkId, Vec<u8>> = sc
            .prefix
            .iter()
            .map(|c| (ChunkId::of(c), c.clone()))
            .collect();

        // Dry run: count the operation's writes and flushes, learn its chunks.
        let dev = Arc::new(CrashDevice::from_image(base.clone()));
        let store = ChunkStore::open(dev.clone(), opts()).unwrap();
        let before_ids = store.ids();
        let before = dev.ops();
        (sc.op)(&store, &mut Rng::new(7)).unwrap_or_else(|e| panic!("{}: dry run: {e}", sc.name));
        let n = dev.ops() - before;
        assert_eq!(
            store.stats().evictions > 0,
            sc.evicts,
            "{}: evictions {}",
            sc.name,
            store.stats().evictions
        );
        assert!(n >= 2, "{}: only {n} device ops", sc.name);
        for id in store.ids() {
            if let Some(data) = store.get(id).unwrap() {
                known.insert(id, data);
            }
        }
        // Chunks durable before the operation that the operation keeps
        // must survive any crash in it.
        let must_have: Vec<ChunkId> = before_ids
            .into_iter()
            .filter(|id| store.contains(*id))
            .collect();
        drop(store);
        check_recovered(dev.image(), &known, &must_have, sc.damages, sc.name);

        for k in 0..n {
            for (tear, survivors) in [
                (false, Survivors::None),
                (true, Survivors::None),
                (true, Survivors::All),
                (true, Survivors::Random(k as u64)),
                (false, Survivors::Random(k as u64 + 1000)),
            ] {
                let dev = Arc::new(CrashDevice::from_image(base.clone()));
                let store = ChunkStore::open(dev.clone(), opts()).unwrap();
                dev.crash_at(dev.ops() + k, tear, k as u64);
                let result = (sc.op)(&store, &mut Rng::new(7));
                assert!(dev.crashed(), "{}: op {k} of {n} never reached", sc.name);
                assert!(
                    result.is_err(),
                    "{}: crash at op {k} went unnoticed",
                    sc.name
                );
                drop(store);
                let what = format!(
                    "{}: crash at op {k}/{n}, tear {tear}, {survivors:?}",
                    sc.name
                );
                check_recovered(
                    dev.crash_image(survivors),
                    &known,
                    &must_have,
                    sc.damages,
                    &what,
                );
                crash_points += 1;
            }
        }
    }
    assert!(crash_points > 100, "only {crash_points} crash points");
}

#[test]
fn chunks_put_before_the_last_flush_all_survive_a_crash() {
    let dev = Arc::new(CrashDevice::new(SIZE));
    ChunkStore::format(&*dev, &format_opts()).unwrap();
    let store = ChunkStore::open(dev.clone(), opts()).unwrap();
    let mut rng = Rng::new(9);
    let mut done = Vec::new();
    let mut known = HashMap::new();
    for i in 0..40 {
        let c = chunk(&mut rng, 3);
        known.insert(ChunkId::of(&c), c.clone());
        if i == 30 {
            // Crash in the middle of the 31st put.
            dev.crash_at(dev.ops() + 1, true, 1);
            assert!(store.put(&c).is_err());
            break;
        }
        done.push(store.put(&c).unwrap());
    }
    drop(store);
    let n = check_recovered(
        dev.crash_image(Survivors::Random(3)),
        &known,
        &done,
        false,
        "mid-put crash",
    );
    assert!(n >= 30);
}

#[test]
fn a_crash_while_opening_recovers_on_the_next_open() {
    // Puts after the last checkpoint, so opening replays the journal and
    // then writes a checkpoint of its own.
    let mut rng = Rng::new(21);
    let prefix: Vec<Vec<u8>> = (0..10).map(|_| chunk(&mut rng, 3)).collect();
    let base = base_image(&prefix);
    let known: HashMap<ChunkId, Vec<u8>> =
        prefix.iter().map(|c| (ChunkId::of(c), c.clone())).collect();
    let must_have: Vec<ChunkId> = known.keys().copied().collect();
    let dev = Arc::new(CrashDevice::from_image(base.clone()));
    drop(ChunkStore::open(dev.clone(), opts()).unwrap());
    let n = dev.ops();
    assert!(n >= 4, "opening made only {n} device ops");
    for k in 0..n {
        for (tear, survivors) in [
            (false, Survivors::None),
            (true, Survivors::All),
            (true, Survivors::Random(k as u64)),
        ] {
            let dev = Arc::new(CrashDevice::from_image(base.clone()));
            dev.crash_at(k, tear, k as u64);
            assert!(
                ChunkStore::open(dev.clone(), opts()).is_err(),
                "crash at op {k} of open went unnoticed"
            );
            let what = format!("open: crash at op {k}/{n}, tear {tear}, {survivors:?}");
            check_recovered(dev.crash_image(survivors), &known, &must_have, false, &what);
        }
    }
}

#[test]
fn a_crash_while_evicting_for_a_fragmented_region_leaves_a_consistent_store() {
    // Alternate small and large chunks, release the small ones: plenty of
    // free space, but no hole long enough for a big chunk, so the put
    // evicts least recently used chunks until a run fits.
    // Watermarks out of the way: only fragmentation can force evictions.
    let roomy = StoreOptions {
        high_watermark: 0.99,
        low_watermark: 0.98,
        ..StoreOptions::default()
    };
    let dev = Arc::new(CrashDevice::new(SIZE));
    ChunkStore::format(&*dev, &format_opts()).unwrap();
    let store = ChunkStore::open(dev.clone(), roomy.clone()).unwrap();
    let high = store.stats().capacity_bytes as f64 * 0.99;
    let mut rng = Rng::new(22);
    let mut known = HashMap::new();
    let mut small = Vec::new();
    // Bounded: the loop must end even if the layout changes.
    for _ in 0..1000 {
        if (store.stats().used_bytes + 8 * BLOCK as u64) as f64 > high {
            break;
        }
        let (s, l) = (rng.bytes(BLOCK), rng.bytes(7 * BLOCK));
        let ids = store.put_batch(&[&s, &l]).unwrap();
        small.push(ids[0]);
        known.insert(ids[0], s);
        known.insert(ids[1], l);
    }
    assert_eq!(store.stats().evictions, 0);
    for id in &small {
        store.release(*id).unwrap();
    }
    let evictions_before = store.stats().evictions;
    drop(store);
    let base = dev.image();
    let big = rng.bytes(20 * BLOCK);
    known.insert(ChunkId::of(&big), big.clone());

    let dev = Arc::new(CrashDevice::from_image(base.clone()));
    let store = ChunkStore::open(dev.clone(), roomy.clone()).unwrap();
    let before = dev.ops();
    store.put(&big).unwrap();
    let n = dev.ops() - before;
    assert!(
        store.stats().evictions > evictions_before,
        "the put did not need to evict"
    );
    drop(store);
    for k in 0..n {
        for (tear, survivors) in [(true, Survivors::None), (true, Survivors::Random(k as u64))] {
            let dev = Arc::new(CrashDevice::from_image(base.clone()));
            let store = ChunkStore::open(dev.clone(), roomy.clone()).unwrap();
            dev.crash_at(dev.ops() + k, tear, k as u64);
            assert!(store.put(&big).is_err());
            drop(store);
            let what = format!("fragmented put: crash at op {k}/{n}, tear {tear}, {survivors:?}");
            check_recovered(dev.crash_image(survivors), &known, &[], false, &what);
        }
    }
}
