//! FLAC: a new VORBIS_COMMENT block; STREAMINFO, PICTURE and other blocks carried over.
//!
//! The served file is `fLaC`, STREAMINFO, the new VORBIS_COMMENT (early,
//! so players that read only the first few KiB find the tags before any
//! large PICTURE), every other block of the original in its order
//! (SEEKTABLE, APPLICATION, CUESHEET, PICTURE: byte for byte), PADDING,
//! then the original's audio frames. The original's VORBIS_COMMENT and
//! PADDING blocks and a leading ID3v2 tag (not part of FLAC) are dropped.
//!
//! Served size: when the new comment fits where the old comment, padding
//! and leading ID3v2 were, the padding takes up the rest and the file keeps
//! its size to the byte. Media servers treat a size change as a changed
//! file and rescan (some re-fingerprint) it; most edits are small, and
//! taggers leave padding precisely for this. Otherwise the header is
//! rounded up to a multiple of 4 KiB, so that further small edits of the
//! same file do not change its size again.
use super::plan::Builder;
use super::vorbis::Comments;
use super::{choose_padding, read_exact, Original, Plan, ReadAt, TagEdit};
use crate::{Error, Result};

const STREAMINFO: u8 = 0;
const PADDING: u8 = 1;
const VORBIS_COMMENT: u8 = 4;
const INVALID: u8 = 127;
const MAX_BLOCK: u64 = (1 << 24) - 1;
/// Blocks up to this size are copied into the plan; larger ones (pictures)
/// are served from the original, which keeps stored plans small.
const COPY_LIMIT: u64 = 4096;

/// A metadata block of the original: type and where its body lies.
struct Block {
    kind: u8,
    body: u64,
    len: u64,
}

fn fail(message: impl std::fmt::Display) -> Error {
    Error::Synth(format!("FLAC: {message}"))
}

pub(super) fn plan(o: Original<'_>, src: &mut dyn ReadAt, edits: &[TagEdit]) -> Result<Plan> {
    let audio_end = o
        .audio_end()
        .ok_or_else(|| fail("the catalog's audio range lies outside the file"))?;
    let start = super::id3::leading_tags_end(src, o.audio_offset)?;
    let mut magic = [0u8; 4];
    read_exact(src, start, &mut magic, "fLaC marker")?;
    if &magic != b"fLaC" {
        return Err(fail("no fLaC marker"));
    }

    let mut kept = Vec::new();
    let mut comments: Option<Comments> = None;
    let mut pos = start + 4;
    loop {
        let mut h = [0u8; 4];
        read_exact(src, pos, &mut h, "metadata block header")?;
        let last = h[0] & 0x80 != 0;
        let kind = h[0] & 0x7f;
        let len = u64::from(u32::from_be_bytes([0, h[1], h[2], h[3]]));
        let block = Block {
            kind,
            body: pos + 4,
            len,
        };
        pos = block.body + len;
        if pos > o.audio_offset {
            return Err(fail(format!(
                "metadata block at {} runs past the audio (at {})",
                block.body - 4,
                o.audio_offset
            )));
        }
        match kind {
            INVALID => return Err(fail("invalid metadata block type 127")),
            STREAMINFO if len != 34 => return Err(fail("STREAMINFO is not 34 bytes")),
            _ if kept.is_empty() && kind != STREAMINFO => {
                return Err(fail("the first block is not STREAMINFO"))
            }
            VORBIS_COMMENT => {
                let mut body = vec![0u8; len as usize];
                read_exact(src, block.body, &mut body, "VORBIS_COMMENT")?;
                let parsed = Comments::parse(&body)?;
                // A second comment block is against the spec; keep its
                // fields rather than lose them.
                match &mut comments {
                    Some(c) => c.fields.extend(parsed.fields),
                    None => comments = Some(parsed),
                }
            }
            PADDING => {}
            _ => kept.push(block),
        }
        if last {
            break;
        }
    }
    if pos != o.audio_offset {
        return Err(fail(format!(
            "metadata ends at {pos}, but the catalog says the audio starts at {}; rescan the file",
            o.audio_offset
        )));
    }

    let mut comments = comments.unwrap_or_else(|| Comments {
        vendor: "musicfs".into(),
        fields: Vec::new(),
    });
    comments.apply(edits);
    let comment = comments.encode();
    let comment_block = 4 + comment.len() as u64;
    if comment.len() as u64 > MAX_BLOCK {
        return Err(fail(
            "the edited tags do not fit in one VORBIS_COMMENT block",
        ));
    }
    let kept_len: u64 = kept.iter().map(|b| 4 + b.len).sum();
    // The original's bytes before and after the audio (its whole header,
    // leading ID3v2 and trailing tags included) are what the new header
    // may take without changing the file's size.
    let reusable = o.size - o.audio_length;
    let bare = 4 + kept_len + comment_block;
    let padding = if reusable == bare {
        None
    } else {
        Some(choose_padding(
            src,
            o.audio_offset,
            bare + 4,
            reusable,
            |p| p <= MAX_BLOCK,
        )?)
    };
    let mut b = Builder::default();
    b.bytes(b"fLaC");
    let mut order: Vec<Option<&Block>> = Vec::with_capacity(kept.len() + 1);
    order.push(Some(&kept[0]));
    order.push(None); // the new VORBIS_COMMENT
    order.extend(kept[1..].iter().map(Some));
    let n = order.len();
    for (i, block) in order.into_iter().enumerate() {
        let is_last = padding.is_none() && i == n - 1;
        match block {
            None => {
                b.bytes(&header(VORBIS_COMMENT, comment.len() as u64, is_last));
                b.bytes(&comment);
            }
            Some(block) => {
                b.bytes(&header(block.kind, block.len, is_last));
                if block.len <= COPY_LIMIT {
                    let mut body = vec![0u8; block.len as usize];
                    read_exact(src, block.body, &mut body, "metadata block")?;
                    b.bytes(&body);
                } else {
                    b.original(block.body, block.len);
                }
            }
        }
    }
    if let Some((pad, from_original)) = padding {
        b.bytes(&header(PADDING, pad, true));
        b.padding(o.audio_offset, pad, from_original);
    }
    b.original(o.audio_offset, audio_end - o.audio_offset);
    Ok(b.finish())
}

fn header(kind: u8, len: u64, last: bool) -> [u8; 4] {
    let l = (len as u32).to_be_bytes();
    [kind | if last { 0x80 } else { 0 }, l[1], l[2], l[3]]
}

#[cfg(test)]
#[path = "tests_flac.rs"]
mod tests;
