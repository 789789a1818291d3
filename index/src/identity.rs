//! When two catalogued files are "the same track" (shown once in the tree)
//! and when they are the same *bytes* (a read may switch between them).
//!
//! - The **dedup key** of a file with a title is xxh3-64 over its
//!   normalised album artist (or artist), album, title, track and disc
//!   numbers and its duration in whole seconds: the same recording on a
//!   NAS and in a bucket shows once, even if one copy was re-encoded. A
//!   file without a title is keyed by its bytes (size and quick hash), so
//!   untagged files never merge by accident.
//! - **Byte-identical replicas** additionally share size and quick hash
//!   (see [`crate::scan::quick_hash`]); only those may serve each other's
//!   reads, even in the middle of one.
//!
//! Dedup merges files of *different* origins only: two copies inside one
//! origin are the user's own business and both stay visible (with a
//! collision suffix if they render to one path).
use xxhash_rust::xxh3::xxh3_64;

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> &'a str {
    tags.iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

/// Leading number of "3/12" or "03".
fn number(s: &str) -> u32 {
    s.split('/')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The dedup key of a file (see the module docs).
pub(crate) fn dup_key(tags: &[(String, String)], duration_ms: u64, size: u64, quick: u64) -> i64 {
    let title = tag(tags, "title");
    let mut src = Vec::with_capacity(128);
    if title.is_empty() {
        src.extend_from_slice(b"bytes\0");
        src.extend_from_slice(&size.to_le_bytes());
        src.extend_from_slice(&quick.to_le_bytes());
    } else {
        let artist = match tag(tags, "albumartist") {
            "" => tag(tags, "artist"),
            a => a,
        };
        for field in [artist, tag(tags, "album"), title] {
            src.extend_from_slice(field.to_lowercase().as_bytes());
            src.push(0);
        }
        src.extend_from_slice(&number(tag(tags, "track")).to_le_bytes());
        src.extend_from_slice(&number(tag(tags, "disc")).to_le_bytes());
        // Rounded to the nearest second: encoders disagree by a few ms.
        src.extend_from_slice(
            &duration_ms
                .saturating_add(500)
                .div_euclid(1000)
                .to_le_bytes(),
        );
    }
    xxh3_64(&src) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::pairs;

    #[test]
    fn same_track_same_key_across_case_and_encodings() {
        let a = pairs(&[
            ("artist", "Nina"),
            ("album", "Live"),
            ("title", "Song"),
            ("track", "3"),
        ]);
        let b = pairs(&[
            ("albumartist", "nina"),
            ("album", "LIVE"),
            ("title", "song "),
            ("track", "3/12"),
        ]);
        assert_eq!(dup_key(&a, 200_100, 10, 1), dup_key(&b, 199_700, 99, 2));
    }

    #[test]
    fn different_tracks_or_durations_differ() {
        let a = pairs(&[("artist", "Nina"), ("title", "Song"), ("track", "3")]);
        let b = pairs(&[("artist", "Nina"), ("title", "Song"), ("track", "4")]);
        assert_ne!(dup_key(&a, 1000, 1, 1), dup_key(&b, 1000, 1, 1));
        assert_ne!(dup_key(&a, 1000, 1, 1), dup_key(&a, 5000, 1, 1));
    }

    #[test]
    fn untitled_files_key_by_bytes() {
        let none = pairs(&[("artist", "Nina")]);
        assert_eq!(dup_key(&none, 1, 10, 7), dup_key(&none, 1, 10, 7));
        assert_ne!(dup_key(&none, 1, 10, 7), dup_key(&none, 1, 10, 8));
    }
}
