//! beets import and catalog export through a real mount: a real beets
//! library (`beet import -A -C -W` over a copy of the corpus) whose tags
//! were changed in beets' database only (`beet modify -W`) is imported
//! with `musicfs import --beets`; the mount then shows the tracks under
//! their new album with the new genre in the served bytes, the origin
//! files stay byte-identical, a second import changes nothing, and the
//! JSON and CSV exports list the new values.
use musicfs_tests::{corpus, note, require_fuse, tools, CorpusFile, Env};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const ALBUM: &str = "Homogenic";
const NEW_ALBUM: &str = "Homogenic (Remastered)";
const NEW_GENRE: &str = "Art Pop";

/// `beet ARGS` with its configuration and state inside `home`.
fn beet(home: &Path, args: &[&str]) {
    let out = Command::new("beet")
        .env("BEETSDIR", home)
        .arg("-d")
        .arg(home.join("lib"))
        .arg("-l")
        .arg(home.join("library.db"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run beet");
    assert!(
        out.status.success(),
        "beet {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The numbers of `musicfs import`'s summary line.
fn summary(stdout: &[u8]) -> (u64, u64, u64, u64) {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find(|l| l.contains("beets items"))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(n.len() >= 4, "summary {line:?}");
    (n[0], n[1], n[2], n[3])
}

#[test]
fn beets_import_retags_through_the_mount_and_export_lists_it() {
    require_fuse!();
    if tools::which("beet").is_none() {
        note("SKIPPED beets import: `beet` is not installed (scripts/setup.sh installs beets)");
        return;
    }
    let env = Env::new();
    let lib = corpus().copy_to(&env.path().join("library"));
    let album: Vec<&CorpusFile> = lib
        .audio()
        .filter(|f| f.tag("album") == Some(ALBUM))
        .collect();
    assert!(album.len() >= 2, "the corpus has the {ALBUM} album");
    let before: Vec<String> = album
        .iter()
        .map(|f| tools::sha256sum(&lib.origin_path(f)))
        .collect();

    let home = env.path().join("beets");
    std::fs::create_dir_all(&home).expect("beets dir");
    let lib_dir = lib.dir.to_str().expect("utf-8");
    beet(&home, &["import", "-A", "-C", "-W", "-q", lib_dir]);
    let genre = format!("genre={NEW_GENRE}");
    let new_album = format!("album={NEW_ALBUM}");
    let query = format!("album:{ALBUM}");
    beet(&home, &["modify", "-y", "-W", &query, &genre, &new_album]);
    let db = home.join("library.db");
    let db = db.to_str().expect("utf-8");

    let m = env.mount(&lib.dir, &[]);
    env.wait_scans(1);
    // beets' own import fills in what the files lack (an albumartist, the
    // compilation flag of a Various Artists folder): those tracks differ
    // too, so the album is a lower bound, and the dry run predicts the
    // real run exactly.
    let dry = env.run_ok(&["import", "--beets", db, "--dry-run"]);
    let (items, matched, _, would) = summary(&dry.stdout);
    let first = env.run_ok(&["import", "--beets", db]);
    let report = String::from_utf8_lossy(&first.stdout).into_owned();
    note(&format!("musicfs import --beets: {report}"));
    let (items2, matched2, unmatched, changed) = summary(&first.stdout);
    assert_eq!((items2, matched2), (items, matched));
    assert_eq!(items, matched + unmatched);
    assert!(
        matched >= lib.audio().filter(|f| !f.hostile).count() as u64,
        "beets' items match catalogued files: {report}"
    );
    assert_eq!(changed, would, "the dry run predicted the import: {report}");
    assert!(changed >= album.len() as u64, "{report}");

    // Tracks beets agrees with are still served as their original bytes.
    let agreed: Vec<&CorpusFile> = lib
        .audio()
        .filter(|f| {
            f.predictable()
                && f.tag("albumartist").is_some()
                && f.tag("compilation").is_none()
                && f.tag("album") != Some(ALBUM)
        })
        .collect();
    assert!(
        !agreed.is_empty(),
        "the corpus has tracks beets agrees with"
    );
    for f in &agreed {
        let served = m.root().join(f.default_path());
        assert_eq!(
            tools::sha256sum(&served),
            f.sha256,
            "{} is served untouched",
            served.display()
        );
    }

    for (f, sha) in album.iter().zip(&before) {
        let mut edited = (*f).clone();
        edited.tags.insert("album".into(), NEW_ALBUM.into());
        let served = m.root().join(edited.default_path());
        assert!(
            served.is_file(),
            "{} is served at {}",
            f.path,
            served.display()
        );
        let old = m.root().join(f.default_path());
        assert!(!old.exists(), "{} left the old album folder", old.display());
        let tags = tools::mutagen_tags(&served);
        assert_eq!(
            tags.get("genre").map(String::as_str),
            Some(NEW_GENRE),
            "{}",
            served.display()
        );
        assert_eq!(tags.get("album").map(String::as_str), Some(NEW_ALBUM));
        assert_eq!(
            tags.get("title"),
            f.tags.get("title"),
            "untouched tags stay"
        );
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&served)
            .args(["-f", "null", "-"])
            .output()
            .expect("run ffmpeg");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{} decodes: {}",
            served.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            &tools::sha256sum(&lib.origin_path(f)),
            sha,
            "{} untouched",
            f.path
        );
    }

    let again = env.run_ok(&["import", "--beets", db]);
    assert_eq!(
        summary(&again.stdout).3,
        0,
        "a second import changes nothing"
    );

    let json_path = env.path().join("catalog.json");
    env.run_ok(&[
        "export",
        "--format",
        "json",
        "-o",
        json_path.to_str().unwrap(),
    ]);
    let json: Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("export written")).expect("JSON");
    let rows = json.as_array().expect("an array of files");
    for f in &album {
        let row = rows
            .iter()
            .find(|r| r["origin_path"] == f.path.as_str())
            .unwrap_or_else(|| panic!("{} is exported", f.path));
        assert_eq!(row["tags"]["album"], NEW_ALBUM);
        assert_eq!(row["tags"]["genre"], NEW_GENRE);
        let path = row["path"].as_str().expect("a virtual path");
        assert!(path.contains(NEW_ALBUM), "{path}");
        assert!(m.root().join(path).is_file(), "{path} is in the mount");
        assert_eq!(
            row["size"].as_u64(),
            Some(std::fs::metadata(m.root().join(path)).expect("stat").len()),
            "the exported size is the served size"
        );
    }

    let csv_path = env.path().join("catalog.csv");
    env.run_ok(&[
        "export",
        "--format",
        "csv",
        "-o",
        csv_path.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv_path).expect("csv written");
    let header: Vec<&str> = text.lines().next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (album_col, genre_col, origin_col) = (col("album"), col("genre"), col("origin_path"));
    for f in &album {
        let line = text
            .lines()
            .find(|l| l.contains(&f.path))
            .unwrap_or_else(|| panic!("{} in the CSV", f.path));
        // These rows hold no quotes or commas inside fields.
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[origin_col], f.path);
        assert_eq!(cells[album_col], NEW_ALBUM);
        assert_eq!(cells[genre_col], NEW_GENRE);
    }
    assert_eq!(
        text.lines().count() - 1,
        rows.len(),
        "CSV and JSON list the same files"
    );
}
