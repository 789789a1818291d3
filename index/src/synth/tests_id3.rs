//! ID3v2.4 synthesis against real MP3s: ffmpeg encodes, mutagen tags
//! (v2.3 and v2.4, pictures, lyrics, private frames, ID3v1), the scanner
//! (lofty), mutagen and ffmpeg read the served bytes.
use super::super::testkit::*;
use super::super::Original;
use std::path::Path;

/// An MP3 tagged by mutagen as ID3v2.`version` with an ID3v1 tag after it.
fn tagged_mp3(dir: &Path, version: u8) -> Vec<u8> {
    let path = encode(
        dir,
        "a.mp3",
        "libmp3lame",
        &["-b:a", "64k", "-id3v2_version", "0"],
    );
    let png = picture(dir, "cover.png");
    python(
        &path,
        &format!(
            r#"
from mutagen.id3 import ID3, TIT2, TPE1, TALB, TCON, TRCK, TDRC, APIC, USLT, PRIV, TXXX, COMM
t = ID3()
t.add(TIT2(encoding=1, text="Old Title"))
t.add(TPE1(encoding=1, text="Old Artist"))
t.add(TALB(encoding=0, text="The Album"))
t.add(TCON(encoding=3, text="Rock"))
t.add(TRCK(encoding=3, text="3/10"))
t.add(TDRC(encoding=3, text="2019-05-01"))
t.add(TXXX(encoding=3, desc="CATALOGNUMBER", text="CAT-1"))
t.add(COMM(encoding=3, lang="eng", desc="", text="old comment"))
t.add(USLT(encoding=3, lang="eng", desc="", text="la la la"))
t.add(PRIV(owner="musicfs-test", data=b"\x00\x01private"))
t.add(APIC(encoding=3, mime="image/png", type=3, desc="front", data=open("{png}", "rb").read()))
t.save(path, v1=2, v2_version={version}, padding=lambda info: 2048)
"#,
            png = png.display()
        ),
    );
    std::fs::read(&path).unwrap()
}

fn check_round_trip(version: u8) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tagged_mp3(dir.path(), version);
    assert_eq!(&bytes[bytes.len() - 128..][..3], b"TAG", "ID3v1 written");
    let o = original(&bytes, "mp3", "a.mp3");
    let edits = [
        edit("title", &["New Title"]),
        edit("artist", &["B", "C"]),
        edit("genre", &[]),
        edit("tracktotal", &["12"]),
        edit("mood", &["calm"]),
        edit("comment", &["new comment"]),
    ];
    let plan = synthesize(&bytes, o, &edits).unwrap();
    // Small edits fit where the old tags were: the size does not change.
    assert_eq!(plan.len(), bytes.len() as u64, "v2.{version}");
    let served = serve(&plan, &bytes, 4093);
    assert_eq!(&served[..5], b"ID3\x04\x00");
    let s = scan(&served, "a.mp3");
    assert_eq!(values(&s, "title"), ["New Title"]);
    assert_eq!(values(&s, "artist"), ["B", "C"]);
    assert!(values(&s, "genre").is_empty(), "{:?}", s.tags);
    assert_eq!(values(&s, "track"), ["3"]);
    assert_eq!(values(&s, "tracktotal"), ["12"]);
    assert_eq!(values(&s, "album"), ["The Album"]);
    assert_eq!(values(&s, "date"), ["2019-05-01"]);
    assert_eq!(values(&s, "catalognum"), ["CAT-1"]);
    assert_eq!(values(&s, "comment"), ["new comment"]);
    assert_eq!(values(&s, "lyrics"), ["la la la"]);
    assert!(s.has_art, "APIC carried over");
    // The audio frames are the original's; no ID3v1 is served.
    let body = &bytes[o.audio_offset as usize..(o.audio_offset + o.audio_length) as usize];
    assert_eq!(s.audio_length, o.audio_length);
    assert_eq!(&served[s.audio_offset as usize..][..body.len()], body);
    assert!(
        served[s.audio_offset as usize + body.len()..]
            .iter()
            .all(|&b| b == 0)
            || s.audio_offset as usize + body.len() == served.len()
    );
    // mutagen sees a v2.4 tag with the untouched frames intact; ffmpeg
    // decodes without a complaint.
    let path = write(dir.path(), "served.mp3", &served);
    let seen = python(
        &path,
        r#"
from mutagen.id3 import ID3
t = ID3(path)
print(t.version)
print(t.getall("PRIV")[0].owner, t.getall("PRIV")[0].data)
print(len(t.getall("APIC")[0].data), t.getall("APIC")[0].mime)
print(t["TMOO"].text)
print(t["TPE1"].text)
"#,
    );
    let png_len = std::fs::metadata(dir.path().join("cover.png"))
        .unwrap()
        .len();
    assert_eq!(
        seen,
        format!("(2, 4, 0)\nmusicfs-test b'\\x00\\x01private'\n{png_len} image/png\n['calm']\n['B', 'C']\n")
    );
    assert_eq!(decode_errors(&path), "");
}

#[test]
fn v23_tags_are_converted_and_round_trip() {
    check_round_trip(3);
}

#[test]
fn v24_tags_round_trip() {
    check_round_trip(4);
}

#[test]
fn a_large_edit_rounds_the_tag_up() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tagged_mp3(dir.path(), 4);
    let o = original(&bytes, "mp3", "a.mp3");
    let long = "y".repeat(10_000);
    let plan = synthesize(&bytes, o, &[edit("comment", &[&long])]).unwrap();
    assert_eq!((plan.len() - o.audio_length) % 4096, 0);
    let served = serve(&plan, &bytes, 4093);
    let s = scan(&served, "a.mp3");
    assert_eq!(values(&s, "comment"), [long.as_str()]);
    assert!(s.has_art);
    let path = write(dir.path(), "big.mp3", &served);
    assert_eq!(decode_errors(&path), "");
}

#[test]
fn a_file_with_only_id3v1_keeps_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let path = encode(
        dir.path(),
        "v1.mp3",
        "libmp3lame",
        &["-b:a", "64k", "-id3v2_version", "0"],
    );
    python(
        &path,
        r#"
from mutagen.id3 import ID3, TIT2, TPE1, TRCK
t = ID3()
t.add(TIT2(encoding=3, text="V1 Title"))
t.add(TPE1(encoding=3, text="V1 Artist"))
t.add(TRCK(encoding=3, text="7"))
t.save(path, v1=2)
ID3(path).delete(path, delete_v1=False, delete_v2=True)
"#,
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[bytes.len() - 128..][..3], b"TAG");
    assert_ne!(&bytes[..3], b"ID3");
    let o = original(&bytes, "mp3", "v1.mp3");
    let plan = synthesize(&bytes, o, &[edit("album", &["Added"])]).unwrap();
    let served = serve(&plan, &bytes, 4093);
    let s = scan(&served, "v1.mp3");
    assert_eq!(values(&s, "title"), ["V1 Title"]);
    assert_eq!(values(&s, "artist"), ["V1 Artist"]);
    assert_eq!(values(&s, "track"), ["7"]);
    assert_eq!(values(&s, "album"), ["Added"]);
    let out = write(dir.path(), "out.mp3", &served);
    assert_eq!(decode_errors(&out), "");
}

#[test]
fn hostile_tags_are_errors_or_dropped_frames_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tagged_mp3(dir.path(), 4);
    let o = original(&bytes, "mp3", "a.mp3");
    let edits = [edit("title", &["x"])];
    // Tag size 0x7fffffff: not syncsafe.
    let mut bad = bytes.clone();
    bad[6..10].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    assert!(synthesize(&bad, o, &edits).is_err());
    // The largest syncsafe size: past the audio offset and the file.
    bad[6..10].copy_from_slice(&[0x7f; 4]);
    assert!(synthesize(&bad, o, &edits).is_err());
    // Truncated inside the tag.
    for cut in [5usize, 10, 30, 500] {
        let o = Original {
            size: cut as u64,
            audio_offset: o.audio_offset,
            audio_length: 0,
            ..o
        };
        assert!(synthesize(&bytes[..cut], o, &edits).is_err(), "cut {cut}");
    }
    // A frame whose size runs past the tag: it and what follows are
    // dropped, the rest is served, and the result still decodes.
    let mut frames = bytes.clone();
    frames[14..18].copy_from_slice(&[0x7f; 4]);
    let plan = synthesize(&frames, o, &edits).unwrap();
    let served = serve(&plan, &frames, 4093);
    assert_eq!(values(&scan(&served, "a.mp3"), "title"), ["x"]);
    // Random garbage in the frame area never panics.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut g = bytes.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = 10 + (state as usize % (o.audio_offset as usize - 10));
            g[at] = (state >> 32) as u8;
        }
        let _ = synthesize(&g, o, &edits);
    }
}
