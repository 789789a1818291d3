//! beets-like path templates.
//!
//! Syntax: `$field`, `${field}`, `%func{arg,arg}`, `$$` / `%%` / `$,`-style
//! escapes as in beets; `/` separates path components. Functions: `%if{c,t,e}`,
//! `%lower{}`, `%upper{}`, `%title{}`, `%the{}`, `%asciify{}`, `%left{s,n}`,
//! `%right{s,n}`, `%first{s,n,off,sep,join}`, `%ifdef{field,t,e}`.
//! Field fallbacks: `albumartist` → `artist` → "Unknown Artist"; `artist` →
//! "Unknown Artist"; `album` → "Unknown Album"; `title` → the file stem;
//! `track`/`disc` formatted as two digits/plain number (`track` "01");
//! `ext` is the file's extension; any other missing field is empty.
use crate::Result;

/// The default template.
pub const DEFAULT_TEMPLATE: &str = "$albumartist/$album/%if{$multidisc,$disc-}$track - $title";

/// A parsed template. Cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
}

/// What a template is rendered from.
pub trait Fields {
    /// The raw value of a field, if the file has it (tags as in `scan::Tags`,
    /// plus `ext`, `format`, `filename`, `bitrate`, `samplerate`, `length`...).
    fn get(&self, field: &str) -> Option<String>;
}

impl Template {
    /// Parses; errors give the position and what is wrong.
    pub fn parse(source: &str) -> Result<Template> {
        todo!()
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Renders to sanitised path components (each non-empty, no `/`, no NUL,
    /// never `.` or `..`, no leading `.`, at most 255 bytes, cut on a char
    /// boundary). The extension `.ext` is appended to the last component
    /// (within the 255 bytes).
    pub fn render(&self, fields: &dyn Fields, ext: &str) -> Vec<String> {
        todo!()
    }
}

/// Makes one path component safe; see [`Template::render`]. `fallback` is
/// used when nothing is left.
pub fn sanitize_component(raw: &str, fallback: &str) -> String {
    todo!()
}
