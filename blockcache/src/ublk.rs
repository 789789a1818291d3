//! `UblkServer`: musicfs serves a ublk block device over a backing file or
//! partition, and the chunk store then lives on `/dev/ublkbN`.
//!
//! The target is a plain loop: `/dev/ublkbN` block `i` is backing block
//! `i`, so the cache content lives in the backing file and a new server
//! over the same file (after a clean stop, a crash or `kill -9`) shows the
//! same bytes. Reads and writes go to the backing file through each queue's
//! io_uring (O_DIRECT where the backing filesystem allows it); FLUSH is an
//! `fdatasync` of the backing file, so the store's ordering rule (data
//! durable before the journal record that makes it reachable) holds on the
//! backing storage too.
//!
//! The device uses 4 KiB logical blocks, so every request the server sees
//! is aligned for O_DIRECT, like every request of a [`crate::BlockDevice`].
//!
//! Life cycle: [`UblkServer::start`] adds the device (needs root and the
//! `ublk_drv` module), serves it on libublk's queue threads, and returns
//! once `/dev/ublkbN` exists. [`UblkServer::stop`] (or dropping the server)
//! stops and deletes the device. A server that died without stopping
//! leaves a dead device behind; [`delete_dead_device`] removes it.
//!
//! Built only with the `ublk` cargo feature: libublk generates its kernel
//! bindings with bindgen, which needs libclang at build time.
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};
use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::io::{BufDescList, UblkDev, UblkIOCtx, UblkQueue};
use libublk::{BufDesc, UblkFlags, UblkIORes};

use crate::{Error, Result, ALIGN};

/// The name the devices carry in libublk's json export.
const TARGET_NAME: &str = "musicfs";

/// How long `start` waits for the device to come up (the VM tests run
/// under TCG, where everything is slow).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Knobs of a ublk device; `Default` suits the chunk store.
#[derive(Debug, Clone)]
pub struct UblkOptions {
    /// The device id N of `/dev/ublkbN`, or `None` for the next free one.
    /// With an id, `start` first deletes a device of that id whose server
    /// died (see [`delete_dead_device`]), so a restarted daemon gets the
    /// same `/dev/ublkbN` back.
    pub id: Option<u32>,
    /// Hardware queues (one serving thread each).
    pub queues: u16,
    /// Requests in flight per queue.
    pub depth: u16,
    /// Largest request in bytes (the block layer splits larger ones).
    pub max_io_bytes: u32,
}

impl Default for UblkOptions {
    fn default() -> Self {
        UblkOptions {
            id: None,
            queues: 1,
            depth: 64,
            max_io_bytes: 512 << 10,
        }
    }
}

/// A running ublk device served by this process.
pub struct UblkServer {
    id: u32,
    device: PathBuf,
    backing: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for UblkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UblkServer")
            .field("device", &self.device)
            .field("backing", &self.backing)
            .finish()
    }
}

fn err(what: &str, op: &'static str, msg: impl std::fmt::Display) -> Error {
    Error::Io {
        device: what.to_string(),
        op,
        offset: 0,
        source: std::io::Error::other(msg.to_string()),
    }
}

fn ublk_err(what: &str, op: &'static str, e: libublk::UblkError) -> Error {
    let source = match e {
        libublk::UblkError::IOError(io) => io,
        libublk::UblkError::OtherError(n) | libublk::UblkError::UringIOError(n) if n < 0 => {
            std::io::Error::from_raw_os_error(-n)
        }
        other => std::io::Error::other(format!("{other:?}")),
    };
    Error::Io {
        device: what.to_string(),
        op,
        offset: 0,
        source,
    }
}

impl UblkServer {
    /// Serves a new ublk device over `backing` with `queues` queues of
    /// `depth` requests; returns once `/dev/ublkbN` is ready.
    pub fn start(backing: &Path, queues: u16, depth: u16) -> Result<UblkServer> {
        Self::start_with(
            backing,
            &UblkOptions {
                queues,
                depth,
                ..UblkOptions::default()
            },
        )
    }

    /// [`UblkServer::start`] with every knob.
    pub fn start_with(backing: &Path, opts: &UblkOptions) -> Result<UblkServer> {
        let what = backing.display().to_string();
        if !Path::new("/dev/ublk-control").exists() {
            return Err(err(
                &what,
                "ublk start",
                "/dev/ublk-control is missing (modprobe ublk_drv; needs Linux 6.0+ and root)",
            ));
        }
        if let Some(id) = opts.id {
            // A daemon restarted after a crash finds its old device dead
            // under the same id: reclaim it (its content is the backing's).
            delete_dead_device(id)?;
        }
        let (file, size) = open_backing(backing)?;
        if size < ALIGN as u64 {
            return Err(err(
                &what,
                "ublk start",
                format!("backing holds only {size} bytes"),
            ));
        }
        let opts = opts.clone();
        let (tx, rx) = mpsc::channel::<Result<u32>>();
        let thread_what = what.clone();
        let thread = std::thread::Builder::new()
            .name("ublk-ctrl".into())
            .spawn(move || serve(file, size, opts, thread_what, tx))
            .map_err(|e| err(&what, "spawn ublk thread", e))?;
        let id = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(e) => {
                // The thread is stuck or died; it owns the device.
                return Err(err(&what, "ublk start", format!("no device came up: {e}")));
            }
        };
        let device = PathBuf::from(format!("/dev/ublkb{id}"));
        let server = UblkServer {
            id,
            device,
            backing: backing.to_path_buf(),
            thread: Some(thread),
        };
        // devtmpfs creates the node when the disk is added, a moment after
        // START_DEV returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.device.exists() {
            if Instant::now() > deadline {
                return Err(err(
                    &what,
                    "ublk start",
                    format!("{} never appeared", server.device.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(device = %server.device.display(), backing = %what, "ublk device serving");
        Ok(server)
    }

    /// `/dev/ublkbN`.
    pub fn device_path(&self) -> &Path {
        &self.device
    }

    /// N of `/dev/ublkbN`.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The backing file or partition.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Whether the device is still being served (false once it was
    /// stopped or deleted from outside).
    pub fn is_serving(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops serving and deletes the device; pending and later I/O on it
    /// fails. Close the store on it first: the device node disappears only
    /// once nobody has it open (this does not wait for that beyond 2 s).
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let what = self.device.display().to_string();
        if thread.is_finished() {
            // The device went away on its own (deleted from outside); the
            // thread has already cleaned up.
            let _ = thread.join();
            return Ok(());
        }
        // STOP_DEV ends the queues; the serving thread then returns from
        // run_target and its control handle deletes the device on drop.
        let ctrl =
            UblkCtrl::new_simple(self.id as i32).map_err(|e| ublk_err(&what, "ublk open", e))?;
        ctrl.kill_dev()
            .map_err(|e| ublk_err(&what, "ublk stop", e))?;
        thread
            .join()
            .map_err(|_| err(&what, "ublk stop", "serving thread panicked"))?;
        if wait_gone(self.id, Duration::from_secs(2)) {
            tracing::info!(device = %what, "ublk device removed");
        } else {
            tracing::warn!(device = %what, "ublk device stopped; still open elsewhere, removed once closed");
        }
        Ok(())
    }
}

impl Drop for UblkServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::warn!(error = %e, "stopping ublk device");
        }
    }
}

/// Deletes ublk device `id` if it exists and no running server serves it
/// (its server was killed, or stopped while the device was still open).
/// Returns whether there was one. Waits up to 10 s for whoever still has
/// it open to let go, then fails rather than hang.
pub fn delete_dead_device(id: u32) -> Result<bool> {
    let what = format!("/dev/ublkc{id}");
    if !char_dev_exists(id) {
        return Ok(false);
    }
    let ctrl = UblkCtrl::new_simple(id as i32).map_err(|e| ublk_err(&what, "ublk open", e))?;
    let info = ctrl.dev_info();
    let pid = info.ublksrv_pid;
    let live = u32::from(info.state) == libublk::sys::UBLK_S_DEV_LIVE;
    if live && pid > 0 && Path::new(&format!("/proc/{pid}")).exists() {
        return Err(err(
            &what,
            "ublk delete",
            format!("still served by pid {pid}"),
        ));
    }
    // Stop it if the kernel has not noticed its server is gone, then ask
    // for removal without blocking on openers (DEL_DEV would wait forever
    // for a process that keeps /dev/ublkbN open).
    let _ = ctrl.kill_dev();
    ctrl.del_dev_async()
        .map_err(|e| ublk_err(&what, "ublk delete", e))?;
    if !wait_gone(id, Duration::from_secs(10)) {
        return Err(err(
            &what,
            "ublk delete",
            format!("/dev/ublkb{id} is still held open by another process"),
        ));
    }
    tracing::info!(device = %what, dead_server = pid, "deleted ublk device of a dead server");
    Ok(true)
}

fn char_dev_exists(id: u32) -> bool {
    Path::new(&format!("/sys/class/ublk-char/ublkc{id}")).exists()
}

/// Waits until device `id` is gone; false if it is still there at `timeout`.
fn wait_gone(id: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while char_dev_exists(id) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Opens the backing file or partition read-write, O_DIRECT where the
/// filesystem allows it; returns it with its size rounded down to ALIGN.
fn open_backing(path: &Path) -> Result<(std::fs::File, u64)> {
    let what = path.display().to_string();
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags | libc::O_CLOEXEC)
            .open(path)
    };
    let file = match open(libc::O_DIRECT) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(backing = %what, "backing filesystem refuses O_DIRECT; ublk serves it through the page cache");
            open(0).map_err(|e| err(&what, "open backing", e))?
        }
        Err(e) => return Err(err(&what, "open backing", e)),
    };
    let meta = file.metadata().map_err(|e| err(&what, "stat backing", e))?;
    let size = if meta.file_type().is_block_device() {
        use std::io::{Seek, SeekFrom};
        (&file)
            .seek(SeekFrom::End(0))
            .map_err(|e| err(&what, "size of backing device", e))?
    } else if meta.is_file() {
        meta.len()
    } else {
        return Err(err(
            &what,
            "open backing",
            "neither a regular file nor a block device",
        ));
    };
    Ok((file, size - size % ALIGN as u64))
}

/// The serving thread: adds the device, reports its id through `tx` once
/// started, serves until stopped, and deletes it (UblkCtrl's drop).
fn serve(
    file: std::fs::File,
    size: u64,
    opts: UblkOptions,
    what: String,
    tx: mpsc::Sender<Result<u32>>,
) {
    let ctrl = match UblkCtrlBuilder::default()
        .name(TARGET_NAME)
        .id(opts.id.map_or(-1, |id| id as i32))
        .nr_queues(opts.queues.max(1))
        .depth(opts.depth.max(1))
        .io_buf_bytes(opts.max_io_bytes)
        // Deleted with DEL_DEV_ASYNC when the serving thread ends: the
        // kernel removes it once the last opener closes it, instead of
        // blocking our shutdown on a store someone still holds open.
        .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV | UblkFlags::UBLK_DEV_F_DEL_DEV_ASYNC)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(ublk_err(&what, "ublk add", e)));
            return;
        }
    };
    let backing_fd = file.as_raw_fd();
    let tgt_init = move |dev: &mut UblkDev| {
        let tgt = &mut dev.tgt;
        // Fixed file 1 of every queue ring (0 is /dev/ublkcN).
        tgt.fds[tgt.nr_fds as usize] = backing_fd;
        tgt.nr_fds += 1;
        tgt.dev_size = size;
        tgt.params = libublk::sys::ublk_params {
            types: libublk::sys::UBLK_PARAM_TYPE_BASIC,
            basic: libublk::sys::ublk_param_basic {
                // 4 KiB blocks: every request is O_DIRECT-aligned.
                logical_bs_shift: 12,
                physical_bs_shift: 12,
                io_opt_shift: 12,
                io_min_shift: 12,
                max_sectors: dev.dev_info.max_io_buf_bytes >> 9,
                dev_sectors: size >> 9,
                // A volatile write cache: the kernel sends FLUSH, which we
                // turn into fdatasync of the backing file.
                attrs: libublk::sys::UBLK_ATTR_VOLATILE_CACHE,
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(())
    };
    let started_tx = tx.clone();
    let on_started = move |c: &UblkCtrl| {
        let _ = started_tx.send(Ok(c.dev_info().dev_id));
    };
    if let Err(e) = ctrl.run_target(tgt_init, queue_thread, on_started) {
        let _ = tx.send(Err(ublk_err(&what, "ublk serve", e)));
    }
    // `file` must stay open while the queues use its fd: it drops here,
    // after run_target has joined them.
    drop(file);
}

/// One queue: fetch requests, run each against the backing file through
/// the queue's own ring, complete it; until the device stops.
fn queue_thread(qid: u16, dev: &UblkDev) {
    let bufs = std::rc::Rc::new(dev.alloc_queue_io_bufs());
    let handler_bufs = bufs.clone();
    let handler = move |q: &UblkQueue, tag: u16, ctx: &UblkIOCtx| {
        let buf = handler_bufs[tag as usize].as_slice();
        handle_io(q, tag, ctx, buf);
    };
    let queue = match UblkQueue::new(qid, dev)
        .and_then(|q| q.submit_fetch_commands_unified(BufDescList::Slices(Some(&bufs))))
    {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(queue = qid, error = ?e, "ublk queue setup failed");
            return;
        }
    };
    queue.wait_and_handle_io(handler);
}

/// The SQE for one ublk request against the backing file (fixed file 1).
fn backing_sqe(op: u32, offset: u64, bytes: u32, buf: *mut u8) -> Option<squeue::Entry> {
    let fd = types::Fixed(1);
    let sqe = match op {
        libublk::sys::UBLK_IO_OP_READ => opcode::Read::new(fd, buf, bytes).offset(offset).build(),
        libublk::sys::UBLK_IO_OP_WRITE => opcode::Write::new(fd, buf as *const u8, bytes)
            .offset(offset)
            .build(),
        libublk::sys::UBLK_IO_OP_FLUSH => opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build(),
        _ => return None,
    };
    Some(sqe.flags(squeue::Flags::FIXED_FILE))
}

fn handle_io(q: &UblkQueue, tag: u16, ctx: &UblkIOCtx, buf: &[u8]) {
    let complete = |res: i32| {
        if let Err(e) =
            q.complete_io_cmd_unified(tag, BufDesc::Slice(buf), Ok(UblkIORes::Result(res)))
        {
            tracing::debug!(tag, error = ?e, "ublk complete failed (queue going down)");
        }
    };
    let iod = q.get_iod(tag);
    let op = iod.op_flags & 0xff;
    if ctx.is_tgt_io() {
        // Our backing I/O finished: answer the request, or retry it.
        let res = ctx.result();
        if res != -libc::EAGAIN && res != -libc::EINTR {
            complete(res);
            return;
        }
    }
    let offset = iod.start_sector << 9;
    let bytes = iod.nr_sectors << 9;
    // The kernel never sends more than max_io_buf_bytes; check anyway, as
    // the buffer is exactly that long.
    if bytes as usize > buf.len() {
        complete(-libc::EINVAL);
        return;
    }
    let Some(sqe) = backing_sqe(op, offset, bytes, buf.as_ptr() as *mut u8) else {
        complete(-libc::EOPNOTSUPP);
        return;
    };
    // The buffer is this tag's, owned by the queue for the device's whole
    // life; the kernel writes into it only until this SQE completes, which
    // is reaped by this same queue before the tag is reused.
    let sqe = sqe.user_data(UblkIOCtx::build_user_data(tag, op, 0, true));
    if let Err(e) = q.ublk_submit_sqe_sync(sqe) {
        tracing::warn!(tag, error = ?e, "ublk backing submit failed");
        complete(-libc::EIO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlignedBuf, BlockDevice, UringBlockDevice};

    fn have_ublk() -> bool {
        Path::new("/dev/ublk-control").exists()
    }

    #[test]
    fn backing_size_is_rounded_down_and_kinds_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("b.img");
        std::fs::File::create(&p)
            .and_then(|f| f.set_len((1 << 20) + 1000))
            .expect("create");
        let (_f, size) = open_backing(&p).expect("open backing");
        assert_eq!(size, 1 << 20);
        let e = open_backing(dir.path()).expect_err("a directory is no backing");
        assert!(
            e.to_string().contains(&dir.path().display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn start_without_the_driver_says_what_to_do() {
        if have_ublk() {
            return; // covered by the VM test below
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("b.img");
        std::fs::File::create(&p)
            .and_then(|f| f.set_len(1 << 20))
            .expect("create");
        let e = UblkServer::start(&p, 1, 32).expect_err("no ublk_drv here");
        assert!(e.to_string().contains("modprobe ublk_drv"), "{e}");
    }

    /// Needs root and ublk_drv: scripts/vmtest.sh runs it in the VM.
    #[test]
    #[ignore = "needs root and ublk_drv (scripts/vmtest.sh runs it)"]
    fn serves_stops_and_reattaches_the_same_content() {
        assert!(have_ublk(), "modprobe ublk_drv first");
        let dir = tempfile::tempdir().expect("tempdir");
        let backing = dir.path().join("backing.img");
        std::fs::File::create(&backing)
            .and_then(|f| f.set_len(16 << 20))
            .expect("create backing");
        let opts = UblkOptions {
            id: Some(7),
            queues: 2,
            depth: 16,
            ..UblkOptions::default()
        };
        let server = UblkServer::start_with(&backing, &opts).expect("start");
        assert_eq!(server.device_path(), Path::new("/dev/ublkb7"));
        assert!(server.is_serving());
        let data: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
        let w = AlignedBuf::from_slice(&data);
        {
            let dev = UringBlockDevice::open(server.device_path(), None).expect("open ublk dev");
            assert_eq!(dev.size(), 16 << 20);
            dev.write_at(&w, 1 << 20).expect("write");
            dev.flush().expect("flush");
            let mut r = AlignedBuf::zeroed(w.len());
            dev.read_at(&mut r, 1 << 20).expect("read");
            assert_eq!(r.as_slice(), w.as_slice());
        }
        server.stop().expect("stop");
        assert!(!Path::new("/dev/ublkb7").exists(), "device left behind");
        assert!(!Path::new("/sys/class/ublk-char/ublkc7").exists());

        // A new server over the same backing shows the same bytes; the
        // backing file itself holds them 1:1.
        let on_disk = std::fs::read(&backing).expect("read backing");
        assert_eq!(&on_disk[1 << 20..(1 << 20) + data.len()], &data[..]);
        let server = UblkServer::start_with(&backing, &opts).expect("restart");
        let dev = UringBlockDevice::open(server.device_path(), None).expect("reopen");
        let mut r = AlignedBuf::zeroed(w.len());
        dev.read_at(&mut r, 1 << 20).expect("read after restart");
        assert_eq!(r.as_slice(), w.as_slice());
        drop(dev);
        drop(server); // Drop stops and deletes too
        assert!(!Path::new("/sys/class/ublk-char/ublkc7").exists());

        // Stopping while someone still has the device open must not hang;
        // the device goes once they close it, and the id is usable again.
        let server = UblkServer::start_with(&backing, &opts).expect("third start");
        let holder = std::fs::File::open(server.device_path()).expect("hold open");
        let t = Instant::now();
        server.stop().expect("stop while open");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stop blocked on the opener"
        );
        drop(holder);
        assert!(
            wait_gone(7, Duration::from_secs(10)),
            "device stayed after close"
        );
        let server = UblkServer::start_with(&backing, &opts).expect("start after held stop");
        server.stop().expect("final stop");
    }
}
