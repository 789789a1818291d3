//! Search and smart collections: the gRPC Search and
//! List/Create/DeleteCollection, the background thread that keeps the
//! search index in step with the catalog, and the play log's policy.
//!
//! Keeping in step: the index lives in `<catalog>.search/`. A thread
//! opens it (after the mount, so mounting never waits for it) and then,
//! once a second or when woken by [`SearchSlot::catalog_changed`], asks
//! the index to sync; a sync that finds the catalog's `files_version`
//! unchanged costs one SQLite query. After a sync that did work, the next
//! waits at least as long as that one took, so a long scan that bumps the
//! version in every batch cannot keep a 1M-file diff running back to back.
use crate::library::DaemonLibrary;
use crate::service::DaemonState;
use musicfs_index::search::{self, SearchIndex};
use musicfs_index::{Catalog, FileId};
use musicfs_proto::v1 as pb;
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tonic::Status;

/// Tracks in a built-in collection.
pub const BUILTIN_LIMIT: usize = 200;
/// How often the sync thread looks at the catalog's version.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// A handle released after reading this share of the file (through the
/// daemon) counts as a play.
const PLAYED_FRACTION: f64 = 0.3;
/// A passthrough handle (the kernel reads, the daemon sees no bytes)
/// counts as a play when it was open this long: a player holds the file
/// open while it plays, a tag reader or a media-server scan does not.
const PLAYED_OPEN_FOR: Duration = Duration::from_secs(30);

/// The search index once open, and the wake-up for its sync thread.
#[derive(Default)]
pub struct SearchSlot {
    index: OnceLock<Arc<SearchIndex>>,
    /// Set by `catalog_changed`, cleared by the sync thread.
    dirty: Mutex<bool>,
    wake: Condvar,
    /// Decades present, cached for the index version they were read at.
    decades: Mutex<Option<(Option<String>, Vec<i64>)>>,
}

impl SearchSlot {
    pub fn index(&self) -> Option<&Arc<SearchIndex>> {
        self.index.get()
    }

    /// Tells the sync thread the catalog changed (tag edits, an import),
    /// so it syncs now rather than at its next tick.
    pub fn catalog_changed(&self) {
        *self.dirty.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }

    fn wait(&self, timeout: Duration) {
        let dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        let (mut dirty, _) = self
            .wake
            .wait_timeout_while(dirty, timeout, |d| !*d)
            .unwrap_or_else(|p| p.into_inner());
        *dirty = false;
    }

    /// Decade start years with at least one track.
    pub fn decades(&self) -> Vec<i64> {
        let Some(index) = self.index() else {
            return Vec::new();
        };
        let version = index.indexed_version();
        let mut cache = self.decades.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, decades)) = cache.as_ref() {
            if *v == version {
                return decades.clone();
            }
        }
        match index.decades() {
            Ok(decades) => {
                *cache = Some((version, decades.clone()));
                decades
            }
            Err(e) => {
                tracing::warn!("listing decades: {e}");
                Vec::new()
            }
        }
    }
}

/// Opens the search index of `library`'s catalog and keeps it in step,
/// on a thread of its own, until the library is dropped.
pub fn start_sync(library: &Arc<DaemonLibrary>) {
    let weak: Weak<DaemonLibrary> = Arc::downgrade(library);
    let catalog = library.catalog.path().to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("musicfs-search".into())
        .spawn(move || {
            let dir = SearchIndex::dir_for(&catalog);
            let index = match SearchIndex::open(&dir, &catalog) {
                Ok(index) => Arc::new(index),
                Err(e) => {
                    tracing::error!("search is off: {e}");
                    return;
                }
            };
            tracing::info!(dir = %dir.display(), files = index.len(), "search index open");
            match weak.upgrade() {
                Some(lib) => {
                    let _ = lib.search.index.set(index.clone());
                }
                None => return,
            }
            let mut pause = Duration::ZERO;
            loop {
                match index.sync() {
                    Ok(r) if r.ran => {
                        tracing::info!(
                            indexed = r.indexed,
                            removed = r.removed,
                            files = r.files,
                            "search index synced in {:?}",
                            r.took
                        );
                        pause = r.took;
                    }
                    Ok(_) => pause = Duration::ZERO,
                    Err(e) => tracing::warn!("search index sync: {e}"),
                }
                std::thread::sleep(pause);
                let Some(lib) = weak.upgrade() else { return };
                lib.search.wait(SYNC_EVERY);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the search thread; search is off: {e}");
    }
}

/// When a track counts as played, and the log of plays.
///
/// Policy: a handle released after at least 30% of the file's bytes were
/// read through the daemon is a play; a handle that read nothing through
/// the daemon (passthrough: the kernel reads) is a play when it was open
/// at least 30 s. Plays are written to the catalog on a thread of their
/// own: `released` runs on a FUSE thread, and a catalog write can wait
/// behind a scan's transaction.
pub struct PlayLog {
    catalog: Arc<Catalog>,
    /// When each still-open handle of a file was opened, oldest first.
    open: Mutex<HashMap<FileId, Vec<Instant>>>,
    writer: Mutex<Option<mpsc::Sender<FileId>>>,
}

impl PlayLog {
    pub fn new(catalog: Arc<Catalog>) -> PlayLog {
        PlayLog {
            catalog,
            open: Mutex::new(HashMap::new()),
            writer: Mutex::new(None),
        }
    }

    pub fn opened(&self, file: FileId) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.entry(file).or_default().push(Instant::now());
    }

    pub fn released(&self, file: FileId, bytes_read: u64) {
        let since = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let Some(handles) = open.get_mut(&file) else {
                return;
            };
            let since = handles.remove(0);
            if handles.is_empty() {
                open.remove(&file);
            }
            since
        };
        let played = if bytes_read == 0 {
            since.elapsed() >= PLAYED_OPEN_FOR
        } else {
            match self.catalog.file(file) {
                Ok(Some(f)) => bytes_read as f64 >= f.stamp.size as f64 * PLAYED_FRACTION,
                _ => false,
            }
        };
        if played {
            self.record(file);
        }
    }

    fn record(&self, file: FileId) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.is_none() {
            let (tx, rx) = mpsc::channel::<FileId>();
            let catalog = self.catalog.clone();
            let spawned = std::thread::Builder::new()
                .name("musicfs-plays".into())
                .spawn(move || {
                    for file in rx {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64);
                        match catalog.record_play(file, now) {
                            Ok(logged) => tracing::debug!(file, logged, "play"),
                            Err(e) => tracing::warn!(file, "logging a play: {e}"),
                        }
                    }
                });
            match spawned {
                Ok(_) => *writer = Some(tx),
                Err(e) => {
                    tracing::warn!("cannot start the play-log thread: {e}");
                    return;
                }
            }
        }
        if let Some(tx) = writer.as_ref() {
            let _ = tx.send(file);
        }
    }
}

/// The built-in and saved collections: what `/.collections/` lists and
/// how each resolves to tracks.
pub enum CollectionRef {
    RecentlyAdded,
    RecentlyPlayed,
    MostPlayed,
    Decade(i64),
    Saved(String),
}

impl CollectionRef {
    /// The query a collection runs, as shown to users ("" for the play log
    /// and recency ones, which are not queries).
    pub fn query(&self) -> String {
        match self {
            CollectionRef::Decade(d) => format!("year:{d}..{}", d + 9),
            CollectionRef::Saved(q) => q.clone(),
            _ => String::new(),
        }
    }
}

/// Every collection by name, built-ins first, then saved ones by name.
pub fn all_collections(library: &DaemonLibrary) -> Vec<(String, CollectionRef)> {
    let mut out = vec![
        (
            search::RECENTLY_ADDED.to_string(),
            CollectionRef::RecentlyAdded,
        ),
        (
            search::RECENTLY_PLAYED.to_string(),
            CollectionRef::RecentlyPlayed,
        ),
        (search::MOST_PLAYED.to_string(), CollectionRef::MostPlayed),
    ];
    for d in library.search.decades() {
        out.push((format!("{d}s"), CollectionRef::Decade(d)));
    }
    match library.catalog.saved_collections() {
        Ok(saved) => out.extend(
            saved
                .into_iter()
                .map(|s| (s.name, CollectionRef::Saved(s.query))),
        ),
        Err(e) => tracing::warn!("listing saved collections: {e}"),
    }
    out
}

/// The collection named exactly `name`, if there is one.
pub fn find_collection(library: &DaemonLibrary, name: &str) -> Option<CollectionRef> {
    match name {
        search::RECENTLY_ADDED => return Some(CollectionRef::RecentlyAdded),
        search::RECENTLY_PLAYED => return Some(CollectionRef::RecentlyPlayed),
        search::MOST_PLAYED => return Some(CollectionRef::MostPlayed),
        _ => {}
    }
    if let Some(d) = search::decade_of_name(name) {
        return library
            .search
            .decades()
            .contains(&d)
            .then_some(CollectionRef::Decade(d));
    }
    match library.catalog.saved_collection(name) {
        Ok(saved) => saved.map(|s| CollectionRef::Saved(s.query)),
        Err(e) => {
            tracing::warn!(name, "reading a saved collection: {e}");
            None
        }
    }
}

/// A collection's tracks, in its order, at most `limit`, and how many it
/// has in all.
pub fn resolve(
    library: &DaemonLibrary,
    collection: &CollectionRef,
    limit: usize,
) -> Result<(Vec<FileId>, u64), String> {
    let index = || {
        library
            .search
            .index()
            .ok_or_else(|| "the search index is still opening".to_string())
    };
    let capped = limit.min(BUILTIN_LIMIT);
    match collection {
        CollectionRef::RecentlyAdded => {
            let index = index()?;
            let ids = index.recently_added(capped).map_err(|e| e.to_string())?;
            Ok((ids, index.len().min(BUILTIN_LIMIT as u64)))
        }
        CollectionRef::RecentlyPlayed => {
            let all = library
                .catalog
                .recently_played(BUILTIN_LIMIT)
                .map_err(|e| e.to_string())?;
            let total = all.len() as u64;
            Ok((all.into_iter().take(limit).collect(), total))
        }
        CollectionRef::MostPlayed => {
            let all = library
                .catalog
                .most_played(BUILTIN_LIMIT)
                .map_err(|e| e.to_string())?;
            let total = all.len() as u64;
            Ok((all.into_iter().take(limit).collect(), total))
        }
        CollectionRef::Decade(_) | CollectionRef::Saved(_) => {
            let (hits, total) = index()?
                .search(&collection.query(), limit)
                .map_err(|e| e.to_string())?;
            Ok((hits.into_iter().map(|(id, _)| id).collect(), total))
        }
    }
}

// ---- gRPC ----

fn blocking_err(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("search task failed: {e}"))
}

fn first_value(tags: &[(String, String)], key: &str) -> String {
    tags.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

pub async fn search(
    state: &Arc<DaemonState>,
    req: pb::SearchRequest,
) -> Result<pb::SearchReply, Status> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit as usize
        };
        let index =
            state.library.search.index().ok_or_else(|| {
                Status::unavailable("the search index is still opening; try again")
            })?;
        let started = Instant::now();
        let (hits, total) = index.search(&req.query, limit).map_err(|e| match e {
            musicfs_index::Error::Query { .. } => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        })?;
        let took_us = started.elapsed().as_micros() as u64;
        let catalog = &state.catalog;
        let mut out = Vec::with_capacity(hits.len());
        for (file_id, score) in hits {
            let path = catalog
                .inos_of_file(file_id)
                .ok()
                .and_then(|inos| inos.first().copied())
                .and_then(|ino| catalog.virtual_path(ino).ok().flatten())
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .unwrap_or_default();
            let tags = catalog.effective_tags(file_id).unwrap_or_default();
            out.push(pb::SearchHit {
                file_id,
                path,
                score,
                artist: first_value(&tags, "artist"),
                album: first_value(&tags, "album"),
                title: first_value(&tags, "title"),
            });
        }
        Ok(pb::SearchReply {
            hits: out,
            total,
            took_us,
        })
    })
    .await
    .map_err(blocking_err)?
}

fn collection_reply(library: &DaemonLibrary, name: String, c: &CollectionRef) -> pb::Collection {
    let tracks = resolve(library, c, 0).map_or(0, |(_, total)| total);
    pb::Collection {
        name,
        query: c.query(),
        builtin: !matches!(c, CollectionRef::Saved(_)),
        tracks,
    }
}

pub async fn list_collections(
    state: &Arc<DaemonState>,
    _req: pb::ListCollectionsRequest,
) -> Result<pb::ListCollectionsReply, Status> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let library = &state.library;
        let collections = all_collections(library)
            .into_iter()
            .map(|(name, c)| collection_reply(library, name, &c))
            .collect();
        pb::ListCollectionsReply { collections }
    })
    .await
    .map_err(blocking_err)
}

pub async fn create_collection(
    state: &Arc<DaemonState>,
    req: pb::CreateCollectionRequest,
) -> Result<pb::Collection, Status> {
    search::check_collection_name(&req.name).map_err(Status::invalid_argument)?;
    SearchIndex::check(&req.query).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let library = &state.library;
        library
            .catalog
            .create_collection(&req.name, &req.query)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(collection_reply(
            library,
            req.name,
            &CollectionRef::Saved(req.query),
        ))
    })
    .await
    .map_err(blocking_err)?
}

pub async fn delete_collection(
    state: &Arc<DaemonState>,
    req: pb::DeleteCollectionRequest,
) -> Result<pb::DeleteCollectionReply, Status> {
    if search::is_builtin_name(&req.name) {
        return Err(Status::invalid_argument(format!(
            "{:?} is a built-in collection and cannot be deleted",
            req.name
        )));
    }
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let deleted = state
            .catalog
            .delete_collection(&req.name)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(pb::DeleteCollectionReply { deleted })
    })
    .await
    .map_err(blocking_err)?
}
