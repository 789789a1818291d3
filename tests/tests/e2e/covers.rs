//! Cover art through the mount: `cover.jpg` in album folders, from the
//! picture embedded in the tracks (compared with what mutagen extracts) or
//! from an image beside the tracks in the origin; the hidden medium and
//! thumbnail renditions are JPEGs of bounded size (measured by ffprobe);
//! an album without art has no `cover.jpg`.
use musicfs_tests::{corpus, require_fuse, Env};
use std::path::Path;
use std::process::Command;

/// The front cover (else the first picture) embedded in `track`, as
/// mutagen reads it.
fn mutagen_picture(track: &Path) -> Vec<u8> {
    let script = r#"
import sys, mutagen
from mutagen.flac import FLAC
f = mutagen.File(sys.argv[1])
pics = []
if isinstance(f, FLAC):
    pics = [(p.type, p.data) for p in f.pictures]
elif f.tags is not None and hasattr(f.tags, "getall"):
    pics = [(p.type, p.data) for p in f.tags.getall("APIC")]
elif f.tags is not None and "covr" in f.tags:
    pics = [(3, bytes(c)) for c in f.tags["covr"]]
front = [d for t, d in pics if t == 3]
sys.stdout.buffer.write((front or [d for _, d in pics])[0])
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(track)
        .output()
        .expect("run python3 with mutagen");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "mutagen found no picture in {}: {}",
        track.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (codec, width, height) of a picture, as ffprobe reads it.
fn ffprobe_picture(path: &Path) -> (String, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let s = &json["streams"][0];
    let dim = |k: &str| s[k].as_u64().unwrap_or(0) as u32;
    (
        s["codec_name"].as_str().unwrap_or("").to_string(),
        dim("width"),
        dim("height"),
    )
}

/// A real JPEG of `w`×`h` made by ffmpeg.
fn make_jpeg(path: &Path, w: u32, h: u32) -> Vec<u8> {
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(format!("testsrc=s={w}x{h}:d=1"))
        .args(["-frames:v", "1"])
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg could not make {}", path.display());
    std::fs::read(path).unwrap()
}

/// The renditions of an album folder: cover.jpg's bytes, and the largest
/// side of the medium and thumbnail JPEGs (after checking they are JPEGs).
fn renditions(dir: &Path) -> (Vec<u8>, u32, u32) {
    let original = std::fs::read(dir.join("cover.jpg"))
        .unwrap_or_else(|e| panic!("read {}/cover.jpg: {e}", dir.display()));
    let side = |name: &str| {
        let (codec, w, h) = ffprobe_picture(&dir.join(name));
        assert_eq!(codec, "mjpeg", "{name} is not a JPEG");
        assert!(w > 0 && h > 0, "{name} has no size");
        w.max(h)
    };
    (
        original,
        side(".cover-medium.jpg"),
        side(".cover-thumb.jpg"),
    )
}

#[test]
fn covers_embedded_beside_and_absent() {
    require_fuse!();
    let env = Env::new();
    let lib = corpus().copy_to(&env.path().join("music"));
    // An album with no embedded art gets an image beside its tracks, big
    // enough that both smaller renditions are resized.
    let beside = make_jpeg(
        &lib.dir.join("compilations/Summer Mix/Folder.jpg"),
        900,
        450,
    );
    let m = env.mount(&lib.dir, &[]);
    env.wait_scans(1);

    // Embedded: Björk's tracks all carry the corpus picture; the first by
    // name is the FLAC.
    let homogenic = env.mnt.join("Björk/Homogenic");
    let names: Vec<String> = std::fs::read_dir(&homogenic)
        .expect("list the album")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "cover.jpg"),
        "cover.jpg not listed in {}: {names:?}",
        homogenic.display()
    );
    let first = lib
        .audio()
        .filter(|f| f.has_art && f.path.starts_with("Bjork/Homogenic/"))
        .min_by_key(|f| f.default_path())
        .expect("the corpus has art in Homogenic");
    let embedded = mutagen_picture(&lib.origin_path(first));
    let (original, medium, thumb) = renditions(&homogenic);
    assert!(
        original == embedded,
        "cover.jpg ({} bytes) is not the picture embedded in {} ({} bytes)",
        original.len(),
        first.path,
        embedded.len()
    );
    let (_, w, h) = ffprobe_picture(&homogenic.join("cover.jpg"));
    let side = w.max(h);
    // Never upscaled: a small cover stays its size in every rendition.
    assert_eq!(medium, side.min(600));
    assert_eq!(thumb, side.min(200));

    // Beside the tracks: the file's bytes, resized for the other two.
    let summer = env.mnt.join("Various Artists/Summer Mix");
    let (original, medium, thumb) = renditions(&summer);
    assert!(original == beside, "cover.jpg is not Folder.jpg's bytes");
    assert_eq!((medium, thumb), (600, 200));
    let (_, w, h) = ffprobe_picture(&summer.join(".cover-medium.jpg"));
    assert_eq!((w, h), (600, 300), "medium keeps the aspect ratio");

    // No art anywhere: no cover at all.
    let motorhead = env.mnt.join("Motörhead/No Sleep at All");
    assert!(motorhead.is_dir(), "{} missing", motorhead.display());
    for name in ["cover.jpg", ".cover-medium.jpg", ".cover-thumb.jpg"] {
        assert!(
            !motorhead.join(name).exists(),
            "{name} exists in an album without art"
        );
    }
    // Renditions are cached apart from audio, under the cache dir.
    let art = env.path().join("xdg/cache/musicfs/art");
    let stored = art_files(&art);
    assert!(
        stored.len() >= 6,
        "expected two albums' renditions in {}",
        art.display()
    );

    // After a restart the covers come from that cache: the same bytes,
    // and not one rendition made (written) again.
    drop(m);
    let _m = env.mount(&lib.dir, &[]);
    env.wait_scans(1);
    let started = std::time::Instant::now();
    for name in ["cover.jpg", ".cover-medium.jpg", ".cover-thumb.jpg"] {
        std::fs::read(homogenic.join(name)).expect("read a cover after the restart");
    }
    let elapsed = started.elapsed();
    let (again, _, _) = renditions(&homogenic);
    assert!(again == embedded, "cover.jpg changed across a restart");
    let (again, _, _) = renditions(&summer);
    assert!(again == beside);
    assert_eq!(art_files(&art), stored, "renditions were made again");
    musicfs_tests::note(&format!(
        "MEASURED covers: one album's three renditions read after a restart (from the disk cache) in {elapsed:?}"
    ));
}

/// The art cache's files with their mtimes.
fn art_files(dir: &Path) -> std::collections::BTreeMap<String, std::time::SystemTime> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("no art cache at {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let mtime = e.metadata().unwrap().modified().unwrap();
            (e.file_name().to_string_lossy().into_owned(), mtime)
        })
        .collect()
}
