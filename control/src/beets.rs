//! beets import (ImportBeets) and catalog export (ExportCatalog).
//!
//! Import reads the beets library on the daemon's machine, matches items
//! to catalogued files by path and hands the differing tags to
//! [`crate::tags::apply_edits`], the one writer of overlay edits (which
//! also lays out the synthesized headers and syncs the tree). Export
//! streams every file as served, as JSON or CSV, in chunks of at most
//! [`CHUNK`] bytes.
use crate::service::DaemonState;
use musicfs_index::beets::{self, BeetsItem, CatalogEntry, Matcher};
use musicfs_index::synth::{self, TagEdit};
use musicfs_index::FileId;
use musicfs_proto::v1 as pb;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Items between two progress messages.
const PROGRESS_EVERY: u64 = 100;
/// Unmatched or skipped items reported as examples.
const SAMPLES: usize = 5;
/// Largest export chunk (well under gRPC's 4 MiB message limit).
const CHUNK: usize = 64 * 1024;

type ImportTx = mpsc::Sender<Result<pb::ImportProgress, Status>>;

pub async fn import(
    state: &Arc<DaemonState>,
    req: pb::ImportBeetsRequest,
) -> Result<ReceiverStream<Result<pb::ImportProgress, Status>>, Status> {
    if req.library_db.is_empty() {
        return Err(Status::invalid_argument(
            "no beets library given: pass the path of beets' library.db",
        ));
    }
    let db = PathBuf::from(&req.library_db);
    // Read before answering, so a wrong file is the call's own error.
    let items = tokio::task::spawn_blocking(move || beets::read_library(&db))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let (tx, rx) = mpsc::channel(16);
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(status) = run_import(&state, items, req.dry_run, &tx).await {
            let _ = tx.send(Err(status)).await;
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Matches every item (off the async threads; progress as it goes), then
/// applies the edits unless `dry_run`. Tracks whose edits cannot be
/// served (a format without header synthesis, a header that cannot be
/// laid out) are skipped and reported; the rest still import.
async fn run_import(
    state: &Arc<DaemonState>,
    items: Vec<BeetsItem>,
    dry_run: bool,
    tx: &ImportTx,
) -> Result<(), Status> {
    let catalog = state.catalog.clone();
    let progress_tx = tx.clone();
    let (mut progress, changes) = tokio::task::spawn_blocking(move || {
        let internal = |e: musicfs_index::Error| Status::internal(e.to_string());
        let mut matcher = Matcher::new(&catalog).map_err(internal)?;
        let mut p = pb::ImportProgress {
            items_total: items.len() as u64,
            ..Default::default()
        };
        let _ = progress_tx.blocking_send(Ok(p.clone()));
        let mut changes: Vec<Change> = Vec::new();
        for item in &items {
            let shown = String::from_utf8_lossy(&item.path).into_owned();
            match matcher.match_item(item).map_err(internal)? {
                Some(m) => {
                    p.matched += 1;
                    let format = if m.edits.is_empty() {
                        None
                    } else {
                        catalog.file(m.file).map_err(internal)?.map(|r| r.format)
                    };
                    match format {
                        None => {}
                        Some(format) if !synth::supports(&format) => skip(
                            &mut p,
                            format!("{shown}: no tag synthesis for {format} files"),
                        ),
                        Some(_) => changes.push(Change {
                            file: m.file,
                            edits: m.edits,
                            shown,
                        }),
                    }
                }
                None => {
                    p.unmatched += 1;
                    if p.unmatched_sample.len() < SAMPLES {
                        p.unmatched_sample.push(shown);
                    }
                }
            }
            p.items_done += 1;
            if p.items_done.is_multiple_of(PROGRESS_EVERY) {
                let _ = progress_tx.blocking_send(Ok(p.clone()));
            }
        }
        Ok::<_, Status>((p, changes))
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))??;
    progress.tracks_changed = if dry_run || changes.is_empty() {
        changes.len() as u64
    } else {
        apply(state, changes, &mut progress).await?
    };
    tracing::info!(
        items = progress.items_total,
        matched = progress.matched,
        unmatched = progress.unmatched,
        skipped = progress.skipped,
        changed = progress.tracks_changed,
        dry_run,
        "beets library imported"
    );
    progress.done = true;
    let _ = tx.send(Ok(progress)).await;
    Ok(())
}

/// One matched track's edits, and its beets path for reports.
struct Change {
    file: FileId,
    edits: Vec<TagEdit>,
    shown: String,
}

fn skip(p: &mut pb::ImportProgress, why: String) {
    p.skipped += 1;
    if p.skipped_sample.len() < SAMPLES {
        p.skipped_sample.push(why);
    }
}

/// Applies all changes in one go (one tree sync); if `apply_edits`
/// refuses the batch because of one track, applies them one by one so
/// only the tracks it refuses are skipped. Returns how many changed.
async fn apply(
    state: &Arc<DaemonState>,
    changes: Vec<Change>,
    progress: &mut pb::ImportProgress,
) -> Result<u64, Status> {
    let batch = changes.iter().map(|c| (c.file, c.edits.clone())).collect();
    match crate::tags::apply_edits(state, batch).await {
        Ok(changed) => return Ok(changed.len() as u64),
        Err(e) if e.code() == tonic::Code::InvalidArgument => {
            tracing::info!(error = %e.message(), "beets import: applying track by track");
        }
        Err(e) => return Err(e),
    }
    let mut changed = 0;
    for c in changes {
        match crate::tags::apply_edits(state, vec![(c.file, c.edits)]).await {
            Ok(files) => changed += files.len() as u64,
            Err(e) if e.code() == tonic::Code::InvalidArgument => {
                skip(progress, format!("{}: {}", c.shown, e.message()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

pub async fn export(
    state: &Arc<DaemonState>,
    req: pb::ExportRequest,
) -> Result<ReceiverStream<Result<pb::ExportChunk, Status>>, Status> {
    let format = match req.format.as_str() {
        "" | "json" => Format::Json,
        "csv" => Format::Csv,
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown export format {other:?}: use json or csv"
            )))
        }
    };
    let catalog = state.catalog.clone();
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let entries = match catalog.served_files() {
            Ok(entries) => entries,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                return;
            }
        };
        let mut out = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
        };
        let written = match format {
            Format::Json => write_json(&entries, &mut out),
            Format::Csv => write_csv(&entries, &mut out),
        };
        match written {
            Ok(()) => {
                let _ = out.flush_chunk();
            }
            Err(e) => {
                let _ = out
                    .tx
                    .blocking_send(Err(Status::internal(format!("export: {e}"))));
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Csv,
}

/// An `io::Write` that sends whole chunks of at most [`CHUNK`] bytes; a
/// gone receiver (the client hung up) ends the export as an error.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<pb::ExportChunk, Status>>,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(pb::ExportChunk { data }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One object per file: `path` (virtual, null when the mount does not
/// show the file), `origin`, `origin_path`, `format`, `size` (served),
/// `duration_ms`, and `tags`: a string per key, an array for a
/// multi-valued key, in the file's tag order.
fn write_json(entries: &[CatalogEntry], out: &mut impl std::io::Write) -> std::io::Result<()> {
    out.write_all(b"[")?;
    for (i, e) in entries.iter().enumerate() {
        let mut tags = serde_json::Map::new();
        for (key, value) in &e.tags {
            match tags.get_mut(key) {
                None => {
                    tags.insert(key.clone(), serde_json::Value::String(value.clone()));
                }
                Some(serde_json::Value::Array(values)) => values.push(value.clone().into()),
                Some(first) => {
                    let first = first.take();
                    tags.insert(key.clone(), serde_json::json!([first, value]));
                }
            }
        }
        let object = serde_json::json!({
            "path": e.virtual_path.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()),
            "origin": e.origin,
            "origin_path": String::from_utf8_lossy(&e.origin_path),
            "format": e.format,
            "size": e.size,
            "duration_ms": e.duration_ms,
            "tags": tags,
        });
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, &object)?;
    }
    out.write_all(b"\n]\n")
}

/// The tag keys that get a CSV column of their own, in column order.
const CSV_TAGS: &[&str] = &[
    "albumartist",
    "artist",
    "album",
    "title",
    "track",
    "tracktotal",
    "disc",
    "disctotal",
    "year",
    "genre",
    "composer",
];

/// One row per file: path, origin, origin_path, format, duration_ms, the
/// [`CSV_TAGS`] (several values joined with "; "), and `other`: every
/// other tag as `key=value`, joined with "; ".
fn write_csv(entries: &[CatalogEntry], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["path", "origin", "origin_path", "format", "duration_ms"];
    header.extend_from_slice(CSV_TAGS);
    header.push("other");
    w.write_record(&header)?;
    for e in entries {
        let mut record = vec![
            e.virtual_path
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
            e.origin.clone(),
            String::from_utf8_lossy(&e.origin_path).into_owned(),
            e.format.clone(),
            e.duration_ms.to_string(),
        ];
        for key in CSV_TAGS {
            let values: Vec<&str> = e
                .tags
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            record.push(values.join("; "));
        }
        let other: Vec<String> = e
            .tags
            .iter()
            .filter(|(k, _)| !CSV_TAGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        record.push(other.join("; "));
        w.write_record(&record)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tags: &[(&str, &str)]) -> CatalogEntry {
        CatalogEntry {
            file: 1,
            virtual_path: Some(b"A/B/01 - T.flac".to_vec()),
            origin: "m".into(),
            origin_path: b"x/t.flac".to_vec(),
            format: "flac".into(),
            size: 1234,
            duration_ms: 3000,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn json_has_one_object_per_file_and_arrays_for_multi_values() {
        let entries = [
            entry(&[("title", "T"), ("genre", "Rock"), ("genre", "Pop")]),
            entry(&[("title", "U")]),
        ];
        let mut out = Vec::new();
        write_json(&entries, &mut out).expect("write");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        let files = v.as_array().expect("array");
        assert_eq!(files.len(), 2);
        assert_eq!(files[0]["path"], "A/B/01 - T.flac");
        assert_eq!(files[0]["size"], 1234);
        assert_eq!(files[0]["tags"]["title"], "T");
        assert_eq!(
            files[0]["tags"]["genre"],
            serde_json::json!(["Rock", "Pop"])
        );
        assert_eq!(files[1]["tags"]["title"], "U");
        let mut empty = Vec::new();
        write_json(&[], &mut empty).expect("write");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&empty).expect("json"),
            serde_json::json!([])
        );
    }

    #[test]
    fn csv_has_common_columns_and_the_rest_in_other() {
        let entries = [entry(&[
            ("title", "A, \"quoted\" title"),
            ("genre", "Rock"),
            ("genre", "Pop"),
            ("mood", "calm"),
            ("label", "L"),
        ])];
        let mut out = Vec::new();
        write_csv(&entries, &mut out).expect("write");
        let mut r = csv::Reader::from_reader(&out[..]);
        let headers = r.headers().expect("headers").clone();
        assert_eq!(headers.len(), 5 + CSV_TAGS.len() + 1);
        let row = r.records().next().expect("row").expect("record");
        let col = |name: &str| {
            let i = headers.iter().position(|h| h == name).expect(name);
            row[i].to_string()
        };
        assert_eq!(col("path"), "A/B/01 - T.flac");
        assert_eq!(col("title"), "A, \"quoted\" title");
        assert_eq!(col("genre"), "Rock; Pop");
        assert_eq!(col("artist"), "");
        assert_eq!(col("other"), "mood=calm; label=L");
    }

    #[test]
    fn chunks_never_exceed_the_limit() {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut w = ChunkWriter {
            buf: Vec::new(),
            tx,
        };
        let data = vec![7u8; CHUNK * 2 + 10];
        std::io::Write::write_all(&mut w, &data).expect("write");
        w.flush_chunk().expect("flush");
        drop(w);
        let mut sizes = Vec::new();
        while let Ok(Ok(chunk)) = rx.try_recv() {
            sizes.push(chunk.data.len());
        }
        assert_eq!(sizes, vec![CHUNK, CHUNK, 10]);
    }
}
