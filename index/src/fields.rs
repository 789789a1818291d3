//! What a path template sees of one catalogued file: its tags plus a few
//! computed fields (`ext`, `filename`, `format`, `bitrate`, `samplerate`,
//! `length`, `channels`, `bitdepth`), formatted the way beets formats them.
use crate::catalog::FileId;
use crate::template::Fields;

/// The columns of a `files` row the tree needs, loaded in bulk by the sync.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileInfo {
    pub id: FileId,
    pub origin_id: i64,
    pub rel_path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub format: String,
    pub duration_ms: u64,
    pub bitrate: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub bit_depth: Option<u8>,
}

impl FileInfo {
    /// The last component of `rel_path`, lossily decoded.
    pub fn filename(&self) -> String {
        let name = match self.rel_path.iter().rposition(|&b| b == b'/') {
            Some(slash) => &self.rel_path[slash + 1..],
            None => &self.rel_path[..],
        };
        String::from_utf8_lossy(name).into_owned()
    }

    /// The lower-case extension of the original file ("" if it has none; a
    /// leading dot, as in `.hidden`, is not an extension).
    pub fn ext(&self) -> String {
        let name = self.filename();
        match name.rfind('.') {
            Some(dot) if dot > 0 => name[dot + 1..].to_lowercase(),
            _ => String::new(),
        }
    }
}

/// A file's fields for [`crate::Template::render`].
pub(crate) struct FileFields<'a> {
    pub info: &'a FileInfo,
    pub tags: &'a [(String, String)],
}

impl Fields for FileFields<'_> {
    fn get(&self, field: &str) -> Option<String> {
        let info = self.info;
        // Properties of the file itself win over a tag of the same name: a
        // tag cannot make `$ext` lie about the container.
        match field {
            "ext" => return Some(info.ext()),
            "filename" => return Some(info.filename()),
            "format" => return Some(info.format.clone()),
            "bitrate" => return info.bitrate.map(|kbps| format!("{kbps}kbps")),
            "samplerate" => return info.sample_rate.map(|hz| format!("{}kHz", hz / 1000)),
            "length" => {
                let secs = info.duration_ms / 1000;
                return Some(format!("{}:{:02}", secs / 60, secs % 60));
            }
            "channels" => return info.channels.map(|c| c.to_string()),
            "bitdepth" => return info.bit_depth.map(|b| b.to_string()),
            _ => {}
        }
        // Multi-valued tags: the first value names the path, as in beets.
        self.tags
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(field))
            .map(|(_, value)| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_fields() {
        let info = FileInfo {
            rel_path: b"Artist/Album/01 Song.FLAC".to_vec(),
            format: "flac".into(),
            duration_ms: 225_900,
            bitrate: Some(912),
            sample_rate: Some(44_100),
            ..Default::default()
        };
        let tags = vec![
            ("artist".to_string(), "A".to_string()),
            ("artist".to_string(), "B".to_string()),
            ("ext".to_string(), "exe".to_string()),
        ];
        let f = FileFields {
            info: &info,
            tags: &tags,
        };
        assert_eq!(f.get("ext").as_deref(), Some("flac"));
        assert_eq!(f.get("filename").as_deref(), Some("01 Song.FLAC"));
        assert_eq!(f.get("length").as_deref(), Some("3:45"));
        assert_eq!(f.get("bitrate").as_deref(), Some("912kbps"));
        assert_eq!(f.get("samplerate").as_deref(), Some("44kHz"));
        assert_eq!(f.get("artist").as_deref(), Some("A"));
        assert_eq!(f.get("album"), None);
        assert_eq!(f.get("channels"), None);
    }

    #[test]
    fn extension_edge_cases() {
        let ext = |p: &[u8]| {
            FileInfo {
                rel_path: p.to_vec(),
                ..Default::default()
            }
            .ext()
        };
        assert_eq!(ext(b"a/.hidden"), "");
        assert_eq!(ext(b"noext"), "");
        assert_eq!(ext(b"dir.d/noext"), "");
        assert_eq!(ext(b"x.tar.Opus"), "opus");
        assert_eq!(ext(b"bad\xffname.mp3"), "mp3");
    }
}
