//! Helpers for the container tests: real files made by ffmpeg and tagged
//! by metaflac or mutagen, served through a plan, and read back by the
//! scanner (lofty) and the real tools.
use super::{plan, Original, Plan, Slice, TagEdit};
use crate::scan::ScannedFile;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(super) use crate::testutil::edit;

/// Runs a command, panicking with its stderr if it fails; returns stdout.
pub(super) fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run`] for tools that print text.
pub(super) fn run_text(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd)).into_owned()
}

/// ffmpeg rendering the lavfi source `source` with `args` into `path`.
fn lavfi(source: &str, args: &[&str], path: &Path) {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", source])
        .args(args)
        .arg(path));
}

/// A 3-second sine encoded with `codec` into `dir/name`, plus `extra` ffmpeg args.
pub(super) fn encode(dir: &Path, name: &str, codec: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["-c:a", codec];
    args.extend_from_slice(extra);
    lavfi("sine=frequency=440:duration=3", &args, &path);
    path
}

/// A small picture for embedding, `dir/name`; its extension says the format.
pub(super) fn picture(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    lavfi("color=c=red:s=64x64", &["-frames:v", "1"], &path);
    path
}

/// Runs python3 (with mutagen installed): `snippet` sees `path`.
pub(super) fn python(path: &Path, snippet: &str) -> String {
    let script = format!("import sys\npath = sys.argv[1]\n{snippet}\n");
    run_text(Command::new("python3").arg("-c").arg(script).arg(path))
}

/// Runs a Python snippet with `f` bound to `mutagen.File(path)`.
pub(super) fn mutagen(path: &Path, snippet: &str) {
    python(
        path,
        &format!("import mutagen\nf = mutagen.File(path)\n{snippet}"),
    );
}

/// Writes `bytes` to `dir/name`.
pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// What the scanner (lofty) reads from these bytes.
pub(super) fn scan(bytes: &[u8], name: &str) -> ScannedFile {
    let mut cursor = std::io::Cursor::new(bytes);
    crate::scan::probe(&mut cursor, bytes.len() as u64, name).expect("scan")
}

/// All values of `key` in scanned tags.
pub(super) fn values(s: &ScannedFile, key: &str) -> Vec<String> {
    s.tags
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The catalog's view of an original, as the scanner finds its audio.
pub(super) fn original<'a>(bytes: &[u8], format: &'a str, name: &str) -> Original<'a> {
    let s = scan(bytes, name);
    Original {
        format,
        size: bytes.len() as u64,
        audio_offset: s.audio_offset,
        audio_length: s.audio_length,
    }
}

/// The catalog's view of the Ogg or MP4 file at `path`, with the body
/// found independently of the scanner: Ogg's after its header pages,
/// MP4's the whole file.
pub(super) fn file_original<'a>(path: &Path, format: &'a str) -> Original<'a> {
    let size = std::fs::metadata(path).unwrap().len();
    let audio_offset = match format {
        "ogg" | "opus" => ogg_body_offset(&std::fs::read(path).unwrap()),
        _ => 0,
    };
    Original {
        format,
        size,
        audio_offset,
        audio_length: size - audio_offset,
    }
}

/// The first page after the header packets (3 for Vorbis, 2 for Opus).
fn ogg_body_offset(b: &[u8]) -> u64 {
    let needed = if b[28..].starts_with(b"\x01vorbis") {
        3
    } else {
        2
    };
    let (mut pos, mut done) = (0usize, 0);
    loop {
        let n = usize::from(b[pos + 26]);
        let lacing = &b[pos + 27..pos + 27 + n];
        done += lacing.iter().filter(|&&l| l < 255).count();
        pos += 27 + n + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
        if done >= needed {
            return pos as u64;
        }
    }
}

pub(super) fn synthesize(bytes: &[u8], o: Original<'_>, edits: &[TagEdit]) -> crate::Result<Plan> {
    plan(o, &mut Slice(bytes), edits)
}

/// [`synthesize`] for the file at `path`, seen as [`file_original`] sees it.
pub(super) fn synthesize_file(path: &Path, format: &str, edits: &[TagEdit]) -> crate::Result<Plan> {
    synthesize(
        &std::fs::read(path).unwrap(),
        file_original(path, format),
        edits,
    )
}

/// The served bytes, read through `Plan::read_at` in `step`-byte reads.
pub(super) fn serve(plan: &Plan, original: &[u8], step: usize) -> Vec<u8> {
    let mut src = Slice(original);
    let total = plan.len() as usize;
    let mut out = vec![0u8; total];
    let mut at = 0;
    while at < total {
        let end = (at + step).min(total);
        let n = plan
            .read_at(&mut src, at as u64, &mut out[at..end])
            .unwrap();
        assert_eq!(n, end - at, "short read at {at} of {total}");
        at = end;
    }
    out
}

/// The file served from the original at `src`, written to `dir/name`.
pub(super) fn served(dir: &Path, src: &Path, plan: &Plan, name: &str) -> PathBuf {
    // An odd read size crosses page, box and segment boundaries anywhere.
    let bytes = serve(plan, &std::fs::read(src).unwrap(), 7919);
    assert_eq!(bytes.len() as u64, plan.len());
    write(dir, name, &bytes)
}

/// `ffmpeg -v error` decoding the file: its complaints (empty = clean).
pub(super) fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg failed on {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The decoded samples.
pub(super) fn pcm(path: &Path) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-"]))
}

/// ffprobe's format-level tags, keys lower-cased.
pub(super) fn ffprobe_tags(path: &Path) -> Vec<(String, String)> {
    let out = run_text(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format_tags:stream_tags",
                "-of",
                "flat",
            ])
            .arg(path),
    );
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let key = k.rsplit('.').next()?.to_ascii_lowercase();
            Some((key, v.trim_matches('"').to_string()))
        })
        .collect()
}

pub(super) fn ffprobe_tag(path: &Path, key: &str) -> Option<String> {
    ffprobe_tags(path)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// lofty's view of the tags: the values of `key` in the primary tag.
pub(super) fn lofty_get(path: &Path, key: lofty::tag::ItemKey) -> Vec<String> {
    use lofty::prelude::TaggedFileExt;
    let f = lofty::read_from_path(path).expect("lofty reads the served file");
    let tag = f.primary_tag().expect("a primary tag");
    tag.get_strings(key).map(str::to_string).collect()
}
