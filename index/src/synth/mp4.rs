//! MP4/M4A: `ilst` rewritten inside a new `moov`; chunk offsets adjusted.
//!
//! A box is `size` (BE u32; 1 = a BE u64 `largesize` follows the type,
//! 0 = to the end of the parent), `type` (4 bytes), payload. Tags live in
//! `moov/udta/meta/ilst`; `meta` is a full box (4 bytes version/flags
//! before its children; QuickTime-style `meta` without them is recognised
//! by `hdlr` coming right away). Each `ilst` item is a box named after
//! its tag (`©nam`, `trkn`, ...) holding one `data` box per value:
//! `data` = type indicator (BE u32: 1 = UTF-8, 0 = binary, 21 = integer),
//! locale (BE u32, 0), value. Freeform items (`----`) hold `mean`
//! ("com.apple.iTunes") and `name` (both full boxes) before their `data`.
//!
//! The served file is the original with `moov` replaced: every box before
//! and after it is served from the original bytes, the new `moov` from
//! memory. Items nobody edited are carried over byte for byte (`covr`
//! included). A `free` box of padding inside `udta/meta` takes up the
//! size change first, so the file keeps its size. When `moov` still
//! changes size and `mdat` follows it, either the
//! `free`/`skip` box right after `moov` absorbs the difference (nothing
//! else moves), or every chunk offset (`stco`/`co64` in every `trak`)
//! pointing past the old `moov` is shifted. A 32-bit `stco` entry that
//! would overflow is an error rather than a promotion to `co64`: it needs
//! a 4 GiB file with `moov` first, which we do not expect to meet.
//! Fragmented files (`moof`) with `moov` first are an error too: their
//! fragment headers can hold absolute offsets we do not rewrite.
use super::{Original, Plan, ReadAt, Segment, TagEdit};
use crate::{Error, Result};
use std::sync::Arc;

/// A `moov` larger than this is not read into memory (real ones are at
/// most a few megabytes, cover art included).
const MAX_MOOV_BYTES: u64 = 64 << 20;
/// Guards the box walk against hostile nesting and box counts.
const MAX_DEPTH: usize = 8;
const MAX_TOP_LEVEL_BOXES: usize = 100_000;
/// The boxes we descend into on the way to `ilst` and `stco`/`co64`.
const CONTAINERS: &[&[u8; 4]] = &[
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"meta", b"ilst",
];
const ITUNES_MEAN: &str = "com.apple.iTunes";

fn err(message: impl Into<String>) -> Error {
    Error::Synth(format!("MP4: {}", message.into()))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn name(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| if b == 0xA9 { '©' } else { char::from(b) })
        .collect()
}

/// A box: a leaf with its payload, or a container with its children.
#[derive(Debug, Clone)]
struct Atom {
    kind: [u8; 4],
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Leaf(Vec<u8>),
    Parent {
        /// Bytes before the children (a full box's version and flags).
        prefix: Vec<u8>,
        children: Vec<Atom>,
        /// Bytes after the last child that are not a box (QuickTime's
        /// 32-bit zero terminator in `udta`).
        tail: Vec<u8>,
    },
}

impl Atom {
    fn leaf(kind: &[u8; 4], payload: Vec<u8>) -> Atom {
        Atom {
            kind: *kind,
            body: Body::Leaf(payload),
        }
    }

    fn parent(kind: &[u8; 4], prefix: Vec<u8>, children: Vec<Atom>) -> Atom {
        Atom {
            kind: *kind,
            body: Body::Parent {
                prefix,
                children,
                tail: Vec::new(),
            },
        }
    }

    fn children_mut(&mut self) -> Option<&mut Vec<Atom>> {
        match &mut self.body {
            Body::Parent { children, .. } => Some(children),
            Body::Leaf(_) => None,
        }
    }

    fn child_mut(&mut self, kind: &[u8; 4]) -> Option<&mut Atom> {
        self.children_mut()?.iter_mut().find(|a| &a.kind == kind)
    }

    fn payload_len(&self) -> u64 {
        match &self.body {
            Body::Leaf(p) => p.len() as u64,
            Body::Parent {
                prefix,
                children,
                tail,
            } => (prefix.len() + tail.len()) as u64 + children.iter().map(Atom::len).sum::<u64>(),
        }
    }

    /// The encoded size: a 32-bit size unless the box needs `largesize`.
    fn len(&self) -> u64 {
        let payload = self.payload_len();
        if payload + 8 > u64::from(u32::MAX) {
            payload + 16
        } else {
            payload + 8
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let len = self.len();
        if len > u64::from(u32::MAX) {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&self.kind);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(&self.kind);
        }
        match &self.body {
            Body::Leaf(p) => out.extend_from_slice(p),
            Body::Parent {
                prefix,
                children,
                tail,
            } => {
                out.extend_from_slice(prefix);
                for c in children {
                    c.encode(out);
                }
                out.extend_from_slice(tail);
            }
        }
    }
}

/// One box header found in `bytes` at `pos`: (type, header length, total length).
fn box_at(bytes: &[u8], pos: usize) -> Result<([u8; 4], usize, usize)> {
    let rest = &bytes[pos..];
    if rest.len() < 8 {
        return Err(err(format!("truncated box header at byte {pos}")));
    }
    let kind = [rest[4], rest[5], rest[6], rest[7]];
    let (header, len) = match be32(&rest[0..4]) {
        0 => (8, rest.len() as u64),
        1 => {
            let l = rest
                .get(8..16)
                .ok_or_else(|| err(format!("truncated '{}' box header", name(&kind))))?;
            (16, u64::from_be_bytes(l.try_into().expect("8 bytes")))
        }
        n => (8, u64::from(n)),
    };
    if len < header as u64 || len > rest.len() as u64 {
        return Err(err(format!(
            "'{}' box at byte {pos} has a bad size {len}",
            name(&kind)
        )));
    }
    Ok((kind, header, len as usize))
}

/// Parses the boxes in `bytes`, descending into [`CONTAINERS`].
fn parse_children(bytes: &[u8], depth: usize) -> Result<(Vec<Atom>, Vec<u8>)> {
    if depth > MAX_DEPTH {
        return Err(err("boxes nested too deeply"));
    }
    let mut children = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 8 && rest.iter().all(|&b| b == 0) {
            return Ok((children, rest.to_vec()));
        }
        let (kind, header, len) = box_at(bytes, pos)?;
        let payload = &bytes[pos + header..pos + len];
        children.push(parse_atom(kind, payload, depth)?);
        pos += len;
    }
    Ok((children, Vec::new()))
}

fn parse_atom(kind: [u8; 4], payload: &[u8], depth: usize) -> Result<Atom> {
    if !CONTAINERS.contains(&&kind) {
        return Ok(Atom::leaf(&kind, payload.to_vec()));
    }
    // `ilst` items are kept whole: they are rewritten or carried over as units.
    if &kind == b"ilst" {
        let (items, tail) = parse_leaves(payload)?;
        return Ok(Atom {
            kind,
            body: Body::Parent {
                prefix: Vec::new(),
                children: items,
                tail,
            },
        });
    }
    let prefix_len = if &kind == b"meta" && payload.get(4..8) != Some(b"hdlr") {
        4
    } else {
        0
    };
    if payload.len() < prefix_len {
        return Err(err("truncated 'meta' box"));
    }
    let (children, tail) = parse_children(&payload[prefix_len..], depth + 1)?;
    Ok(Atom {
        kind,
        body: Body::Parent {
            prefix: payload[..prefix_len].to_vec(),
            children,
            tail,
        },
    })
}

fn parse_leaves(bytes: &[u8]) -> Result<(Vec<Atom>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 8 && rest.iter().all(|&b| b == 0) {
            return Ok((out, rest.to_vec()));
        }
        let (kind, header, len) = box_at(bytes, pos)?;
        out.push(Atom::leaf(&kind, bytes[pos + header..pos + len].to_vec()));
        pos += len;
    }
    Ok((out, Vec::new()))
}

/// A top-level box of the original file.
#[derive(Debug, Clone, Copy)]
struct TopBox {
    kind: [u8; 4],
    offset: u64,
    header: u64,
    len: u64,
}

fn top_level_boxes(src: &mut dyn ReadAt, size: u64) -> Result<Vec<TopBox>> {
    let mut boxes = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        if boxes.len() >= MAX_TOP_LEVEL_BOXES {
            return Err(err("too many top-level boxes"));
        }
        let mut h = [0u8; 16];
        let avail = (size - pos).min(16) as usize;
        if avail < 8 {
            return Err(err(format!("truncated box header at byte {pos}")));
        }
        super::read_exact(src, pos, &mut h[..avail], "box header")?;
        let kind = [h[4], h[5], h[6], h[7]];
        let (header, len) = match be32(&h[0..4]) {
            0 => (8, size - pos),
            1 if avail == 16 => (16, u64::from_be_bytes(h[8..16].try_into().expect("8"))),
            1 => return Err(err(format!("truncated box header at byte {pos}"))),
            n => (8, u64::from(n)),
        };
        if len < header || len > size - pos {
            return Err(err(format!(
                "'{}' box at byte {pos} has a bad size {len}",
                name(&kind)
            )));
        }
        boxes.push(TopBox {
            kind,
            offset: pos,
            header,
            len,
        });
        pos += len;
    }
    Ok(boxes)
}

pub(super) fn plan(o: Original<'_>, src: &mut dyn ReadAt, edits: &[TagEdit]) -> Result<Plan> {
    let boxes = top_level_boxes(src, o.size)?;
    let mut moovs = boxes.iter().enumerate().filter(|(_, b)| &b.kind == b"moov");
    let (moov_index, old) = moovs.next().ok_or_else(|| err("no 'moov' box"))?;
    if moovs.next().is_some() {
        return Err(err("more than one 'moov' box"));
    }
    let old = *old;
    if old.len > MAX_MOOV_BYTES {
        return Err(err(format!(
            "a {} byte 'moov' is more than we rewrite",
            old.len
        )));
    }
    let mut payload = vec![0u8; (old.len - old.header) as usize];
    super::read_exact(src, old.offset + old.header, &mut payload, "moov")?;
    let mut moov = parse_atom(*b"moov", &payload, 0)?;
    drop(payload);
    apply_edits(ilst_of(&mut moov)?, edits)?;

    let grown = moov.len() as i64 - old.len as i64;
    absorb_in_meta(&mut moov, grown);

    let old_end = old.offset + old.len;
    let delta = moov.len() as i64 - old.len as i64;
    let next = boxes.get(moov_index + 1);
    // The free box right after `moov` can take up the difference, so
    // nothing after it moves.
    let absorbing = next.filter(|b| {
        (&b.kind == b"free" || &b.kind == b"skip")
            && b.header == 8
            && delta != 0
            && (8..=i64::from(u32::MAX)).contains(&(b.len as i64 - delta))
    });
    let mut out = Vec::new();
    if old.offset > 0 {
        out.push(Segment::Original {
            offset: 0,
            len: old.offset,
        });
    }
    let mut rest_from = old_end;
    let mut head = Vec::new();
    if let Some(free) = absorbing {
        moov.encode(&mut head);
        let new_len = (free.len as i64 - delta) as u64;
        head.extend_from_slice(&(new_len as u32).to_be_bytes());
        head.extend_from_slice(&free.kind);
        out.push(Segment::Bytes(Arc::from(head)));
        // The free payload is served from the original as far as it goes,
        // then zeros.
        let keep = (new_len - 8).min(free.len - 8);
        if keep > 0 {
            out.push(Segment::Original {
                offset: free.offset + 8,
                len: keep,
            });
        }
        if new_len - 8 > keep {
            out.push(Segment::Bytes(Arc::from(vec![
                0u8;
                (new_len - 8 - keep) as usize
            ])));
        }
        rest_from = free.offset + free.len;
    } else {
        if delta != 0 {
            if boxes[moov_index..].iter().any(|b| &b.kind == b"moof") {
                return Err(err("fragmented files with 'moov' first are not supported"));
            }
            shift_chunk_offsets(&mut moov, old_end, delta)?;
        }
        moov.encode(&mut head);
        out.push(Segment::Bytes(Arc::from(head)));
    }
    if rest_from < o.size {
        out.push(Segment::Original {
            offset: rest_from,
            len: o.size - rest_from,
        });
    }
    Ok(Plan { segments: out })
}

/// `moov/udta/meta/ilst`, created (with `meta`'s `hdlr`) where missing.
fn ilst_of(moov: &mut Atom) -> Result<&mut Vec<Atom>> {
    let children = moov.children_mut().expect("moov is a container");
    if !children.iter().any(|a| &a.kind == b"udta") {
        children.push(Atom::parent(b"udta", Vec::new(), Vec::new()));
    }
    let udta = moov.child_mut(b"udta").expect("just ensured");
    let udta_children = udta
        .children_mut()
        .ok_or_else(|| err("'udta' is not a container"))?;
    if !udta_children.iter().any(|a| &a.kind == b"meta") {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"mdirappl");
        hdlr.extend_from_slice(&[0u8; 9]);
        udta_children.push(Atom::parent(
            b"meta",
            vec![0; 4],
            vec![Atom::leaf(b"hdlr", hdlr)],
        ));
    }
    let meta = udta.child_mut(b"meta").expect("just ensured");
    let meta_children = meta
        .children_mut()
        .ok_or_else(|| err("'meta' is not a container"))?;
    if !meta_children.iter().any(|a| &a.kind == b"ilst") {
        meta_children.push(Atom::parent(b"ilst", Vec::new(), Vec::new()));
    }
    meta.child_mut(b"ilst")
        .and_then(Atom::children_mut)
        .ok_or_else(|| err("'ilst' is not a container"))
}

/// Lets a `free`/`skip` box inside `udta/meta` (where taggers such as
/// mutagen leave padding) take up a `moov` size change of `delta`, so the
/// served file keeps the original's size and media servers do not see a
/// changed file. Leaves everything as it is when the padding is too small.
fn absorb_in_meta(moov: &mut Atom, delta: i64) {
    if delta == 0 {
        return;
    }
    let padding = moov
        .child_mut(b"udta")
        .and_then(|a| a.child_mut(b"meta"))
        .and_then(Atom::children_mut)
        .and_then(|c| {
            c.iter_mut()
                .find(|a| &a.kind == b"free" || &a.kind == b"skip")
        });
    if let Some(Atom {
        body: Body::Leaf(payload),
        ..
    }) = padding
    {
        if let Ok(len) = usize::try_from(payload.len() as i64 - delta) {
            // Padding is zeros whatever the original held there.
            *payload = vec![0; len];
        }
    }
}

/// Adds `delta` to every chunk offset at or after `from`, in every `trak`.
fn shift_chunk_offsets(moov: &mut Atom, from: u64, delta: i64) -> Result<()> {
    let Some(children) = moov.children_mut() else {
        return Ok(());
    };
    for trak in children.iter_mut().filter(|a| &a.kind == b"trak") {
        let stbl = trak
            .child_mut(b"mdia")
            .and_then(|a| a.child_mut(b"minf"))
            .and_then(|a| a.child_mut(b"stbl"));
        let Some(stbl) = stbl.and_then(Atom::children_mut) else {
            continue;
        };
        for table in stbl.iter_mut() {
            let width = match &table.kind {
                b"stco" => 4,
                b"co64" => 8,
                _ => continue,
            };
            let Body::Leaf(p) = &mut table.body else {
                continue;
            };
            let count = p
                .get(4..8)
                .map(be32)
                .ok_or_else(|| err("truncated chunk offset table"))?;
            let needed = (count as usize)
                .checked_mul(width)
                .and_then(|n| n.checked_add(8))
                .filter(|&n| n <= p.len())
                .ok_or_else(|| err("chunk offset table longer than its box"))?;
            for entry in p[8..needed].chunks_exact_mut(width) {
                let offset = if width == 4 {
                    u64::from(be32(entry))
                } else {
                    u64::from_be_bytes(entry.try_into().expect("8 bytes"))
                };
                if offset < from {
                    continue;
                }
                let shifted = offset
                    .checked_add_signed(delta)
                    .ok_or_else(|| err("chunk offset out of range"))?;
                if width == 4 {
                    let v = u32::try_from(shifted)
                        .map_err(|_| err("a 32-bit chunk offset would overflow"))?;
                    entry.copy_from_slice(&v.to_be_bytes());
                } else {
                    entry.copy_from_slice(&shifted.to_be_bytes());
                }
            }
        }
    }
    Ok(())
}

/// Where a canonical key lives in `ilst`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Text([u8; 4]),
    /// `trkn`/`disk`: the number (false) or the total (true).
    Pair([u8; 4], bool),
    Flag([u8; 4]),
    Freeform(String),
}

const TEXT_ATOMS: &[(&str, &[u8; 4])] = &[
    ("title", b"\xa9nam"),
    ("artist", b"\xa9ART"),
    ("albumartist", b"aART"),
    ("album", b"\xa9alb"),
    ("genre", b"\xa9gen"),
    ("date", b"\xa9day"),
    ("year", b"\xa9day"),
    ("composer", b"\xa9wrt"),
    ("comment", b"\xa9cmt"),
    ("grouping", b"\xa9grp"),
    ("work", b"\xa9wrk"),
    ("movement", b"\xa9mvn"),
    ("lyrics", b"\xa9lyr"),
    ("copyright", b"cprt"),
    ("encodedby", b"\xa9enc"),
    ("encoder", b"\xa9too"),
    ("director", b"\xa9dir"),
    ("description", b"desc"),
    ("show", b"tvsh"),
    ("album_sort", b"soal"),
    ("albumartist_sort", b"soaa"),
    ("title_sort", b"sonm"),
    ("artist_sort", b"soar"),
    ("composer_sort", b"soco"),
    ("show_sort", b"sosn"),
];

/// Freeform names that are not the key upper-cased (as lofty reads them).
const FREEFORM_NAMES: &[(&str, &str)] = &[
    ("disctitle", "DISCSUBTITLE"),
    ("catalognum", "CATALOGNUMBER"),
    ("original_date", "ORIGINALDATE"),
    ("acoustid_id", "Acoustid Id"),
    ("initial_key", "initialkey"),
    ("replaygain_album_gain", "replaygain_album_gain"),
    ("replaygain_album_peak", "replaygain_album_peak"),
    ("replaygain_track_gain", "replaygain_track_gain"),
    ("replaygain_track_peak", "replaygain_track_peak"),
    ("musicbrainz_trackid", "MusicBrainz Track Id"),
    ("musicbrainz_releasetrackid", "MusicBrainz Release Track Id"),
    ("musicbrainz_albumid", "MusicBrainz Album Id"),
    ("musicbrainz_releasegroupid", "MusicBrainz Release Group Id"),
    ("musicbrainz_artistid", "MusicBrainz Artist Id"),
    ("musicbrainz_albumartistid", "MusicBrainz Album Artist Id"),
    ("musicbrainz_workid", "MusicBrainz Work Id"),
    ("releasetype", "MusicBrainz Album Type"),
    ("country", "MusicBrainz Album Release Country"),
];

fn slot(key: &str) -> Slot {
    let key = key.to_ascii_lowercase();
    if let Some((_, atom)) = TEXT_ATOMS.iter().find(|(k, _)| *k == key) {
        return Slot::Text(**atom);
    }
    match key.as_str() {
        "track" => return Slot::Pair(*b"trkn", false),
        "tracktotal" => return Slot::Pair(*b"trkn", true),
        "disc" => return Slot::Pair(*b"disk", false),
        "disctotal" => return Slot::Pair(*b"disk", true),
        "compilation" => return Slot::Flag(*b"cpil"),
        "podcast" => return Slot::Flag(*b"pcst"),
        _ => {}
    }
    match FREEFORM_NAMES.iter().find(|(k, _)| *k == key) {
        Some((_, n)) => Slot::Freeform(n.to_string()),
        None => Slot::Freeform(key.to_ascii_uppercase()),
    }
}

/// Applies `edits` to the `ilst` items in place: an edited item replaces
/// the first item it had (keeping its position) and drops the others;
/// a new item goes at the end.
fn apply_edits(items: &mut Vec<Atom>, edits: &[TagEdit]) -> Result<()> {
    // `date` is the more precise of the two keys sharing `©day`.
    let date_edited = edits
        .iter()
        .any(|e| e.key.eq_ignore_ascii_case("date") && !e.values.is_empty());
    for edit in edits {
        if edit.key.eq_ignore_ascii_case("year") && date_edited {
            continue;
        }
        match slot(&edit.key) {
            Slot::Text(kind) => {
                let values: Vec<&str> = edit.values.iter().map(String::as_str).collect();
                let new = (!values.is_empty()).then(|| text_item(&kind, &values));
                replace(items, |a| a.kind == kind, new);
            }
            Slot::Freeform(field) => {
                let values: Vec<&str> = edit.values.iter().map(String::as_str).collect();
                let new = (!values.is_empty()).then(|| freeform_item(&field, &values));
                replace(
                    items,
                    |a| freeform_name(a).is_some_and(|n| n.eq_ignore_ascii_case(&field)),
                    new,
                );
            }
            Slot::Flag(kind) => {
                let on = edit.values.first().is_some_and(|v| {
                    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
                });
                let new = on.then(|| data_item(&kind, 21, &[1]));
                replace(items, |a| a.kind == kind, new);
            }
            Slot::Pair(kind, is_total) => {
                let (mut number, mut total) = items
                    .iter()
                    .find(|a| a.kind == kind)
                    .and_then(pair_of)
                    .unwrap_or((0, 0));
                let value = match edit.values.first() {
                    None => 0,
                    Some(v) => leading_number(v)
                        .ok_or_else(|| err(format!("{} must be a number, not {v:?}", edit.key)))?,
                };
                if is_total {
                    total = value;
                } else {
                    number = value;
                }
                let new = (number != 0 || total != 0).then(|| {
                    let mut v = vec![0, 0];
                    v.extend_from_slice(&number.to_be_bytes());
                    v.extend_from_slice(&total.to_be_bytes());
                    if &kind == b"trkn" {
                        v.extend_from_slice(&[0, 0]);
                    }
                    data_item(&kind, 0, &v)
                });
                replace(items, |a| a.kind == kind, new);
            }
        }
    }
    Ok(())
}

/// "3", "03" or "3/12" as 3; numbers above 65535 are an error.
fn leading_number(v: &str) -> Option<u16> {
    let v = v.trim();
    let digits = v.split('/').next().unwrap_or("").trim();
    digits.parse::<u16>().ok()
}

fn replace(items: &mut Vec<Atom>, matches: impl Fn(&Atom) -> bool, new: Option<Atom>) {
    let at = items.iter().position(&matches);
    let mut kept = Vec::with_capacity(items.len() + 1);
    let mut new = new;
    for (i, item) in items.drain(..).enumerate() {
        if Some(i) == at {
            kept.extend(new.take());
        } else if !matches(&item) {
            kept.push(item);
        }
    }
    kept.extend(new);
    *items = kept;
}

fn data_box(type_indicator: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&((16 + value.len()) as u32).to_be_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&type_indicator.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(value);
    out
}

fn data_item(kind: &[u8; 4], type_indicator: u32, value: &[u8]) -> Atom {
    Atom::leaf(kind, data_box(type_indicator, value))
}

fn text_item(kind: &[u8; 4], values: &[&str]) -> Atom {
    let payload = values
        .iter()
        .flat_map(|v| data_box(1, v.as_bytes()))
        .collect();
    Atom::leaf(kind, payload)
}

fn freeform_item(field: &str, values: &[&str]) -> Atom {
    let mut payload = Vec::new();
    for (kind, text) in [(b"mean", ITUNES_MEAN), (b"name", field)] {
        payload.extend_from_slice(&((12 + text.len()) as u32).to_be_bytes());
        payload.extend_from_slice(kind);
        payload.extend_from_slice(&[0; 4]);
        payload.extend_from_slice(text.as_bytes());
    }
    for v in values {
        payload.extend_from_slice(&data_box(1, v.as_bytes()));
    }
    Atom::leaf(b"----", payload)
}

/// The boxes inside an `ilst` item, as (type, payload); `None` if they do not parse.
fn item_boxes(item: &Atom) -> Option<Vec<([u8; 4], &[u8])>> {
    let Body::Leaf(p) = &item.body else {
        return None;
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < p.len() {
        let (kind, header, len) = box_at(p, pos).ok()?;
        out.push((kind, &p[pos + header..pos + len]));
        pos += len;
    }
    Some(out)
}

/// The `name` of an iTunes freeform item.
fn freeform_name(item: &Atom) -> Option<String> {
    if &item.kind != b"----" {
        return None;
    }
    let boxes = item_boxes(item)?;
    let field = |k: &[u8; 4]| {
        boxes
            .iter()
            .find(|(kind, _)| kind == k)
            .and_then(|(_, p)| p.get(4..))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    (field(b"mean")? == ITUNES_MEAN).then(|| field(b"name"))?
}

/// `trkn`/`disk`'s (number, total).
fn pair_of(item: &Atom) -> Option<(u16, u16)> {
    let boxes = item_boxes(item)?;
    let (_, data) = boxes.iter().find(|(k, _)| k == b"data")?;
    let v = data.get(8..14)?;
    Some((
        u16::from_be_bytes([v[2], v[3]]),
        u16::from_be_bytes([v[4], v[5]]),
    ))
}

#[cfg(test)]
#[path = "mp4_tests.rs"]
mod tests;
