//! Recursive inotify watches over a directory tree, translated into
//! [`RawEvent`]s that name paths relative to the root.
//!
//! We manage the watches ourselves rather than through `notify` because
//! `notify` puts `IN_OPEN` into every watch, and musicfs opens every file it
//! scans and every file read through the mount: a scan or a media server
//! walking the mount then floods the inotify queue with opens, the queue
//! overflows and every overflow costs a full rescan. The mask here holds
//! only events that can change what the origin lists ([`MASK`]).
//!
//! One watch per directory, none on hidden directories (nothing below them is
//! listed; a hidden directory renamed visible arrives as `IN_MOVED_TO` and is
//! watched then). A directory's watch is added *before* its entries are read,
//! so a subdirectory made at the same moment is either seen by the read or
//! reported by the new watch. A directory renamed inside the tree keeps its
//! watches (inotify watches inodes), so `IN_MOVED_FROM`/`IN_MOVED_TO` pairs
//! are matched by cookie and only the paths are rewritten; a `IN_MOVED_FROM`
//! left unmatched once the queue is drained means the directory left the
//! tree, and its watches are removed. Guessing wrong (the pair split across
//! two reads) costs only re-adding the watches when the `IN_MOVED_TO` comes.
use crate::local::is_hidden;
use crate::{Error, Result};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What each directory is watched for. No `IN_OPEN`, `IN_ACCESS` or
/// `IN_CLOSE_NOWRITE`: reads change nothing, and there are a great many of
/// them. `IN_EXCL_UNLINK` so files deleted while open (still read by
/// someone) stop producing events.
pub(super) const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::EXCL_UNLINK);

/// One inotify event, reduced to what the debouncer needs. Paths are
/// relative to the root, never empty, never hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawEvent {
    /// Created, deleted, written or moved in: look at the path again.
    Changed(Vec<u8>),
    /// Attributes (mtime, mode...) changed.
    Attrib(Vec<u8>),
    /// Moved away from this path (inside the tree or out of it).
    MovedFrom(Vec<u8>),
    /// The kernel dropped events.
    Overflow,
    /// The root itself was deleted, moved or unmounted.
    RootGone,
}

/// The watches of one tree; [`Tree::run`] reads them on its own thread.
pub(super) struct Tree {
    origin: String,
    root: PathBuf,
    inotify: Inotify,
    watches: Watches,
    /// Watch descriptor id → (descriptor, directory relative to the root;
    /// empty for the root).
    by_wd: HashMap<i32, (WatchDescriptor, Vec<u8>)>,
    /// The same, by path, so subtrees can be found by prefix.
    by_path: BTreeMap<Vec<u8>, i32>,
    /// Directories seen leaving by `IN_MOVED_FROM`, by cookie, until their
    /// `IN_MOVED_TO` comes or the queue is drained.
    moved_from: HashMap<u32, Vec<u8>>,
}

impl Tree {
    /// Watches every directory below `root` (canonical). Returns the
    /// directories found, relative to the root, root excluded.
    pub(super) fn new(origin: String, root: PathBuf) -> Result<(Tree, BTreeSet<Vec<u8>>)> {
        let watch_error = |e: io::Error, what: &str| Error::Watch {
            origin: origin.clone(),
            message: format!("{what}: {e}{}", limit_hint(&e)),
        };
        let inotify = Inotify::init().map_err(|e| watch_error(e, "cannot start inotify"))?;
        let watches = inotify.watches();
        let mut tree = Tree {
            origin: origin.clone(),
            root,
            inotify,
            watches,
            by_wd: HashMap::new(),
            by_path: BTreeMap::new(),
            moved_from: HashMap::new(),
        };
        let mut dirs = BTreeSet::new();
        tree.add_tree(Vec::new(), &mut |rel| {
            dirs.insert(rel.to_vec());
        })
        .map_err(|(e, path)| watch_error(e, &format!("{}", path.display())))?;
        dirs.remove(&Vec::new());
        Ok((tree, dirs))
    }

    /// Reads events and hands them to `deliver` until `stop` (the read end
    /// of a pipe) becomes readable or hung up, or `deliver` returns false.
    pub(super) fn run(mut self, stop: OwnedFd, mut deliver: impl FnMut(Vec<RawEvent>) -> bool) {
        // Room for many events per read (each is 16 bytes plus its name).
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(origin = %self.origin, error = %e, "cannot wait for inotify events; watching stops");
                    return;
                }
            }
            if fds[1].any() != Some(false) {
                return;
            }
            let mut out = Vec::new();
            loop {
                let events = match self.inotify.read_events(&mut buf) {
                    Ok(events) => events,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!(origin = %self.origin, error = %e, "cannot read inotify events; watching stops");
                        return;
                    }
                };
                for event in events {
                    let wd = event.wd.get_watch_descriptor_id();
                    self.on_event(wd, event.mask, event.cookie, event.name, &mut out);
                }
            }
            self.expire_moves();
            if !out.is_empty() && !deliver(out) {
                return;
            }
        }
    }

    fn on_event(
        &mut self,
        wd: i32,
        mask: EventMask,
        cookie: u32,
        name: Option<&OsStr>,
        out: &mut Vec<RawEvent>,
    ) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            out.push(RawEvent::Overflow);
            return;
        }
        if mask.contains(EventMask::IGNORED) {
            // The directory is gone or its watch was removed.
            if let Some((_, rel)) = self.by_wd.remove(&wd) {
                if self.by_path.get(&rel) == Some(&wd) {
                    self.by_path.remove(&rel);
                }
            }
            return;
        }
        // Events already queued for a watch removed since are stale.
        let Some((_, dir)) = self.by_wd.get(&wd) else {
            return;
        };
        let Some(name) = name else {
            // About the watched directory itself. Below the root its
            // parent's watch reports the same thing by name.
            if dir.is_empty()
                && mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::UNMOUNT)
            {
                out.push(RawEvent::RootGone);
            }
            return;
        };
        let mut rel = dir.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let is_dir = mask.contains(EventMask::ISDIR);
        if is_hidden(name) {
            // Renamed hidden: gone from the tree as far as watching goes.
            if is_dir && mask.contains(EventMask::MOVED_TO) {
                if let Some(old) = self.moved_from.remove(&cookie) {
                    self.unwatch_tree(&old);
                }
            }
            return;
        }
        if is_dir {
            if mask.contains(EventMask::CREATE) {
                self.add_tree_logged(rel.clone());
            } else if mask.contains(EventMask::MOVED_FROM) {
                self.moved_from.insert(cookie, rel.clone());
            } else if mask.contains(EventMask::MOVED_TO) {
                match self.moved_from.remove(&cookie) {
                    Some(old) => self.rename_tree(&old, &rel),
                    None => self.add_tree_logged(rel.clone()),
                }
            }
        }
        if mask.contains(EventMask::MOVED_FROM) {
            out.push(RawEvent::MovedFrom(rel));
        } else if mask.intersects(
            EventMask::CREATE
                | EventMask::DELETE
                | EventMask::MODIFY
                | EventMask::CLOSE_WRITE
                | EventMask::MOVED_TO,
        ) {
            out.push(RawEvent::Changed(rel));
        } else if mask.contains(EventMask::ATTRIB) {
            out.push(RawEvent::Attrib(rel));
        }
    }

    /// Directories whose `IN_MOVED_FROM` found no partner left the tree.
    fn expire_moves(&mut self) {
        let gone: Vec<Vec<u8>> = self.moved_from.drain().map(|(_, rel)| rel).collect();
        for rel in gone {
            self.unwatch_tree(&rel);
        }
    }

    fn add_tree_logged(&mut self, rel: Vec<u8>) {
        if let Err((e, path)) = self.add_tree(rel, &mut |_| {}) {
            tracing::warn!(origin = %self.origin, path = %path.display(), error = %e, "cannot watch a new directory{}; changes below it may be missed until the next rescan", limit_hint(&e));
        }
    }

    /// Watches `rel` and every non-hidden directory below it, calling
    /// `found` for each. Directories that vanish or cannot be read on the
    /// way are skipped (the listing skips them too); running out of
    /// watches is an error.
    fn add_tree(
        &mut self,
        rel: Vec<u8>,
        found: &mut dyn FnMut(&[u8]),
    ) -> std::result::Result<(), (io::Error, PathBuf)> {
        let mut stack = vec![rel];
        while let Some(rel) = stack.pop() {
            let path = self.root.join(OsStr::from_bytes(&rel));
            // Watch first, read second: nothing made in between is missed.
            match self.watches.add(&path, MASK) {
                Ok(wd) => self.record(wd, rel.clone()),
                Err(e) if is_vanished(&e) || e.raw_os_error() == Some(libc::EACCES) => {
                    tracing::debug!(origin = %self.origin, path = %path.display(), error = %e, "not watching a directory");
                    continue;
                }
                Err(e) => return Err((e, path)),
            }
            found(&rel);
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::debug!(origin = %self.origin, path = %path.display(), error = %e, "cannot list a watched directory");
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                // `file_type` does not follow symlinks.
                if is_hidden(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(name.as_bytes());
                stack.push(child);
            }
        }
        Ok(())
    }

    fn record(&mut self, wd: WatchDescriptor, rel: Vec<u8>) {
        let id = wd.get_watch_descriptor_id();
        // The same inode watched again (moved back in before its watch was
        // dropped) gets its old descriptor back: forget the old path.
        if let Some((_, old)) = self.by_wd.get(&id) {
            if self.by_path.get(old) == Some(&id) {
                self.by_path.remove(old);
            }
        }
        if let Some(previous) = self.by_path.insert(rel.clone(), id) {
            if previous != id {
                // A directory replaced by another under the same name.
                if let Some((wd, _)) = self.by_wd.remove(&previous) {
                    let _ = self.watches.remove(wd);
                }
            }
        }
        self.by_wd.insert(id, (wd, rel));
    }

    /// `rel` and every directory below it, with their descriptor ids.
    fn subtree(&self, rel: &[u8]) -> Vec<(Vec<u8>, i32)> {
        let mut prefix = rel.to_vec();
        prefix.push(b'/');
        let mut out: Vec<(Vec<u8>, i32)> = self
            .by_path
            .get(rel)
            .map(|id| (rel.to_vec(), *id))
            .into_iter()
            .collect();
        out.extend(
            self.by_path
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .map(|(p, id)| (p.clone(), *id)),
        );
        out
    }

    fn unwatch_tree(&mut self, rel: &[u8]) {
        for (path, id) in self.subtree(rel) {
            self.by_path.remove(&path);
            if let Some((wd, _)) = self.by_wd.remove(&id) {
                // EINVAL if the kernel already dropped it: fine.
                let _ = self.watches.remove(wd);
            }
        }
    }

    fn rename_tree(&mut self, old: &[u8], new: &[u8]) {
        for (path, id) in self.subtree(old) {
            self.by_path.remove(&path);
            let mut renamed = new.to_vec();
            renamed.extend_from_slice(&path[old.len()..]);
            if let Some((_, rel)) = self.by_wd.get_mut(&id) {
                rel.clone_from(&renamed);
            }
            self.by_path.insert(renamed, id);
        }
    }

    #[cfg(test)]
    pub(super) fn watched_dirs(&self) -> Vec<Vec<u8>> {
        self.by_path.keys().cloned().collect()
    }
}

fn is_vanished(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

fn limit_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => " (raise sysctl fs.inotify.max_user_watches)",
        Some(libc::EMFILE) => " (raise sysctl fs.inotify.max_user_instances)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(v: impl IntoIterator<Item = Vec<u8>>) -> Vec<String> {
        v.into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn watches_exactly_the_visible_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("A/B")).unwrap();
        fs::create_dir_all(root.join(".hidden/C")).unwrap();
        fs::create_dir_all(root.join("outside")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), root.join("A/link")).unwrap();
        fs::write(root.join("A/f.flac"), b"x").unwrap();
        let (tree, dirs) = Tree::new("m".into(), root).unwrap();
        assert_eq!(names(tree.watched_dirs()), ["", "A", "A/B", "outside"]);
        assert_eq!(names(dirs), ["A", "A/B", "outside"]);
    }

    /// With nobody reading, 20,000 opens and reads would overflow the
    /// kernel queue (16384 events by default) under a mask with `IN_OPEN`
    /// or `IN_ACCESS` or `IN_CLOSE_NOWRITE`; with ours they queue nothing,
    /// and a real write right after is the first event there.
    #[test]
    fn opens_and_reads_queue_no_events() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(root.join("d")).unwrap();
        for i in 0..100 {
            fs::write(root.join(format!("d/{i}.flac")), b"music").unwrap();
        }
        let (mut tree, _) = Tree::new("m".into(), root.clone()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        for i in 0..20_000 {
            let mut file = fs::File::open(root.join(format!("d/{}.flac", i % 100))).unwrap();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut file, &mut data).unwrap();
            assert_eq!(data, b"music");
        }
        fs::read_dir(root.join("d")).unwrap().for_each(drop);
        match tree.inotify.read_events(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(events) => {
                let masks: Vec<EventMask> = events.take(5).map(|e| e.mask).collect();
                panic!("reads queued inotify events, first ones: {masks:?}");
            }
            Err(e) => panic!("{e}"),
        }

        fs::write(root.join("d/new.flac"), b"new").unwrap();
        let mut out = Vec::new();
        let events = tree.inotify.read_events(&mut buf).unwrap();
        let events: Vec<_> = events
            .map(|e| {
                (
                    e.wd.get_watch_descriptor_id(),
                    e.mask,
                    e.cookie,
                    e.name.map(OsStr::to_owned),
                )
            })
            .collect();
        for (wd, mask, cookie, name) in events {
            tree.on_event(wd, mask, cookie, name.as_deref(), &mut out);
        }
        assert!(!out.contains(&RawEvent::Overflow));
        assert_eq!(
            out.first(),
            Some(&RawEvent::Changed(b"d/new.flac".to_vec()))
        );
    }

    #[test]
    fn renamed_directories_keep_their_watches_and_moved_out_ones_lose_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("A/Sub")).unwrap();
        let (mut tree, _) = Tree::new("m".into(), root).unwrap();
        let (wd_a, wd_sub) = (
            tree.by_path[&b"A".to_vec()],
            tree.by_path[&b"A/Sub".to_vec()],
        );
        let dir_moved = EventMask::ISDIR;
        let mut out = Vec::new();
        let root_wd = tree.by_path[&Vec::new()];
        tree.on_event(
            root_wd,
            EventMask::MOVED_FROM | dir_moved,
            7,
            Some(OsStr::new("A")),
            &mut out,
        );
        tree.on_event(
            root_wd,
            EventMask::MOVED_TO | dir_moved,
            7,
            Some(OsStr::new("B")),
            &mut out,
        );
        tree.expire_moves();
        assert_eq!(names(tree.watched_dirs()), ["", "B", "B/Sub"]);
        assert_eq!(tree.by_wd[&wd_sub].1, b"B/Sub");
        assert_eq!(tree.by_wd[&wd_a].1, b"B");
        assert_eq!(
            out,
            [
                RawEvent::MovedFrom(b"A".to_vec()),
                RawEvent::Changed(b"B".to_vec())
            ]
        );

        // Unpaired: moved out of the tree.
        tree.on_event(
            root_wd,
            EventMask::MOVED_FROM | dir_moved,
            8,
            Some(OsStr::new("B")),
            &mut out,
        );
        tree.expire_moves();
        assert_eq!(names(tree.watched_dirs()), [""]);
        assert!(tree.by_wd.len() == 1);
        // Events still queued for the dropped watches are ignored.
        out.clear();
        tree.on_event(
            wd_sub,
            EventMask::CREATE,
            0,
            Some(OsStr::new("x.flac")),
            &mut out,
        );
        tree.on_event(wd_sub, EventMask::IGNORED, 0, None, &mut out);
        assert_eq!(out, []);
    }
}
