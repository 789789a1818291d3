//! The generated corpus (scripts/gen_corpus.py), its manifest, and the
//! paths the templates under test should give each file.
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What a corpus file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A real, readable audio file.
    Audio,
    /// Zero-byte, truncated, random or text content under an audio extension.
    Malformed,
    /// Not audio at all (notes.txt).
    Other,
}

#[derive(Debug, Clone)]
pub struct CorpusFile {
    /// Relative to the corpus root.
    pub path: String,
    pub format: String,
    pub ext: String,
    pub kind: Kind,
    /// Canonical keys (title, artist, album, albumartist, track, tracktotal,
    /// disc, disctotal, year, genre, compilation) as written.
    pub tags: BTreeMap<String, String>,
    pub has_art: bool,
    pub hostile: bool,
    pub collision: Option<String>,
    pub size: u64,
    pub sha256: String,
}

pub struct Corpus {
    pub dir: PathBuf,
    pub files: Vec<CorpusFile>,
}

static CORPUS: OnceLock<Corpus> = OnceLock::new();
static CORPUS_ROOT: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_corpus() {
    if let Some(root) = CORPUS_ROOT.get() {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// The test corpus, generated once per test process (seed 1) into a
/// tempdir that is removed when the process exits. Tests must not modify
/// it; tests that change files copy it first ([`Corpus::copy_to`]).
pub fn corpus() -> &'static Corpus {
    CORPUS.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("musicfs-e2e-corpus.")
            .tempdir()
            .expect("create corpus tempdir")
            .keep();
        let _ = CORPUS_ROOT.set(root.clone());
        // SAFETY: registers a plain extern "C" fn with no arguments; it only
        // touches a OnceLock that is set before registration.
        unsafe {
            libc::atexit(remove_corpus);
        }
        let dir = root.join("library");
        let manifest = root.join("manifest.json");
        generate(&[
            "--out",
            path_str(&dir),
            "--manifest",
            path_str(&manifest),
            "--seed",
            "1",
        ]);
        Corpus::load(&dir, &manifest)
    })
}

/// Runs scripts/gen_corpus.py with `args`; panics with its stderr on failure.
pub fn generate(args: &[&str]) {
    let script = crate::repo_root().join("scripts/gen_corpus.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("run python3 scripts/gen_corpus.py (is python3 installed? run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "gen_corpus.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("tempdir paths are UTF-8")
}

impl Corpus {
    pub fn load(dir: &Path, manifest: &Path) -> Corpus {
        let text = std::fs::read_to_string(manifest).expect("read manifest.json");
        let json: Value = serde_json::from_str(&text).expect("parse manifest.json");
        let files = json["files"]
            .as_array()
            .expect("manifest has files")
            .iter()
            .map(|f| CorpusFile {
                path: f["path"].as_str().expect("path").to_string(),
                format: f["format"].as_str().unwrap_or_default().to_string(),
                ext: f["ext"].as_str().unwrap_or_default().to_string(),
                kind: match f["kind"].as_str() {
                    Some("audio") => Kind::Audio,
                    Some("malformed") => Kind::Malformed,
                    _ => Kind::Other,
                },
                tags: f["tags"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default(),
                has_art: f["has_art"].as_bool().unwrap_or(false),
                hostile: f["hostile"].as_bool().unwrap_or(false),
                collision: f["collision"].as_str().map(str::to_string),
                size: f["size"].as_u64().unwrap_or(0),
                sha256: f["sha256"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        Corpus {
            dir: dir.to_path_buf(),
            files,
        }
    }

    pub fn audio(&self) -> impl Iterator<Item = &CorpusFile> {
        self.files.iter().filter(|f| f.kind == Kind::Audio)
    }

    pub fn origin_path(&self, f: &CorpusFile) -> PathBuf {
        self.dir.join(&f.path)
    }

    /// Copies the whole library (not the manifest) to `dest` with `cp -a`.
    pub fn copy_to(&self, dest: &Path) -> Corpus {
        let st = Command::new("cp")
            .arg("-a")
            .arg(&self.dir)
            .arg(dest)
            .status()
            .expect("run cp");
        assert!(
            st.success(),
            "cp -a {} {}",
            self.dir.display(),
            dest.display()
        );
        Corpus {
            dir: dest.to_path_buf(),
            files: self.files.clone(),
        }
    }
}

impl CorpusFile {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The file name without its extension (the `$title` fallback).
    pub fn stem(&self) -> &str {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        name.rsplit_once('.').map_or(name, |(s, _)| s)
    }

    fn is_multidisc(&self) -> bool {
        let num = |k| self.tag(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        num("disctotal") > 1 || num("disc") > 1
    }

    /// Whether a template rendering of this file can be predicted exactly:
    /// ordinary audio with a track number, no hostile values, no collision.
    pub fn predictable(&self) -> bool {
        self.kind == Kind::Audio
            && !self.hostile
            && self.collision.is_none()
            && self.tag("track").is_some()
            && self.tags.values().all(|v| plain_component(v))
            && plain_component(self.stem())
    }

    /// The path under the default template
    /// `$albumartist/$album/%if{$multidisc,$disc-}$track - $title.$ext`,
    /// with the documented fallbacks (albumartist → artist → "Unknown
    /// Artist", album → "Unknown Album", title → file stem, track two digits).
    pub fn default_path(&self) -> String {
        let artist = self
            .tag("albumartist")
            .or(self.tag("artist"))
            .unwrap_or("Unknown Artist");
        let album = self.tag("album").unwrap_or("Unknown Album");
        let disc = if self.is_multidisc() {
            format!("{}-", self.tag("disc").unwrap_or("1"))
        } else {
            String::new()
        };
        let track = self.track2();
        let title = self.tag("title").unwrap_or(self.stem());
        format!("{artist}/{album}/{disc}{track} - {title}.{}", self.ext)
    }

    /// The template the custom-template test mounts with, and the path it
    /// should give this file (None when a field it uses is missing).
    pub const CUSTOM_TEMPLATE: &'static str = "%upper{$genre}/$year - %lower{$album}/$title";
    pub fn custom_path(&self) -> Option<String> {
        Some(format!(
            "{}/{} - {}/{}.{}",
            self.tag("genre")?.to_uppercase(),
            self.tag("year")?,
            self.tag("album")?.to_lowercase(),
            self.tag("title")?,
            self.ext
        ))
    }

    fn track2(&self) -> String {
        match self.tag("track").and_then(|t| t.parse::<u32>().ok()) {
            Some(n) => format!("{n:02}"),
            None => self.tag("track").unwrap_or("").to_string(),
        }
    }
}

/// A value that no sanitiser should change: no path separators, control
/// characters, characters some sanitisers replace, leading dots or outer
/// spaces, and well under 255 bytes.
fn plain_component(v: &str) -> bool {
    !v.is_empty()
        && v.len() < 120
        && !v.starts_with('.')
        && v.trim() == v
        && !v
            .chars()
            .any(|c| c.is_control() || "/\\:*?\"<>|".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, tags: &[(&str, &str)]) -> CorpusFile {
        CorpusFile {
            path: path.into(),
            format: "flac".into(),
            ext: path.rsplit('.').next().unwrap_or("").into(),
            kind: Kind::Audio,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            has_art: false,
            hostile: false,
            collision: None,
            size: 0,
            sha256: String::new(),
        }
    }

    #[test]
    fn default_path_uses_fallbacks_and_disc_prefix() {
        let f = file("x/take.flac", &[("artist", "A"), ("track", "3")]);
        assert_eq!(f.default_path(), "A/Unknown Album/03 - take.flac");
        let f = file(
            "y.mp3",
            &[
                ("albumartist", "AA"),
                ("artist", "A"),
                ("album", "B"),
                ("title", "T"),
                ("track", "1"),
                ("disc", "2"),
                ("disctotal", "2"),
            ],
        );
        assert_eq!(f.default_path(), "AA/B/2-01 - T.mp3");
        assert!(f.predictable());
        let f = file("z.ogg", &[("artist", "../.."), ("track", "1")]);
        assert!(!f.predictable());
    }

    #[test]
    fn custom_path_needs_every_field() {
        let f = file(
            "y.mp3",
            &[
                ("genre", "Rock"),
                ("year", "1999"),
                ("album", "Big"),
                ("title", "T"),
            ],
        );
        assert_eq!(f.custom_path().as_deref(), Some("ROCK/1999 - big/T.mp3"));
        assert_eq!(file("y.mp3", &[("genre", "Rock")]).custom_path(), None);
    }
}
