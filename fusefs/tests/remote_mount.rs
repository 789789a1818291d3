//! A real FUSE mount of a remote file (an in-memory origin that counts the
//! bytes it serves) read through a real chunk store: `cmp` against the
//! source bytes, cold then warm, and once the file is complete its export
//! opened in passthrough.
mod common;

use common::*;
use musicfs_blockcache::{ChunkStore, FileBlockDevice, FormatOptions, StoreOptions};
use musicfs_fusefs::testutil::{MemOrigin, MemTree};
use musicfs_fusefs::{FsConfig, FsStats, OriginTable, RemoteConfig, StoreSource};
use musicfs_index::Stamp;
use musicfs_origins::Origin;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

struct Cache(Arc<ChunkStore>);
impl StoreSource for Cache {
    fn store(&self) -> Option<Arc<ChunkStore>> {
        Some(self.0.clone())
    }
}

fn cmp(a: &Path, b: &Path) {
    let status = Command::new("cmp").arg(a).arg(b).status().unwrap();
    assert!(status.success(), "cmp {} {}", a.display(), b.display());
}

#[test]
fn a_remote_file_reads_exactly_cold_and_warm_then_passes_through() {
    if !fuse_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let data = bytes(12 << 20, 42);
    let source = work.path().join("source.flac");
    std::fs::write(&source, &data).unwrap();

    let dev = FileBlockDevice::open(&work.path().join("cache.img"), Some(128 << 20)).unwrap();
    ChunkStore::format(&dev, &FormatOptions::default()).unwrap();
    let store = Arc::new(ChunkStore::open(Arc::new(dev), StoreOptions::default()).unwrap());

    let tree = Arc::new(MemTree::new());
    let stamp = Stamp {
        size: data.len() as u64,
        mtime_ns: 1_700_000_000_000_000_000,
    };
    tree.add_file(
        "Artist/Album/01 - Remote.flac",
        1,
        b"music/remote.flac",
        stamp,
    );
    let origin = Arc::new(MemOrigin::new("remote", 0));
    origin.put(b"music/remote.flac", data.clone());
    let dyn_origin: Arc<dyn Origin> = origin.clone();
    let origins: OriginTable = Arc::new(RwLock::new(HashMap::from([(1, dyn_origin)])));
    let stats = Arc::new(FsStats::default());
    let config = FsConfig {
        remote: RemoteConfig {
            export_dir: Some(work.path().join("exports")),
            ..RemoteConfig::default()
        },
        ..FsConfig::default()
    };
    let mounted = musicfs_fusefs::mount_with_cache(
        tree.clone(),
        origins,
        config,
        stats.clone(),
        mnt.path(),
        Arc::new(Cache(store.clone())),
    )
    .expect("mount");
    let _guard = UnmountGuard(mnt.path().to_path_buf());
    let file = mnt.path().join("Artist/Album/01 - Remote.flac");

    let started = Instant::now();
    cmp(&file, &source);
    let cold = started.elapsed();
    let fetched = origin.served();
    assert!(fetched >= data.len() as u64, "{fetched}");
    let st = stats.snapshot();
    assert_eq!(st.daemon_opens, 1, "{st:?}");
    assert_eq!(st.direct_reads, 0, "{st:?}");

    // The export is written in the background once the file is complete.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.snapshot().exports == 0 {
        assert!(
            Instant::now() < deadline,
            "no export: {:?}",
            stats.snapshot()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Drop the pages the first read cached, so the second read is real.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", b"1");

    let started = Instant::now();
    cmp(&file, &source);
    let warm = started.elapsed();
    assert_eq!(origin.served(), fetched, "the warm read fetched nothing");
    let st = stats.snapshot();
    match &st.passthrough_unavailable {
        None => assert_eq!(st.passthrough_opens, 1, "{st:?}"),
        Some(why) => {
            eprintln!("passthrough unavailable here ({why}): the daemon served the export");
            assert_eq!(st.daemon_opens, 2, "{st:?}");
        }
    }
    eprintln!(
        "12 MiB remote file: cold {cold:?} ({fetched} bytes from the origin), warm {warm:?}; {st:?}"
    );
    mounted.unmount().unwrap();
}
