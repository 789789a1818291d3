//! The template functions, with beets' semantics unless noted.
//!
//! | call | result |
//! |---|---|
//! | `%lower{s}` `%upper{s}` | Unicode case mapping |
//! | `%title{s}` | each whitespace-separated word capitalised, the rest of it lower-cased (Python's `capwords`, as beets; whitespace kept as it is) |
//! | `%the{s}` | a leading "The ", "A " or "An " (any case) moved to the end: "The Beatles" → "Beatles, The" |
//! | `%asciify{s}` | transliterated to ASCII (deunicode): "Björk" → "Bjork" |
//! | `%left{s,n}` `%right{s,n}` | the first / last `n` characters (not bytes); a bad `n` leaves `s` whole |
//! | `%if{c,t[,e]}` | `t` when `c` is true, else `e` (or empty). False: empty, an integer equal to 0 ("0", "00"), "false" in any case |
//! | `%ifdef{f,t[,e]}` | `t` when the file defines field `f` (its own value, or a derived one such as `year` from `date`, not an "Unknown …" fallback), else `e`; with `t` empty or absent, the field's value |
//! | `%first{s[,count[,skip[,sep[,join]]]]}` | `s` split on `sep` ("; "), `count` (1) items after skipping `skip` (0), joined with `join` ("; "); bad numbers take the defaults |
//!
//! Only the branch `%if`/`%ifdef` choose is rendered.
use super::fields::Field;
use super::parse::{Expr, SEP};
use super::Renderer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    Lower,
    Upper,
    Title,
    The,
    Asciify,
    Left,
    Right,
    If,
    IfDef,
    First,
}

const ALL: [(Func, &str); 10] = [
    (Func::Lower, "lower"),
    (Func::Upper, "upper"),
    (Func::Title, "title"),
    (Func::The, "the"),
    (Func::Asciify, "asciify"),
    (Func::Left, "left"),
    (Func::Right, "right"),
    (Func::If, "if"),
    (Func::IfDef, "ifdef"),
    (Func::First, "first"),
];

impl Func {
    /// Function names are case-sensitive, as in beets.
    pub(super) fn from_name(name: &str) -> Option<Func> {
        ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// "%lower, %upper, ..." for error messages.
    pub(super) fn names_list() -> String {
        ALL.iter()
            .map(|(_, n)| format!("%{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Allowed argument counts, inclusive.
    pub(super) fn arity(self) -> (usize, usize) {
        match self {
            Func::Lower | Func::Upper | Func::Title | Func::The | Func::Asciify => (1, 1),
            Func::Left | Func::Right => (2, 2),
            Func::If => (2, 3),
            Func::IfDef => (1, 3),
            Func::First => (1, 5),
        }
    }
}

/// Renders a call into `out`. The parser checked the argument count.
pub(super) fn call(func: Func, args: &[Expr], r: &Renderer<'_>, out: &mut String) {
    let arg = |i: usize| args.get(i).map(|e| r.eval(e));
    let first = || arg(0).unwrap_or_default();
    match func {
        Func::Lower => out.push_str(&first().to_lowercase()),
        Func::Upper => out.push_str(&first().to_uppercase()),
        Func::Title => title(&first(), out),
        Func::The => the(&first(), out),
        Func::Asciify => asciify(&first(), out),
        Func::Left => out.push_str(left(&first(), arg(1).as_deref().unwrap_or(""))),
        Func::Right => out.push_str(right(&first(), arg(1).as_deref().unwrap_or(""))),
        Func::If => {
            let branch = if truthy(&first()) {
                args.get(1)
            } else {
                args.get(2)
            };
            if let Some(expr) = branch {
                r.expr(expr, out);
            }
        }
        Func::IfDef => {
            let name = first();
            let field = Field::from_name(name.trim());
            match r.source.defined(&field) {
                Some(value) => match args.get(1) {
                    Some(then) if !then.is_empty() => r.expr(then, out),
                    _ => out.push_str(&value),
                },
                None => {
                    if let Some(otherwise) = args.get(2) {
                        r.expr(otherwise, out);
                    }
                }
            }
        }
        Func::First => {
            let count = arg(1).and_then(|n| n.trim().parse().ok()).unwrap_or(1);
            let skip = arg(2).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            let sep = arg(3).unwrap_or_else(|| "; ".to_owned());
            let join = arg(4).unwrap_or_else(|| "; ".to_owned());
            first_items(&first(), count, skip, &sep, &join, out);
        }
    }
}

/// beets' `%if` truth: empty, integer zero and "false" are false.
fn truthy(cond: &str) -> bool {
    let cond = cond.trim();
    if cond.is_empty() || cond.eq_ignore_ascii_case("false") {
        return false;
    }
    match cond.parse::<i64>() {
        Ok(n) => n != 0,
        // Too long for i64 but all zeros is still zero.
        Err(_) => !(cond.bytes().all(|b| b == b'0')),
    }
}

fn title(s: &str, out: &mut String) {
    let mut at_word_start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            out.push(c);
            at_word_start = true;
        } else if at_word_start {
            out.extend(c.to_uppercase());
            at_word_start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

fn the(s: &str, out: &mut String) {
    for article in ["the", "an", "a"] {
        let Some(head) = s.get(..article.len()) else {
            continue;
        };
        let rest = &s[article.len()..];
        if head.eq_ignore_ascii_case(article) && rest.starts_with(char::is_whitespace) {
            let rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            out.push_str(rest);
            out.push_str(", ");
            out.push_str(head);
            return;
        }
    }
    out.push_str(s);
}

fn asciify(s: &str, out: &mut String) {
    // Transliterate between separators only: deunicode's tables are not
    // promised to leave control characters alone.
    for (i, piece) in s.split(SEP).enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(&deunicode::deunicode(piece));
    }
}

fn left<'s>(s: &'s str, n: &str) -> &'s str {
    match n.trim().parse::<usize>() {
        Ok(n) => s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i]),
        Err(_) => s,
    }
}

fn right<'s>(s: &'s str, n: &str) -> &'s str {
    match n.trim().parse::<usize>() {
        Ok(0) => "",
        Ok(n) => s
            .char_indices()
            .rev()
            .nth(n - 1)
            .map_or(s, |(i, _)| &s[i..]),
        Err(_) => s,
    }
}

fn first_items(s: &str, count: usize, skip: usize, sep: &str, join: &str, out: &mut String) {
    if sep.is_empty() {
        // Python would refuse an empty separator; treat `s` as one item.
        if skip == 0 && count > 0 {
            out.push_str(s);
        }
        return;
    }
    for (i, item) in s.split(sep).skip(skip).take(count).enumerate() {
        if i > 0 {
            out.push_str(join);
        }
        out.push_str(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn names_round_trip() {
        for (func, name) in ALL {
            assert_eq!(Func::from_name(name), Some(func));
        }
        assert_eq!(Func::from_name("Lower"), None);
        assert_eq!(Func::from_name("nope"), None);
        assert!(Func::names_list().contains("%asciify"));
    }

    #[test]
    fn truthiness() {
        for t in ["1", "x", "yes", " 2 ", "-1", "true", "0.0"] {
            assert!(truthy(t), "{t:?}");
        }
        for f in [
            "",
            "  ",
            "0",
            "00",
            " 0 ",
            "false",
            "FALSE",
            "000000000000000000000000",
        ] {
            assert!(!truthy(f), "{f:?}");
        }
    }

    #[test]
    fn title_case() {
        assert_eq!(
            with(|o| title("hello wORLD  again", o)),
            "Hello World  Again"
        );
        assert_eq!(with(|o| title("élan vital", o)), "Élan Vital");
        assert_eq!(with(|o| title("", o)), "");
    }

    #[test]
    fn the_moves_articles() {
        assert_eq!(with(|o| the("The Beatles", o)), "Beatles, The");
        assert_eq!(with(|o| the("the the", o)), "the, the");
        assert_eq!(
            with(|o| the("A Tribe Called Quest", o)),
            "Tribe Called Quest, A"
        );
        assert_eq!(with(|o| the("An Pierlé", o)), "Pierlé, An");
        assert_eq!(with(|o| the("Theatre", o)), "Theatre");
        assert_eq!(with(|o| the("Abba", o)), "Abba");
        assert_eq!(with(|o| the("The ", o)), "The ");
        assert_eq!(with(|o| the("Thé x", o)), "Thé x");
        assert_eq!(
            with(|o| the("日本", o)),
            "日本",
            "no panic off char boundaries"
        );
    }

    #[test]
    fn asciify_transliterates_and_keeps_separators() {
        assert_eq!(
            with(|o| asciify("Björk Guðmundsdóttir", o)),
            "Bjork Gudmundsdottir"
        );
        assert_eq!(with(|o| asciify("Motörhead\0Ace", o)), "Motorhead\0Ace");
    }

    #[test]
    fn left_right_count_chars() {
        assert_eq!(left("Björk", "3"), "Bjö");
        assert_eq!(left("ab", "5"), "ab");
        assert_eq!(left("ab", "0"), "");
        assert_eq!(left("ab", "x"), "ab");
        assert_eq!(right("Björk", "3"), "örk");
        assert_eq!(right("ab", "5"), "ab");
        assert_eq!(right("ab", "0"), "");
        assert_eq!(right("ab", "-1"), "ab");
    }

    #[test]
    fn first_like_beets() {
        let f = |s, c, k, sep, j| with(|o| first_items(s, c, k, sep, j, o));
        assert_eq!(f("Rock; Pop; Jazz", 1, 0, "; ", "; "), "Rock");
        assert_eq!(f("Rock; Pop; Jazz", 2, 0, "; ", "; "), "Rock; Pop");
        assert_eq!(f("Rock; Pop; Jazz", 2, 1, "; ", " & "), "Pop & Jazz");
        assert_eq!(f("Rock; Pop; Jazz", 5, 2, "; ", "; "), "Jazz");
        assert_eq!(f("Rock; Pop", 1, 5, "; ", "; "), "");
        assert_eq!(f("a,b,c", 2, 0, ",", "+"), "a+b");
        assert_eq!(f("abc", 1, 0, "", "; "), "abc");
    }
}
