//! beets-like path templates: parsed once, rendered for every file into
//! sanitised path components.
//!
//! Syntax (`parse.rs` has the details): `$field`, `${field}`,
//! `%func{arg,arg,...}` with templates nested in arguments, escapes `$$`
//! `$%` `%%` `$,` `$}`; a `/` written in the template separates path
//! components, while a `/` inside a field value is replaced by `-` and never
//! splits one. Mistakes (unknown function, wrong argument count, unclosed
//! braces) are [`Error::Template`](crate::Error::Template) with a byte
//! position.
//!
//! Functions (`funcs.rs` has the semantics): `%lower{s}` `%upper{s}`
//! `%title{s}` `%the{s}` `%asciify{s}` `%left{s,n}` `%right{s,n}`
//! `%if{cond,then[,else]}` `%ifdef{field,then[,else]}`
//! `%first{s[,count[,skip[,sep[,join]]]]}`.
//!
//! Fields (`fields.rs` has the table): the [`Fields`] impl gives raw values;
//! the template falls back `albumartist` → `artist` → "Unknown Artist",
//! `artist` → "Unknown Artist", `album` → "Unknown Album", `title` → the stem
//! of `filename` → "Unknown Title"; `track` is zero-padded ("01"), `disc` a
//! plain number, `multidisc` is "1" for multi-disc albums, `year` comes from
//! `year` or `date`, `ext` is the extension given to
//! [`Template::render`]. A missing or unknown field is empty, not an error.
//! A missing track number renders empty; the default template leaves out
//! the "NN - " prefix then (`Title.flac`, not `- Title.flac`).
//!
//! Every component is sanitised ([`sanitize_component`]): no `/`, no NUL or
//! other control characters, never `.` or `..`, no leading `.`, trimmed,
//! "Unknown" when empty, at most 255 bytes, with the last component's `.ext`
//! counted in. Collision suffixes are the tree's job ([`with_suffix`] helps
//! keep them within 255 bytes).
mod fields;
mod funcs;
mod parse;
mod sanitize;

pub use sanitize::{sanitize_component, truncate_utf8, with_suffix, MAX_NAME_BYTES};

use crate::{Error, Result};
use fields::Source;
use parse::{Expr, Node, SEP};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The default template: `Artist/Album/01 - Title.ext`, with a `2-` disc
/// prefix on multi-disc albums and no number prefix when the track number
/// is missing.
pub const DEFAULT_TEMPLATE: &str =
    "$albumartist/$album/%if{$track,%if{$multidisc,$disc-}$track - }$title";

/// What an empty rendered component becomes.
const UNKNOWN: &str = "Unknown";

/// A parsed template. Cheap to clone and share (the parsed form is behind
/// an `Arc`); equal when the sources are equal.
#[derive(Debug, Clone)]
pub struct Template {
    source: Arc<str>,
    ast: Arc<Expr>,
}

/// What a template is rendered from.
pub trait Fields {
    /// The raw value of a field, if the file has it (tags as in `scan::Tags`,
    /// plus `ext`, `format`, `filename`, `bitrate`, `samplerate`, `length`...).
    /// Field names are lower-case. An empty value counts as missing.
    /// `filename` (the origin file's name) is what `$title` falls back to.
    fn get(&self, field: &str) -> Option<String>;
}

impl Fields for HashMap<String, String> {
    fn get(&self, field: &str) -> Option<String> {
        HashMap::get(self, field).cloned()
    }
}

impl Fields for BTreeMap<String, String> {
    fn get(&self, field: &str) -> Option<String> {
        BTreeMap::get(self, field).cloned()
    }
}

/// For [`Tags`](crate::Tags)-style pairs: a key that repeats (multi-valued
/// tags) gives its values joined with "; ", which `%first` splits by default.
impl Fields for Vec<(String, String)> {
    fn get(&self, field: &str) -> Option<String> {
        let mut values = self.iter().filter(|(k, _)| k == field).map(|(_, v)| v);
        let first = values.next()?;
        let mut joined = first.clone();
        for more in values {
            joined.push_str("; ");
            joined.push_str(more);
        }
        Some(joined)
    }
}

impl Template {
    /// Parses; errors give the position and what is wrong. A template that
    /// is empty or only whitespace is an error too (every file would get
    /// the same name).
    pub fn parse(source: &str) -> Result<Template> {
        let error = |position: usize, message: &str| Error::Template {
            template: source.to_owned(),
            position,
            message: message.to_owned(),
        };
        if source.trim().is_empty() {
            return Err(error(0, "empty template"));
        }
        // NUL is the rendered separator; a literal one would split silently.
        if let Some(at) = source.find('\0') {
            return Err(error(at, "NUL character in template"));
        }
        if source.starts_with('/') {
            return Err(error(
                0,
                "leading '/': paths are relative to the mount root",
            ));
        }
        if source.ends_with('/') {
            return Err(error(
                source.len() - 1,
                "trailing '/': the last component is the file name",
            ));
        }
        let ast = parse::parse(source)?;
        Ok(Template {
            source: Arc::from(source),
            ast: Arc::new(ast),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders to sanitised path components (each non-empty, no `/`, no NUL,
    /// never `.` or `..`, no leading `.`, at most 255 bytes, cut on a char
    /// boundary). The extension `.ext` is appended to the last component
    /// (within the 255 bytes). `ext` may be given with or without its dot.
    pub fn render(&self, fields: &dyn Fields, ext: &str) -> Vec<String> {
        let ext = sanitize::clean_ext(ext);
        let renderer = Renderer {
            source: Source { fields, ext: &ext },
        };
        let mut text = String::with_capacity(96);
        renderer.expr(&self.ast, &mut text);

        let (dirs, last) = match text.rsplit_once(SEP) {
            Some((dirs, last)) => (Some(dirs), last),
            None => (None, text.as_str()),
        };
        let mut components = Vec::with_capacity(4);
        if let Some(dirs) = dirs {
            components.extend(dirs.split(SEP).map(|c| sanitize_component(c, UNKNOWN)));
        }
        components.push(sanitize::file_name(last, &ext, UNKNOWN));
        components
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Template) -> bool {
        self.source == other.source
    }
}
impl Eq for Template {}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = Error;
    fn from_str(source: &str) -> Result<Template> {
        Template::parse(source)
    }
}

/// Evaluates parsed nodes against one file.
struct Renderer<'a> {
    source: Source<'a>,
}

impl Renderer<'_> {
    /// Appends the rendering of `expr` to `out`.
    fn expr(&self, expr: &[Node], out: &mut String) {
        for node in expr {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Field(field) => out.push_str(&self.source.value(field)),
                Node::Call { func, args } => funcs::call(*func, args, self, out),
            }
        }
    }

    /// The rendering of `expr` on its own (a function argument).
    fn eval(&self, expr: &[Node]) -> String {
        let mut out = String::new();
        self.expr(expr, &mut out);
        out
    }
}

#[cfg(test)]
mod tests;
