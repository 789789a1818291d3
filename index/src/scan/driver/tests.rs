//! The driver against a real catalog and real files in a tempdir.
use super::*;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[test]
fn sidecars_are_recognised_by_extension_only() {
    assert!(is_sidecar(b"a/b/cover.JPG"));
    assert!(is_sidecar(b"rip.log"));
    assert!(!is_sidecar(b"a.b/track"));
    assert!(!is_sidecar(b"a/song.flac"));
    assert!(!is_sidecar(b"a/song.weird"));
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    catalog: Catalog,
    origin: OriginId,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("music");
    std::fs::create_dir_all(&root).unwrap();
    let catalog = Catalog::open(&tmp.path().join("catalog.db")).unwrap();
    let origin = catalog.ensure_origin("music", "local", "/music").unwrap();
    Fixture {
        _tmp: tmp,
        root,
        catalog,
        origin,
    }
}

impl Fixture {
    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// The origin's listing, as the local origin would give it.
    fn entries(&self) -> Vec<(Vec<u8>, Stamp)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(Vec<u8>, Stamp)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let md = e.metadata().unwrap();
                if md.is_dir() {
                    walk(root, &e.path(), out);
                } else {
                    let rel = e
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec();
                    let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
                    out.push((
                        rel,
                        Stamp {
                            size: md.len(),
                            mtime_ns,
                        },
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out
    }

    fn open(&self) -> impl Fn(&[u8], &Stamp) -> std::io::Result<Box<dyn ReadSeek>> + Sync + '_ {
        move |rel: &[u8], _: &Stamp| {
            let f = std::fs::File::open(self.root.join(std::ffi::OsStr::from_bytes(rel)))?;
            Ok(Box::new(f) as Box<dyn ReadSeek>)
        }
    }

    fn scan(&self, opts: &ScanOptions, cancel: bool) -> (ScanReport, Vec<ScanProgress>) {
        let seen = Mutex::new(Vec::new());
        let progress = |p: &ScanProgress| seen.lock().unwrap().push(p.clone());
        let cancel = AtomicBool::new(cancel);
        let report = scan_origin(
            &self.catalog,
            self.origin,
            self.entries(),
            &self.open(),
            opts,
            &progress,
            &cancel,
        )
        .unwrap();
        (report, seen.into_inner().unwrap())
    }

    fn record(&self, rel: &str) -> Option<crate::FileRecord> {
        let id = self
            .catalog
            .file_id_by_path(self.origin, rel.as_bytes())
            .unwrap()?;
        self.catalog.file(id).unwrap()
    }
}

fn flac_bytes() -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.flac");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args([
            "-i",
            "sine=duration=0.2",
            "-c:a",
            "flac",
            "-metadata",
            "title=T",
        ])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => Some(std::fs::read(out).unwrap()),
        _ => {
            eprintln!("SKIPPED: ffmpeg is not installed; driver tests with real audio need it");
            None
        }
    }
}

#[test]
fn bad_files_are_errors_sidecars_skipped_and_nothing_aborts() {
    let fx = fixture();
    fx.write("empty.flac", b"");
    fx.write("junk.mp3", &b"not audio at all\n".repeat(50));
    fx.write("noext", b"\x00\x01\x02\x03");
    fx.write("Album/cover.jpg", b"\xFF\xD8\xFF\xE0 jpeg-ish");
    fx.write("Album/rip.log", b"log");
    let (r, progress) = fx.scan(&ScanOptions::default(), false);
    assert_eq!(
        (r.seen, r.skipped, r.errors, r.changed, r.unchanged),
        (5, 2, 3, 0, 0)
    );
    assert!(!r.cancelled);
    assert_eq!(progress.len(), 3);
    assert_eq!(progress.last().unwrap().done, 3);
    assert_eq!(progress.last().unwrap().total, 3);
    let errors = fx.catalog.scan_errors(10).unwrap();
    assert_eq!(errors.len(), 3);
    let msg = |p: &[u8]| {
        errors
            .iter()
            .find(|e| e.rel_path == p)
            .unwrap()
            .message
            .clone()
    };
    assert_eq!(msg(b"empty.flac"), "zero-byte file");
    assert!(
        msg(b"junk.mp3").contains("not an audio file"),
        "{}",
        msg(b"junk.mp3")
    );

    // Errors are stamped too: an unchanged bad file is not reread.
    let (r, progress) = fx.scan(&ScanOptions::default(), false);
    assert_eq!((r.errors, r.changed, r.unchanged), (0, 0, 3));
    assert!(progress.is_empty());
    assert_eq!(fx.catalog.counts().unwrap().scan_errors, 3);
}

#[test]
fn unopenable_listed_file_is_a_scan_error() {
    let fx = fixture();
    let entries = vec![(
        b"gone.flac".to_vec(),
        Stamp {
            size: 10,
            mtime_ns: 1,
        },
    )];
    let cancel = AtomicBool::new(false);
    let r = scan_origin(
        &fx.catalog,
        fx.origin,
        entries,
        &fx.open(),
        &ScanOptions::default(),
        &|_| {},
        &cancel,
    )
    .unwrap();
    assert_eq!(r.errors, 1);
    let e = &fx.catalog.scan_errors(1).unwrap()[0];
    assert!(e.message.starts_with("cannot open"), "{}", e.message);
}

#[test]
fn incremental_rescan_reads_only_changed_and_removes_vanished() {
    let Some(flac) = flac_bytes() else { return };
    let fx = fixture();
    for i in 0..7 {
        fx.write(&format!("A/{i}.flac"), &flac);
    }
    fx.write("bad.flac", &flac[..60]);
    let opts = ScanOptions {
        threads: 3,
        batch_size: 2,
        ..ScanOptions::default()
    };
    let (r, _) = fx.scan(&opts, false);
    assert_eq!((r.seen, r.changed, r.errors, r.removed), (8, 7, 1, 0));
    let rec = fx.record("A/3.flac").unwrap();
    assert_eq!(rec.format, "flac");
    assert!(rec.audio_offset > 42 && rec.audio_offset + rec.audio_length == flac.len() as u64);
    let id = fx
        .catalog
        .file_id_by_path(fx.origin, b"A/3.flac")
        .unwrap()
        .unwrap();
    assert!(fx
        .catalog
        .tags(id)
        .unwrap()
        .contains(&("title".into(), "T".into())));

    // Fix the bad file, change one good file, delete another.
    fx.write("bad.flac", &flac);
    let mut longer = flac.clone();
    longer.extend_from_slice(&[0u8; 7]);
    fx.write("A/1.flac", &longer);
    std::fs::remove_file(fx.root.join("A/6.flac")).unwrap();
    let (r, progress) = fx.scan(&opts, false);
    assert_eq!(
        (r.seen, r.changed, r.errors, r.unchanged, r.removed),
        (7, 2, 0, 5, 1)
    );
    assert_eq!(progress.len(), 2);
    let mut currents: Vec<String> = progress.iter().map(|p| p.current.clone()).collect();
    currents.sort();
    assert_eq!(currents, vec!["A/1.flac", "bad.flac"]);
    assert!(fx.record("A/6.flac").is_none());
    assert_eq!(
        fx.record("A/1.flac").unwrap().stamp.size,
        longer.len() as u64
    );
    let counts = fx.catalog.counts().unwrap();
    assert_eq!((counts.files, counts.scan_errors), (7, 0));
}

#[test]
fn cancelled_scan_stops_between_files_and_says_so() {
    let Some(flac) = flac_bytes() else { return };
    let fx = fixture();
    fx.write("a.flac", &flac);
    fx.write("b.flac", &flac);
    let (r, progress) = fx.scan(&ScanOptions::default(), true);
    assert!(r.cancelled);
    assert_eq!(r.changed, 0);
    assert!(progress.is_empty());
    // The next scan reads what the cancelled one did not.
    let (r, _) = fx.scan(&ScanOptions::default(), false);
    assert!(!r.cancelled);
    assert_eq!(r.changed, 2);
}

#[test]
fn scan_paths_upserts_and_removes_without_full_listing() {
    let Some(flac) = flac_bytes() else { return };
    let fx = fixture();
    fx.write("a.flac", &flac);
    fx.write("b.flac", &flac);
    fx.scan(&ScanOptions::default(), false);
    fx.write("c.flac", &flac);
    fx.write("c.jpg", b"img");
    let stamp_of = |rel: &str| {
        fx.entries()
            .into_iter()
            .find(|(p, _)| p == rel.as_bytes())
            .unwrap()
    };
    let r = scan_paths(
        &fx.catalog,
        fx.origin,
        vec![stamp_of("c.flac"), stamp_of("c.jpg")],
        vec![b"a.flac".to_vec()],
        &fx.open(),
        &ScanOptions::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((r.seen, r.changed, r.skipped, r.removed), (2, 1, 1, 1));
    assert!(fx.record("a.flac").is_none());
    assert!(fx.record("b.flac").is_some());
    assert!(fx.record("c.flac").is_some());
}

#[test]
fn a_panic_while_reading_one_file_costs_only_that_file() {
    let fx = fixture();
    fx.write("boom.mp3", b"x");
    fx.write("empty.flac", b"");
    let open = |rel: &[u8], st: &Stamp| -> std::io::Result<Box<dyn ReadSeek>> {
        if rel == b"boom.mp3" {
            panic!("test panic in open");
        }
        fx.open()(rel, st)
    };
    let cancel = AtomicBool::new(false);
    let r = scan_origin(
        &fx.catalog,
        fx.origin,
        fx.entries(),
        &open,
        &ScanOptions::default(),
        &|_| {},
        &cancel,
    )
    .unwrap();
    assert_eq!(r.errors, 2);
    let errors = fx.catalog.scan_errors(10).unwrap();
    let boom = errors.iter().find(|e| e.rel_path == b"boom.mp3").unwrap();
    assert_eq!(boom.message, "scanner panicked");
}

#[test]
fn failures_after_a_cancel_are_not_recorded() {
    let fx = fixture();
    fx.write("a.mp3", b"not really audio");
    let cancel = AtomicBool::new(false);
    // The origin "goes down": the open sets the cancel before failing, as
    // the daemon's guarded reader does.
    let open = |_: &[u8], _: &Stamp| -> std::io::Result<Box<dyn ReadSeek>> {
        cancel.store(true, Ordering::SeqCst);
        Err(std::io::Error::other("origin unavailable"))
    };
    let r = scan_paths(
        &fx.catalog,
        fx.origin,
        vec![(
            b"a.mp3".to_vec(),
            Stamp {
                size: 16,
                mtime_ns: 1,
            },
        )],
        vec![],
        &open,
        &ScanOptions::default(),
        &cancel,
    )
    .unwrap();
    assert_eq!(r.errors, 0);
    assert!(fx.catalog.scan_errors(10).unwrap().is_empty());
}
