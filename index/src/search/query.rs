//! The search query language, beets-like, parsed by hand so a malformed
//! query names the byte where it went wrong.
//!
//! ```text
//! query  := term (' '+ term)*
//! term   := ['-' | '^'] (field ':' value | value)
//! value  := word | '"' anything but '"' '"'
//! ```
//!
//! - `artist:beatles` — the field has a word starting with `beatles`;
//!   `artist:"the beatles"` — the field has that phrase.
//! - `year:1965`, `year:1960..1969`, `year:1990..`, `year:..1979` — the
//!   year, or a range with both ends included and either end open.
//! - `format:flac` — the container, exactly.
//! - a bare word matches any text field (exactly, as a prefix, or — from 4
//!   characters on — with one typo); `"a phrase"` matches it verbatim.
//! - `-term` or `^term` excludes what `term` matches.
//!
//! Terms are AND-ed. There is no OR: a collection wanting two artists is
//! two collections, which keeps the grammar and its errors simple.
use std::fmt;

/// A field a term may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Artist,
    AlbumArtist,
    Album,
    Title,
    Genre,
    Composer,
    Year,
    Format,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Artist,
        Field::AlbumArtist,
        Field::Album,
        Field::Title,
        Field::Genre,
        Field::Composer,
        Field::Year,
        Field::Format,
    ];

    /// The name used in queries, which is also the catalog's tag key.
    pub fn name(self) -> &'static str {
        match self {
            Field::Artist => "artist",
            Field::AlbumArtist => "albumartist",
            Field::Album => "album",
            Field::Title => "title",
            Field::Genre => "genre",
            Field::Composer => "composer",
            Field::Year => "year",
            Field::Format => "format",
        }
    }

    fn by_name(name: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

/// What one term asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Unquoted text: words, the last one possibly a prefix.
    Words(String),
    /// Quoted text: these words in this order.
    Phrase(String),
    /// A year range, both ends included, `None` = open.
    Years(Option<i64>, Option<i64>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// `None`: any text field.
    pub field: Option<Field>,
    pub what: Match,
    pub negated: bool,
}

/// A malformed query: what is wrong and the byte offset where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.position)
    }
}

fn fail<T>(position: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        position,
        message: message.into(),
    })
}

/// Parses a query into its AND-ed terms; at least one.
pub fn parse(query: &str) -> Result<Vec<Term>, ParseError> {
    let bytes = query.as_bytes();
    let mut terms = Vec::new();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos == bytes.len() {
            break;
        }
        let (term, next) = parse_term(query, pos)?;
        terms.push(term);
        pos = next;
    }
    if terms.is_empty() {
        return fail(0, "empty query");
    }
    Ok(terms)
}

/// One term starting at `start` (not whitespace); returns it and the byte
/// after it.
fn parse_term(query: &str, start: usize) -> Result<(Term, usize), ParseError> {
    let bytes = query.as_bytes();
    let mut pos = start;
    let negated = matches!(bytes[pos], b'-' | b'^');
    if negated {
        pos += 1;
        if pos == bytes.len() || bytes[pos].is_ascii_whitespace() {
            return fail(start, "nothing to exclude after '-'");
        }
    }
    // A field prefix is letters up to a ':' (a quote or space first means
    // there is none: `"a:b"` and `a` are plain text).
    let mut field = None;
    let name_end = bytes[pos..]
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .map_or(bytes.len(), |n| pos + n);
    if name_end > pos && bytes.get(name_end) == Some(&b':') {
        let name = &query[pos..name_end];
        match Field::by_name(name) {
            Some(f) => field = Some(f),
            None => {
                let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                return fail(
                    pos,
                    format!("unknown field {name:?} (known: {})", known.join(", ")),
                );
            }
        }
        pos = name_end + 1;
        if pos == bytes.len() || bytes[pos].is_ascii_whitespace() {
            return fail(pos, format!("no value after '{name}:'"));
        }
    }
    let value_start = pos;
    let (text, quoted, next) = if bytes[pos] == b'"' {
        let close = match bytes[pos + 1..].iter().position(|&b| b == b'"') {
            Some(n) => pos + 1 + n,
            None => return fail(pos, "unterminated quote"),
        };
        if close + 1 < bytes.len() && !bytes[close + 1].is_ascii_whitespace() {
            return fail(close + 1, "expected a space after the closing quote");
        }
        (&query[pos + 1..close], true, close + 1)
    } else {
        let end = bytes[pos..]
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .map_or(bytes.len(), |n| pos + n);
        if let Some(q) = bytes[pos..end].iter().position(|&b| b == b'"') {
            return fail(pos + q, "a quote must start a value");
        }
        (&query[pos..end], false, end)
    };
    if text.trim().is_empty() {
        return fail(value_start, "empty value");
    }
    let what = match field {
        Some(Field::Year) => parse_years(text, value_start + usize::from(quoted))?,
        _ if quoted => Match::Phrase(text.to_string()),
        _ => Match::Words(text.to_string()),
    };
    Ok((
        Term {
            field,
            what,
            negated,
        },
        next,
    ))
}

/// `1965`, `1960..1969`, `1990..`, `..1979`.
fn parse_years(text: &str, at: usize) -> Result<Match, ParseError> {
    let year = |s: &str, at: usize| -> Result<Option<i64>, ParseError> {
        if s.is_empty() {
            return Ok(None);
        }
        match s.parse::<i64>() {
            Ok(y) if (0..=9999).contains(&y) => Ok(Some(y)),
            _ => fail(at, format!("{s:?} is not a year (0..9999)")),
        }
    };
    match text.find("..") {
        Some(dots) => {
            let lo = year(&text[..dots], at)?;
            let hi = year(&text[dots + 2..], at + dots + 2)?;
            if lo.is_none() && hi.is_none() {
                return fail(at, "a year range needs at least one end");
            }
            if let (Some(l), Some(h)) = (lo, hi) {
                if l > h {
                    return fail(at, format!("year range {l}..{h} is empty"));
                }
            }
            Ok(Match::Years(lo, hi))
        }
        None => {
            let y = year(text, at)?;
            Ok(Match::Years(y, y))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(field: Option<Field>, text: &str) -> Term {
        Term {
            field,
            what: Match::Words(text.into()),
            negated: false,
        }
    }

    #[test]
    fn fields_words_and_ranges() {
        let q = parse("artist:beatles  year:1960..1969 love").unwrap();
        assert_eq!(
            q,
            vec![
                words(Some(Field::Artist), "beatles"),
                Term {
                    field: Some(Field::Year),
                    what: Match::Years(Some(1960), Some(1969)),
                    negated: false
                },
                words(None, "love"),
            ]
        );
        assert_eq!(
            parse("year:1990..").unwrap()[0].what,
            Match::Years(Some(1990), None)
        );
        assert_eq!(
            parse("YEAR:..1979").unwrap()[0].what,
            Match::Years(None, Some(1979))
        );
        assert_eq!(
            parse("year:1965").unwrap()[0].what,
            Match::Years(Some(1965), Some(1965))
        );
    }

    #[test]
    fn phrases_and_negation() {
        let q = parse(r#""let it be" -artist:"the beatles" ^live"#).unwrap();
        assert_eq!(q[0].what, Match::Phrase("let it be".into()));
        assert_eq!(q[0].field, None);
        assert!(q[1].negated);
        assert_eq!(q[1].field, Some(Field::Artist));
        assert_eq!(q[1].what, Match::Phrase("the beatles".into()));
        assert!(q[2].negated);
        assert_eq!(q[2].what, Match::Words("live".into()));
    }

    #[test]
    fn non_ascii_and_colons_in_words() {
        let q = parse("beyoncé 12:30").unwrap();
        assert_eq!(q[0], words(None, "beyoncé"));
        // Digits before the colon: not a field name, just text.
        assert_eq!(q[1], words(None, "12:30"));
    }

    #[test]
    fn errors_name_the_position() {
        let err = |q: &str| parse(q).unwrap_err();
        assert_eq!(err("").message, "empty query");
        assert_eq!(err("   ").position, 0);
        let e = err("love artst:x");
        assert_eq!(e.position, 5);
        assert!(e.message.contains("unknown field \"artst\""), "{e}");
        let e = err(r#"a "open"#);
        assert_eq!((e.position, e.message.as_str()), (2, "unterminated quote"));
        let e = err("year:19x0");
        assert_eq!(e.position, 5);
        assert!(e.to_string().ends_with("at byte 5"), "{e}");
        assert_eq!(err("year:1970..1960").position, 5);
        assert_eq!(err("year:..").position, 5);
        assert_eq!(err("year:1960..abc").position, 11);
        assert_eq!(err("x artist:").position, 9);
        assert_eq!(err("x - y").position, 2);
        assert_eq!(err(r#"ab"c""#).position, 2);
        assert_eq!(err(r#""a"b"#).position, 3);
        assert_eq!(err(r#"title:"""#).position, 6);
    }
}
