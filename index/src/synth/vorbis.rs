//! Vorbis comments (FLAC's VORBIS_COMMENT block, Ogg's comment packets):
//! parsing, applying edits, encoding; canonical key ↔ field name.
//!
//! The structure (all lengths little-endian u32), without Ogg's framing
//! bit, which the Ogg code adds and strips itself:
//!
//! ```text
//! vendor_length  vendor (UTF-8)
//! field_count    field_count × (length  "NAME=value")
//! ```
//!
//! Field names map to the scanner's canonical keys the way lofty reads
//! them (`scan::tags`), so an edit written here reads back under the same
//! key after a rescan.
use super::TagEdit;
use crate::{Error, Result};

/// A parsed Vorbis comment block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Comments {
    pub vendor: String,
    /// `(NAME, value)` in file order, names as written.
    pub fields: Vec<(String, String)>,
}

/// Canonical keys whose field name is not simply the key upper-cased, or
/// that have aliases. The first name is the one written; every name is
/// removed when the key is edited.
const NAMES: &[(&str, &[&str])] = &[
    ("albumartist", &["ALBUMARTIST", "ALBUM ARTIST"]),
    ("albumartists", &["ALBUMARTISTS", "ALBUM ARTISTS"]),
    ("disctitle", &["DISCSUBTITLE"]),
    ("album_sort", &["ALBUMSORT"]),
    ("albumartist_sort", &["ALBUMARTISTSORT"]),
    ("title_sort", &["TITLESORT"]),
    ("artist_sort", &["ARTISTSORT"]),
    ("writer", &["WRITER", "AUTHOR"]),
    ("label", &["LABEL", "ORGANIZATION"]),
    ("remixer", &["REMIXER", "MIXARTIST"]),
    ("disc", &["DISCNUMBER"]),
    ("disctotal", &["DISCTOTAL", "TOTALDISCS"]),
    ("track", &["TRACKNUMBER"]),
    ("tracktotal", &["TRACKTOTAL", "TOTALTRACKS"]),
    // `year` is served as DATE (what players read); see `Comments::apply`.
    ("year", &["DATE", "YEAR"]),
    ("original_date", &["ORIGINALDATE", "ORIGINALYEAR"]),
    ("catalognum", &["CATALOGNUMBER"]),
    ("movement", &["MOVEMENTNAME"]),
    ("movementnumber", &["MOVEMENT"]),
    ("country", &["RELEASECOUNTRY"]),
    ("encodedby", &["ENCODEDBY", "ENCODED-BY", "ENCODED_BY"]),
    ("encoder_settings", &["ENCODERSETTINGS", "ENCODING"]),
    ("initial_key", &["INITIALKEY", "KEY"]),
    ("lyrics", &["LYRICS", "UNSYNCEDLYRICS"]),
];

/// The field names a canonical key is stored under; the first is the one
/// written. Unknown keys are their own upper-cased name.
pub(crate) fn field_names(key: &str) -> Vec<String> {
    let key = key.to_ascii_lowercase();
    match NAMES.iter().find(|(k, _)| *k == key) {
        Some((_, names)) => names.iter().map(|n| n.to_string()).collect(),
        None => vec![key.to_ascii_uppercase()],
    }
}

/// The canonical key a field name is read as (the inverse of
/// [`field_names`]; DATE reads as `date`, YEAR as `year`).
pub(crate) fn canonical_key(field: &str) -> String {
    let upper = field.to_ascii_uppercase();
    match upper.as_str() {
        "DATE" => return "date".into(),
        "YEAR" => return "year".into(),
        _ => {}
    }
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&upper.as_str()))
        .map(|(k, _)| k.to_string())
        .unwrap_or_else(|| upper.to_ascii_lowercase())
}

/// A bounds-checked little-endian reader over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                Error::Synth(format!(
                    "vorbis comment: {what} ({n} bytes at {}) runs past the end ({})",
                    self.pos,
                    self.bytes.len()
                ))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
}

impl Comments {
    /// Parses a comment structure. Trailing bytes (Ogg's framing bit,
    /// FLAC padding some taggers leave) are ignored. A field without `=`
    /// or with invalid UTF-8 is an error: it cannot be carried over as
    /// text, and dropping it silently would lose a tag.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Comments> {
        let mut c = Cursor { bytes, pos: 0 };
        let vendor_len = c.u32("vendor length")? as usize;
        let vendor = text(c.take(vendor_len, "vendor")?, "vendor")?;
        let count = c.u32("field count")? as usize;
        // Each field takes at least its 4-byte length: a hostile count
        // cannot make us reserve more than the input justifies.
        let remaining = bytes.len() - c.pos;
        if count > remaining / 4 {
            return Err(Error::Synth(format!(
                "vorbis comment: {count} fields cannot fit in {remaining} bytes"
            )));
        }
        let mut fields = Vec::with_capacity(count);
        for i in 0..count {
            let len = c.u32("field length")? as usize;
            let raw = text(c.take(len, "field")?, "field")?;
            let (name, value) = raw
                .split_once('=')
                .ok_or_else(|| Error::Synth(format!("vorbis comment: field {i} has no '='")))?;
            fields.push((name.to_string(), value.to_string()));
        }
        Ok(Comments { vendor, fields })
    }

    /// The comment structure, without framing bit.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let size = 8
            + self.vendor.len()
            + self
                .fields
                .iter()
                .map(|(n, v)| 5 + n.len() + v.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&(self.vendor.len() as u32).to_le_bytes());
        out.extend_from_slice(self.vendor.as_bytes());
        out.extend_from_slice(&(self.fields.len() as u32).to_le_bytes());
        for (name, value) in &self.fields {
            out.extend_from_slice(&((name.len() + 1 + value.len()) as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Applies `edits` in order: every field stored under an edited key
    /// goes, then the edit's values are appended under the key's first
    /// field name. Fields nobody edited (METADATA_BLOCK_PICTURE, vendor
    /// tags) stay as they were, in place.
    pub(crate) fn apply(&mut self, edits: &[TagEdit]) {
        let date_edited = edits
            .iter()
            .any(|e| e.key.eq_ignore_ascii_case("date") && !e.values.is_empty());
        for edit in edits {
            let names = field_names(&edit.key);
            let is_year = edit.key.eq_ignore_ascii_case("year");
            // `year` is written as DATE, but a full date already there
            // (or edited alongside) says more than the year does: keep it
            // when it agrees, and only drop stray YEAR fields.
            if is_year {
                let keeps_date = date_edited
                    || (edit.values.len() == 1
                        && self.fields.iter().any(|(n, v)| {
                            n.eq_ignore_ascii_case("DATE") && v.trim().starts_with(&edit.values[0])
                        }));
                if keeps_date && !edit.values.is_empty() {
                    self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case("YEAR"));
                    continue;
                }
            }
            let key = edit.key.to_ascii_lowercase();
            self.fields.retain(|(n, _)| {
                let of = canonical_key(n);
                of != key && !(is_year && of == "date")
            });
            for value in &edit.values {
                self.fields.push((names[0].clone(), value.clone()));
            }
        }
    }
}

fn text(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::Synth(format!("vorbis comment: {what} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(key: &str, values: &[&str]) -> TagEdit {
        TagEdit {
            key: key.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn sample() -> Comments {
        Comments {
            vendor: "reference libFLAC 1.4.3".into(),
            fields: vec![
                ("TITLE".into(), "Old".into()),
                ("artist".into(), "A".into()),
                ("METADATA_BLOCK_PICTURE".into(), "AAAA".into()),
                ("TOTALTRACKS".into(), "9".into()),
                ("DATE".into(), "2019-05-01".into()),
            ],
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let c = sample();
        let bytes = c.encode();
        assert_eq!(Comments::parse(&bytes).unwrap(), c);
        // Ogg's framing bit after the structure is ignored.
        let mut framed = bytes.clone();
        framed.push(1);
        assert_eq!(Comments::parse(&framed).unwrap(), c);
    }

    #[test]
    fn edits_replace_case_insensitively_and_keep_the_rest() {
        let mut c = sample();
        c.apply(&[
            edit("artist", &["B", "C"]),
            edit("tracktotal", &["12"]),
            edit("title", &[]),
            edit("mood", &["calm"]),
        ]);
        assert_eq!(
            c.fields,
            vec![
                ("METADATA_BLOCK_PICTURE".to_string(), "AAAA".to_string()),
                ("DATE".into(), "2019-05-01".into()),
                ("ARTIST".into(), "B".into()),
                ("ARTIST".into(), "C".into()),
                ("TRACKTOTAL".into(), "12".into()),
                ("MOOD".into(), "calm".into()),
            ]
        );
    }

    #[test]
    fn year_keeps_an_agreeing_date_and_replaces_another() {
        let mut c = sample();
        c.apply(&[edit("year", &["2019"])]);
        assert!(c.fields.contains(&("DATE".into(), "2019-05-01".into())));
        c.apply(&[edit("year", &["2020"])]);
        assert!(c.fields.contains(&("DATE".into(), "2020".into())));
        assert!(!c.fields.iter().any(|(_, v)| v.starts_with("2019")));
    }

    #[test]
    fn names_map_both_ways() {
        assert_eq!(field_names("track"), vec!["TRACKNUMBER"]);
        assert_eq!(field_names("genre"), vec!["GENRE"]);
        assert_eq!(canonical_key("totaltracks"), "tracktotal");
        assert_eq!(canonical_key("Album Artist"), "albumartist");
        assert_eq!(canonical_key("DATE"), "date");
        assert_eq!(canonical_key("X_CUSTOM"), "x_custom");
    }

    #[test]
    fn hostile_input_is_an_error() {
        // Vendor length past the end.
        assert!(Comments::parse(&[0xff, 0xff, 0xff, 0x7f, b'x']).is_err());
        // A huge field count with no fields behind it.
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Comments::parse(&b).is_err());
        // A field length past the end.
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&100u32.to_le_bytes());
        b.extend_from_slice(b"A=b");
        assert!(Comments::parse(&b).is_err());
        // Truncated everywhere: never a panic.
        let full = sample().encode();
        for n in 0..full.len() {
            assert!(Comments::parse(&full[..n]).is_err(), "prefix {n}");
        }
        assert!(Comments::parse(&[]).is_err());
    }
}
