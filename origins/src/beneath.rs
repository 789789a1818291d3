//! Opening files strictly beneath an origin root.
//!
//! Relative paths arrive from the catalog and, through it, from whatever was
//! on disk or in tags, so they are untrusted. Two rules keep every open inside
//! the root:
//!
//! 1. Lexically, a relative path is a non-empty sequence of `/`-separated,
//!    non-empty components, none of them `.` or `..`, with no NUL byte.
//! 2. On disk, no component is followed through a symlink: the walk opens
//!    each directory with `openat(O_PATH|O_DIRECTORY|O_NOFOLLOW)` relative to
//!    the previous one, and the last component with `O_NOFOLLOW`. This is the
//!    same view `list()` has (it never follows symlinks either), and unlike a
//!    check-then-open it leaves no window for a directory to be swapped for a
//!    symlink in between.
//!
//! The root is opened by path on each call rather than held open, so that an
//! origin on removable storage can still be unmounted while musicfs runs.
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Refuses relative paths that could name anything outside the root.
pub(crate) fn check_rel(rel: &[u8]) -> io::Result<()> {
    let refuse = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
    if rel.is_empty() {
        return refuse("empty relative path");
    }
    if rel[0] == b'/' {
        return refuse("absolute path where a path relative to the origin root is required");
    }
    if rel.contains(&0) {
        return refuse("NUL byte in path");
    }
    for component in rel.split(|b| *b == b'/') {
        match component {
            b"" => return refuse("empty path component"),
            b"." | b".." => {
                return refuse("`.` or `..` component: the path must stay below the root")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Opens `rel` below `root` with `flags` (plus `O_NOFOLLOW|O_CLOEXEC`),
/// following no symlink anywhere on the way.
pub(crate) fn open_beneath(root: &Path, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
    check_rel(rel)?;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut components = rel.split(|b| *b == b'/');
    // check_rel guarantees at least one (non-empty) component.
    let last = components.next_back().unwrap_or_default();
    let mut dir = open(root, dir_flags, Mode::empty())?;
    for component in components {
        dir = openat(
            &dir,
            OsStr::from_bytes(component),
            dir_flags | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
    }
    Ok(openat(
        &dir,
        OsStr::from_bytes(last),
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_check_refuses_escapes() {
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../x",
            b"a/../../x",
            b"a/..",
            b"./a",
            b"a//b",
            b"a/",
            b"a\0b",
        ] {
            let err = check_rel(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        for good in [&b"a"[..], b"a/b.flac", b"..a/b..", b"\xff\xfe/x"] {
            check_rel(good).unwrap();
        }
    }

    #[test]
    fn symlinked_directories_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("file-link"))
            .unwrap();
        let err = open_beneath(dir.path(), b"link/secret", OFlag::O_RDONLY).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
        let err = open_beneath(dir.path(), b"file-link", OFlag::O_RDONLY).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}
