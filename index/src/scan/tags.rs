//! lofty's tags → canonical `(key, value)` pairs.
//!
//! Keys are beets-style lower-case names, so templates and the catalog speak
//! one vocabulary whatever the container's tag format (ID3v2 frames, Vorbis
//! comments, MP4 atoms, APE items, RIFF INFO, AIFF text chunks).
use super::Tags;
use lofty::file::TaggedFile;
use lofty::prelude::TaggedFileExt;
use lofty::tag::{ItemKey, Tag};
use std::collections::HashSet;

/// The canonical key for a lofty key; `None` for keys not worth keeping
/// (binary, play counts, the file's own length, ...).
pub(super) fn canonical_key(key: ItemKey) -> Option<&'static str> {
    use ItemKey as K;
    Some(match key {
        K::TrackTitle => "title",
        K::TrackSubtitle => "subtitle",
        K::TrackArtist => "artist",
        K::TrackArtists => "artists",
        K::AlbumTitle => "album",
        K::AlbumArtist => "albumartist",
        K::AlbumArtists => "albumartists",
        K::SetSubtitle => "disctitle",
        K::ContentGroup | K::AppleId3v2ContentGroup => "grouping",
        K::ShowName => "show",
        K::OriginalAlbumTitle => "original_album",
        K::OriginalArtist => "original_artist",
        K::OriginalLyricist => "original_lyricist",
        K::AlbumTitleSortOrder => "album_sort",
        K::AlbumArtistSortOrder => "albumartist_sort",
        K::TrackTitleSortOrder => "title_sort",
        K::TrackArtistSortOrder => "artist_sort",
        K::ShowNameSortOrder => "show_sort",
        K::ComposerSortOrder => "composer_sort",
        K::Arranger => "arranger",
        K::Writer => "writer",
        K::Composer => "composer",
        K::Conductor => "conductor",
        K::Director => "director",
        K::Engineer => "engineer",
        K::Lyricist => "lyricist",
        K::MixDj => "djmixer",
        K::MixEngineer => "mixer",
        K::Performer => "performer",
        K::Producer => "producer",
        K::Publisher => "publisher",
        K::Label => "label",
        K::Remixer => "remixer",
        K::InternetRadioStationName => "radio_station",
        K::DiscNumber => "disc",
        K::DiscTotal => "disctotal",
        K::TrackNumber => "track",
        K::TrackTotal => "tracktotal",
        K::RecordingDate => "date",
        K::Year => "year",
        K::ReleaseDate => "releasedate",
        K::OriginalReleaseDate => "original_date",
        K::Isrc => "isrc",
        K::Barcode => "barcode",
        K::AcoustId => "acoustid_id",
        K::CatalogNumber => "catalognum",
        K::Work => "work",
        K::Movement => "movement",
        K::MovementNumber => "movementnumber",
        K::MovementTotal => "movementtotal",
        K::ReleaseCountry => "country",
        K::MusicBrainzRecordingId => "musicbrainz_trackid",
        K::MusicBrainzTrackId => "musicbrainz_releasetrackid",
        K::MusicBrainzReleaseId => "musicbrainz_albumid",
        K::MusicBrainzReleaseGroupId => "musicbrainz_releasegroupid",
        K::MusicBrainzArtistId => "musicbrainz_artistid",
        K::MusicBrainzReleaseArtistId => "musicbrainz_albumartistid",
        K::MusicBrainzWorkId => "musicbrainz_workid",
        K::MusicBrainzReleaseType => "releasetype",
        K::FlagCompilation => "compilation",
        K::FlagPodcast => "podcast",
        K::OriginalFileName => "original_filename",
        K::OriginalMediaType => "media",
        K::EncodedBy => "encodedby",
        K::EncoderSoftware => "encoder",
        K::EncoderSettings => "encoder_settings",
        K::ReplayGainAlbumGain => "replaygain_album_gain",
        K::ReplayGainAlbumPeak => "replaygain_album_peak",
        K::ReplayGainTrackGain => "replaygain_track_gain",
        K::ReplayGainTrackPeak => "replaygain_track_peak",
        K::R128TrackGain => "r128_track_gain",
        K::R128AlbumGain => "r128_album_gain",
        K::Genre => "genre",
        K::InitialKey => "initial_key",
        K::Mood => "mood",
        K::Bpm | K::IntegerBpm => "bpm",
        K::CopyrightMessage => "copyright",
        K::License => "license",
        K::Comment => "comment",
        K::Description => "description",
        K::Language => "language",
        K::Script => "script",
        K::Lyrics | K::UnsyncLyrics => "lyrics",
        K::ParentalAdvisory => "parental_advisory",
        _ => return None,
    })
}

/// The file's tags: the primary tag first, then, from each other tag, the
/// keys no earlier tag had. Values are split on NUL (ID3v2.4 multi-values),
/// trimmed, and empty ones dropped; numbers are normalised.
pub(super) fn collect(file: &TaggedFile) -> Tags {
    let primary = file.primary_tag_type();
    let ordered = file
        .tags()
        .iter()
        .filter(|t| t.tag_type() == primary)
        .chain(file.tags().iter().filter(|t| t.tag_type() != primary));
    let mut have: HashSet<&'static str> = HashSet::new();
    let mut out = Tags::new();
    for tag in ordered {
        let from_this = tag_pairs(tag);
        let keys_before = have.clone();
        for (key, value) in from_this {
            if !keys_before.contains(key) {
                have.insert(key);
                out.push((key.to_string(), value));
            }
        }
    }
    normalise(out)
}

fn tag_pairs(tag: &Tag) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    for item in tag.items() {
        let Some(key) = canonical_key(item.key()) else {
            continue;
        };
        // iTunes keeps its own bookkeeping in described ID3v2 comments.
        if key == "comment" && item.description().starts_with("iTun") {
            continue;
        }
        let value = item.value();
        let Some(text) = value.text().or_else(|| value.locator()) else {
            continue;
        };
        for part in text.split('\0') {
            let part = part.trim();
            if !part.is_empty() {
                pairs.push((key, part.to_string()));
            }
        }
    }
    pairs
}

/// Turns "3/12" into track 3 and tracktotal 12, "03" into "3", flags into
/// "1", derives `year` from `date`, `label` from `publisher` and `comment`
/// from `description` when missing; drops
/// exact duplicates.
fn normalise(raw: Tags) -> Tags {
    let mut out = Tags::with_capacity(raw.len());
    let has = |tags: &Tags, key: &str| {
        raw.iter().any(|(k, _)| k == key) || tags.iter().any(|(k, _)| k == key)
    };
    for (key, value) in &raw {
        match key.as_str() {
            "track" | "disc" => {
                let total_key = if key == "track" {
                    "tracktotal"
                } else {
                    "disctotal"
                };
                match value.split_once('/') {
                    Some((n, total)) => {
                        push_number(&mut out, key, n);
                        if !has(&out, total_key) {
                            push_number(&mut out, total_key, total);
                        }
                    }
                    None => push_number(&mut out, key, value),
                }
            }
            "tracktotal" | "disctotal" | "movementnumber" | "movementtotal" => {
                push_number(&mut out, key, value)
            }
            "compilation" | "podcast" => {
                if is_truthy(value) {
                    out.push((key.clone(), "1".into()));
                }
            }
            _ => out.push((key.clone(), value.clone())),
        }
    }
    if !out.iter().any(|(k, _)| k == "year") {
        let year = out
            .iter()
            .find(|(k, _)| k == "date")
            .and_then(|(_, d)| year_of(d));
        if let Some(y) = year {
            out.push(("year".into(), y));
        }
    }
    fallback(&mut out, "label", "publisher");
    // ffmpeg and others write Vorbis DESCRIPTION for what players show as
    // the comment (beets reads it so too).
    fallback(&mut out, "comment", "description");
    let mut seen = HashSet::new();
    out.retain(|pair| seen.insert(pair.clone()));
    out
}

/// Copies the values of `source` to `key` when there is no `key`.
fn fallback(out: &mut Tags, key: &str, source: &str) {
    if out.iter().any(|(k, _)| k == key) {
        return;
    }
    let values: Vec<String> = out
        .iter()
        .filter(|(k, _)| k == source)
        .map(|(_, v)| v.clone())
        .collect();
    out.extend(values.into_iter().map(|v| (key.to_string(), v)));
}

/// Pushes `value` as a plain decimal if it is one ("03" → "3"), else as
/// written (vinyl sides such as "A1" are real track numbers too).
fn push_number(out: &mut Tags, key: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    let normal = value
        .parse::<u64>()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| value.to_string());
    out.push((key.to_string(), normal));
}

fn is_truthy(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    matches!(v.as_str(), "true" | "yes" | "y" | "on") || v.parse::<u64>().is_ok_and(|n| n != 0)
}

/// The leading four-digit year of a date such as "2019", "2019-05-01" or "2019/05".
fn year_of(date: &str) -> Option<String> {
    let digits: String = date
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (digits.len() == 4).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::pairs;

    #[test]
    fn numbers_pairs_and_flags_normalise() {
        let got = normalise(pairs(&[
            ("track", "03/12"),
            ("disc", "1"),
            ("disctotal", "02"),
            ("compilation", "1"),
            ("podcast", "0"),
            ("date", "2019-05-01"),
            ("publisher", "Sub Pop"),
            ("artist", "A"),
            ("artist", "A"),
        ]));
        assert_eq!(
            got,
            pairs(&[
                ("track", "3"),
                ("tracktotal", "12"),
                ("disc", "1"),
                ("disctotal", "2"),
                ("compilation", "1"),
                ("date", "2019-05-01"),
                ("publisher", "Sub Pop"),
                ("artist", "A"),
                ("year", "2019"),
                ("label", "Sub Pop"),
            ])
        );
    }

    #[test]
    fn explicit_total_wins_and_vinyl_tracks_survive() {
        let got = normalise(pairs(&[
            ("tracktotal", "10"),
            ("track", "A1/12"),
            ("year", "1999"),
        ]));
        assert_eq!(
            got,
            pairs(&[("tracktotal", "10"), ("track", "A1"), ("year", "1999")])
        );
    }

    #[test]
    fn multi_values_split_trim_and_drop_empty() {
        let mut tag = Tag::new(lofty::tag::TagType::VorbisComments);
        tag.push(lofty::tag::TagItem::new(
            ItemKey::TrackArtist,
            lofty::tag::ItemValue::Text(" A \0B\0 ".into()),
        ));
        tag.push(lofty::tag::TagItem::new(
            ItemKey::TrackTitle,
            lofty::tag::ItemValue::Text("   ".into()),
        ));
        assert_eq!(
            tag_pairs(&tag),
            vec![("artist", "A".to_string()), ("artist", "B".to_string())]
        );
    }
}
