//! Backup and restore of a whole chunk store, as one file.
//!
//! A backup holds the store's metadata region verbatim (both superblocks,
//! the journal, both checkpoint slots) and every extent the index reaches,
//! taken under the writer lock right after a checkpoint, so it is one
//! consistent state. Free data blocks are left out: a 10 GiB cache with
//! 1 GiB in it backs up to about 1 GiB.
//!
//! File format, version 1 (integers little-endian):
//!
//! | bytes             | field                                                  |
//! |-------------------|--------------------------------------------------------|
//! | 0..8              | magic `b"MUSFSBAK"`                                    |
//! | 8..12             | version (u32) = 1                                      |
//! | 12..16            | block size (u32) = 4096                                |
//! | 16..24            | store size in bytes (u64): the device must be this big |
//! | 24..32            | runs (u64)                                             |
//! | 32..40            | payload bytes (u64): Σ run lengths                     |
//! | 40..56            | the store's uuid                                       |
//! | 56..64            | xxh3-64 (seed 0) of bytes 0..56                        |
//!
//! then `runs` runs, each: device offset (u64) · length (u64, a multiple of
//! 4096) · that many bytes; then the trailer: magic `b"MUSFSEND"` · xxh3-64
//! (seed 0) of every run (headers and bytes) in order.
//!
//! Restore checks the whole file (header, run bounds, trailer checksum)
//! before it writes a byte, then writes the runs and flushes.
use crate::format::{Layout, BLOCK};
use crate::store::{blocks_for, lock, ChunkStore};
use crate::{AlignedBuf, BlockDevice, Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

const MAGIC: &[u8; 8] = b"MUSFSBAK";
const END: &[u8; 8] = b"MUSFSEND";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
/// Bytes moved per device request.
const PIECE: u64 = 1 << 20;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Size of the store it came from; the target device must be as big.
    pub store_bytes: u64,
    pub runs: u64,
    /// Bytes of device content in the file.
    pub payload_bytes: u64,
    pub uuid: [u8; 16],
}

fn file_err(path: &Path, op: &'static str, offset: u64, source: std::io::Error) -> Error {
    Error::Io {
        device: path.display().to_string(),
        op,
        offset,
        source,
    }
}

fn not_backup(path: &Path, detail: impl Into<String>) -> Error {
    Error::NotFormatted {
        device: path.display().to_string(),
        detail: format!("not a musicfs cache backup: {}", detail.into()),
    }
}

impl BackupInfo {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.store_bytes.to_le_bytes());
        b[24..32].copy_from_slice(&self.runs.to_le_bytes());
        b[32..40].copy_from_slice(&self.payload_bytes.to_le_bytes());
        b[40..56].copy_from_slice(&self.uuid);
        let sum = xxh3_64(&b[..56]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    fn decode(b: &[u8; HEADER_LEN], path: &Path) -> Result<BackupInfo> {
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        if &b[0..8] != MAGIC {
            return Err(not_backup(path, "no MUSFSBAK magic"));
        }
        if xxh3_64(&b[..56]) != u64_at(56) {
            return Err(not_backup(path, "header checksum mismatch"));
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let block = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        if version != VERSION || block as usize != BLOCK {
            return Err(not_backup(
                path,
                format!(
                    "version {version}, block size {block}; this build reads version {VERSION}"
                ),
            ));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[40..56]);
        Ok(BackupInfo {
            store_bytes: u64_at(16),
            runs: u64_at(24),
            payload_bytes: u64_at(32),
            uuid,
        })
    }
}

/// The device ranges a backup of `store` copies: the metadata region, then
/// the reachable extents in device order, adjacent ones merged.
fn runs(store: &ChunkStore) -> Vec<(u64, u64)> {
    let layout = &store.layout;
    let mut extents: Vec<(u64, u64)> = store
        .read_state()
        .index
        .values()
        .map(|e| (layout.data_start + e.start, blocks_for(e.len)))
        .collect();
    extents.sort_unstable();
    let mut runs: Vec<(u64, u64)> = vec![(0, layout.data_start)];
    for (start, blocks) in extents {
        match runs.last_mut() {
            Some((s, n)) if *s + *n == start => *n += blocks,
            _ => runs.push((start, blocks)),
        }
    }
    runs.into_iter()
        .map(|(s, n)| (Layout::byte(s), Layout::byte(n)))
        .collect()
}

impl ChunkStore {
    /// Writes a backup of the whole store to `path` (replacing it):
    /// checkpoints, then copies under the writer lock, so writers wait
    /// until it is done. `progress(done, total)` is called as bytes go.
    pub fn backup(&self, path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<BackupInfo> {
        self.checkpoint()?;
        let w = lock(&self.writer);
        let runs = runs(self);
        let info = BackupInfo {
            store_bytes: Layout::byte(self.layout.total_blocks),
            runs: runs.len() as u64,
            payload_bytes: runs.iter().map(|r| r.1).sum(),
            uuid: w.sb.uuid,
        };
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".partial");
        let tmp = path.with_file_name(tmp_name);
        let file = File::create(&tmp).map_err(|e| file_err(&tmp, "create", 0, e))?;
        let mut out = BufWriter::with_capacity(PIECE as usize, file);
        let mut put = |bytes: &[u8], hash: Option<&mut Xxh3>| {
            if let Some(h) = hash {
                h.update(bytes);
            }
            out.write_all(bytes)
        };
        let werr = |e| file_err(&tmp, "write", 0, e);
        put(&info.encode(), None).map_err(werr)?;
        let mut hash = Xxh3::new();
        let mut done = 0;
        let mut buf = AlignedBuf::zeroed(PIECE as usize);
        for &(offset, len) in &runs {
            let mut head = [0u8; 16];
            head[..8].copy_from_slice(&offset.to_le_bytes());
            head[8..].copy_from_slice(&len.to_le_bytes());
            put(&head, Some(&mut hash)).map_err(werr)?;
            let mut at = 0;
            while at < len {
                let n = PIECE.min(len - at);
                if buf.len() as u64 != n {
                    buf = AlignedBuf::zeroed(n as usize);
                }
                self.dev.read_at(&mut buf, offset + at)?;
                put(buf.as_slice(), Some(&mut hash)).map_err(werr)?;
                at += n;
                done += n;
                progress(done, info.payload_bytes);
            }
        }
        put(END, None).map_err(werr)?;
        put(&hash.digest().to_le_bytes(), None).map_err(werr)?;
        let file = out.into_inner().map_err(|e| werr(e.into_error()))?;
        file.sync_all().map_err(|e| file_err(&tmp, "fsync", 0, e))?;
        std::fs::rename(&tmp, path).map_err(|e| file_err(path, "rename", 0, e))?;
        drop(w);
        tracing::info!(backup = %path.display(), bytes = info.payload_bytes, runs = info.runs, "chunk store backed up");
        Ok(info)
    }
}

/// Reads the run headers and bytes of a backup, handing each piece to `sink`.
fn read_runs(path: &Path, mut sink: impl FnMut(u64, &[u8]) -> Result<()>) -> Result<BackupInfo> {
    let file = File::open(path).map_err(|e| file_err(path, "open", 0, e))?;
    let mut input = BufReader::with_capacity(PIECE as usize, file);
    let rerr = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            not_backup(path, "truncated")
        } else {
            file_err(path, "read", 0, e)
        }
    };
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match input.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(file_err(path, "read", 0, e)),
        }
    }
    if got < HEADER_LEN && &header[..8] == MAGIC {
        return Err(not_backup(path, "truncated"));
    }
    let info = BackupInfo::decode(&header, path)?;
    let mut hash = Xxh3::new();
    let mut payload = 0u64;
    let mut piece = vec![0u8; PIECE as usize];
    for _ in 0..info.runs {
        let mut head = [0u8; 16];
        input.read_exact(&mut head).map_err(rerr)?;
        hash.update(&head);
        let offset = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(head[8..].try_into().unwrap_or_default());
        let aligned = offset % BLOCK as u64 == 0 && len % BLOCK as u64 == 0;
        if !aligned
            || offset
                .checked_add(len)
                .is_none_or(|end| end > info.store_bytes)
        {
            return Err(not_backup(
                path,
                format!("run {offset}+{len} outside the store"),
            ));
        }
        payload += len;
        let mut at = 0;
        while at < len {
            let n = PIECE.min(len - at) as usize;
            input.read_exact(&mut piece[..n]).map_err(rerr)?;
            hash.update(&piece[..n]);
            sink(offset + at, &piece[..n])?;
            at += n as u64;
        }
    }
    let mut trailer = [0u8; 16];
    input.read_exact(&mut trailer).map_err(rerr)?;
    let sum = u64::from_le_bytes(trailer[8..].try_into().unwrap_or_default());
    if &trailer[..8] != END || sum != hash.digest() || payload != info.payload_bytes {
        return Err(Error::Corrupt {
            device: path.display().to_string(),
            detail: "backup checksum mismatch: the file is damaged".into(),
        });
    }
    Ok(info)
}

/// Checks a backup file end to end without writing anything.
pub fn check_backup(path: &Path) -> Result<BackupInfo> {
    read_runs(path, |_, _| Ok(()))
}

/// Checks the backup at `path`, then writes it onto `dev` (replacing the
/// store there) and flushes. Open the store afterwards to use or verify it.
pub fn restore_backup(
    dev: &dyn BlockDevice,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupInfo> {
    let info = check_backup(path)?;
    if info.store_bytes > dev.size() {
        return Err(Error::Config(format!(
            "the backup holds a store of {} bytes; {} has only {}",
            info.store_bytes,
            dev.describe(),
            dev.size()
        )));
    }
    let mut done = 0;
    read_runs(path, |offset, bytes| {
        dev.write_at(&AlignedBuf::from_slice(bytes), offset)?;
        done += bytes.len() as u64;
        progress(done, info.payload_bytes);
        Ok(())
    })?;
    dev.flush()?;
    tracing::info!(backup = %path.display(), device = %dev.describe(), bytes = info.payload_bytes, "chunk store restored");
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileBlockDevice, FormatOptions, StoreOptions};
    use std::sync::Arc;

    fn store(dir: &Path, name: &str) -> (Arc<FileBlockDevice>, ChunkStore) {
        let dev = Arc::new(FileBlockDevice::open(&dir.join(name), Some(16 << 20)).expect("dev"));
        ChunkStore::format(&*dev, &FormatOptions::default()).expect("format");
        let store = ChunkStore::open(dev.clone(), StoreOptions::default()).expect("open");
        (dev, store)
    }

    #[test]
    fn backup_restores_the_same_chunks_onto_another_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, a) = store(dir.path(), "a.img");
        let ids: Vec<_> = (0..20u8)
            .map(|i| a.put(&vec![i; 5000 + i as usize * 700]).expect("put"))
            .collect();
        a.release(ids[3]).expect("release");
        let file = dir.path().join("cache.bak");
        let mut last = (0, 0);
        let info = a.backup(&file, &mut |d, t| last = (d, t)).expect("backup");
        assert_eq!(last, (info.payload_bytes, info.payload_bytes));
        assert_eq!(check_backup(&file).expect("check"), info);

        let (b_dev, b) = store(dir.path(), "b.img");
        b.put(b"something else").expect("put");
        drop(b);
        restore_backup(&*b_dev, &file, &mut |_, _| {}).expect("restore");
        let b = ChunkStore::open(b_dev, StoreOptions::default()).expect("reopen");
        assert!(b.verify().expect("verify").is_clean());
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.chunks, sa.logical_bytes), (sb.chunks, sb.logical_bytes));
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 3) {
            let want = vec![i as u8; 5000 + i * 700];
            assert_eq!(b.get(*id).expect("get"), Some(want), "chunk {i}");
        }
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (dev, a) = store(dir.path(), "a.img");
        a.put(&[7u8; 9000]).expect("put");
        let file = dir.path().join("cache.bak");
        a.backup(&file, &mut |_, _| {}).expect("backup");
        let mut bytes = std::fs::read(&file).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&file, &bytes).expect("write");
        let err = restore_backup(&*dev, &file, &mut |_, _| {}).expect_err("damaged");
        assert!(err.to_string().contains("checksum"), "{err}");

        let other = dir.path().join("notes.txt");
        std::fs::write(
            &other,
            b"hello, not a backup at all; long enough for a header .....",
        )
        .expect("write");
        let err = check_backup(&other).expect_err("foreign");
        assert!(
            err.to_string().contains("not a musicfs cache backup"),
            "{err}"
        );
        drop(a);
        ChunkStore::open(dev, StoreOptions::default()).expect("store untouched");
    }
}
