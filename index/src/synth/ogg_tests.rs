use super::super::testkit::*;
use super::super::Slice;
use super::*;
use lofty::tag::ItemKey;

/// Every page of `bytes`: CRC right, one serial, sequence numbers 0, 1, 2, ...
fn check_pages(bytes: &[u8]) -> usize {
    let mut pos = 0;
    let mut n = 0u32;
    let serial = le32(&bytes[14..18]);
    while pos < bytes.len() {
        let page = parse_page(bytes, pos).expect("a page");
        let mut copy = page.bytes.to_vec();
        set_crc(&mut copy);
        assert_eq!(copy, page.bytes, "CRC of page {n} at byte {pos}");
        assert_eq!(page.seq, n, "sequence number of the page at byte {pos}");
        assert_eq!(page.serial, serial);
        pos += page.bytes.len();
        n += 1;
    }
    n as usize
}

#[test]
fn crc_matches_the_ogg_reference_pages() {
    // ffmpeg and libogg wrote these pages; our CRC must agree with theirs.
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.ogg", "libvorbis", &[]);
    assert!(check_pages(&std::fs::read(&f).unwrap()) > 3);
}

fn same_page_count(codec: &str, name: &str, format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), name, codec, &[]);
    mutagen(&f, "f['title'] = 'Old'; f['album'] = 'Kept'; f.save()");
    let edits = [
        edit("title", &["New Title"]),
        edit("artist", &["A", "B"]),
        edit("album", &[]),
    ];
    let plan = synthesize_file(&f, format, &edits).unwrap();
    let o = file_original(&f, format);
    assert!(
        matches!(plan.segments[1], Segment::Original { offset, len } if offset == o.audio_offset && len == o.size - o.audio_offset),
        "the audio pages are served as they are: {:?}",
        plan.segments[1]
    );
    let out = served(dir.path(), &f, &plan, &format!("served.{format}"));
    check_pages(&std::fs::read(&out).unwrap());
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(&f));
    assert_eq!(ffprobe_tag(&out, "title").as_deref(), Some("New Title"));
    assert_eq!(ffprobe_tag(&out, "album"), None);
    assert_eq!(lofty_get(&out, ItemKey::TrackTitle), ["New Title"]);
    assert_eq!(lofty_get(&out, ItemKey::TrackArtist), ["A", "B"]);
}

#[test]
fn vorbis_edit_keeps_every_audio_page() {
    same_page_count("libvorbis", "x.ogg", "ogg");
}

#[test]
fn opus_edit_keeps_every_audio_page() {
    same_page_count("libopus", "x.opus", "opus");
}

fn renumbered(codec: &str, name: &str, format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), name, codec, &[]);
    mutagen(&f, "f['title'] = 'Old'; f.save()");
    let big = "x".repeat(200 * 1024);
    let edits = [edit("comment", &[&big]), edit("title", &["Big"])];
    let plan = synthesize_file(&f, format, &edits).unwrap();
    let Segment::OggRenumbered { seq_delta, .. } = &plan.segments[1] else {
        panic!("a 200 KB comment needs more pages: {:?}", plan.segments[1]);
    };
    assert!(
        *seq_delta >= 3,
        "200 KB is at least 4 pages, not {seq_delta}"
    );
    let out = served(dir.path(), &f, &plan, &format!("served.{format}"));
    let pages = check_pages(&std::fs::read(&out).unwrap());
    assert_eq!(
        pages,
        check_pages(&std::fs::read(&f).unwrap()) + *seq_delta as usize
    );
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(&f));
    assert_eq!(lofty_get(&out, ItemKey::Comment), [big.as_str()]);
    assert_eq!(ffprobe_tag(&out, "title").as_deref(), Some("Big"));

    // And back: the big comment removed. The few bytes left are spread
    // over the pages the served file had, or, if they are too few,
    // served renumbered downwards; either way every page is right.
    let plan = synthesize_file(&out, format, &[edit("comment", &[])]).unwrap();
    let back = served(dir.path(), &out, &plan, &format!("back.{format}"));
    check_pages(&std::fs::read(&back).unwrap());
    assert_eq!(decode_errors(&back), "");
    assert_eq!(pcm(&back), pcm(&f));
    assert!(lofty_get(&back, ItemKey::Comment).is_empty());
    assert_eq!(lofty_get(&back, ItemKey::TrackTitle), ["Big"]);
}

#[test]
fn vorbis_big_comment_renumbers_the_audio_pages() {
    renumbered("libvorbis", "x.ogg", "ogg");
}

#[test]
fn opus_big_comment_renumbers_the_audio_pages() {
    renumbered("libopus", "x.opus", "opus");
}

#[test]
fn fewer_header_pages_renumber_downwards() {
    let dir = tempfile::tempdir().unwrap();
    // ffmpeg writes the comment packet without padding: 100 KB over two
    // pages, and nothing left to spread over two pages once it is gone.
    let big = "w".repeat(100 * 1024);
    let meta = format!("mybig={big}");
    let f = encode(dir.path(), "x.opus", "libopus", &["-metadata", &meta]);
    let plan = synthesize_file(&f, "opus", &[edit("mybig", &[])]).unwrap();
    let Segment::OggRenumbered { seq_delta, .. } = &plan.segments[1] else {
        panic!("one segment cannot fill two pages: {:?}", plan.segments[1]);
    };
    assert_eq!(*seq_delta, u32::MAX, "one page fewer");
    let out = served(dir.path(), &f, &plan, "served.opus");
    let pages = check_pages(&std::fs::read(&out).unwrap());
    assert_eq!(pages + 1, check_pages(&std::fs::read(&f).unwrap()));
    assert_eq!(decode_errors(&out), "");
    assert_eq!(pcm(&out), pcm(&f));
    assert!(lofty_get(&out, ItemKey::Comment).is_empty());
}

#[test]
fn a_corrupt_page_stays_corrupt_when_renumbered() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.ogg", "libvorbis", &[]);
    let o = file_original(&f, "ogg");
    let mut bytes = std::fs::read(&f).unwrap();
    let at = o.audio_offset as usize + 100;
    bytes[at] ^= 0x10;
    let bad = write(dir.path(), "bad.ogg", &bytes);
    let big = "q".repeat(100 * 1024);
    let plan = synthesize_file(&bad, "ogg", &[edit("comment", &[&big])]).unwrap();
    assert!(matches!(plan.segments[1], Segment::OggRenumbered { .. }));
    let served = serve(&plan, &bytes, 4096);
    let mut pos = 0;
    let mut wrong = 0;
    while pos < served.len() {
        let page = parse_page(&served, pos).unwrap();
        let mut copy = page.bytes.to_vec();
        set_crc(&mut copy);
        wrong += usize::from(copy != page.bytes);
        pos += page.bytes.len();
    }
    assert_eq!(wrong, 1, "the page with the flipped byte, and only it");
}

#[test]
fn renumbered_reads_agree_at_every_offset_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.ogg", "libvorbis", &[]);
    let big = "y".repeat(100 * 1024);
    let plan = synthesize_file(&f, "ogg", &[edit("comment", &[&big])]).unwrap();
    let bytes = std::fs::read(&f).unwrap();
    let whole = serve(&plan, &bytes, 1 << 20);
    for step in [1, 27, 255, 4096, 65536 + 3] {
        assert!(serve(&plan, &bytes, step) == whole, "reads of {step} bytes");
    }
}

#[test]
fn opus_binary_tail_after_the_comments_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.opus", "libopus", &[]);
    let bytes = std::fs::read(&f).unwrap();
    let o = file_original(&f, "opus");
    let head = &bytes[..o.audio_offset as usize];
    let mut pages = Vec::new();
    let mut pos = 0;
    while pos < head.len() {
        let p = parse_page(head, pos).unwrap();
        pos += p.bytes.len();
        pages.push(p);
    }
    let mut packet = reassemble(&pages).unwrap().remove(1);
    packet.extend_from_slice(b"\x01binary");
    let rewritten = rewrite_comments(Codec::Opus, &packet, &[edit("title", &["T"])]).unwrap();
    assert!(rewritten.ends_with(b"\x01binary"));
    assert!(rewritten.windows(7).any(|w| w == b"TITLE=T"));
}

#[test]
fn hostile_headers_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "x.ogg", "libvorbis", &[]);
    let bytes = std::fs::read(&f).unwrap();
    let o = file_original(&f, "ogg");
    let edits = [edit("title", &["T"])];
    let head_len = o.audio_offset as usize;
    // Every truncation of the header pages.
    for cut in (0..head_len).step_by(7) {
        let mut src = Slice(&bytes[..cut]);
        let o = Original {
            size: cut as u64 + 100,
            ..o
        };
        assert!(plan(o, &mut src, &edits).is_err(), "cut at {cut}");
    }
    // Bytes flipped anywhere in the header (sizes, lacing, lengths).
    for at in (0..head_len).step_by(3) {
        let mut b = bytes.clone();
        b[at] ^= 0xA5;
        let mut src = Slice(&b);
        let _ = plan(o, &mut src, &edits);
    }
    // Another stream's page among the headers.
    let mut b = bytes.clone();
    let second = 27
        + usize::from(b[26])
        + b[27..27 + usize::from(b[26])]
            .iter()
            .map(|&l| usize::from(l))
            .sum::<usize>();
    b[second + 14] ^= 1;
    let mut src = Slice(&b);
    let e = plan(o, &mut src, &edits).unwrap_err().to_string();
    assert!(e.contains("multiplexed"), "{e}");
    // A broken page header in the body when pages must be renumbered:
    // an error, or the rest left out of the pages as a trailing tail.
    let serial = le32(&bytes[14..18]);
    let second_body_page = {
        let p = parse_page(&bytes, head_len).unwrap();
        head_len + p.bytes.len()
    };
    for (at, x) in [(0, b'X'), (4, 1), (26, 0xFF), (14, 1), (5, FLAG_BOS)] {
        let mut b = bytes.clone();
        b[second_body_page + at] ^= x;
        let mut src = Slice(&b);
        match page_starts(&mut src, o.audio_offset, o.size, serial) {
            Ok((starts, end)) => {
                assert_eq!(starts.len(), 1, "flip at {at}");
                assert_eq!(end as usize, second_body_page);
            }
            Err(e) => assert!(at != 0, "{e}"),
        }
    }
    // Nonsense page tables given to the renumbering reader.
    let mut src = Slice(&bytes);
    let mut buf = [0u8; 100];
    assert!(read_renumbered(&mut src, 100, 1000, 1, &[5000], 0, &mut buf).is_err());
    assert!(read_renumbered(&mut src, 0, 1 << 30, 1, &[0, 1 << 29], 0, &mut buf).is_err());
}
