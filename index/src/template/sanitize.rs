//! Making rendered text safe as one path component on Linux.
//!
//! Rules, in order: control characters (NUL included) are removed, `/`
//! becomes `-`, surrounding whitespace is trimmed, nothing left → the
//! fallback, a leading `.` becomes `_` (so never `.`, `..` or a hidden file
//! that listings would skip), and the result is cut to 255 bytes on a
//! character boundary (then trailing whitespace trimmed again).
use std::borrow::Cow;

/// The longest name a Linux directory entry can have, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Extensions longer than this are cut; real ones are a few bytes, and a
/// cap keeps the budget for the stem from vanishing.
const MAX_EXT_BYTES: usize = 16;

/// Used when the fallback itself sanitises to nothing.
const LAST_RESORT: &str = "_";

/// Makes one path component safe (see the module docs); `fallback` is used
/// when nothing is left of `raw`.
pub fn sanitize_component(raw: &str, fallback: &str) -> String {
    sanitize_within(raw, fallback, MAX_NAME_BYTES)
}

/// [`sanitize_component`] with a smaller byte budget (at least 4, one
/// character of any width).
pub(super) fn sanitize_within(raw: &str, fallback: &str, max_bytes: usize) -> String {
    debug_assert!(max_bytes >= 4);
    let mut name = clean(raw, max_bytes);
    if name.is_empty() {
        name = clean(fallback, max_bytes);
    }
    if name.is_empty() {
        name = LAST_RESORT.to_owned();
    }
    name
}

fn clean(raw: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max_bytes + 4));
    for c in raw.chars() {
        if c == '/' {
            out.push('-');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    // Trim in place: drop the tail, then the head (removing controls may
    // have brought whitespace to either end).
    let end = out.trim_end().len();
    out.truncate(end);
    let lead = out.len() - out.trim_start().len();
    out.drain(..lead);
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    let cut = truncate_utf8(&out, max_bytes).trim_end().len();
    out.truncate(cut);
    out
}

/// The longest prefix of `s` with at most `max_bytes` bytes that ends on a
/// character boundary.
pub fn truncate_utf8(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The extension as it is put on file names: no leading dots, no `/` or
/// control characters, no surrounding whitespace, at most 16 bytes.
pub(super) fn clean_ext(ext: &str) -> Cow<'_, str> {
    let trimmed = ext.trim().trim_start_matches('.');
    let cleaned: Cow<'_, str> = if trimmed.contains(|c: char| c == '/' || c.is_control()) {
        Cow::Owned(
            trimmed
                .chars()
                .filter(|&c| c != '/' && !c.is_control())
                .collect(),
        )
    } else {
        Cow::Borrowed(trimmed)
    };
    match cleaned {
        Cow::Borrowed(s) => Cow::Borrowed(truncate_utf8(s, MAX_EXT_BYTES).trim()),
        Cow::Owned(s) => Cow::Owned(truncate_utf8(&s, MAX_EXT_BYTES).trim().to_owned()),
    }
}

/// The last component: `stem` sanitised within what `.ext` leaves of the
/// 255 bytes, then `.ext` (no dot when `ext` is empty).
pub(super) fn file_name(stem: &str, ext: &str, fallback: &str) -> String {
    let ext = clean_ext(ext);
    let ext_bytes = if ext.is_empty() { 0 } else { ext.len() + 1 };
    let mut name = sanitize_within(stem, fallback, MAX_NAME_BYTES - ext_bytes);
    if !ext.is_empty() {
        name.push('.');
        name.push_str(&ext);
    }
    name
}

/// Inserts `suffix` (a collision marker such as `" (2)"`) into a name that
/// [`Template::render`](super::Template::render) made, before its `.ext`
/// (pass the same `ext`; "" for directories), cutting the stem so the result
/// still fits in 255 bytes. The suffix should itself be safe text.
pub fn with_suffix(name: &str, ext: &str, suffix: &str) -> String {
    let ext = clean_ext(ext);
    let stem = if ext.is_empty() {
        name
    } else {
        name.strip_suffix(ext.as_ref())
            .and_then(|s| s.strip_suffix('.'))
            .unwrap_or(name)
    };
    let tail = if ext.is_empty() { 0 } else { ext.len() + 1 };
    let budget = MAX_NAME_BYTES.saturating_sub(tail + suffix.len());
    let stem = truncate_utf8(stem, budget).trim_end();
    let mut out = String::with_capacity(stem.len() + suffix.len() + tail);
    out.push_str(stem);
    out.push_str(suffix);
    if !ext.is_empty() {
        out.push('.');
        out.push_str(&ext);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(raw: &str) -> String {
        sanitize_component(raw, "Unknown")
    }

    /// What every sanitised component must satisfy.
    fn assert_safe(name: &str) {
        assert!(!name.is_empty(), "empty name");
        assert!(name.len() <= MAX_NAME_BYTES, "{} bytes", name.len());
        assert!(!name.contains('/'), "{name:?}");
        assert!(!name.contains('\0'), "{name:?}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(!name.starts_with('.'), "{name:?}");
        assert_ne!(name, ".");
        assert_ne!(name, "..");
        assert_eq!(name, name.trim(), "untrimmed {name:?}");
    }

    #[test]
    fn hostile_values() {
        assert_eq!(s("../.."), "_.-..");
        assert_eq!(s("/etc/passwd"), "-etc-passwd");
        assert_eq!(s("a\0b"), "ab");
        assert_eq!(s("a\tb\nc\u{7f}d\u{9b}e"), "abcde");
        assert_eq!(s(".."), "_.");
        assert_eq!(s("."), "_");
        assert_eq!(s("..."), "_..");
        assert_eq!(s(".hidden"), "_hidden");
        assert_eq!(s("  .x  "), "_x");
        assert_eq!(
            s(" \0 .y"),
            "_y",
            "whitespace exposed by removal is trimmed"
        );
        assert_eq!(s(""), "Unknown");
        assert_eq!(s("   "), "Unknown");
        assert_eq!(s("\0\0"), "Unknown");
        assert_eq!(s("/"), "-");
        for raw in [
            "../..",
            "/etc/passwd",
            "a\0b",
            ".",
            "..",
            "",
            " ",
            "\n",
            ".\0.",
        ] {
            assert_safe(&s(raw));
        }
    }

    #[test]
    fn fallback_is_sanitised_too() {
        assert_eq!(sanitize_component("", ".."), "_.");
        assert_eq!(sanitize_component("", ""), "_");
        assert_eq!(sanitize_component("\0", " \0 "), "_");
    }

    #[test]
    fn cut_to_255_bytes_on_char_boundary() {
        let ascii = "a".repeat(300);
        assert_eq!(s(&ascii), "a".repeat(255));
        // 'é' is 2 bytes: 127 of them are 254 bytes, the 128th does not fit.
        let two = "é".repeat(150);
        assert_eq!(s(&two), "é".repeat(127));
        // '日' is 3 bytes: 85 of them are exactly 255.
        let three = "日".repeat(100);
        assert_eq!(s(&three), "日".repeat(85));
        // '🎵' is 4 bytes: 63 of them are 252.
        let four = "🎵".repeat(100);
        assert_eq!(s(&four), "🎵".repeat(63));
        for raw in [&ascii, &two, &three, &four] {
            assert_safe(&s(raw));
        }
    }

    #[test]
    fn no_trailing_space_after_cut() {
        let raw = format!("{} tail", "a".repeat(254));
        assert_eq!(s(&raw), "a".repeat(254));
    }

    #[test]
    fn truncate_utf8_boundaries() {
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("aé", 3), "aé");
        assert_eq!(truncate_utf8("", 0), "");
        assert_eq!(truncate_utf8("日", 2), "");
    }

    #[test]
    fn extensions() {
        assert_eq!(clean_ext("flac"), "flac");
        assert_eq!(clean_ext(".mp3"), "mp3");
        assert_eq!(clean_ext("a/b\0c"), "abc");
        assert_eq!(clean_ext("x".repeat(40).as_str()), "x".repeat(16));
        assert_eq!(clean_ext(""), "");
        assert_eq!(clean_ext(".."), "");
    }

    #[test]
    fn file_names_keep_ext_within_255() {
        assert_eq!(file_name("01 - Song", "flac", "Unknown"), "01 - Song.flac");
        assert_eq!(file_name("", "mp3", "Unknown"), "Unknown.mp3");
        assert_eq!(file_name(".x", "", "Unknown"), "_x");
        let long = file_name(&"日".repeat(100), "flac", "Unknown");
        assert_eq!(long.len(), 3 * 83 + 5);
        assert!(long.ends_with("日.flac"));
        assert_safe(&long);
        let long = file_name(&"é".repeat(200), "opus", "Unknown");
        assert_eq!(long, format!("{}.opus", "é".repeat(125)));
        assert_safe(&long);
    }

    #[test]
    fn suffixes_fit_before_ext() {
        assert_eq!(with_suffix("Song.flac", "flac", " (2)"), "Song (2).flac");
        assert_eq!(with_suffix("Album", "", " (2)"), "Album (2)");
        assert_eq!(with_suffix("Song.flac", ".flac", " (2)"), "Song (2).flac");
        let long = file_name(&"日".repeat(100), "flac", "Unknown");
        let suffixed = with_suffix(&long, "flac", " (12)");
        assert!(suffixed.len() <= MAX_NAME_BYTES, "{}", suffixed.len());
        assert!(suffixed.ends_with("日 (12).flac"), "{suffixed}");
        assert_safe(&suffixed);
    }
}
