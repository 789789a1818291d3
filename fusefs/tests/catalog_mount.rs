//! The real stack below the daemon: a SQLite catalog built with apply_scan
//! and sync_tree, a LocalOrigin, mounted with `musicfs_fusefs::mount`.
mod common;

use common::*;
use musicfs_fusefs::{FsConfig, FsStats, Mounted, OriginTable};
use musicfs_index::{Catalog, ScannedFile, Stamp, Template};
use musicfs_origins::{LocalOrigin, Origin};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const TEMPLATE: &str = "$albumartist/$album/$track - $title";

/// Tags that make TEMPLATE give the fixture's virtual path.
fn scanned(f: &Fixture) -> ScannedFile {
    let (artist, rest) = f.virtual_path.split_once('/').unwrap();
    let (album, leaf) = rest.split_once('/').unwrap();
    let stem = leaf.rsplit_once('.').unwrap().0;
    let (track, title) = stem.split_once(" - ").unwrap();
    ScannedFile {
        format: f.rel_path.rsplit_once('.').unwrap().1.to_string(),
        tags: vec![
            ("albumartist".into(), artist.into()),
            ("album".into(), album.into()),
            ("track".into(), track.into()),
            ("title".into(), title.into()),
        ],
        audio_length: f.len as u64,
        ..Default::default()
    }
}

fn stamp_of(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).unwrap();
    Stamp {
        size: m.len(),
        mtime_ns: mtime_ns(&m),
    }
}

struct Lib {
    origin_dir: tempfile::TempDir,
    _db_dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    origins: OriginTable,
    origin_id: i64,
    template: Template,
}

fn library() -> Lib {
    let origin_dir = tempfile::tempdir().unwrap();
    let db_dir = tempfile::tempdir().unwrap();
    let files = fixtures();
    write_origin(origin_dir.path(), &files);
    let catalog = Arc::new(Catalog::open(&db_dir.path().join("catalog.db")).unwrap());
    let location = origin_dir.path().display().to_string();
    let origin_id = catalog.ensure_origin("music", "local", &location).unwrap();
    let upserts: Vec<_> = files
        .iter()
        .map(|f| {
            let stamp = stamp_of(&origin_dir.path().join(&f.rel_path));
            (f.rel_path.as_bytes().to_vec(), stamp, scanned(f))
        })
        .collect();
    catalog.apply_scan(origin_id, &upserts, &[], &[]).unwrap();
    let template = Template::parse(TEMPLATE).unwrap();
    catalog.sync_tree(&template).unwrap();
    let origin: Arc<dyn Origin> = Arc::new(LocalOrigin::new("music", origin_dir.path()).unwrap());
    let origins: OriginTable = Arc::new(RwLock::new(HashMap::from([(origin_id, origin)])));
    Lib {
        origin_dir,
        _db_dir: db_dir,
        catalog,
        origins,
        origin_id,
        template,
    }
}

fn mount(lib: &Lib, mnt: &Path, passthrough: bool, ttl: Duration) -> (Mounted, Arc<FsStats>) {
    let stats = Arc::new(FsStats::default());
    let config = FsConfig {
        passthrough,
        ttl,
        ..FsConfig::default()
    };
    let mounted = musicfs_fusefs::mount(
        lib.catalog.clone(),
        lib.origins.clone(),
        config,
        stats.clone(),
        mnt,
    )
    .expect("mount");
    (mounted, stats)
}

fn inodes(mnt: &Path) -> Vec<(String, u64)> {
    fixtures()
        .iter()
        .map(|f| {
            (
                f.virtual_path.clone(),
                std::fs::metadata(mnt.join(&f.virtual_path)).unwrap().ino(),
            )
        })
        .collect()
}

fn check_reads(lib: &Lib, mnt: &Path) {
    for f in fixtures() {
        let virt: PathBuf = mnt.join(&f.virtual_path);
        let orig = lib.origin_dir.path().join(&f.rel_path);
        let status = Command::new("cmp").arg(&virt).arg(&orig).status().unwrap();
        assert!(status.success(), "cmp differs: {}", f.virtual_path);
        let (vm, om) = (
            std::fs::metadata(&virt).unwrap(),
            std::fs::metadata(&orig).unwrap(),
        );
        assert_eq!(vm.len(), om.len());
        assert_eq!(mtime_ns(&vm), mtime_ns(&om));
        assert_eq!(
            getxattr(&virt, "user.musicfs.path").unwrap(),
            f.rel_path.as_bytes()
        );
        assert_eq!(getxattr(&virt, "user.musicfs.origin").unwrap(), b"music");
    }
}

#[test]
fn catalog_mount_passthrough_daemon_erofs_and_stable_inodes() {
    if !fuse_available() {
        return;
    }
    let lib = library();
    let mnt = tempfile::tempdir().unwrap();
    let before = snapshot(lib.origin_dir.path());

    // Passthrough on.
    let (mounted, stats) = mount(&lib, mnt.path(), true, Duration::from_secs(1));
    let guard = UnmountGuard(mnt.path().to_path_buf());
    let mut top: Vec<String> = std::fs::read_dir(mnt.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    // The root also lists the virtual dot folders, after the tree's entries.
    assert_eq!(
        top,
        [
            ".collections",
            ".prefetch",
            ".search",
            "Artist A",
            "Björk",
            "Empty"
        ]
    );
    check_reads(&lib, mnt.path());
    let first_inodes = inodes(mnt.path());
    let st = stats.snapshot();
    assert!(st.passthrough_opens > 0 && st.daemon_opens == 0, "{st:?}");
    assert_eq!(st.passthrough_unavailable, None);
    let file = mnt.path().join(&fixtures()[0].virtual_path);
    assert_every_write_is_erofs(&file, file.parent().unwrap());
    mounted.unmount().unwrap();
    drop(guard);

    // Passthrough off; same inodes after the remount.
    let (mounted, stats) = mount(&lib, mnt.path(), false, Duration::from_secs(1));
    let guard = UnmountGuard(mnt.path().to_path_buf());
    check_reads(&lib, mnt.path());
    let st = stats.snapshot();
    assert!(st.daemon_opens > 0 && st.passthrough_opens == 0, "{st:?}");
    assert!(
        st.bytes_read >= fixtures().iter().map(|f| f.len as u64).sum::<u64>(),
        "{st:?}"
    );
    assert_eq!(
        inodes(mnt.path()),
        first_inodes,
        "inodes must survive a remount"
    );
    mounted.unmount().unwrap();
    drop(guard);

    assert_eq!(
        before,
        snapshot(lib.origin_dir.path()),
        "the origin was modified"
    );
}

#[test]
fn rescans_show_up_through_invalidation() {
    if !fuse_available() {
        return;
    }
    let lib = library();
    let mnt = tempfile::tempdir().unwrap();
    // A long TTL: only invalidation can make changes visible in time.
    let (mounted, _stats) = mount(&lib, mnt.path(), true, Duration::from_secs(600));
    let _guard = UnmountGuard(mnt.path().to_path_buf());
    let files = fixtures();
    let changed = &files[1];
    let gone = &files[2];
    let changed_virt = mnt.path().join(&changed.virtual_path);
    let gone_virt = mnt.path().join(&gone.virtual_path);
    let ino = std::fs::metadata(&changed_virt).unwrap().ino();
    assert_eq!(std::fs::read(&changed_virt).unwrap().len(), changed.len);
    assert!(gone_virt.exists());

    // The origin changes; a rescan records it and the tree follows.
    let changed_orig = lib.origin_dir.path().join(&changed.rel_path);
    let new_bytes = bytes(changed.len + 1000, 99);
    std::fs::write(&changed_orig, &new_bytes).unwrap();
    std::fs::remove_file(lib.origin_dir.path().join(&gone.rel_path)).unwrap();
    let upsert = (
        changed.rel_path.as_bytes().to_vec(),
        stamp_of(&changed_orig),
        scanned(changed),
    );
    lib.catalog
        .apply_scan(
            lib.origin_id,
            &[upsert],
            &[],
            &[gone.rel_path.as_bytes().to_vec()],
        )
        .unwrap();
    let changes = lib.catalog.sync_tree(&lib.template).unwrap();
    assert!(changes.modified.contains(&ino), "{changes:?}");
    mounted.invalidate(&changes);

    assert!(!gone_virt.exists(), "removed file still visible");
    let m = std::fs::metadata(&changed_virt).unwrap();
    assert_eq!(m.ino(), ino, "a modified file keeps its inode");
    assert_eq!(m.len(), new_bytes.len() as u64);
    assert_eq!(std::fs::read(&changed_virt).unwrap(), new_bytes);
    mounted.unmount().unwrap();
}
