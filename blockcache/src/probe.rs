//! Before a device becomes a chunk store: what it already holds
//! ([`find_signature`]) and whether something is using it ([`in_use`]);
//! and, while a store is open on it, a claim ([`DeviceClaim`]) that makes
//! every other musicfs process (and, for a block device, every mount) see
//! it as in use.
//!
//! Signatures are read from the first 68 KiB, at the offsets the formats
//! define (the same places blkid looks). Only what a cache format could
//! destroy matters here; an unknown signature reads as none.
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Bytes read to find a signature: btrfs keeps its magic at 64 KiB + 64.
const PROBE_LEN: usize = 68 << 10;

fn io_err(path: &Path, op: &'static str, source: std::io::Error) -> Error {
    Error::Io {
        device: path.display().to_string(),
        op,
        offset: 0,
        source,
    }
}

fn at(b: &[u8], offset: usize, magic: &[u8]) -> bool {
    b.get(offset..offset + magic.len()) == Some(magic)
}

fn le32(b: &[u8], offset: usize) -> u32 {
    b.get(offset..offset + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

/// What the first bytes of a device say it holds, in words ("an ext4
/// filesystem", "a GPT partition table"), or `None` when nothing known.
pub fn find_signature(head: &[u8]) -> Option<&'static str> {
    if at(head, 0, crate::format::MAGIC) || at(head, crate::format::BLOCK, crate::format::MAGIC) {
        return Some("a musicfs chunk store");
    }
    if at(head, 0, b"LUKS\xba\xbe") {
        return Some("a LUKS encrypted volume");
    }
    if at(head, 0, b"XFSB") {
        return Some("an xfs filesystem");
    }
    if at(head, 65536 + 64, b"_BHRfS_M") {
        return Some("a btrfs filesystem");
    }
    // ext2/3/4: the superblock at 1024, magic 0xEF53 at byte 56 of it.
    if at(head, 1024 + 56, &[0x53, 0xef]) {
        let compat = le32(head, 1024 + 0x5c);
        let incompat = le32(head, 1024 + 0x60);
        // INCOMPAT_EXTENTS (0x40) or 64BIT (0x80) means ext4; a journal, ext3.
        return Some(if incompat & 0xc0 != 0 {
            "an ext4 filesystem"
        } else if compat & 0x4 != 0 {
            "an ext3 filesystem"
        } else {
            "an ext2 filesystem"
        });
    }
    for page in [4096usize, 8192, 16384, 65536] {
        if at(head, page - 10, b"SWAPSPACE2") || at(head, page - 10, b"SWAP-SPACE") {
            return Some("a swap area");
        }
    }
    if at(head, 3, b"NTFS    ") {
        return Some("an ntfs filesystem");
    }
    if at(head, 3, b"EXFAT   ") {
        return Some("an exfat filesystem");
    }
    let boot_signature = at(head, 510, &[0x55, 0xaa]);
    if boot_signature && (at(head, 54, b"FAT1") || at(head, 82, b"FAT32   ")) {
        return Some("a vfat filesystem");
    }
    if at(head, 32769, b"CD001") {
        return Some("an iso9660 filesystem");
    }
    if at(head, 512, b"LABELONE") {
        return Some("an LVM physical volume");
    }
    if at(head, 512, b"EFI PART") || at(head, 4096, b"EFI PART") {
        return Some("a GPT partition table");
    }
    // An MBR: the boot signature and at least one partition of a known type.
    if boot_signature && (0..4).any(|i| head.get(446 + 16 * i + 4).is_some_and(|&t| t != 0)) {
        return Some("an MBR partition table");
    }
    None
}

/// Reads the head of `path` and names its signature (see [`find_signature`]).
pub fn probe(path: &Path) -> Result<Option<&'static str>> {
    let mut file = File::open(path).map_err(|e| io_err(path, "open", e))?;
    let mut head = Vec::with_capacity(PROBE_LEN);
    (&mut file)
        .take(PROBE_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_err(path, "read", e))?;
    Ok(find_signature(&head))
}

/// Why `path` must not be formatted now, if something uses it: a mount
/// (of it, or of one of its partitions), a swap area on it, a device
/// stacked on it (device-mapper, RAID), a loop device over an image file,
/// an exclusive opener, or a musicfs process holding a [`DeviceClaim`].
pub fn in_use(path: &Path) -> Result<Option<String>> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, "stat", e))?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if meta.file_type().is_block_device() {
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut devices = vec![(major, minor, canonical.clone())];
        devices.extend(partitions(major, minor));
        for (maj, min, name) in &devices {
            if let Some(at) = mounted_at(&mountinfo, *maj, *min) {
                return Ok(Some(if name == &canonical {
                    format!("{} is mounted at {at}", path.display())
                } else {
                    format!("its partition {} is mounted at {at}", name.display())
                }));
            }
        }
        let holders: Vec<String> =
            std::fs::read_dir(format!("/sys/dev/block/{major}:{minor}/holders"))
                .map(|dir| {
                    dir.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
        if !holders.is_empty() {
            return Ok(Some(format!(
                "{} is held by {}",
                path.display(),
                holders.join(", ")
            )));
        }
    } else if meta.is_file() {
        if let Some(loop_dev) = loop_over(&canonical) {
            return Ok(Some(format!(
                "{} is attached to {}",
                path.display(),
                loop_dev.display()
            )));
        }
    }
    if let Some(line) = swap_on(&canonical) {
        return Ok(Some(format!(
            "{} is in use as swap ({line})",
            path.display()
        )));
    }
    match DeviceClaim::acquire(path)? {
        Ok(_claim) => Ok(None),
        Err(busy) => Ok(Some(busy)),
    }
}

/// Where device `major:minor` is mounted, from a /proc/self/mountinfo text.
fn mounted_at(mountinfo: &str, major: u32, minor: u32) -> Option<String> {
    let want = format!("{major}:{minor}");
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let dev = fields.nth(2)?;
        let point = fields.nth(1)?;
        (dev == want).then(|| point.to_string())
    })
}

/// The partitions of a whole disk: (major, minor, /dev path).
fn partitions(major: u32, minor: u32) -> Vec<(u32, u32, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(format!("/sys/dev/block/{major}:{minor}")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| e.path().join("partition").exists())
        .filter_map(|e| {
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let (maj, min) = dev.trim().split_once(':')?;
            Some((
                maj.parse().ok()?,
                min.parse().ok()?,
                Path::new("/dev").join(e.file_name()),
            ))
        })
        .collect()
}

/// The loop device whose backing file is `file`, if any.
fn loop_over(file: &Path) -> Option<PathBuf> {
    let dir = std::fs::read_dir("/sys/block").ok()?;
    dir.filter_map(|e| e.ok()).find_map(|e| {
        let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
        let backing = backing.trim_end_matches('\n');
        (Path::new(backing) == file).then(|| Path::new("/dev").join(e.file_name()))
    })
}

/// The /proc/swaps line of `path`, if it is active swap.
fn swap_on(path: &Path) -> Option<String> {
    let swaps = std::fs::read_to_string("/proc/swaps").ok()?;
    swaps.lines().skip(1).find_map(|line| {
        let name = line.split_whitespace().next()?;
        let same = std::fs::canonicalize(name).is_ok_and(|p| p == path);
        same.then(|| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
    })
}

/// Held while a chunk store is open on a device (by the daemon, or by an
/// offline `musicfs cache` command): an exclusive `flock` on the path, and
/// for a block device an `O_EXCL` open too, so the kernel refuses to mount
/// it meanwhile. Released on drop.
#[derive(Debug)]
pub struct DeviceClaim {
    _file: File,
    path: PathBuf,
}

impl DeviceClaim {
    /// Claims `path` (which must exist). `Ok(Err(why))` when someone else
    /// holds it: a mount or exclusive opener (`EBUSY`), or another musicfs
    /// process (the lock).
    pub fn acquire(path: &Path) -> Result<std::result::Result<DeviceClaim, String>> {
        let meta = std::fs::metadata(path).map_err(|e| io_err(path, "stat", e))?;
        let mut opts = OpenOptions::new();
        opts.read(true).custom_flags(libc::O_CLOEXEC);
        if meta.file_type().is_block_device() {
            opts.custom_flags(libc::O_CLOEXEC | libc::O_EXCL);
        }
        let file = match opts.open(path) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Ok(Err(format!(
                    "{} is in use (mounted, or opened exclusively by another program)",
                    path.display()
                )))
            }
            Err(e) => return Err(io_err(path, "open", e)),
        };
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(Err(format!(
                    "{} is in use by another musicfs process (a running daemon, or a cache command)",
                    path.display()
                )));
            }
            return Err(io_err(path, "flock", e));
        }
        Ok(Ok(DeviceClaim {
            _file: file,
            path: path.to_path_buf(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(offset: usize, magic: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; PROBE_LEN];
        b[offset..offset + magic.len()].copy_from_slice(magic);
        b
    }

    #[test]
    fn zeros_and_short_heads_have_no_signature() {
        assert_eq!(find_signature(&vec![0u8; PROBE_LEN]), None);
        assert_eq!(find_signature(&[]), None);
        assert_eq!(find_signature(&[0x55; 100]), None);
    }

    #[test]
    fn known_signatures_are_named() {
        assert_eq!(
            find_signature(&with(0, b"MUSFSCHK")),
            Some("a musicfs chunk store")
        );
        assert_eq!(
            find_signature(&with(4096, b"MUSFSCHK")),
            Some("a musicfs chunk store")
        );
        assert_eq!(find_signature(&with(0, b"XFSB")), Some("an xfs filesystem"));
        assert_eq!(
            find_signature(&with(65600, b"_BHRfS_M")),
            Some("a btrfs filesystem")
        );
        assert_eq!(
            find_signature(&with(4086, b"SWAPSPACE2")),
            Some("a swap area")
        );
        assert_eq!(
            find_signature(&with(0, b"LUKS\xba\xbe")),
            Some("a LUKS encrypted volume")
        );
        assert_eq!(
            find_signature(&with(512, b"EFI PART")),
            Some("a GPT partition table")
        );
        let mut ext4 = with(1024 + 56, &[0x53, 0xef]);
        ext4[1024 + 0x60] = 0x40;
        assert_eq!(find_signature(&ext4), Some("an ext4 filesystem"));
        let mut fat = with(82, b"FAT32   ");
        fat[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(find_signature(&fat), Some("a vfat filesystem"));
        let mut mbr = with(510, &[0x55, 0xaa]);
        assert_eq!(find_signature(&mbr), None, "no partition: no table");
        mbr[446 + 4] = 0x83;
        assert_eq!(find_signature(&mbr), Some("an MBR partition table"));
    }

    #[test]
    fn mountinfo_is_matched_by_major_minor() {
        let text = "36 27 0:31 / /tmp rw - tmpfs tmpfs rw\n\
                    50 27 7:3 / /mnt/x rw - ext4 /dev/loop3 rw\n";
        assert_eq!(mounted_at(text, 7, 3), Some("/mnt/x".into()));
        assert_eq!(mounted_at(text, 7, 30), None);
    }

    #[test]
    fn a_claimed_image_is_in_use_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.img");
        std::fs::write(&path, vec![0u8; 8192]).expect("write");
        assert_eq!(in_use(&path).expect("check"), None);
        let claim = DeviceClaim::acquire(&path).expect("claim").expect("free");
        let why = in_use(&path).expect("check").expect("busy");
        assert!(why.contains("another musicfs process"), "{why}");
        assert!(DeviceClaim::acquire(&path).expect("claim").is_err());
        drop(claim);
        assert_eq!(in_use(&path).expect("check"), None);
    }
}
