//! Open file handles and the one-mode-per-inode rule.
//!
//! The kernel forbids an inode to be open in passthrough mode and through
//! the page cache at the same time. So the first open of an inode decides
//! its mode (passthrough if a backing file can be registered, daemon
//! otherwise) and every further open joins that mode until the last handle
//! of the inode is released. Passthrough handles share one backing id per
//! inode; it is unregistered when the last of them is released.
use crate::error::{Error, Result};
use crate::remote::RemoteHandle;
use musicfs_index::synth::{Plan, ReadAt};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a daemon-mode handle reads its bytes from.
pub(crate) enum Source {
    /// An open local file (pread).
    File { file: File, path: PathBuf },
    /// A remote file: reads through the chunk store (or straight from
    /// its origins when there is no store).
    Remote(RemoteHandle),
    /// A file whose tags were edited: synthesized bytes from `plan`, the
    /// rest from the original behind `base` (a local file or a remote
    /// handle, never itself spliced).
    Spliced { plan: Plan, base: Box<Source> },
}

/// The original under a splice, as the synthesizer's [`ReadAt`]. Keeps the
/// base's own error so a read fails with the base's errno and context
/// (a remote origin that is down, a local read error), not a generic one.
struct BaseReader<'a> {
    base: &'a Source,
    failed: Option<Error>,
}

impl ReadAt for BaseReader<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.base.read_at(offset, buf).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            self.failed = Some(e);
            io
        })
    }
}

impl Source {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        match self {
            Source::File { file, path } => loop {
                match file.read_at(buf, offset) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(Error::Read {
                            path: path.clone(),
                            offset,
                            source,
                        })
                    }
                    Ok(n) => return Ok(n),
                }
            },
            Source::Remote(handle) => handle.read_at(offset, buf),
            Source::Spliced { plan, base } => {
                let mut reader = BaseReader { base, failed: None };
                plan.read_at(&mut reader, offset, buf).map_err(|source| {
                    reader.failed.take().unwrap_or_else(|| Error::Read {
                        path: base.describe(),
                        offset,
                        source,
                    })
                })
            }
        }
    }

    /// What the source reads, for error messages.
    fn describe(&self) -> PathBuf {
        match self {
            Source::File { path, .. } => path.clone(),
            Source::Remote(_) => PathBuf::from("(remote file)"),
            Source::Spliced { base, .. } => base.describe(),
        }
    }

    /// Fills `buf` from `offset`, short only at end of file.
    pub(crate) fn read_full_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

/// The answer to an open.
pub(crate) enum Opened<B> {
    /// Reply with `opened_passthrough(fh, .., &backing)`.
    Passthrough { fh: u64, backing: Arc<B> },
    /// Reply with `opened(fh, ..)`; reads come to the daemon.
    Daemon { fh: u64 },
}

struct Handle {
    ino: u64,
    /// `None` for passthrough handles: the kernel reads them itself.
    source: Option<Arc<Source>>,
}

struct InodeState<B> {
    handles: usize,
    /// `Some` = the inode is open in passthrough mode.
    backing: Option<Arc<B>>,
}

struct Inner<B> {
    next_fh: u64,
    handles: HashMap<u64, Handle>,
    inodes: HashMap<u64, InodeState<B>>,
}

/// Every open handle. `B` is the kernel's backing-file registration
/// (`fuser::BackingId`; a stand-in in unit tests).
pub(crate) struct OpenTable<B> {
    inner: Mutex<Inner<B>>,
}

impl<B> OpenTable<B> {
    pub(crate) fn new() -> OpenTable<B> {
        OpenTable {
            inner: Mutex::new(Inner {
                next_fh: 1,
                handles: HashMap::new(),
                inodes: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<B>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a handle on `ino` reading from `source`. If the inode has no
    /// open handle and `passthrough` is wanted, `register` is asked for a
    /// backing registration (under the table lock, so two first opens
    /// cannot race); `None` from it means daemon mode.
    pub(crate) fn open(
        &self,
        ino: u64,
        source: Source,
        passthrough: bool,
        register: impl FnOnce(&Source) -> Option<B>,
    ) -> Opened<B> {
        let mut inner = self.lock();
        let fh = inner.next_fh;
        inner.next_fh += 1;
        let backing = match inner.inodes.get_mut(&ino) {
            Some(state) => {
                state.handles += 1;
                state.backing.clone()
            }
            None => {
                let backing = if passthrough {
                    register(&source).map(Arc::new)
                } else {
                    None
                };
                inner.inodes.insert(
                    ino,
                    InodeState {
                        handles: 1,
                        backing: backing.clone(),
                    },
                );
                backing
            }
        };
        match backing {
            Some(backing) => {
                inner.handles.insert(fh, Handle { ino, source: None });
                Opened::Passthrough { fh, backing }
            }
            None => {
                let source = Some(Arc::new(source));
                inner.handles.insert(fh, Handle { ino, source });
                Opened::Daemon { fh }
            }
        }
    }

    /// The source of a daemon-mode handle.
    pub(crate) fn source(&self, fh: u64) -> Option<Arc<Source>> {
        self.lock().handles.get(&fh).and_then(|h| h.source.clone())
    }

    /// Forgets `fh`; returns false if it was not open. The last release of
    /// an inode drops its backing registration (after the lock is let go).
    pub(crate) fn release(&self, fh: u64) -> bool {
        let dropped_backing;
        {
            let mut inner = self.lock();
            let Some(handle) = inner.handles.remove(&fh) else {
                return false;
            };
            let ino = handle.ino;
            let last = match inner.inodes.get_mut(&ino) {
                Some(state) => {
                    state.handles = state.handles.saturating_sub(1);
                    state.handles == 0
                }
                None => false,
            };
            dropped_backing = if last {
                inner.inodes.remove(&ino).and_then(|s| s.backing)
            } else {
                None
            };
        }
        drop(dropped_backing);
        true
    }

    /// Open handles of `ino` and whether they are in passthrough mode.
    #[cfg(test)]
    pub(crate) fn inode_mode(&self, ino: u64) -> Option<(usize, bool)> {
        self.lock()
            .inodes
            .get(&ino)
            .map(|s| (s.handles, s.backing.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Stands in for a kernel backing registration; counts unregistrations.
    struct FakeBacking(Arc<AtomicUsize>);
    impl Drop for FakeBacking {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn file_source() -> (tempfile::TempDir, Source) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        (dir, Source::File { file, path })
    }

    #[test]
    fn passthrough_inode_shares_one_backing_until_last_release() {
        let closed = Arc::new(AtomicUsize::new(0));
        let table = OpenTable::new();
        let (_d, s1) = file_source();
        let (_d2, s2) = file_source();
        let mut registrations = 0;
        let a = table.open(5, s1, true, |_| {
            registrations += 1;
            Some(FakeBacking(closed.clone()))
        });
        let b = table.open(5, s2, true, |_| {
            registrations += 1;
            Some(FakeBacking(closed.clone()))
        });
        assert_eq!(registrations, 1);
        let (
            Opened::Passthrough {
                fh: fa,
                backing: ba,
            },
            Opened::Passthrough {
                fh: fb,
                backing: bb,
            },
        ) = (a, b)
        else {
            panic!("both opens must be passthrough");
        };
        assert!(Arc::ptr_eq(&ba, &bb));
        drop((ba, bb));
        assert_ne!(fa, fb);
        assert!(table.source(fa).is_none());
        assert_eq!(table.inode_mode(5), Some((2, true)));
        assert!(table.release(fa));
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        assert!(table.release(fb));
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        assert_eq!(table.inode_mode(5), None);
        assert!(!table.release(fb), "double release is refused");
    }

    #[test]
    fn daemon_mode_sticks_while_open() {
        let closed = Arc::new(AtomicUsize::new(0));
        let table = OpenTable::new();
        let (_d, s1) = file_source();
        let (_d2, s2) = file_source();
        // First open cannot register: daemon mode.
        let a = table.open(9, s1, true, |_| None::<FakeBacking>);
        let Opened::Daemon { fh: fa } = a else {
            panic!("daemon expected")
        };
        // A second open that could register must join daemon mode.
        let b = table.open(9, s2, true, |_| Some(FakeBacking(closed.clone())));
        let Opened::Daemon { fh: fb } = b else {
            panic!("daemon expected")
        };
        let mut buf = [0u8; 4];
        let src = table.source(fb).unwrap();
        assert_eq!(src.read_full_at(8, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        table.release(fa);
        table.release(fb);
        // Now closed: the next open may use passthrough.
        let (_d3, s3) = file_source();
        let c = table.open(9, s3, true, |_| Some(FakeBacking(closed.clone())));
        assert!(matches!(c, Opened::Passthrough { .. }));
    }

    #[test]
    fn spliced_source_reads_synthesized_bytes_then_the_original() {
        use musicfs_index::synth::Segment;
        let (_d, base) = file_source();
        let plan = Plan {
            segments: vec![
                Segment::Bytes(Arc::from(&b"HEAD"[..])),
                Segment::Original { offset: 6, len: 4 },
            ],
        };
        let src = Source::Spliced {
            plan,
            base: Box::new(base),
        };
        let mut buf = [0u8; 16];
        assert_eq!(src.read_full_at(0, &mut buf).unwrap(), 8);
        assert_eq!(&buf[..8], b"HEAD6789");
        assert_eq!(src.read_full_at(3, &mut buf[..3]).unwrap(), 3);
        assert_eq!(&buf[..3], b"D67");
        assert_eq!(src.read_full_at(8, &mut buf).unwrap(), 0);
    }

    #[test]
    fn spliced_source_over_a_shrunken_original_fails_with_eio() {
        use musicfs_index::synth::Segment;
        let (_d, base) = file_source();
        let src = Source::Spliced {
            plan: Plan {
                segments: vec![Segment::Original { offset: 6, len: 40 }],
            },
            base: Box::new(base),
        };
        let mut buf = [0u8; 16];
        let err = src.read_full_at(0, &mut buf).unwrap_err();
        assert_eq!(err.errno(), libc::EIO, "{err}");
    }

    #[test]
    fn passthrough_off_never_registers() {
        let table: OpenTable<FakeBacking> = OpenTable::new();
        let (_d, s) = file_source();
        let o = table.open(3, s, false, |_| panic!("must not register"));
        assert!(matches!(o, Opened::Daemon { .. }));
    }
}
