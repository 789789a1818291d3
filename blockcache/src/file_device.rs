//! `FileBlockDevice`: pread/pwrite and fdatasync on an image file or a
//! block device — the fallback where io_uring is unavailable. Opened with
//! O_DIRECT where the filesystem allows it, else buffered (said once in the
//! log); either way `flush` is an fdatasync, so durability is the same.
use crate::{AlignedBuf, BlockDevice, Error, Result, ALIGN};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// See the module docs.
#[derive(Debug)]
pub struct FileBlockDevice {
    path: PathBuf,
    file: File,
    size: u64,
    direct: bool,
}

static BUFFERED_LOGGED: AtomicBool = AtomicBool::new(false);

fn io_err(path: &Path, op: &'static str, offset: u64, source: std::io::Error) -> Error {
    Error::Io {
        device: path.display().to_string(),
        op,
        offset,
        source,
    }
}

impl FileBlockDevice {
    /// Opens `path` for reading and writing.
    ///
    /// - A regular file is created if missing and, when `size` is given and
    ///   larger than the file, extended sparsely to `size`.
    /// - A block device keeps its own size; `size`, when given, must fit.
    ///
    /// The usable size is rounded down to a multiple of [`ALIGN`].
    pub fn open(path: &Path, size: Option<u64>) -> Result<FileBlockDevice> {
        let open = |direct: bool| {
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(true).truncate(false);
            if direct {
                o.custom_flags(libc::O_DIRECT);
            }
            o.open(path)
        };
        let (file, direct) = match open(true) {
            Ok(f) => (f, true),
            // EINVAL: the filesystem (e.g. an old tmpfs) has no O_DIRECT.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if !BUFFERED_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(device = %path.display(), "O_DIRECT refused; the chunk store uses buffered I/O with fdatasync");
                }
                (open(false).map_err(|e| io_err(path, "open", 0, e))?, false)
            }
            Err(e) => return Err(io_err(path, "open", 0, e)),
        };
        let meta = file.metadata().map_err(|e| io_err(path, "stat", 0, e))?;
        let size = if meta.file_type().is_block_device() {
            let dev_size = (&file)
                .seek(SeekFrom::End(0))
                .map_err(|e| io_err(path, "seek", 0, e))?;
            if let Some(want) = size.filter(|&want| want > dev_size) {
                return Err(Error::Config(format!(
                    "{}: {want} bytes requested, the device has {dev_size}",
                    path.display()
                )));
            }
            size.unwrap_or(dev_size)
        } else {
            let cur = meta.len();
            match size {
                Some(want) if want > cur => {
                    file.set_len(want)
                        .map_err(|e| io_err(path, "extend", want, e))?;
                    want
                }
                Some(want) => want,
                None => cur,
            }
        };
        Ok(FileBlockDevice {
            path: path.to_path_buf(),
            file,
            size: size - size % ALIGN as u64,
            direct,
        })
    }

    /// Whether the page cache is bypassed.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, op: &'static str, offset: u64, len: usize) -> Result<()> {
        crate::device::check_request(self, op, offset, len)
    }
}

impl BlockDevice for FileBlockDevice {
    fn describe(&self) -> String {
        format!(
            "{} (pread/pwrite, {})",
            self.path.display(),
            if self.direct { "O_DIRECT" } else { "buffered" }
        )
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> Result<()> {
        self.check("read", offset, buf.len())?;
        self.file
            .read_exact_at(buf.as_mut_slice(), offset)
            .map_err(|e| io_err(&self.path, "read", offset, e))
    }

    fn write_at(&self, buf: &AlignedBuf, offset: u64) -> Result<()> {
        self.check("write", offset, buf.len())?;
        self.file
            .write_all_at(buf.as_slice(), offset)
            .map_err(|e| io_err(&self.path, "write", offset, e))
    }

    fn flush(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| io_err(&self.path, "fdatasync", 0, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_sparse_image_and_round_trips_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.img");
        let dev = FileBlockDevice::open(&path, Some(1 << 20)).unwrap();
        assert_eq!(dev.size(), 1 << 20);
        let buf = AlignedBuf::from_slice(b"block three");
        dev.write_at(&buf, 3 * ALIGN as u64).unwrap();
        dev.flush().unwrap();
        drop(dev);
        let dev = FileBlockDevice::open(&path, None).unwrap();
        assert_eq!(dev.size(), 1 << 20, "reopening keeps the size");
        let mut back = AlignedBuf::zeroed(ALIGN);
        dev.read_at(&mut back, 3 * ALIGN as u64).unwrap();
        assert_eq!(&back.as_slice()[..11], b"block three");
        assert!(matches!(
            dev.read_at(&mut back, 100),
            Err(Error::Unaligned { .. })
        ));
        assert!(matches!(
            dev.read_at(&mut back, 1 << 20),
            Err(Error::OutOfRange { .. })
        ));
    }
}
