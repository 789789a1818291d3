//! [`Covers`]: the cover of an album folder, in three renditions, for the
//! filesystem's `cover.jpg`, `.cover-medium.jpg` and `.cover-thumb.jpg`.
//!
//! Where a cover comes from, in order:
//! 1. the picture embedded in the folder's first track (by name) that the
//!    scanner saw art in (front cover preferred), read through the origin
//!    without fetching the audio body (see [`musicfs_index::art`]);
//! 2. else an image beside the first track in its origin: `cover.jpg`,
//!    `folder.jpg`, `front.jpg`, `cover.png`, `folder.png`, `album.jpg`
//!    (and `.jpeg` spellings), case-insensitive, at most 20 MiB.
//!
//! Renditions: the original is served as it is when it is a JPEG (so
//! `cover.jpg` is byte for byte the embedded picture); a PNG is converted
//! to JPEG, since strict readers trust the `.jpg` name. Medium and thumbnail
//! are JPEGs of at most 600 and 200 px on the longer side, never upscaled.
//!
//! Caching, apart from the audio chunk cache:
//! - on disk under `<cache_dir>/art/`, one file per rendition named
//!   `<xxh3-128 of the source>.<o|m|t>.jpg`, where the source is (file id,
//!   size, mtime) of the track the art is embedded in, or (origin, path,
//!   size, mtime) of the folder image. The names are the index: after a
//!   restart a cover is found again from the catalog alone, with no
//!   extraction. Kept under [`DISK_BUDGET`] (oldest written dropped first).
//! - in memory, an LRU of recently served renditions bounded in bytes,
//!   keyed by (folder, rendition) and checked against a fingerprint of the
//!   folder's tracks (ids, sizes, mtimes), so a change to the tracks is seen
//!   at once. "No cover" is cached the same way. Answers that depend on the
//!   origin's folder listing (a folder image, or none) are also re-checked
//!   after [`FOLDER_RECHECK`], so an image dropped beside the tracks shows
//!   up without a rescan.
//!
//! Every entry point may run on a FUSE worker thread: failures (a dead
//! origin, a broken picture) answer `None` and log at debug level; reads
//! from remote origins are bounded by the origins' own timeouts, and an
//! origin that health checks call down is not asked at all.
use musicfs_fusefs::{CoverSize, OriginTable};
use musicfs_index::art::{self, Picture};
use musicfs_index::{Catalog, FileId, FileRecord, NodeKind, OriginId};
use musicfs_origins::{Origin, RangeReader};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longer side of `.cover-medium.jpg`.
pub const MEDIUM_SIDE: u32 = 600;
/// Longer side of `.cover-thumb.jpg`.
pub const THUMB_SIDE: u32 = 200;
/// Bytes of renditions kept in memory.
pub const MEMORY_BUDGET: u64 = 32 * 1024 * 1024;
/// Bytes of renditions kept on disk.
pub const DISK_BUDGET: u64 = 256 * 1024 * 1024;
/// How long an answer that rests on a folder listing is trusted.
pub const FOLDER_RECHECK: Duration = Duration::from_secs(60);
/// How long a remote origin's listing of folder images is reused.
const LISTING_TTL: Duration = Duration::from_secs(300);
/// Folder image names, best first; compared case-insensitively.
const FOLDER_IMAGES: &[&str] = &[
    "cover.jpg",
    "cover.jpeg",
    "folder.jpg",
    "folder.jpeg",
    "front.jpg",
    "front.jpeg",
    "cover.png",
    "folder.png",
    "album.jpg",
    "album.jpeg",
];
/// Bumped when renditions change (size, quality), so old files are not
/// served for new keys.
const RENDITION_VERSION: &[u8] = b"musicfs-art-1";
/// Tracks looked at for embedded art before falling back to the folder.
const EMBEDDED_TRIES: usize = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn suffix(size: CoverSize) -> &'static str {
    match size {
        CoverSize::Original => "o",
        CoverSize::Medium => "m",
        CoverSize::Thumbnail => "t",
    }
}

const SIZES: [CoverSize; 3] = [CoverSize::Original, CoverSize::Medium, CoverSize::Thumbnail];

/// A track of an album folder, as the tree shows it.
struct Track {
    name: Vec<u8>,
    file: FileId,
}

/// Where a folder's cover comes from.
enum Source {
    Embedded(FileRecord),
    Folder {
        origin_id: OriginId,
        origin: Arc<dyn Origin>,
        rel_path: Vec<u8>,
        size: u64,
        mtime_ns: i64,
    },
}

impl Source {
    /// The disk cache's name for this source's renditions.
    fn key(&self) -> u128 {
        let mut k = RENDITION_VERSION.to_vec();
        match self {
            Source::Embedded(f) => {
                k.extend_from_slice(b"\0embedded\0");
                k.extend_from_slice(&f.id.to_le_bytes());
                k.extend_from_slice(&f.stamp.size.to_le_bytes());
                k.extend_from_slice(&f.stamp.mtime_ns.to_le_bytes());
            }
            Source::Folder {
                origin_id,
                rel_path,
                size,
                mtime_ns,
                ..
            } => {
                k.extend_from_slice(b"\0folder\0");
                k.extend_from_slice(&origin_id.to_le_bytes());
                k.extend_from_slice(&size.to_le_bytes());
                k.extend_from_slice(&mtime_ns.to_le_bytes());
                k.extend_from_slice(rel_path);
            }
        }
        xxhash_rust::xxh3::xxh3_128(&k)
    }
    fn is_folder_image(&self) -> bool {
        matches!(self, Source::Folder { .. })
    }
}

/// One cached answer.
struct Entry {
    fingerprint: u64,
    cover: Option<Arc<[u8]>>,
    /// When set, the answer is re-checked after this instant.
    until: Option<Instant>,
    tick: u64,
}

/// The in-memory LRU, bounded in bytes (and in entries, for the empty
/// answers that weigh nothing).
#[derive(Default)]
struct Memory {
    entries: HashMap<(u64, CoverSize), Entry>,
    by_use: BTreeMap<u64, (u64, CoverSize)>,
    bytes: u64,
    tick: u64,
}

const MEMORY_MAX_ENTRIES: usize = 20_000;

impl Memory {
    fn get(&mut self, key: (u64, CoverSize), fingerprint: u64) -> Option<Option<Arc<[u8]>>> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(&key)?;
        let fresh = e.fingerprint == fingerprint && e.until.is_none_or(|t| Instant::now() < t);
        if !fresh {
            return None;
        }
        self.by_use.remove(&e.tick);
        e.tick = tick;
        self.by_use.insert(tick, key);
        Some(e.cover.clone())
    }

    fn put(
        &mut self,
        key: (u64, CoverSize),
        fingerprint: u64,
        cover: Option<Arc<[u8]>>,
        until: Option<Instant>,
    ) {
        self.remove(key);
        let weight = cover.as_ref().map_or(0, |c| c.len() as u64);
        if weight > MEMORY_BUDGET / 4 {
            return;
        }
        self.tick += 1;
        self.bytes += weight;
        self.by_use.insert(self.tick, key);
        self.entries.insert(
            key,
            Entry {
                fingerprint,
                cover,
                until,
                tick: self.tick,
            },
        );
        while self.bytes > MEMORY_BUDGET || self.entries.len() > MEMORY_MAX_ENTRIES {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.cover.as_ref().map_or(0, |c| c.len() as u64);
            }
        }
    }

    fn remove(&mut self, key: (u64, CoverSize)) {
        if let Some(e) = self.entries.remove(&key) {
            self.by_use.remove(&e.tick);
            self.bytes -= e.cover.as_ref().map_or(0, |c| c.len() as u64);
        }
    }
}

/// Renditions on disk, named by source key and rendition.
struct Disk {
    dir: PathBuf,
    writes: AtomicU64,
}

impl Disk {
    fn path(&self, key: u128, size: CoverSize) -> PathBuf {
        self.dir.join(format!("{key:032x}.{}.jpg", suffix(size)))
    }
    fn get(&self, key: u128, size: CoverSize) -> Option<Vec<u8>> {
        std::fs::read(self.path(key, size))
            .ok()
            .filter(|b| !b.is_empty())
    }
    /// Written to a temporary name and renamed, so a crash never leaves
    /// half a picture under a real name.
    fn put(&self, key: u128, size: CoverSize, data: &[u8]) {
        let path = self.path(key, size);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tmp, data))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), "cannot store cover art: {e}");
        }
        if self.writes.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            self.prune(DISK_BUDGET);
        }
    }
    /// Drops the oldest-written renditions until the rest fit `budget`.
    fn prune(&self, budget: u64) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                if !meta.is_file() {
                    return None;
                }
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= budget {
            return;
        }
        files.sort();
        for (_, len, path) in files {
            if total <= budget {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// An image file beside the tracks.
#[derive(Clone)]
struct FolderImage {
    name: Vec<u8>,
    size: u64,
    mtime_ns: i64,
}

/// A remote origin's folder images, from one listing.
struct Listing {
    at: Instant,
    /// Directory (relative, no trailing `/`) → (file name, size, mtime).
    images: HashMap<Vec<u8>, Vec<FolderImage>>,
}

/// The daemon's cover art: see the module docs.
pub struct Covers {
    catalog: Arc<Catalog>,
    origins: OriginTable,
    disk: Option<Disk>,
    memory: Mutex<Memory>,
    listings: Mutex<HashMap<OriginId, Arc<Listing>>>,
    /// One computation per folder at a time; others wait for its answer.
    computing: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    /// Bytes read from remote origins for art.
    pub fetched: Arc<AtomicU64>,
}

impl Covers {
    /// `cache_dir`: renditions go to `<cache_dir>/art/`; `None` keeps them
    /// in memory only.
    pub fn new(catalog: Arc<Catalog>, origins: OriginTable, cache_dir: Option<&Path>) -> Covers {
        let disk = cache_dir.map(|d| Disk {
            dir: d.join("art"),
            writes: AtomicU64::new(0),
        });
        Covers {
            catalog,
            origins,
            disk,
            memory: Mutex::default(),
            listings: Mutex::default(),
            computing: Mutex::default(),
            fetched: Arc::default(),
        }
    }

    /// Drops renditions beyond the disk budget (left by earlier runs).
    pub fn prune_disk(&self) {
        if let Some(d) = &self.disk {
            d.prune(DISK_BUDGET);
        }
    }

    /// The cover of album folder `dir` (a tree inode) in rendition `size`,
    /// as JPEG bytes; `None` when the folder holds no tracks or has no art.
    pub fn cover(&self, dir: u64, size: CoverSize) -> Option<Arc<[u8]>> {
        let tracks = match self.tracks(dir) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(dir, "cover: cannot list the folder: {e}");
                return None;
            }
        };
        if tracks.is_empty() {
            return None;
        }
        let fingerprint = self.fingerprint(dir, &tracks);
        let cached = lock(&self.memory).get((dir, size), fingerprint);
        if let Some(hit) = cached {
            return hit;
        }
        let gate = lock(&self.computing).entry(dir).or_default().clone();
        let answer = {
            let _one_at_a_time = lock(&gate);
            // Another thread may have answered while this one waited.
            let cached = lock(&self.memory).get((dir, size), fingerprint);
            match cached {
                Some(hit) => hit,
                None => self.compute(dir, size, fingerprint, &tracks),
            }
        };
        let mut computing = lock(&self.computing);
        if Arc::strong_count(&gate) == 2 {
            computing.remove(&dir);
        }
        answer
    }

    /// The track files directly in `dir`, by name.
    fn tracks(&self, dir: u64) -> musicfs_index::Result<Vec<Track>> {
        let mut tracks = Vec::new();
        let mut after = 0;
        loop {
            let page = self.catalog.children(dir, after, 1000)?;
            let Some(last) = page.last() else { break };
            after = last.ino;
            let full = page.len() == 1000;
            tracks.extend(page.into_iter().filter_map(|n| match (n.kind, n.file_id) {
                (NodeKind::File, Some(file)) => Some(Track { name: n.name, file }),
                _ => None,
            }));
            if !full {
                break;
            }
        }
        tracks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tracks)
    }

    /// What the folder's answer depends on in the catalog: its tracks'
    /// ids and stamps.
    fn fingerprint(&self, dir: u64, tracks: &[Track]) -> u64 {
        let mut h = dir.to_le_bytes().to_vec();
        for t in tracks {
            h.extend_from_slice(&t.file.to_le_bytes());
            if let Ok(Some(f)) = self.catalog.file(t.file) {
                h.extend_from_slice(&f.stamp.size.to_le_bytes());
                h.extend_from_slice(&f.stamp.mtime_ns.to_le_bytes());
            }
        }
        xxhash_rust::xxh3::xxh3_64(&h)
    }

    fn compute(
        &self,
        dir: u64,
        size: CoverSize,
        fingerprint: u64,
        tracks: &[Track],
    ) -> Option<Arc<[u8]>> {
        let started = Instant::now();
        let (source, renditions) = self.find(tracks);
        let until = match &source {
            Some(s) if !s.is_folder_image() => None,
            _ => Some(Instant::now() + FOLDER_RECHECK),
        };
        let mut memory = lock(&self.memory);
        let mut answer = None;
        for (s, data) in SIZES.iter().zip(renditions) {
            let data: Option<Arc<[u8]>> = data.map(Arc::from);
            if *s == size {
                answer = data.clone();
            }
            memory.put((dir, *s), fingerprint, data, until);
        }
        drop(memory);
        tracing::debug!(
            dir,
            found = answer.is_some(),
            "cover computed in {:?}",
            started.elapsed()
        );
        answer
    }

    /// The folder's source and its three renditions (original, medium,
    /// thumbnail), from disk when they are there.
    fn find(&self, tracks: &[Track]) -> (Option<Source>, [Option<Vec<u8>>; 3]) {
        let mut tried = 0;
        for t in tracks {
            if tried == EMBEDDED_TRIES {
                break;
            }
            let has_art = matches!(self.catalog.props(t.file), Ok(Some((_, true))));
            let Ok(Some(record)) = self.catalog.file(t.file) else {
                continue;
            };
            if !has_art {
                continue;
            }
            tried += 1;
            let source = Source::Embedded(record);
            if let Some(r) = self.renditions(&source) {
                return (Some(source), r);
            }
        }
        let first = tracks
            .iter()
            .find_map(|t| self.catalog.file(t.file).ok().flatten());
        if let Some(source) = first.and_then(|f| self.folder_image(&f)) {
            if let Some(r) = self.renditions(&source) {
                return (Some(source), r);
            }
        }
        (None, [None, None, None])
    }

    /// All three renditions of a source, from the disk cache or made now
    /// (and stored). `None` when the picture cannot be read or decoded.
    fn renditions(&self, source: &Source) -> Option<[Option<Vec<u8>>; 3]> {
        let key = source.key();
        if let Some(disk) = &self.disk {
            let found = SIZES.map(|s| disk.get(key, s));
            if found.iter().all(Option::is_some) {
                return Some(found);
            }
        }
        let picture = match self.picture(source) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!("cover: {e}");
                return None;
            }
        };
        let made = match render(&picture) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("cover: {e}");
                return None;
            }
        };
        if let Some(disk) = &self.disk {
            for (s, data) in SIZES.iter().zip(&made) {
                disk.put(key, *s, data);
            }
        }
        Some(made.map(Some))
    }

    fn origin(&self, id: OriginId) -> Option<Arc<dyn Origin>> {
        self.origins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Reads the source's picture through its origin.
    fn picture(&self, source: &Source) -> Result<Option<Picture>, String> {
        match source {
            Source::Embedded(record) => {
                let mut copies = vec![record.clone()];
                copies.extend(self.catalog.replicas(record.id).unwrap_or_default());
                let mut last = String::from("no origin holds it");
                for f in copies {
                    let Some(origin) = self.origin(f.origin_id) else {
                        continue;
                    };
                    match self.extract(&origin, &f) {
                        Ok(p) => return Ok(p),
                        Err(e) => last = e,
                    }
                }
                Err(format!(
                    "embedded art of {}: {last}",
                    String::from_utf8_lossy(&record.rel_path)
                ))
            }
            Source::Folder {
                origin,
                rel_path,
                size,
                ..
            } => read_whole(origin.as_ref(), rel_path, *size)
                .map(|data| {
                    let mime = if art::is_jpeg(&data) {
                        "image/jpeg"
                    } else {
                        "image/png"
                    };
                    Some(Picture {
                        mime: mime.into(),
                        data,
                    })
                })
                .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(rel_path))),
        }
    }

    /// The embedded picture of one copy of a track: a local file is read
    /// directly; a remote one through a ranged reader, so only its tag
    /// region is fetched.
    fn extract(&self, origin: &Arc<dyn Origin>, f: &FileRecord) -> Result<Option<Picture>, String> {
        if let Some(opened) = origin.open_local(&f.rel_path) {
            let mut file = opened.map_err(|e| e.to_string())?;
            return art::extract_embedded(&mut file, &f.format).map_err(|e| e.to_string());
        }
        if !origin.available() {
            return Err(format!("origin {} is down", origin.name()));
        }
        let mut reader = RangeReader::new(
            origin.clone(),
            f.rel_path.clone(),
            f.stamp.size,
            self.fetched.clone(),
        );
        art::extract_embedded(&mut reader, &f.format).map_err(|e| e.to_string())
    }

    /// The best folder image beside `track` in its origin, if any.
    fn folder_image(&self, track: &FileRecord) -> Option<Source> {
        let origin_id = track.origin_id;
        let origin = self.origin(origin_id)?;
        let dir_rel = match track.rel_path.iter().rposition(|&b| b == b'/') {
            Some(i) => track.rel_path[..i].to_vec(),
            None => Vec::new(),
        };
        let candidates: Vec<FolderImage> = if let Some(path) = origin.local_path(&track.rel_path) {
            let dir = path.parent()?;
            local_images(dir)
        } else {
            self.listing(origin_id, &origin)?
                .images
                .get(&dir_rel)
                .cloned()
                .unwrap_or_default()
        };
        // Best name first; two spellings of one name (Cover.jpg and
        // cover.jpg) are decided by byte order, so the choice is stable.
        let best = candidates
            .into_iter()
            .filter_map(|c| rank(&c.name).map(|r| (r, c)))
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)))?
            .1;
        let mut rel_path = dir_rel;
        if !rel_path.is_empty() {
            rel_path.push(b'/');
        }
        rel_path.extend_from_slice(&best.name);
        Some(Source::Folder {
            origin_id,
            origin,
            rel_path,
            size: best.size,
            mtime_ns: best.mtime_ns,
        })
    }

    /// A remote origin's folder images, listed once per [`LISTING_TTL`].
    /// Listing a large remote library takes a while, but it is one call for
    /// every album of that origin, where a stat per candidate name per
    /// album would be many, and could not match names case-insensitively.
    fn listing(&self, id: OriginId, origin: &Arc<dyn Origin>) -> Option<Arc<Listing>> {
        let mut listings = lock(&self.listings);
        if let Some(l) = listings.get(&id).filter(|l| l.at.elapsed() < LISTING_TTL) {
            return Some(l.clone());
        }
        if !origin.available() {
            return None;
        }
        let entries = match origin.list() {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(origin = origin.name(), "cover: cannot list the origin: {e}");
                return None;
            }
        };
        let mut images: HashMap<Vec<u8>, Vec<FolderImage>> = HashMap::new();
        for e in entries {
            let (dir, name) = match e.rel_path.iter().rposition(|&b| b == b'/') {
                Some(i) => (e.rel_path[..i].to_vec(), e.rel_path[i + 1..].to_vec()),
                None => (Vec::new(), e.rel_path.clone()),
            };
            if rank(&name).is_some() {
                images.entry(dir).or_default().push(FolderImage {
                    name,
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                });
            }
        }
        let listing = Arc::new(Listing {
            at: Instant::now(),
            images,
        });
        listings.insert(id, listing.clone());
        Some(listing)
    }
}

/// Where a file name stands among [`FOLDER_IMAGES`] (lower is better).
fn rank(name: &[u8]) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    FOLDER_IMAGES.iter().position(|c| c.as_bytes() == lower)
}

/// Folder images in a local directory, as (name, size, mtime).
fn local_images(dir: &Path) -> Vec<FolderImage> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok())
        .filter(|e| rank(e.file_name().as_bytes()).is_some())
        .filter_map(|e| {
            // symlink_metadata: a link is not followed out of the origin.
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            meta.is_file().then(|| {
                let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
                FolderImage {
                    name: e.file_name().as_bytes().to_vec(),
                    size: meta.len(),
                    mtime_ns,
                }
            })
        })
        .collect()
}

/// A whole (small) file from an origin, at most [`art::MAX_PICTURE_BYTES`].
fn read_whole(origin: &dyn Origin, rel_path: &[u8], size: u64) -> Result<Vec<u8>, String> {
    if size > art::MAX_PICTURE_BYTES as u64 {
        return Err(format!("{size} bytes is too large for a cover"));
    }
    if let Some(opened) = origin.open_local(rel_path) {
        use std::io::Read;
        let file = opened.map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        file.take(art::MAX_PICTURE_BYTES as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        if data.len() > art::MAX_PICTURE_BYTES {
            return Err("too large for a cover".into());
        }
        return Ok(data);
    }
    if !origin.available() {
        return Err(format!("origin {} is down", origin.name()));
    }
    let mut data = vec![0u8; size as usize];
    let mut at = 0;
    while at < data.len() {
        let n = origin
            .read_at(rel_path, at as u64, &mut data[at..])
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        at += n;
    }
    data.truncate(at);
    Ok(data)
}

/// Original (as it is if JPEG, else converted), medium and thumbnail.
fn render(picture: &Picture) -> musicfs_index::Result<[Vec<u8>; 3]> {
    let original = if picture.is_jpeg() {
        picture.data.clone()
    } else {
        art::resize_jpeg(&picture.data, art::MAX_SIDE)?
    };
    // Either rendition failing (a picture whose header does not parse, a
    // PNG that does not decode) means no cover at all, rather than a
    // cover.jpg viewers fail on.
    let medium = art::resize_jpeg(&picture.data, MEDIUM_SIDE)?;
    let thumb = art::resize_jpeg(&medium, THUMB_SIDE)?;
    Ok([original, medium, thumb])
}

#[cfg(test)]
mod tests;
