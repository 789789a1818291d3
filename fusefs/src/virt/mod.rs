//! Virtual entries: `/.search/<query>/`, `/.collections/<name>/`,
//! `/.prefetch/…` and the cover files of album folders.
//!
//! Their inodes have bit 62 set, a range catalog node ids never reach, and
//! say what they are without a table where they can: bits 56–61 hold the
//! kind, the rest its payload (a tree directory's inode for `.prefetch`
//! mirrors and covers; a folder number for result folders, which are the
//! only ones remembered, in a bounded table).
//!
//! The dot folders are listed in the root: media servers and `ls` skip
//! dot entries, and being listed makes them discoverable.
//!
//! - A result folder's entries are the tracks' own inodes (like hard
//!   links), so opening one is opening the track: passthrough, the remote
//!   cache and the tag overlay all apply unchanged.
//! - `/.prefetch/` mirrors the tree. A lookup of a mirrored folder asks
//!   the library to prefetch the files directly in it (so `stat
//!   /.prefetch/Artist/Album` prefetches the album, and the lookup of
//!   `Artist` on the way prefetches nothing unless tracks sit there); a
//!   lookup of a file prefetches that file. Mirror entries are answered
//!   with a zero TTL so every `stat` comes back to us.
//! - Every folder holding tracks gets `cover.jpg` and hidden
//!   `.cover-medium.jpg` / `.cover-thumb.jpg` when the library has a cover
//!   for it; a real file of that name wins.
mod names;
mod plays;

pub(crate) use plays::Plays;

use crate::error::Error;
use crate::library::{CoverSize, Library};
use crate::tree::Tree;
use musicfs_index::{FileId, Node, NodeKind, ROOT_INO};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Error>;

/// Set in every virtual inode (and virtual file handle).
pub(crate) const VIRT: u64 = 1 << 62;
const KIND_SHIFT: u32 = 56;
const PAYLOAD: u64 = (1 << KIND_SHIFT) - 1;
const KIND_FIXED: u64 = 0;
const KIND_RESULT: u64 = 1;
const KIND_MIRROR: u64 = 2;
const KIND_COVER: u64 = 3;

pub(crate) const SEARCH_INO: u64 = VIRT | (KIND_FIXED << KIND_SHIFT) | 1;
pub(crate) const COLLECTIONS_INO: u64 = VIRT | (KIND_FIXED << KIND_SHIFT) | 2;
pub(crate) const PREFETCH_INO: u64 = mirror_ino(ROOT_INO);

/// Readdir cookies of the entries a real directory shows after its tree
/// children (above every `ino + 2` cookie of those).
pub(crate) const EXTRA_COOKIE: u64 = VIRT;
/// Readdir cookie of a virtual folder's entry `i`: after "." and "..".
const FIRST_ENTRY_COOKIE: u64 = 3;

/// Tracks a result folder shows at most.
const RESULT_LIMIT: usize = 1000;
/// Result folders remembered (least recently used forgotten first).
const REMEMBERED: usize = 1000;
/// A result folder listed again after this is searched again.
const REFRESH_AFTER: Duration = Duration::from_secs(2);
/// Files one `.prefetch` folder lookup asks for at most.
const PREFETCH_MAX_FILES: usize = 10_000;
/// Children looked at to tell whether a folder holds tracks.
const ALBUM_PROBE: usize = 64;

const DOT_FOLDERS: [(&[u8], u64); 3] = [
    (b".search", SEARCH_INO),
    (b".collections", COLLECTIONS_INO),
    (b".prefetch", PREFETCH_INO),
];
const COVERS: [(&[u8], CoverSize); 3] = [
    (b"cover.jpg", CoverSize::Original),
    (b".cover-medium.jpg", CoverSize::Medium),
    (b".cover-thumb.jpg", CoverSize::Thumbnail),
];

pub(crate) const fn mirror_ino(dir: u64) -> u64 {
    VIRT | (KIND_MIRROR << KIND_SHIFT) | (dir & PAYLOAD)
}

fn result_ino(id: u64) -> u64 {
    VIRT | (KIND_RESULT << KIND_SHIFT) | (id & PAYLOAD)
}

fn cover_index(size: CoverSize) -> u64 {
    match size {
        CoverSize::Original => 0,
        CoverSize::Medium => 1,
        CoverSize::Thumbnail => 2,
    }
}

fn cover_ino(dir: u64, size: CoverSize) -> u64 {
    VIRT | (KIND_COVER << KIND_SHIFT) | (((dir << 2) | cover_index(size)) & PAYLOAD)
}

pub(crate) fn is_virtual(ino: u64) -> bool {
    ino & VIRT != 0
}

/// A `.prefetch` mirror entry (answered with a zero TTL).
pub(crate) fn is_mirror(ino: u64) -> bool {
    is_virtual(ino) && (ino & !VIRT) >> KIND_SHIFT == KIND_MIRROR
}

/// Whether a real directory may have a virtual entry named `name`.
pub(crate) fn is_extra_name(name: &[u8]) -> bool {
    DOT_FOLDERS.iter().any(|(n, _)| *n == name) || COVERS.iter().any(|(n, _)| *n == name)
}

/// What a virtual inode stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ino {
    Search,
    Collections,
    Result(u64),
    Mirror(u64),
    Cover(u64, CoverSize),
}

fn decode(ino: u64) -> Option<Ino> {
    if !is_virtual(ino) {
        return None;
    }
    let payload = ino & PAYLOAD;
    match (ino & !VIRT) >> KIND_SHIFT {
        KIND_FIXED if ino == SEARCH_INO => Some(Ino::Search),
        KIND_FIXED if ino == COLLECTIONS_INO => Some(Ino::Collections),
        KIND_RESULT => Some(Ino::Result(payload)),
        KIND_MIRROR => Some(Ino::Mirror(payload)),
        KIND_COVER => {
            let size = match payload & 3 {
                0 => CoverSize::Original,
                1 => CoverSize::Medium,
                2 => CoverSize::Thumbnail,
                _ => return None,
            };
            Some(Ino::Cover(payload >> 2, size))
        }
        _ => None,
    }
}

/// What a result folder shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Search(Vec<u8>),
    Collection(Vec<u8>),
}

impl Source {
    fn name(&self) -> &[u8] {
        match self {
            Source::Search(q) | Source::Collection(q) => q,
        }
    }
    fn parent(&self) -> u64 {
        match self {
            Source::Search(_) => SEARCH_INO,
            Source::Collection(_) => COLLECTIONS_INO,
        }
    }
}

struct Folder {
    source: Source,
    /// The entries as last computed, and when.
    entries: Option<(Instant, Arc<Vec<Node>>)>,
    last_use: u64,
}

/// Remembered result folders: stable inode numbers while remembered.
#[derive(Default)]
struct Folders {
    by_id: HashMap<u64, Folder>,
    by_source: HashMap<Source, u64>,
    next_id: u64,
    clock: u64,
}

impl Folders {
    /// The folder of `source`, created (the oldest forgotten if full).
    fn id_of(&mut self, source: &Source) -> u64 {
        self.clock += 1;
        if let Some(&id) = self.by_source.get(source) {
            if let Some(f) = self.by_id.get_mut(&id) {
                f.last_use = self.clock;
            }
            return id;
        }
        if self.by_id.len() >= REMEMBERED {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, f)| f.last_use)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                if let Some(f) = self.by_id.remove(&id) {
                    self.by_source.remove(&f.source);
                }
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_id.insert(
            id,
            Folder {
                source: source.clone(),
                entries: None,
                last_use: self.clock,
            },
        );
        self.by_source.insert(source.clone(), id);
        id
    }
}

/// Why a virtual lookup found nothing.
#[derive(Debug)]
pub(crate) enum Missing {
    NotFound,
    /// A malformed search query (the message is logged).
    BadQuery,
    Failed(Error),
}

impl From<Error> for Missing {
    fn from(e: Error) -> Missing {
        Missing::Failed(e)
    }
}

impl From<musicfs_index::Error> for Missing {
    fn from(e: musicfs_index::Error) -> Missing {
        Missing::Failed(e.into())
    }
}

/// The virtual part of the filesystem.
pub(crate) struct Virtual {
    tree: Arc<dyn Tree>,
    library: Arc<dyn Library>,
    /// The virtual folders' mtime: when the mount started.
    born_ns: i64,
    folders: Mutex<Folders>,
    /// Open cover files by handle.
    open: Mutex<HashMap<u64, Arc<[u8]>>>,
    next_fh: AtomicU64,
}

impl Virtual {
    pub(crate) fn new(tree: Arc<dyn Tree>, library: Arc<dyn Library>) -> Virtual {
        let born_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Virtual {
            tree,
            library,
            born_ns,
            folders: Mutex::new(Folders::default()),
            open: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn folders(&self) -> std::sync::MutexGuard<'_, Folders> {
        self.folders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir(&self, ino: u64, parent: u64, name: &[u8]) -> Node {
        Node {
            ino,
            parent,
            name: name.to_vec(),
            kind: NodeKind::Dir,
            file_id: None,
            size: 0,
            mtime_ns: self.born_ns,
        }
    }

    /// The node of a virtual inode; `None` when it is unknown (a result
    /// folder forgotten, a tree folder gone, a cover no longer there).
    pub(crate) fn node(&self, ino: u64) -> Result<Option<Node>> {
        Ok(match decode(ino) {
            None => None,
            Some(Ino::Search) => Some(self.dir(ino, ROOT_INO, b".search")),
            Some(Ino::Collections) => Some(self.dir(ino, ROOT_INO, b".collections")),
            Some(Ino::Result(id)) => {
                let folders = self.folders();
                folders
                    .by_id
                    .get(&id)
                    .map(|f| self.dir(ino, f.source.parent(), f.source.name()))
            }
            Some(Ino::Mirror(dir)) => self.tree.node(dir)?.and_then(mirror),
            Some(Ino::Cover(dir, size)) => match self.tree.node(dir)? {
                Some(d) if d.kind == NodeKind::Dir => {
                    let name = COVERS[cover_index(size) as usize].0;
                    self.cover_node(&d, name, size)
                }
                _ => None,
            },
        })
    }

    fn cover_node(&self, dir: &Node, name: &[u8], size: CoverSize) -> Option<Node> {
        let bytes = self.library.cover(dir.ino, size)?;
        Some(Node {
            ino: cover_ino(dir.ino, size),
            parent: dir.ino,
            name: name.to_vec(),
            kind: NodeKind::File,
            file_id: None,
            size: bytes.len() as u64,
            mtime_ns: dir.mtime_ns,
        })
    }

    /// Whether `dir` directly holds tracks (an album folder).
    fn holds_tracks(&self, dir: u64) -> Result<bool> {
        Ok(self
            .tree
            .children(dir, 0, ALBUM_PROBE)?
            .iter()
            .any(|c| c.kind == NodeKind::File))
    }

    /// What a real directory shows after its tree children: the dot
    /// folders in the root, the covers in an album folder.
    pub(crate) fn extras(&self, dir: &Node) -> Result<Vec<Node>> {
        if dir.ino == ROOT_INO {
            return Ok(DOT_FOLDERS
                .iter()
                .map(|(name, ino)| self.dir(*ino, ROOT_INO, name))
                .collect());
        }
        if !self.holds_tracks(dir.ino)? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (name, size) in COVERS {
            if self.tree.lookup(dir.ino, name)?.is_some() {
                continue; // a real file of that name wins
            }
            out.extend(self.cover_node(dir, name, size));
        }
        Ok(out)
    }

    /// A name the tree does not have in the real directory `dir`.
    pub(crate) fn lookup_extra(&self, dir: &Node, name: &[u8]) -> Result<Option<Node>> {
        if dir.ino == ROOT_INO {
            if let Some((n, ino)) = DOT_FOLDERS.iter().find(|(n, _)| *n == name) {
                return Ok(Some(self.dir(*ino, ROOT_INO, n)));
            }
            return Ok(None);
        }
        let Some((n, size)) = COVERS.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        if !self.holds_tracks(dir.ino)? {
            return Ok(None);
        }
        Ok(self.cover_node(dir, n, *size))
    }

    /// `name` inside the virtual folder `parent`.
    pub(crate) fn lookup(&self, parent: u64, name: &[u8]) -> std::result::Result<Node, Missing> {
        match decode(parent) {
            Some(Ino::Search) => {
                let source = Source::Search(name.to_vec());
                let id = self.folders().id_of(&source);
                self.entries(id, true)?;
                Ok(self.dir(result_ino(id), SEARCH_INO, name))
            }
            Some(Ino::Collections) => {
                let source = Source::Collection(name.to_vec());
                let id = self.folders().id_of(&source);
                self.entries(id, true)?;
                Ok(self.dir(result_ino(id), COLLECTIONS_INO, name))
            }
            Some(Ino::Result(id)) => self
                .entries(id, false)?
                .iter()
                .find(|n| n.name == name)
                .cloned()
                .ok_or(Missing::NotFound),
            Some(Ino::Mirror(dir)) => {
                let child = self.tree.lookup(dir, name)?.ok_or(Missing::NotFound)?;
                match child.kind {
                    NodeKind::File => {
                        if let Some(id) = child.file_id {
                            self.library.prefetch(vec![id]);
                        }
                        Ok(Node { parent, ..child })
                    }
                    NodeKind::Dir => {
                        let files = self.files_in(child.ino)?;
                        if !files.is_empty() {
                            self.library.prefetch(files);
                        }
                        mirror(child).ok_or(Missing::NotFound)
                    }
                }
            }
            Some(Ino::Cover(..)) | None => Err(Missing::NotFound),
        }
    }

    /// The files directly in the tree directory `dir`, in name order.
    fn files_in(&self, dir: u64) -> Result<Vec<FileId>> {
        let mut files = Vec::new();
        let mut after = 0;
        loop {
            let batch = self.tree.children(dir, after, 256)?;
            for c in &batch {
                if c.kind == NodeKind::File {
                    files.extend(c.file_id.map(|id| (c.name.clone(), id)));
                }
                after = c.ino;
            }
            if batch.len() < 256 || files.len() >= PREFETCH_MAX_FILES {
                break;
            }
        }
        files.sort();
        files.truncate(PREFETCH_MAX_FILES);
        Ok(files.into_iter().map(|(_, id)| id).collect())
    }

    /// The entries of result folder `id`, computed again when `fresh` is
    /// wanted and they are older than [`REFRESH_AFTER`] (or never were).
    fn entries(&self, id: u64, fresh: bool) -> std::result::Result<Arc<Vec<Node>>, Missing> {
        let source = {
            let folders = self.folders();
            let folder = folders.by_id.get(&id).ok_or(Missing::NotFound)?;
            if let Some((at, entries)) = &folder.entries {
                if !fresh || at.elapsed() < REFRESH_AFTER {
                    return Ok(entries.clone());
                }
            }
            folder.source.clone()
        };
        // Outside the lock: a search may take a while.
        let files = match &source {
            Source::Search(q) => {
                let q = String::from_utf8_lossy(q);
                self.library.search(&q, RESULT_LIMIT).map_err(|e| {
                    tracing::info!(query = %q, "search folder: {e}");
                    Missing::BadQuery
                })?
            }
            Source::Collection(name) => self
                .library
                .collection(&String::from_utf8_lossy(name), RESULT_LIMIT)
                .ok_or(Missing::NotFound)?,
        };
        let entries = Arc::new(names::result_entries(&*self.tree, result_ino(id), &files)?);
        if let Some(f) = self.folders().by_id.get_mut(&id) {
            f.entries = Some((Instant::now(), entries.clone()));
        }
        Ok(entries)
    }

    /// Lists the virtual folder `ino` from cookie `offset` (see
    /// `MusicFs::list`); `add` returns true when the reply is full.
    pub(crate) fn list(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(&Node, u64, &[u8]) -> bool,
    ) -> std::result::Result<(), Missing> {
        let dir = match self.node(ino)? {
            Some(d) if d.kind == NodeKind::Dir => d,
            Some(_) => return Err(Missing::Failed(Error::MissingFile { ino, file_id: 0 })),
            None => return Err(Missing::NotFound),
        };
        let parent = match dir.parent {
            p if p == ROOT_INO || p == ino => self.tree.node(ROOT_INO)?.unwrap_or(dir.clone()),
            p => self.node(p)?.unwrap_or(dir.clone()),
        };
        if offset < 1 && add(&dir, 1, b".") {
            return Ok(());
        }
        if offset < 2 && add(&parent, 2, b"..") {
            return Ok(());
        }
        if let Some(Ino::Mirror(real)) = decode(ino) {
            // Tree children, cookies `ino + 2` as in a real directory.
            let mut after = offset.saturating_sub(2);
            loop {
                let batch = self.tree.children(real, after, 128)?;
                for child in &batch {
                    let shown = match child.kind {
                        NodeKind::Dir => mirror(child.clone()),
                        NodeKind::File => Some(Node {
                            parent: ino,
                            ..child.clone()
                        }),
                    };
                    if let Some(n) = shown {
                        if add(&n, child.ino + 2, &n.name) {
                            return Ok(());
                        }
                    }
                    after = child.ino;
                }
                if batch.len() < 128 {
                    return Ok(());
                }
            }
        }
        let entries: Vec<Node> = match decode(ino) {
            Some(Ino::Search) => {
                let folders = self.folders();
                let mut found: Vec<(u64, &Folder)> = folders
                    .by_id
                    .iter()
                    .filter(|(_, f)| matches!(f.source, Source::Search(_)))
                    .map(|(id, f)| (*id, f))
                    .collect();
                found.sort_by_key(|(id, _)| *id);
                found
                    .into_iter()
                    .map(|(id, f)| self.dir(result_ino(id), SEARCH_INO, f.source.name()))
                    .collect()
            }
            Some(Ino::Collections) => {
                let names = self.library.collections();
                let mut folders = self.folders();
                names
                    .into_iter()
                    .filter(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
                    .map(|n| {
                        let id = folders.id_of(&Source::Collection(n.clone().into_bytes()));
                        self.dir(result_ino(id), COLLECTIONS_INO, n.as_bytes())
                    })
                    .collect()
            }
            Some(Ino::Result(id)) => self.entries(id, offset == 0)?.to_vec(),
            _ => Vec::new(),
        };
        for (i, n) in entries.iter().enumerate() {
            let cookie = FIRST_ENTRY_COOKIE + i as u64;
            if cookie <= offset {
                continue;
            }
            if add(n, cookie, &n.name) {
                break;
            }
        }
        Ok(())
    }

    /// Opens a cover file: its bytes are held until the handle goes.
    pub(crate) fn open(&self, ino: u64) -> std::result::Result<u64, Missing> {
        let Some(Ino::Cover(dir, size)) = decode(ino) else {
            return Err(Missing::NotFound);
        };
        let bytes = self.library.cover(dir, size).ok_or(Missing::NotFound)?;
        let fh = VIRT | self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, bytes);
        Ok(fh)
    }

    /// Bytes of an open cover file; `None` for an unknown handle.
    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> Option<Vec<u8>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = open.get(&fh)?;
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(size as usize).min(bytes.len());
        Some(bytes[start..end].to_vec())
    }

    pub(crate) fn release(&self, fh: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
    }
}

/// A tree directory as its `.prefetch` mirror.
fn mirror(dir: Node) -> Option<Node> {
    if dir.kind != NodeKind::Dir {
        return None;
    }
    let (parent, name) = if dir.ino == ROOT_INO {
        (ROOT_INO, b".prefetch".to_vec())
    } else {
        (mirror_ino(dir.parent), dir.name)
    };
    Some(Node {
        ino: mirror_ino(dir.ino),
        parent,
        name,
        ..dir
    })
}

#[cfg(test)]
mod tests;
