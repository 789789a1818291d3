//! Tag overlay service: SetTags, ResetTags, GetTrack. Edits go to the
//! catalog (never the origin); edited files get a synthesized header plan.
//!
//! Every write goes through [`apply_edits`] (SetTags, the beets import) or
//! [`reset`] (ResetTags): the plan of each file is computed *before*
//! anything is written, so a file whose header cannot be synthesized
//! refuses the whole request instead of leaving an overlay with no splice.
//! Then the tree is synced and the kernel told, so a renamed track moves
//! and a resized one shows its new size at once.
use crate::scanner::ScanTarget;
use crate::service::DaemonState;
use musicfs_fusefs::Library;
use musicfs_index::synth::{self, Original, Plan, ReadAt, TagEdit};
use musicfs_index::{Catalog, FileId, FileRecord, NodeKind, Stamp, TreeChanges};
use musicfs_origins::{LocalOrigin, Origin};
use musicfs_proto::v1 as pb;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tonic::Status;

/// A query may touch at most this many tracks unless the request says.
const DEFAULT_MAX_TRACKS: usize = 10_000;
/// Longest key accepted (Vorbis comment field names are short; ID3 frames
/// map from a few dozen names).
const MAX_KEY_LEN: usize = 64;
/// Longest single value: a tag is not a place for a file's worth of bytes,
/// and every value ends up in memory in a plan.
const MAX_VALUE_LEN: usize = 1 << 20;
/// Bytes fetched per origin read while a synthesizer parses a header: it
/// reads in small pieces (block headers, atoms), mostly close together.
const READ_WINDOW: usize = 64 * 1024;

/// Overlay writes one at a time: two requests editing the same file must
/// not interleave their overlay write and plan.
static EDITS: Mutex<()> = Mutex::new(());

pub async fn set_tags(
    state: &Arc<DaemonState>,
    req: pb::SetTagsRequest,
) -> Result<pb::SetTagsReply, Status> {
    let edits = edits_of(&req.edits)?;
    if edits.is_empty() {
        return Err(Status::invalid_argument("no tag edits given"));
    }
    let files = select(state, &req.paths, &req.query, req.max_tracks).await?;
    let changes = files.iter().map(|&id| (id, edits.clone())).collect();
    let changed = apply_edits(state, changes).await?;
    reply_for(state, changed).await
}

pub async fn reset_tags(
    state: &Arc<DaemonState>,
    req: pb::ResetTagsRequest,
) -> Result<pb::SetTagsReply, Status> {
    let keys = req
        .keys
        .iter()
        .map(|k| check_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let files = select(state, &req.paths, &req.query, req.max_tracks).await?;
    let changed = reset(state, files, keys).await?;
    reply_for(state, changed).await
}

pub async fn get_track(
    state: &Arc<DaemonState>,
    req: pb::GetTrackRequest,
) -> Result<pb::Track, Status> {
    let state = state.clone();
    blocking(move || {
        let catalog = &state.catalog;
        let (id, ino) = resolve_track(catalog, &req.path)?;
        let record = catalog
            .file(id)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no such track: {}", req.path)))?;
        let node = catalog.node(ino).map_err(internal)?;
        let origin = catalog
            .origins()
            .map_err(internal)?
            .into_iter()
            .find(|o| o.id == record.origin_id)
            .map(|o| o.name)
            .unwrap_or_default();
        let duration_ms = catalog
            .props(id)
            .map_err(internal)?
            .map_or(0, |(p, _)| p.duration_ms);
        let tag = |(key, value): (String, String)| pb::Tag { key, value };
        Ok(pb::Track {
            file_id: id,
            path: virtual_path(catalog, ino)?,
            origin,
            origin_path: String::from_utf8_lossy(&record.rel_path).into_owned(),
            format: record.format.clone(),
            origin_size: record.stamp.size,
            served_size: node.map_or(record.stamp.size, |n| n.size),
            duration_ms,
            tags: catalog
                .effective_tags(id)
                .map_err(internal)?
                .into_iter()
                .map(tag)
                .collect(),
            scanned_tags: catalog
                .tags(id)
                .map_err(internal)?
                .into_iter()
                .map(tag)
                .collect(),
            overlay: catalog
                .overlay(id)
                .map_err(internal)?
                .into_iter()
                .map(|e| pb::TagEdit {
                    remove: e.values.is_empty(),
                    key: e.key,
                    values: e.values,
                })
                .collect(),
            synthesized: catalog.splice(id).map_err(internal)?.is_some(),
        })
    })
    .await
}

/// The one way overlay edits are written: for each `(file, edits)`, records
/// the edits, computes the file's synthesized layout (reading the
/// original's header through its origin), syncs the tree and tells the
/// kernel what changed. Returns the files whose served tags changed.
/// Used by SetTags, ImportBeets and (with no edits) after rescans.
pub async fn apply_edits(
    state: &Arc<DaemonState>,
    changes: Vec<(FileId, Vec<TagEdit>)>,
) -> Result<Vec<FileId>, Status> {
    let state = state.clone();
    blocking(move || {
        let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
        let catalog = &state.catalog;
        let targets = state.scanner.targets();
        // Plans first: nothing is written unless every file can be served.
        let mut planned = Vec::with_capacity(changes.len());
        for (id, edits) in changes {
            let record = record_of(catalog, id)?;
            let merged = merge(catalog.overlay(id).map_err(internal)?, &edits);
            if merged.is_empty() {
                // Nothing edited, nothing to serve differently.
                continue;
            }
            refuse_unsupported(catalog, &record)?;
            let plan = plan_for(catalog, targets, &record, &merged).map_err(|e| {
                Status::invalid_argument(format!("{}: {e}", describe(catalog, &record)))
            })?;
            planned.push((record, edits, merged, plan));
        }
        let mut changed = Vec::with_capacity(planned.len());
        for (record, edits, merged, mut plan) in planned {
            catalog.set_overlay(record.id, &edits).map_err(internal)?;
            // The catalog is the authority on how edits combine; replan in
            // the rare case it combined them differently from `merge`.
            let stored = catalog.overlay(record.id).map_err(internal)?;
            if !same_edits(&stored, &merged) {
                plan = plan_for(catalog, targets, &record, &stored).map_err(internal)?;
            }
            catalog
                .set_splice(record.id, record.stamp, &plan)
                .map_err(internal)?;
            changed.push(record.id);
        }
        announce(&state, &changed)?;
        Ok(changed)
    })
    .await
}

/// Drops overlay edits (`keys`, or all when empty) of `files`, replans
/// what keeps edits, syncs and announces. Returns the files that had
/// something dropped.
pub async fn reset(
    state: &Arc<DaemonState>,
    files: Vec<FileId>,
    keys: Vec<String>,
) -> Result<Vec<FileId>, Status> {
    let state = state.clone();
    blocking(move || {
        let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
        let catalog = &state.catalog;
        let mut changed = Vec::new();
        for id in files {
            if catalog.reset_overlay(id, &keys).map_err(internal)? {
                changed.push(id);
            }
        }
        // Files that keep some edits need a plan for what is left; the
        // catalog lists them as needing one.
        refresh_splices_blocking(catalog, state.scanner.targets());
        announce(&state, &changed)?;
        Ok(changed)
    })
    .await
}

/// Computes plans for the files whose overlay has no valid splice (new
/// edits, or the original changed in a rescan). Called from the scanner
/// before every tree sync, so the tree shows the right sizes; the daemon
/// start syncs the tree after its first scans and so runs it too.
pub async fn refresh_splices(state: &Arc<DaemonState>) -> Result<usize, Status> {
    let state = state.clone();
    blocking(move || {
        let n = refresh_splices_blocking(&state.catalog, state.scanner.targets());
        if n > 0 {
            state
                .scanner
                .sync_tree()
                .map_err(|e| internal(e.to_string()))?;
        }
        Ok(n)
    })
    .await
}

/// [`refresh_splices`] without the tree sync, for callers that sync
/// anyway. Failures are logged (the file then keeps being served as it
/// is, under its edited path) and counted out. Returns the plans made.
pub fn refresh_splices_blocking(catalog: &Catalog, targets: &[Arc<ScanTarget>]) -> usize {
    let ids = match catalog.files_needing_splice() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!("cannot list edited files needing a plan: {e}");
            return 0;
        }
    };
    let mut made = 0;
    for id in ids {
        let result = (|| -> Result<(), String> {
            let record = catalog
                .file(id)
                .map_err(|e| e.to_string())?
                .ok_or("file is gone")?;
            let edits = catalog.overlay(id).map_err(|e| e.to_string())?;
            if edits.is_empty() {
                return Ok(());
            }
            let plan = plan_for(catalog, targets, &record, &edits)?;
            catalog
                .set_splice(id, record.stamp, &plan)
                .map_err(|e| e.to_string())
        })();
        match result {
            Ok(()) => made += 1,
            Err(e) => tracing::warn!(file_id = id, "cannot synthesize the edited header: {e}"),
        }
    }
    made
}

/// Syncs the tree (moves renamed tracks, shows new sizes), drops the
/// kernel's cached pages of `files` (an edit that keeps the size still
/// changes the bytes) and wakes the search index.
fn announce(state: &DaemonState, files: &[FileId]) -> Result<(), Status> {
    let synced = state
        .scanner
        .sync_tree()
        .map_err(|e| internal(e.to_string()))?;
    let mut extra = TreeChanges::default();
    for &id in files {
        for ino in state.catalog.inos_of_file(id).map_err(internal)? {
            if !synced.modified.contains(&ino) {
                extra.modified.push(ino);
            }
        }
    }
    if !extra.modified.is_empty() {
        state.scanner.invalidate(&extra);
    }
    // Edited tags are searchable as soon as the index thread has run,
    // not at its next once-a-second check.
    state.library.search.catalog_changed();
    Ok(())
}

/// The served layout of `record` with `edits` (the whole overlay).
fn plan_for(
    catalog: &Catalog,
    targets: &[Arc<ScanTarget>],
    record: &FileRecord,
    edits: &[TagEdit],
) -> Result<Plan, String> {
    let origin = origin_of(catalog, targets, record)?;
    let mut reader = OriginReader::new(origin, record.rel_path.clone(), record.stamp);
    let original = Original {
        format: &record.format,
        size: record.stamp.size,
        audio_offset: record.audio_offset,
        audio_length: record.audio_length,
    };
    let plan = synth::plan(original, &mut reader, edits).map_err(|e| e.to_string())?;
    if let Some(e) = reader.changed {
        return Err(e);
    }
    Ok(plan)
}

/// The origin holding `record`: a served one, or a catalogued local one
/// that is no longer served (its files stay readable, and editable).
fn origin_of(
    catalog: &Catalog,
    targets: &[Arc<ScanTarget>],
    record: &FileRecord,
) -> Result<Arc<dyn Origin>, String> {
    if let Some(t) = targets.iter().find(|t| t.id == record.origin_id) {
        return Ok(t.origin.clone() as Arc<dyn Origin>);
    }
    let row = catalog
        .origins()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|o| o.id == record.origin_id)
        .ok_or_else(|| format!("origin {} is not catalogued", record.origin_id))?;
    if row.kind != "local" {
        return Err(format!("origin {} is not served", row.name));
    }
    let origin = LocalOrigin::new(row.name.clone(), &row.location).map_err(|e| e.to_string())?;
    Ok(Arc::new(origin))
}

/// Reads an original through its origin for a synthesizer, a window at a
/// time. Remembers (and fails the plan) when the file is not the size the
/// catalog knows: a plan of other bytes would serve garbage.
struct OriginReader {
    origin: Arc<dyn Origin>,
    rel: Vec<u8>,
    size: u64,
    window: Vec<u8>,
    window_at: u64,
    changed: Option<String>,
}

impl OriginReader {
    fn new(origin: Arc<dyn Origin>, rel: Vec<u8>, stamp: Stamp) -> OriginReader {
        OriginReader {
            origin,
            rel,
            size: stamp.size,
            window: Vec::new(),
            window_at: 0,
            changed: None,
        }
    }

    fn fill(&mut self, offset: u64, want: usize) -> std::io::Result<()> {
        let len = want.max(READ_WINDOW).min((self.size - offset) as usize);
        self.window.resize(len, 0);
        self.window_at = offset;
        let mut done = 0;
        while done < len {
            let n = self
                .origin
                .read_at(&self.rel, offset + done as u64, &mut self.window[done..])
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        if done < len {
            self.changed = Some(format!(
                "the original is shorter than the catalog's {} bytes; rescan it",
                self.size
            ));
            self.window.truncate(done);
        }
        Ok(())
    }
}

impl ReadAt for OriginReader {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let end = offset + buf.len() as u64;
        let held = self.window_at..self.window_at + self.window.len() as u64;
        if !(held.contains(&offset) && end <= held.end) {
            self.fill(offset, buf.len())?;
        }
        let from = (offset - self.window_at) as usize;
        let n = buf.len().min(self.window.len().saturating_sub(from));
        buf[..n].copy_from_slice(&self.window[from..from + n]);
        Ok(n)
    }
}

/// The overlay after `edits`: each key given replaces its earlier edit.
fn merge(mut overlay: Vec<TagEdit>, edits: &[TagEdit]) -> Vec<TagEdit> {
    for e in edits {
        match overlay.iter_mut().find(|o| o.key == e.key) {
            Some(o) => o.values = e.values.clone(),
            None => overlay.push(e.clone()),
        }
    }
    overlay
}

fn same_edits(a: &[TagEdit], b: &[TagEdit]) -> bool {
    let map = |v: &[TagEdit]| -> BTreeMap<String, Vec<String>> {
        v.iter()
            .map(|e| (e.key.clone(), e.values.clone()))
            .collect()
    };
    map(a) == map(b)
}

/// Request edits in canonical form. A key given twice collects its values
/// (multi-valued); `remove` (or no values) removes the key.
fn edits_of(edits: &[pb::TagEdit]) -> Result<Vec<TagEdit>, Status> {
    let mut out: Vec<TagEdit> = Vec::new();
    for e in edits {
        let key = check_key(&e.key)?;
        let values = if e.remove {
            Vec::new()
        } else {
            e.values.clone()
        };
        for v in &values {
            if v.contains('\0') {
                return Err(Status::invalid_argument(format!(
                    "tag {key}: values cannot hold NUL"
                )));
            }
            if v.len() > MAX_VALUE_LEN {
                return Err(Status::invalid_argument(format!(
                    "tag {key}: a value of {} bytes is over the {MAX_VALUE_LEN}-byte limit",
                    v.len()
                )));
            }
        }
        match out.iter_mut().find(|o| o.key == key) {
            Some(o) if !values.is_empty() && !o.values.is_empty() => o.values.extend(values),
            Some(o) => o.values = values,
            None => out.push(TagEdit { key, values }),
        }
    }
    Ok(out)
}

/// A key in the catalog's canonical (lower-case) form, or why not.
fn check_key(key: &str) -> Result<String, Status> {
    let key = key.trim().to_lowercase();
    let bad = |why: &str| Err(Status::invalid_argument(format!("tag key {key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("too long");
    }
    if key.contains('=') {
        return bad("cannot hold '='");
    }
    if key.chars().any(char::is_control) {
        return bad("cannot hold control characters");
    }
    Ok(key)
}

/// The files a request names: its paths, then what its query matches, in
/// order, each once.
async fn select(
    state: &Arc<DaemonState>,
    paths: &[String],
    query: &str,
    max_tracks: u32,
) -> Result<Vec<FileId>, Status> {
    let max = if max_tracks == 0 {
        DEFAULT_MAX_TRACKS
    } else {
        max_tracks as usize
    };
    let (state, paths, query) = (state.clone(), paths.to_vec(), query.trim().to_string());
    blocking(move || {
        if paths.is_empty() && query.is_empty() {
            return Err(Status::invalid_argument(
                "no tracks given: paths or a query",
            ));
        }
        let mut files = Vec::new();
        for path in &paths {
            files.push(resolve_track(&state.catalog, path)?.0);
        }
        if !query.is_empty() {
            let found = state
                .library
                .search(&query, max + 1)
                .map_err(|e| Status::invalid_argument(format!("query {query:?}: {e}")))?;
            if found.len() > max {
                return Err(Status::failed_precondition(format!(
                    "query {query:?} matches more than {max} tracks; narrow it or raise the limit"
                )));
            }
            files.extend(found);
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|id| seen.insert(*id));
        Ok(files)
    })
    .await
}

/// The file and inode at a virtual path (relative to the mount root).
fn resolve_track(catalog: &Catalog, path: &str) -> Result<(FileId, u64), Status> {
    let rel = path.trim_start_matches('/');
    let node = catalog
        .resolve(rel.as_bytes())
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("no such track: {path}")))?;
    match (node.kind, node.file_id) {
        (NodeKind::File, Some(id)) => Ok((id, node.ino)),
        (NodeKind::Dir, _) => Err(Status::invalid_argument(format!(
            "{path} is a directory, not a track"
        ))),
        _ => Err(Status::not_found(format!("no such track: {path}"))),
    }
}

fn record_of(catalog: &Catalog, id: FileId) -> Result<FileRecord, Status> {
    catalog
        .file(id)
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("catalog file {id} is gone")))
}

fn refuse_unsupported(catalog: &Catalog, record: &FileRecord) -> Result<(), Status> {
    if synth::supports(&record.format) {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "{}: tags of {} files cannot be edited (no header synthesis for the format)",
        describe(catalog, record),
        record.format
    )))
}

/// A file for messages: its virtual path, else its origin path.
fn describe(catalog: &Catalog, record: &FileRecord) -> String {
    catalog
        .inos_of_file(record.id)
        .ok()
        .and_then(|inos| inos.first().copied())
        .and_then(|ino| catalog.virtual_path(ino).ok().flatten())
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_else(|| String::from_utf8_lossy(&record.rel_path).into_owned())
}

fn virtual_path(catalog: &Catalog, ino: u64) -> Result<String, Status> {
    Ok(catalog
        .virtual_path(ino)
        .map_err(internal)?
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default())
}

/// The reply: the changed tracks' paths after the edit.
async fn reply_for(
    state: &Arc<DaemonState>,
    changed: Vec<FileId>,
) -> Result<pb::SetTagsReply, Status> {
    let state = state.clone();
    blocking(move || {
        let mut paths = Vec::with_capacity(changed.len());
        for &id in &changed {
            if let Some(&ino) = state.catalog.inos_of_file(id).map_err(internal)?.first() {
                paths.push(virtual_path(&state.catalog, ino)?);
            }
        }
        Ok(pb::SetTagsReply {
            tracks_changed: changed.len() as u64,
            paths,
        })
    })
    .await
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Runs catalog and origin work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb_edit(key: &str, values: &[&str], remove: bool) -> pb::TagEdit {
        pb::TagEdit {
            key: key.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            remove,
        }
    }

    #[test]
    fn repeated_keys_collect_values_and_removal_empties() {
        let edits = edits_of(&[
            pb_edit("Artist", &["A"], false),
            pb_edit("artist", &["B"], false),
            pb_edit("genre", &[], true),
        ])
        .unwrap();
        assert_eq!(
            edits,
            vec![
                TagEdit {
                    key: "artist".into(),
                    values: vec!["A".into(), "B".into()]
                },
                TagEdit {
                    key: "genre".into(),
                    values: vec![]
                },
            ]
        );
    }

    #[test]
    fn bad_keys_and_values_are_refused() {
        for key in ["", "a=b", "ti\ntle"] {
            let e = edits_of(&[pb_edit(key, &["x"], false)]).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{key:?}");
        }
        let e = edits_of(&[pb_edit("title", &["a\0b"], false)]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn merge_replaces_keys_given_and_keeps_others() {
        let old = vec![
            TagEdit {
                key: "title".into(),
                values: vec!["Old".into()],
            },
            TagEdit {
                key: "genre".into(),
                values: vec!["Jazz".into()],
            },
        ];
        let merged = merge(
            old,
            &[TagEdit {
                key: "title".into(),
                values: vec!["New".into()],
            }],
        );
        assert_eq!(merged[0].values, vec!["New".to_string()]);
        assert_eq!(merged[1].values, vec!["Jazz".to_string()]);
    }

    /// An origin over a byte vector that counts its reads.
    struct VecOrigin(Vec<u8>, std::sync::atomic::AtomicUsize);
    impl Origin for VecOrigin {
        fn name(&self) -> &str {
            "vec"
        }
        fn kind(&self) -> musicfs_origins::OriginKind {
            musicfs_origins::OriginKind::Local
        }
        fn location(&self) -> String {
            String::new()
        }
        fn list(&self) -> musicfs_origins::Result<Vec<musicfs_origins::Entry>> {
            Ok(Vec::new())
        }
        fn stat(&self, _rel: &[u8]) -> musicfs_origins::Result<musicfs_origins::Entry> {
            unimplemented!("not used by the reader")
        }
        fn read_at(
            &self,
            _rel: &[u8],
            offset: u64,
            buf: &mut [u8],
        ) -> musicfs_origins::Result<usize> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let from = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - from);
            buf[..n].copy_from_slice(&self.0[from..from + n]);
            Ok(n)
        }
    }

    #[test]
    fn origin_reader_serves_small_reads_from_one_window() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let origin = Arc::new(VecOrigin(data.clone(), Default::default()));
        let stamp = Stamp {
            size: data.len() as u64,
            mtime_ns: 0,
        };
        let mut r = OriginReader::new(origin.clone(), b"f".to_vec(), stamp);
        let mut buf = [0u8; 4];
        for off in (0..4000u64).step_by(4) {
            assert_eq!(r.read_at(off, &mut buf).unwrap(), 4);
            assert_eq!(&buf, &data[off as usize..off as usize + 4]);
        }
        assert_eq!(origin.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        let mut tail = [0u8; 10];
        assert_eq!(r.read_at(data.len() as u64 - 3, &mut tail).unwrap(), 3);
        assert_eq!(&tail[..3], &data[data.len() - 3..]);
        assert_eq!(r.read_at(data.len() as u64, &mut tail).unwrap(), 0);
        assert!(r.changed.is_none());
    }
}
