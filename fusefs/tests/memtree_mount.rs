//! Real FUSE mounts of an in-memory tree over a real origin directory, read
//! with std::fs and `cmp`. (catalog_mount.rs does the same over SQLite.)
mod common;

use common::*;
use musicfs_fusefs::testutil::{DirOrigin, MemTree};
use musicfs_fusefs::{FsConfig, FsStats, Mounted, OriginTable};
use musicfs_index::{Stamp, TreeChanges, ROOT_INO};
use musicfs_origins::Origin;
use std::collections::HashMap;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

struct Setup {
    // Field order = drop order: unmount via the handle, then the guard,
    // and only then remove the directories.
    mounted: Option<Mounted>,
    _guard: UnmountGuard,
    origin: tempfile::TempDir,
    mnt: tempfile::TempDir,
    tree: Arc<MemTree>,
    stats: Arc<FsStats>,
    /// (fixture, inode)
    files: Vec<(Fixture, u64)>,
}

impl Setup {
    fn path(&self, virtual_path: &str) -> PathBuf {
        self.mnt.path().join(virtual_path)
    }
    fn origin_file(&self, f: &Fixture) -> PathBuf {
        self.origin.path().join(&f.rel_path)
    }
}

fn setup(config: FsConfig, read_only_flag: bool) -> Setup {
    let origin = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    write_origin(origin.path(), &fixtures);
    let tree = Arc::new(MemTree::new());
    let mut files = Vec::new();
    for f in fixtures {
        let m = std::fs::metadata(origin.path().join(&f.rel_path)).unwrap();
        let stamp = Stamp {
            size: m.len(),
            mtime_ns: mtime_ns(&m),
        };
        let ino = tree.add_file(&f.virtual_path, 1, f.rel_path.as_bytes(), stamp);
        files.push((f, ino));
    }
    let dir_origin: Arc<dyn Origin> = Arc::new(DirOrigin {
        name: "music".into(),
        root: origin.path().to_path_buf(),
    });
    let origins: OriginTable = Arc::new(RwLock::new(HashMap::from([(1, dir_origin)])));
    let stats = Arc::new(FsStats::default());
    let mounted = if read_only_flag {
        musicfs_fusefs::mount_tree(tree.clone(), origins, config, stats.clone(), mnt.path())
    } else {
        musicfs_fusefs::testutil::mount_without_ro_flag(
            tree.clone(),
            origins,
            config,
            stats.clone(),
            mnt.path(),
        )
    }
    .expect("mount");
    let guard = UnmountGuard(mnt.path().to_path_buf());
    Setup {
        origin,
        mnt,
        tree,
        stats,
        files,
        mounted: Some(mounted),
        _guard: guard,
    }
}

fn config(passthrough: bool) -> FsConfig {
    FsConfig {
        passthrough,
        threads: 4,
        ..FsConfig::default()
    }
}

/// Every file through the mount equals its original, by `cmp` and by bytes.
fn assert_byte_identical(s: &Setup) {
    for (f, _) in &s.files {
        let status = Command::new("cmp")
            .arg(s.path(&f.virtual_path))
            .arg(s.origin_file(f))
            .status()
            .expect("run cmp");
        assert!(status.success(), "cmp differs for {}", f.virtual_path);
        assert_eq!(
            std::fs::read(s.path(&f.virtual_path)).unwrap(),
            std::fs::read(s.origin_file(f)).unwrap()
        );
    }
}

fn assert_tree_and_attrs(s: &Setup) {
    let mut top: Vec<String> = std::fs::read_dir(s.mnt.path())
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
    let album: Vec<String> = std::fs::read_dir(s.path("Artist A/Album One"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(album, ["01 - First.flac", "02 - Second.flac"]);
    let root = std::fs::metadata(s.mnt.path()).unwrap();
    assert_eq!(root.ino(), ROOT_INO);
    assert!(root.is_dir());
    assert_eq!(root.permissions().mode() & 0o7777, 0o555);
    assert_eq!(root.nlink(), 2);
    for (f, ino) in &s.files {
        let m = std::fs::metadata(s.path(&f.virtual_path)).unwrap();
        let orig = std::fs::metadata(s.origin_file(f)).unwrap();
        assert_eq!(m.ino(), *ino, "{}", f.virtual_path);
        assert_eq!(m.len(), f.len as u64);
        assert_eq!(mtime_ns(&m), mtime_ns(&orig), "mtime of {}", f.virtual_path);
        assert_eq!(m.ctime(), orig.mtime());
        assert_eq!(m.permissions().mode() & 0o7777, 0o444);
        assert_eq!(m.nlink(), 1);
        assert_eq!(m.blocks(), (f.len as u64).div_ceil(512));
        assert_eq!(m.blksize(), 4096);
        assert!(m.is_file());
    }
    // Entry types and inodes from readdir(plus) agree with stat.
    for e in std::fs::read_dir(s.path("Artist A/Album Two")).unwrap() {
        let e = e.unwrap();
        assert!(e.file_type().unwrap().is_file());
        assert_eq!(e.ino(), std::fs::metadata(e.path()).unwrap().ino());
    }
    assert_eq!(
        errno(std::fs::metadata(s.path("Artist A/Nope"))),
        libc::ENOENT
    );
}

fn assert_xattrs(s: &Setup) {
    let (f, _) = &s.files[0];
    let p = s.path(&f.virtual_path);
    assert_eq!(getxattr(&p, "user.musicfs.origin").unwrap(), b"music");
    assert_eq!(
        getxattr(&p, "user.musicfs.path").unwrap(),
        f.rel_path.as_bytes()
    );
    assert_eq!(getxattr(&p, "user.nope"), Err(libc::ENODATA));
    assert_eq!(getxattr(&p, "security.selinux"), Err(libc::ENODATA));
    assert_eq!(
        listxattr(&p).unwrap(),
        b"user.musicfs.origin\0user.musicfs.path\0"
    );
    assert_eq!(listxattr(s.mnt.path()).unwrap(), b"");
    assert_eq!(
        getxattr(s.mnt.path(), "user.musicfs.path"),
        Err(libc::ENODATA)
    );
    // A buffer too small gets ERANGE.
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let name = std::ffi::CString::new("user.musicfs.path").unwrap();
    let mut small = [0u8; 2];
    // SAFETY: valid C strings and a 2-byte buffer.
    let rc = unsafe { libc::getxattr(c.as_ptr(), name.as_ptr(), small.as_mut_ptr().cast(), 2) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ERANGE)
    );
}

fn statfs_files(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: zeroed statvfs is a valid out-parameter; `c` is a valid path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0);
    assert_eq!(st.f_bsize, 4096);
    assert_ne!(st.f_flag & libc::ST_RDONLY, 0, "mount must be read-only");
    st.f_files
}

fn finish(mut s: Setup) {
    let before = snapshot(s.origin.path());
    s.mounted.take().unwrap().unmount().expect("unmount");
    assert!(!is_mounted(s.mnt.path()));
    assert_eq!(s.stats.open_handles.load(Ordering::Relaxed), 0);
    assert_eq!(before, snapshot(s.origin.path()));
}

#[test]
fn passthrough_mount_serves_tree_and_bytes_and_refuses_writes() {
    if !fuse_available() {
        return;
    }
    let s = setup(config(true), true);
    let origin_before = snapshot(s.origin.path());
    assert_tree_and_attrs(&s);
    assert_byte_identical(&s);
    assert_xattrs(&s);
    let canon = s.mnt.path().canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(canon.to_str().unwrap()))
        .expect("mount listed");
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], "musicfs", "{line}");
    assert_eq!(fields[2], "fuse.musicfs", "{line}");
    assert!(fields[3].split(',').any(|o| o == "ro"), "{line}");
    assert!(fields[3].contains("default_permissions"), "{line}");
    // 5 files + root + 7 directories.
    assert_eq!(statfs_files(s.mnt.path()), 5 + 8);
    let st = s.stats.snapshot();
    assert_eq!(st.passthrough_unavailable, None, "{st:?}");
    assert!(st.passthrough_opens > 0, "{st:?}");
    assert_eq!(st.daemon_opens, 0, "{st:?}");
    assert_eq!(
        st.reads, 0,
        "passthrough reads must not reach the daemon: {st:?}"
    );
    let (f, _) = &s.files[0];
    let file = s.path(&f.virtual_path);
    assert_every_write_is_erofs(&file, file.parent().unwrap());
    assert_eq!(origin_before, snapshot(s.origin.path()));
    finish(s);
}

#[test]
fn daemon_path_serves_exact_ranges_when_passthrough_is_off() {
    if !fuse_available() {
        return;
    }
    let s = setup(config(false), true);
    assert_byte_identical(&s);
    let st = s.stats.snapshot();
    assert_eq!(st.passthrough_opens, 0, "{st:?}");
    assert!(st.daemon_opens > 0, "{st:?}");
    assert!(st.reads > 0 && st.bytes_read > 0, "{st:?}");
    assert_eq!(
        st.passthrough_unavailable.as_deref(),
        Some("disabled in config")
    );
    // Odd ranges, across page boundaries and past the end.
    let (f, _) = &s.files[0];
    let original = std::fs::read(s.origin_file(f)).unwrap();
    let file = std::fs::File::open(s.path(&f.virtual_path)).unwrap();
    for (offset, len) in [
        (0usize, 1usize),
        (4095, 2),
        (1_000_003, 70_001),
        (original.len() - 5, 100),
    ] {
        let mut buf = vec![0u8; len];
        let n = file.read_at(&mut buf, offset as u64).unwrap();
        let end = (offset + len).min(original.len());
        assert_eq!(&buf[..n], &original[offset..end], "range {offset}+{len}");
    }
    assert_eq!(
        file.read_at(&mut [0u8; 10], original.len() as u64 + 10)
            .unwrap(),
        0
    );
    drop(file);
    finish(s);
}

#[test]
fn the_daemon_itself_answers_erofs_without_the_ro_flag() {
    if !fuse_available() {
        return;
    }
    // Without MS_RDONLY the VFS lets write requests through to us.
    let s = setup(config(true), false);
    let (f, _) = &s.files[1];
    let file = s.path(&f.virtual_path);
    assert_every_write_is_erofs(&file, file.parent().unwrap());
    assert_byte_identical(&s);
    finish(s);
}

#[test]
fn concurrent_opens_share_one_mode_per_inode() {
    if !fuse_available() {
        return;
    }
    let s = setup(config(true), true);
    let (f, _) = &s.files[0];
    let path = s.path(&f.virtual_path);
    let original = Arc::new(std::fs::read(s.origin_file(f)).unwrap());
    // Keep one handle open so later opens join its mode.
    let held = std::fs::File::open(&path).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            let original = original.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    assert!(std::fs::read(&path).unwrap() == *original);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = s.stats.snapshot();
    assert_eq!(st.passthrough_opens, 41, "{st:?}");
    // The kernel sends RELEASE after close(2) has returned, so the last
    // readers' handles may still be counted for a moment.
    assert!(
        eventually(Duration::from_secs(2), || s
            .stats
            .open_handles
            .load(Ordering::Relaxed)
            == 1),
        "{:?}",
        s.stats.snapshot()
    );
    drop(held);
    assert!(eventually(Duration::from_secs(2), || s
        .stats
        .open_handles
        .load(Ordering::Relaxed)
        == 0));
    finish(s);
}

#[test]
fn invalidate_makes_changes_visible_before_the_ttl() {
    if !fuse_available() {
        return;
    }
    let s = setup(
        FsConfig {
            ttl: Duration::from_secs(600),
            ..config(true)
        },
        true,
    );
    let (f, ino) = &s.files[1];
    let path = s.path(&f.virtual_path);
    let dir = path.parent().unwrap().to_path_buf();
    assert!(path.exists());
    let parent_ino = std::fs::metadata(&dir).unwrap().ino();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    // The tree loses the file; the kernel still has it cached for 600 s.
    s.tree.remove(*ino);
    assert!(
        path.exists(),
        "entry is expected to be cached by the kernel"
    );
    let changes = TreeChanges {
        removed: vec![(
            parent_ino,
            path.file_name().unwrap().as_encoded_bytes().to_vec(),
        )],
        modified: vec![],
        dirs_changed: vec![parent_ino],
        added: 0,
    };
    s.mounted.as_ref().unwrap().invalidate(&changes);
    assert!(!path.exists(), "invalidated entry must be gone");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // Invalidating inodes the kernel never saw is harmless.
    s.mounted.as_ref().unwrap().invalidate(&TreeChanges {
        removed: vec![(987_654, b"ghost".to_vec())],
        modified: vec![987_655],
        dirs_changed: vec![],
        added: 0,
    });
    finish(s);
}

#[test]
fn fusermount_u_ends_the_session() {
    if !fuse_available() {
        return;
    }
    let mut s = setup(config(true), true);
    assert!(s.path(&s.files[0].0.virtual_path).exists());
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(s.mnt.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mounted = s.mounted.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        mounted.wait();
        tx.send(mounted.is_ended()).unwrap();
        mounted
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "wait() did not return"
    );
    let mounted = waiter.join().unwrap();
    // Unmounting an ended session is a no-op.
    mounted.unmount().unwrap();
    assert!(!is_mounted(s.mnt.path()));
}

#[test]
fn files_whose_bytes_differ_from_the_original_use_the_daemon() {
    if !fuse_available() {
        return;
    }
    let s = setup(config(true), true);
    // An overlay serves a different size than the real file: no passthrough.
    let (f, _) = &s.files[2];
    let orig = s.origin_file(f);
    let m = std::fs::metadata(&orig).unwrap();
    let stamp = Stamp {
        size: m.len(),
        mtime_ns: mtime_ns(&m),
    };
    s.tree
        .add_file_sized("Overlay/x/1 - y.mp3", 1, f.rel_path.as_bytes(), stamp, 1000);
    let got = std::fs::read(s.path("Overlay/x/1 - y.mp3")).unwrap();
    assert_eq!(got, std::fs::read(&orig).unwrap()[..1000]);
    // A file changed on disk since the scan (size differs): no passthrough either.
    let changed = s.tree.add_file(
        "Changed/x/1 - z.mp3",
        1,
        f.rel_path.as_bytes(),
        Stamp {
            size: m.len() - 1,
            mtime_ns: 1,
        },
    );
    assert!(changed > 0);
    let got = std::fs::read(s.path("Changed/x/1 - z.mp3")).unwrap();
    assert_eq!(got.len() as u64, m.len() - 1);
    let st = s.stats.snapshot();
    assert_eq!(st.daemon_opens, 2, "{st:?}");
    assert_eq!(st.passthrough_opens, 0, "{st:?}");
    assert_eq!(
        st.passthrough_unavailable, None,
        "passthrough itself still works"
    );
    finish(s);
}

/// Linux capability sets of the calling thread (capget/capset, v3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops CAP_SYS_ADMIN from the calling thread's effective set; threads it
/// spawns afterwards (the FUSE workers) inherit that.
fn drop_cap_sys_admin_in_this_thread() {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_ADMIN: u32 = 21;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as capget v3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    data[0].effective &= !(1 << CAP_SYS_ADMIN);
    // SAFETY: same layout; only lowers this thread's effective set.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset");
}

#[test]
fn without_cap_sys_admin_passthrough_falls_back_and_says_why() {
    if !fuse_available() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to drop CAP_SYS_ADMIN selectively");
        return;
    }
    let origin = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    write_origin(origin.path(), &fixtures);
    let tree = Arc::new(MemTree::new());
    for f in &fixtures {
        let m = std::fs::metadata(origin.path().join(&f.rel_path)).unwrap();
        let stamp = Stamp {
            size: m.len(),
            mtime_ns: mtime_ns(&m),
        };
        tree.add_file(&f.virtual_path, 1, f.rel_path.as_bytes(), stamp);
    }
    let dir_origin: Arc<dyn Origin> = Arc::new(DirOrigin {
        name: "music".into(),
        root: origin.path().to_path_buf(),
    });
    let origins: OriginTable = Arc::new(RwLock::new(HashMap::from([(1, dir_origin)])));
    let stats = Arc::new(FsStats::default());
    let (tree2, stats2, mnt_path) = (tree.clone(), stats.clone(), mnt.path().to_path_buf());
    // Mount from a thread without CAP_SYS_ADMIN (fuser then mounts through
    // fusermount3); the workers it spawns cannot register backing files.
    let mounted = std::thread::spawn(move || {
        drop_cap_sys_admin_in_this_thread();
        musicfs_fusefs::mount_tree(tree2, origins, config(true), stats2, &mnt_path)
    })
    .join()
    .unwrap()
    .expect("mount");
    let _guard = UnmountGuard(mnt.path().to_path_buf());
    for f in &fixtures {
        let got = std::fs::read(mnt.path().join(&f.virtual_path)).unwrap();
        assert!(got == std::fs::read(origin.path().join(&f.rel_path)).unwrap());
    }
    let st = stats.snapshot();
    assert_eq!(st.passthrough_opens, 0, "{st:?}");
    assert_eq!(st.daemon_opens, fixtures.len() as u64, "{st:?}");
    let reason = st.passthrough_unavailable.unwrap_or_default();
    assert!(reason.contains("CAP_SYS_ADMIN"), "reason: {reason:?}");
    mounted.unmount().unwrap();
}
