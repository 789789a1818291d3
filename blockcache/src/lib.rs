//! The chunk store on a dedicated block device.
//!
//! Remote music is cached as content-defined chunks (FastCDC v2020), named
//! by xxh3-128, deduplicated, and stored directly on a block device — no
//! filesystem in between — with musicfs's own superblock, allocation bitmap,
//! chunk index and journal.
//!
//! Seams (one trait each, few required methods):
//! - [`BlockDevice`]: where the bytes live. Implementations, one per file:
//!   `FileBlockDevice` (pread/pwrite on an image file or block device, the
//!   fallback), `UringBlockDevice` (io_uring, O_DIRECT, aligned buffers),
//!   and in tests a crash-simulating device. A ublk device served by musicfs
//!   itself is opened like any other block device.
//! - `ChunkStore`: put/get/evict chunks on a `BlockDevice`.

mod device;
mod error;

pub use device::{AlignedBuf, BlockDevice, ReadReq, ALIGN};
pub use error::{Error, Result};
