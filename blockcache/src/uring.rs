//! `UringBlockDevice`: a [`BlockDevice`] on io_uring with O_DIRECT.
//!
//! The device is an image file (created sparse at the requested size) or a
//! block device (a partition, loop or ublk device), opened with `O_DIRECT`
//! so the store's bytes bypass the page cache. Requests go through a small
//! pool of io_uring instances: a batch takes one ring and submits all its
//! requests as one `io_uring_enter` (up to [`RING_DEPTH`] in flight), then
//! reaps the completions; callers on other threads use other rings, so
//! batches from several threads run side by side.
//!
//! Memory safety with the kernel: every call waits for the completion of
//! every request it submitted before it returns, even when one of them
//! failed, so no buffer is released while the kernel may still read or
//! write it. The buffers are [`AlignedBuf`]s, borrowed for exactly that
//! long.
//!
//! Where io_uring cannot be used (`kernel.io_uring_disabled`, a seccomp
//! filter or an old kernel answering ENOSYS/EPERM, or a filesystem without
//! O_DIRECT), [`open_best`] opens the pread/pwrite [`FileBlockDevice`]
//! instead and says why once in the log.
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use io_uring::{opcode, types, IoUring};

use crate::device::{AlignedBuf, BlockDevice, ReadReq, ALIGN};
use crate::{Error, Result};

/// Requests in flight per ring (and per submission): batches larger than
/// this are submitted in windows of this size.
pub const RING_DEPTH: u32 = 64;

/// Most rings per device: the machines this runs on have few cores, and
/// each ring costs a file descriptor and a few pages.
const MAX_RINGS: usize = 4;

/// Set to `1` (or anything but `0`) to make [`open_best`] skip io_uring,
/// e.g. to compare the two paths or to work around a broken kernel.
pub const DISABLE_ENV: &str = "MUSICFS_NO_IO_URING";

/// A block device driven through io_uring, opened with `O_DIRECT`.
pub struct UringBlockDevice {
    path: PathBuf,
    file: File,
    size: u64,
    rings: Vec<Mutex<IoUring>>,
}

/// One request of a submission: `len` bytes at `ptr` ↔ `offset`.
struct Op {
    write: bool,
    ptr: *mut u8,
    len: usize,
    offset: u64,
    /// Bytes already transferred (short transfers are resubmitted).
    done: usize,
}

impl UringBlockDevice {
    /// Opens `path` with O_DIRECT and sets up the rings.
    ///
    /// - A regular file is created if missing and, when `size` is given and
    ///   larger than the file, extended sparsely to `size`.
    /// - A block device keeps its own size; `size`, when given, must fit.
    ///
    /// The usable size is rounded down to a multiple of [`ALIGN`].
    pub fn open(path: &Path, size: Option<u64>) -> Result<UringBlockDevice> {
        let (file, size) = open_direct(path, size)?;
        let nrings = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_RINGS);
        let mut rings = Vec::with_capacity(nrings);
        for _ in 0..nrings {
            let ring = new_ring().map_err(|source| io_err(path, "io_uring_setup", 0, source))?;
            rings.push(Mutex::new(ring));
        }
        Ok(UringBlockDevice {
            path: path.to_path_buf(),
            file,
            size,
            rings,
        })
    }

    /// The path this device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, op: &'static str, offset: u64, len: usize) -> Result<()> {
        crate::device::check_request(self, op, offset, len)
    }

    /// A free ring if there is one, else waits for this thread's ring.
    fn ring(&self) -> MutexGuard<'_, IoUring> {
        for ring in &self.rings {
            if let Ok(guard) = ring.try_lock() {
                return guard;
            }
        }
        let i = thread_slot() % self.rings.len();
        // A poisoned ring is still consistent: `run` never unwinds with
        // requests in flight (it aborts instead), so take it over.
        self.rings[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Submits `ops` (all checked) in windows of RING_DEPTH and waits for
    /// every one of them. Returns the first error, after all completed.
    fn run(&self, ops: &mut [Op]) -> Result<()> {
        let mut guard = self.ring();
        let mut first_err: Option<Error> = None;
        for window in ops.chunks_mut(RING_DEPTH as usize) {
            if let Err(e) = self.run_window(&mut guard, window) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn run_window(&self, ring: &mut MutexGuard<'_, IoUring>, ops: &mut [Op]) -> Result<()> {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut first_err: Option<Error> = None;
        let mut in_flight = 0usize;
        for (i, op) in ops.iter().enumerate() {
            push(ring, fd, op, i);
            in_flight += 1;
        }
        while in_flight > 0 {
            // Wait for the whole window: one wakeup per batch, not per
            // request (the batch is done only when its last read is).
            match ring.submit_and_wait(in_flight) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                Err(e) => {
                    // io_uring_enter itself failed (EBADF, EFAULT, ...): the
                    // requests already taken by the kernel may still write
                    // into buffers we would release by returning. Nothing
                    // sound is left to do.
                    tracing::error!(device = %self.describe(), error = %e,
                        "io_uring_enter failed with requests in flight; aborting");
                    std::process::abort();
                }
            }
            let mut resubmit = Vec::new();
            for cqe in ring.completion() {
                in_flight -= 1;
                let i = cqe.user_data() as usize;
                let Some(op) = ops.get_mut(i) else { continue };
                let res = cqe.result();
                let what = if op.write { "write" } else { "read" };
                if res == -libc::EINTR || res == -libc::EAGAIN {
                    resubmit.push(i);
                } else if res < 0 {
                    first_err.get_or_insert(io_err(
                        &self.path,
                        what,
                        op.offset + op.done as u64,
                        std::io::Error::from_raw_os_error(-res),
                    ));
                } else if res == 0 && op.done < op.len {
                    first_err.get_or_insert(io_err(
                        &self.path,
                        what,
                        op.offset + op.done as u64,
                        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no progress"),
                    ));
                } else {
                    op.done += res as usize;
                    if op.done < op.len {
                        resubmit.push(i);
                    }
                }
            }
            for i in resubmit {
                push(ring, fd, &ops[i], i);
                in_flight += 1;
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Queues one read or write SQE for the unfinished part of `op`.
fn push(ring: &mut IoUring, fd: types::Fd, op: &Op, index: usize) {
    let len = (op.len - op.done) as u32;
    let offset = op.offset + op.done as u64;
    // `op.ptr` + done stays inside the caller's buffer (done < len).
    let ptr = op.ptr.wrapping_add(op.done);
    let sqe = if op.write {
        opcode::Write::new(fd, ptr as *const u8, len)
            .offset(offset)
            .build()
    } else {
        opcode::Read::new(fd, ptr, len).offset(offset).build()
    }
    .user_data(index as u64);
    // Never more than RING_DEPTH SQEs are queued before a submit (a window
    // is at most that long, a resubmission replaces a reaped completion),
    // and the ring's SQ has RING_DEPTH entries, so the push cannot fail;
    // if it ever did, flushing the queue first makes room.
    loop {
        // SAFETY: the SQE points at `len` bytes of a buffer the caller
        // borrows (`&mut` for reads) for the whole `run` call, and `run`
        // waits for this SQE's completion before returning, so the memory
        // stays valid and unaliased for as long as the kernel uses it.
        if unsafe { ring.submission().push(&sqe) }.is_ok() {
            return;
        }
        if let Err(e) = ring.submit() {
            tracing::debug!(error = %e, "io_uring submit to make room");
        }
    }
}

impl BlockDevice for UringBlockDevice {
    fn describe(&self) -> String {
        format!("{} (io_uring, O_DIRECT)", self.path.display())
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> Result<()> {
        self.check("read", offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let mut ops = [Op {
            write: false,
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            offset,
            done: 0,
        }];
        self.run(&mut ops)
    }

    fn write_at(&self, buf: &AlignedBuf, offset: u64) -> Result<()> {
        self.check("write", offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let mut ops = [Op {
            write: true,
            // Only ever read by the kernel (a Write SQE).
            ptr: buf.as_ptr() as *mut u8,
            len: buf.len(),
            offset,
            done: 0,
        }];
        self.run(&mut ops)
    }

    fn flush(&self) -> Result<()> {
        let mut ring = self.ring();
        let sqe = opcode::Fsync::new(types::Fd(self.file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(u64::MAX);
        loop {
            // SAFETY: an fsync SQE references no memory of ours.
            if unsafe { ring.submission().push(&sqe) }.is_ok() {
                break;
            }
            let _ = ring.submit();
        }
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                Err(e) => return Err(io_err(&self.path, "fdatasync", 0, e)),
            }
            let next = ring.completion().next();
            if let Some(cqe) = next {
                let res = cqe.result();
                if res == -libc::EINTR || res == -libc::EAGAIN {
                    // SAFETY: as above, no memory referenced.
                    while unsafe { ring.submission().push(&sqe) }.is_err() {
                        let _ = ring.submit();
                    }
                    continue;
                }
                if res < 0 {
                    return Err(io_err(
                        &self.path,
                        "fdatasync",
                        0,
                        std::io::Error::from_raw_os_error(-res),
                    ));
                }
                return Ok(());
            }
        }
    }

    fn read_batch(&self, reqs: &mut [ReadReq]) -> Result<()> {
        for req in reqs.iter() {
            self.check("read", req.offset, req.buf.len())?;
        }
        let mut ops: Vec<Op> = reqs
            .iter_mut()
            .filter(|r| !r.buf.is_empty())
            .map(|r| Op {
                write: false,
                ptr: r.buf.as_mut_ptr(),
                len: r.buf.len(),
                offset: r.offset,
                done: 0,
            })
            .collect();
        self.run(&mut ops)
    }

    fn write_batch(&self, writes: &[(u64, &AlignedBuf)]) -> Result<()> {
        for (offset, buf) in writes {
            self.check("write", *offset, buf.len())?;
        }
        let mut ops: Vec<Op> = writes
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(offset, buf)| Op {
                write: true,
                ptr: buf.as_ptr() as *mut u8,
                len: buf.len(),
                offset: *offset,
                done: 0,
            })
            .collect();
        self.run(&mut ops)
    }
}

fn io_err(path: &Path, op: &'static str, offset: u64, source: std::io::Error) -> Error {
    Error::Io {
        device: path.display().to_string(),
        op,
        offset,
        source,
    }
}

fn new_ring() -> std::io::Result<IoUring> {
    IoUring::builder().build(RING_DEPTH)
}

/// A small per-thread number, to spread blocked callers over the rings.
fn thread_slot() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

/// Opens `path` read-write with O_DIRECT; creates/extends an image file.
fn open_direct(path: &Path, size: Option<u64>) -> Result<(File, u64)> {
    let is_blockdev = std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_blockdev)
        .truncate(false)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(path, "open (O_DIRECT)", 0, e))?;
    let cur = file
        .seek(SeekFrom::End(0))
        .map_err(|e| io_err(path, "seek to end", 0, e))?;
    let size = match (is_blockdev, size) {
        (false, Some(want)) if want > cur => {
            // set_len on a fresh file leaves it sparse: nothing is written.
            file.set_len(want)
                .map_err(|e| io_err(path, "extend image", want, e))?;
            want
        }
        (true, Some(want)) if want > cur => {
            return Err(io_err(
                path,
                "open",
                want,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("device holds {cur} bytes, {want} requested"),
                ),
            ));
        }
        (_, Some(want)) => want,
        (_, None) => cur,
    };
    Ok((file, size - size % ALIGN as u64))
}

/// Why io_uring cannot be used here, if it cannot; `None` when it can.
pub fn io_uring_unavailable() -> Option<String> {
    if std::env::var(DISABLE_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
        return Some(format!("{DISABLE_ENV} is set"));
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            return Some("kernel.io_uring_disabled = 2".to_string());
        }
    }
    match new_ring() {
        Ok(_) => None,
        Err(e) => Some(format!("io_uring_setup: {e}")),
    }
}

static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

fn log_fallback_once(path: &Path, reason: &str) {
    if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            device = %path.display(),
            reason,
            "io_uring unavailable; the chunk store uses pread/pwrite instead"
        );
    }
}

/// Opens `path` with the best device this kernel allows: io_uring with
/// O_DIRECT, else the pread/pwrite [`FileBlockDevice`] (the reason is
/// logged once per process). `size` as in [`UringBlockDevice::open`].
pub fn open_best(path: &Path, size: Option<u64>) -> Result<Box<dyn BlockDevice>> {
    open_best_inner(path, size, io_uring_unavailable())
}

fn open_best_inner(
    path: &Path,
    size: Option<u64>,
    unavailable: Option<String>,
) -> Result<Box<dyn BlockDevice>> {
    let reason = match unavailable {
        Some(reason) => reason,
        None => match UringBlockDevice::open(path, size) {
            Ok(dev) => return Ok(Box::new(dev)),
            // The filesystem refuses O_DIRECT, or the ring could not be
            // made after all (EPERM from a seccomp filter, ENOMEM from the
            // memlock limit): the fallback still works there.
            Err(Error::Io { op, source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::ENOMEM)
                ) =>
            {
                format!("{op}: {source}")
            }
            Err(e) => return Err(e),
        },
    };
    log_fallback_once(path, &reason);
    Ok(Box::new(crate::FileBlockDevice::open(path, size)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: u64) -> (tempfile::TempDir, PathBuf, UringBlockDevice) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.img");
        let dev = UringBlockDevice::open(&path, Some(size)).expect("open image");
        (dir, path, dev)
    }

    fn pattern(len: usize, seed: u8) -> AlignedBuf {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        AlignedBuf::from_slice(&data)
    }

    #[test]
    fn image_is_created_sparse_at_size() {
        let (_d, path, dev) = image(64 << 20);
        assert_eq!(dev.size(), 64 << 20);
        let meta = std::fs::metadata(&path).expect("metadata");
        assert_eq!(meta.len(), 64 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < 1 << 20, "image is not sparse");
        assert!(dev.describe().contains("io_uring"));
    }

    #[test]
    fn write_flush_read_round_trip() {
        let (_d, path, dev) = image(1 << 20);
        let w = pattern(3 * ALIGN, 7);
        dev.write_at(&w, 8 * ALIGN as u64).expect("write");
        dev.flush().expect("flush");
        let mut r = AlignedBuf::zeroed(3 * ALIGN);
        dev.read_at(&mut r, 8 * ALIGN as u64).expect("read");
        assert_eq!(r.as_slice(), w.as_slice());
        // A fresh open (new file, new rings) sees the same bytes.
        drop(dev);
        let dev = UringBlockDevice::open(&path, None).expect("reopen");
        assert_eq!(dev.size(), 1 << 20);
        let mut r = AlignedBuf::zeroed(3 * ALIGN);
        dev.read_at(&mut r, 8 * ALIGN as u64).expect("read");
        assert_eq!(r.as_slice(), w.as_slice());
    }

    #[test]
    fn batches_of_32_and_more_than_a_ring() {
        let (_d, _p, dev) = image(8 << 20);
        for n in [32usize, RING_DEPTH as usize + 9] {
            let bufs: Vec<AlignedBuf> = (0..n).map(|i| pattern(16 << 10, i as u8)).collect();
            let writes: Vec<(u64, &AlignedBuf)> = bufs
                .iter()
                .enumerate()
                // Reverse order across the device, spaced apart.
                .map(|(i, b)| (((n - 1 - i) * (20 << 10) / ALIGN * ALIGN) as u64, b))
                .collect();
            dev.write_batch(&writes).expect("write batch");
            dev.flush().expect("flush");
            let mut reqs: Vec<ReadReq> = writes
                .iter()
                .map(|(off, _)| ReadReq {
                    offset: *off,
                    buf: AlignedBuf::zeroed(16 << 10),
                })
                .collect();
            dev.read_batch(&mut reqs).expect("read batch");
            for (req, want) in reqs.iter().zip(&bufs) {
                assert_eq!(req.buf.as_slice(), want.as_slice(), "batch of {n}");
            }
        }
    }

    #[test]
    fn concurrent_threads_share_the_rings() {
        let (_d, _p, dev) = image(4 << 20);
        std::thread::scope(|s| {
            for t in 0..6u8 {
                let dev = &dev;
                s.spawn(move || {
                    for round in 0..20u8 {
                        let off = (t as u64 * 8 + (round % 8) as u64) * ALIGN as u64 * 4;
                        let w = pattern(4 * ALIGN, t ^ round);
                        dev.write_at(&w, off).expect("write");
                        let mut r = AlignedBuf::zeroed(4 * ALIGN);
                        dev.read_at(&mut r, off).expect("read");
                        assert_eq!(r.as_slice(), w.as_slice());
                    }
                });
            }
        });
    }

    #[test]
    fn unaligned_requests_are_rejected() {
        let (_d, _p, dev) = image(1 << 20);
        let buf = AlignedBuf::zeroed(ALIGN);
        match dev.write_at(&buf, 512) {
            Err(Error::Unaligned { offset: 512, .. }) => {}
            other => panic!("want Unaligned, got {other:?}"),
        }
        let mut reqs = vec![
            ReadReq {
                offset: 0,
                buf: AlignedBuf::zeroed(ALIGN),
            },
            ReadReq {
                offset: 100,
                buf: AlignedBuf::zeroed(ALIGN),
            },
        ];
        let err = dev.read_batch(&mut reqs).expect_err("unaligned batch");
        assert!(matches!(err, Error::Unaligned { .. }), "{err:?}");
        assert_eq!(err.errno(), libc::EINVAL);
    }

    #[test]
    fn out_of_range_requests_are_rejected() {
        let (_d, _p, dev) = image(1 << 20);
        let mut buf = AlignedBuf::zeroed(2 * ALIGN);
        let end = dev.size();
        match dev.read_at(&mut buf, end - ALIGN as u64) {
            Err(Error::OutOfRange { size, .. }) => assert_eq!(size, end),
            other => panic!("want OutOfRange, got {other:?}"),
        }
        let err = dev.write_at(&buf, u64::MAX - 4095).expect_err("overflow");
        assert!(matches!(err, Error::OutOfRange { .. }), "{err:?}");
        // The last whole block is fine.
        dev.read_at(&mut buf, end - 2 * ALIGN as u64)
            .expect("last blocks");
    }

    #[test]
    fn forced_fallback_opens_the_file_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fallback.img");
        let dev = open_best_inner(&path, Some(1 << 20), Some("forced by test".into()))
            .expect("fallback open");
        assert!(!dev.describe().contains("io_uring"), "{}", dev.describe());
        let w = pattern(ALIGN, 3);
        dev.write_at(&w, ALIGN as u64).expect("write");
        dev.flush().expect("flush");
        assert!(FALLBACK_LOGGED.load(Ordering::Relaxed));
        // The io_uring device reads what the fallback wrote: same layout.
        let best = open_best_inner(&path, None, None).expect("best open");
        assert!(best.describe().contains("io_uring"), "{}", best.describe());
        let mut r = AlignedBuf::zeroed(ALIGN);
        best.read_at(&mut r, ALIGN as u64).expect("read");
        assert_eq!(r.as_slice(), w.as_slice());
    }
}
