//! `probe` against real files encoded by ffmpeg, and against broken ones.
use super::*;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ffmpeg_available() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: ffmpeg is not installed; real-file scanner tests need it");
    }
    ok
}

const META: &[(&str, &str)] = &[
    ("title", "Ünïcødé ☃ Title"),
    ("artist", "The Artist"),
    ("album", "The Album"),
    ("album_artist", "Various Artists"),
    ("track", "3/12"),
    ("disc", "1/2"),
    ("date", "2021"),
    ("genre", "Rock"),
    ("composer", "Some Composer"),
    ("comment", "a comment"),
];

/// Encodes one second of a sine with `codec_args` into `dir/name`, with
/// the tags in `META` (and cover art when `art`).
fn encode(dir: &Path, name: &str, codec_args: &[&str], art: bool) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"]);
    cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]);
    if art {
        let cover = dir.join("cover.png");
        if !cover.exists() {
            let st = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
                .args(["-i", "color=c=red:s=16x16", "-frames:v", "1"])
                .arg(&cover)
                .status()
                .expect("run ffmpeg");
            assert!(st.success());
        }
        cmd.arg("-i").arg(&cover);
        cmd.args(["-map", "0:a", "-map", "1:v", "-c:v", "copy"]);
        cmd.args(["-disposition:v", "attached_pic"]);
    }
    for (k, v) in META {
        cmd.arg("-metadata").arg(format!("{k}={v}"));
    }
    cmd.args(codec_args);
    cmd.arg(&out);
    let status = cmd.status().expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed for {name}");
    out
}

fn probe_bytes(bytes: &[u8], name: &str) -> Result<ScannedFile> {
    probe(&mut Cursor::new(bytes), bytes.len() as u64, name)
}

fn probe_file(path: &Path) -> (Vec<u8>, ScannedFile) {
    let bytes = std::fs::read(path).expect("read generated file");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let scanned =
        probe_bytes(&bytes, name).unwrap_or_else(|e| panic!("probe {}: {e}", path.display()));
    (bytes, scanned)
}

fn tag<'a>(f: &'a ScannedFile, key: &str) -> Vec<&'a str> {
    f.tags
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The tags every richly tagged format must carry.
fn assert_full_tags(f: &ScannedFile) {
    let expect = [
        ("title", "Ünïcødé ☃ Title"),
        ("artist", "The Artist"),
        ("album", "The Album"),
        ("albumartist", "Various Artists"),
        ("track", "3"),
        ("tracktotal", "12"),
        ("disc", "1"),
        ("disctotal", "2"),
        ("year", "2021"),
        ("genre", "Rock"),
        ("composer", "Some Composer"),
        ("comment", "a comment"),
    ];
    for (k, v) in expect {
        assert_eq!(tag(f, k), vec![v], "{} key {k}: {:?}", f.format, f.tags);
    }
    for (k, v) in &f.tags {
        assert!(!v.is_empty() && v.trim() == v, "{k}={v:?} not trimmed");
        assert_eq!(k.to_lowercase(), *k);
    }
}

fn assert_props(f: &ScannedFile, lossless: bool) {
    let p = &f.props;
    assert!(
        (900..=1150).contains(&p.duration_ms),
        "{} duration {}",
        f.format,
        p.duration_ms
    );
    assert_eq!(
        p.sample_rate,
        Some(if f.format == "opus" { 48000 } else { 44100 }),
        "{}",
        f.format
    );
    assert_eq!(p.channels, Some(1), "{}", f.format);
    assert!(
        p.bitrate_kbps.is_some_and(|b| b > 0),
        "{} bitrate",
        f.format
    );
    if lossless {
        assert_eq!(p.bit_depth, Some(16), "{}", f.format);
    }
}

fn body<'a>(bytes: &'a [u8], f: &ScannedFile) -> &'a [u8] {
    let start = f.audio_offset as usize;
    let end = (f.audio_offset + f.audio_length) as usize;
    assert!(
        start < end && end <= bytes.len(),
        "{} body out of range",
        f.format
    );
    &bytes[start..end]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn scan_flac_tags_props_art_and_frame_sync() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = encode(dir.path(), "a.flac", &["-c:a", "flac"], true);
    let (bytes, f) = probe_file(&path);
    assert_eq!(f.format, "flac");
    assert_full_tags(&f);
    assert_props(&f, true);
    assert!(f.has_art);
    let b = body(&bytes, &f);
    assert!(
        b[0] == 0xFF && (b[1] & 0xFE) == 0xF8,
        "no FLAC frame sync at body"
    );
    assert_eq!(f.audio_offset + f.audio_length, bytes.len() as u64);
}

#[test]
fn scan_mp3_id3v2_body_and_trailing_id3v1() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "-c:a",
        "libmp3lame",
        "-id3v2_version",
        "3",
        "-write_id3v1",
        "1",
    ];
    let path = encode(dir.path(), "a.mp3", &args, true);
    let (bytes, f) = probe_file(&path);
    assert_eq!(f.format, "mp3");
    assert_full_tags(&f);
    assert_props(&f, false);
    assert!(f.has_art);
    assert_eq!(&bytes[..3], b"ID3");
    let b = body(&bytes, &f);
    assert!(
        b[0] == 0xFF && (b[1] & 0xE0) == 0xE0,
        "no MPEG frame sync at body"
    );
    assert_eq!(&bytes[bytes.len() - 128..][..3], b"TAG");
    assert_eq!(f.audio_offset + f.audio_length, bytes.len() as u64 - 128);
}

/// The first audio page of an Ogg file: the first page with a granule
/// position that is neither 0 nor -1 (header pages have 0).
fn first_audio_page(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while pos + 27 <= bytes.len() {
        assert_eq!(&bytes[pos..pos + 4], b"OggS");
        let granule = u64::from_le_bytes(bytes[pos + 6..pos + 14].try_into().unwrap());
        if granule != 0 && granule != u64::MAX {
            return pos;
        }
        let n = bytes[pos + 26] as usize;
        let len: usize = bytes[pos + 27..pos + 27 + n]
            .iter()
            .map(|&l| l as usize)
            .sum();
        pos += 27 + n + len;
    }
    panic!("no audio page");
}

#[test]
fn scan_ogg_vorbis_opus_speex_body_starts_at_first_audio_page() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, args, format) in [
        ("a.ogg", &["-c:a", "libvorbis"][..], "ogg"),
        ("a.opus", &["-c:a", "libopus"][..], "opus"),
        ("a.spx", &["-c:a", "libspeex", "-ar", "16000"][..], "spx"),
    ] {
        let path = encode(dir.path(), name, args, false);
        let (bytes, f) = probe_file(&path);
        assert_eq!(f.format, format);
        if format != "spx" {
            assert_full_tags(&f);
            assert_props(&f, false);
        } else {
            assert_eq!(tag(&f, "title"), vec!["Ünïcødé ☃ Title"]);
        }
        let b = body(&bytes, &f);
        assert_eq!(&b[..4], b"OggS", "{name}");
        assert_eq!(f.audio_offset as usize, first_audio_page(&bytes), "{name}");
        assert_eq!(f.audio_offset + f.audio_length, bytes.len() as u64);
    }
}

#[test]
fn scan_m4a_aac_and_alac_body_is_mdat_payload() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, args, lossless) in [
        ("a.m4a", &["-c:a", "aac"][..], false),
        ("b.m4a", &["-c:a", "alac", "-sample_fmt", "s16p"][..], true),
        (
            "c.m4a",
            &["-c:a", "aac", "-movflags", "+faststart"][..],
            false,
        ),
    ] {
        let path = encode(dir.path(), name, args, name == "a.m4a");
        let (bytes, f) = probe_file(&path);
        assert_eq!(f.format, "m4a");
        assert_full_tags(&f);
        assert_props(&f, lossless);
        assert_eq!(f.has_art, name == "a.m4a");
        let at = find(&bytes, b"mdat").expect("mdat in file") - 4;
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        assert_eq!(f.audio_offset, at as u64 + 8, "{name}");
        assert_eq!(f.audio_length, size - 8, "{name}");
    }
}

#[test]
fn scan_wav_aiff_wavpack_bodies() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let wav = encode(dir.path(), "a.wav", &["-c:a", "pcm_s16le"], false);
    let (bytes, f) = probe_file(&wav);
    assert_eq!(f.format, "wav");
    assert_eq!(tag(&f, "title"), vec!["Ünïcødé ☃ Title"]);
    assert_eq!(tag(&f, "artist"), vec!["The Artist"]);
    assert_props(&f, true);
    let at = find(&bytes, b"data").unwrap();
    assert_eq!(f.audio_offset, at as u64 + 8);
    assert_eq!(
        f.audio_length,
        u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as u64
    );
    assert_eq!(f.audio_length, 44100 * 2);

    let aiff = encode(
        dir.path(),
        "a.aiff",
        &["-c:a", "pcm_s16be", "-write_id3v2", "1"],
        false,
    );
    let (bytes, f) = probe_file(&aiff);
    assert_eq!(f.format, "aiff");
    assert_eq!(tag(&f, "title"), vec!["Ünïcødé ☃ Title"]);
    assert_props(&f, true);
    let at = find(&bytes, b"SSND").unwrap();
    assert_eq!(f.audio_offset, at as u64 + 16);
    assert_eq!(f.audio_length, 44100 * 2);

    let wv = encode(dir.path(), "a.wv", &["-c:a", "wavpack"], false);
    let (bytes, f) = probe_file(&wv);
    assert_eq!(f.format, "wv");
    assert_eq!(tag(&f, "title"), vec!["Ünïcødé ☃ Title"]);
    assert_eq!(tag(&f, "track"), vec!["3"]);
    assert_props(&f, true);
    // Walk the WavPack blocks independently: the body is exactly them,
    // and the APEv2 tag ffmpeg appends is not.
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() && &bytes[pos..pos + 4] == b"wvpk" {
        pos += 8 + u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    assert_eq!(f.audio_offset, 0);
    assert_eq!(f.audio_length, pos as u64);
    assert!(pos < bytes.len(), "expected an APEv2 tag after the blocks");
    assert_eq!(&bytes[bytes.len() - 32..][..8], b"APETAGEX");
}

#[test]
fn compilation_flag_and_multi_valued_artists() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.flac");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "sine=duration=1", "-c:a", "flac"])
        .args([
            "-metadata",
            "compilation=1",
            "-metadata",
            "title=  padded  ",
        ])
        .args(["-metadata", "genre=", "-metadata", "track=07"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    let (_, f) = probe_file(&path);
    assert_eq!(tag(&f, "compilation"), vec!["1"]);
    assert_eq!(tag(&f, "title"), vec!["padded"]);
    assert_eq!(tag(&f, "track"), vec!["7"]);
    assert!(tag(&f, "genre").is_empty());
}

fn expect_err(bytes: &[u8], name: &str, want: &str) {
    match probe_bytes(bytes, name) {
        Ok(f) => panic!("{name}: expected an error, got {f:?}"),
        Err(Error::Scan { path, message }) => {
            assert_eq!(path, name);
            assert!(!message.contains("panicked"), "{name}: {message}");
            assert!(
                message.contains(want),
                "{name}: message {message:?} lacks {want:?}"
            );
        }
        Err(other) => panic!("{name}: wrong error kind {other}"),
    }
}

#[test]
fn malformed_inputs_are_clear_errors() {
    expect_err(b"", "empty.flac", "zero-byte file");
    expect_err(
        &[0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68, 0xac, 0xe0, 0x01, 0x77],
        "r.bin",
        "not an audio file",
    );
    expect_err(
        b"hello world\nthis is text\n",
        "notes.txt",
        "not an audio file",
    );
    expect_err(
        &b"just some text, named like a song\n".repeat(200),
        "song.mp3",
        "not an audio file",
    );
    expect_err(b"fLaC\x00\x00\x00\x22", "short.flac", "truncated FLAC");
}

#[test]
fn broken_real_files_are_errors() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let flac = std::fs::read(encode(dir.path(), "a.flac", &["-c:a", "flac"], false)).unwrap();
    expect_err(&flac[..100], "cut.flac", "truncated");

    // A metadata block claiming 16 MiB right after STREAMINFO.
    let mut huge = flac[..42].to_vec();
    huge[4] &= 0x7F; // STREAMINFO is no longer the last block
    huge.extend_from_slice(&[0x81, 0xFF, 0xFF, 0xFF]);
    huge.extend_from_slice(&flac[42..200]);
    expect_err(&huge, "huge.flac", "truncated FLAC metadata");

    let mp3 = std::fs::read(encode(dir.path(), "a.mp3", &["-c:a", "libmp3lame"], false)).unwrap();
    let mut past = mp3.clone();
    past[6..10].copy_from_slice(&[0x7F, 0x7F, 0x7F, 0x7F]);
    expect_err(&past, "past.mp3", "ID3v2 tag runs past the end of the file");
}

/// Every generated file, cut at many lengths: each probe must return (an
/// error or a file), never panic, and a file it accepts must have a body
/// inside the bytes it was given.
#[test]
fn truncations_never_panic() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = [
        encode(dir.path(), "t.flac", &["-c:a", "flac"], true),
        encode(
            dir.path(),
            "t.mp3",
            &["-c:a", "libmp3lame", "-write_id3v1", "1"],
            true,
        ),
        encode(dir.path(), "t.ogg", &["-c:a", "libvorbis"], false),
        encode(dir.path(), "t.opus", &["-c:a", "libopus"], false),
        encode(dir.path(), "t.m4a", &["-c:a", "aac"], true),
        encode(dir.path(), "t.wav", &["-c:a", "pcm_s16le"], false),
        encode(
            dir.path(),
            "t.aiff",
            &["-c:a", "pcm_s16be", "-write_id3v2", "1"],
            false,
        ),
        encode(dir.path(), "t.wv", &["-c:a", "wavpack"], false),
    ];
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let mut cuts: Vec<usize> = (0..bytes.len().min(512)).collect();
        cuts.extend((512..bytes.len()).step_by(97));
        cuts.extend(bytes.len().saturating_sub(300)..bytes.len());
        for n in cuts {
            match probe_bytes(&bytes[..n], name) {
                Ok(f) => assert!(
                    f.audio_offset + f.audio_length <= n as u64,
                    "{name} cut at {n}"
                ),
                Err(e) => assert!(
                    !e.to_string().contains("panicked"),
                    "{name} cut at {n}: {e}"
                ),
            }
        }
        // Flipped bytes in the header region.
        for i in (0..bytes.len().min(4096)).step_by(7) {
            let mut broken = bytes.clone();
            broken[i] ^= 0xA5;
            if let Err(e) = probe_bytes(&broken, name) {
                assert!(
                    !e.to_string().contains("panicked"),
                    "{name} flip at {i}: {e}"
                );
            }
        }
        // Random bytes overwritten anywhere (xorshift: reproducible).
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ bytes.len() as u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..150 {
            let mut broken = bytes.clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() % bytes.len() as u64) as usize;
                broken[at] = next() as u8;
            }
            if let Err(e) = probe_bytes(&broken, name) {
                assert!(
                    !e.to_string().contains("panicked"),
                    "{name} round {round}: {e}"
                );
            }
        }
    }
}

/// An ID3v2.3 tag holding one APIC frame with `data` as a PNG.
fn id3v23_with_picture(data: &[u8]) -> Vec<u8> {
    let mut frame_body = vec![0u8]; // Latin-1
    frame_body.extend_from_slice(b"image/png\0");
    frame_body.push(3); // front cover
    frame_body.push(0); // empty description
    frame_body.extend_from_slice(data);
    let mut frame = b"APIC".to_vec();
    frame.extend_from_slice(&(frame_body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&frame_body);
    let mut tit2 = b"TIT2".to_vec();
    tit2.extend_from_slice(&6u32.to_be_bytes());
    tit2.extend_from_slice(&[0, 0, 0]);
    tit2.extend_from_slice(b"Big!\0");
    let body_len = frame.len() + tit2.len();
    let s = |n: usize| {
        [
            (n >> 21) as u8 & 0x7F,
            (n >> 14) as u8 & 0x7F,
            (n >> 7) as u8 & 0x7F,
            n as u8 & 0x7F,
        ]
    };
    let mut tag = b"ID3\x03\x00\x00".to_vec();
    tag.extend_from_slice(&s(body_len));
    tag.extend_from_slice(&tit2);
    tag.extend_from_slice(&frame);
    tag
}

#[test]
fn huge_cover_art_does_not_make_a_good_file_an_error() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plain = encode(
        dir.path(),
        "p.mp3",
        &["-c:a", "libmp3lame", "-id3v2_version", "0"],
        false,
    );
    let audio = std::fs::read(plain).unwrap();
    assert_ne!(&audio[..3], b"ID3");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(20 * 1024 * 1024, 0x5A);
    let mut bytes = id3v23_with_picture(&png);
    let tag_len = bytes.len() as u64;
    bytes.extend_from_slice(&audio);
    let f = probe_bytes(&bytes, "big.mp3").expect("big cover must not fail the scan");
    assert!(f.has_art);
    assert_eq!(tag(&f, "title"), vec!["Big!"]);
    assert_eq!(f.audio_offset, tag_len);
}

/// Runs a python3 + mutagen snippet with the file path as `sys.argv[1]`;
/// false (with a note) if mutagen is not there.
fn mutagen(script: &str, path: &Path) -> bool {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("No module named"),
                "mutagen script failed: {err}"
            );
            eprintln!("SKIPPED: python3 mutagen is not installed");
            false
        }
        Err(_) => {
            eprintln!("SKIPPED: python3 is not installed");
            false
        }
    }
}

#[test]
fn id3v24_multi_values_musicbrainz_and_itunes_comments() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = encode(
        dir.path(),
        "m.mp3",
        &["-c:a", "libmp3lame", "-id3v2_version", "0"],
        false,
    );
    let script = r#"
import sys
from mutagen.id3 import ID3, TPE1, TIT2, TPUB, TCMP, COMM, TXXX, UFID, TRCK, TDRC, USLT
t = ID3()
t.add(TIT2(encoding=3, text=["Multi"]))
t.add(TPE1(encoding=3, text=["First", "Second"]))
t.add(TPUB(encoding=3, text=["A Label"]))
t.add(TCMP(encoding=3, text=["1"]))
t.add(TRCK(encoding=3, text=["05"]))
t.add(TDRC(encoding=3, text=["1999-04-01"]))
t.add(COMM(encoding=3, lang="eng", desc="", text=["real comment"]))
t.add(COMM(encoding=3, lang="eng", desc="iTunNORM", text=[" 0000 0000"]))
t.add(TXXX(encoding=3, desc="MusicBrainz Album Id", text=["d1f2c3a4-0000-4000-8000-000000000001"]))
t.add(TXXX(encoding=3, desc="MusicBrainz Artist Id", text=["d1f2c3a4-0000-4000-8000-000000000002"]))
t.add(UFID(owner="http://musicbrainz.org", data=b"d1f2c3a4-0000-4000-8000-000000000003"))
t.add(USLT(encoding=3, lang="eng", desc="", text="la la la"))
t.save(sys.argv[1], v2_version=4)
"#;
    if !mutagen(script, &path) {
        return;
    }
    let (_, f) = probe_file(&path);
    assert_eq!(tag(&f, "artist"), vec!["First", "Second"], "{:?}", f.tags);
    assert_eq!(tag(&f, "title"), vec!["Multi"]);
    assert_eq!(tag(&f, "label"), vec!["A Label"]);
    assert_eq!(tag(&f, "compilation"), vec!["1"]);
    assert_eq!(tag(&f, "track"), vec!["5"]);
    assert_eq!(tag(&f, "date"), vec!["1999-04-01"]);
    assert_eq!(tag(&f, "year"), vec!["1999"]);
    assert_eq!(tag(&f, "comment"), vec!["real comment"]);
    assert_eq!(tag(&f, "lyrics"), vec!["la la la"]);
    assert_eq!(
        tag(&f, "musicbrainz_albumid"),
        vec!["d1f2c3a4-0000-4000-8000-000000000001"]
    );
    assert_eq!(
        tag(&f, "musicbrainz_artistid"),
        vec!["d1f2c3a4-0000-4000-8000-000000000002"]
    );
    assert_eq!(
        tag(&f, "musicbrainz_trackid"),
        vec!["d1f2c3a4-0000-4000-8000-000000000003"]
    );
}

#[test]
fn vorbis_comments_repeat_and_secondary_id3v1_fills_gaps() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = encode(dir.path(), "v.flac", &["-c:a", "flac"], false);
    let script = r#"
import sys
from mutagen.flac import FLAC
f = FLAC(sys.argv[1])
f.delete()
f["ARTIST"] = ["One", "Two"]
f["GENRE"] = ["Jazz", "  ", "Blues"]
f["MUSICBRAINZ_RELEASEGROUPID"] = ["rg-1"]
f["COMPILATION"] = ["0"]
f["TRACKNUMBER"] = ["2/9"]
f.save()
"#;
    if !mutagen(script, &path) {
        return;
    }
    let (bytes, f) = probe_file(&path);
    assert_eq!(tag(&f, "artist"), vec!["One", "Two"], "{:?}", f.tags);
    assert_eq!(tag(&f, "genre"), vec!["Jazz", "Blues"]);
    assert_eq!(tag(&f, "musicbrainz_releasegroupid"), vec!["rg-1"]);
    assert!(tag(&f, "compilation").is_empty());
    assert_eq!(
        (tag(&f, "track"), tag(&f, "tracktotal")),
        (vec!["2"], vec!["9"])
    );
    assert!(tag(&f, "title").is_empty());

    // lofty leaves an ID3v1 appended to a FLAC file alone; the body
    // still ends before it.
    let mut with_v1 = bytes.clone();
    with_v1.extend_from_slice(&id3v1("V1 Title", "V1 Artist", "2001"));
    let g = probe_bytes(&with_v1, "v.flac").unwrap();
    assert_eq!(g.audio_offset + g.audio_length, bytes.len() as u64);
    assert_eq!(tag(&g, "artist"), vec!["One", "Two"]);
}

fn id3v1(title: &str, artist: &str, year: &str) -> Vec<u8> {
    let field = |s: &str, n: usize| {
        let mut b = s.as_bytes().to_vec();
        b.resize(n, 0);
        b
    };
    let mut v1 = b"TAG".to_vec();
    v1.extend(field(title, 30));
    v1.extend(field(artist, 30));
    v1.extend(field("", 30));
    v1.extend(field(year, 4));
    v1.extend(field("", 30));
    v1.push(255);
    v1
}

#[test]
fn secondary_id3v1_fills_only_keys_the_primary_tag_lacks() {
    if !ffmpeg_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = encode(
        dir.path(),
        "s.mp3",
        &["-c:a", "libmp3lame", "-id3v2_version", "0"],
        false,
    );
    let script = r#"
import sys
from mutagen.id3 import ID3, TPE1
t = ID3()
t.add(TPE1(encoding=3, text=["V2 Artist"]))
t.save(sys.argv[1], v2_version=3)
"#;
    if !mutagen(script, &path) {
        return;
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let audio_end = bytes.len() as u64;
    bytes.extend_from_slice(&id3v1("V1 Title", "V1 Artist", "2001"));
    let f = probe_bytes(&bytes, "s.mp3").unwrap();
    assert_eq!(tag(&f, "artist"), vec!["V2 Artist"], "{:?}", f.tags);
    assert_eq!(tag(&f, "title"), vec!["V1 Title"]);
    assert_eq!(tag(&f, "year"), vec!["2001"]);
    assert_eq!(f.audio_offset + f.audio_length, audio_end);
}
