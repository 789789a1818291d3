//! The `BlockDevice` seam.
use crate::{Error, Result};

/// Alignment of every offset, length and buffer address handed to a
/// `BlockDevice` (the O_DIRECT requirement of every device we support).
pub const ALIGN: usize = 4096;

/// A heap buffer whose address and length are multiples of [`ALIGN`], so
/// it can be handed to O_DIRECT and io_uring. Owned: a dropped future or a
/// panicking caller cannot free memory the kernel still writes into while
/// a request holding it is in flight (the device owns it until completion).
pub struct AlignedBuf {
    /// Start of an allocation of `cap` bytes with alignment ALIGN, or a
    /// dangling (but ALIGN-aligned) pointer when `cap` is 0.
    ptr: std::ptr::NonNull<u8>,
    /// Bytes in use: the length every slice and request sees (≤ cap).
    len: usize,
    cap: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like a Box<[u8]>);
// nothing else holds the pointer, so moving it to another thread is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`, which is Sync.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    fn layout(len: usize) -> std::alloc::Layout {
        // ALIGN is a power of two and `len` is a multiple of it, far below
        // isize::MAX for any buffer we could actually allocate.
        std::alloc::Layout::from_size_align(len, ALIGN)
            .expect("AlignedBuf layout: size overflows isize")
    }

    /// A zeroed buffer of `len` bytes, rounded up to a multiple of ALIGN.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let len = len.div_ceil(ALIGN) * ALIGN;
        if len == 0 {
            // An aligned, never-dereferenced address: the empty slice.
            let ptr = std::ptr::NonNull::new(std::ptr::without_provenance_mut::<u8>(ALIGN))
                .expect("ALIGN is non-zero");
            return AlignedBuf {
                ptr,
                len: 0,
                cap: 0,
            };
        }
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, len, cap: len }
    }

    /// A buffer holding `data`, zero-padded to a multiple of ALIGN.
    pub fn from_slice(data: &[u8]) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(data.len());
        buf.as_mut_slice()[..data.len()].copy_from_slice(data);
        buf
    }

    /// The length in bytes (a multiple of ALIGN).
    pub fn len(&self) -> usize {
        self.len
    }
    /// The allocation's size; `set_len` may grow up to it.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Changes the length within the capacity, so a buffer can be reused
    /// for requests of another size. The bytes keep whatever they held
    /// (all initialised: zeroed at allocation, written since).
    ///
    /// Panics if `len` exceeds the capacity or is not a multiple of ALIGN
    /// (a caller's bug, never input).
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.cap && len.is_multiple_of(ALIGN),
            "AlignedBuf::set_len({len}) with capacity {}",
            self.cap
        );
        self.len = len;
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `cap` ≥ `len` initialised (zeroed at
        // allocation) bytes owned by `self`, or is aligned and non-null
        // with `len` 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
    /// The address, for io_uring submissions.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    /// The mutable address, for io_uring submissions.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.cap != 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout and not
            // freed before (Drop runs once).
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) }
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
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

/// Checks one request against the [`BlockDevice`] contract: offset and
/// length multiples of [`ALIGN`], and the range inside the device's `size`.
/// Every device calls it before touching the medium, so a bad request fails
/// the same way whichever device it reaches.
pub(crate) fn check_request(
    dev: &dyn BlockDevice,
    op: &'static str,
    offset: u64,
    len: usize,
) -> Result<()> {
    if !offset.is_multiple_of(ALIGN as u64) || !len.is_multiple_of(ALIGN) {
        return Err(Error::Unaligned {
            device: dev.describe(),
            op,
            offset,
            len,
            align: ALIGN,
        });
    }
    let size = dev.size();
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return Err(Error::OutOfRange {
            device: dev.describe(),
            op,
            offset,
            len,
            size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_is_aligned_zeroed_and_rounded_up() {
        for len in [0, 1, 4095, 4096, 4097, 3 * 4096] {
            let buf = AlignedBuf::zeroed(len);
            assert_eq!(buf.len(), len.div_ceil(ALIGN) * ALIGN);
            assert_eq!(buf.as_ptr() as usize % ALIGN, 0, "len {len}");
            assert!(buf.as_slice().iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn aligned_buf_from_slice_pads_with_zeros() {
        let mut buf = AlignedBuf::from_slice(b"hello");
        assert_eq!(buf.len(), ALIGN);
        assert_eq!(&buf.as_slice()[..5], b"hello");
        assert!(buf.as_slice()[5..].iter().all(|&b| b == 0));
        buf.as_mut_slice()[ALIGN - 1] = 7;
        assert_eq!(buf.as_slice()[ALIGN - 1], 7);
    }

    #[test]
    fn set_len_reuses_the_allocation_and_keeps_the_bytes() {
        let mut buf = AlignedBuf::zeroed(3 * ALIGN);
        buf.as_mut_slice()[2 * ALIGN] = 9;
        buf.set_len(ALIGN);
        assert_eq!((buf.len(), buf.capacity()), (ALIGN, 3 * ALIGN));
        buf.set_len(3 * ALIGN);
        assert_eq!(buf.as_slice()[2 * ALIGN], 9);
    }

    #[test]
    #[should_panic(expected = "set_len")]
    fn set_len_past_the_capacity_panics() {
        AlignedBuf::zeroed(ALIGN).set_len(2 * ALIGN);
    }
}
