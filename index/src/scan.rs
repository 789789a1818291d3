//! The scanner: tags, audio properties and the audio body's position, read
//! with lofty (plus small per-format walkers for the body offset). Any input,
//! however malformed, gives `Ok` or a clear `Err`, never a panic.
use crate::Result;
use std::io::{Read, Seek};

/// Tags as `(canonical key, value)` pairs; multi-valued keys repeat.
/// Canonical keys are lower-case beets-style names: `title`, `artist`,
/// `album`, `albumartist`, `track`, `tracktotal`, `disc`, `disctotal`,
/// `year`, `date`, `genre`, `composer`, `comment`, `compilation` ("1"),
/// `label`, `lyrics`, `musicbrainz_trackid`, ... Values are trimmed UTF-8.
pub type Tags = Vec<(String, String)>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioProps {
    pub duration_ms: u64,
    pub bitrate_kbps: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub bit_depth: Option<u8>,
}

/// What one file scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScannedFile {
    /// Lower-case container name: "flac", "mp3", "ogg", "opus", "m4a",
    /// "wav", "aiff", "wv", "ape", "mpc", "spx", ...
    pub format: String,
    pub tags: Tags,
    pub props: AudioProps,
    /// Byte offset where the audio body starts (after leading tags/headers).
    pub audio_offset: u64,
    /// Length of the audio body (excluding trailing tags such as ID3v1/APE).
    pub audio_length: u64,
    /// The file carries embedded cover art.
    pub has_art: bool,
}

/// Reads one file. `file_name` (the last path component) is a hint only:
/// the format is detected from content. Errors name the problem
/// ("not an audio file", "truncated FLAC stream", "zero-byte file", ...).
pub fn probe<R: Read + Seek>(reader: &mut R, size: u64, file_name: &str) -> Result<ScannedFile> {
    todo!()
}
