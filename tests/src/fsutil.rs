//! Walking trees and taking snapshots to compare before and after.
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One entry found by [`walk`].
#[derive(Debug, Clone)]
pub struct Found {
    /// Relative to the walked root, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    pub meta: std::fs::Metadata,
}

/// The cover files the daemon shows in album folders (not tracks).
const VIRTUAL_FILES: &[&str] = &["cover.jpg", ".cover-medium.jpg", ".cover-thumb.jpg"];

/// Every entry below `root` (not following symlinks), depth first, sorted
/// by name. Top-level entries whose names start with `.` (the daemon's
/// virtual directories such as `/.search`) and the cover files of album
/// folders are left out when `skip_virtual` is set.
pub fn walk(root: &Path, skip_virtual: bool) -> Vec<Found> {
    let mut out = Vec::new();
    walk_into(root, "", skip_virtual, &mut out);
    out
}

fn walk_into(dir: &Path, prefix: &str, skip_virtual: bool, out: &mut Vec<Found>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("read_dir entry in {}: {e}", dir.display())))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if skip_virtual
            && ((prefix.is_empty() && name.starts_with('.')) || VIRTUAL_FILES.contains(&&*name))
        {
            continue;
        }
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|err| panic!("lstat {}: {err}", path.display()));
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let is_dir = meta.is_dir();
        out.push(Found {
            rel: rel.clone(),
            path: path.clone(),
            meta,
        });
        if is_dir {
            walk_into(&path, &rel, skip_virtual, out);
        }
    }
}

/// Regular files below `root` (virtual top-level dirs skipped), by relative path.
pub fn files(root: &Path) -> BTreeMap<String, Found> {
    walk(root, true)
        .into_iter()
        .filter(|f| f.meta.is_file())
        .map(|f| (f.rel.clone(), f))
        .collect()
}

/// What must not change in an origin: every entry's type, size, mode,
/// mtime, ctime and (for files) content.
#[derive(Debug, PartialEq, Eq)]
pub struct EntryState {
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub content: Option<Vec<u8>>,
}

pub fn snapshot(root: &Path) -> BTreeMap<String, EntryState> {
    walk(root, false)
        .into_iter()
        .map(|f| {
            let m = &f.meta;
            let kind = if m.is_dir() {
                "dir"
            } else if m.is_file() {
                "file"
            } else if m.file_type().is_symlink() {
                "symlink"
            } else {
                "other"
            };
            let content = m.is_file().then(|| {
                std::fs::read(&f.path).unwrap_or_else(|e| panic!("read {}: {e}", f.path.display()))
            });
            let state = EntryState {
                kind,
                size: m.len(),
                mode: m.mode(),
                mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
                content,
            };
            (f.rel, state)
        })
        .collect()
}

/// Panics naming the first difference between two snapshots.
pub fn assert_same_snapshot(
    before: &BTreeMap<String, EntryState>,
    after: &BTreeMap<String, EntryState>,
) {
    for (rel, b) in before {
        match after.get(rel) {
            None => panic!("origin changed: {rel} disappeared"),
            Some(a) if a != b => panic!(
                "origin changed: {rel}: before {:?} after {:?} (kind, size, mode, mtime, ctime; content equal: {})",
                (b.kind, b.size, b.mode, b.mtime_ns, b.ctime_ns),
                (a.kind, a.size, a.mode, a.mtime_ns, a.ctime_ns),
                a.content == b.content
            ),
            Some(_) => {}
        }
    }
    for rel in after.keys() {
        assert!(before.contains_key(rel), "origin changed: {rel} appeared");
    }
}
