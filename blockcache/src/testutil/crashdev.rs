//! `CrashDevice`: an in-memory `BlockDevice` that keeps writes since the
//! last flush apart from the durable image, so a test can "pull the plug":
//! crash after the k-th write or flush, tear that write at a sector
//! boundary, and keep none, all or a random subset of the unflushed writes.
use super::Rng;
use crate::{AlignedBuf, BlockDevice, Error, Result, ALIGN};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The sector size writes are torn at.
pub const SECTOR: usize = 512;

/// Which unflushed writes survive a crash.
#[derive(Debug, Clone, Copy)]
pub enum Survivors {
    /// The cache lost everything not flushed.
    None,
    /// Everything reached the medium anyway.
    All,
    /// Each unflushed write survives or not, chosen by this seed.
    Random(u64),
}

#[derive(Debug, Default)]
struct Inner {
    durable: Vec<u8>,
    /// Writes since the last flush, in order.
    pending: Vec<(u64, Vec<u8>)>,
    /// Writes and flushes so far.
    ops: usize,
    crash_at: Option<(usize, bool, u64)>,
    crashed: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct CrashDevice {
    inner: Mutex<Inner>,
    size: u64,
}

impl CrashDevice {
    /// A zeroed device of `size` bytes (rounded down to ALIGN).
    pub fn new(size: u64) -> CrashDevice {
        let size = size / ALIGN as u64 * ALIGN as u64;
        CrashDevice::from_image(vec![0u8; size as usize])
    }

    /// A device whose durable content is `image`.
    pub fn from_image(mut image: Vec<u8>) -> CrashDevice {
        image.truncate(image.len() / ALIGN * ALIGN);
        let size = image.len() as u64;
        CrashDevice {
            inner: Mutex::new(Inner {
                durable: image,
                ..Inner::default()
            }),
            size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes and flushes issued so far.
    pub fn ops(&self) -> usize {
        self.lock().ops
    }

    /// Crash at op number `k` (0-based, counting writes and flushes from
    /// now on as well as before): that write is torn if `tear` (a random
    /// whole number of its sectors lands, chosen by `seed`), that flush does
    /// not happen, and every later operation fails.
    pub fn crash_at(&self, k: usize, tear: bool, seed: u64) {
        self.lock().crash_at = Some((k, tear, seed));
    }

    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The medium's content after a crash now: durable data plus the
    /// unflushed writes that `survivors` lets through.
    pub fn crash_image(&self, survivors: Survivors) -> Vec<u8> {
        let inner = self.lock();
        let mut image = inner.durable.clone();
        let mut rng = Rng::new(match survivors {
            Survivors::Random(seed) => seed,
            _ => 0,
        });
        for (offset, data) in &inner.pending {
            let keep = match survivors {
                Survivors::None => false,
                Survivors::All => true,
                Survivors::Random(_) => rng.below(2) == 0,
            };
            if keep {
                image[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
            }
        }
        image
    }

    /// The image as if everything had been flushed.
    pub fn image(&self) -> Vec<u8> {
        self.crash_image(Survivors::All)
    }

    /// Flips bits of durable bytes, as media corruption would.
    pub fn corrupt(&self, offset: u64, mask: u8) {
        let mut inner = self.lock();
        inner.durable[offset as usize] ^= mask;
        let pending = std::mem::take(&mut inner.pending);
        for (off, data) in &pending {
            if (*off..*off + data.len() as u64).contains(&offset) {
                let at = (offset - off) as usize;
                inner.durable[offset as usize] = data[at] ^ mask;
            }
        }
        inner.pending = pending;
    }

    fn check(&self, op: &'static str, offset: u64, len: usize) -> Result<()> {
        crate::device::check_request(self, op, offset, len)
    }

    fn dead(&self, op: &'static str, offset: u64) -> Error {
        Error::Io {
            device: self.describe(),
            op,
            offset,
            source: std::io::Error::other("simulated crash"),
        }
    }
}

impl BlockDevice for CrashDevice {
    fn describe(&self) -> String {
        "crash-simulating memory device".into()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> Result<()> {
        self.check("read", offset, buf.len())?;
        let inner = self.lock();
        if inner.crashed {
            return Err(self.dead("read", offset));
        }
        let (start, end) = (offset, offset + buf.len() as u64);
        let out = buf.as_mut_slice();
        out.copy_from_slice(&inner.durable[start as usize..end as usize]);
        for (off, data) in &inner.pending {
            let (s, e) = (start.max(*off), end.min(off + data.len() as u64));
            if s < e {
                out[(s - start) as usize..(e - start) as usize]
                    .copy_from_slice(&data[(s - off) as usize..(e - off) as usize]);
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &AlignedBuf, offset: u64) -> Result<()> {
        self.check("write", offset, buf.len())?;
        let mut inner = self.lock();
        if inner.crashed {
            return Err(self.dead("write", offset));
        }
        let op = inner.ops;
        inner.ops += 1;
        if let Some((k, tear, seed)) = inner.crash_at {
            if op == k {
                inner.crashed = true;
                if tear {
                    let sectors = buf.len() / SECTOR;
                    let kept = Rng::new(seed).below(sectors as u64) as usize;
                    if kept > 0 {
                        inner
                            .pending
                            .push((offset, buf.as_slice()[..kept * SECTOR].to_vec()));
                    }
                }
                return Err(self.dead("write", offset));
            }
        }
        inner.pending.push((offset, buf.as_slice().to_vec()));
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut inner = self.lock();
        if inner.crashed {
            return Err(self.dead("flush", 0));
        }
        let op = inner.ops;
        inner.ops += 1;
        if matches!(inner.crash_at, Some((k, _, _)) if k == op) {
            inner.crashed = true;
            return Err(self.dead("flush", 0));
        }
        let pending = std::mem::take(&mut inner.pending);
        for (offset, data) in pending {
            inner.durable[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> AlignedBuf {
        let mut b = AlignedBuf::zeroed(ALIGN);
        b.as_mut_slice().fill(byte);
        b
    }

    #[test]
    fn unflushed_writes_are_visible_but_lost_in_a_crash() {
        let dev = CrashDevice::new(4 * ALIGN as u64);
        dev.write_at(&block(1), 0).unwrap();
        dev.flush().unwrap();
        dev.write_at(&block(2), ALIGN as u64).unwrap();
        let mut r = AlignedBuf::zeroed(2 * ALIGN);
        dev.read_at(&mut r, 0).unwrap();
        assert!(r.as_slice()[..ALIGN].iter().all(|&b| b == 1));
        assert!(r.as_slice()[ALIGN..].iter().all(|&b| b == 2));
        let lost = dev.crash_image(Survivors::None);
        assert!(lost[ALIGN..2 * ALIGN].iter().all(|&b| b == 0));
        let kept = dev.crash_image(Survivors::All);
        assert!(kept[ALIGN..2 * ALIGN].iter().all(|&b| b == 2));
        assert_eq!(dev.ops(), 3);
    }

    #[test]
    fn a_crash_tears_the_write_at_a_sector_boundary_and_stops_the_device() {
        let dev = CrashDevice::new(4 * ALIGN as u64);
        dev.crash_at(1, true, 3);
        dev.write_at(&block(1), 0).unwrap();
        assert!(dev.write_at(&block(2), 0).is_err());
        assert!(dev.flush().is_err());
        let image = dev.crash_image(Survivors::All);
        let twos = image[..ALIGN].iter().take_while(|&&b| b == 2).count();
        assert_eq!(twos % SECTOR, 0);
        assert!(twos < ALIGN, "a torn write never lands whole");
        assert!(image[twos..ALIGN].iter().all(|&b| b == 1));
    }

    #[test]
    fn rejects_unaligned_and_out_of_range_requests() {
        let dev = CrashDevice::new(2 * ALIGN as u64);
        assert!(matches!(
            dev.write_at(&block(1), 512),
            Err(Error::Unaligned { .. })
        ));
        assert!(matches!(
            dev.write_at(&block(1), 2 * ALIGN as u64),
            Err(Error::OutOfRange { .. })
        ));
    }
}
