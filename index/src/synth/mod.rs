//! Header synthesis: the bytes a file is served as once its tags are
//! edited in the catalog.
//!
//! A [`Plan`] describes the served file as a list of [`Segment`]s: new
//! bytes (a synthesized tag header, a rewritten `moov`, rewritten Ogg
//! header pages) and ranges of the untouched original. The audio body is
//! always served from the original's bytes; only containers that number
//! or point into their own data (Ogg page sequence numbers, MP4 chunk
//! offsets) get a transform applied, described by the segment.
//!
//! [`plan`] reads only the original's header (and, for MP4, its `moov`)
//! through a [`ReadAt`], parses the container's own tags, applies the
//! [`TagEdit`]s (tags nobody edited, pictures included, are carried over),
//! and lays out the new file. Per container:
//!
//! | format | module | what is rewritten |
//! |---|---|---|
//! | FLAC | `flac` | VORBIS_COMMENT (PICTURE blocks carried over), padding |
//! | MP3 (and other ID3-framed) | `id3` | a new ID3v2.4 tag; the original's leading ID3v2 and trailing ID3v1/APEv2/Lyrics3 dropped |
//! | Ogg Vorbis, Opus | `ogg` | the comment header packet and its pages; later pages renumbered if the header's page count changed |
//! | M4A/MP4 | `mp4` | `moov/udta/meta/ilst`; `stco`/`co64` shifted when `moov` precedes `mdat` |
//!
//! Everything here is pure: no catalog, no origin, no I/O but `ReadAt`.
//! Malformed input is an [`Error`](crate::Error) with a message, never a
//! panic or an unbounded allocation.
mod flac;
mod id3;
mod mp4;
mod ogg;
mod plan;
#[cfg(test)]
mod testkit;
mod vorbis;

pub use plan::{Plan, Segment};

use crate::Result;

/// Random access to the original file's bytes.
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; short only at end of file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// Original bytes already in memory (a de-unsynchronised ID3v2.3 tag).
struct Slice<'a>(&'a [u8]);

impl ReadAt for Slice<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

/// One overlay edit in the catalog's canonical (beets-style, lower-case)
/// keys: `key` gets `values` (more than one = multi-valued), or is removed
/// when `values` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEdit {
    pub key: String,
    pub values: Vec<String>,
}

/// What [`plan`] needs to know about the original file (all from the
/// catalog's `files` row).
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    /// The catalog's lower-case format name ("flac", "mp3", "ogg", "opus", "m4a", ...).
    pub format: &'a str,
    pub size: u64,
    /// The audio body as the scanner found it (`scan::body`).
    pub audio_offset: u64,
    pub audio_length: u64,
}

impl Original<'_> {
    /// Where the audio body ends; `None` when the catalog's range does
    /// not lie inside the file (a stale or corrupt row).
    fn audio_end(&self) -> Option<u64> {
        self.audio_offset
            .checked_add(self.audio_length)
            .filter(|&end| end <= self.size)
    }
}

/// Reads exactly `buf.len()` bytes of the original at `offset`; running
/// out is an error naming `what` was being read.
fn read_exact(src: &mut dyn ReadAt, offset: u64, buf: &mut [u8], what: &str) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = src
            .read_at(offset + filled as u64, &mut buf[filled..])
            .map_err(|source| crate::Error::Io {
                context: format!("reading the original's {what}"),
                source,
            })?;
        if n == 0 {
            return Err(crate::Error::Synth(format!(
                "truncated original: {what} at byte {offset} runs past the end"
            )));
        }
        filled += n;
    }
    Ok(())
}

/// Whether the original's `len` bytes at `offset` are all zero (old
/// padding a new header's padding can be served from).
fn is_zero(src: &mut dyn ReadAt, offset: u64, len: u64) -> Result<bool> {
    let mut buf = vec![0u8; len.min(64 * 1024) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        read_exact(src, offset + done, &mut buf[..n], "padding")?;
        if buf[..n].iter().any(|&x| x != 0) {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}

/// Padding this large is only kept when it can be served from zeros in
/// the original; a plan never stores more than this many zeros.
const MAX_STORED_PADDING: u64 = 64 * 1024;

/// Padding after a new header of `bare` bytes (padding's own block
/// header included) that has `reusable` bytes of old tags and padding it
/// may take: all of them when they suffice, so the file keeps its size
/// (media servers treat a size change as a changed file and rescan it);
/// otherwise enough to round the header up to 4 KiB with at least 1 KiB
/// spare, so that later small edits do not change the size again.
/// `fits` says whether a padding length is valid for the container.
fn choose_padding(
    src: &mut dyn ReadAt,
    audio_offset: u64,
    bare: u64,
    reusable: u64,
    fits: impl Fn(u64) -> bool,
) -> Result<(u64, bool)> {
    const ALIGN: u64 = 4096;
    const MIN_PADDING: u64 = 1024;
    if let Some(pad) = reusable.checked_sub(bare).filter(|&p| fits(p)) {
        let from_original = pad <= audio_offset && is_zero(src, audio_offset - pad, pad)?;
        if from_original || pad <= MAX_STORED_PADDING {
            return Ok((pad, from_original));
        }
    }
    let pad = (bare + MIN_PADDING).div_ceil(ALIGN) * ALIGN - bare;
    let from_original = pad <= audio_offset && is_zero(src, audio_offset - pad, pad)?;
    Ok((pad, from_original))
}

/// Whether [`plan`] can synthesize headers for this format.
pub fn supports(format: &str) -> bool {
    matches!(
        format,
        "flac" | "mp3" | "ogg" | "opus" | "m4a" | "mp4" | "m4b" | "aac"
    )
}

/// Lays out the served file for `original` with `edits` applied.
pub fn plan(original: Original<'_>, src: &mut dyn ReadAt, edits: &[TagEdit]) -> Result<Plan> {
    match original.format {
        "flac" => flac::plan(original, src, edits),
        "mp3" | "aac" => id3::plan(original, src, edits),
        "ogg" | "opus" => ogg::plan(original, src, edits),
        "m4a" | "mp4" | "m4b" => mp4::plan(original, src, edits),
        other => Err(crate::Error::Synth(format!(
            "cannot synthesize tags for {other} files"
        ))),
    }
}
