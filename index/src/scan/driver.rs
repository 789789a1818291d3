//! The scan driver: brings the catalog in line with an origin's files.
//!
//! A full scan compares the origin's listing with the stamps (size, mtime)
//! the catalog holds and reads only new and changed files, on a few worker
//! threads; the calling thread alone writes to the catalog, in batches of
//! one transaction each. One bad file is one scan error, never the end of
//! the scan; only a catalog failure ends it early. Building the virtual
//! tree afterwards (`Catalog::sync_tree`) is the caller's job.
use super::probe;
use crate::{Catalog, Error, OriginId, Result, ScannedFile, Stamp};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a scan reader must be: the driver moves it to a worker thread.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Opens a file of the origin by its relative path; the stamp is the
/// listing's (a remote origin's ranged reader needs the size up front).
pub type OpenFn<'a> = dyn Fn(&[u8], &Stamp) -> std::io::Result<Box<dyn ReadSeek>> + Sync + 'a;

/// Extensions of the files an album folder holds beside its music (cover
/// images, playlists, cue sheets, rip logs and checksums, lyrics): with
/// [`ScanOptions::skip_sidecars`] they are neither read nor reported as scan
/// errors. Every other file, whatever its extension (or none), is probed by
/// content, so a stray document (`notes.txt`, a PDF) is a scan error
/// ("not an audio file") that `musicfs status` shows.
pub const SIDECAR_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff", "heic", "nfo", "log", "cue", "m3u",
    "m3u8", "pls", "xspf", "sfv", "md5", "sha1", "sha256", "ffp", "st5", "accurip", "lrc",
];

/// How a scan runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Worker threads reading files. Default 2. 0 is taken as 1.
    pub threads: usize,
    /// Results written to the catalog per transaction. Default 500. 0 is taken as 1.
    pub batch_size: usize,
    /// Skip files whose extension is in [`SIDECAR_EXTENSIONS`]. Default true.
    pub skip_sidecars: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: 2,
            batch_size: 500,
            skip_sidecars: true,
        }
    }
}

/// Progress of a running scan, reported after each file read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanProgress {
    /// Files to read (new or changed).
    pub total: u64,
    /// Files read so far.
    pub done: u64,
    /// Of those, catalogued.
    pub changed: u64,
    /// Of those, scan errors.
    pub errors: u64,
    /// The file just read (lossy UTF-8 of its relative path).
    pub current: String,
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files listed (or, for [`scan_paths`], handed in).
    pub seen: u64,
    /// Files read and catalogued (new or changed).
    pub changed: u64,
    /// Files not read because their stamp is unchanged.
    pub unchanged: u64,
    /// Files read that are now scan errors.
    pub errors: u64,
    /// Paths dropped from the catalog because they are gone.
    pub removed: u64,
    /// Sidecar files skipped by extension.
    pub skipped: u64,
    /// The scan stopped early on request; what was read is saved.
    pub cancelled: bool,
    pub elapsed: Duration,
}

/// Full incremental scan of one origin. `entries` is the origin's whole
/// listing; files whose stamp the catalog already holds are not read, and
/// catalogued paths missing from `entries` are removed. `cancel` stops the
/// scan between files (what was read is kept, `cancelled` is set); files
/// that fail after it is set are not recorded as scan errors, so a caller
/// that sets it when its origin goes down loses nothing.
pub fn scan_origin(
    catalog: &Catalog,
    origin: OriginId,
    entries: Vec<(Vec<u8>, Stamp)>,
    open: &OpenFn<'_>,
    opts: &ScanOptions,
    progress: &(dyn Fn(&ScanProgress) + Sync),
    cancel: &AtomicBool,
) -> Result<ScanReport> {
    let started = Instant::now();
    let known = catalog.stamps(origin)?;
    let seen = entries.len() as u64;
    let (candidates, skipped) = drop_sidecars(entries, opts);
    let listed: HashSet<&[u8]> = candidates.iter().map(|(p, _)| p.as_slice()).collect();
    let removed: Vec<Vec<u8>> = known
        .keys()
        .filter(|p| !listed.contains(p.as_slice()))
        .cloned()
        .collect();
    drop(listed);
    let jobs: Vec<(Vec<u8>, Stamp)> = candidates
        .into_iter()
        .filter(|(p, stamp)| known.get(p) != Some(stamp))
        .collect();
    let unchanged = seen - skipped - jobs.len() as u64;
    let mut report = run(catalog, origin, jobs, removed, open, opts, progress, cancel)?;
    report.seen = seen;
    report.unchanged = unchanged;
    report.skipped = skipped;
    report.elapsed = started.elapsed();
    tracing::info!(
        origin,
        seen,
        changed = report.changed,
        unchanged,
        errors = report.errors,
        removed = report.removed,
        cancelled = report.cancelled,
        "scan finished in {:?}",
        report.elapsed
    );
    Ok(report)
}

/// Rescans the files a watcher reported: rereads every path in `upserts`
/// (without comparing stamps: the watcher saw them change) and removes
/// every path in `removed`. `cancel` as for [`scan_origin`].
pub fn scan_paths(
    catalog: &Catalog,
    origin: OriginId,
    upserts: Vec<(Vec<u8>, Stamp)>,
    removed: Vec<Vec<u8>>,
    open: &OpenFn<'_>,
    opts: &ScanOptions,
    cancel: &AtomicBool,
) -> Result<ScanReport> {
    let started = Instant::now();
    let seen = upserts.len() as u64;
    let (jobs, skipped) = drop_sidecars(upserts, opts);
    let mut report = run(catalog, origin, jobs, removed, open, opts, &|_| {}, cancel)?;
    report.seen = seen;
    report.skipped = skipped;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn drop_sidecars(
    entries: Vec<(Vec<u8>, Stamp)>,
    opts: &ScanOptions,
) -> (Vec<(Vec<u8>, Stamp)>, u64) {
    if !opts.skip_sidecars {
        return (entries, 0);
    }
    let before = entries.len() as u64;
    let kept: Vec<_> = entries
        .into_iter()
        .filter(|(p, _)| !is_sidecar(p))
        .collect();
    let skipped = before - kept.len() as u64;
    (kept, skipped)
}

fn is_sidecar(path: &[u8]) -> bool {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let ext = String::from_utf8_lossy(&name[dot + 1..]).to_ascii_lowercase();
    SIDECAR_EXTENSIONS.contains(&ext.as_str())
}

/// One file's result, sent from a worker to the writing thread.
struct Outcome {
    path: Vec<u8>,
    stamp: Stamp,
    result: std::result::Result<ScannedFile, String>,
}

/// Reads `jobs` on worker threads and writes results (and `removed`) to the
/// catalog from this thread.
#[allow(clippy::too_many_arguments)]
fn run(
    catalog: &Catalog,
    origin: OriginId,
    jobs: Vec<(Vec<u8>, Stamp)>,
    removed: Vec<Vec<u8>>,
    open: &OpenFn<'_>,
    opts: &ScanOptions,
    progress: &(dyn Fn(&ScanProgress) + Sync),
    cancel: &AtomicBool,
) -> Result<ScanReport> {
    let threads = opts.threads.max(1).min(jobs.len().max(1));
    let batch = opts.batch_size.max(1);
    let mut report = ScanReport::default();
    let mut state = ScanProgress {
        total: jobs.len() as u64,
        ..ScanProgress::default()
    };
    let next = AtomicUsize::new(0);
    let jobs = &jobs;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Outcome>(threads * 8);
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let Some((path, stamp)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                // `probe` already contains lofty's panics; this also
                // covers the caller's `open`, so one file can never take
                // the scan (and the daemon) down.
                let result = catch_unwind(AssertUnwindSafe(|| read_one(path, stamp, open)))
                    .unwrap_or_else(|_| Err("scanner panicked".into()));
                let outcome = Outcome {
                    path: path.clone(),
                    stamp: *stamp,
                    result,
                };
                // The writer hung up (catalog failure): stop quietly.
                if tx.send(outcome).is_err() {
                    return;
                }
            });
        }
        drop(tx);

        let mut upserts = Vec::with_capacity(batch);
        let mut errors = Vec::new();
        for outcome in rx {
            state.done += 1;
            state.current = String::from_utf8_lossy(&outcome.path).into_owned();
            match outcome.result {
                Ok(file) => {
                    state.changed += 1;
                    upserts.push((outcome.path, outcome.stamp, file));
                }
                // Once the scan is cancelled, failures may be the cancel's
                // doing (an origin that went down mid-scan): recording them
                // would drop good files from the catalog.
                Err(message) if cancel.load(Ordering::Relaxed) => {
                    tracing::debug!(file = %state.current, "not recorded (scan cancelled): {message}");
                }
                Err(message) => {
                    tracing::debug!(file = %state.current, "scan error: {message}");
                    state.errors += 1;
                    errors.push((outcome.path, outcome.stamp, message));
                }
            }
            if upserts.len() + errors.len() >= batch {
                // Returning drops `rx`, which stops the workers.
                catalog.apply_scan(origin, &upserts, &errors, &[])?;
                upserts.clear();
                errors.clear();
            }
            progress(&state);
        }
        if !upserts.is_empty() || !errors.is_empty() {
            catalog.apply_scan(origin, &upserts, &errors, &[])?;
        }
        Ok(())
    })?;
    for chunk in removed.chunks(batch) {
        catalog.apply_scan(origin, &[], &[], chunk)?;
    }
    report.changed = state.changed;
    report.errors = state.errors;
    report.removed = removed.len() as u64;
    report.cancelled = cancel.load(Ordering::Relaxed) && state.done < state.total;
    Ok(report)
}

/// Opens and probes one file; every failure is a message for the scan errors.
fn read_one(
    path: &[u8],
    stamp: &Stamp,
    open: &OpenFn<'_>,
) -> std::result::Result<ScannedFile, String> {
    let mut reader = open(path, stamp).map_err(|e| format!("cannot open: {e}"))?;
    // The size is taken from the open file, not the listing, so the body
    // walkers agree with the bytes actually there.
    let size = reader
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot read: {e}"))?;
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    match probe(&mut reader, size, &String::from_utf8_lossy(name)) {
        Ok(file) => Ok(file),
        Err(Error::Scan { message, .. }) => Err(message),
        Err(other) => Err(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
