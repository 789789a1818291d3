//! Watching a [`LocalOrigin`](crate::LocalOrigin) with inotify (recursive,
//! symlinks not followed, opens and reads not watched: see [`tree`]),
//! debounced per path.
//!
//! Raw events only say *that* something happened at a path; what is reported
//! is decided when the path has been quiet for the debounce period, by
//! looking at the path itself: a regular file is an `Upsert`, a missing path
//! a `Remove`, a directory an `Upsert` for every file below it (new
//! directories may fill up before their inotify watch exists, so walking them
//! is the only way not to miss files). Deciding from the disk rather than from
//! the event sequence makes create/modify/close-write bursts, renames and
//! create-then-delete all come out right without a state machine.
//!
//! Two things cannot be seen on disk afterwards and are handled when the
//! event arrives: a directory moved out of the tree (its files vanish
//! without events, so the origin is rescanned) and a directory deleted (its
//! files were deleted one by one and reported, so it is just forgotten). To
//! tell a moved-out directory from a moved-out file, the debouncer keeps the
//! set of directories in the tree. Queue overflow also becomes a rescan.
//!
//! A rescan supersedes everything pending: the consumer lists the origin
//! after receiving it, and that listing reflects every earlier event.
//!
//! Two threads: one reads inotify ([`tree::Tree::run`]) so the kernel
//! queue is drained even while the other, the debouncer, walks a directory
//! that appeared.
mod tree;

use crate::local::{walk, Visit};
use crate::{Change, Error, Result, WatchGuard};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SendError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tree::{RawEvent, Tree};

enum Msg {
    Raw(Vec<RawEvent>),
    Stop,
}

/// Stops the inotify reader and the debounce thread when dropped.
pub(crate) struct LocalWatch {
    /// Write end of the pipe the reader polls: closing it wakes the reader.
    stop_reader: Option<OwnedFd>,
    reader: Option<JoinHandle<()>>,
    stop: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl WatchGuard for LocalWatch {}

impl Drop for LocalWatch {
    fn drop(&mut self) {
        drop(self.stop_reader.take());
        if let Some(reader) = self.reader.take() {
            if reader.join().is_err() {
                tracing::error!("origin inotify thread panicked");
            }
        }
        let _ = self.stop.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("origin watch thread panicked");
            }
        }
    }
}

/// Starts watching `root` (canonical); changes go to `tx` until the returned
/// guard is dropped or `tx`'s receiver goes away.
pub(crate) fn start(
    origin: String,
    root: PathBuf,
    debounce: Duration,
    tx: Sender<Change>,
) -> Result<LocalWatch> {
    let start_error = |what: &str, e: &dyn std::fmt::Display| Error::Watch {
        origin: origin.clone(),
        message: format!("cannot start the {what}: {e}"),
    };
    // Every directory is watched before this returns, so any change made
    // after `watch()` returns is seen; the walk also tells the debouncer
    // which paths are directories.
    let (tree, dirs) = Tree::new(origin.clone(), root.clone())?;
    let (stop_rd, stop_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| start_error("watch stop pipe", &e))?;
    let (raw_tx, raw_rx) = mpsc::channel();
    let reader_tx = raw_tx.clone();
    let reader = std::thread::Builder::new()
        .name("musicfs-inotify".into())
        .spawn(move || tree.run(stop_rd, |events| reader_tx.send(Msg::Raw(events)).is_ok()))
        .map_err(|e| start_error("inotify thread", &e))?;
    let mut guard = LocalWatch {
        stop_reader: Some(stop_wr),
        reader: Some(reader),
        stop: raw_tx,
        thread: None,
    };
    let debouncer = Debouncer {
        origin: origin.clone(),
        root,
        debounce,
        tx,
        pending: HashMap::new(),
        deadlines: BTreeMap::new(),
        seq: 0,
        dirs,
        rescan_at: None,
    };
    // On error the guard, dropped here, stops the reader.
    let thread = std::thread::Builder::new()
        .name("musicfs-watch".into())
        .spawn(move || debouncer.run(raw_rx))
        .map_err(|e| start_error("debounce thread", &e))?;
    guard.thread = Some(thread);
    Ok(guard)
}

/// Deadline order; the sequence number keeps keys unique.
type Deadline = (Instant, u64);

struct Debouncer {
    origin: String,
    root: PathBuf,
    debounce: Duration,
    tx: Sender<Change>,
    /// Paths with unreported events, and when each is due.
    pending: HashMap<Vec<u8>, Deadline>,
    deadlines: BTreeMap<Deadline, Vec<u8>>,
    seq: u64,
    /// Directories known to be in the tree, relative to the root.
    dirs: BTreeSet<Vec<u8>>,
    rescan_at: Option<Instant>,
}

impl Debouncer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = match self.next_deadline() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Raw(events)) => {
                    let now = Instant::now();
                    for event in events {
                        self.on_event(event, now);
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.flush_due(Instant::now()).is_err() {
                return; // nobody listens any more
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let first = self.deadlines.first_key_value().map(|(k, _)| k.0);
        match (first, self.rescan_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_event(&mut self, event: RawEvent, now: Instant) {
        match event {
            RawEvent::Overflow => {
                tracing::warn!(origin = %self.origin, "inotify queue overflowed; rescanning");
                self.schedule_rescan(now);
            }
            RawEvent::RootGone => {
                tracing::warn!(origin = %self.origin, root = %self.root.display(), "origin root was removed or moved");
                self.schedule_rescan(now);
            }
            RawEvent::Changed(rel) => self.mark(rel, now),
            // A directory's own attributes (mtime bumped by its entries
            // changing) say nothing its entries' events do not.
            RawEvent::Attrib(rel) => {
                if !self.dirs.contains(&rel) {
                    self.mark(rel, now);
                }
            }
            RawEvent::MovedFrom(rel) => {
                if self.forget_dir(&rel) {
                    self.schedule_rescan(now);
                } else {
                    self.mark(rel, now);
                }
            }
        }
    }

    fn mark(&mut self, rel: Vec<u8>, now: Instant) {
        let key = (now + self.debounce, self.seq);
        self.seq += 1;
        if let Some(old) = self.pending.insert(rel.clone(), key) {
            self.deadlines.remove(&old);
        }
        self.deadlines.insert(key, rel);
    }

    fn schedule_rescan(&mut self, now: Instant) {
        self.rescan_at = Some(now + self.debounce);
    }

    /// Forgets `rel` and every directory below it; true if `rel` was a
    /// known directory.
    fn forget_dir(&mut self, rel: &[u8]) -> bool {
        let was_dir = self.dirs.remove(rel);
        let mut prefix = rel.to_vec();
        prefix.push(b'/');
        let below: Vec<Vec<u8>> = self
            .dirs
            .range(prefix.clone()..)
            .take_while(|d| d.starts_with(&prefix))
            .cloned()
            .collect();
        for d in below {
            self.dirs.remove(&d);
        }
        was_dir
    }

    fn learn_dirs(&mut self) {
        self.dirs.clear();
        let mut dirs = BTreeSet::new();
        let result = walk(&self.origin, &self.root, &self.root, &mut |visit| {
            if let Visit::Dir(rel) = visit {
                dirs.insert(rel);
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot list the directories of a watched origin");
        }
        self.dirs = dirs;
    }

    fn flush_due(&mut self, now: Instant) -> std::result::Result<(), SendError<Change>> {
        if self.rescan_at.is_some_and(|at| at <= now) {
            self.rescan_at = None;
            self.pending.clear();
            self.deadlines.clear();
            // Learnt before the consumer starts listing, so a directory
            // moved out while it lists is still recognised as one.
            self.learn_dirs();
            self.tx.send(Change::Rescan)?;
        }
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let rel = entry.remove();
            self.pending.remove(&rel);
            self.settle(rel)?;
        }
        Ok(())
    }

    /// Reports what is at `rel` now that it is quiet.
    fn settle(&mut self, rel: Vec<u8>) -> std::result::Result<(), SendError<Change>> {
        let path = self.root.join(OsStr::from_bytes(&rel));
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => self.tx.send(Change::Upsert(rel)),
            Ok(meta) if meta.is_dir() => {
                self.dirs.insert(rel);
                let mut files = Vec::new();
                let mut dirs = Vec::new();
                let result = walk(&self.origin, &self.root, &path, &mut |visit| match visit {
                    Visit::File(entry) => files.push(entry.rel_path),
                    Visit::Dir(rel) => dirs.push(rel),
                });
                if let Err(e) = result {
                    tracing::warn!(error = %e, "cannot list a directory that appeared");
                }
                self.dirs.extend(dirs);
                for file in files {
                    // Files still settling are reported on their own.
                    if !self.pending.contains_key(&file) {
                        self.tx.send(Change::Upsert(file))?;
                    }
                }
                Ok(())
            }
            // Now a symlink, FIFO...: not listed, so gone as far as we care.
            Ok(_) => self.gone(rel),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                self.gone(rel)
            }
            Err(e) => {
                tracing::warn!(origin = %self.origin, path = %path.display(), error = %e, "cannot stat a changed path; ignoring the change");
                Ok(())
            }
        }
    }

    fn gone(&mut self, rel: Vec<u8>) -> std::result::Result<(), SendError<Change>> {
        // A deleted directory's files were reported one by one.
        if self.forget_dir(&rel) {
            return Ok(());
        }
        self.tx.send(Change::Remove(rel))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Change, LocalOrigin, Origin, WatchGuard};
    use std::collections::BTreeSet;
    use std::fs;
    use std::io::Write;
    use std::path::Path;
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
    use std::time::{Duration, Instant};

    /// Longer than any debounce used here, so "quiet" means "settled".
    const QUIET: Duration = Duration::from_millis(1500);
    const LIMIT: Duration = Duration::from_secs(20);

    struct Watched {
        dir: tempfile::TempDir,
        rx: Receiver<Change>,
        _guard: Box<dyn WatchGuard>,
    }

    impl Watched {
        fn root(&self) -> &Path {
            // Canonical, as the watcher sees it.
            self.dir.path()
        }
        /// Everything reported until nothing more comes for `QUIET`.
        fn settle(&self) -> Vec<Change> {
            let start = Instant::now();
            let mut changes = Vec::new();
            while start.elapsed() < LIMIT {
                match self.rx.recv_timeout(QUIET) {
                    Ok(change) => changes.push(change),
                    Err(RecvTimeoutError::Timeout) => return changes,
                    Err(RecvTimeoutError::Disconnected) => panic!("watcher stopped"),
                }
            }
            panic!("changes never settled: {changes:?}")
        }
    }

    /// A watched tempdir prepared by `setup` before watching starts.
    fn watched(debounce: Duration, setup: impl FnOnce(&Path)) -> Watched {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let dir_path = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(dir_path, dir.path(), "tempdir is not canonical");
        let origin = LocalOrigin::new("m", dir.path())
            .unwrap()
            .with_debounce(debounce);
        let (tx, rx) = mpsc::channel();
        let guard = origin.watch(tx).unwrap().unwrap();
        Watched {
            dir,
            rx,
            _guard: guard,
        }
    }

    fn upsert(p: &str) -> Change {
        Change::Upsert(p.as_bytes().to_vec())
    }
    fn remove(p: &str) -> Change {
        Change::Remove(p.as_bytes().to_vec())
    }
    fn set(changes: Vec<Change>) -> BTreeSet<String> {
        changes
            .into_iter()
            .map(|c| match c {
                Change::Upsert(p) => format!("+{}", String::from_utf8(p).unwrap()),
                Change::Remove(p) => format!("-{}", String::from_utf8(p).unwrap()),
                Change::Rescan => "rescan".into(),
            })
            .collect()
    }
    fn strs(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn created_file_is_one_upsert() {
        let w = watched(Duration::from_millis(300), |_| {});
        fs::write(w.root().join("a.flac"), b"data").unwrap();
        assert_eq!(w.settle(), vec![upsert("a.flac")]);
    }

    #[test]
    fn file_written_in_steps_is_one_upsert_after_it_settles() {
        // A long debounce, so a loaded machine cannot split the writes.
        let w = watched(Duration::from_secs(1), |_| {});
        let mut file = fs::File::create(w.root().join("slow.flac")).unwrap();
        for _ in 0..5 {
            file.write_all(&[7u8; 4096]).unwrap();
            file.sync_data().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(file);
        assert_eq!(w.settle(), vec![upsert("slow.flac")]);
    }

    #[test]
    fn rename_is_remove_then_upsert_and_delete_is_remove() {
        let w = watched(Duration::from_millis(300), |root| {
            fs::write(root.join("old.flac"), b"x").unwrap();
            fs::write(root.join("doomed.flac"), b"x").unwrap();
        });
        fs::rename(w.root().join("old.flac"), w.root().join("new.flac")).unwrap();
        assert_eq!(w.settle(), vec![remove("old.flac"), upsert("new.flac")]);
        fs::remove_file(w.root().join("doomed.flac")).unwrap();
        assert_eq!(w.settle(), vec![remove("doomed.flac")]);
    }

    #[test]
    fn hidden_paths_are_ignored_until_renamed_visible() {
        let w = watched(Duration::from_millis(300), |_| {});
        fs::write(w.root().join(".a.flac.part"), b"x").unwrap();
        fs::create_dir(w.root().join(".trash")).unwrap();
        fs::write(w.root().join(".trash/b.flac"), b"x").unwrap();
        assert_eq!(w.settle(), vec![]);
        fs::rename(w.root().join(".a.flac.part"), w.root().join("a.flac")).unwrap();
        assert_eq!(w.settle(), vec![upsert("a.flac")]);
    }

    #[test]
    fn new_directory_reports_every_file_inside() {
        let w = watched(Duration::from_millis(300), |_| {});
        let album = w.root().join("Artist/Album");
        fs::create_dir_all(album.join("CD2")).unwrap();
        fs::write(album.join("01.flac"), b"1").unwrap();
        fs::write(album.join("CD2/02.flac"), b"2").unwrap();
        fs::write(album.join(".hidden"), b"2").unwrap();
        assert_eq!(
            set(w.settle()),
            strs(&["+Artist/Album/01.flac", "+Artist/Album/CD2/02.flac"])
        );
    }

    #[test]
    fn directory_moved_in_reports_its_files() {
        let w = watched(Duration::from_millis(300), |_| {});
        // Outside the watched tree but on the same filesystem.
        let outside = tempfile::tempdir_in(w.root().parent().unwrap()).unwrap();
        fs::create_dir_all(outside.path().join("Album/Sub")).unwrap();
        fs::write(outside.path().join("Album/1.flac"), b"1").unwrap();
        fs::write(outside.path().join("Album/Sub/2.flac"), b"2").unwrap();
        fs::rename(outside.path().join("Album"), w.root().join("Album")).unwrap();
        assert_eq!(
            set(w.settle()),
            strs(&["+Album/1.flac", "+Album/Sub/2.flac"])
        );
    }

    #[test]
    fn directory_moved_out_or_renamed_is_a_rescan() {
        let w = watched(Duration::from_millis(300), |root| {
            fs::create_dir_all(root.join("A/Sub")).unwrap();
            fs::write(root.join("A/Sub/1.flac"), b"1").unwrap();
            fs::create_dir_all(root.join("B")).unwrap();
            fs::write(root.join("B/2.flac"), b"2").unwrap();
        });
        let outside = tempfile::tempdir_in(w.root().parent().unwrap()).unwrap();
        fs::rename(w.root().join("A"), outside.path().join("A")).unwrap();
        assert_eq!(w.settle(), vec![Change::Rescan]);
        fs::rename(w.root().join("B"), w.root().join("C")).unwrap();
        assert_eq!(w.settle(), vec![Change::Rescan]);
        // The rescan relearned the tree: C is a directory now.
        fs::rename(w.root().join("C"), outside.path().join("C")).unwrap();
        assert_eq!(w.settle(), vec![Change::Rescan]);
    }

    #[test]
    fn removed_directory_reports_its_files_removed() {
        let w = watched(Duration::from_millis(300), |root| {
            fs::create_dir_all(root.join("A/Sub")).unwrap();
            fs::write(root.join("A/1.flac"), b"1").unwrap();
            fs::write(root.join("A/Sub/2.flac"), b"2").unwrap();
            fs::write(root.join("keep.flac"), b"k").unwrap();
        });
        fs::remove_dir_all(w.root().join("A")).unwrap();
        assert_eq!(set(w.settle()), strs(&["-A/1.flac", "-A/Sub/2.flac"]));
    }

    #[test]
    fn overflow_is_a_rescan_that_supersedes_pending_changes() {
        use super::{Debouncer, RawEvent};
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.flac"), b"x").unwrap();
        let (tx, rx) = mpsc::channel();
        let mut d = Debouncer {
            origin: "m".into(),
            root: dir.path().to_path_buf(),
            debounce: Duration::from_millis(300),
            tx,
            pending: Default::default(),
            deadlines: Default::default(),
            seq: 0,
            dirs: Default::default(),
            rescan_at: None,
        };
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        d.on_event(RawEvent::Changed(b"a.flac".to_vec()), now);
        d.on_event(RawEvent::Overflow, now);
        d.flush_due(now).unwrap();
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty), "not yet due");
        d.flush_due(later).unwrap();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![Change::Rescan]);
    }

    /// The reason the watcher is not `notify`: musicfs opens every file it
    /// scans and every file read through the mount. Far more opens than the
    /// kernel queue holds (16384 events by default) must neither overflow it
    /// (a needless full rescan) nor be reported, and must not delay a real
    /// change made right after. (That the kernel queues nothing at all for
    /// them is proven in `tree::tests`, where no reader can keep up.)
    #[test]
    fn opening_and_reading_files_reports_nothing() {
        const FILES: usize = 200;
        const OPENS: usize = 20_000;
        let w = watched(Duration::from_millis(300), |root| {
            for i in 0..FILES {
                let dir = root.join(format!("d{}", i % 10));
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join(format!("{i}.flac")), b"music").unwrap();
            }
        });
        let origin = LocalOrigin::new("m", w.root()).unwrap();
        let mut buf = [0u8; 16];
        for i in 0..OPENS {
            let rel = format!("d{}/{}.flac", i % FILES % 10, i % FILES);
            // Both ways musicfs opens: O_NOATIME through the origin, and a
            // plain open as any other reader of the tree would.
            if i % 2 == 0 {
                assert_eq!(origin.read_at(rel.as_bytes(), 0, &mut buf).unwrap(), 5);
            } else {
                let mut file = fs::File::open(w.root().join(&rel)).unwrap();
                assert_eq!(std::io::Read::read(&mut file, &mut buf).unwrap(), 5);
            }
        }
        // Listing (opens every directory) is a read too.
        assert_eq!(origin.list().unwrap().len(), FILES);
        assert_eq!(w.settle(), vec![]);

        for i in 0..OPENS {
            let rel = format!("d{}/{}.flac", i % FILES % 10, i % FILES);
            origin.read_at(rel.as_bytes(), 0, &mut buf).unwrap();
        }
        fs::write(w.root().join("d3/new.flac"), b"new").unwrap();
        assert_eq!(w.settle(), vec![upsert("d3/new.flac")]);
    }

    #[test]
    fn watches_follow_directories_renamed_inside_and_drop_those_moved_out() {
        let w = watched(Duration::from_millis(300), |root| {
            fs::create_dir_all(root.join("A/Sub")).unwrap();
            fs::create_dir_all(root.join(".hidden/X")).unwrap();
        });
        fs::rename(w.root().join("A"), w.root().join("B")).unwrap();
        assert_eq!(w.settle(), vec![Change::Rescan]);
        // The renamed directory's old watch now reports its new path.
        fs::write(w.root().join("B/Sub/1.flac"), b"1").unwrap();
        assert_eq!(w.settle(), vec![upsert("B/Sub/1.flac")]);

        let outside = tempfile::tempdir_in(w.root().parent().unwrap()).unwrap();
        fs::rename(w.root().join("B"), outside.path().join("B")).unwrap();
        assert_eq!(w.settle(), vec![Change::Rescan]);
        // Out of the tree: its changes are none of ours.
        fs::write(outside.path().join("B/Sub/2.flac"), b"2").unwrap();
        assert_eq!(w.settle(), vec![]);

        // A hidden directory renamed visible is watched from then on.
        fs::rename(w.root().join(".hidden"), w.root().join("Shown")).unwrap();
        assert_eq!(w.settle(), vec![]);
        fs::write(w.root().join("Shown/X/3.flac"), b"3").unwrap();
        assert_eq!(w.settle(), vec![upsert("Shown/X/3.flac")]);
    }

    #[test]
    fn dropping_the_guard_stops_the_watcher() {
        let w = watched(Duration::from_millis(100), |_| {});
        let Watched { dir, rx, _guard } = w;
        drop(_guard);
        fs::write(dir.path().join("late.flac"), b"x").unwrap();
        // The debounce thread held the only sender: it is gone.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
