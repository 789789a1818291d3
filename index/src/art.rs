//! Cover art: the picture embedded in an audio file, and JPEG renditions
//! of a picture at a bounded size.
//!
//! Both take untrusted bytes. Neither panics: lofty and the image decoders
//! run under `catch_unwind`, and images are refused before decoding when
//! their dimensions or byte counts are out of reason ([`MAX_SIDE`],
//! [`MAX_PICTURE_BYTES`]), so a hostile file cannot make the daemon
//! allocate gigabytes.
//!
//! Extraction reads through any `Read + Seek`: given a reader that fetches
//! ranges on demand (the origins' `RangeReader`), only what lofty asks for
//! is fetched — the tag region at the start (FLAC metadata blocks, the
//! ID3v2 tag, Ogg comment pages, the MP4 `moov` box, wherever it sits) and
//! a few small reads at the end for trailing tags — never the audio body:
//! audio properties are not read.
use crate::{Error, Result};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use lofty::config::ParseOptions;
use lofty::file::{FileType, TaggedFileExt};
use lofty::picture::PictureType;
use lofty::probe::Probe;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The largest picture accepted, embedded or from a file: covers are
/// rarely over a few MiB; anything bigger is a mistake or an attack.
pub const MAX_PICTURE_BYTES: usize = 20 * 1024 * 1024;
/// The largest width or height decoded.
pub const MAX_SIDE: u32 = 8000;
/// What a decoder may allocate: an 8000×8000 RGBA image and some room.
const MAX_DECODE_ALLOC: u64 = 300 * 1024 * 1024;
/// JPEG quality of resized renditions: visually clean at cover sizes,
/// a fraction of the bytes of 95+.
pub const JPEG_QUALITY: u8 = 85;

/// A picture found in a file or beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// "image/jpeg", "image/png", ... as sniffed from the bytes (the
    /// tag's own MIME field is often wrong), else as the tag says.
    pub mime: String,
    pub data: Vec<u8>,
}

impl Picture {
    /// The bytes start like a JPEG (SOI marker).
    pub fn is_jpeg(&self) -> bool {
        is_jpeg(&self.data)
    }
}

/// The bytes start like a JPEG (SOI marker followed by another marker).
pub fn is_jpeg(data: &[u8]) -> bool {
    data.starts_with(&[0xFF, 0xD8, 0xFF])
}

fn sniff_mime(data: &[u8]) -> Option<&'static str> {
    if is_jpeg(data) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"GIF8") {
        Some("image/gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else if data.starts_with(b"BM") {
        Some("image/bmp")
    } else {
        None
    }
}

fn invalid(context: &str, message: impl Into<String>) -> Error {
    Error::Picture {
        context: context.to_string(),
        message: message.into(),
    }
}

/// The front cover embedded in an audio file, else its first picture;
/// `Ok(None)` when it carries none (or only pictures over
/// [`MAX_PICTURE_BYTES`]). `format` is the catalog's container name
/// ("flac", "mp3", "m4a", ...), used when the content does not say.
/// `Err` for a read error or a file lofty cannot parse.
pub fn extract_embedded<R: Read + Seek>(reader: &mut R, format: &str) -> Result<Option<Picture>> {
    match catch_unwind(AssertUnwindSafe(|| extract_inner(reader, format))) {
        Ok(result) => result,
        Err(panic) => {
            let what = crate::scan::panic_message(panic.as_ref());
            Err(invalid(
                "extracting cover art",
                format!("lofty panicked: {what}"),
            ))
        }
    }
}

fn extract_inner<R: Read + Seek>(reader: &mut R, format: &str) -> Result<Option<Picture>> {
    let io = |e: std::io::Error| Error::Io {
        context: "extracting cover art".into(),
        source: e,
    };
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    // lofty reads in small pieces; each miss of a ranged reader is a round
    // trip, so batch them.
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let options = ParseOptions::new().read_properties(false);
    let guessed = Probe::new(&mut buffered)
        .options(options)
        .guess_file_type()
        .map_err(io)?
        .file_type();
    let Some(file_type) = guessed.or_else(|| file_type_of(format)) else {
        return Err(invalid(
            "extracting cover art",
            format!("unrecognised {format} file"),
        ));
    };
    buffered.seek(SeekFrom::Start(0)).map_err(io)?;
    let tagged = Probe::with_file_type(&mut buffered, file_type)
        .options(options)
        .read()
        .map_err(|e| {
            invalid(
                "extracting cover art",
                format!("unreadable {format} file: {e}"),
            )
        })?;
    let pictures = tagged
        .tags()
        .iter()
        .flat_map(|t| t.pictures())
        .filter(|p| !p.data().is_empty() && p.data().len() <= MAX_PICTURE_BYTES);
    let mut first = None;
    for p in pictures {
        if p.pic_type() == PictureType::CoverFront {
            return Ok(Some(to_picture(p)));
        }
        first.get_or_insert(p);
    }
    Ok(first.map(to_picture))
}

fn to_picture(p: &lofty::picture::Picture) -> Picture {
    let data = p.data().to_vec();
    let mime = sniff_mime(&data)
        .map(str::to_string)
        .or_else(|| p.mime_type().map(|m| m.as_str().to_string()))
        .unwrap_or_else(|| "application/octet-stream".into());
    Picture { mime, data }
}

fn file_type_of(format: &str) -> Option<FileType> {
    Some(match format {
        "flac" => FileType::Flac,
        "mp3" => FileType::Mpeg,
        "ogg" => FileType::Vorbis,
        "opus" => FileType::Opus,
        "spx" => FileType::Speex,
        "m4a" | "mp4" | "aac" => FileType::Mp4,
        "wav" => FileType::Wav,
        "aiff" => FileType::Aiff,
        "wv" => FileType::WavPack,
        "ape" => FileType::Ape,
        "mpc" => FileType::Mpc,
        _ => return None,
    })
}

/// The picture as a JPEG whose longer side is at most `max_side` pixels,
/// never upscaled. A JPEG that already fits is returned as it is (no
/// generation loss); anything else is decoded (JPEG or PNG), resized with
/// a Lanczos filter, flattened to RGB and encoded at [`JPEG_QUALITY`].
/// `Err` for bytes that are not a decodable JPEG or PNG, or that are over
/// [`MAX_PICTURE_BYTES`] or [`MAX_SIDE`].
pub fn resize_jpeg(data: &[u8], max_side: u32) -> Result<Vec<u8>> {
    const CONTEXT: &str = "resizing cover art";
    if data.len() > MAX_PICTURE_BYTES {
        return Err(invalid(
            CONTEXT,
            format!("picture of {} bytes is over the limit", data.len()),
        ));
    }
    let format = match sniff_mime(data) {
        Some("image/jpeg") => ImageFormat::Jpeg,
        Some("image/png") => ImageFormat::Png,
        other => {
            return Err(invalid(
                CONTEXT,
                format!("not a JPEG or PNG picture ({})", other.unwrap_or("unknown")),
            ))
        }
    };
    let max_side = max_side.max(1);
    match catch_unwind(AssertUnwindSafe(|| resize_inner(data, format, max_side))) {
        Ok(result) => result.map_err(|e| invalid(CONTEXT, e)),
        Err(_) => Err(invalid(CONTEXT, "image decoder panicked")),
    }
}

/// Width and height of a JPEG or PNG, from its header alone.
pub fn dimensions(data: &[u8]) -> Result<(u32, u32)> {
    let format = match sniff_mime(data) {
        Some("image/jpeg") => ImageFormat::Jpeg,
        Some("image/png") => ImageFormat::Png,
        _ => return Err(invalid("reading cover art", "not a JPEG or PNG picture")),
    };
    catch_unwind(AssertUnwindSafe(|| reader(data, format).into_dimensions()))
        .map_err(|_| invalid("reading cover art", "image decoder panicked"))?
        .map_err(|e| invalid("reading cover art", e.to_string()))
}

fn reader(data: &[u8], format: ImageFormat) -> ImageReader<Cursor<&[u8]>> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut r = ImageReader::with_format(Cursor::new(data), format);
    r.limits(limits);
    r
}

fn resize_inner(
    data: &[u8],
    format: ImageFormat,
    max_side: u32,
) -> std::result::Result<Vec<u8>, String> {
    // The header alone tells whether it fits: most covers served as they
    // are need no decode at all.
    let (w, h) = reader(data, format)
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    if w == 0 || h == 0 {
        return Err("picture has no pixels".into());
    }
    let fits = w.max(h) <= max_side;
    if fits && format == ImageFormat::Jpeg {
        return Ok(data.to_vec());
    }
    let mut img = reader(data, format).decode().map_err(|e| e.to_string())?;
    if !fits {
        let (nw, nh) = fit(w, h, max_side);
        // Area averaging (`thumbnail`) first, down to twice the target: it
        // costs one pass over the source, where Lanczos over a 3000 px
        // cover costs many times that; Lanczos then does the last,
        // sharpness-deciding step from a small image.
        if w.max(h) > max_side.saturating_mul(2) {
            let (tw, th) = fit(w, h, max_side.saturating_mul(2));
            img = img.thumbnail_exact(tw, th);
        }
        img = img.resize_exact(nw, nh, image::imageops::FilterType::Lanczos3);
    }
    // JPEG has no alpha: composite onto white, which is what viewers show
    // behind a transparent cover.
    let rgb = flatten(img);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// `w`×`h` scaled so the longer side is `max_side`, the other rounded,
/// never below one pixel.
fn fit(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let scale = |short: u32, long: u32| {
        let v = (u64::from(short) * u64::from(max_side) + u64::from(long) / 2) / u64::from(long);
        (v as u32).max(1)
    };
    if w >= h {
        (max_side, scale(h, w))
    } else {
        (scale(w, h), max_side)
    }
}

fn flatten(img: DynamicImage) -> DynamicImage {
    if !img.color().has_alpha() {
        return DynamicImage::ImageRgb8(img.into_rgb8());
    }
    let rgba = img.into_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    DynamicImage::ImageRgb8(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn tools_available() -> bool {
        let ok = [("ffmpeg", "-version"), ("python3", "--version")]
            .iter()
            .all(|(t, flag)| {
                Command::new(t)
                    .arg(flag)
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        if !ok {
            eprintln!("SKIPPED: ffmpeg and python3 are needed to make real files with art");
        }
        ok
    }

    fn run(cmd: &mut Command) {
        let out = cmd.output().expect("run tool");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A real JPEG (or PNG) of `w`×`h`, made by ffmpeg.
    fn picture(dir: &Path, name: &str, w: u32, h: u32, color: &str) -> Vec<u8> {
        let path = dir.join(name);
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .arg("-i")
            .arg(format!("color=c={color}:s={w}x{h}:d=1"))
            .args(["-frames:v", "1"])
            .arg(&path));
        std::fs::read(&path).unwrap()
    }

    /// `secs` seconds of noise (so the body is large and incompressible)
    /// in `name`, with `art` attached as the front cover when given.
    fn audio(dir: &Path, name: &str, secs: u32, codec: &[&str], art: Option<&Path>) -> PathBuf {
        let out = dir.join(name);
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]);
        cmd.arg("-i")
            .arg(format!("anoisesrc=d={secs}:c=pink:a=0.3"));
        if let Some(art) = art {
            cmd.arg("-i").arg(art);
            cmd.args(["-map", "0:a", "-map", "1:v", "-c:v", "copy"]);
            cmd.args(["-disposition:v", "attached_pic"]);
        }
        cmd.args(codec);
        cmd.arg(&out);
        run(&mut cmd);
        out
    }

    /// A reader that remembers which bytes were read (a ranged reader
    /// fetches each once, however often lofty re-reads them) and the last
    /// read that fell inside the audio body.
    struct Counting<R> {
        inner: R,
        pos: u64,
        ranges: Vec<(u64, u64)>,
        furthest_in_body: Option<(u64, u64)>,
        body: (u64, u64),
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            let (start, end) = (self.pos, self.pos + n as u64);
            if n > 0 && start < self.body.1 && end > self.body.0 {
                self.furthest_in_body = Some((start, end));
            }
            self.pos = end;
            self.ranges.push((start, end));
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.pos = self.inner.seek(pos)?;
            Ok(self.pos)
        }
    }

    /// Bytes covered by the union of `ranges`.
    fn distinct(mut ranges: Vec<(u64, u64)>) -> u64 {
        ranges.sort();
        let (mut total, mut reach) = (0, 0);
        for (start, end) in ranges {
            let start = start.max(reach);
            if end > start {
                total += end - start;
                reach = end;
            }
        }
        total
    }

    fn extract_file(path: &Path, format: &str) -> (Option<Picture>, u64, Option<(u64, u64)>) {
        let bytes = std::fs::read(path).unwrap();
        let size = bytes.len() as u64;
        let scanned = crate::scan::probe(&mut Cursor::new(&bytes), size, "x").expect("probe");
        // The body minus a margin for the reader's 64 KiB buffer at the
        // start and lofty's small reads for trailing tags at the end.
        let body = (
            scanned.audio_offset + 128 * 1024,
            (scanned.audio_offset + scanned.audio_length).saturating_sub(128 * 1024),
        );
        assert!(body.0 < body.1, "test file too small to tell");
        let mut r = Counting {
            inner: Cursor::new(bytes),
            pos: 0,
            ranges: Vec::new(),
            furthest_in_body: None,
            body,
        };
        let pic = extract_embedded(&mut r, format).expect("extract");
        (pic, distinct(r.ranges), r.furthest_in_body)
    }

    #[test]
    fn art_embedded_in_flac_mp3_m4a_read_from_the_header_only() {
        if !tools_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let jpeg = picture(dir.path(), "cover.jpg", 120, 80, "blue");
        let cover = dir.path().join("cover.jpg");
        let cases: [(&str, &str, &[&str]); 3] = [
            ("a.flac", "flac", &["-c:a", "flac"]),
            ("a.mp3", "mp3", &["-c:a", "libmp3lame", "-b:a", "320k"]),
            ("a.m4a", "m4a", &["-c:a", "aac", "-b:a", "256k"]),
        ];
        for (name, format, codec) in cases {
            let path = audio(dir.path(), name, 20, codec, Some(&cover));
            let size = std::fs::metadata(&path).unwrap().len();
            let (pic, total, in_body) = extract_file(&path, format);
            let pic = pic.unwrap_or_else(|| panic!("{name}: no picture"));
            assert_eq!(pic.data, jpeg, "{name}: picture bytes differ");
            assert_eq!(pic.mime, "image/jpeg");
            assert!(pic.is_jpeg());
            assert_eq!(in_body, None, "{name}: read inside the audio body");
            assert!(
                total < size / 2,
                "{name}: read {total} of {size} bytes for its art"
            );
        }
    }

    #[test]
    fn art_none_when_the_file_has_no_picture() {
        if !tools_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = audio(dir.path(), "b.flac", 20, &["-c:a", "flac"], None);
        let (pic, _, in_body) = extract_file(&path, "flac");
        assert_eq!(pic, None);
        assert_eq!(in_body, None);
    }

    #[test]
    fn art_prefers_the_front_cover_over_an_earlier_picture() {
        if !tools_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let back = picture(dir.path(), "back.jpg", 30, 30, "red");
        let front = picture(dir.path(), "front.png", 40, 20, "green");
        let path = audio(dir.path(), "c.flac", 1, &["-c:a", "flac"], None);
        let script = r#"
import sys
from mutagen.flac import FLAC, Picture
f = FLAC(sys.argv[1])
for kind, name, mime in ((4, sys.argv[2], "image/jpeg"), (3, sys.argv[3], "image/png")):
    p = Picture()
    p.type, p.mime, p.data = kind, mime, open(name, "rb").read()
    f.add_picture(p)
f.save()
"#;
        run(Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .arg(dir.path().join("back.jpg"))
            .arg(dir.path().join("front.png")));
        let mut file = std::fs::File::open(&path).unwrap();
        let pic = extract_embedded(&mut file, "flac")
            .unwrap()
            .expect("a picture");
        assert_eq!(pic.data, front);
        assert_eq!(pic.mime, "image/png");
        assert_ne!(pic.data, back);
    }

    #[test]
    fn art_extract_refuses_garbage_without_panicking() {
        let mut junk = Cursor::new(vec![0x42u8; 5000]);
        assert!(extract_embedded(&mut junk, "flac").is_err());
        let mut cut = Cursor::new(b"fLaC\x00\x00\x00\x22".to_vec());
        assert!(extract_embedded(&mut cut, "flac").is_err());
    }

    fn dimensions(jpeg: &[u8]) -> (u32, u32) {
        assert!(is_jpeg(jpeg), "not a JPEG");
        image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg)
            .map(|i| (i.width(), i.height()))
            .expect("decodes as JPEG")
    }

    #[test]
    fn art_resize_bounds_the_longer_side_and_never_upscales() {
        if !tools_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let wide = picture(dir.path(), "wide.jpg", 1000, 500, "yellow");
        assert_eq!(dimensions(&resize_jpeg(&wide, 600).unwrap()), (600, 300));
        assert_eq!(dimensions(&resize_jpeg(&wide, 200).unwrap()), (200, 100));
        let tall = picture(dir.path(), "tall.jpg", 334, 1000, "purple");
        assert_eq!(dimensions(&resize_jpeg(&tall, 200).unwrap()), (67, 200));
        // A JPEG that fits comes back byte for byte.
        let small = picture(dir.path(), "small.jpg", 64, 64, "white");
        assert_eq!(resize_jpeg(&small, 200).unwrap(), small);
        // A PNG becomes a JPEG of the same size when it fits.
        let png = picture(dir.path(), "p.png", 150, 90, "orange");
        assert_eq!(dimensions(&resize_jpeg(&png, 600).unwrap()), (150, 90));
        assert_eq!(dimensions(&resize_jpeg(&png, 100).unwrap()), (100, 60));
    }

    #[test]
    fn art_resize_refuses_bad_and_oversized_pictures() {
        assert!(resize_jpeg(b"not an image at all", 200).is_err());
        assert!(resize_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], 200).is_err());
        assert!(resize_jpeg(&vec![0u8; MAX_PICTURE_BYTES + 1], 200).is_err());
        // A PNG header claiming 100000×100000 pixels is refused before
        // anything is allocated for it.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        let crc = crc32(&ihdr);
        png.extend_from_slice(&crc.to_be_bytes());
        let err = resize_jpeg(&png, 200).unwrap_err().to_string();
        assert!(err.contains("resizing cover art"), "{err}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    #[ignore = "a measurement: cargo test -p musicfs-index art_timing -- --ignored --nocapture"]
    fn art_timing_of_a_large_picture() {
        if !tools_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let big = picture(dir.path(), "big.jpg", 3000, 3000, "teal");
        let t = std::time::Instant::now();
        let img = image::load_from_memory_with_format(&big, ImageFormat::Jpeg).unwrap();
        let decode = t.elapsed();
        let t = std::time::Instant::now();
        let medium = resize_jpeg(&big, 600).unwrap();
        let resize = t.elapsed();
        let t = std::time::Instant::now();
        resize_jpeg(&medium, 200).unwrap();
        let thumb = t.elapsed();
        eprintln!(
            "MEASURED 3000x3000 JPEG ({} bytes, {}x{}): decode {decode:?}, decode+resize+encode to 600 {resize:?}, 600 to 200 {thumb:?}",
            big.len(),
            img.width(),
            img.height()
        );
    }

    #[test]
    fn art_fit_keeps_the_aspect_ratio() {
        assert_eq!(fit(1000, 500, 200), (200, 100));
        assert_eq!(fit(500, 1000, 200), (100, 200));
        assert_eq!(fit(5000, 1, 200), (200, 1));
        assert_eq!(fit(300, 300, 200), (200, 200));
    }
}
