//! The search benchmark: a catalog of N synthetic tracks (default
//! 1,000,000), its search index built from scratch, then ~1000 mixed
//! queries timed one by one.
//!
//! ```text
//! cargo run --release -p musicfs-tests --example bench_search -- [--files N] [--queries Q] [--dir D]
//! ```
//! (`scripts/bench-search.sh` runs this.)
//!
//! The catalog: rows inserted with rusqlite in one transaction into a
//! catalog created by `Catalog::open` (schema as the daemon writes it).
//! Tags are drawn from a seeded generator with a music library's shape:
//! ~50k artists (a few prolific, most with one album, Zipf-like), ~100k
//! albums of ~10 tracks, years 1950–2025 (more recent ones more common),
//! 30 genres, titles of 1–4 words from a 20k-word vocabulary of made-up
//! words (some accented). It reports: insert time, full index build time,
//! index size on disk, the cost of a sync that finds nothing changed (the
//! daemon's once-a-second check), of a sync after 1000 files were retagged
//! (a diff pass over the whole catalog), then per query kind and overall
//! the p50 and p99 latency of `SearchIndex::search` with limit 50.
//!
//! It never asserts on times; it exits non-zero only when something
//! failed to run or a query found nothing it must find.
use musicfs_index::search::{SearchIndex, WriterOptions};
use musicfs_index::Catalog;
use rusqlite::params;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Zipf-like: small indexes much more often (inverse-power sampling).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0).min(n as f64 - 1.0) as u64
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ve", "son", "tor", "bel", "an", "dre", "li", "mor", "na", "ze", "qu",
    "el", "ri", "ta", "ne", "vo", "sha", "gan", "dor", "fi", "lu", "ber", "co", "ma", "ny", "pe",
    "sé", "ün", "ça", "ño", "lé",
];
const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Jazz",
    "Blues",
    "Classical",
    "Electronic",
    "Hip Hop",
    "Folk",
    "Country",
    "Reggae",
    "Soul",
    "Funk",
    "Metal",
    "Punk",
    "Ambient",
    "House",
    "Techno",
    "Disco",
    "Gospel",
    "Latin",
    "World",
    "Soundtrack",
    "R&B",
    "Indie",
    "Alternative",
    "Grunge",
    "Ska",
    "Dub",
    "Trance",
    "Opera",
];

fn word(rng: &mut Rng) -> String {
    let n = 2 + rng.below(2) as usize;
    let mut w = String::new();
    for _ in 0..n {
        w.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
    }
    w
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn phrase(rng: &mut Rng, vocab: &[String], max_words: u64) -> String {
    let n = 1 + rng.below(max_words);
    (0..n)
        .map(|_| capitalize(&vocab[rng.skewed(vocab.len() as u64) as usize]))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Library {
    artists: Vec<String>,
    /// (artist index, album title, year)
    albums: Vec<(usize, String, i64)>,
    vocab: Vec<String>,
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let files: u64 = arg(&args, "--files", 1_000_000);
    let queries: usize = arg(&args, "--queries", 1000);
    let dir: PathBuf = arg(&args, "--dir", PathBuf::from("/tmp/musicfs-bench-search"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create bench dir");
    let catalog_path = dir.join("catalog.db");
    let catalog = Catalog::open(&catalog_path).expect("open catalog");
    let origin = catalog
        .ensure_origin("bench", "local", "/nonexistent")
        .expect("origin");

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocab: Vec<String> = (0..20_000).map(|_| word(&mut rng)).collect();
    let n_artists = (files / 20).max(1) as usize;
    let n_albums = (files / 10).max(1) as usize;
    let artists: Vec<String> = (0..n_artists)
        .map(|_| {
            let w = 1 + rng.below(3);
            (0..w)
                .map(|_| capitalize(&word(&mut rng)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let albums: Vec<(usize, String, i64)> = (0..n_albums)
        .map(|_| {
            let artist = rng.skewed(n_artists as u64) as usize;
            // Later years more common: the square root of a uniform skews up.
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let year = 1950 + (u.sqrt() * 75.999) as i64;
            (artist, phrase(&mut rng, &vocab, 3), year)
        })
        .collect();
    let lib = Library {
        artists,
        albums,
        vocab,
    };

    // ---- the catalog ----
    let started = Instant::now();
    {
        let mut conn = rusqlite::Connection::open(&catalog_path).expect("open catalog for insert");
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut file = tx
                .prepare(
                    "INSERT INTO files (id, origin_id, rel_path, size, mtime_ns, format,
                        audio_offset, audio_length, duration_ms, added)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5, 0, ?4, 200000, ?6)",
                )
                .unwrap();
            let mut tag = tx
                .prepare("INSERT INTO tags (file_id, idx, key, value) VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            let formats = ["flac", "mp3", "m4a", "ogg", "opus"];
            for id in 1..=files as i64 {
                let album_ix = ((id - 1) / 10) as usize % lib.albums.len();
                let (artist_ix, album, year) = &lib.albums[album_ix];
                let artist = &lib.artists[*artist_ix];
                let title = phrase(&mut rng, &lib.vocab, 4);
                let genre = GENRES[(album_ix * 7 + *artist_ix) % GENRES.len()];
                let format = formats[album_ix % formats.len()];
                let path = format!("{artist}/{album}/{id:07} {title}.{format}");
                file.execute(params![
                    id,
                    origin,
                    path.as_bytes(),
                    5_000_000 + id % 1000,
                    format,
                    1_600_000_000 + id
                ])
                .unwrap();
                let track = ((id - 1) % 10 + 1).to_string();
                let year = year.to_string();
                let tags = [
                    ("artist", artist.as_str()),
                    ("albumartist", artist.as_str()),
                    ("album", album.as_str()),
                    ("title", title.as_str()),
                    ("genre", genre),
                    ("year", year.as_str()),
                    ("track", track.as_str()),
                ];
                for (idx, (k, v)) in tags.iter().enumerate() {
                    tag.execute(params![id, idx as i64, k, v]).unwrap();
                }
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('files_version', '1')
                 ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let insert = started.elapsed();
    println!(
        "catalog: {files} files, {} artists, {} albums inserted in {:.1} s ({} MB)",
        lib.artists.len(),
        lib.albums.len(),
        insert.as_secs_f64(),
        std::fs::metadata(&catalog_path).map_or(0, |m| m.len()) >> 20
    );

    // ---- the index ----
    let index_dir = SearchIndex::dir_for(&catalog_path);
    let mut index = SearchIndex::open(&index_dir, &catalog_path).expect("open index");
    index.set_writer_options(WriterOptions {
        threads: 2,
        memory_bytes: 256 << 20,
    });
    let r = index.sync().expect("build index");
    println!(
        "index build: {} files in {:.1} s, {} MB on disk",
        r.files,
        r.took.as_secs_f64(),
        index.disk_bytes() >> 20
    );
    let idle = index.sync().expect("idle sync");
    println!(
        "sync with nothing changed: {:.2} ms",
        idle.took.as_secs_f64() * 1000.0
    );
    // Retag 1000 files, as an edit or an import would, then diff.
    {
        let conn = rusqlite::Connection::open(&catalog_path).unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for k in 0..1000i64 {
            let id = 1 + (k * 997) % files as i64;
            tx.execute(
                "UPDATE tags SET value = value || ' (Remastered)' WHERE file_id = ?1 AND key = 'title'",
                [id],
            )
            .unwrap();
        }
        tx.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'files_version'",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let diff = index.sync().expect("diff sync");
    println!(
        "sync after retagging 1000 files: {:.1} s ({} reindexed)",
        diff.took.as_secs_f64(),
        diff.indexed
    );
    let reopen = Instant::now();
    drop(index);
    let index = SearchIndex::open(&index_dir, &catalog_path).expect("reopen index");
    println!(
        "reopen (loads fingerprints): {:.0} ms",
        reopen.elapsed().as_secs_f64() * 1000.0
    );

    // ---- queries ----
    let typo = |w: &str, rng: &mut Rng| -> String {
        let mut c: Vec<char> = w.chars().collect();
        let i = 1 + rng.below(c.len() as u64 - 2) as usize;
        c.swap(i, i + 1);
        if c.iter().collect::<String>() == w {
            c[i] = 'x';
        }
        c.into_iter().collect()
    };
    let kinds = ["artist:", "year range", "bare words", "fuzzy"];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    let mut all = Vec::new();
    let mut empty = 0;
    for q in 0..queries {
        let kind = q % kinds.len();
        let (artist_ix, album, year) = &lib.albums[rng.below(lib.albums.len() as u64) as usize];
        let artist_word = lib.artists[*artist_ix]
            .split(' ')
            .next()
            .unwrap()
            .to_lowercase();
        let album_word = album.split(' ').next().unwrap().to_lowercase();
        let query = match kind {
            0 => format!("artist:{artist_word}"),
            1 => {
                let lo = year - rng.below(5) as i64;
                format!(
                    "year:{lo}..{} {}",
                    lo + 9,
                    GENRES[rng.below(30) as usize]
                        .split(' ')
                        .next()
                        .unwrap()
                        .to_lowercase()
                )
            }
            2 => format!("{artist_word} {album_word}"),
            _ => typo(&album_word, &mut rng),
        };
        let t = Instant::now();
        let (hits, _total) = index
            .search(&query, 50)
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let took = t.elapsed();
        if hits.is_empty() && kind != 1 {
            empty += 1;
            eprintln!("no hits for {query:?}");
        }
        times[kind].push(took);
        all.push(took);
    }
    for (kind, t) in kinds.iter().zip(times.iter_mut()) {
        t.sort();
        println!(
            "{kind:>11}: n={:4} p50 {:.2} ms  p99 {:.2} ms",
            t.len(),
            percentile(t, 0.5).as_secs_f64() * 1000.0,
            percentile(t, 0.99).as_secs_f64() * 1000.0
        );
    }
    all.sort();
    println!(
        "        all: n={:4} p50 {:.2} ms  p99 {:.2} ms  (target p50 < 5 ms)",
        all.len(),
        percentile(&all, 0.5).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0
    );
    if empty > 0 {
        eprintln!("{empty} queries that must match found nothing");
        std::process::exit(1);
    }
}
