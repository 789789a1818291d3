//! Helpers shared by the mount tests: origin fixtures, a guard that always
//! unmounts, snapshots of the origin to prove it is untouched.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// True when FUSE can be used here; prints why not otherwise.
pub fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        true
    } else {
        eprintln!("SKIPPED: /dev/fuse is missing, FUSE mounts cannot be tested here");
        false
    }
}

/// Runs `fusermount3 -u -z` on drop, so a failing test never leaves a mount.
pub struct UnmountGuard(pub PathBuf);

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.0)
                .status();
        }
    }
}

pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        // ENOTCONN on a dead mount also lands here: treat as mounted.
        return true;
    };
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(canon.to_string_lossy().as_ref()))
}

/// Deterministic pseudo-random bytes, so reads can be compared.
pub use musicfs_fusefs::testutil::noise as bytes;

/// One file of the fixture origin.
pub struct Fixture {
    /// Path inside the mount.
    pub virtual_path: String,
    /// Path relative to the origin root.
    pub rel_path: String,
    pub len: usize,
}

/// Files of varied sizes (empty, sub-page, page-crossing, multi-megabyte).
pub fn fixtures() -> Vec<Fixture> {
    let f = |v: &str, r: &str, len| Fixture {
        virtual_path: v.to_string(),
        rel_path: r.to_string(),
        len,
    };
    vec![
        f(
            "Artist A/Album One/01 - First.flac",
            "a/one/01.flac",
            3 * 1024 * 1024 + 17,
        ),
        f("Artist A/Album One/02 - Second.flac", "a/one/02.flac", 4096),
        f("Artist A/Album Two/01 - Third.mp3", "a/two/x.mp3", 200_001),
        f("Björk/Début/01 - Human Behaviour.ogg", "b/hb.ogg", 1),
        f("Empty/Nothing/01 - Silence.wav", "e/empty.wav", 0),
    ]
}

/// Writes the fixture files under `root` with fixed, distinct mtimes.
pub fn write_origin(root: &Path, files: &[Fixture]) {
    for (i, f) in files.iter().enumerate() {
        let path = root.join(&f.rel_path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes(f.len, i as u64 + 1)).unwrap();
        let secs = 1_600_000_000 + i as i64 * 1000;
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let times = [
            libc::timespec {
                tv_sec: secs,
                tv_nsec: 123_456_789,
            },
            libc::timespec {
                tv_sec: secs,
                tv_nsec: 123_456_789,
            },
        ];
        // SAFETY: `c` is a valid NUL-terminated path, `times` two timespecs.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
        assert_eq!(rc, 0, "utimensat {}", path.display());
    }
}

/// (size, mtime ns, mode, content) of every entry under `root`.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, i64, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let content = if m.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path,
                (
                    m.len(),
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    m.mode(),
                    content,
                ),
            );
        }
    }
    out
}

pub fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// Waits for `f` to be true, up to `timeout`.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The errno of a failed std::io call.
pub fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("no errno in {e}")),
    }
}

/// `getxattr(2)` honouring the size-0 probe; `Err(errno)` on failure.
pub fn getxattr(path: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings; a null buffer with size 0 asks for the length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: `buf` has room for `buf.len()` bytes.
    let got = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    buf.truncate(got as usize);
    Ok(buf)
}

pub fn listxattr(path: &Path) -> Result<Vec<u8>, i32> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string; null buffer with size 0 asks for the length.
    let len = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: `buf` has room for `buf.len()` bytes.
    let got = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    buf.truncate(got as usize);
    Ok(buf)
}

pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> i32 {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
}

pub fn removexattr(path: &Path, name: &str) -> i32 {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
}

/// Calls a path-taking libc function, returning 0 or the errno.
pub fn path_call(path: &Path, f: impl FnOnce(*const libc::c_char) -> libc::c_int) -> i32 {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    if f(p.as_ptr()) == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
}

/// Tries every write operation a program can issue on the mount and checks
/// each answers EROFS. `file` is an existing virtual file, `dir` an existing
/// virtual directory holding it.
pub fn assert_every_write_is_erofs(file: &Path, dir: &Path) {
    use std::fs::OpenOptions;
    const EROFS: i32 = libc::EROFS;
    let new = dir.join("new.flac");
    let checks: Vec<(&str, i32)> = vec![
        ("write new file", errno(std::fs::write(&new, b"x"))),
        ("create existing", errno(std::fs::File::create(file))),
        (
            "open O_WRONLY",
            errno(OpenOptions::new().write(true).open(file)),
        ),
        (
            "open O_RDWR",
            errno(OpenOptions::new().read(true).write(true).open(file)),
        ),
        (
            "open O_APPEND",
            errno(OpenOptions::new().append(true).open(file)),
        ),
        (
            "open O_TRUNC",
            errno(OpenOptions::new().write(true).truncate(true).open(file)),
        ),
        (
            "create_new",
            errno(OpenOptions::new().write(true).create_new(true).open(&new)),
        ),
        ("remove_file", errno(std::fs::remove_file(file))),
        (
            "rename",
            errno(std::fs::rename(file, dir.join("renamed.flac"))),
        ),
        ("create_dir", errno(std::fs::create_dir(dir.join("newdir")))),
        ("remove_dir", errno(std::fs::remove_dir(dir))),
        (
            "set_permissions",
            errno(std::fs::set_permissions(
                file,
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )),
        ),
        (
            "symlink",
            errno(std::os::unix::fs::symlink("x", dir.join("link"))),
        ),
        (
            "hard_link",
            errno(std::fs::hard_link(file, dir.join("hard.flac"))),
        ),
        // SAFETY (all below): each closure gets a valid NUL-terminated path.
        (
            "truncate",
            path_call(file, |p| unsafe { libc::truncate(p, 0) }),
        ),
        (
            "chown",
            path_call(file, |p| unsafe { libc::chown(p, 1, 1) }),
        ),
        (
            "mkfifo",
            path_call(&dir.join("fifo"), |p| unsafe { libc::mkfifo(p, 0o644) }),
        ),
        (
            "utimensat",
            path_call(file, |p| unsafe {
                libc::utimensat(libc::AT_FDCWD, p, std::ptr::null(), 0)
            }),
        ),
        ("setxattr", setxattr(file, "user.musicfs.path", b"x")),
        ("setxattr new", setxattr(file, "user.other", b"x")),
        ("removexattr", removexattr(file, "user.musicfs.path")),
    ];
    let wrong: Vec<String> = checks
        .iter()
        .filter(|(_, e)| *e != EROFS)
        .map(|(op, e)| format!("{op}: errno {e}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "write operations not refused with EROFS: {wrong:?}"
    );
    assert!(!new.exists() && file.exists());
}
