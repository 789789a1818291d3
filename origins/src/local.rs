//! `LocalOrigin`: a directory on this machine.
//!
//! Symlinks are never followed, neither by [`Origin::list`] nor by
//! [`LocalOrigin::open`]: a symlink could lead out of the tree (or into a
//! loop), and following only the ones that stay inside would need a
//! realpath check per entry for little gain. A library that relies on
//! symlinks can be given as several origins instead.
use crate::beneath::{check_rel, open_beneath};
use crate::{Change, Entry, Error, Origin, OriginKind, Result, WatchGuard};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;
use walkdir::WalkDir;

/// How long a path must stay quiet before its change is reported.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);

/// A local directory. Files are opened `O_RDONLY|O_NOATIME` (falling back to
/// `O_RDONLY` where `O_NOATIME` is refused) so reads do not even touch atime.
pub struct LocalOrigin {
    name: String,
    root: PathBuf,
    debounce: Duration,
}

impl LocalOrigin {
    /// Fails with `Error::BadRoot` if `root` is not a readable directory.
    /// The root is canonicalised, so [`LocalOrigin::root`] is absolute and
    /// free of symlinks.
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self> {
        let name = name.into();
        let given = root.into();
        let bad = |source| Error::BadRoot {
            origin: name.clone(),
            path: given.clone(),
            source,
        };
        let root = std::fs::canonicalize(&given).map_err(bad)?;
        if !std::fs::metadata(&root).map_err(bad)?.is_dir() {
            return Err(bad(io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        std::fs::read_dir(&root).map_err(bad)?;
        Ok(LocalOrigin {
            name,
            root,
            debounce: DEFAULT_DEBOUNCE,
        })
    }

    /// How long a path must stay quiet before the watcher reports it
    /// (default [`DEFAULT_DEBOUNCE`]).
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Opens a regular file below the root read-only, `O_NOATIME|O_CLOEXEC`
    /// (without `O_NOATIME` where the kernel refuses it: files we do not
    /// own). Refuses paths with `..` or a leading `/`, and symlinks anywhere
    /// on the way (`ENOTDIR`/`ELOOP`); the result is always a regular file,
    /// suitable as a FUSE passthrough backing fd.
    pub fn open(&self, rel_path: &[u8]) -> Result<File> {
        self.open_file(rel_path)
            .map_err(|e| self.io_error(rel_path, e))
    }

    fn open_file(&self, rel_path: &[u8]) -> io::Result<File> {
        // O_NONBLOCK so that a FIFO planted in the tree cannot hang the open;
        // it is cleared again below once the file is known to be regular.
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK;
        let fd = match open_beneath(&self.root, rel_path, flags | OFlag::O_NOATIME) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                open_beneath(&self.root, rel_path, flags)?
            }
            other => other?,
        };
        let file = File::from(fd);
        check_regular(&file.metadata()?)?;
        let fl = OFlag::from_bits_retain(fcntl(&file, FcntlArg::F_GETFL)?);
        fcntl(&file, FcntlArg::F_SETFL(fl - OFlag::O_NONBLOCK))?;
        Ok(file)
    }

    fn io_error(&self, rel_path: &[u8], source: io::Error) -> Error {
        Error::Io {
            origin: self.name.clone(),
            path: PathBuf::from(OsStr::from_bytes(rel_path)),
            source,
        }
    }
}

fn check_regular(meta: &Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(())
    } else if ft.is_dir() {
        Err(io::Error::from_raw_os_error(libc::EISDIR))
    } else if ft.is_symlink() {
        Err(io::Error::from_raw_os_error(libc::ELOOP))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

fn entry_of(rel_path: Vec<u8>, meta: &Metadata) -> Entry {
    Entry {
        rel_path,
        size: meta.len(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
    }
}

/// Whether a path component is hidden (leading `.`): such files and
/// directories are skipped everywhere (editor and downloader temporaries,
/// `.Trash`, `.stfolder`...).
pub(crate) fn is_hidden(name: &OsStr) -> bool {
    name.as_bytes().first() == Some(&b'.')
}

/// What [`walk`] finds.
pub(crate) enum Visit {
    File(Entry),
    /// A directory other than the start, relative to the root.
    Dir(Vec<u8>),
}

/// Walks `start` (the root or a directory below it) in name order, without
/// following symlinks and skipping hidden entries. Unreadable entries below
/// `start` are logged and skipped; only `start` itself being unreadable is an
/// error — an empty listing must never stand for a vanished root, or a
/// rescan would drop the whole library.
pub(crate) fn walk(
    origin: &str,
    root: &Path,
    start: &Path,
    visit: &mut dyn FnMut(Visit),
) -> Result<()> {
    let walker = WalkDir::new(start)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    for item in walker {
        let entry = match item {
            Ok(entry) => entry,
            Err(e) if e.depth() == 0 => {
                let message = e.to_string();
                return Err(Error::Io {
                    origin: origin.to_string(),
                    path: start.to_path_buf(),
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other(message)),
                });
            }
            Err(e) => {
                tracing::warn!(origin, path = ?e.path(), error = %e, "skipping unreadable entry");
                continue;
            }
        };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let rel = rel.as_os_str().as_bytes().to_vec();
        let ft = entry.file_type();
        if ft.is_dir() {
            if entry.depth() > 0 {
                visit(Visit::Dir(rel));
            }
        } else if ft.is_file() {
            // Without follow_links, this is an lstat of a regular file.
            match entry.metadata() {
                Ok(meta) => visit(Visit::File(entry_of(rel, &meta))),
                // Deleted between readdir and stat: the watcher will say so.
                Err(e) => {
                    tracing::debug!(origin, path = ?entry.path(), error = %e, "file vanished while listing")
                }
            }
        }
        // Symlinks, FIFOs, sockets and devices are not music.
    }
    Ok(())
}

impl Origin for LocalOrigin {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Local
    }
    fn location(&self) -> String {
        self.root.display().to_string()
    }
    /// Regular files only, in path order; symlinks are not followed.
    fn list(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        walk(&self.name, &self.root, &self.root, &mut |visit| {
            if let Visit::File(entry) = visit {
                entries.push(entry);
            }
        })?;
        Ok(entries)
    }
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        let stat = || -> io::Result<Entry> {
            let fd = open_beneath(&self.root, rel_path, OFlag::O_PATH)?;
            let meta = File::from(fd).metadata()?;
            check_regular(&meta)?;
            Ok(entry_of(rel_path.to_vec(), &meta))
        };
        stat().map_err(|e| self.io_error(rel_path, e))
    }
    /// Opens the file for each call; hot paths keep a [`LocalOrigin::open`]
    /// handle instead.
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        let file = self.open(rel_path)?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(rel_path, e)),
            }
        }
        Ok(filled)
    }
    /// `None` for paths that would leave the root lexically. The path may
    /// still contain symlinks; open through [`LocalOrigin::open`] to be sure
    /// of staying inside.
    fn open_local(&self, rel_path: &[u8]) -> Option<Result<File>> {
        Some(self.open(rel_path))
    }

    fn local_path(&self, rel_path: &[u8]) -> Option<PathBuf> {
        check_rel(rel_path).ok()?;
        Some(self.root.join(OsString::from_vec(rel_path.to_vec())))
    }
    fn watch(&self, tx: Sender<Change>) -> Result<Option<Box<dyn WatchGuard>>> {
        let guard = crate::watch::start(self.name.clone(), self.root.clone(), self.debounce, tx)?;
        Ok(Some(Box::new(guard)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn rels(entries: &[Entry]) -> Vec<&[u8]> {
        entries.iter().map(|e| e.rel_path.as_slice()).collect()
    }

    #[test]
    fn new_canonicalises_and_refuses_bad_roots() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("music")).unwrap();
        let origin = LocalOrigin::new("m", dir.path().join("music/../music")).unwrap();
        assert_eq!(
            origin.root(),
            fs::canonicalize(dir.path().join("music")).unwrap()
        );

        let missing = LocalOrigin::new("m", dir.path().join("nope"))
            .err()
            .unwrap();
        assert!(matches!(missing, Error::BadRoot { .. }), "{missing}");
        assert_eq!(missing.errno(), libc::ENOENT);
        fs::write(dir.path().join("file"), b"x").unwrap();
        let file = LocalOrigin::new("m", dir.path().join("file"))
            .err()
            .unwrap();
        assert!(matches!(file, Error::BadRoot { .. }), "{file}");
        assert_eq!(file.errno(), libc::ENOTDIR);
    }

    #[test]
    fn list_walks_nested_skips_hidden_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("Artist/Album/CD1")).unwrap();
        fs::create_dir_all(root.join(".hidden-dir")).unwrap();
        fs::write(root.join("top.flac"), b"12345").unwrap();
        fs::write(root.join("Artist/Album/01.mp3"), b"abc").unwrap();
        fs::write(root.join("Artist/Album/CD1/02.ogg"), b"").unwrap();
        fs::write(root.join(".hidden-file"), b"x").unwrap();
        fs::write(root.join(".hidden-dir/inside.flac"), b"x").unwrap();
        fs::write(root.join("Artist/.partial.flac"), b"x").unwrap();
        // Non-UTF-8 name (Latin-1 "é").
        let latin1 = OsStr::from_bytes(b"caf\xe9.flac");
        fs::write(root.join("Artist").join(latin1), b"xy").unwrap();
        fs::write(outside.path().join("escaped.flac"), b"x").unwrap();
        symlink(outside.path(), root.join("link-out")).unwrap();
        symlink(root.join("top.flac"), root.join("link-in.flac")).unwrap();

        let origin = LocalOrigin::new("m", root).unwrap();
        let entries = origin.list().unwrap();
        assert_eq!(
            rels(&entries),
            vec![
                &b"Artist/Album/01.mp3"[..],
                b"Artist/Album/CD1/02.ogg",
                b"Artist/caf\xe9.flac",
                b"top.flac",
            ]
        );
        let top = &entries[3];
        assert_eq!(top.size, 5);
        let meta = fs::metadata(root.join("top.flac")).unwrap();
        assert_eq!(
            top.mtime_ns,
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
        );
        assert_eq!(origin.stat(b"top.flac").unwrap(), *top);
        assert_eq!(origin.stat(b"Artist/caf\xe9.flac").unwrap().size, 2);
    }

    #[test]
    fn list_skips_unreadable_subdirectories_but_fails_on_vanished_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("locked")).unwrap();
        fs::write(root.join("locked/a.flac"), b"x").unwrap();
        fs::write(root.join("b.flac"), b"x").unwrap();
        let origin = LocalOrigin::new("m", &root).unwrap();
        if nix::unistd::geteuid().is_root() {
            eprintln!(
                "running as root: permissions are not enforced, skipping the unreadable part"
            );
        } else {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
            let entries = origin.list();
            fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
            assert_eq!(rels(&entries.unwrap()), vec![&b"b.flac"[..]]);
        }
        fs::remove_dir_all(&root).unwrap();
        let err = origin.list().unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT, "{err}");
    }

    #[test]
    fn read_at_offsets_and_eof() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        fs::write(dir.path().join("f.flac"), &data).unwrap();
        let origin = LocalOrigin::new("m", dir.path()).unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(origin.read_at(b"f.flac", 0, &mut buf).unwrap(), 100);
        assert_eq!(&buf[..], &data[..100]);
        assert_eq!(origin.read_at(b"f.flac", 4321, &mut buf).unwrap(), 100);
        assert_eq!(&buf[..], &data[4321..4421]);
        assert_eq!(origin.read_at(b"f.flac", 9950, &mut buf).unwrap(), 50);
        assert_eq!(&buf[..50], &data[9950..]);
        assert_eq!(origin.read_at(b"f.flac", 10_000, &mut buf).unwrap(), 0);
        assert_eq!(origin.read_at(b"f.flac", 1 << 40, &mut buf).unwrap(), 0);
        let missing = origin.read_at(b"nope.flac", 0, &mut buf).unwrap_err();
        assert_eq!(missing.errno(), libc::ENOENT);
    }

    #[test]
    fn open_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(dir.path().join("x"), b"outside").unwrap();
        fs::write(root.join("a/in.flac"), b"inside").unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        let origin = LocalOrigin::new("m", &root).unwrap();

        assert_eq!(
            origin.local_path(b"a/in.flac"),
            Some(origin.root().join("a/in.flac"))
        );
        let mut file = origin.open(b"a/in.flac").unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "inside");
        let flags = OFlag::from_bits_retain(fcntl(&file, FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NONBLOCK));

        for bad in [&b"../x"[..], b"/etc/passwd", b"a/../../x", b""] {
            let err = origin.open(bad).unwrap_err();
            let Error::Io { source, .. } = &err else {
                panic!("{err}")
            };
            assert_eq!(source.kind(), io::ErrorKind::InvalidInput, "{err}");
            assert_eq!(err.errno(), libc::EINVAL);
            assert!(origin.stat(bad).is_err());
            assert_eq!(origin.local_path(bad), None);
        }
        // Through a symlink out of the tree: refused on disk, not lexically.
        assert_eq!(
            origin.open(b"etc/passwd").unwrap_err().errno(),
            libc::ENOTDIR
        );
        assert_eq!(origin.stat(b"etc").unwrap_err().errno(), libc::ELOOP);
        assert_eq!(origin.open(b"a").unwrap_err().errno(), libc::EISDIR);
    }

    #[test]
    fn open_falls_back_without_noatime_on_files_of_others() {
        if nix::unistd::geteuid().is_root() {
            eprintln!("running as root: O_NOATIME is never refused, skipping");
            return;
        }
        // Owned by root, readable by all: O_NOATIME gives EPERM to us.
        let origin = LocalOrigin::new("etc", "/etc").unwrap();
        let file = origin.open(b"passwd").unwrap();
        let flags = OFlag::from_bits_retain(fcntl(&file, FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_NOATIME));
    }

    #[test]
    fn open_does_not_hang_on_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("pipe.flac"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let origin = LocalOrigin::new("m", dir.path()).unwrap();
        assert_eq!(origin.open(b"pipe.flac").unwrap_err().errno(), libc::EINVAL);
        assert!(origin.list().unwrap().is_empty());
    }
}
