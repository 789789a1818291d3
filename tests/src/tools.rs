//! The real tools the tests read the mount with: ffprobe, mutagen (through
//! scripts/gen_corpus.py --read), cmp, sha256sum, and a shell.
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The full path of `program` on `$PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Tags as ffprobe reads them: format tags, then the first audio stream's
/// (never an attached picture's), keys lower-cased and mapped to canonical
/// names; `track`/`disc` "n/total" split.
pub fn ffprobe_tags(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "quiet",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe (run scripts/setup.sh)");
    assert!(out.status.success(), "ffprobe {} failed", path.display());
    let json: Value = serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON");
    let mut raw: Vec<(String, String)> = Vec::new();
    let mut push = |tags: &Value| {
        if let Some(obj) = tags.as_object() {
            for (k, v) in obj {
                if let Some(v) = v.as_str() {
                    raw.push((k.to_lowercase(), v.to_string()));
                }
            }
        }
    };
    push(&json["format"]["tags"]);
    if let Some(streams) = json["streams"].as_array() {
        if let Some(audio) = streams.iter().find(|s| s["codec_type"] == "audio") {
            push(&audio["tags"]);
        }
    }
    let mut tags = BTreeMap::new();
    for (k, v) in raw {
        let key = match k.as_str() {
            "album_artist" | "albumartist" | "album artist" => "albumartist",
            "tracknumber" => "track",
            "discnumber" => "disc",
            "date" => "year",
            other => other,
        };
        tags.entry(key.to_string()).or_insert(v);
    }
    split_totals(tags)
}

/// Tags as mutagen reads them (canonical keys), via gen_corpus.py --read.
pub fn mutagen_tags(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("python3")
        .arg(crate::repo_root().join("scripts/gen_corpus.py"))
        .arg("--read")
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "gen_corpus.py --read {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("--read prints JSON");
    let tags = json
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    split_totals(tags)
}

/// Rewrites tags in place with mutagen (`key=value`; `key=` deletes).
pub fn mutagen_retag(path: &Path, assignments: &[&str]) {
    let out = Command::new("python3")
        .arg(crate::repo_root().join("scripts/gen_corpus.py"))
        .arg("--retag")
        .arg(path)
        .args(assignments)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "gen_corpus.py --retag {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn split_totals(mut tags: BTreeMap<String, String>) -> BTreeMap<String, String> {
    for key in ["track", "disc"] {
        if let Some(v) = tags.get(key).cloned() {
            if let Some((n, total)) = v.split_once('/') {
                tags.insert(key.into(), n.trim().into());
                tags.insert(format!("{key}total"), total.trim().into());
            }
        }
    }
    tags
}

/// `cmp -s a b`.
pub fn cmp(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .expect("run cmp")
        .success()
}

/// `sha256sum path`, the hex digest.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `sh -c script` with `$1`.. set to `args`.
pub fn sh(script: &str, args: &[&Path]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .output()
        .expect("run sh")
}
