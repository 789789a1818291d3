//! Tag edits through a real mount: `musicfs tag set` changes what mutagen
//! and ffprobe read, the synthesized file decodes to the original's
//! samples, its size is exact, the origin stays byte-identical, and
//! `tag reset` brings back the original bytes and passthrough.
use musicfs_tests::{corpus, fsutil, require_fuse, tools, CorpusFile, Env};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mounted path of each corpus audio file, found by content.
fn mounted_by_origin(root: &Path) -> BTreeMap<String, PathBuf> {
    let by_sha: BTreeMap<String, PathBuf> = fsutil::files(root)
        .into_values()
        .map(|f| (tools::sha256sum(&f.path), f.path))
        .collect();
    corpus()
        .audio()
        .filter_map(|f| Some((f.path.clone(), by_sha.get(&f.sha256)?.clone())))
        .collect()
}

/// The corpus file of `format` the tests edit: ordinary (not hostile, no
/// collision), with a year to remove.
fn sample(format: &str) -> &'static CorpusFile {
    corpus()
        .audio()
        .find(|f| {
            f.format == format && !f.hostile && f.collision.is_none() && f.tag("title").is_some()
        })
        .unwrap_or_else(|| panic!("the corpus has no plain {format} file"))
}

/// `musicfs tag ARGS`; the paths it prints (the edited tracks' new paths).
fn tag_ok(env: &Env, args: &[&str]) -> Vec<PathBuf> {
    let mut all = vec!["tag"];
    all.extend_from_slice(args);
    let out = env.run_ok(&all);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(PathBuf::from)
        .collect()
}

fn show(env: &Env, path: &Path) -> Value {
    let out = env.run_ok(&["tag", "show", path.to_str().unwrap(), "--json"]);
    serde_json::from_slice(&out.stdout).expect("tag show --json prints JSON")
}

/// Decoded samples (s16le, every audio stream) and ffmpeg's complaints.
fn decode(path: &Path) -> (String, String) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}",
        path.display()
    );
    let digest = {
        use std::io::Write;
        let mut child = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run sha256sum");
        child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
        let o = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    (digest, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `ffmpeg -v error -i F -f null -` prints nothing for a clean file.
fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg reports errors decoding {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    if path.extension().is_some_and(|e| e == "flac") {
        let out = Command::new("flac")
            .args(["-t", "-s"])
            .arg(path)
            .output()
            .expect("run flac");
        assert!(
            out.status.success(),
            "flac -t {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn counter(env: &Env, key: &str) -> u64 {
    env.status()[key].as_u64().unwrap_or(0)
}

/// Edits title/artist/genre and removes the year of the `format` sample,
/// checks everything a player would see, then resets it.
fn edit_roundtrip(format: &str) {
    let c = corpus();
    let f = sample(format);
    let origin = c.origin_path(f);
    let origin_sha = tools::sha256sum(&origin);
    assert_eq!(origin_sha, f.sha256, "the corpus is as generated");
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let before = mounted_by_origin(m.root())
        .remove(&f.path)
        .unwrap_or_else(|| panic!("{} is not served", f.path));
    let had_year = tools::mutagen_tags(&before).contains_key("year");

    let title = format!("Edited {format} title");
    let mut args = vec![
        "set".to_string(),
        before.to_str().unwrap().to_string(),
        format!("title={title}"),
        "artist=Overlay Artist".into(),
        "genre=Overlay Genre".into(),
    ];
    if had_year {
        args.push("year=".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let moved = tag_ok(&env, &args);
    assert_eq!(moved.len(), 1, "one track changed: {moved:?}");
    let edited = &moved[0];
    assert!(
        edited.starts_with(m.root()) && edited.is_file(),
        "the edited track is at {}",
        edited.display()
    );
    let name = edited.file_name().unwrap().to_string_lossy();
    assert!(name.contains(&title), "the path follows the title: {name}");
    assert!(
        !before.exists() || before == *edited,
        "the old path is gone"
    );

    // Independent readers see the edits.
    let mutagen = tools::mutagen_tags(edited);
    let probed = tools::ffprobe_tags(edited);
    for (key, want) in [
        ("title", title.as_str()),
        ("artist", "Overlay Artist"),
        ("genre", "Overlay Genre"),
    ] {
        assert_eq!(
            mutagen.get(key).map(String::as_str),
            Some(want),
            "mutagen {key}: {mutagen:?}"
        );
        assert_eq!(
            probed.get(key).map(String::as_str),
            Some(want),
            "ffprobe {key}: {probed:?}"
        );
    }
    if had_year {
        assert!(!mutagen.contains_key("year"), "year removed: {mutagen:?}");
        assert!(!probed.contains_key("year"), "year removed: {probed:?}");
    }
    // Tags nobody edited are carried over.
    if let Some(album) = f.tag("album") {
        assert_eq!(mutagen.get("album").map(String::as_str), Some(album));
    }

    // Exact size; clean decode; the same samples as the original.
    let daemon_before = counter(&env, "daemon_opens");
    let bytes = std::fs::read(edited).expect("read the edited track");
    assert_eq!(
        std::fs::metadata(edited).unwrap().len(),
        bytes.len() as u64,
        "reported size equals the bytes read"
    );
    assert!(
        counter(&env, "daemon_opens") > daemon_before,
        "a synthesized file is served by the daemon, not passed through"
    );
    assert_ne!(
        tools::sha256sum(edited),
        origin_sha,
        "the served bytes carry the edit"
    );
    decodes_cleanly(edited);
    let (served_pcm, _) = decode(edited);
    let (origin_pcm, _) = decode(&origin);
    assert_eq!(
        served_pcm, origin_pcm,
        "decoded samples equal the original's"
    );
    let track = show(&env, edited);
    assert_eq!(track["synthesized"], true, "{track}");
    assert_eq!(track["served_size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(track["origin_size"].as_u64(), Some(f.size));

    // The origin was never touched.
    assert_eq!(tools::sha256sum(&origin), origin_sha, "origin unchanged");

    // Reset: the original bytes, at the original path, passed through.
    let back = tag_ok(&env, &["reset", edited.to_str().unwrap()]);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0], before, "the track returns to its path");
    assert_eq!(
        tools::sha256sum(&before),
        origin_sha,
        "reset serves the original"
    );
    assert!(tools::cmp(&origin, &before));
    let pass_before = counter(&env, "passthrough_opens");
    std::fs::read(&before).unwrap();
    assert!(
        counter(&env, "passthrough_opens") > pass_before,
        "a reset file passes through again: {}",
        env.status()
    );
    assert_eq!(show(&env, &before)["synthesized"], false);
    drop(m);
}

#[test]
fn flac_edits_read_back_and_reset() {
    require_fuse!();
    edit_roundtrip("flac");
}

#[test]
fn mp3_edits_read_back_and_reset() {
    require_fuse!();
    edit_roundtrip("mp3");
}

#[test]
fn ogg_vorbis_edits_read_back_and_reset() {
    require_fuse!();
    edit_roundtrip("ogg");
}

#[test]
fn opus_edits_read_back_and_reset() {
    require_fuse!();
    edit_roundtrip("opus");
}

#[test]
fn m4a_edits_read_back_and_reset() {
    require_fuse!();
    edit_roundtrip("m4a");
}

/// An album edit moves the track; a hostile album and a 10 KB title stay
/// inside the mount as sanitised components; untouched files keep passing
/// through; bad requests are refused with messages that say why.
#[test]
fn edits_move_tracks_and_hostile_values_stay_inside() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let served = mounted_by_origin(m.root());
    let flac = &served[&sample("flac").path];
    let mp3 = &served[&sample("mp3").path];

    let moved = tag_ok(&env, &["set", flac.to_str().unwrap(), "album=Moved Album"]);
    assert_eq!(moved.len(), 1);
    assert!(!flac.exists(), "the old path is gone: {}", flac.display());
    assert_eq!(
        moved[0].parent().unwrap().file_name().unwrap(),
        "Moved Album",
        "{}",
        moved[0].display()
    );
    assert!(moved[0].is_file());

    let long_title = "x".repeat(10 * 1024);
    let hostile = tag_ok(
        &env,
        &[
            "set",
            mp3.to_str().unwrap(),
            "album=../../etc",
            "albumartist=..",
            &format!("title={long_title}"),
        ],
    );
    assert_eq!(hostile.len(), 1);
    let p = &hostile[0];
    let rel = p.strip_prefix(m.root()).expect("stays under the mount");
    for comp in rel.components() {
        let std::path::Component::Normal(name) = comp else {
            panic!("{} has a non-normal component", p.display());
        };
        assert!(name.len() <= 255, "component of {} bytes", name.len());
        assert!(name != "." && name != "..");
    }
    assert!(p.is_file(), "{}", p.display());
    let read = tools::mutagen_tags(p);
    assert_eq!(
        read.get("title"),
        Some(&long_title),
        "the 10 KB title is served whole"
    );
    assert_eq!(read.get("album").map(String::as_str), Some("../../etc"));
    decodes_cleanly(p);

    // Untouched files still pass through.
    let other = served
        .iter()
        .find(|(origin, _)| ![&sample("flac").path, &sample("mp3").path].contains(origin))
        .map(|(_, p)| p.clone())
        .unwrap();
    let before = counter(&env, "passthrough_opens");
    std::fs::read(&other).unwrap();
    assert!(counter(&env, "passthrough_opens") > before);

    // Refusals: unknown path, a directory, no edits, a malformed edit,
    // a format without header synthesis.
    let err = |args: &[&str]| {
        let out = env.run(args);
        assert!(!out.status.success(), "musicfs {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = m.root().join("No/Such/track.flac");
    let e = err(&["tag", "set", missing.to_str().unwrap(), "title=x"]);
    assert!(e.contains("No/Such/track.flac"), "{e}");
    let dir = moved[0].parent().unwrap();
    let e = err(&["tag", "set", dir.to_str().unwrap(), "title=x"]);
    assert!(e.contains("directory"), "{e}");
    let e = err(&["tag", "set", other.to_str().unwrap()]);
    assert!(e.contains("no edits"), "{e}");
    let e = err(&["tag", "set", other.to_str().unwrap(), "title=x", "oops"]);
    assert!(e.contains("malformed"), "{e}");
    if let Some(wav) = c.audio().find(|f| f.format == "wav") {
        let wav_path = &served[&wav.path];
        let e = err(&["tag", "set", wav_path.to_str().unwrap(), "title=x"]);
        assert!(e.contains("wav"), "{e}");
        assert_eq!(show(&env, wav_path)["overlay"], serde_json::json!([]));
    }

    // Nothing in the origin changed.
    for f in c.audio() {
        assert_eq!(tools::sha256sum(&c.origin_path(f)), f.sha256, "{}", f.path);
    }
}
