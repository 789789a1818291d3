//! Template syntax → a small tree, parsed once and rendered many times.
//!
//! The grammar follows beets' `functemplate`:
//! - `$name` (name = ASCII letters, digits, `_`) and `${name}` are fields;
//! - `%name{arg,arg,...}` is a call; arguments are templates themselves, so
//!   they nest; `%name{}` has one empty argument;
//! - `$$`, `$%`, `$,`, `$}` are the escaped characters; `%%` is also `%`;
//! - inside arguments an unescaped `,` separates and `}` closes; at the top
//!   level both are plain text, and `{` is plain text everywhere (so `${` is
//!   a braced field, never an escape);
//! - a `$` or `%` that starts nothing (`100%`, `$ 5`, `%name` without `{`)
//!   is plain text, as in beets.
//!
//! Unlike beets, mistakes that beets would silently print verbatim are
//! errors with a byte position: an unknown function, a wrong number of
//! arguments, an unclosed `${` or `%f{`, an empty or malformed `${}`.
//!
//! A `/` written in the template (anywhere, including inside arguments) is
//! stored as [`SEP`], which field values can never contain, so only the
//! template's own slashes split path components.
use super::fields::Field;
use super::funcs::Func;
use crate::{Error, Result};

/// Stands for a template-level `/` in parsed text and rendered output.
/// Field values have every NUL removed before they are inserted, so this
/// character in the output always comes from the template.
pub(super) const SEP: char = '\0';

/// A sequence of parts rendered one after another.
pub(super) type Expr = Vec<Node>;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Literal text, escapes resolved, `/` already turned into [`SEP`].
    Text(String),
    Field(Field),
    Call {
        func: Func,
        args: Vec<Expr>,
    },
}

/// Parses a whole template.
pub(super) fn parse(source: &str) -> Result<Expr> {
    let mut parser = Parser {
        src: source,
        pos: 0,
    };
    let expr = parser.expr(false)?;
    debug_assert_eq!(parser.pos, source.len(), "top level consumes everything");
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Parser<'a> {
    fn error(&self, position: usize, message: impl Into<String>) -> Error {
        Error::Template {
            template: self.src.to_owned(),
            position,
            message: message.into(),
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    /// End (exclusive) of the identifier starting at `from`.
    fn ident_end(&self, from: usize) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = from;
        while end < bytes.len() && is_ident_byte(bytes[end]) {
            end += 1;
        }
        end
    }

    /// Parses until the end of input or, inside an argument, an unescaped
    /// `,` or `}` (left unconsumed for the caller).
    fn expr(&mut self, in_argument: bool) -> Result<Expr> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        let flush = |text: &mut String, nodes: &mut Expr| {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text)));
            }
        };
        while let Some(b) = self.byte(self.pos) {
            match b {
                b'$' => match self.byte(self.pos + 1) {
                    Some(c @ (b'$' | b'%' | b',' | b'}')) => {
                        text.push(c as char);
                        self.pos += 2;
                    }
                    Some(b'{') => {
                        flush(&mut text, &mut nodes);
                        nodes.push(self.braced_field()?);
                    }
                    Some(c) if is_ident_byte(c) => {
                        flush(&mut text, &mut nodes);
                        let end = self.ident_end(self.pos + 1);
                        nodes.push(Node::Field(Field::from_name(&self.src[self.pos + 1..end])));
                        self.pos = end;
                    }
                    _ => {
                        text.push('$');
                        self.pos += 1;
                    }
                },
                b'%' => {
                    if self.byte(self.pos + 1) == Some(b'%') {
                        text.push('%');
                        self.pos += 2;
                        continue;
                    }
                    let name_end = self.ident_end(self.pos + 1);
                    if name_end > self.pos + 1 && self.byte(name_end) == Some(b'{') {
                        flush(&mut text, &mut nodes);
                        nodes.push(self.call(name_end)?);
                    } else {
                        // Not a call: `%` and the word after it are text.
                        text.push_str(&self.src[self.pos..name_end]);
                        self.pos = name_end;
                    }
                }
                b',' | b'}' if in_argument => break,
                b'/' => {
                    text.push(SEP);
                    self.pos += 1;
                }
                _ => {
                    // A run of ordinary text up to the next special byte.
                    // All special bytes are ASCII, so the cut is on a char
                    // boundary.
                    let rest = &self.src.as_bytes()[self.pos..];
                    let len = rest
                        .iter()
                        .skip(1)
                        .position(|c| matches!(c, b'$' | b'%' | b',' | b'}' | b'/'))
                        .map_or(rest.len(), |p| p + 1);
                    text.push_str(&self.src[self.pos..self.pos + len]);
                    self.pos += len;
                }
            }
        }
        flush(&mut text, &mut nodes);
        Ok(nodes)
    }

    /// `${name}`; `self.pos` is at the `$`.
    fn braced_field(&mut self) -> Result<Node> {
        let start = self.pos;
        let name_start = start + 2;
        let close = self.src[name_start..]
            .find('}')
            .map(|i| name_start + i)
            .ok_or_else(|| self.error(start, "unclosed \"${\" (missing '}')"))?;
        let name = &self.src[name_start..close];
        if name.is_empty() {
            return Err(self.error(start, "empty field name in \"${}\""));
        }
        if let Some(bad) = name.bytes().position(|b| !is_ident_byte(b)) {
            return Err(self.error(
                name_start + bad,
                format!("invalid field name {name:?} (letters, digits and '_' only)"),
            ));
        }
        self.pos = close + 1;
        Ok(Node::Field(Field::from_name(name)))
    }

    /// `%name{args}`; `self.pos` is at the `%`, `brace` at the `{`.
    fn call(&mut self, brace: usize) -> Result<Node> {
        let start = self.pos;
        let name = &self.src[start + 1..brace];
        let func = Func::from_name(name).ok_or_else(|| {
            self.error(
                start,
                format!("unknown function %{name} (known: {})", Func::names_list()),
            )
        })?;
        self.pos = brace + 1;
        let mut args = Vec::new();
        loop {
            args.push(self.expr(true)?);
            match self.byte(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    return Err(self.error(
                        start,
                        format!("unclosed %{name}{{ (missing '}}'; write $}} or $, for a literal '}}' or ',')"),
                    ))
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let wanted = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.error(
                start,
                format!("%{name} takes {wanted} argument(s), got {}", args.len()),
            ));
        }
        Ok(Node::Call { func, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Node {
        Node::Text(s.to_owned())
    }
    fn field(s: &str) -> Node {
        Node::Field(Field::from_name(s))
    }
    fn err_at(src: &str) -> (usize, String) {
        match parse(src) {
            Err(Error::Template {
                template,
                position,
                message,
            }) => {
                assert_eq!(template, src);
                (position, message)
            }
            other => panic!("{src:?}: expected a template error, got {other:?}"),
        }
    }

    #[test]
    fn fields_plain_and_braced() {
        assert_eq!(
            parse("$artist - ${album}x").unwrap(),
            vec![field("artist"), text(" - "), field("album"), text("x")]
        );
        // An identifier ends at the first non-identifier byte.
        assert_eq!(
            parse("$track.$title").unwrap(),
            vec![field("track"), text("."), field("title")]
        );
        // Braces let a field touch letters.
        assert_eq!(parse("${disc}a").unwrap(), vec![field("disc"), text("a")]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            parse("$$5 100%% $% a$,b$}c").unwrap(),
            vec![text("$5 100% % a,b}c")]
        );
        // Inside arguments the escapes give literal separators.
        assert_eq!(
            parse("%lower{a$,b$}c}").unwrap(),
            vec![Node::Call {
                func: Func::Lower,
                args: vec![vec![text("a,b}c")]]
            }]
        );
    }

    #[test]
    fn lone_specials_are_text() {
        assert_eq!(
            parse("100% $ {x} a,b}").unwrap(),
            vec![text("100% $ {x} a,b}")]
        );
        assert_eq!(parse("end$").unwrap(), vec![text("end$")]);
        assert_eq!(parse("%").unwrap(), vec![text("%")]);
        // A function name without `{` is not a call.
        assert_eq!(parse("%lower x").unwrap(), vec![text("%lower x")]);
    }

    #[test]
    fn slash_becomes_separator_everywhere() {
        assert_eq!(
            parse("$a/b%if{$c,x/y}").unwrap(),
            vec![
                field("a"),
                text("\0b"),
                Node::Call {
                    func: Func::If,
                    args: vec![vec![field("c")], vec![text("x\0y")]]
                }
            ]
        );
    }

    #[test]
    fn nesting_and_empty_args() {
        assert_eq!(
            parse("%upper{%left{$title,3}}").unwrap(),
            vec![Node::Call {
                func: Func::Upper,
                args: vec![vec![Node::Call {
                    func: Func::Left,
                    args: vec![vec![field("title")], vec![text("3")]]
                }]]
            }]
        );
        assert_eq!(
            parse("%if{,x,}").unwrap(),
            vec![Node::Call {
                func: Func::If,
                args: vec![vec![], vec![text("x")], vec![]]
            }]
        );
        assert_eq!(
            parse("%lower{}").unwrap(),
            vec![Node::Call {
                func: Func::Lower,
                args: vec![vec![]]
            }]
        );
    }

    #[test]
    fn braces_inside_arguments_are_text() {
        assert_eq!(
            parse("%lower{{a}").unwrap(),
            vec![Node::Call {
                func: Func::Lower,
                args: vec![vec![text("{a")]]
            }]
        );
    }

    #[test]
    fn unicode_text_survives() {
        assert_eq!(
            parse("Ünïcödé/日本$x").unwrap(),
            vec![text("Ünïcödé\0日本"), field("x")]
        );
    }

    #[test]
    fn errors_name_problem_and_position() {
        let (pos, msg) = err_at("$album/%bogus{x}");
        assert_eq!(pos, 7);
        assert!(msg.contains("unknown function %bogus"), "{msg}");

        let (pos, msg) = err_at("ab${album");
        assert_eq!(pos, 2);
        assert!(msg.contains("unclosed"), "{msg}");

        let (pos, msg) = err_at("x${}");
        assert_eq!(pos, 1);
        assert!(msg.contains("empty field name"), "{msg}");

        let (pos, msg) = err_at("${al bum}");
        assert_eq!(pos, 4);
        assert!(msg.contains("invalid field name"), "{msg}");

        let (pos, msg) = err_at("abc%lower{$title");
        assert_eq!(pos, 3);
        assert!(msg.contains("unclosed %lower{"), "{msg}");

        let (pos, msg) = err_at("%upper{%lower{x}");
        assert_eq!(pos, 0);
        assert!(msg.contains("unclosed %upper{"), "{msg}");

        let (pos, msg) = err_at("é%left{x}");
        assert_eq!(pos, 2, "positions are byte offsets");
        assert!(msg.contains("%left takes 2 argument(s), got 1"), "{msg}");

        let (pos, msg) = err_at("%if{a}");
        assert_eq!(pos, 0);
        assert!(msg.contains("2 to 3"), "{msg}");

        let (_, msg) = err_at("%first{a,1,0,;,;,extra}");
        assert!(msg.contains("1 to 5"), "{msg}");
    }

    #[test]
    fn error_display_mentions_template_and_byte() {
        let err = parse("%nope{}").unwrap_err().to_string();
        assert!(err.contains("%nope{}"), "{err}");
        assert!(err.contains("at byte 0"), "{err}");
    }
}
