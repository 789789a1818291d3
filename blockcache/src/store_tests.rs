//! Unit tests of `ChunkStore` on the in-memory device.
use super::*;
use crate::testutil::{CrashDevice, Rng};

const MIB: u64 = 1 << 20;

pub(crate) fn new_store(
    size: u64,
    format: FormatOptions,
    opts: StoreOptions,
) -> (Arc<CrashDevice>, ChunkStore) {
    let dev = Arc::new(CrashDevice::new(size));
    ChunkStore::format(&*dev, &format).unwrap();
    let store = ChunkStore::open(dev.clone(), opts).unwrap();
    (dev, store)
}

fn reopen(dev: &Arc<CrashDevice>) -> ChunkStore {
    ChunkStore::open(dev.clone(), StoreOptions::default()).unwrap()
}

fn assert_clean(store: &ChunkStore) {
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:#?}");
}

#[test]
fn chunks_round_trip_and_survive_reopening() {
    let (dev, store) = new_store(4 * MIB, FormatOptions::default(), StoreOptions::default());
    let mut rng = Rng::new(1);
    let chunks: Vec<Vec<u8>> = (0..20).map(|i| rng.bytes(1 + i * 997)).collect();
    let ids: Vec<ChunkId> = chunks.iter().map(|c| store.put(c).unwrap()).collect();
    for (id, c) in ids.iter().zip(&chunks) {
        assert_eq!(store.get(*id).unwrap().as_deref(), Some(c.as_slice()));
    }
    assert_eq!(store.get(ChunkId::of(b"never stored")).unwrap(), None);
    let s = store.stats();
    assert_eq!((s.chunks, s.hits, s.misses), (20, 20, 1));
    assert_clean(&store);
    drop(store);
    let store = reopen(&dev);
    for (id, c) in ids.iter().zip(&chunks) {
        assert_eq!(store.get(*id).unwrap().as_deref(), Some(c.as_slice()));
    }
    assert_eq!(
        store.stats().stored_bytes,
        chunks.iter().map(|c| c.len() as u64).sum::<u64>()
    );
    assert_clean(&store);
}

#[test]
fn refcounts_count_puts_and_release_deletes_at_zero() {
    let (dev, store) = new_store(4 * MIB, FormatOptions::default(), StoreOptions::default());
    let a = store.put(b"shared chunk").unwrap();
    assert_eq!(
        store
            .put_batch(&[b"shared chunk", b"shared chunk"])
            .unwrap(),
        vec![a, a]
    );
    let s = store.stats();
    assert_eq!((s.chunks, s.stored_bytes, s.logical_bytes), (1, 12, 36));
    assert!(store.release(a).unwrap());
    drop(store);
    let store = reopen(&dev);
    assert_eq!(
        store.stats().logical_bytes,
        24,
        "refcount 2 survives reopening"
    );
    assert!(store.release(a).unwrap());
    assert!(store.release(a).unwrap());
    assert!(!store.contains(a));
    assert!(!store.release(a).unwrap());
    assert_eq!(store.stats().used_bytes, 0);
    assert_clean(&store);
}

#[test]
fn flipped_bytes_in_a_data_extent_are_detected_dropped_counted_never_served() {
    let (dev, store) = new_store(4 * MIB, FormatOptions::default(), StoreOptions::default());
    let data = Rng::new(3).bytes(50_000);
    let id = store.put(&data).unwrap();
    let other = store.put(b"an innocent neighbour").unwrap();
    let start = store.read_state().index[&id].start;
    dev.corrupt(Layout::byte(store.layout.data_start + start) + 40_000, 0x10);

    let report = store.verify().unwrap();
    assert_eq!(report.corrupt_chunks, vec![id], "verify reports it");
    assert_eq!(store.get(id).unwrap(), None, "never served");
    let s = store.stats();
    assert_eq!((s.corrupt_chunks, s.chunks), (1, 1));
    assert!(!store.contains(id), "dropped");
    assert_eq!(
        store.get(other).unwrap().as_deref(),
        Some(&b"an innocent neighbour"[..])
    );
    assert_clean(&store);
    drop(store);
    let store = reopen(&dev);
    assert!(!store.contains(id), "the drop was journaled");
    // A refetch stores it again.
    assert_eq!(store.put(&data).unwrap(), id);
    assert_eq!(store.get(id).unwrap(), Some(data));
}

#[test]
fn the_same_file_stored_twice_uses_the_space_once() {
    let (_dev, store) = new_store(16 * MIB, FormatOptions::default(), StoreOptions::default());
    let file = Rng::new(4).bytes(3 * MIB as usize + 12_345);
    let params = CdcParams::default();
    let first = store.put_stream(&file[..], &params).unwrap();
    let after_first = store.stats();
    let second = store.put_stream(&file[..], &params).unwrap();
    let after_second = store.stats();
    assert_eq!(first, second);
    assert_eq!(after_first.stored_bytes, file.len() as u64);
    assert_eq!(
        after_second.stored_bytes, after_first.stored_bytes,
        "no new space"
    );
    assert_eq!(after_second.used_bytes, after_first.used_bytes);
    assert_eq!(after_second.logical_bytes, 2 * after_first.logical_bytes);
    assert!((after_second.dedup_ratio() - 2.0).abs() < 1e-9);
    assert_eq!(
        store.read_recipe(&first, 0, u64::MAX).unwrap(),
        Some(file.clone())
    );
    let part = store
        .read_recipe(&first, 1_000_000, 300_000)
        .unwrap()
        .unwrap();
    assert_eq!(part, &file[1_000_000..1_300_000]);
    assert_eq!(
        store
            .read_recipe(&first, file.len() as u64 - 5, 100)
            .unwrap()
            .unwrap(),
        &file[file.len() - 5..]
    );
    assert_clean(&store);
}

#[test]
fn eviction_keeps_usage_under_the_high_watermark_and_spares_pinned_and_recent_chunks() {
    let opts = StoreOptions {
        high_watermark: 0.5,
        low_watermark: 0.3,
        ..StoreOptions::default()
    };
    let (_dev, store) = new_store(4 * MIB, FormatOptions::default(), opts);
    let capacity = store.stats().capacity_bytes;
    let mut rng = Rng::new(5);
    let pinned = store.put(&rng.bytes(8192)).unwrap();
    store.pin(pinned);
    let recent = store.put(&rng.bytes(8192)).unwrap();
    let mut evicted_seen = false;
    for _ in 0..400 {
        store.put(&rng.bytes(8192)).unwrap();
        assert!(
            store.get(recent).unwrap().is_some(),
            "the most recently used chunk is never the victim"
        );
        let s = store.stats();
        assert!(
            s.used_bytes as f64 <= capacity as f64 * 0.5 + 8192.0,
            "{s:?}"
        );
        evicted_seen |= s.evictions > 0;
    }
    assert!(evicted_seen);
    assert!(
        store.get(pinned).unwrap().is_some(),
        "pinned chunks are never evicted"
    );
    store.unpin(pinned);
    assert_eq!(store.stats().pinned_chunks, 0);
    assert_clean(&store);
}

#[test]
fn a_full_journal_checkpoints_by_itself() {
    let format = FormatOptions {
        journal_blocks: Some(2),
        ..FormatOptions::default()
    };
    let (dev, store) = new_store(4 * MIB, format, StoreOptions::default());
    let gen0 = lock(&store.writer).sb.checkpoint_gen;
    let mut rng = Rng::new(6);
    let chunks: Vec<Vec<u8>> = (0..30).map(|_| rng.bytes(3000)).collect();
    for c in &chunks {
        store.put(c).unwrap();
    }
    assert!(lock(&store.writer).sb.checkpoint_gen >= gen0 + 10);
    assert_clean(&store);
    drop(store);
    let store = reopen(&dev);
    for c in &chunks {
        assert_eq!(
            store.get(ChunkId::of(c)).unwrap().as_deref(),
            Some(c.as_slice())
        );
    }
}

#[test]
fn a_damaged_superblock_copy_falls_back_to_the_other() {
    let (dev, store) = new_store(4 * MIB, FormatOptions::default(), StoreOptions::default());
    let id = store.put(b"before the checkpoint").unwrap();
    store.checkpoint().unwrap();
    let newest = lock(&store.writer).sb.copy();
    drop(store);
    dev.corrupt(newest * BLOCK as u64 + 33, 0xff);
    let store = reopen(&dev);
    assert!(store.contains(id));
    assert_clean(&store);
    // Both copies damaged: refused, clearly.
    dev.corrupt(0, 1);
    dev.corrupt(BLOCK as u64, 1);
    assert!(matches!(
        ChunkStore::open(dev.clone(), StoreOptions::default()),
        Err(Error::NotFormatted { .. })
    ));
}

#[test]
fn clear_drops_everything_durably() {
    let (dev, store) = new_store(4 * MIB, FormatOptions::default(), StoreOptions::default());
    let id = store.put(b"soon gone").unwrap();
    store.clear().unwrap();
    assert!(!store.contains(id));
    assert_eq!(store.stats().used_bytes, 0);
    drop(store);
    let store = reopen(&dev);
    assert_eq!(store.stats().chunks, 0);
    assert_clean(&store);
}

#[test]
fn an_unformatted_device_is_refused() {
    let dev = Arc::new(CrashDevice::new(4 * MIB));
    assert!(matches!(
        ChunkStore::open(dev, StoreOptions::default()),
        Err(Error::NotFormatted { .. })
    ));
}

#[test]
fn readers_run_beside_a_writer() {
    let (_dev, store) = new_store(8 * MIB, FormatOptions::default(), StoreOptions::default());
    let store = Arc::new(store);
    let mut rng = Rng::new(7);
    let chunks: Vec<Vec<u8>> = (0..50).map(|_| rng.bytes(5000)).collect();
    let ids: Vec<ChunkId> = chunks.iter().map(|c| store.put(c).unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..3 {
            let (store, ids, chunks) = (&store, &ids, &chunks);
            s.spawn(move || {
                for i in 0..200 {
                    let k = (i * 7 + t) % ids.len();
                    assert_eq!(
                        store.get(ids[k]).unwrap().as_deref(),
                        Some(chunks[k].as_slice())
                    );
                }
            });
        }
        let mut rng = Rng::new(8);
        for _ in 0..100 {
            store.put(&rng.bytes(4000)).unwrap();
        }
    });
    assert_eq!(store.stats().corrupt_chunks, 0);
    assert_clean(&store);
}

#[test]
fn batched_reads_skip_missing_and_corrupt_chunks_and_recipes_refuse_holes() {
    let (dev, store) = new_store(16 * MIB, FormatOptions::default(), StoreOptions::default());
    let file = Rng::new(10).bytes(2 * MIB as usize);
    let recipe = store.put_stream(&file[..], &CdcParams::default()).unwrap();
    let mut ids: Vec<ChunkId> = recipe.chunks.iter().map(|c| c.id).collect();
    assert!(ids.len() > 20, "enough chunks for several read windows");
    ids.insert(5, ChunkId::of(b"absent"));
    let victim = recipe.chunks[17].id;
    let start = store.read_state().index[&victim].start;
    dev.corrupt(Layout::byte(store.layout.data_start + start) + 3, 0x80);

    let got = store.get_many(&ids).unwrap();
    assert_eq!(got.len(), ids.len());
    for (id, data) in ids.iter().zip(&got) {
        match data {
            Some(d) => assert_eq!(ChunkId::of(d), *id),
            None => assert!(*id == victim || *id == ChunkId::of(b"absent")),
        }
    }
    assert_eq!(got.iter().filter(|d| d.is_none()).count(), 2);
    assert_eq!(store.stats().corrupt_chunks, 1);
    // The recipe now has a hole: no partial or wrong bytes, just None.
    assert_eq!(store.read_recipe(&recipe, 0, u64::MAX).unwrap(), None);
    let before_hole: u64 = recipe.chunks[..17].iter().map(|c| c.len as u64).sum();
    assert_eq!(
        store
            .read_recipe(&recipe, 10, before_hole - 10)
            .unwrap()
            .unwrap(),
        &file[10..before_hole as usize]
    );
    assert_clean(&store);
}

#[test]
fn reads_spanning_many_windows_come_back_whole_and_in_order() {
    let (_dev, store) = new_store(32 * MIB, FormatOptions::default(), StoreOptions::default());
    // A 10 MiB file: contiguous extents, several 4 MiB windows.
    let file = Rng::new(11).bytes(10 * MIB as usize + 77);
    let recipe = store.put_stream(&file[..], &CdcParams::default()).unwrap();
    assert_eq!(
        store.read_recipe(&recipe, 0, u64::MAX).unwrap(),
        Some(file.clone())
    );
    assert_eq!(
        store
            .read_recipe(&recipe, 4_000_000, 5_000_000)
            .unwrap()
            .unwrap(),
        &file[4_000_000..9_000_000]
    );
    // 150 scattered small chunks, asked for backwards: more than one window of requests.
    let mut rng = Rng::new(12);
    let chunks: Vec<Vec<u8>> = (0..150).map(|_| rng.bytes(5000)).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let mut ids = store.put_batch(&refs).unwrap();
    ids.reverse();
    let got = store.get_many(&ids).unwrap();
    for (k, data) in got.iter().enumerate() {
        assert_eq!(
            data.as_deref(),
            Some(chunks[149 - k].as_slice()),
            "chunk {k}"
        );
    }
    assert_eq!(store.stats().corrupt_chunks, 0);
}

#[test]
fn the_store_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ChunkStore>();
    shareable::<Arc<ChunkStore>>();
}
