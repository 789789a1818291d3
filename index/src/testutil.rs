//! Builders the crate's tests share.
use crate::fields::FileFields;
use crate::scan::{AudioProps, ScannedFile, Tags};
use crate::synth::TagEdit;
use crate::template::Fields;

/// Tags from string pairs.
pub(crate) fn pairs(p: &[(&str, &str)]) -> Tags {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A scanned one-second FLAC with `tags`, its audio at bytes 42..1000.
pub(crate) fn scanned(tags: &[(&str, &str)]) -> ScannedFile {
    ScannedFile {
        format: "flac".into(),
        tags: pairs(tags),
        props: AudioProps {
            duration_ms: 1000,
            ..Default::default()
        },
        audio_offset: 42,
        audio_length: 958,
        has_art: false,
        quick_hash: 7,
    }
}

pub(crate) fn edit(key: &str, values: &[&str]) -> TagEdit {
    TagEdit {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// `artist/album/title.ext`, independent of the template engine.
pub(crate) fn simple_render(f: &FileFields<'_>, ext: &str) -> Vec<String> {
    let get = |k: &str, d: &str| f.get(k).unwrap_or_else(|| d.to_string());
    vec![
        get("artist", "A"),
        get("album", "B"),
        format!("{}.{ext}", get("title", "T")),
    ]
}
