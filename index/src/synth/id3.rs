//! MP3 and other ID3-framed streams: a new ID3v2.4 tag in front of the frames.
//!
//! The served file is a new ID3v2.4 tag (no unsynchronisation, no
//! extended header, UTF-8 text frames, multiple values NUL-separated as
//! v2.4 says) followed by the original's audio frames. The new tag starts
//! from the original's leading ID3v2 (v2.3 or v2.4; stacked tags are read
//! in order): every frame nobody edited (APIC pictures, USLT, PRIV, ...)
//! is carried over with its data unchanged, v2.3 frames get v2.4 headers
//! (syncsafe sizes), and v2.3's TYER/TORY become TDRC/TDOR. Frames that
//! cannot be carried safely (compressed, encrypted, grouped, v2.3-only
//! frames such as RVAD, and every v2.2 frame) are dropped rather than
//! copied corrupt. Edits then replace their frames.
//!
//! The original's trailing ID3v1, APEv2 and Lyrics3 tags are not served
//! (they are outside the catalog's audio range). Edits apply to the
//! original's ID3v2 only: a file without one gets a tag holding what its
//! ID3v1 held plus the edits; tags that lived only in APEv2 are not served.
//!
//! Served size: as for FLAC (see `flac`), the file keeps its size when the
//! new tag fits in the bytes the old tags took (leading and trailing), and
//! is otherwise rounded up to 4 KiB.
use super::plan::Builder;
use super::{choose_padding, read_exact, Original, Plan, ReadAt, Slice, TagEdit};
use crate::{Error, Result};

/// Frames up to this size are copied into the plan; larger ones (pictures)
/// are served from the original when their bytes are unchanged.
const COPY_LIMIT: u64 = 4096;
/// The largest size a syncsafe integer holds.
const MAX_SYNCSAFE: u64 = (1 << 28) - 1;
const UTF8: u8 = 3;

fn fail(message: impl std::fmt::Display) -> Error {
    Error::Synth(format!("ID3v2: {message}"))
}

fn syncsafe(b: &[u8]) -> Option<u64> {
    if b[..4].iter().any(|x| x & 0x80 != 0) {
        return None;
    }
    Some(
        b[..4]
            .iter()
            .fold(0u64, |acc, &x| (acc << 7) | u64::from(x)),
    )
}

fn syncsafe_bytes(n: u64) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7f,
        (n >> 14) as u8 & 0x7f,
        (n >> 7) as u8 & 0x7f,
        n as u8 & 0x7f,
    ]
}

/// A leading ID3v2 tag: where it is and how it is written.
struct TagHeader {
    start: u64,
    major: u8,
    flags: u8,
    /// The tag's size without header and footer.
    size: u64,
    /// The first byte after the tag (and its footer).
    end: u64,
}

/// Reads the ID3v2 header at `pos`, if there is one; the tag must end by
/// `limit` (the catalog's audio offset).
fn read_header(src: &mut dyn ReadAt, pos: u64, limit: u64) -> Result<Option<TagHeader>> {
    if pos + 10 > limit {
        return Ok(None);
    }
    let mut h = [0u8; 10];
    read_exact(src, pos, &mut h, "ID3v2 header")?;
    if &h[..3] != b"ID3" {
        return Ok(None);
    }
    if h[3] == 0xff || h[4] == 0xff {
        return Err(fail(format!("bad version at byte {pos}")));
    }
    let size = syncsafe(&h[6..10]).ok_or_else(|| fail(format!("bad tag size at byte {pos}")))?;
    let footer = if h[3] >= 4 && h[5] & 0x10 != 0 { 10 } else { 0 };
    let end = pos + 10 + size + footer;
    if end > limit {
        return Err(fail(format!(
            "the tag at byte {pos} ({size} bytes) runs past the audio at {limit}"
        )));
    }
    Ok(Some(TagHeader {
        start: pos,
        major: h[3],
        flags: h[5],
        size,
        end,
    }))
}

/// The first byte after the ID3v2 tags at the start of the file (some
/// taggers stack several); they must end by `limit`.
pub(super) fn leading_tags_end(src: &mut dyn ReadAt, limit: u64) -> Result<u64> {
    let mut pos = 0;
    for _ in 0..16 {
        match read_header(src, pos, limit)? {
            Some(tag) => pos = tag.end,
            None => break,
        }
    }
    Ok(pos)
}

/// A frame's data: in memory, or a range of the original served as is.
#[derive(Debug, Clone)]
enum Data {
    Bytes(Vec<u8>),
    Original { offset: u64, len: u64 },
}

#[derive(Debug, Clone)]
struct Frame {
    id: [u8; 4],
    data: Data,
}

impl Frame {
    fn text(id: &[u8; 4], data: Vec<u8>) -> Frame {
        Frame {
            id: *id,
            data: Data::Bytes(data),
        }
    }
    fn bytes(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Bytes(b) => Some(b),
            Data::Original { .. } => None,
        }
    }
    fn len(&self) -> u64 {
        match &self.data {
            Data::Bytes(b) => b.len() as u64,
            Data::Original { len, .. } => *len,
        }
    }
}

/// Reverses unsynchronisation: every `FF 00` becomes `FF`.
fn unsync(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut prev_ff = false;
    for &b in bytes {
        if !(prev_ff && b == 0) {
            out.push(b);
        }
        prev_ff = b == 0xff;
    }
    out
}

/// The frames of one tag, v2.4 ids, data de-unsynchronised.
fn read_frames(src: &mut dyn ReadAt, tag: &TagHeader) -> Result<Vec<Frame>> {
    if tag.major != 3 && tag.major != 4 {
        // v2.2's three-letter frames have no safe one-to-one v2.4 form.
        return Ok(Vec::new());
    }
    let body_start = tag.start + 10;
    if tag.major == 3 && tag.flags & 0x80 != 0 {
        // v2.3 unsynchronises the whole tag: undo it in memory, and carry
        // nothing by reference, since offsets no longer match the original.
        let mut raw = vec![0u8; tag.size as usize];
        read_exact(src, body_start, &mut raw, "ID3v2 tag")?;
        let plain = unsync(&raw);
        let inner = TagHeader {
            start: 0,
            major: 3,
            flags: tag.flags,
            size: plain.len() as u64,
            end: plain.len() as u64,
        };
        return walk_frames(&mut Slice(&plain), &inner, 0, false);
    }
    walk_frames(src, tag, body_start, true)
}

/// Walks frames from `body` to `body + tag.size`. Stops at padding or at
/// the first frame that does not parse (what follows cannot be trusted).
fn walk_frames(
    src: &mut dyn ReadAt,
    tag: &TagHeader,
    body: u64,
    by_reference: bool,
) -> Result<Vec<Frame>> {
    let end = body + tag.size;
    let mut pos = body;
    if tag.flags & 0x40 != 0 && pos + 4 <= end {
        let mut e = [0u8; 4];
        read_exact(src, pos, &mut e, "ID3v2 extended header")?;
        let ext = if tag.major == 4 {
            syncsafe(&e).unwrap_or(u64::MAX)
        } else {
            u64::from(u32::from_be_bytes(e)) + 4
        };
        pos = pos.saturating_add(ext);
    }
    let mut frames = Vec::new();
    while pos + 10 <= end {
        let mut h = [0u8; 10];
        read_exact(src, pos, &mut h, "ID3v2 frame header")?;
        let id: [u8; 4] = [h[0], h[1], h[2], h[3]];
        if !id
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            break;
        }
        let size = if tag.major == 4 {
            syncsafe(&h[4..8])
        } else {
            Some(u64::from(u32::from_be_bytes([h[4], h[5], h[6], h[7]])))
        };
        let Some(size) = size.filter(|s| pos + 10 + s <= end) else {
            break;
        };
        let data_at = pos + 10;
        pos = data_at + size;
        let format = h[9];
        let (skip, unsynced, length_indicator) = if tag.major == 4 {
            (format & 0x4c != 0, format & 0x02 != 0, format & 0x01 != 0)
        } else {
            (format & 0xe0 != 0, false, false)
        };
        if skip {
            continue;
        }
        let Some(id) = v24_id(id) else { continue };
        let data = if by_reference && !unsynced && !length_indicator && size > COPY_LIMIT {
            Data::Original {
                offset: data_at,
                len: size,
            }
        } else {
            let mut raw = vec![0u8; size as usize];
            read_exact(src, data_at, &mut raw, "ID3v2 frame")?;
            if unsynced {
                raw = unsync(&raw);
            }
            if length_indicator {
                if raw.len() < 4 {
                    continue;
                }
                raw.drain(..4);
            }
            Data::Bytes(raw)
        };
        frames.push(Frame { id, data });
    }
    Ok(frames)
}

/// The v2.4 id for a v2.3 or v2.4 frame; `None` for frames v2.4 dropped.
fn v24_id(id: [u8; 4]) -> Option<[u8; 4]> {
    match &id {
        b"TYER" => Some(*b"TDRC"),
        b"TORY" => Some(*b"TDOR"),
        b"IPLS" => Some(*b"TIPL"),
        b"TDAT" | b"TIME" | b"TRDA" | b"TSIZ" | b"RVAD" | b"EQUA" => None,
        _ => Some(id),
    }
}

/// Decodes an ID3 text payload (encoding byte first) into its
/// NUL-separated strings.
fn strings(data: &[u8]) -> Vec<String> {
    let Some((&enc, text)) = data.split_first() else {
        return Vec::new();
    };
    decode(enc, text)
}

fn decode(enc: u8, text: &[u8]) -> Vec<String> {
    match enc {
        1 | 2 => {
            let units: Vec<[u8; 2]> = text.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
            let mut big_endian = enc == 2;
            units
                .split(|u| *u == [0, 0])
                .map(|part| {
                    let mut part = part;
                    match part.first() {
                        Some([0xff, 0xfe]) => (big_endian, part) = (false, &part[1..]),
                        Some([0xfe, 0xff]) => (big_endian, part) = (true, &part[1..]),
                        _ => {}
                    }
                    let units = part.iter().map(|u| {
                        if big_endian {
                            u16::from_be_bytes(*u)
                        } else {
                            u16::from_le_bytes(*u)
                        }
                    });
                    char::decode_utf16(units)
                        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                        .collect()
                })
                .collect()
        }
        3 => text
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        _ => text
            .split(|&b| b == 0)
            .map(|s| s.iter().map(|&b| b as char).collect())
            .collect(),
    }
}

/// The description of a TXXX frame (the first string).
fn txxx_description(frame: &Frame) -> Option<String> {
    strings(frame.bytes()?).into_iter().next()
}

/// The description of a COMM or USLT frame (after encoding and language).
fn comm_description(frame: &Frame) -> Option<String> {
    let data = frame.bytes()?;
    if data.len() < 4 {
        return None;
    }
    decode(data[0], &data[4..]).into_iter().next()
}

/// Where a canonical key lives in an ID3v2.4 tag (as lofty reads it, so a
/// rescan gives the key back).
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Text(&'static [u8; 4]),
    /// A text frame of two numbers, "n/total": TRCK, TPOS.
    Pair(&'static [u8; 4], bool),
    /// TDRC; `true` for `year`.
    Date(bool),
    Txxx(String),
    Comment,
    Lyrics,
    Ufid,
}

fn target(key: &str) -> Target {
    use Target::*;
    let key = key.to_ascii_lowercase();
    let text = |id| Text(id);
    let txxx = |d: &str| Txxx(d.to_string());
    match key.as_str() {
        "title" => text(b"TIT2"),
        "subtitle" => text(b"TIT3"),
        "artist" => text(b"TPE1"),
        "albumartist" => text(b"TPE2"),
        "album" => text(b"TALB"),
        "disctitle" => text(b"TSST"),
        "grouping" => text(b"TIT1"),
        "original_album" => text(b"TOAL"),
        "original_artist" => text(b"TOPE"),
        "original_lyricist" => text(b"TOLY"),
        "album_sort" => text(b"TSOA"),
        "albumartist_sort" => text(b"TSO2"),
        "title_sort" => text(b"TSOT"),
        "artist_sort" => text(b"TSOP"),
        "composer_sort" => text(b"TSOC"),
        "writer" | "lyricist" => text(b"TEXT"),
        "composer" => text(b"TCOM"),
        "conductor" => text(b"TPE3"),
        "publisher" | "label" => text(b"TPUB"),
        "radio_station" => text(b"TRSN"),
        "remixer" => text(b"TPE4"),
        "track" => Pair(b"TRCK", false),
        "tracktotal" => Pair(b"TRCK", true),
        "disc" => Pair(b"TPOS", false),
        "disctotal" => Pair(b"TPOS", true),
        "date" => Date(false),
        "year" => Date(true),
        "original_date" => text(b"TDOR"),
        "releasedate" => text(b"TDRL"),
        "isrc" => text(b"TSRC"),
        "compilation" => text(b"TCMP"),
        "original_filename" => text(b"TOFN"),
        "media" => text(b"TMED"),
        "encodedby" => text(b"TENC"),
        "encoder" | "encoder_settings" => text(b"TSSE"),
        "genre" => text(b"TCON"),
        "initial_key" => text(b"TKEY"),
        "mood" => text(b"TMOO"),
        "bpm" => text(b"TBPM"),
        "copyright" => text(b"TCOP"),
        "language" => text(b"TLAN"),
        "movement" => text(b"MVNM"),
        "movementnumber" => text(b"MVIN"),
        "comment" => Comment,
        "lyrics" => Lyrics,
        "musicbrainz_trackid" => Ufid,
        "acoustid_id" => txxx("Acoustid Id"),
        "musicbrainz_releasetrackid" => txxx("MusicBrainz Release Track Id"),
        "musicbrainz_albumid" => txxx("MusicBrainz Album Id"),
        "musicbrainz_releasegroupid" => txxx("MusicBrainz Release Group Id"),
        "musicbrainz_artistid" => txxx("MusicBrainz Artist Id"),
        "musicbrainz_albumartistid" => txxx("MusicBrainz Album Artist Id"),
        "musicbrainz_workid" => txxx("MusicBrainz Work Id"),
        "releasetype" => txxx("MusicBrainz Album Type"),
        "country" => txxx("MusicBrainz Album Release Country"),
        "catalognum" => txxx("CATALOGNUMBER"),
        other => Txxx(other.to_ascii_uppercase()),
    }
}

const MUSICBRAINZ: &str = "http://musicbrainz.org";

/// Whether `frame` holds the key at `target`.
fn holds(frame: &Frame, target: &Target) -> bool {
    match target {
        Target::Text(id) | Target::Pair(id, _) => &frame.id == *id,
        Target::Date(_) => &frame.id == b"TDRC",
        Target::Txxx(d) => {
            &frame.id == b"TXXX"
                && txxx_description(frame).is_some_and(|x| x.eq_ignore_ascii_case(d))
        }
        // iTunes keeps bookkeeping in described comments; they are not the
        // comment (the scanner skips them too).
        Target::Comment => {
            &frame.id == b"COMM" && !comm_description(frame).is_some_and(|d| d.starts_with("iTun"))
        }
        Target::Lyrics => &frame.id == b"USLT",
        Target::Ufid => {
            &frame.id == b"UFID"
                && frame
                    .bytes()
                    .is_some_and(|b| b.starts_with(MUSICBRAINZ.as_bytes()))
        }
    }
}

fn utf8_text(prefix: &[u8], values: &[String]) -> Vec<u8> {
    let mut data = vec![UTF8];
    data.extend_from_slice(prefix);
    data.extend_from_slice(values.join("\0").as_bytes());
    data
}

/// The first value of the first frame with `id`.
fn first_value(frames: &[Frame], id: &[u8; 4]) -> Option<String> {
    let frame = frames.iter().find(|f| &f.id == id)?;
    strings(frame.bytes()?).into_iter().next()
}

fn apply(frames: &mut Vec<Frame>, edits: &[TagEdit]) {
    let date_edited = edits
        .iter()
        .any(|e| e.key.eq_ignore_ascii_case("date") && !e.values.is_empty());
    for edit in edits {
        let target = target(&edit.key);
        let values = &edit.values;
        let new = match &target {
            Target::Pair(id, is_total) => {
                let old = first_value(frames, id).unwrap_or_default();
                let (n, total) = old.split_once('/').unwrap_or((&old, ""));
                let (n, total) = match is_total {
                    false => (values.first().map(String::as_str).unwrap_or(""), total),
                    true => (n, values.first().map(String::as_str).unwrap_or("")),
                };
                let (n, total) = (n.trim(), total.trim());
                // A total without a number cannot be written as "n/total".
                (!n.is_empty()).then(|| {
                    let text = if total.is_empty() {
                        n.to_string()
                    } else {
                        format!("{n}/{total}")
                    };
                    Frame::text(id, utf8_text(b"", &[text]))
                })
            }
            Target::Date(true) if !values.is_empty() => {
                // A full date agreeing with the year says more: keep it.
                let old = first_value(frames, b"TDRC").unwrap_or_default();
                if date_edited || (values.len() == 1 && old.trim().starts_with(&values[0])) {
                    continue;
                }
                Some(Frame::text(b"TDRC", utf8_text(b"", values)))
            }
            _ if values.is_empty() => None,
            Target::Text(id) => Some(Frame::text(id, utf8_text(b"", values))),
            Target::Date(_) => Some(Frame::text(b"TDRC", utf8_text(b"", values))),
            Target::Txxx(d) => Some(Frame::text(
                b"TXXX",
                utf8_text(format!("{d}\0").as_bytes(), values),
            )),
            Target::Comment => Some(Frame::text(b"COMM", utf8_text(b"eng\0", values))),
            Target::Lyrics => Some(Frame::text(b"USLT", utf8_text(b"eng\0", values))),
            Target::Ufid => {
                let mut data = format!("{MUSICBRAINZ}\0").into_bytes();
                data.extend_from_slice(values[0].as_bytes());
                Some(Frame::text(b"UFID", data))
            }
        };
        frames.retain(|f| !holds(f, &target));
        frames.extend(new);
    }
}

/// Frames for what an ID3v1 tag at the end of the file holds.
fn read_id3v1(src: &mut dyn ReadAt, o: &Original<'_>) -> Result<Vec<Frame>> {
    let audio_end = o.audio_offset + o.audio_length;
    if o.size < 128 || o.size - 128 < audio_end {
        return Ok(Vec::new());
    }
    let mut t = [0u8; 128];
    read_exact(src, o.size - 128, &mut t, "ID3v1 tag")?;
    if &t[..3] != b"TAG" {
        return Ok(Vec::new());
    }
    let field = |b: &[u8]| -> String {
        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
        b[..end]
            .iter()
            .map(|&x| x as char)
            .collect::<String>()
            .trim()
            .to_string()
    };
    let mut frames = Vec::new();
    let mut push = |id: &[u8; 4], prefix: &[u8], value: String| {
        if !value.is_empty() {
            frames.push(Frame::text(id, utf8_text(prefix, &[value])));
        }
    };
    push(b"TIT2", b"", field(&t[3..33]));
    push(b"TPE1", b"", field(&t[33..63]));
    push(b"TALB", b"", field(&t[63..93]));
    push(b"TDRC", b"", field(&t[93..97]));
    // ID3v1.1: a zero byte before the comment's last byte makes it a track number.
    let (comment, track) = if t[125] == 0 && t[126] != 0 {
        (&t[97..125], Some(t[126]))
    } else {
        (&t[97..127], None)
    };
    push(b"COMM", b"eng\0", field(comment));
    push(
        b"TRCK",
        b"",
        track.map(|n| n.to_string()).unwrap_or_default(),
    );
    let genre = lofty::id3::v1::GENRES
        .get(t[127] as usize)
        .copied()
        .unwrap_or("");
    push(b"TCON", b"", genre.to_string());
    Ok(frames)
}

pub(super) fn plan(o: Original<'_>, src: &mut dyn ReadAt, edits: &[TagEdit]) -> Result<Plan> {
    let audio_end = o
        .audio_end()
        .ok_or_else(|| fail("the catalog's audio range lies outside the file"))?;
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut had_v2 = false;
    for _ in 0..16 {
        let Some(tag) = read_header(src, pos, o.audio_offset)? else {
            break;
        };
        had_v2 = true;
        frames.extend(read_frames(src, &tag)?);
        pos = tag.end;
    }
    if !had_v2 {
        frames = read_id3v1(src, &o)?;
    }
    apply(&mut frames, edits);

    let frames_len: u64 = frames.iter().map(|f| 10 + f.len()).sum();
    // The old tags' bytes, leading and trailing, may all go to the new tag.
    let reusable = o.size - o.audio_length;
    let (padding, from_original) =
        choose_padding(src, o.audio_offset, 10 + frames_len, reusable, |_| true)?;
    let tag_size = frames_len + padding;
    if tag_size > MAX_SYNCSAFE {
        return Err(fail("the edited tag is larger than ID3v2 allows (256 MiB)"));
    }

    let mut b = Builder::default();
    b.bytes(b"ID3\x04\x00\x00");
    b.bytes(&syncsafe_bytes(tag_size));
    for frame in &frames {
        let len = frame.len();
        if len > MAX_SYNCSAFE {
            return Err(fail("a frame is larger than ID3v2.4 allows"));
        }
        b.bytes(&frame.id);
        b.bytes(&syncsafe_bytes(len));
        b.bytes(&[0, 0]);
        match &frame.data {
            Data::Bytes(bytes) => b.bytes(bytes),
            Data::Original { offset, len } => b.original(*offset, *len),
        }
    }
    b.padding(o.audio_offset, padding, from_original);
    b.original(o.audio_offset, audio_end - o.audio_offset);
    Ok(b.finish())
}

#[cfg(test)]
#[path = "tests_id3.rs"]
mod tests;
