//! Field lookup with the fallbacks and formatting the template applies on
//! top of the raw values a [`Fields`] gives.
//!
//! | field | value |
//! |---|---|
//! | `albumartist` | raw, else `artist`, else "Unknown Artist" |
//! | `artist` | raw, else "Unknown Artist" |
//! | `album` | raw, else "Unknown Album" |
//! | `title` | raw, else the stem of `filename` (no directory, no extension), else "Unknown Title" |
//! | `track` | the number before any `/` ("3/12" → "03"), zero-padded to two digits; a non-numeric value as it is; missing → empty |
//! | `disc` | the number before any `/` without leading zeros ("01" → "1"); non-numeric as it is; missing → empty |
//! | `multidisc` | "1" when `disctotal` > 1, or `disc` > 1, or `disc` is "n/m" with m > 1; else empty |
//! | `year` | the first four-digit run of `year`, else of `date` ("2001-05-03" → "2001"); else the raw value |
//! | `ext` | the extension given to `render` |
//! | anything else | raw, or empty when the file does not have it (unknown fields are not errors) |
//!
//! A raw value that is empty or only whitespace counts as missing. Every
//! value has `/` replaced by `-` and NUL removed before use, so a value can
//! never split a path component.
use super::Fields;
use std::borrow::Cow;

/// A field reference, resolved at parse time so rendering does no string
/// matching on names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Field {
    AlbumArtist,
    Artist,
    Album,
    Title,
    Track,
    Disc,
    Multidisc,
    Year,
    Ext,
    /// Any other field, looked up by its (lower-cased) name.
    Other(Box<str>),
}

impl Field {
    /// Field names are matched ASCII case-insensitively (`$Artist` is
    /// `$artist`).
    pub(super) fn from_name(name: &str) -> Field {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "albumartist" => Field::AlbumArtist,
            "artist" => Field::Artist,
            "album" => Field::Album,
            "title" => Field::Title,
            "track" => Field::Track,
            "disc" => Field::Disc,
            "multidisc" => Field::Multidisc,
            "year" => Field::Year,
            "ext" => Field::Ext,
            _ => Field::Other(lower.into_boxed_str()),
        }
    }

    /// The name handed to [`Fields::get`] for the raw value.
    pub(super) fn name(&self) -> &str {
        match self {
            Field::AlbumArtist => "albumartist",
            Field::Artist => "artist",
            Field::Album => "album",
            Field::Title => "title",
            Field::Track => "track",
            Field::Disc => "disc",
            Field::Multidisc => "multidisc",
            Field::Year => "year",
            Field::Ext => "ext",
            Field::Other(name) => name,
        }
    }
}

/// What a field is rendered from: the file's raw values and its extension.
pub(super) struct Source<'a> {
    pub fields: &'a dyn Fields,
    pub ext: &'a str,
}

impl Source<'_> {
    /// A raw value, trimmed; empty counts as missing.
    fn raw(&self, name: &str) -> Option<String> {
        let value = self.fields.get(name)?;
        let trimmed = value.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == value.len() {
            Some(value)
        } else {
            Some(trimmed.to_owned())
        }
    }

    /// The value with formatting and derivations but without the
    /// "Unknown …" fallbacks; `None` when the file does not define it.
    /// This is what `%ifdef` tests.
    pub(super) fn defined(&self, field: &Field) -> Option<String> {
        let value = match field {
            Field::AlbumArtist => self.raw("albumartist").or_else(|| self.raw("artist")),
            Field::Title => self.raw("title").or_else(|| {
                let name = self.raw("filename")?;
                let stem = file_stem(&name);
                (!stem.is_empty()).then(|| stem.to_owned())
            }),
            Field::Track => self.raw("track").map(|t| number(t, 2)),
            Field::Disc => self.raw("disc").map(|d| number(d, 1)),
            Field::Multidisc => self.multidisc().then(|| "1".to_owned()),
            Field::Year => {
                self.raw("year")
                    .or_else(|| self.raw("date"))
                    .map(|y| match four_digits(&y) {
                        Some(year) => year.to_owned(),
                        None => y,
                    })
            }
            Field::Ext => (!self.ext.is_empty()).then(|| self.ext.to_owned()),
            Field::Artist | Field::Album | Field::Other(_) => self.raw(field.name()),
        }?;
        Some(clean_value(value))
    }

    /// The value as rendered: [`Source::defined`] or the fallback.
    pub(super) fn value(&self, field: &Field) -> Cow<'static, str> {
        if let Some(value) = self.defined(field) {
            return Cow::Owned(value);
        }
        Cow::Borrowed(match field {
            Field::AlbumArtist | Field::Artist => "Unknown Artist",
            Field::Album => "Unknown Album",
            Field::Title => "Unknown Title",
            _ => "",
        })
    }

    fn multidisc(&self) -> bool {
        let more_than_one = |s: &str| s.trim().parse::<u64>().is_ok_and(|n| n > 1);
        if self.raw("disctotal").is_some_and(|t| more_than_one(&t)) {
            return true;
        }
        match self.raw("disc") {
            Some(disc) => match disc.split_once('/') {
                Some((n, total)) => more_than_one(n) || more_than_one(total),
                None => more_than_one(&disc),
            },
            None => false,
        }
    }
}

/// "3/12" → "3" formatted with at least `width` digits; a value that is not
/// a number is kept as it is.
fn number(value: String, width: usize) -> String {
    let head = value
        .split_once('/')
        .map_or(value.as_str(), |(n, _)| n)
        .trim();
    match head.parse::<u64>() {
        Ok(n) if head.bytes().all(|b| b.is_ascii_digit()) => format!("{n:0width$}"),
        _ => value,
    }
}

/// The first run of exactly four ASCII digits.
fn four_digits(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        if end - start == 4 {
            return Some(&s[start..end]);
        }
        start = end;
    }
    None
}

/// The file name without directories and without its last extension;
/// a leading dot is not an extension (".hidden" stays ".hidden").
fn file_stem(name: &str) -> &str {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    }
}

/// A value may not contain the component separator: `/` becomes `-`, NUL
/// (our internal separator) goes. Other control characters are removed later
/// by component sanitising.
fn clean_value(value: String) -> String {
    if !value.contains(['/', '\0']) {
        return value;
    }
    value
        .chars()
        .filter(|&c| c != '\0')
        .map(|c| if c == '/' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn value(pairs: &[(&str, &str)], name: &str) -> String {
        let fields = map(pairs);
        let src = Source {
            fields: &fields,
            ext: "flac",
        };
        src.value(&Field::from_name(name)).into_owned()
    }

    #[test]
    fn artist_fallbacks() {
        assert_eq!(
            value(&[("albumartist", "AA"), ("artist", "A")], "albumartist"),
            "AA"
        );
        assert_eq!(value(&[("artist", "A")], "albumartist"), "A");
        assert_eq!(
            value(&[("albumartist", "  "), ("artist", "A")], "albumartist"),
            "A"
        );
        assert_eq!(value(&[], "albumartist"), "Unknown Artist");
        assert_eq!(value(&[("albumartist", "AA")], "artist"), "Unknown Artist");
        assert_eq!(value(&[], "album"), "Unknown Album");
        assert_eq!(value(&[("album", " X ")], "album"), "X");
    }

    #[test]
    fn title_fallbacks() {
        assert_eq!(
            value(&[("title", "T"), ("filename", "f.mp3")], "title"),
            "T"
        );
        assert_eq!(
            value(&[("filename", "dir/01 Song.v2.flac")], "title"),
            "01 Song.v2"
        );
        assert_eq!(value(&[("filename", "noext")], "title"), "noext");
        assert_eq!(value(&[("filename", ".hidden")], "title"), ".hidden");
        assert_eq!(value(&[("filename", "")], "title"), "Unknown Title");
        assert_eq!(value(&[], "title"), "Unknown Title");
    }

    #[test]
    fn track_and_disc_formatting() {
        assert_eq!(value(&[("track", "1")], "track"), "01");
        assert_eq!(value(&[("track", "007")], "track"), "07");
        assert_eq!(value(&[("track", "123")], "track"), "123");
        assert_eq!(value(&[("track", "3/12")], "track"), "03");
        assert_eq!(value(&[("track", "A1")], "track"), "A1");
        assert_eq!(
            value(&[("track", "+5")], "track"),
            "+5",
            "only plain digits are numbers"
        );
        assert_eq!(value(&[], "track"), "");
        assert_eq!(value(&[("disc", "01")], "disc"), "1");
        assert_eq!(value(&[("disc", "2/3")], "disc"), "2");
        assert_eq!(value(&[("disc", "B")], "disc"), "B");
        assert_eq!(value(&[], "disc"), "");
    }

    #[test]
    fn multidisc() {
        assert_eq!(
            value(&[("disc", "1"), ("disctotal", "2")], "multidisc"),
            "1"
        );
        assert_eq!(value(&[("disc", "2")], "multidisc"), "1");
        assert_eq!(value(&[("disc", "1/2")], "multidisc"), "1");
        assert_eq!(value(&[("disc", "1"), ("disctotal", "1")], "multidisc"), "");
        assert_eq!(value(&[("disc", "1")], "multidisc"), "");
        assert_eq!(value(&[("disc", "x"), ("disctotal", "y")], "multidisc"), "");
        assert_eq!(value(&[], "multidisc"), "");
    }

    #[test]
    fn year_from_year_or_date() {
        assert_eq!(value(&[("year", "1999")], "year"), "1999");
        assert_eq!(value(&[("date", "2001-05-03")], "year"), "2001");
        assert_eq!(value(&[("date", "May 12, 2003")], "year"), "2003");
        assert_eq!(value(&[("year", "2010"), ("date", "2001")], "year"), "2010");
        assert_eq!(
            value(&[("date", "20010503")], "year"),
            "20010503",
            "no 4-digit run"
        );
        assert_eq!(value(&[], "year"), "");
    }

    #[test]
    fn ext_and_unknown_and_case() {
        assert_eq!(value(&[], "ext"), "flac");
        assert_eq!(value(&[("genre", "Jazz")], "genre"), "Jazz");
        assert_eq!(value(&[("genre", "Jazz")], "Genre"), "Jazz");
        assert_eq!(value(&[], "nosuchfield"), "");
    }

    #[test]
    fn values_cannot_carry_separators() {
        assert_eq!(value(&[("artist", "AC/DC")], "artist"), "AC-DC");
        assert_eq!(value(&[("artist", "a\0b")], "artist"), "ab");
        assert_eq!(
            value(&[("title", "../../etc/passwd")], "title"),
            "..-..-etc-passwd"
        );
        assert_eq!(value(&[("filename", "x/y/a\0/b.flac")], "title"), "b");
    }

    #[test]
    fn defined_ignores_unknown_fallbacks() {
        let fields = map(&[("artist", "A")]);
        let src = Source {
            fields: &fields,
            ext: "",
        };
        assert_eq!(src.defined(&Field::AlbumArtist).as_deref(), Some("A"));
        assert_eq!(src.defined(&Field::Album), None);
        assert_eq!(src.defined(&Field::Title), None);
        assert_eq!(src.defined(&Field::Ext), None);
    }
}
