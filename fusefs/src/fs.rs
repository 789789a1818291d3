//! The fuser `Filesystem`: read operations answered from the catalog's
//! virtual tree, reads by kernel passthrough or `pread`, `EROFS` for every
//! write operation.
//!
//! Inode numbers are node ids, never reused, so the generation is always 0
//! and `forget` needs no bookkeeping: nothing is kept per looked-up inode.
use crate::attr::{self, node_attr, Owner};
use crate::error::Error;
use crate::handles::{OpenTable, Opened, Source};
use crate::library::Library;
use crate::passthrough::{open_local, Failure, Passthrough};
use crate::remote::{RemoteFiles, StoreSource};
use crate::tree::Tree;
use crate::virt::{self, Missing, Plays, Virtual};
use crate::xattr;
use crate::{FsConfig, FsStats, OriginTable};
use fuser::{
    AccessFlags, BackingId, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use musicfs_index::{Counts, Node, NodeKind, ROOT_INO};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Readdir cookies: 1 = after ".", 2 = after "..", `ino + 2` = after the
/// child `ino` (children are listed in inode order, keyset-paginated).
const DOT_OFFSET: u64 = 1;
const DOTDOT_OFFSET: u64 = 2;
const CHILD_OFFSET_SHIFT: u64 = 2;
/// Children fetched per catalog query while filling a readdir reply.
const READDIR_BATCH: usize = 128;
/// `statfs` is called often by desktop tools; counting rows is not free.
const COUNTS_MAX_AGE: Duration = Duration::from_secs(5);

pub(crate) struct MusicFs {
    tree: Arc<dyn Tree>,
    origins: OriginTable,
    ttl: Duration,
    owner: Owner,
    want_passthrough: bool,
    stats: Arc<FsStats>,
    passthrough: Passthrough,
    open: OpenTable<BackingId>,
    counts: Mutex<Option<(Instant, Counts)>>,
    remote: Arc<RemoteFiles>,
    /// Search, collections, covers, prefetch, play log.
    library: Arc<dyn Library>,
    /// `/.search`, `/.collections`, `/.prefetch` and cover files.
    virt: Virtual,
    /// Track handles, for the play log.
    plays: Plays,
}

impl MusicFs {
    pub(crate) fn new(
        tree: Arc<dyn Tree>,
        origins: OriginTable,
        config: &FsConfig,
        stats: Arc<FsStats>,
        cache: Option<Arc<dyn StoreSource>>,
        library: Arc<dyn Library>,
    ) -> MusicFs {
        let remote = Arc::new(RemoteFiles::new(
            tree.clone(),
            origins.clone(),
            config.remote.clone(),
            stats.clone(),
            cache,
        ));
        library.attach(crate::Prefetcher::new(remote.clone()));
        MusicFs {
            virt: Virtual::new(tree.clone(), library.clone()),
            plays: Plays::default(),
            library,
            remote,
            tree,
            origins,
            ttl: config.ttl,
            owner: Owner {
                uid: config.uid,
                gid: config.gid,
            },
            want_passthrough: config.passthrough,
            passthrough: Passthrough::new(stats.clone()),
            stats,
            open: OpenTable::new(),
            counts: Mutex::new(None),
        }
    }

    /// Maps an error to the errno to answer with, logging the ones that mean
    /// something is broken (catalog, configuration) rather than a race.
    fn fail(&self, op: &str, ino: u64, err: Error) -> Errno {
        let errno = err.errno();
        if errno == libc::EIO {
            tracing::error!(op, ino, "{err}");
        } else {
            tracing::debug!(op, ino, "{err}");
        }
        Errno::from_i32(errno)
    }

    fn node(&self, op: &str, ino: u64) -> Result<Node, Errno> {
        let found = if virt::is_virtual(ino) {
            self.virt.node(ino)
        } else {
            self.tree.node(ino).map_err(Error::from)
        };
        match found {
            Ok(Some(node)) => Ok(node),
            Ok(None) => Err(Errno::ENOENT),
            Err(e) => Err(self.fail(op, ino, e)),
        }
    }

    fn missing(&self, op: &str, ino: u64, why: Missing) -> Errno {
        match why {
            Missing::NotFound => Errno::ENOENT,
            Missing::BadQuery => Errno::EINVAL,
            Missing::Failed(e) => self.fail(op, ino, e),
        }
    }

    fn attr(&self, node: &Node) -> fuser::FileAttr {
        node_attr(node, self.owner)
    }

    /// Walks a directory from the readdir cookie `offset`, calling `add`
    /// with each entry's node (for "." and ".." the directory and its
    /// parent), its cookie and its name, until `add` says the reply is full.
    fn list(
        &self,
        op: &str,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(&Node, u64, &[u8]) -> bool,
    ) -> Result<(), Errno> {
        if virt::is_virtual(ino) {
            return self
                .virt
                .list(ino, offset, add)
                .map_err(|why| self.missing(op, ino, why));
        }
        let dir = self.node(op, ino)?;
        if dir.kind != NodeKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if offset < DOT_OFFSET && add(&dir, DOT_OFFSET, b".") {
            return Ok(());
        }
        if offset < DOTDOT_OFFSET {
            let parent = if dir.ino == ROOT_INO {
                dir.clone()
            } else {
                self.node(op, dir.parent).unwrap_or_else(|_| dir.clone())
            };
            if add(&parent, DOTDOT_OFFSET, b"..") {
                return Ok(());
            }
        }
        let mut after = offset.saturating_sub(CHILD_OFFSET_SHIFT);
        loop {
            let batch = self
                .tree
                .children(ino, after, READDIR_BATCH)
                .map_err(|e| self.fail(op, ino, e.into()))?;
            for child in &batch {
                if add(child, child.ino + CHILD_OFFSET_SHIFT, &child.name) {
                    return Ok(());
                }
                after = child.ino;
            }
            if batch.len() < READDIR_BATCH {
                break;
            }
        }
        // Then the virtual entries (dot folders, covers), cookies above
        // every child's.
        let extras = self.virt.extras(&dir).map_err(|e| self.fail(op, ino, e))?;
        for (i, node) in extras.iter().enumerate() {
            let cookie = virt::EXTRA_COOKIE + i as u64;
            if cookie > offset && add(node, cookie, &node.name) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Opens the bytes behind a file node: the source for daemon reads, and
    /// whether those bytes are exactly a regular file's (passthrough-able).
    fn open_source(
        &self,
        node: &Node,
    ) -> Result<(Source, bool, Option<std::path::PathBuf>), Error> {
        let file_id = node.file_id.ok_or(Error::MissingFile {
            ino: node.ino,
            file_id: 0,
        })?;
        let record = self.tree.file(file_id)?.ok_or(Error::MissingFile {
            ino: node.ino,
            file_id,
        })?;
        // An edited file is served through its plan, never passed through
        // (the kernel would read the original's bytes).
        let Some(plan) = self.tree.splice(file_id)? else {
            return self.open_original(node, &record, true);
        };
        let stale = |what: String| Error::Open {
            path: String::from_utf8_lossy(&node.name).into_owned().into(),
            source: std::io::Error::other(format!("{what}; the tree is stale")),
        };
        if plan.len() != node.size {
            return Err(stale(format!(
                "synthesized layout of file {file_id} is {} bytes, the tree says {}",
                plan.len(),
                node.size
            )));
        }
        let (base, _, path) = self.open_original(node, &record, false)?;
        if let Source::File { file, .. } = &base {
            // The plan points into the original as scanned; another
            // original would be served as garbage.
            let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
            if len != record.stamp.size {
                return Err(stale(format!(
                    "original of file {file_id} is {len} bytes, the catalog says {}",
                    record.stamp.size
                )));
            }
        }
        let base = Box::new(base);
        Ok((Source::Spliced { plan, base }, false, path))
    }

    /// Opens a file's original bytes; `unspliced` = they are the served
    /// bytes (no overlay), so the source may pass through.
    fn open_original(
        &self,
        node: &Node,
        record: &musicfs_index::FileRecord,
        unspliced: bool,
    ) -> Result<(Source, bool, Option<std::path::PathBuf>), Error> {
        let origin = self
            .origins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&record.origin_id)
            .cloned()
            .ok_or(Error::UnknownOrigin {
                ino: node.ino,
                origin_id: record.origin_id,
            })?;
        // An overlay changes the served bytes; only untouched files qualify.
        let untouched = unspliced && node.size == record.stamp.size;
        match origin.local_path(&record.rel_path) {
            Some(path) => {
                // The origin's own confined open when it has one (no symlink
                // anywhere on the path, nothing outside its root); else ours.
                let opened = match origin.open_local(&record.rel_path) {
                    Some(result) => {
                        result.map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
                    }
                    None => open_local(&path),
                };
                let file = opened.map_err(|source| Error::Open {
                    path: path.clone(),
                    source,
                })?;
                // The kernel reports our size but reads the backing file to
                // its end: a file changed since the scan must not pass through.
                let same_size = file
                    .metadata()
                    .map(|m| m.len() == node.size)
                    .unwrap_or(false);
                Ok((
                    Source::File {
                        file,
                        path: path.clone(),
                    },
                    untouched && same_size,
                    Some(path),
                ))
            }
            None => {
                // A fully cached remote file exported as a regular file
                // passes through like a local one (only worth it when
                // passthrough works: otherwise the store serves as well).
                if untouched && self.passthrough.is_active() {
                    if let Some((file, path)) = self.remote.export_for(record) {
                        return Ok((
                            Source::File {
                                file,
                                path: path.clone(),
                            },
                            true,
                            Some(path),
                        ));
                    }
                }
                let handle = self.remote.open(record, node.ino)?;
                Ok((Source::Remote(handle), false, None))
            }
        }
    }

    fn counts(&self) -> Result<Counts, Errno> {
        let mut cached = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, counts)) = cached.as_ref() {
            if at.elapsed() < COUNTS_MAX_AGE {
                return Ok(counts.clone());
            }
        }
        let counts = self
            .tree
            .counts()
            .map_err(|e| self.fail("statfs", ROOT_INO, e.into()))?;
        *cached = Some((Instant::now(), counts.clone()));
        Ok(counts)
    }

    fn xattr_value(&self, node: &Node, name: &[u8]) -> Result<Option<Vec<u8>>, Errno> {
        let Some(file_id) = node.file_id else {
            return Ok(None);
        };
        if name != xattr::ORIGIN && name != xattr::PATH {
            return Ok(None);
        }
        let record = match self.tree.file(file_id) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail("getxattr", node.ino, e.into())),
        };
        if name == xattr::PATH {
            return Ok(Some(record.rel_path));
        }
        let origins = self.origins.read().unwrap_or_else(|e| e.into_inner());
        Ok(origins
            .get(&record.origin_id)
            .map(|o| o.name().as_bytes().to_vec()))
    }
}

fn reply_xattr(reply: ReplyXattr, answer: xattr::Answer) {
    match answer {
        xattr::Answer::Size(n) => reply.size(n),
        xattr::Answer::Data(d) => reply.data(&d),
        xattr::Answer::Errno(e) => reply.error(Errno::from_i32(e)),
    }
}

impl Filesystem for MusicFs {
    fn init(&mut self, _req: &Request, kernel: &mut KernelConfig) -> std::io::Result<()> {
        let offered = kernel.capabilities();
        // Readdirplus saves a lookup per entry on `ls -l` and media-server
        // walks; parallel dirops lets lookups in one directory run at once;
        // auto-inval drops cached pages when a file's mtime changes.
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            if offered.contains(flag) {
                // Cannot fail: the kernel offers it.
                let _ = kernel.add_capabilities(flag);
            }
        }
        self.passthrough.negotiate(self.want_passthrough, kernel);
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::debug!("FUSE session destroyed");
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.as_bytes();
        if virt::is_virtual(parent.0) {
            return match self.virt.lookup(parent.0, name) {
                // `.prefetch` entries: every stat must come back to us.
                Ok(node) if virt::is_mirror(parent.0) => {
                    reply.entry(&Duration::ZERO, &self.attr(&node), Generation(0))
                }
                Ok(node) => reply.entry(&self.ttl, &self.attr(&node), Generation(0)),
                Err(why) => reply.error(self.missing("lookup", parent.0, why)),
            };
        }
        let found = match self.tree.lookup(parent.0, name) {
            // Only names a virtual entry can have cost a second query.
            Ok(None) if virt::is_extra_name(name) => self
                .tree
                .node(parent.0)
                .map_err(Error::from)
                .and_then(|dir| match dir {
                    Some(dir) if dir.kind == NodeKind::Dir => self.virt.lookup_extra(&dir, name),
                    _ => Ok(None),
                }),
            other => other.map_err(Error::from),
        };
        match found {
            Ok(Some(node)) => reply.entry(&self.ttl, &self.attr(&node), Generation(0)),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(self.fail("lookup", parent.0, e)),
        }
    }

    /// Nothing is kept per looked-up inode (the catalog is the inode
    /// table and inodes are never reused), so lookup counts need no
    /// bookkeeping.
    /// (fuser's default `batch_forget` calls this for each inode.)
    fn forget(&self, _req: &Request, _ino: INodeNo, _nlookup: u64) {}

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node("getattr", ino.0) {
            Ok(node) => reply.attr(&self.ttl, &self.attr(&node)),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node("opendir", ino.0) {
            // Result folders change with every search: no cached listing.
            Ok(node) if node.kind == NodeKind::Dir && virt::is_virtual(ino.0) => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            // Listings only change with a tree sync, which invalidates the
            // directory: let the kernel cache them.
            Ok(node) if node.kind == NodeKind::Dir => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let result = self.list("readdir", ino.0, offset, |node, cookie, name| {
            reply.add(
                INodeNo(node.ino),
                cookie,
                attr::file_type(node.kind),
                OsStr::from_bytes(name),
            )
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.ttl;
        let owner = self.owner;
        let result = self.list("readdirplus", ino.0, offset, |node, cookie, name| {
            let attr = node_attr(node, owner);
            // `.prefetch` entries: a later stat must come back to us.
            let ttl = if virt::is_mirror(node.ino) {
                Duration::ZERO
            } else {
                ttl
            };
            reply.add(
                INodeNo(node.ino),
                cookie,
                OsStr::from_bytes(name),
                &ttl,
                &attr,
                Generation(0),
            )
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            reply.error(Errno::EROFS);
            return;
        }
        if virt::is_virtual(ino.0) {
            return match self.virt.open(ino.0) {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(why) => reply.error(self.missing("open", ino.0, why)),
            };
        }
        let node = match self.node("open", ino.0) {
            Ok(node) if node.kind == NodeKind::File => node,
            Ok(_) => return reply.error(Errno::EISDIR),
            Err(e) => return reply.error(e),
        };
        let (source, exact, path) = match self.open_source(&node) {
            Ok(x) => x,
            Err(e) => return reply.error(self.fail("open", ino.0, e)),
        };
        let try_passthrough = exact && self.passthrough.is_active();
        let opened = self.open.open(ino.0, source, try_passthrough, |source| {
            let Source::File { file, .. } = source else {
                return None;
            };
            match reply.open_backing(file) {
                Ok(id) => Some(id),
                Err(e) => {
                    let path = path.as_deref().unwrap_or(Path::new("?"));
                    if self.passthrough.backing_failed(&e, path) == Failure::Permanent {
                        tracing::debug!(ino = ino.0, "passthrough now off for this session");
                    }
                    None
                }
            }
        });
        self.stats.open_handles.fetch_add(1, Ordering::Relaxed);
        if let Some(file) = node.file_id {
            let fh = match &opened {
                Opened::Passthrough { fh, .. } | Opened::Daemon { fh } => *fh,
            };
            self.plays.opened(fh, file);
            self.library.opened(file);
        }
        match opened {
            Opened::Passthrough { fh, backing } => {
                self.stats.passthrough_opens.fetch_add(1, Ordering::Relaxed);
                reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &backing);
            }
            Opened::Daemon { fh } => {
                self.stats.daemon_opens.fetch_add(1, Ordering::Relaxed);
                // Files only change through a rescan, which invalidates the
                // inode: cached pages stay valid across opens.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if fh.0 & virt::VIRT != 0 {
            return match self.virt.read(fh.0, offset, size) {
                Some(bytes) => reply.data(&bytes),
                None => reply.error(Errno::EBADF),
            };
        }
        let Some(source) = self.open.source(fh.0) else {
            tracing::error!(
                ino = ino.0,
                fh = fh.0,
                "read on a handle with no daemon source"
            );
            reply.error(Errno::EBADF);
            return;
        };
        let mut buf = vec![0u8; size as usize];
        match source.read_full_at(offset, &mut buf) {
            Ok(n) => {
                self.stats.reads.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                self.plays.read(fh.0, n as u64);
                reply.data(&buf[..n]);
            }
            Err(e) => reply.error(self.fail("read", ino.0, e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if fh.0 & virt::VIRT != 0 {
            self.virt.release(fh.0);
            return reply.ok();
        }
        if self.open.release(fh.0) {
            self.stats.open_handles.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some((file, bytes)) = self.plays.released(fh.0) {
            self.library.released(file, bytes);
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _d: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _d: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.counts() {
            Ok(c) => reply.statfs(
                0,
                0,
                0,
                c.files + c.dirs,
                0,
                attr::BLKSIZE,
                255,
                attr::BLKSIZE,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let node = match self.node("access", ino.0) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else if mask.contains(AccessFlags::X_OK) && node.kind == NodeKind::File {
            reply.error(Errno::EACCES);
        } else {
            reply.ok();
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // `ls -l` asks every file for security.selinux: answer names that
        // are not ours without touching the catalog.
        if name.as_bytes() != xattr::ORIGIN && name.as_bytes() != xattr::PATH {
            reply.error(Errno::NO_XATTR);
            return;
        }
        let node = match self.node("getxattr", ino.0) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        match self.xattr_value(&node, name.as_bytes()) {
            Ok(value) => reply_xattr(reply, xattr::answer(value, size)),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let node = match self.node("listxattr", ino.0) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        let names = match node.kind {
            NodeKind::File => xattr::file_names(),
            NodeKind::Dir => Vec::new(),
        };
        reply_xattr(reply, xattr::answer(Some(names), size));
    }

    fn readlink(&self, _req: &Request, _ino: INodeNo, reply: ReplyData) {
        reply.error(Errno::EINVAL);
    }

    // ---- every write operation: EROFS ----

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::MemTree;
    use musicfs_index::Stamp;
    use std::collections::HashMap;
    use std::sync::RwLock;

    fn fs_with(tree: MemTree) -> MusicFs {
        let config = FsConfig::default();
        MusicFs::new(
            Arc::new(tree),
            Arc::new(RwLock::new(HashMap::new())),
            &config,
            Arc::new(FsStats::default()),
            None,
            Arc::new(crate::library::NoLibrary),
        )
    }

    fn listing(fs: &MusicFs, ino: u64, offset: u64, room: usize) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        fs.list("test", ino, offset, |node, cookie, name| {
            if out.len() == room {
                return true;
            }
            out.push((String::from_utf8_lossy(name).into_owned(), node.ino, cookie));
            false
        })
        .unwrap();
        out
    }

    #[test]
    fn readdir_cookies_resume_where_the_reply_was_full() {
        let tree = MemTree::new();
        let stamp = Stamp {
            size: 1,
            mtime_ns: 1,
        };
        let mut inos = Vec::new();
        for i in 0..300 {
            inos.push(tree.add_file(&format!("A/{i:03}.flac"), 1, b"x", stamp));
        }
        let fs = fs_with(tree);
        let a = fs.tree.lookup(ROOT_INO, b"A").unwrap().unwrap().ino;
        // Read the directory 7 entries at a time, as a small kernel buffer would.
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let page = listing(&fs, a, offset, 7);
            if page.is_empty() {
                break;
            }
            offset = page.last().unwrap().2;
            all.extend(page);
        }
        assert_eq!(all.len(), 302);
        assert_eq!((all[0].0.as_str(), all[0].1), (".", a));
        assert_eq!((all[1].0.as_str(), all[1].1), ("..", ROOT_INO));
        let children: Vec<u64> = all[2..].iter().map(|e| e.1).collect();
        assert_eq!(children, inos);
        let names: Vec<&str> = all[2..5].iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["000.flac", "001.flac", "002.flac"]);
    }

    #[test]
    fn readdir_of_a_file_or_missing_inode() {
        let tree = MemTree::new();
        let f = tree.add_file(
            "x.flac",
            1,
            b"x",
            Stamp {
                size: 1,
                mtime_ns: 1,
            },
        );
        let fs = fs_with(tree);
        assert_eq!(fs.list("t", f, 0, |_, _, _| false), Err(Errno::ENOTDIR));
        assert_eq!(fs.list("t", 999, 0, |_, _, _| false), Err(Errno::ENOENT));
        let root = listing(&fs, ROOT_INO, 0, 10);
        assert_eq!(root[1].1, ROOT_INO, "the root is its own parent");
    }

    #[test]
    fn xattrs_only_on_files_and_only_ours() {
        let tree = MemTree::new();
        let f = tree.add_file(
            "x.flac",
            1,
            b"dir/x.flac",
            Stamp {
                size: 1,
                mtime_ns: 1,
            },
        );
        let fs = fs_with(tree);
        let file = fs.tree.node(f).unwrap().unwrap();
        let root = fs.tree.node(ROOT_INO).unwrap().unwrap();
        assert_eq!(
            fs.xattr_value(&file, xattr::PATH).unwrap(),
            Some(b"dir/x.flac".to_vec())
        );
        // Origin 1 is not in the (empty) origin table.
        assert_eq!(fs.xattr_value(&file, xattr::ORIGIN).unwrap(), None);
        assert_eq!(fs.xattr_value(&file, b"user.other").unwrap(), None);
        assert_eq!(fs.xattr_value(&root, xattr::PATH).unwrap(), None);
    }

    #[test]
    fn open_source_rejects_unknown_origin() {
        let tree = MemTree::new();
        let f = tree.add_file(
            "x.flac",
            7,
            b"x",
            Stamp {
                size: 1,
                mtime_ns: 1,
            },
        );
        let fs = fs_with(tree);
        let node = fs.tree.node(f).unwrap().unwrap();
        let err = fs.open_source(&node).err().unwrap();
        assert!(matches!(err, Error::UnknownOrigin { origin_id: 7, .. }));
        assert_eq!(err.errno(), libc::EIO);
    }
}
