//! FLAC synthesis against real files: ffmpeg encodes, metaflac tags, the
//! scanner (lofty) and `flac -t` read the served bytes.
use super::super::testkit::*;
use std::process::Command;

/// A tagged FLAC with a picture and 8 KiB of padding.
fn tagged_flac(dir: &std::path::Path) -> Vec<u8> {
    let path = encode(dir, "a.flac", "flac", &[]);
    let png = picture(dir, "cover.png");
    run(Command::new("metaflac")
        .args([
            "--remove-all-tags",
            "--set-tag=TITLE=Old Title",
            "--set-tag=ARTIST=Old Artist",
            "--set-tag=ALBUM=The Album",
            "--set-tag=GENRE=Rock",
            "--set-tag=TRACKNUMBER=3",
            "--set-tag=DATE=2019-05-01",
            "--set-tag=X_CUSTOM=kept",
        ])
        .arg(format!("--import-picture-from={}", png.display()))
        .arg(&path));
    run(Command::new("metaflac")
        .args(["--remove", "--block-type=PADDING", "--dont-use-padding"])
        .arg(&path));
    run(Command::new("metaflac")
        .arg("--add-padding=8192")
        .arg(&path));
    std::fs::read(&path).unwrap()
}

#[test]
fn edited_tags_read_back_and_the_rest_survives() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tagged_flac(dir.path());
    let o = original(&bytes, "flac", "a.flac");
    let edits = [
        edit("title", &["New Title"]),
        edit("artist", &["B", "C"]),
        edit("genre", &[]),
        edit("tracktotal", &["12"]),
        edit("mood", &["calm"]),
    ];
    let plan = synthesize(&bytes, o, &edits).unwrap();
    // Small edits fit in the old padding: the size does not change.
    assert_eq!(plan.len(), bytes.len() as u64);
    let served = serve(&plan, &bytes, 4093);
    assert_eq!(&served[..4], b"fLaC");
    let s = scan(&served, "a.flac");
    assert_eq!(values(&s, "title"), ["New Title"]);
    assert_eq!(values(&s, "artist"), ["B", "C"]);
    assert!(values(&s, "genre").is_empty());
    assert_eq!(values(&s, "tracktotal"), ["12"]);
    assert_eq!(values(&s, "mood"), ["calm"]);
    assert_eq!(values(&s, "album"), ["The Album"]);
    assert_eq!(values(&s, "track"), ["3"]);
    assert_eq!(values(&s, "date"), ["2019-05-01"]);
    assert!(s.has_art, "the PICTURE block was carried over");
    // The audio frames are the original's, byte for byte.
    let body = &bytes[o.audio_offset as usize..(o.audio_offset + o.audio_length) as usize];
    assert_eq!(s.audio_length, o.audio_length);
    assert_eq!(&served[s.audio_offset as usize..], body);
    // metaflac sees the custom field and the picture; flac decodes cleanly.
    let path = write(dir.path(), "served.flac", &served);
    let tags = run_text(
        Command::new("metaflac")
            .arg("--export-tags-to=-")
            .arg(&path),
    );
    assert!(tags.contains("X_CUSTOM=kept"), "{tags}");
    let list = run_text(Command::new("metaflac").arg("--list").arg(&path));
    assert!(list.contains("type: 6 (PICTURE)"), "{list}");
    run(Command::new("flac").args(["-t", "-s"]).arg(&path));
    assert_eq!(decode_errors(&path), "");
    // Deterministic: the same edits give the same plan.
    assert_eq!(synthesize(&bytes, o, &edits).unwrap(), plan);
}

#[test]
fn a_large_edit_rounds_the_header_and_still_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tagged_flac(dir.path());
    let o = original(&bytes, "flac", "a.flac");
    let long = "x".repeat(20_000);
    let plan = synthesize(&bytes, o, &[edit("comment", &[&long])]).unwrap();
    let header = plan.len() - o.audio_length;
    assert_eq!(header % 4096, 0, "header rounded up to 4 KiB: {header}");
    let served = serve(&plan, &bytes, 4093);
    let s = scan(&served, "a.flac");
    assert_eq!(values(&s, "comment"), [long.as_str()]);
    assert!(s.has_art);
    let path = write(dir.path(), "big.flac", &served);
    run(Command::new("flac").args(["-t", "-s"]).arg(&path));
    // The plan stores the picture by reference, not its bytes.
    assert!(plan.encode().len() < 30_000);
}

#[test]
fn a_leading_id3v2_is_dropped_and_its_bytes_reused() {
    let dir = tempfile::tempdir().unwrap();
    let flac = tagged_flac(dir.path());
    let mut bytes = b"ID3\x04\x00\x00\x00\x00\x01\x00".to_vec(); // 128-byte tag
    bytes.extend_from_slice(b"TIT2\x00\x00\x00\x04\x00\x00\x03ID3");
    bytes.resize(10 + 128, 0);
    bytes.extend_from_slice(&flac);
    let o = original(&bytes, "flac", "a.flac");
    assert_eq!(
        o.audio_offset,
        138 + original(&flac, "flac", "a.flac").audio_offset
    );
    let plan = synthesize(&bytes, o, &[edit("title", &["T"])]).unwrap();
    assert_eq!(plan.len(), bytes.len() as u64);
    let served = serve(&plan, &bytes, 4093);
    assert_eq!(&served[..4], b"fLaC");
    let path = write(dir.path(), "id3.flac", &served);
    run(Command::new("flac").args(["-t", "-s"]).arg(&path));
    assert_eq!(values(&scan(&served, "a.flac"), "title"), ["T"]);
}

#[test]
fn a_flac_without_comment_or_padding_gets_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = encode(dir.path(), "bare.flac", "flac", &[]);
    run(Command::new("metaflac")
        .args([
            "--remove",
            "--block-type=VORBIS_COMMENT,PADDING",
            "--dont-use-padding",
        ])
        .arg(&path));
    let bytes = std::fs::read(&path).unwrap();
    let o = original(&bytes, "flac", "bare.flac");
    let plan = synthesize(&bytes, o, &[edit("album", &["Fresh"])]).unwrap();
    let served = serve(&plan, &bytes, 4093);
    assert_eq!(values(&scan(&served, "x.flac"), "album"), ["Fresh"]);
    let out = write(dir.path(), "out.flac", &served);
    let list = run_text(Command::new("metaflac").arg("--list").arg(&out));
    assert!(
        list.contains("VORBIS_COMMENT") && list.contains("PADDING"),
        "{list}"
    );
    run(Command::new("flac").args(["-t", "-s"]).arg(&out));
}

#[test]
fn hostile_originals_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tagged_flac(dir.path());
    let o = original(&bytes, "flac", "a.flac");
    let edits = [edit("title", &["x"])];
    // Truncated anywhere inside the header.
    for cut in [0usize, 3, 4, 7, 20, 42, 60, o.audio_offset as usize - 1] {
        let short = &bytes[..cut];
        let o = super::super::Original {
            size: cut as u64,
            audio_offset: o.audio_offset.min(cut as u64),
            audio_length: 0,
            ..o
        };
        assert!(synthesize(short, o, &edits).is_err(), "cut at {cut}");
    }
    // A block length past the audio offset and past the end of the file.
    let mut long = bytes.clone();
    long[42 + 1..42 + 4].copy_from_slice(&[0xff, 0xff, 0xff]);
    assert!(synthesize(&long, o, &edits).is_err());
    // The catalog's audio offset disagrees with the metadata (stale row).
    let stale = super::super::Original {
        audio_offset: o.audio_offset + 1,
        audio_length: o.audio_length - 1,
        ..o
    };
    assert!(synthesize(&bytes, stale, &edits).is_err());
    // An audio range outside the file.
    let outside = super::super::Original {
        audio_length: o.audio_length + 1,
        ..o
    };
    assert!(synthesize(&bytes, outside, &edits).is_err());
    // A corrupt comment length.
    let mut bad = bytes.clone();
    let vc = find_block(&bad, 4).unwrap();
    bad[vc + 4..vc + 8].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    assert!(synthesize(&bad, o, &edits).is_err());
}

/// Offset of the first block of `kind`'s header.
fn find_block(b: &[u8], kind: u8) -> Option<usize> {
    let mut pos = 4;
    loop {
        let h = b.get(pos..pos + 4)?;
        if h[0] & 0x7f == kind {
            return Some(pos);
        }
        if h[0] & 0x80 != 0 {
            return None;
        }
        pos += 4 + u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
    }
}
