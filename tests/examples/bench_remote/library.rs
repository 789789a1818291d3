//! The benchmark's library: FLAC tracks of white noise with tags (one with
//! a cover) and two big files, generated with ffmpeg once under `/tmp` and
//! reused by later runs with the same arguments.
use super::{fail, Args};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// White-noise FLAC at 44.1 kHz, 16-bit stereo barely compresses.
const FLAC_BYTES_PER_SEC: f64 = 176_400.0;

pub(crate) struct Track {
    /// Relative to the library root.
    pub(crate) rel: String,
    pub(crate) title: String,
    pub(crate) size: u64,
}

pub(crate) struct Library {
    pub(crate) root: PathBuf,
    pub(crate) tracks: Vec<Track>,
    pub(crate) bigs: Vec<Track>,
}

impl Library {
    pub(crate) fn bytes(&self) -> u64 {
        self.tracks.iter().chain(&self.bigs).map(|t| t.size).sum()
    }
}

struct Spec {
    rel: String,
    title: String,
    artist: String,
    album: String,
    track: usize,
    seconds: f64,
    cover: bool,
}

fn specs(args: &Args) -> Vec<Spec> {
    let mut out = Vec::new();
    for i in 0..args.files {
        let group = i / 10;
        // 5.0 to 8.0 MB, spread so neighbours differ.
        let mb = 5.0 + 3.0 * ((i * 7) % 10) as f64 / 9.0;
        out.push(Spec {
            rel: format!(
                "Artist {group:02}/Album {group:02}/{:02} Track {i:03}.flac",
                i % 10 + 1
            ),
            title: format!("Track {i:03}"),
            artist: format!("Bench Artist {group:02}"),
            album: format!("Bench Album {group:02}"),
            track: i % 10 + 1,
            seconds: mb * 1e6 / FLAC_BYTES_PER_SEC,
            cover: i == 0,
        });
    }
    for j in 0..2 {
        out.push(Spec {
            rel: format!("Big/Big {j}.flac"),
            title: format!("Big {j}"),
            artist: "Bench Big".into(),
            album: "Big Files".into(),
            track: j + 1,
            seconds: args.mb as f64 * 1e6 / FLAC_BYTES_PER_SEC,
            cover: false,
        });
    }
    out
}

/// The library for these arguments, generated unless a complete one from
/// an earlier run is there (a marker file is written last).
pub(crate) fn library(args: &Args) -> Library {
    let root = PathBuf::from(format!(
        "/tmp/musicfs-bench-remote-lib-{}-{}",
        args.files, args.mb
    ));
    let marker = root.with_extension("complete");
    let specs = specs(args);
    if !marker.exists() {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create the library directory");
        let cover = root.with_extension("cover.jpg");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "nullsrc=s=500x500,geq=lum='random(1)*255':cb=128:cr=128",
            "-frames:v",
            "1",
            cover.to_str().unwrap(),
        ]);
        let started = Instant::now();
        for (n, s) in specs.iter().enumerate() {
            generate(&root, &cover, s, n as u64 + 1);
        }
        eprintln!(
            "generated {} files in {:.1} s",
            specs.len(),
            started.elapsed().as_secs_f64()
        );
        fs::write(&marker, b"").expect("write the library marker");
    }
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let track = |s: &Spec| Track {
        size: fs::metadata(root.join(&s.rel))
            .unwrap_or_else(|e| fail(&format!("{}: {e} (delete {})", s.rel, marker.display())))
            .len(),
        rel: s.rel.clone(),
        title: s.title.clone(),
    };
    let (big, small): (Vec<&Spec>, Vec<&Spec>) =
        specs.iter().partition(|s| s.artist == "Bench Big");
    Library {
        tracks: small.into_iter().map(track).collect(),
        bigs: big.into_iter().map(track).collect(),
        root,
    }
}

fn generate(root: &Path, cover: &Path, s: &Spec, seed: u64) {
    let out = root.join(&s.rel);
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    // Two independent noise channels: identical ones would compress.
    let graph = format!(
        "anoisesrc=d={d:.2}:c=white:a=0.5:seed={a}[l];\
         anoisesrc=d={d:.2}:c=white:a=0.5:seed={b}[r];[l][r]amerge=inputs=2[o]",
        d = s.seconds,
        a = seed * 2,
        b = seed * 2 + 1
    );
    let mut args: Vec<String> = vec!["-filter_complex".into(), graph];
    if s.cover {
        args.extend(["-i".into(), cover.to_str().unwrap().into()]);
    }
    args.extend(["-map".into(), "[o]".into()]);
    if s.cover {
        for a in [
            "-map",
            "0:v",
            "-c:v",
            "copy",
            "-disposition:v",
            "attached_pic",
        ] {
            args.push(a.into());
        }
    }
    for (key, value) in [
        ("title", s.title.as_str()),
        ("artist", &s.artist),
        ("albumartist", &s.artist),
        ("album", &s.album),
        ("track", &s.track.to_string()),
        ("date", "2024"),
        ("genre", "Noise"),
    ] {
        args.extend(["-metadata".into(), format!("{key}={value}")]);
    }
    for a in ["-ar", "44100", "-sample_fmt", "s16", "-c:a", "flac"] {
        args.push(a.into());
    }
    args.push(out.to_str().unwrap().into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ffmpeg (scripts/setup.sh)");
    if !out.status.success() {
        fail(&format!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}
