//! Helpers for the FLAC and ID3 tests: real files made by ffmpeg, tagged
//! by metaflac or mutagen, served through a plan and read back by the
//! scanner (lofty) and the real tools.
use super::{plan, Original, Plan, ReadAt, TagEdit};
use crate::scan::ScannedFile;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An original held in memory.
pub(super) struct Mem(pub Vec<u8>);

impl ReadAt for Mem {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

pub(super) fn edit(key: &str, values: &[&str]) -> TagEdit {
    TagEdit {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// Runs a command; panics with its stderr when it fails. Returns stdout.
pub(super) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 2-second sine encoded by ffmpeg with `args` into `dir/name`.
pub(super) fn encode(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
        ])
        .args(args)
        .arg(&path));
    path
}

/// A small PNG for embedding.
pub(super) fn cover(dir: &Path) -> PathBuf {
    let path = dir.join("cover.png");
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=64x64",
        ])
        .args(["-frames:v", "1"])
        .arg(&path));
    path
}

/// Runs python3 with mutagen: `snippet` sees `path`.
pub(super) fn python(path: &Path, snippet: &str) -> String {
    let script = format!("import sys\npath = sys.argv[1]\n{snippet}\n");
    run(Command::new("python3").arg("-c").arg(script).arg(path))
}

/// What the scanner (lofty) reads from these bytes.
pub(super) fn scan(bytes: &[u8], name: &str) -> ScannedFile {
    let mut cursor = std::io::Cursor::new(bytes);
    crate::scan::probe(&mut cursor, bytes.len() as u64, name).expect("scan")
}

/// The catalog's view of an original: format and audio range.
pub(super) fn original<'a>(bytes: &[u8], format: &'a str, name: &str) -> Original<'a> {
    let s = scan(bytes, name);
    Original {
        format,
        size: bytes.len() as u64,
        audio_offset: s.audio_offset,
        audio_length: s.audio_length,
    }
}

pub(super) fn synthesize(bytes: &[u8], o: Original<'_>, edits: &[TagEdit]) -> crate::Result<Plan> {
    plan(o, &mut Mem(bytes.to_vec()), edits)
}

/// The served bytes, read through `Plan::read_at` in odd-sized pieces.
pub(super) fn serve(plan: &Plan, original: &[u8]) -> Vec<u8> {
    let mut src = Mem(original.to_vec());
    let total = plan.len() as usize;
    let mut out = vec![0u8; total];
    let mut at = 0;
    while at < total {
        let end = (at + 4093).min(total);
        let n = plan
            .read_at(&mut src, at as u64, &mut out[at..end])
            .unwrap();
        assert_eq!(n, end - at, "short read at {at}");
        at = end;
    }
    out
}

/// All values of `key` in scanned tags.
pub(super) fn values(s: &ScannedFile, key: &str) -> Vec<String> {
    s.tags
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// ffmpeg's complaints decoding the file (empty = clean).
pub(super) fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg failed on {path:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
