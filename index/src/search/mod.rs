//! Full-text search over the catalog: a tantivy index in a directory
//! beside the catalog (`<catalog>.search/`), derived data that can always
//! be rebuilt from the catalog.
//!
//! Keeping in step: the index's last commit carries, as its payload, the
//! catalog `files_version` it reflects, and every document a fingerprint
//! (xxh3 of what was indexed) in a fast field. [`SearchIndex::sync`] does
//! nothing while the version is unchanged; when it moved, it streams every
//! file's served tags from the catalog, compares fingerprints with those
//! loaded from the index, and rewrites only the documents that differ.
//! The catalog has no per-file change stamp to ask "what changed since
//! version N", and a full read of 1M files is a few seconds of sequential
//! SQLite (see README "Search and collections" for the numbers) while
//! re-indexing them is much longer, so diffing beats rebuilding.
//!
//! Queries: see [`query`] for the language.
mod compile;
pub mod query;
mod schema;
mod source;

use crate::catalog::FileId;
use crate::{Error, Result};
use schema::Fields;
use source::SourceDoc;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tantivy::collector::{Count, TopDocs};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

pub use query::ParseError;
// Collections are saved queries over this index; their names and the play
// log live in the catalog.
pub use crate::catalog::collections::{
    check_collection_name, decade_of_name, is_builtin_name, SavedCollection, MOST_PLAYED,
    PLAY_DEBOUNCE_SECS, RECENTLY_ADDED, RECENTLY_PLAYED,
};

fn index_err(context: impl Into<String>) -> impl FnOnce(tantivy::TantivyError) -> Error {
    let context = context.into();
    move |source| Error::SearchIndex { context, source }
}

fn query_err(query: &str) -> impl FnOnce(ParseError) -> Error + '_ {
    move |error| Error::Query {
        query: query.to_string(),
        error,
    }
}

/// The catalog file of the document at `address`.
fn file_id_at(
    searcher: &tantivy::Searcher,
    address: tantivy::DocAddress,
) -> tantivy::Result<Option<FileId>> {
    let ids = searcher
        .segment_reader(address.segment_ord)
        .fast_fields()
        .u64("file_id")?;
    Ok(ids.first(address.doc_id).map(|id| id as FileId))
}

/// What a [`SearchIndex::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// False when the catalog had not changed since the last sync.
    pub ran: bool,
    /// Files (re)indexed: new or changed.
    pub indexed: u64,
    /// Documents dropped: files gone from the catalog.
    pub removed: u64,
    /// Files in the index afterwards.
    pub files: u64,
    pub took: Duration,
}

/// Writer settings: a full index of 1M files wants more threads and
/// memory than the daemon's small background updates.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Default 1.
    pub threads: usize,
    /// Memory budget shared by the threads; default 64 MB.
    pub memory_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            threads: 1,
            memory_bytes: 64 << 20,
        }
    }
}

struct SyncState {
    /// The catalog `files_version` the index reflects.
    version: Option<String>,
    fingerprints: HashMap<FileId, u64>,
}

/// The search index of one catalog. `Send + Sync`; searches run in
/// parallel, syncs one at a time.
pub struct SearchIndex {
    dir: PathBuf,
    catalog: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    analyzer: tantivy::tokenizer::TextAnalyzer,
    writer_options: WriterOptions,
    state: Mutex<SyncState>,
    /// A copy of `state.version` readable while a sync holds `state` (a
    /// sync of a large catalog takes seconds; readers must not wait).
    published: Mutex<Option<String>>,
}

impl SearchIndex {
    /// The directory the index of the catalog at `catalog` lives in.
    pub fn dir_for(catalog: &Path) -> PathBuf {
        let mut name = catalog.as_os_str().to_owned();
        name.push(".search");
        PathBuf::from(name)
    }

    /// Opens (creating if needed) the index in `dir` for the catalog file
    /// `catalog`. An index with another schema (an older musicfs) is
    /// deleted and rebuilt by the next sync: it is derived data.
    pub fn open(dir: &Path, catalog: &Path) -> Result<SearchIndex> {
        let fields = Fields::new();
        let io = |context: String| move |source| Error::Io { context, source };
        std::fs::create_dir_all(dir)
            .map_err(io(format!("search index creating {}", dir.display())))?;
        let index = match Index::open_in_dir(dir) {
            Ok(index) if index.schema() == fields.schema => index,
            Ok(_) => {
                tracing::info!(dir = %dir.display(), "search index has an old schema; rebuilding");
                std::fs::remove_dir_all(dir)
                    .and_then(|()| std::fs::create_dir_all(dir))
                    .map_err(io(format!("search index clearing {}", dir.display())))?;
                Index::create_in_dir(dir, fields.schema.clone())
                    .map_err(index_err(format!("creating in {}", dir.display())))?
            }
            Err(tantivy::TantivyError::OpenDirectoryError(_))
            | Err(tantivy::TantivyError::OpenReadError(_)) => {
                Index::create_in_dir(dir, fields.schema.clone())
                    .map_err(index_err(format!("creating in {}", dir.display())))?
            }
            Err(e) => return Err(index_err(format!("opening {}", dir.display()))(e)),
        };
        index
            .tokenizers()
            .register(schema::FOLDED, schema::folded());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err(format!("reading {}", dir.display())))?;
        let version = index
            .load_metas()
            .map_err(index_err(format!("reading metas in {}", dir.display())))?
            .payload;
        let search = SearchIndex {
            dir: dir.to_path_buf(),
            catalog: catalog.to_path_buf(),
            index,
            reader,
            fields,
            analyzer: schema::folded(),
            writer_options: WriterOptions::default(),
            published: Mutex::new(version.clone()),
            state: Mutex::new(SyncState {
                version,
                fingerprints: HashMap::new(),
            }),
        };
        let fingerprints = search.load_fingerprints()?;
        search.lock_state().fingerprints = fingerprints;
        Ok(search)
    }

    pub fn set_writer_options(&mut self, options: WriterOptions) {
        self.writer_options = options;
    }

    fn lock_state(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load_fingerprints(&self) -> Result<HashMap<FileId, u64>> {
        let searcher = self.reader.searcher();
        let mut out = HashMap::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let ctx = || format!("reading fingerprints in {}", self.dir.display());
            let ff = segment.fast_fields();
            let ids = ff.u64("file_id").map_err(index_err(ctx()))?;
            let fps = ff.u64("fingerprint").map_err(index_err(ctx()))?;
            for doc in segment.doc_ids_alive() {
                if let (Some(id), Some(fp)) = (ids.first(doc), fps.first(doc)) {
                    out.insert(id as FileId, fp);
                }
            }
        }
        Ok(out)
    }

    /// Files in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The catalog `files_version` the index reflects, if it was ever synced.
    pub fn indexed_version(&self) -> Option<String> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Brings the index in step with the catalog; see the module docs.
    pub fn sync(&self) -> Result<SyncReport> {
        let started = Instant::now();
        let mut state = self.lock_state();
        let cat_err = |source| Error::Sqlite {
            path: self.catalog.display().to_string(),
            source,
        };
        let conn = source::open(&self.catalog).map_err(cat_err)?;
        let version = source::files_version(&conn).map_err(cat_err)?;
        if state.version.as_deref() == Some(version.as_str()) {
            return Ok(SyncReport {
                files: state.fingerprints.len() as u64,
                took: started.elapsed(),
                ..SyncReport::default()
            });
        }
        let ctx = |what: &str| format!("{what} in {}", self.dir.display());
        let mut writer = self
            .index
            .writer_with_num_threads::<TantivyDocument>(
                self.writer_options.threads,
                self.writer_options.memory_bytes,
            )
            .map_err(index_err(ctx("opening the writer")))?;
        let mut report = SyncReport {
            ran: true,
            ..SyncReport::default()
        };
        let mut old = std::mem::take(&mut state.fingerprints);
        let mut new = HashMap::with_capacity(old.len());
        let mut add_error = None;
        // A tantivy error cannot travel through the rusqlite callback;
        // keep it and stop at the first.
        let walked = source::for_each(&conn, |doc| {
            let fp = doc.fingerprint();
            let id = doc.id;
            if old.remove(&id) != Some(fp) {
                writer.delete_term(Term::from_field_u64(self.fields.file_id, id as u64));
                if let Err(e) = writer.add_document(self.document(&doc, fp)) {
                    add_error = Some(e);
                    return Err(rusqlite::Error::ExecuteReturnedResults);
                }
                report.indexed += 1;
            }
            new.insert(id, fp);
            Ok(())
        });
        if let Some(e) = add_error {
            return Err(index_err(ctx("adding a document"))(e));
        }
        walked.map_err(cat_err)?;
        for gone in old.keys() {
            writer.delete_term(Term::from_field_u64(self.fields.file_id, *gone as u64));
        }
        report.removed = old.len() as u64;
        let mut commit = writer
            .prepare_commit()
            .map_err(index_err(ctx("committing")))?;
        commit.set_payload(&version);
        commit.commit().map_err(index_err(ctx("committing")))?;
        self.reader.reload().map_err(index_err(ctx("reloading")))?;
        report.files = new.len() as u64;
        state.fingerprints = new;
        state.version = Some(version);
        *self.published.lock().unwrap_or_else(|p| p.into_inner()) = state.version.clone();
        report.took = started.elapsed();
        Ok(report)
    }

    /// Drops every document and indexes the whole catalog again.
    pub fn rebuild(&self) -> Result<SyncReport> {
        {
            let mut state = self.lock_state();
            let mut writer = self
                .index
                .writer_with_num_threads::<TantivyDocument>(1, 15 << 20)
                .map_err(index_err(format!(
                    "opening the writer in {}",
                    self.dir.display()
                )))?;
            writer
                .delete_all_documents()
                .and_then(|_| writer.commit())
                .map_err(index_err(format!("clearing {}", self.dir.display())))?;
            state.fingerprints.clear();
            state.version = None;
            *self.published.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        self.sync()
    }

    fn document(&self, doc: &SourceDoc, fingerprint: u64) -> TantivyDocument {
        let f = &self.fields;
        let mut d = TantivyDocument::default();
        d.add_u64(f.file_id, doc.id as u64);
        d.add_u64(f.fingerprint, fingerprint);
        for (key, field) in [
            ("artist", f.artist),
            ("albumartist", f.albumartist),
            ("album", f.album),
            ("title", f.title),
            ("genre", f.genre),
            ("composer", f.composer),
        ] {
            for value in doc.values(key) {
                d.add_text(field, value);
                d.add_text(f.all, value);
            }
        }
        if let Some(year) = doc.year() {
            d.add_i64(f.year, year);
        }
        d.add_i64(f.added, doc.added);
        d.add_text(f.format, doc.format.to_lowercase());
        d
    }

    /// Checks a query's syntax without running it.
    pub fn check(query: &str) -> Result<()> {
        query::parse(query).map(drop).map_err(query_err(query))
    }

    /// The files matching `query`, best first, at most `limit`, and how
    /// many match in all.
    pub fn search(&self, query: &str, limit: usize) -> Result<(Vec<(FileId, f32)>, u64)> {
        let terms = query::parse(query).map_err(query_err(query))?;
        let compiled = compile::compile(&terms, &self.fields, &self.analyzer);
        let searcher = self.reader.searcher();
        let ctx = || format!("searching {}", self.dir.display());
        let (top, total) = searcher
            .search(&compiled, &(TopDocs::with_limit(limit.max(1)), Count))
            .map_err(index_err(ctx()))?;
        let mut hits = Vec::with_capacity(top.len().min(limit));
        for (score, address) in top.into_iter().take(limit) {
            if let Some(id) = file_id_at(&searcher, address).map_err(index_err(ctx()))? {
                hits.push((id, score));
            }
        }
        Ok((hits, total as u64))
    }

    /// The newest files by when they were first catalogued, at most
    /// `limit` ("Recently Added").
    pub fn recently_added(&self, limit: usize) -> Result<Vec<FileId>> {
        let searcher = self.reader.searcher();
        let ctx = || format!("listing recent files in {}", self.dir.display());
        let collector = TopDocs::with_limit(limit.max(1))
            .order_by_fast_field::<i64>("added", tantivy::Order::Desc);
        let top = searcher
            .search(&tantivy::query::AllQuery, &collector)
            .map_err(index_err(ctx()))?;
        let mut out = Vec::with_capacity(top.len());
        for (_, address) in top.into_iter().take(limit) {
            if let Some(id) = file_id_at(&searcher, address).map_err(index_err(ctx()))? {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The decades (first years: 1960, 1970, ...) that have at least one
    /// file, ascending. Reads the `year` column: milliseconds at 1M files.
    pub fn decades(&self) -> Result<Vec<i64>> {
        let searcher = self.reader.searcher();
        let mut found = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let years = segment
                .fast_fields()
                .i64("year")
                .map_err(index_err(format!(
                    "reading years in {}",
                    self.dir.display()
                )))?;
            for doc in segment.doc_ids_alive() {
                if let Some(year) = years.first(doc) {
                    found.insert(year.div_euclid(10) * 10);
                }
            }
        }
        Ok(found.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
