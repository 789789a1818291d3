//! Test helpers for the container tests: real files made by ffmpeg and
//! tagged by mutagen, served bytes materialised from a plan, and the real
//! tools' view of them.
use super::super::{plan, Original, Plan, ReadAt, TagEdit};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct FileSrc(pub std::fs::File);

impl ReadAt for FileSrc {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_at(buf, offset)
    }
}

/// An original held in memory.
pub struct Slice<'a>(pub &'a [u8]);

impl ReadAt for Slice<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

pub fn edit(key: &str, values: &[&str]) -> TagEdit {
    TagEdit {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// Runs a command, panicking with its stderr if it fails; returns stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A 3-second sine encoded with `codec` into `dir/name`, plus `extra` ffmpeg args.
pub fn encode(dir: &Path, name: &str, codec: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:duration=3")
        .args(["-c:a", codec])
        .args(extra)
        .arg(&path);
    run(&mut cmd);
    path
}

/// Runs a Python snippet with `f` bound to `mutagen.File(path)`.
pub fn mutagen(path: &Path, snippet: &str) {
    let script = format!("import mutagen, sys\nf = mutagen.File(sys.argv[1])\n{snippet}\n");
    run(Command::new("python3").arg("-c").arg(script).arg(path));
}

/// The scanner's view of where the body starts, as the catalog would hold it.
pub fn original<'a>(path: &Path, format: &'a str) -> Original<'a> {
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

pub fn synthesize(path: &Path, format: &str, edits: &[TagEdit]) -> crate::Result<Plan> {
    let o = original(path, format);
    plan(o, &mut FileSrc(std::fs::File::open(path).unwrap()), edits)
}

/// The served bytes, read through `Plan::read_at` in `step`-byte reads.
pub fn materialise(plan: &Plan, path: &Path, step: usize) -> Vec<u8> {
    let mut src = FileSrc(std::fs::File::open(path).unwrap());
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

/// `ffmpeg -v error` decoding the file: its complaints (empty = clean).
pub fn decode_errors(path: &Path) -> String {
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
pub fn pcm(path: &Path) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-"]))
}

/// ffprobe's format-level tags, keys lower-cased.
pub fn ffprobe_tags(path: &Path) -> Vec<(String, String)> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format_tags:stream_tags",
            "-of",
            "flat",
        ])
        .arg(path));
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let key = k.rsplit('.').next()?.to_ascii_lowercase();
            Some((key, v.trim_matches('"').to_string()))
        })
        .collect()
}

pub fn ffprobe_tag(path: &Path, key: &str) -> Option<String> {
    ffprobe_tags(path)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// lofty's view of the tags: (ItemKey debug name, text) pairs of the primary tag.
pub fn lofty_get(path: &Path, key: lofty::tag::ItemKey) -> Vec<String> {
    use lofty::prelude::TaggedFileExt;
    let f = lofty::read_from_path(path).expect("lofty reads the served file");
    let tag = f.primary_tag().expect("a primary tag");
    tag.get_strings(key).map(str::to_string).collect()
}
