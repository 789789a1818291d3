//! Where the audio body of a file starts and how long it is.
//!
//! The "body" is the part of a file a synthesized tag header can later be
//! spliced in front of: everything after the leading tags and metadata, up
//! to any trailing tags. Per container:
//!
//! | container | body |
//! |---|---|
//! | FLAC | after `fLaC` and the last metadata block (a leading ID3v2 is skipped) |
//! | MP3, AAC (ADTS), WavPack, APE, MPC | after leading ID3v2 tags; trailing ID3v1, Lyrics3 and APEv2 tags excluded |
//! | Ogg Vorbis, Opus, Speex | from the first page after the codec's header packets |
//! | MP4/M4A | the payload of the first `mdat` box |
//! | WAV | the payload of the `data` chunk |
//! | AIFF/AIFC | the sample data of the `SSND` chunk (after its offset/block-size fields and the declared offset) |
//!
//! Every read is bounds-checked against the file size the caller gave; a
//! field pointing outside the file is an error message, never a panic or a
//! huge allocation (the walkers only read fixed-size headers).
use std::io::{Read, Seek, SeekFrom};

/// The audio body of a file: `offset..offset + length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Body {
    pub offset: u64,
    pub length: u64,
}

/// The container families whose bodies are found differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Container {
    Flac,
    /// Tag-framed streams: leading ID3v2, trailing ID3v1/Lyrics3/APEv2.
    Framed,
    Ogg,
    Mp4,
    Wav,
    Aiff,
}

/// Messages are plain strings here; `probe` adds the path.
pub(super) type BodyResult<T> = std::result::Result<T, String>;

/// Finds the body of a file of `size` bytes.
pub(super) fn locate<R: Read + Seek>(
    reader: &mut R,
    size: u64,
    container: Container,
) -> BodyResult<Body> {
    let mut src = Source { reader, size };
    match container {
        Container::Flac => flac(&mut src),
        Container::Framed => framed(&mut src),
        Container::Ogg => ogg(&mut src),
        Container::Mp4 => mp4(&mut src),
        Container::Wav => wav(&mut src),
        Container::Aiff => aiff(&mut src),
    }
}

/// A reader with a known size: every read is checked against it first.
struct Source<'a, R> {
    reader: &'a mut R,
    size: u64,
}

impl<R: Read + Seek> Source<'_, R> {
    /// Fills `buf` from `offset`; `Ok(false)` if that would pass the end.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> BodyResult<bool> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.size => {}
            _ => return Ok(false),
        }
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| format!("read error at byte {offset}: {e}"))?;
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(true),
            // The file is shorter than the size we were told: treat as truncated.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(format!("read error at byte {offset}: {e}")),
        }
    }

    /// Like `read_at`, but running past the end is the error `what`.
    fn need_at(&mut self, offset: u64, buf: &mut [u8], what: &str) -> BodyResult<()> {
        if self.read_at(offset, buf)? {
            Ok(())
        } else {
            Err(what.to_string())
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn syncsafe(b: &[u8]) -> Option<u64> {
    if b.iter().take(4).any(|x| x & 0x80 != 0) {
        return None;
    }
    Some(
        (u64::from(b[0]) << 21)
            | (u64::from(b[1]) << 14)
            | (u64::from(b[2]) << 7)
            | u64::from(b[3]),
    )
}

/// Skips ID3v2 tags at `pos` (some taggers stack several); returns the
/// first byte after them.
fn skip_id3v2<R: Read + Seek>(src: &mut Source<'_, R>, mut pos: u64) -> BodyResult<u64> {
    for _ in 0..16 {
        let mut h = [0u8; 10];
        if !src.read_at(pos, &mut h)? || &h[0..3] != b"ID3" {
            return Ok(pos);
        }
        let Some(len) = syncsafe(&h[6..10]) else {
            return Err("malformed ID3v2 header (bad tag size)".into());
        };
        if h[3] == 0xFF || h[4] == 0xFF {
            return Err("malformed ID3v2 header (bad version)".into());
        }
        let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
        let end = pos + 10 + len + footer;
        if end > src.size {
            return Err("ID3v2 tag runs past the end of the file".into());
        }
        pos = end;
    }
    Ok(pos)
}

/// The end of the audio before trailing tags in `start..end`: ID3v1 (and
/// its "TAG+" extension), Lyrics3 v1/v2, APEv2 and appended ID3v2, in any
/// order. A tag that does not parse is left in the body: the body is then
/// slightly too long, which is harmless, whereas cutting audio is not.
fn strip_trailing_tags<R: Read + Seek>(
    src: &mut Source<'_, R>,
    start: u64,
    mut end: u64,
) -> BodyResult<u64> {
    for _ in 0..16 {
        let avail = end - start;
        if avail >= 128 {
            let mut t = [0u8; 4];
            src.need_at(end - 128, &mut t[..3], "truncated file")?;
            if &t[..3] == b"TAG" {
                end -= 128;
                // Enhanced ID3v1 ("TAG+", 227 bytes) sits right before ID3v1.
                if end - start >= 227 && src.read_at(end - 227, &mut t)? && &t == b"TAG+" {
                    end -= 227;
                }
                continue;
            }
        }
        if avail >= 32 {
            let mut f = [0u8; 32];
            src.need_at(end - 32, &mut f, "truncated file")?;
            if &f[0..8] == b"APETAGEX" {
                let tag_size = u64::from(le32(&f[12..16]));
                let has_header = le32(&f[20..24]) & 0x8000_0000 != 0;
                let total = tag_size + if has_header { 32 } else { 0 };
                if tag_size >= 32 && total <= avail {
                    end -= total;
                    continue;
                }
                return Ok(end);
            }
        }
        if avail >= 15 {
            let mut f = [0u8; 15];
            src.need_at(end - 15, &mut f, "truncated file")?;
            if &f[6..15] == b"LYRICS200" {
                // Six ASCII digits: the size of the Lyrics3v2 tag before this footer.
                let digits = std::str::from_utf8(&f[0..6]).ok();
                let size = digits.and_then(|d| d.parse::<u64>().ok());
                if let Some(total) = size.map(|s| s + 15).filter(|t| *t <= avail) {
                    let mut b = [0u8; 11];
                    if src.read_at(end - total, &mut b)? && &b == b"LYRICSBEGIN" {
                        end -= total;
                        continue;
                    }
                }
                return Ok(end);
            }
            if &f[6..15] == b"LYRICSEND" {
                // Lyrics3v1: at most 5100 bytes of lyrics after "LYRICSBEGIN".
                let window = avail.min(5100 + 11 + 9);
                let mut b = vec![0u8; window as usize];
                src.need_at(end - window, &mut b, "truncated file")?;
                if let Some(i) = b.windows(11).rposition(|w| w == b"LYRICSBEGIN") {
                    end -= window - i as u64;
                    continue;
                }
                return Ok(end);
            }
        }
        if avail >= 20 {
            let mut f = [0u8; 10];
            src.need_at(end - 10, &mut f, "truncated file")?;
            if &f[0..3] == b"3DI" {
                if let Some(len) = syncsafe(&f[6..10]) {
                    if len + 20 <= avail {
                        end -= len + 20;
                        continue;
                    }
                }
                return Ok(end);
            }
        }
        break;
    }
    Ok(end)
}

fn framed<R: Read + Seek>(src: &mut Source<'_, R>) -> BodyResult<Body> {
    let start = skip_id3v2(src, 0)?;
    let end = strip_trailing_tags(src, start, src.size)?;
    if end <= start {
        return Err("no audio data after the tags".into());
    }
    Ok(Body {
        offset: start,
        length: end - start,
    })
}

fn flac<R: Read + Seek>(src: &mut Source<'_, R>) -> BodyResult<Body> {
    let start = skip_id3v2(src, 0)?;
    let mut magic = [0u8; 4];
    src.need_at(start, &mut magic, "truncated FLAC stream (no fLaC marker)")?;
    if &magic != b"fLaC" {
        return Err("not a FLAC stream (no fLaC marker)".into());
    }
    let mut pos = start + 4;
    let mut first = true;
    loop {
        let mut h = [0u8; 4];
        src.need_at(pos, &mut h, "truncated FLAC metadata")?;
        let last = h[0] & 0x80 != 0;
        let kind = h[0] & 0x7F;
        let len = (u64::from(h[1]) << 16) | (u64::from(h[2]) << 8) | u64::from(h[3]);
        if first && kind != 0 {
            return Err("malformed FLAC metadata (first block is not STREAMINFO)".into());
        }
        if kind == 0 && len != 34 {
            return Err("malformed FLAC STREAMINFO block".into());
        }
        if kind == 127 {
            return Err("malformed FLAC metadata (invalid block type 127)".into());
        }
        first = false;
        pos += 4 + len;
        if pos > src.size {
            return Err("truncated FLAC metadata (a block runs past the end of the file)".into());
        }
        if last {
            break;
        }
    }
    let end = strip_trailing_tags(src, pos, src.size)?;
    if end <= pos {
        return Err("FLAC stream has no audio frames".into());
    }
    Ok(Body {
        offset: pos,
        length: end - pos,
    })
}

/// How many header packets an Ogg stream starts with, from its first packet.
fn ogg_header_packets(first: &[u8]) -> BodyResult<u64> {
    if first.starts_with(b"\x01vorbis") {
        Ok(3)
    } else if first.starts_with(b"OpusHead") {
        Ok(2)
    } else if first.starts_with(b"Speex   ") {
        // Speex header: `extra_headers` (LE u32) at byte 68.
        let extra = first
            .get(68..72)
            .map(le32)
            .ok_or("truncated Speex header")?;
        if extra > 64 {
            return Err("malformed Speex header (implausible extra header count)".into());
        }
        Ok(2 + u64::from(extra))
    } else {
        Err("unsupported Ogg codec".into())
    }
}

fn ogg<R: Read + Seek>(src: &mut Source<'_, R>) -> BodyResult<Body> {
    let mut pos = 0u64;
    let mut serial = None;
    let mut headers_needed = None;
    let mut packets_done = 0u64;
    loop {
        let mut h = [0u8; 27];
        src.need_at(
            pos,
            &mut h,
            "truncated Ogg stream (header packets incomplete)",
        )?;
        if &h[0..4] != b"OggS" || h[4] != 0 {
            return Err(format!("malformed Ogg page at byte {pos}"));
        }
        let nsegs = usize::from(h[26]);
        let mut lacing = [0u8; 255];
        let lacing = &mut lacing[..nsegs];
        src.need_at(pos + 27, lacing, "truncated Ogg page")?;
        let data_start = pos + 27 + nsegs as u64;
        let page_end = data_start + lacing.iter().map(|&l| u64::from(l)).sum::<u64>();
        if page_end > src.size {
            return Err("truncated Ogg page".into());
        }
        let page_serial = le32(&h[14..18]);
        let ours = *serial.get_or_insert(page_serial) == page_serial;
        if ours {
            if headers_needed.is_none() {
                // The first page holds exactly the identification packet.
                let first_len = lacing
                    .iter()
                    .take_while(|&&l| l == 255)
                    .count()
                    .saturating_mul(255)
                    + usize::from(lacing.iter().find(|&&l| l < 255).copied().unwrap_or(0));
                let mut first = vec![0u8; first_len.min(80)];
                src.need_at(data_start, &mut first, "truncated Ogg page")?;
                headers_needed = Some(ogg_header_packets(&first)?);
            }
            let needed = headers_needed.unwrap_or(0);
            for (i, &l) in lacing.iter().enumerate() {
                if l < 255 {
                    packets_done += 1;
                    if packets_done == needed {
                        // Conforming streams end the last header packet with
                        // its page; if audio shares the page, the body starts
                        // at that page.
                        let offset = if i + 1 == nsegs { page_end } else { pos };
                        if offset >= src.size {
                            return Err("Ogg stream has no audio pages".into());
                        }
                        return Ok(Body {
                            offset,
                            length: src.size - offset,
                        });
                    }
                }
            }
        }
        pos = page_end;
    }
}

fn mp4<R: Read + Seek>(src: &mut Source<'_, R>) -> BodyResult<Body> {
    let mut pos = 0u64;
    while pos + 8 <= src.size {
        let mut h = [0u8; 8];
        src.need_at(pos, &mut h, "truncated MP4 box header")?;
        let kind = [h[4], h[5], h[6], h[7]];
        let (header, len) = match be32(&h[0..4]) {
            0 => (8, src.size - pos),
            1 => {
                let mut l = [0u8; 8];
                src.need_at(pos + 8, &mut l, "truncated MP4 box header")?;
                (16, u64::from_be_bytes(l))
            }
            n => (8, u64::from(n)),
        };
        let name = String::from_utf8_lossy(&kind).into_owned();
        if len < header {
            return Err(format!("malformed MP4 '{name}' box (size {len})"));
        }
        match pos.checked_add(len) {
            Some(end) if end <= src.size => {}
            _ => return Err(format!("truncated MP4 '{name}' box")),
        }
        if &kind == b"mdat" {
            return Ok(Body {
                offset: pos + header,
                length: len - header,
            });
        }
        pos += len;
    }
    Err("MP4 file has no mdat box".into())
}

fn wav<R: Read + Seek>(src: &mut Source<'_, R>) -> BodyResult<Body> {
    let mut h = [0u8; 12];
    src.need_at(0, &mut h, "truncated WAV header")?;
    if &h[0..4] != b"RIFF" || &h[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut pos = 12u64;
    while pos + 8 <= src.size {
        let mut c = [0u8; 8];
        src.need_at(pos, &mut c, "truncated WAV chunk header")?;
        let len = u64::from(le32(&c[4..8]));
        let payload = pos + 8;
        let avail = src.size - payload;
        if &c[0..4] == b"data" {
            let length = if len <= avail {
                len
            } else if len == 0xFFFF_FFFF {
                // Written by a streaming encoder that could not seek back.
                avail
            } else {
                return Err("truncated WAV data chunk".into());
            };
            if length == 0 {
                return Err("WAV data chunk is empty".into());
            }
            return Ok(Body {
                offset: payload,
                length,
            });
        }
        pos = payload + len + (len & 1);
    }
    Err("WAV file has no data chunk".into())
}

fn aiff<R: Read + Seek>(src: &mut Source<'_, R>) -> BodyResult<Body> {
    let mut h = [0u8; 12];
    src.need_at(0, &mut h, "truncated AIFF header")?;
    if &h[0..4] != b"FORM" || (&h[8..12] != b"AIFF" && &h[8..12] != b"AIFC") {
        return Err("not an AIFF file".into());
    }
    let mut pos = 12u64;
    while pos + 8 <= src.size {
        let mut c = [0u8; 8];
        src.need_at(pos, &mut c, "truncated AIFF chunk header")?;
        let len = u64::from(be32(&c[4..8]));
        let payload = pos + 8;
        if &c[0..4] == b"SSND" {
            if payload + len > src.size {
                return Err("truncated AIFF sound data".into());
            }
            let mut f = [0u8; 8];
            src.need_at(payload, &mut f, "truncated AIFF SSND chunk")?;
            let skip = 8 + u64::from(be32(&f[0..4]));
            if skip >= len {
                return Err("AIFF SSND chunk holds no sound data".into());
            }
            return Ok(Body {
                offset: payload + skip,
                length: len - skip,
            });
        }
        pos = payload + len + (len & 1);
    }
    Err("AIFF file has no SSND chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn run(bytes: &[u8], c: Container) -> BodyResult<Body> {
        locate(&mut Cursor::new(bytes), bytes.len() as u64, c)
    }

    fn flac_bytes(audio: &[u8]) -> Vec<u8> {
        let mut v = b"fLaC".to_vec();
        v.extend_from_slice(&[0x00, 0, 0, 34]);
        v.extend_from_slice(&[0u8; 34]);
        v.extend_from_slice(&[0x81, 0, 0, 10]); // last block: 10 bytes of padding
        v.extend_from_slice(&[0u8; 10]);
        v.extend_from_slice(audio);
        v
    }

    #[test]
    fn flac_body_follows_last_block_and_skips_id3v2() {
        let f = flac_bytes(&[0xFF, 0xF8, 1, 2, 3]);
        assert_eq!(
            run(&f, Container::Flac),
            Ok(Body {
                offset: 56,
                length: 5
            })
        );
        let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x05hello".to_vec();
        tagged.extend_from_slice(&f);
        assert_eq!(
            run(&tagged, Container::Flac),
            Ok(Body {
                offset: 71,
                length: 5
            })
        );
    }

    #[test]
    fn flac_with_huge_block_is_truncated_not_panic() {
        let mut f = b"fLaC".to_vec();
        f.extend_from_slice(&[0x00, 0, 0, 34]);
        f.extend_from_slice(&[0u8; 34]);
        f.extend_from_slice(&[0x84, 0xFF, 0xFF, 0xFF]);
        let e = run(&f, Container::Flac).unwrap_err();
        assert!(e.contains("truncated FLAC metadata"), "{e}");
    }

    #[test]
    fn id3v2_footer_flag_and_past_eof() {
        let mut m = b"ID3\x04\x00\x10\x00\x00\x00\x02ab3DI\x04\x00\x10\x00\x00\x00\x02".to_vec();
        m.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
        assert_eq!(
            run(&m, Container::Framed),
            Ok(Body {
                offset: 22,
                length: 4
            })
        );
        let bad = b"ID3\x04\x00\x00\x7F\x7F\x7F\x7Fxx";
        let e = run(bad, Container::Framed).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
    }

    #[test]
    fn trailing_id3v1_ape_and_lyrics3_are_excluded() {
        let audio = vec![0xAAu8; 300];
        let mut f = audio.clone();
        // APEv2 with header: 32 header + 10 items + 32 footer; size field counts 42.
        let mut ape_footer = b"APETAGEX".to_vec();
        ape_footer.extend_from_slice(&2000u32.to_le_bytes());
        ape_footer.extend_from_slice(&42u32.to_le_bytes());
        ape_footer.extend_from_slice(&0u32.to_le_bytes());
        ape_footer.extend_from_slice(&0x8000_0000u32.to_le_bytes());
        ape_footer.extend_from_slice(&[0u8; 8]);
        f.extend_from_slice(&ape_footer); // stands in for the header
        f.extend_from_slice(&[0u8; 10]);
        f.extend_from_slice(&ape_footer);
        // Lyrics3v2: "LYRICSBEGIN" + 5 bytes, size 16, then footer.
        f.extend_from_slice(b"LYRICSBEGINhello000016LYRICS200");
        let mut v1 = b"TAG".to_vec();
        v1.resize(128, b' ');
        f.extend_from_slice(&v1);
        assert_eq!(
            run(&f, Container::Framed),
            Ok(Body {
                offset: 0,
                length: 300
            })
        );
    }

    fn ogg_page(serial: u32, granule: u64, packets: &[&[u8]], bos: bool) -> Vec<u8> {
        let mut lacing = Vec::new();
        for p in packets {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            lacing.push((p.len() % 255) as u8);
        }
        let mut v = b"OggS\x00".to_vec();
        v.push(if bos { 2 } else { 0 });
        v.extend_from_slice(&granule.to_le_bytes());
        v.extend_from_slice(&serial.to_le_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v.push(lacing.len() as u8);
        v.extend_from_slice(&lacing);
        for p in packets {
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn ogg_opus_body_starts_after_tags_page() {
        let mut f = ogg_page(7, 0, &[b"OpusHead\x01\x02"], true);
        f.extend(ogg_page(9, 0, &[b"other stream"], true)); // multiplexed: ignored
        f.extend(ogg_page(7, 0, &[&[b'x'; 600]], false));
        let audio_at = f.len() as u64;
        f.extend(ogg_page(7, 960, &[b"audio"], false));
        let body = run(&f, Container::Ogg).unwrap();
        assert_eq!(body.offset, audio_at);
        assert_eq!(body.offset + body.length, f.len() as u64);
    }

    #[test]
    fn ogg_without_audio_or_truncated_is_an_error() {
        let mut f = ogg_page(1, 0, &[b"\x01vorbis...."], true);
        f.extend(ogg_page(1, 0, &[b"\x03vorbis", b"\x05vorbis"], false));
        assert!(run(&f, Container::Ogg).unwrap_err().contains("no audio"));
        assert!(run(&f[..f.len() - 3], Container::Ogg)
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn mp4_finds_mdat_including_64bit_size() {
        let mut f = b"\x00\x00\x00\x10ftypM4A \x00\x00\x00\x00".to_vec();
        f.extend_from_slice(b"\x00\x00\x00\x01mdat\x00\x00\x00\x00\x00\x00\x00\x14abcd");
        f.extend_from_slice(b"\x00\x00\x00\x08moov");
        assert_eq!(
            run(&f, Container::Mp4),
            Ok(Body {
                offset: 32,
                length: 4
            })
        );
        let bad = b"\x00\x00\x00\x10ftypM4A \x00\x00\x00\x00\x7F\x00\x00\x00mdat";
        assert!(run(bad, Container::Mp4).unwrap_err().contains("truncated"));
        let tiny = b"\x00\x00\x00\x04ftyp";
        assert!(run(tiny, Container::Mp4).unwrap_err().contains("malformed"));
    }

    #[test]
    fn wav_and_aiff_sound_data() {
        let mut w = b"RIFF\x00\x00\x00\x00WAVEfmt \x03\x00\x00\x00abc\x00".to_vec();
        w.extend_from_slice(b"data\x04\x00\x00\x00wxyzLIST\x00\x00\x00\x00");
        assert_eq!(
            run(&w, Container::Wav),
            Ok(Body {
                offset: 32,
                length: 4
            })
        );
        let mut a = b"FORM\x00\x00\x00\x00AIFFSSND\x00\x00\x00\x0E".to_vec();
        a.extend_from_slice(b"\x00\x00\x00\x02\x00\x00\x00\x00..wxyz");
        assert_eq!(
            run(&a, Container::Aiff),
            Ok(Body {
                offset: 30,
                length: 4
            })
        );
        assert!(run(&a[..a.len() - 1], Container::Aiff).is_err());
    }

    #[test]
    fn every_truncation_of_every_sample_is_ok_or_err() {
        let samples: Vec<(Vec<u8>, Container)> = vec![
            (flac_bytes(&[0xFF, 0xF8, 0, 0]), Container::Flac),
            (ogg_page(1, 0, &[b"Speex   "], true), Container::Ogg),
            (
                b"\x00\x00\x00\x01mdat\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF".to_vec(),
                Container::Mp4,
            ),
            (
                b"RIFF\x00\x00\x00\x00WAVEdata\xFF\xFF\xFF\xFFab".to_vec(),
                Container::Wav,
            ),
            (
                b"FORM\x00\x00\x00\x00AIFFSSND\x00\x00\x00\x08\xFF\xFF\xFF\xFF".to_vec(),
                Container::Aiff,
            ),
            (
                b"xxxxxxxxxxxxxxxxxxxxxxLYRICSEND".to_vec(),
                Container::Framed,
            ),
        ];
        for (bytes, c) in samples {
            for n in 0..=bytes.len() {
                let _ = run(&bytes[..n], c);
            }
        }
    }
}
