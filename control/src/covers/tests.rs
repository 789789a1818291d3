//! `Covers` over real files: a local origin scanned into a real catalog,
//! and the same origin seen as a remote one (no local paths), whose reads
//! are counted.
use super::*;
use crate::config::Config;
use crate::scanner::{origin_table, Scanner};
use musicfs_index::Template;
use musicfs_origins::{Entry, LocalOrigin, OriginKind};
use std::process::Command;

fn tools_available() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: ffmpeg is needed to make real files with art");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real picture of `w`×`h` (JPEG or PNG by the name's extension).
fn picture(path: &Path, w: u32, h: u32, color: &str) -> Vec<u8> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(format!("color=c={color}:s={w}x{h}:d=1"))
        .args(["-frames:v", "1"])
        .arg(path));
    std::fs::read(path).unwrap()
}

/// Ten seconds of noise, tagged into album `album`, with `art` attached.
fn track(path: &Path, album: &str, n: u32, art: Option<&Path>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "anoisesrc=d=10:c=pink:a=0.3"]);
    if let Some(art) = art {
        cmd.arg("-i").arg(art);
        cmd.args(["-map", "0:a", "-map", "1:v", "-c:v", "copy"]);
        cmd.args(["-disposition:v", "attached_pic"]);
    }
    for (k, v) in [
        ("artist", "Artist".to_string()),
        ("album_artist", "Artist".to_string()),
        ("album", album.to_string()),
        ("title", format!("Song {n}")),
        ("track", n.to_string()),
    ] {
        cmd.arg("-metadata").arg(format!("{k}={v}"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap();
    cmd.args(match ext {
        "mp3" => ["-c:a", "libmp3lame"],
        _ => ["-c:a", "flac"],
    });
    run(cmd.arg(path));
}

struct Library {
    _tmp: tempfile::TempDir,
    music: PathBuf,
    cache: PathBuf,
    catalog: Arc<Catalog>,
    scanner: Scanner,
    /// Embedded in `Front/01.flac` (1000×500 JPEG).
    front: Vec<u8>,
    /// Beside the tracks of `Beside/` as `Cover.JPG`.
    beside: Vec<u8>,
}

impl Library {
    /// Albums: "Front" (track 2 of 2 has art), "Beside" (an image beside
    /// the tracks), "Png" (embedded PNG), "Bare" (no art at all).
    fn new() -> Library {
        let tmp = tempfile::tempdir().unwrap();
        let music = tmp.path().join("music");
        let pics = tmp.path().join("pics");
        let front = picture(&pics.join("front.jpg"), 1000, 500, "blue");
        picture(&pics.join("png.png"), 300, 150, "red");
        track(&music.join("Front/01.flac"), "Front", 1, None);
        track(
            &music.join("Front/02.flac"),
            "Front",
            2,
            Some(&pics.join("front.jpg")),
        );
        track(&music.join("Beside/01.mp3"), "Beside", 1, None);
        let beside = picture(&music.join("Beside/Cover.JPG"), 90, 90, "green");
        picture(&music.join("Beside/back.jpg"), 50, 50, "black");
        track(
            &music.join("Png/01.flac"),
            "Png",
            1,
            Some(&pics.join("png.png")),
        );
        track(&music.join("Bare/01.flac"), "Bare", 1, None);
        let cache = tmp.path().join("cache");
        let catalog = Arc::new(Catalog::open(&tmp.path().join("catalog.db")).unwrap());
        let config = Config {
            cache_dir: cache.clone(),
            ..Config::default()
        };
        let targets =
            crate::daemon::build_origins(&catalog, &config, Some(("local", &music))).unwrap();
        let template = Template::parse(musicfs_index::DEFAULT_TEMPLATE).unwrap();
        let scanner = Scanner::new(catalog.clone(), template, Default::default(), targets);
        let out = scanner.full_scan(&scanner.targets()[0], &|_| {}).unwrap();
        assert_eq!(out.report.errors, 0, "scan errors");
        Library {
            _tmp: tmp,
            music,
            cache,
            catalog,
            scanner,
            front,
            beside,
        }
    }

    fn table(&self) -> OriginTable {
        origin_table(self.scanner.targets())
    }

    fn covers(&self, table: OriginTable) -> Covers {
        Covers::new(self.catalog.clone(), table, Some(&self.cache))
    }

    fn album(&self, name: &str) -> u64 {
        let node = self
            .catalog
            .resolve(format!("Artist/{name}").as_bytes())
            .unwrap()
            .unwrap_or_else(|| panic!("no folder Artist/{name}"));
        node.ino
    }

    fn rescan(&self) {
        self.scanner
            .full_scan(&self.scanner.targets()[0], &|_| {})
            .unwrap();
    }
}

fn dimensions(jpeg: &[u8]) -> (u32, u32) {
    assert!(art::is_jpeg(jpeg), "not a JPEG");
    art::dimensions(jpeg).expect("a JPEG header")
}

#[test]
fn covers_embedded_beside_png_and_none() {
    if !tools_available() {
        return;
    }
    let lib = Library::new();
    let covers = lib.covers(lib.table());
    let front = lib.album("Front");
    let original = covers.cover(front, CoverSize::Original).expect("a cover");
    assert_eq!(
        &original[..],
        &lib.front[..],
        "cover.jpg is the embedded picture"
    );
    let medium = covers.cover(front, CoverSize::Medium).unwrap();
    assert_eq!(dimensions(&medium), (600, 300));
    let thumb = covers.cover(front, CoverSize::Thumbnail).unwrap();
    assert_eq!(dimensions(&thumb), (200, 100));

    let beside = lib.album("Beside");
    let original = covers
        .cover(beside, CoverSize::Original)
        .expect("folder image");
    assert_eq!(&original[..], &lib.beside[..]);
    // Small enough to be served as it is at every size.
    assert_eq!(
        &covers.cover(beside, CoverSize::Thumbnail).unwrap()[..],
        &lib.beside[..]
    );

    let png = lib.album("Png");
    let original = covers.cover(png, CoverSize::Original).expect("png cover");
    assert_eq!(
        dimensions(&original),
        (300, 150),
        "PNG converted at its size"
    );
    assert_eq!(
        dimensions(&covers.cover(png, CoverSize::Thumbnail).unwrap()),
        (200, 100)
    );

    let bare = lib.album("Bare");
    assert_eq!(covers.cover(bare, CoverSize::Original), None);
    assert_eq!(covers.cover(bare, CoverSize::Thumbnail), None);
    // Not an album folder: the artist folder holds no tracks.
    let artist = lib.catalog.resolve(b"Artist").unwrap().unwrap().ino;
    assert_eq!(covers.cover(artist, CoverSize::Original), None);
    assert_eq!(covers.cover(999_999, CoverSize::Original), None);
}

#[test]
fn covers_come_back_from_disk_without_the_origin() {
    if !tools_available() {
        return;
    }
    let lib = Library::new();
    let front = lib.album("Front");
    let first = lib.covers(lib.table());
    let thumb = first.cover(front, CoverSize::Thumbnail).unwrap();
    let stored = std::fs::read_dir(lib.cache.join("art")).unwrap().count();
    assert_eq!(stored, 3, "three renditions on disk");
    drop(first);
    // A restart with no origin to read from: the disk cache answers.
    let empty: OriginTable = Arc::default();
    let second = lib.covers(empty);
    assert_eq!(second.cover(front, CoverSize::Thumbnail).unwrap(), thumb);
    assert_eq!(
        &second.cover(front, CoverSize::Original).unwrap()[..],
        &lib.front[..]
    );
    // Without a disk cache and without the origin there is nothing.
    let bare = Covers::new(lib.catalog.clone(), Arc::default(), None);
    assert_eq!(bare.cover(front, CoverSize::Original), None);
}

#[test]
fn covers_none_is_cached_until_the_tracks_change() {
    if !tools_available() {
        return;
    }
    let lib = Library::new();
    let covers = lib.covers(lib.table());
    let bare = lib.album("Bare");
    assert_eq!(covers.cover(bare, CoverSize::Original), None);
    let image = picture(&lib.music.join("Bare/folder.png"), 40, 40, "white");
    assert!(!art::is_jpeg(&image));
    assert_eq!(
        covers.cover(bare, CoverSize::Original),
        None,
        "the empty answer is cached"
    );
    // A track changes (new mtime): the folder is looked at again.
    let t = lib.music.join("Bare/01.flac");
    let f = std::fs::File::options().write(true).open(&t).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    lib.rescan();
    let bare = lib.album("Bare");
    let original = covers
        .cover(bare, CoverSize::Original)
        .expect("folder.png now");
    assert_eq!(dimensions(&original), (40, 40));
}

/// The local origin without its local paths, as a remote origin is seen;
/// counts the bytes read.
struct AsRemote {
    inner: LocalOrigin,
    read: AtomicU64,
}

impl Origin for AsRemote {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Sftp
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn list(&self) -> musicfs_origins::Result<Vec<Entry>> {
        self.inner.list()
    }
    fn stat(&self, rel_path: &[u8]) -> musicfs_origins::Result<Entry> {
        self.inner.stat(rel_path)
    }
    fn read_at(
        &self,
        rel_path: &[u8],
        offset: u64,
        buf: &mut [u8],
    ) -> musicfs_origins::Result<usize> {
        let n = self.inner.read_at(rel_path, offset, buf)?;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

#[test]
fn covers_from_a_remote_origin_read_headers_and_images_only() {
    if !tools_available() {
        return;
    }
    let lib = Library::new();
    let remote = Arc::new(AsRemote {
        inner: LocalOrigin::new("local", &lib.music).unwrap(),
        read: AtomicU64::new(0),
    });
    let id = lib.scanner.targets()[0].id;
    let table: OriginTable = Arc::default();
    table
        .write()
        .unwrap()
        .insert(id, remote.clone() as Arc<dyn Origin>);
    let covers = Covers::new(lib.catalog.clone(), table, None);

    let front = lib.album("Front");
    let original = covers.cover(front, CoverSize::Original).unwrap();
    assert_eq!(&original[..], &lib.front[..]);
    let track = std::fs::metadata(lib.music.join("Front/02.flac"))
        .unwrap()
        .len();
    let read = remote.read.load(Ordering::SeqCst);
    assert!(
        read < lib.front.len() as u64 + 256 * 1024 && read < track / 2,
        "read {read} bytes of a {track}-byte track for a {}-byte picture",
        lib.front.len()
    );

    let beside = lib.album("Beside");
    let original = covers.cover(beside, CoverSize::Original).unwrap();
    assert_eq!(&original[..], &lib.beside[..]);
    assert_eq!(covers.cover(lib.album("Bare"), CoverSize::Original), None);
}

#[test]
fn covers_memory_lru_stays_in_budget() {
    let mut m = Memory::default();
    let big: Arc<[u8]> = vec![1u8; (MEMORY_BUDGET / 5) as usize].into();
    for dir in 0..10u64 {
        m.put((dir, CoverSize::Original), 7, Some(big.clone()), None);
        assert!(m.bytes <= MEMORY_BUDGET);
    }
    assert_eq!(m.entries.len(), 5);
    // The oldest went first; a read keeps an entry young.
    assert!(m.get((4, CoverSize::Original), 7).is_none());
    assert!(m.get((5, CoverSize::Original), 7).is_some());
    m.put((10, CoverSize::Original), 7, Some(big.clone()), None);
    assert!(m.get((5, CoverSize::Original), 7).is_some());
    assert!(m.get((6, CoverSize::Original), 7).is_none());
    // Another fingerprint is a miss; an expired entry too.
    assert!(m.get((5, CoverSize::Original), 8).is_none());
    m.put((11, CoverSize::Medium), 7, None, Some(Instant::now()));
    assert!(m.get((11, CoverSize::Medium), 7).is_none());
}

/// A 3000×3000 embedded cover: first answer (extract and render all three
/// renditions), from memory, and after a restart from disk.
#[test]
fn covers_timing_of_a_large_cover() {
    if !tools_available() {
        return;
    }
    let lib = Library::new();
    let pics = lib._tmp.path().join("pics");
    picture(&pics.join("big.jpg"), 3000, 3000, "teal");
    track(
        &lib.music.join("Big/01.flac"),
        "Big",
        1,
        Some(&pics.join("big.jpg")),
    );
    lib.rescan();
    let big = lib.album("Big");
    let time = |covers: &Covers, size| {
        let t = Instant::now();
        let c = covers.cover(big, size).expect("a cover");
        (t.elapsed(), c)
    };
    let covers = lib.covers(lib.table());
    let (cold, thumb) = time(&covers, CoverSize::Thumbnail);
    assert_eq!(dimensions(&thumb), (200, 200));
    let (warm, _) = time(&covers, CoverSize::Thumbnail);
    let restarted = lib.covers(lib.table());
    let (disk, again) = time(&restarted, CoverSize::Thumbnail);
    assert_eq!(again, thumb);
    eprintln!(
        "MEASURED cover 3000x3000: cold {cold:?}, memory {warm:?}, disk after restart {disk:?}"
    );
    assert!(
        warm * 10 < cold && disk * 10 < cold,
        "caches are not faster"
    );
}
