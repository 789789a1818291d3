//! Ogg Vorbis and Opus: the comment header packet rewritten into new pages.
//!
//! An Ogg page (RFC 3533) is, byte by byte:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | capture pattern `OggS` |
//! | 4 | version, 0 |
//! | 5 | header type: 1 = continued packet, 2 = first page (BOS), 4 = last page (EOS) |
//! | 6..14 | granule position, LE u64 (-1 when no packet ends on the page) |
//! | 14..18 | stream serial number, LE u32 |
//! | 18..22 | page sequence number, LE u32 |
//! | 22..26 | CRC-32 of the page with this field zeroed (polynomial 0x04c11db7, not reflected, init 0) |
//! | 26 | number of lacing values `n` |
//! | 27..27+n | lacing values: a packet is a run of 255s ended by one value below 255 |
//!
//! The header packets are the identification (alone on the first page),
//! the comments, and for Vorbis the setup packet; audio starts on a fresh
//! page. We keep the first page as it is, rewrite the comment packet, and
//! lay comment (+ setup) out again over as many pages as the original used
//! so every audio page stays byte-identical. When the new comments cannot
//! fit that many pages (pictures added, or so few bytes left that a page
//! would be empty), the audio pages are served renumbered: each page's
//! sequence number shifted and its CRC recomputed on the fly by
//! [`read_renumbered`].
//!
//! Only single-stream files are handled: a multiplexed or chained file is
//! an error, so the caller serves it untouched.
use super::{vorbis, Original, Plan, ReadAt, Segment, TagEdit};
use crate::{Error, Result};
use std::sync::Arc;

/// The header region we are willing to hold in memory (comments with
/// embedded pictures can be several megabytes; more is not plausible).
const MAX_HEADER_BYTES: u64 = 64 << 20;
/// 27 header bytes + 255 lacing values + 255 × 255 payload bytes.
const MAX_PAGE_BYTES: u64 = 27 + 255 + 255 * 255;
const FLAG_CONTINUED: u8 = 1;
const FLAG_BOS: u8 = 2;
const FLAG_EOS: u8 = 4;

fn err(message: impl Into<String>) -> Error {
    Error::Synth(format!("Ogg: {}", message.into()))
}

/// A page parsed out of a byte buffer.
struct Page<'a> {
    bytes: &'a [u8],
    header_type: u8,
    serial: u32,
    seq: u32,
    lacing: &'a [u8],
    payload: &'a [u8],
}

/// Parses the page starting at `buf[pos..]`; `buf` must hold all of it.
fn parse_page(buf: &[u8], pos: usize) -> Result<Page<'_>> {
    let rest = &buf[pos.min(buf.len())..];
    if rest.len() < 27 || &rest[0..4] != b"OggS" {
        return Err(err(format!("no page at byte {pos}")));
    }
    if rest[4] != 0 {
        return Err(err(format!(
            "unknown page version {} at byte {pos}",
            rest[4]
        )));
    }
    let nsegs = usize::from(rest[26]);
    let lacing = rest
        .get(27..27 + nsegs)
        .ok_or_else(|| err(format!("truncated page at byte {pos}")))?;
    let data_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let total = 27 + nsegs + data_len;
    let bytes = rest
        .get(..total)
        .ok_or_else(|| err(format!("truncated page at byte {pos}")))?;
    Ok(Page {
        bytes,
        header_type: rest[5],
        serial: le32(&rest[14..18]),
        seq: le32(&rest[18..22]),
        lacing,
        payload: &bytes[27 + nsegs..],
    })
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The Ogg CRC-32: polynomial 0x04c11db7, MSB first, init 0, no final xor.
fn crc32(bytes: &[u8]) -> u32 {
    let table = crc_table();
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[usize::from(((crc >> 24) as u8) ^ b)]
    })
}

fn crc_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *slot = r;
        }
        t
    })
}

/// Zeroes the CRC field of a whole page in `page`, then writes the right one.
fn set_crc(page: &mut [u8]) {
    page[22..26].fill(0);
    let crc = crc32(page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
}

/// The bits of a sequence number that change when `delta` is added.
fn seq_delta_bits(seq: u32, delta: u32) -> u32 {
    seq ^ seq.wrapping_add(delta)
}

/// The CRC of a page of `page_len` bytes whose stored CRC is `stored`
/// once its sequence number is xor-ed with `seq_xor`. The CRC is linear
/// (init 0, no final xor), so crc(new) = crc(old) ^ crc(old ^ new), and
/// old ^ new is zero but for the sequence field: a page whose CRC was
/// wrong in the original stays exactly as wrong, rather than corrupt
/// data being blessed with a fresh checksum.
fn renumbered_crc(stored: u32, page_len: usize, seq_xor: u32) -> u32 {
    let table = crc_table();
    // Leading zero bytes leave a zero CRC as it is: start at the field.
    let mut crc = seq_xor.to_le_bytes().iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[usize::from(((crc >> 24) as u8) ^ b)]
    });
    for _ in 22..page_len {
        crc = (crc << 8) ^ table[usize::from((crc >> 24) as u8)];
    }
    stored ^ crc
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Vorbis,
    Opus,
}

impl Codec {
    fn of(ident: &[u8]) -> Result<Codec> {
        if ident.starts_with(b"\x01vorbis") {
            Ok(Codec::Vorbis)
        } else if ident.starts_with(b"OpusHead") {
            Ok(Codec::Opus)
        } else {
            Err(err("only Vorbis and Opus streams are supported"))
        }
    }

    fn header_packets(self) -> usize {
        match self {
            Codec::Vorbis => 3,
            Codec::Opus => 2,
        }
    }

    fn comment_magic(self) -> &'static [u8] {
        match self {
            Codec::Vorbis => b"\x03vorbis",
            Codec::Opus => b"OpusTags",
        }
    }
}

pub(super) fn plan(o: Original<'_>, src: &mut dyn ReadAt, edits: &[TagEdit]) -> Result<Plan> {
    if o.audio_offset == 0 || o.audio_offset >= o.size {
        return Err(err("the audio body is not where the catalog says"));
    }
    if o.audio_offset > MAX_HEADER_BYTES {
        return Err(err(format!(
            "{} bytes of header pages is more than we synthesize",
            o.audio_offset
        )));
    }
    let head = read_fully(src, 0, o.audio_offset as usize)?;
    let mut pages = Vec::new();
    let mut pos = 0;
    while pos < head.len() {
        let page = parse_page(&head, pos)?;
        pos += page.bytes.len();
        pages.push(page);
    }
    let first = &pages[0];
    if first.header_type & FLAG_BOS == 0 {
        return Err(err("the first page is not a beginning of stream"));
    }
    for p in &pages[1..] {
        if p.serial != first.serial {
            return Err(err("multiplexed streams are not supported"));
        }
        if p.header_type & (FLAG_BOS | FLAG_EOS) != 0 {
            return Err(err("a header page begins or ends the stream"));
        }
    }
    let packets = reassemble(&pages)?;
    let codec = Codec::of(&packets[0])?;
    if packets.len() != codec.header_packets() {
        return Err(err(format!(
            "expected {} header packets before the audio, found {}",
            codec.header_packets(),
            packets.len()
        )));
    }
    // The identification packet must be the first page's only content, so
    // the page can be served as it is.
    if first.lacing.iter().filter(|&&l| l < 255).count() != 1 || first.lacing.last() == Some(&255) {
        return Err(err(
            "the first page holds more than the identification packet",
        ));
    }
    let mut new_packets = vec![rewrite_comments(codec, &packets[1], edits)?];
    new_packets.extend(packets[2..].iter().cloned());

    let old_count = pages.len() - 1;
    let segments = lacing_values(&new_packets);
    let same_count = segments.len() >= old_count && segments.len() <= 255 * old_count;
    let new_count = if same_count {
        old_count
    } else {
        segments.len().div_ceil(255)
    };
    let mut head_out = first.bytes.to_vec();
    paginate(
        &mut head_out,
        &new_packets,
        &segments,
        new_count,
        first.serial,
        first.seq.wrapping_add(1),
    );
    let mut out = vec![Segment::Bytes(Arc::from(head_out))];
    let body_len = o.size - o.audio_offset;
    if same_count {
        out.push(Segment::Original {
            offset: o.audio_offset,
            len: body_len,
        });
    } else {
        let seq_delta = (new_count as u32).wrapping_sub(old_count as u32);
        let (starts, pages_end) = page_starts(src, o.audio_offset, o.size, first.serial)?;
        out.push(Segment::OggRenumbered {
            offset: o.audio_offset,
            len: pages_end - o.audio_offset,
            seq_delta,
            pages: Arc::from(starts),
        });
        if pages_end < o.size {
            out.push(Segment::Original {
                offset: pages_end,
                len: o.size - pages_end,
            });
        }
    }
    Ok(Plan { segments: out })
}

/// The packets completed on `pages`; every page's content must belong to
/// a packet that also ends within them.
fn reassemble(pages: &[Page<'_>]) -> Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut open = false;
    for (i, page) in pages.iter().enumerate() {
        let continued = page.header_type & FLAG_CONTINUED != 0;
        if continued != open {
            return Err(err(format!(
                "header page {i} has a wrong continuation flag"
            )));
        }
        let mut at = 0;
        for &l in page.lacing {
            let l = usize::from(l);
            current.extend_from_slice(&page.payload[at..at + l]);
            at += l;
            if l < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        open = page.lacing.last() == Some(&255);
    }
    if open {
        return Err(err(
            "the last header packet continues past the header pages (audio shares its page)",
        ));
    }
    if packets.is_empty() {
        return Err(err("no header packets"));
    }
    Ok(packets)
}

/// The comment packet with `edits` applied; anything after the comments
/// (Vorbis's framing bit, Opus's binary data) kept as it was.
fn rewrite_comments(codec: Codec, packet: &[u8], edits: &[TagEdit]) -> Result<Vec<u8>> {
    let magic = codec.comment_magic();
    let body = packet
        .strip_prefix(magic)
        .ok_or_else(|| err("the second header packet is not the comment packet"))?;
    let used = comments_length(body)?;
    let mut comments = vorbis::Comments::parse(&body[..used])?;
    comments.apply(edits);
    let mut out = magic.to_vec();
    out.extend_from_slice(&comments.encode());
    let rest = &body[used..];
    if codec == Codec::Vorbis && rest.is_empty() {
        out.push(1);
    } else {
        out.extend_from_slice(rest);
    }
    Ok(out)
}

/// The length of the Vorbis comment structure at the start of `b`: vendor
/// length and string, count, and each length-prefixed field.
fn comments_length(b: &[u8]) -> Result<usize> {
    let truncated = || err("truncated comment packet");
    let field = |at: usize| -> Result<usize> {
        let n = b.get(at..at + 4).ok_or_else(truncated)?;
        let end = (at + 4)
            .checked_add(le32(n) as usize)
            .filter(|&e| e <= b.len())
            .ok_or_else(truncated)?;
        Ok(end)
    };
    let mut at = field(0)?;
    let count = le32(b.get(at..at + 4).ok_or_else(truncated)?);
    at += 4;
    // Each field takes at least its four length bytes.
    if count as usize > (b.len() - at) / 4 {
        return Err(truncated());
    }
    for _ in 0..count {
        at = field(at)?;
    }
    Ok(at)
}

/// The lacing values of `packets` in order.
fn lacing_values(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut lacing = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
    }
    lacing
}

/// Appends `pages` pages carrying `packets` (whose lacing values are
/// `lacing`) to `out`, the lacing values split evenly between them:
/// `lacing.len()` must be within `pages..=255 * pages`.
fn paginate(
    out: &mut Vec<u8>,
    packets: &[Vec<u8>],
    lacing: &[u8],
    pages: usize,
    serial: u32,
    seq: u32,
) {
    let data: Vec<u8> = packets.concat();
    let (mut seg_at, mut data_at) = (0, 0);
    let mut continued = false;
    for i in 0..pages {
        let n = lacing.len() / pages + usize::from(i < lacing.len() % pages);
        let page_lacing = &lacing[seg_at..seg_at + n];
        let len: usize = page_lacing.iter().map(|&l| usize::from(l)).sum();
        // A page on which no packet ends has no granule position (-1).
        let granule: u64 = if page_lacing.iter().any(|&l| l < 255) {
            0
        } else {
            u64::MAX
        };
        let start = out.len();
        out.extend_from_slice(b"OggS\x00");
        out.push(if continued { FLAG_CONTINUED } else { 0 });
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&serial.to_le_bytes());
        out.extend_from_slice(&seq.wrapping_add(i as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(n as u8);
        out.extend_from_slice(page_lacing);
        out.extend_from_slice(&data[data_at..data_at + len]);
        set_crc(&mut out[start..]);
        continued = page_lacing.last() == Some(&255);
        seg_at += n;
        data_at += len;
    }
}

/// The start of every page from `start` up to `end`, and where the pages
/// end: bytes after the last page that are not a page (an appended tag)
/// are left out; a page of another stream or a truncated page is an error.
fn page_starts(src: &mut dyn ReadAt, start: u64, end: u64, serial: u32) -> Result<(Vec<u64>, u64)> {
    let mut starts = Vec::new();
    let mut pos = start;
    while pos < end {
        let mut h = [0u8; 27 + 255];
        let avail = (end - pos).min(h.len() as u64) as usize;
        let h = &mut h[..avail];
        super::read_exact(src, pos, h, "Ogg page header")?;
        if avail < 4 || &h[0..4] != b"OggS" {
            if starts.is_empty() {
                return Err(err(format!("no page at byte {pos}")));
            }
            break;
        }
        let truncated = || err(format!("truncated page at byte {pos}"));
        if avail < 27 || h[4] != 0 {
            return Err(truncated());
        }
        if le32(&h[14..18]) != serial || h[5] & FLAG_BOS != 0 {
            return Err(err("multiplexed or chained streams are not supported"));
        }
        let nsegs = usize::from(h[26]);
        let lacing = h.get(27..27 + nsegs).ok_or_else(truncated)?;
        let len = 27 + nsegs as u64 + lacing.iter().map(|&l| u64::from(l)).sum::<u64>();
        if pos + len > end {
            return Err(truncated());
        }
        starts.push(pos);
        pos += len;
    }
    Ok((starts, pos))
}

/// Serves `buf.len()` bytes at `at` within the run of whole pages
/// `offset..offset + len` of the original (page starts `pages`), each
/// page's sequence number `seq_delta` higher and its CRC recomputed.
/// Whole pages around the range are read, at most 64 KiB more than asked.
pub(super) fn read_renumbered(
    src: &mut dyn ReadAt,
    offset: u64,
    len: u64,
    seq_delta: u32,
    pages: &[u64],
    at: u64,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    use std::io::{Error as IoError, ErrorKind};
    if at >= len || buf.is_empty() {
        return Ok(0);
    }
    let want_start = offset + at;
    let want_end = offset + len.min(at + buf.len() as u64);
    let bad = |what: &str| IoError::new(ErrorKind::InvalidData, format!("Ogg renumbering: {what}"));
    let mut i = pages
        .partition_point(|&p| p <= want_start)
        .checked_sub(1)
        .ok_or_else(|| bad("no page starts before the requested range"))?;
    let mut page = Vec::new();
    while i < pages.len() && pages[i] < want_end {
        let page_start = pages[i];
        let page_end = pages.get(i + 1).copied().unwrap_or(offset + len);
        let page_len = page_end
            .checked_sub(page_start)
            .filter(|&l| (27..=MAX_PAGE_BYTES).contains(&l))
            .ok_or_else(|| bad("page offsets out of order"))?;
        page.resize(page_len as usize, 0);
        let mut got = 0;
        while got < page.len() {
            match src.read_at(page_start + got as u64, &mut page[got..])? {
                0 => return Err(IoError::new(ErrorKind::UnexpectedEof, "Ogg page cut short")),
                n => got += n,
            }
        }
        if &page[0..4] != b"OggS" {
            return Err(bad("the original changed under us (no page where one was)"));
        }
        let seq = le32(&page[18..22]);
        let crc = renumbered_crc(
            le32(&page[22..26]),
            page.len(),
            seq_delta_bits(seq, seq_delta),
        );
        page[18..22].copy_from_slice(&seq.wrapping_add(seq_delta).to_le_bytes());
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        let from = page_start.max(want_start);
        let to = page_end.min(want_end);
        buf[(from - want_start) as usize..(to - want_start) as usize]
            .copy_from_slice(&page[(from - page_start) as usize..(to - page_start) as usize]);
        i += 1;
    }
    Ok((want_end - want_start) as usize)
}

fn read_fully(src: &mut dyn ReadAt, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    super::read_exact(src, offset, &mut buf, "Ogg header pages")?;
    Ok(buf)
}

#[cfg(test)]
#[path = "ogg_tests.rs"]
mod tests;
