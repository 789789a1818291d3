//! The `BlockDevice` seam.
use crate::Result;

/// Alignment of every offset, length and buffer address handed to a
/// `BlockDevice` (the O_DIRECT requirement of every device we support).
pub const ALIGN: usize = 4096;

/// A heap buffer whose address and length are multiples of [`ALIGN`], so
/// it can be handed to O_DIRECT and io_uring. Owned: a dropped future or a
/// panicking caller cannot free memory the kernel still writes into while
/// a request holding it is in flight (the device owns it until completion).
pub struct AlignedBuf {
    // implementation in device.rs
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes, rounded up to a multiple of ALIGN.
    pub fn zeroed(len: usize) -> AlignedBuf {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn as_slice(&self) -> &[u8] {
        todo!()
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        todo!()
    }
}

/// One read of a batch: fill `buf` from `offset`.
pub struct ReadReq {
    pub offset: u64,
    pub buf: AlignedBuf,
}

/// Where the chunk store's bytes live: an image file, a partition, a loop
/// or ublk device. Offsets and lengths are multiples of [`ALIGN`].
pub trait BlockDevice: Send + Sync {
    /// For messages: the path and kind, e.g. `/dev/ublkb0 (io_uring, O_DIRECT)`.
    fn describe(&self) -> String;
    /// Usable size in bytes (a multiple of ALIGN).
    fn size(&self) -> u64;
    /// Reads `buf.len()` bytes at `offset` (both aligned) into `buf`.
    fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> Result<()>;
    /// Writes `buf` at `offset` (both aligned). Not durable until `flush`.
    fn write_at(&self, buf: &AlignedBuf, offset: u64) -> Result<()>;
    /// Makes every completed write durable (fdatasync / FLUSH).
    fn flush(&self) -> Result<()>;

    /// Several reads, issued together where the device can (io_uring
    /// submits them as one batch and they run concurrently).
    fn read_batch(&self, reqs: &mut [ReadReq]) -> Result<()> {
        for req in reqs.iter_mut() {
            self.read_at(&mut req.buf, req.offset)?;
        }
        Ok(())
    }
    /// Several writes, issued together where the device can.
    fn write_batch(&self, writes: &[(u64, &AlignedBuf)]) -> Result<()> {
        for (offset, buf) in writes {
            self.write_at(buf, *offset)?;
        }
        Ok(())
    }
}
