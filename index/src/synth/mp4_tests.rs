use super::super::testkit::*;
use super::super::Slice;
use super::*;
use lofty::tag::ItemKey;
use std::path::{Path, PathBuf};

/// The top-level boxes of a served file, by type.
fn top_kinds(path: &Path) -> Vec<[u8; 4]> {
    let bytes = std::fs::read(path).unwrap();
    top_level_boxes(&mut Slice(&bytes), bytes.len() as u64)
        .unwrap()
        .iter()
        .map(|b| b.kind)
        .collect()
}

/// Edits every kind of item, and checks the result with ffmpeg, ffprobe
/// and lofty; returns the served file.
fn edit_and_check(dir: &Path, f: &Path) -> PathBuf {
    let jpeg = picture(dir, "cover.jpg");
    let jpeg_len = std::fs::metadata(&jpeg).unwrap().len() as usize;
    mutagen(
        f,
        &format!(
            "from mutagen.mp4 import MP4Cover\n\
         f['\\xa9nam'] = ['Old']; f['\\xa9alb'] = ['Kept']; f['\\xa9day'] = ['1999']\n\
         f['trkn'] = [(3, 12)]\n\
         f['covr'] = [MP4Cover(open({jpeg:?}, 'rb').read(), MP4Cover.FORMAT_JPEG)]\n\
         f['----:com.apple.iTunes:LABEL'] = [b'Old Label']\n\
         f.save()"
        ),
    );
    let edits = [
        edit("title", &["New Title"]),
        edit("artist", &["A", "B"]),
        edit("track", &["7"]),
        edit("disc", &["2"]),
        edit("disctotal", &["3"]),
        edit("compilation", &["1"]),
        edit("label", &["New Label"]),
        edit("musicbrainz_trackid", &["a1b2"]),
        edit("date", &["2001-02-03"]),
        edit("year", &["2001"]),
    ];
    let plan = synthesize_file(f, "m4a", &edits).unwrap();
    let out = served(dir, f, &plan, "served.m4a");
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(f));
    assert_eq!(ffprobe_tag(&out, "title").as_deref(), Some("New Title"));
    assert_eq!(ffprobe_tag(&out, "album").as_deref(), Some("Kept"));
    assert_eq!(ffprobe_tag(&out, "track").as_deref(), Some("7/12"));
    assert_eq!(ffprobe_tag(&out, "disc").as_deref(), Some("2/3"));
    assert_eq!(ffprobe_tag(&out, "date").as_deref(), Some("2001-02-03"));
    assert_eq!(lofty_get(&out, ItemKey::TrackTitle), ["New Title"]);
    assert_eq!(lofty_get(&out, ItemKey::TrackArtist), ["A", "B"]);
    assert_eq!(lofty_get(&out, ItemKey::Label), ["New Label"]);
    assert_eq!(lofty_get(&out, ItemKey::MusicBrainzRecordingId), ["a1b2"]);
    assert_eq!(lofty_get(&out, ItemKey::FlagCompilation), ["1"]);
    assert_eq!(lofty_get(&out, ItemKey::TrackTotal), ["12"]);
    // The picture nobody edited is carried over byte for byte.
    let cover = |p: &Path| {
        use lofty::prelude::TaggedFileExt;
        let f = lofty::read_from_path(p).unwrap();
        f.primary_tag().unwrap().pictures()[0].data().to_vec()
    };
    assert_eq!(cover(&out), cover(f));
    assert_eq!(cover(&out).len(), jpeg_len);
    out
}

#[test]
fn moov_after_mdat_is_rewritten_and_nothing_else_moves() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &[]);
    assert_eq!(top_kinds(&f).last(), Some(b"moov"));
    let out = edit_and_check(dir.path(), &f);
    let orig = std::fs::read(&f).unwrap();
    let new = std::fs::read(&out).unwrap();
    let moov = top_level_boxes(&mut Slice(&orig), orig.len() as u64)
        .unwrap()
        .into_iter()
        .find(|b| &b.kind == b"moov")
        .unwrap();
    assert_eq!(orig[..moov.offset as usize], new[..moov.offset as usize]);
}

#[test]
fn moov_first_shifts_chunk_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &["-movflags", "+faststart"]);
    assert_eq!(top_kinds(&f)[1], *b"moov");
    edit_and_check(dir.path(), &f);
}

#[test]
fn free_box_after_moov_absorbs_a_smaller_moov() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &["-movflags", "+faststart"]);
    let kinds = top_kinds(&f);
    assert_eq!(&kinds[1..3], [*b"moov", *b"free"]);
    // Removing the encoder item shrinks moov; the free box grows instead
    // of every chunk offset moving.
    let plan = synthesize_file(&f, "m4a", &[edit("encoder", &[])]).unwrap();
    let out = served(dir.path(), &f, &plan, "served.m4a");
    let orig = std::fs::read(&f).unwrap();
    let new = std::fs::read(&out).unwrap();
    assert_eq!(orig.len(), new.len());
    let mdat = |b: &[u8]| b.windows(4).position(|w| w == b"mdat").unwrap();
    assert_eq!(mdat(&orig), mdat(&new));
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(&f));
    assert!(lofty_get(&out, ItemKey::EncoderSoftware).is_empty());
}

#[test]
fn padding_inside_meta_keeps_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &["-movflags", "+faststart"]);
    // mutagen leaves a free box of padding after ilst.
    mutagen(&f, "f['\\xa9nam'] = ['Old']; f.save()");
    let edits = [
        edit("title", &["A longer title than before"]),
        edit("genre", &["Jazz"]),
    ];
    let plan = synthesize_file(&f, "m4a", &edits).unwrap();
    assert_eq!(plan.len(), std::fs::metadata(&f).unwrap().len());
    assert!(
        matches!(
            plan.segments.as_slice(),
            [
                Segment::Original { offset: 0, .. },
                Segment::Bytes(_),
                Segment::Original { .. }
            ]
        ),
        "{:?}",
        plan.segments
    );
    let out = served(dir.path(), &f, &plan, "served.m4a");
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(&f));
    assert_eq!(
        lofty_get(&out, ItemKey::TrackTitle),
        ["A longer title than before"]
    );
    assert_eq!(lofty_get(&out, ItemKey::Genre), ["Jazz"]);
}

#[test]
fn missing_udta_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &[]);
    // Drop udta from the moov at the end (nothing points into moov).
    let bytes = std::fs::read(&f).unwrap();
    let moov_box = top_level_boxes(&mut Slice(&bytes), bytes.len() as u64)
        .unwrap()
        .into_iter()
        .find(|b| &b.kind == b"moov")
        .unwrap();
    let start = moov_box.offset as usize;
    let mut moov = parse_atom(*b"moov", &bytes[start + 8..], 0).unwrap();
    moov.children_mut().unwrap().retain(|a| &a.kind != b"udta");
    let mut stripped = bytes[..start].to_vec();
    moov.encode(&mut stripped);
    let bare = write(dir.path(), "bare.m4a", &stripped);
    assert_eq!(ffprobe_tag(&bare, "encoder"), None);

    let plan = synthesize_file(&bare, "m4a", &[edit("title", &["Fresh"])]).unwrap();
    let out = served(dir.path(), &bare, &plan, "served.m4a");
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(&f));
    assert_eq!(ffprobe_tag(&out, "title").as_deref(), Some("Fresh"));
    assert_eq!(lofty_get(&out, ItemKey::TrackTitle), ["Fresh"]);
}

#[test]
fn removing_every_tag_and_unedited_items_survive() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &[]);
    mutagen(
        &f,
        "f['\\xa9nam'] = ['T']; f['trkn'] = [(3, 0)]; f['\\xa9gen'] = ['Jazz']; f.save()",
    );
    let plan = synthesize_file(&f, "m4a", &[edit("title", &[]), edit("track", &[])]).unwrap();
    let out = served(dir.path(), &f, &plan, "served.m4a");
    assert_eq!(decode_errors(&out), "");
    assert!(lofty_get(&out, ItemKey::TrackTitle).is_empty());
    assert!(lofty_get(&out, ItemKey::TrackNumber).is_empty());
    assert_eq!(lofty_get(&out, ItemKey::Genre), ["Jazz"]);
}

#[test]
fn hostile_boxes_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.m4a", "aac", &["-movflags", "+faststart"]);
    let bytes = std::fs::read(&f).unwrap();
    let edits = [edit("title", &["T"])];
    let o = file_original(&f, "m4a");
    let moov_end = 28 + be32(&bytes[28..32]) as usize;
    // Every truncation of the boxes up to the end of moov.
    for cut in 0..moov_end {
        let mut src = Slice(&bytes[..cut]);
        let o = Original {
            size: cut as u64,
            ..o
        };
        assert!(plan(o, &mut src, &edits).is_err(), "cut at {cut}");
    }
    // Bytes flipped anywhere in ftyp and moov.
    for at in 0..moov_end {
        for x in [0x80, 0xFF] {
            let mut b = bytes.clone();
            b[at] ^= x;
            let mut src = Slice(&b);
            let _ = plan(o, &mut src, &edits);
        }
    }
    // A file that says it is shorter than it is, and one with no moov.
    let mut src = Slice(&bytes);
    let e = plan(Original { size: 20, ..o }, &mut src, &edits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad size"), "{e}");
    let mut b = bytes.clone();
    b[32..36].copy_from_slice(b"xxxx");
    let mut src = Slice(&b);
    let e = plan(o, &mut src, &edits).unwrap_err().to_string();
    assert!(e.contains("no 'moov'"), "{e}");
    // A 32-bit chunk offset that cannot move.
    let mut moov = parse_atom(*b"moov", &bytes[36..moov_end], 0).unwrap();
    let stco = moov
        .child_mut(b"trak")
        .and_then(|a| a.child_mut(b"mdia"))
        .and_then(|a| a.child_mut(b"minf"))
        .and_then(|a| a.child_mut(b"stbl"))
        .and_then(|a| a.child_mut(b"stco"))
        .unwrap();
    let Body::Leaf(p) = &mut stco.body else {
        panic!()
    };
    p[8..12].copy_from_slice(&(u32::MAX - 4).to_be_bytes());
    let e = shift_chunk_offsets(&mut moov, 0, 100)
        .unwrap_err()
        .to_string();
    assert!(e.contains("overflow"), "{e}");
}
