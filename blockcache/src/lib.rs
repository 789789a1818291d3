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

mod alloc;
mod backup;
mod cdc;
mod checkpoint;
mod device;
mod error;
mod evict;
mod file_device;
mod format;
mod journal;
mod probe;
mod read;
mod store;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
#[cfg(feature = "ublk")]
mod ublk;
mod uring;
mod verify;

pub use backup::{check_backup, restore_backup, BackupInfo};
pub use cdc::{chunks, cut_points, CdcParams, ChunkId, Recipe, RecipeChunk};
pub use device::{AlignedBuf, BlockDevice, ReadReq, ALIGN};
pub use error::{Error, Result};
pub use file_device::FileBlockDevice;
pub use probe::{find_signature, in_use, probe, DeviceClaim};
pub use store::{ChunkStore, FormatOptions, Stats, StoreOptions};
#[cfg(feature = "ublk")]
pub use ublk::{delete_dead_device, UblkOptions, UblkServer};
pub use uring::{io_uring_unavailable, open_best, UringBlockDevice};
pub use verify::VerifyReport;
