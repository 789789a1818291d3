//! The scanner: tags, audio properties and the audio body's position, read
//! with lofty (plus small per-format walkers for the body offset). Any input,
//! however malformed, gives `Ok` or a clear `Err`, never a panic.
//!
//! - [`probe`] reads one file;
//! - [`scan_origin`] and [`scan_paths`] drive incremental, parallel scans of
//!   an origin into the [`Catalog`](crate::Catalog).
mod body;
mod driver;
mod tags;

pub use driver::{
    scan_origin, scan_paths, OpenFn, ReadSeek, ScanOptions, ScanProgress, ScanReport,
    SIDECAR_EXTENSIONS,
};

use crate::{Error, Result};
use body::Container;
use lofty::config::ParseOptions;
use lofty::file::{AudioFile, FileType, TaggedFileExt};
use lofty::probe::Probe;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};

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
    /// xxh3-64 of the size, the first 16 KiB and the last 4 KiB: equal for
    /// byte-identical copies on different origins (see [`quick_hash`]).
    pub quick_hash: u64,
}

/// Bytes of the head and the tail that [`quick_hash`] samples.
pub const QUICK_HASH_HEAD: u64 = 16 * 1024;
pub const QUICK_HASH_TAIL: u64 = 4 * 1024;

/// A cheap fingerprint of a file's bytes: its size, first 16 KiB and last
/// 4 KiB (the parts a tag reader fetches anyway, so it costs a remote scan
/// almost nothing). Two copies of one file always agree; two different
/// files of one size agree only if they differ nowhere in those parts
/// (tags live there, so retagged copies differ). `musicfs verify` computes
/// a full content hash when certainty is needed.
pub fn quick_hash<R: Read + Seek>(reader: &mut R, size: u64) -> std::io::Result<u64> {
    let mut sample = size.to_le_bytes().to_vec();
    let head = size.min(QUICK_HASH_HEAD);
    reader.seek(SeekFrom::Start(0))?;
    let at = sample.len();
    sample.resize(at + head as usize, 0);
    reader.read_exact(&mut sample[at..])?;
    let tail_start = size.saturating_sub(QUICK_HASH_TAIL).max(head);
    if tail_start < size {
        reader.seek(SeekFrom::Start(tail_start))?;
        let at = sample.len();
        sample.resize(at + (size - tail_start) as usize, 0);
        reader.read_exact(&mut sample[at..])?;
    }
    Ok(xxhash_rust::xxh3::xxh3_64(&sample))
}

/// The message a caught panic carried, for the error that replaces it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Reads one file of `size` bytes. `file_name` (the last path component)
/// is a hint only: the format is detected from content. Errors name the
/// problem ("not an audio file (unrecognised format)", "truncated FLAC
/// metadata", "zero-byte file", ...). A file cut short inside its audio
/// frames still scans (it plays up to the cut); one cut inside its headers
/// or container structure does not.
pub fn probe<R: Read + Seek>(reader: &mut R, size: u64, file_name: &str) -> Result<ScannedFile> {
    let fail = |message: String| Error::Scan {
        path: file_name.to_string(),
        message,
    };
    if size == 0 {
        return Err(fail("zero-byte file".into()));
    }
    // lofty is a large parser fed untrusted bytes; a panic in it (or in a
    // walker) must cost one file, not the daemon.
    match catch_unwind(AssertUnwindSafe(|| probe_inner(reader, size, file_name))) {
        Ok(result) => result.map_err(fail),
        Err(panic) => {
            let what = panic_message(panic.as_ref());
            tracing::warn!(file = file_name, "scanner panicked: {what}");
            Err(fail(format!("scanner panicked: {what}")))
        }
    }
}

fn probe_inner<R: Read + Seek>(
    reader: &mut R,
    size: u64,
    file_name: &str,
) -> std::result::Result<ScannedFile, String> {
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| format!("read error: {e}"))?;
    // lofty reads in small pieces; buffering matters on slow origins.
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let options = ParseOptions::new();
    let guessed = Probe::new(&mut buffered)
        .options(options)
        .guess_file_type()
        .map_err(|e| format!("read error: {e}"))?
        .file_type();
    let Some(file_type) = guessed else {
        // A broken leading ID3v2 tag hides what follows; say so rather
        // than "unrecognised".
        body::locate(buffered.get_mut(), size, Container::Framed)?;
        return Err("not an audio file (unrecognised format)".into());
    };
    let (format, container) = format_of(file_type, file_name)
        .ok_or_else(|| "not an audio file (unsupported format)".to_string())?;
    // The body walkers run first: they are cheap, and on a structurally
    // broken file their messages ("truncated FLAC metadata") say more than
    // lofty's ("failed to parse Flac file").
    let body = body::locate(buffered.get_mut(), size, container)?;
    buffered
        .seek(SeekFrom::Start(0))
        .map_err(|e| format!("read error: {e}"))?;
    let tagged = Probe::with_file_type(&mut buffered, file_type)
        .options(options)
        .read()
        .map_err(|e| format!("unreadable {format} file: {}", error_chain(&e)))?;

    let p = tagged.properties();
    let props = AudioProps {
        duration_ms: u64::try_from(p.duration().as_millis()).unwrap_or(u64::MAX),
        bitrate_kbps: p.audio_bitrate().or(p.overall_bitrate()).filter(|b| *b > 0),
        sample_rate: p.sample_rate().filter(|r| *r > 0),
        channels: p.channels().filter(|c| *c > 0),
        bit_depth: p.bit_depth().filter(|d| *d > 0),
    };
    let tags = tags::collect(&tagged);
    let has_art = tagged.tags().iter().any(|t| t.picture_count() > 0);
    drop(tagged);
    let quick_hash =
        quick_hash(buffered.get_mut(), size).map_err(|e| format!("read error: {e}"))?;
    Ok(ScannedFile {
        format,
        tags,
        props,
        audio_offset: body.offset,
        audio_length: body.length,
        has_art,
        quick_hash,
    })
}

/// An error and its sources, for messages that say what lofty choked on.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The format name and container family of a lofty file type. The file
/// name's extension picks between names of one container ("oga" for an Ogg
/// Vorbis file so named, "m4b" for an audiobook), never across containers.
fn format_of(file_type: FileType, file_name: &str) -> Option<(String, Container)> {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let pick = |default: &str, alternatives: &[&str]| {
        if alternatives.contains(&ext.as_str()) {
            ext.clone()
        } else {
            default.to_string()
        }
    };
    Some(match file_type {
        FileType::Flac => ("flac".into(), Container::Flac),
        FileType::Mpeg => (pick("mp3", &["mp2", "mp1"]), Container::Framed),
        FileType::Aac => (pick("aac", &["adts"]), Container::Framed),
        FileType::Vorbis => (pick("ogg", &["oga"]), Container::Ogg),
        FileType::Opus => ("opus".into(), Container::Ogg),
        FileType::Speex => ("spx".into(), Container::Ogg),
        FileType::Mp4 => (pick("m4a", &["m4b", "mp4", "m4p", "m4r"]), Container::Mp4),
        FileType::Wav => ("wav".into(), Container::Wav),
        FileType::Aiff => (pick("aiff", &["aif", "aifc"]), Container::Aiff),
        FileType::WavPack => ("wv".into(), Container::Framed),
        FileType::Ape => ("ape".into(), Container::Framed),
        FileType::Mpc => ("mpc".into(), Container::Framed),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
