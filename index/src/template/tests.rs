//! Rendering end to end: parse, evaluate, split, sanitise.
use super::*;

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render(template: &str, pairs: &[(&str, &str)], ext: &str) -> Vec<String> {
    Template::parse(template)
        .unwrap_or_else(|e| panic!("{template:?}: {e}"))
        .render(&fields(pairs), ext)
}

/// Renders a one-component template without extension.
fn one(template: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = render(template, pairs, "");
    assert_eq!(out.len(), 1, "{template:?} gave {out:?}");
    out.remove(0)
}

fn assert_safe(components: &[String]) {
    for c in components {
        assert!(!c.is_empty());
        assert!(c.len() <= MAX_NAME_BYTES, "{} bytes: {c:?}", c.len());
        assert!(!c.contains('/') && !c.contains('\0'), "{c:?}");
        assert!(!c.chars().any(char::is_control), "{c:?}");
        assert!(!c.starts_with('.'), "{c:?}");
        assert_eq!(c, c.trim());
    }
}

const FULL: &[(&str, &str)] = &[
    ("albumartist", "The Beatles"),
    ("artist", "The Beatles"),
    ("album", "Abbey Road"),
    ("title", "Come Together"),
    ("track", "1"),
    ("disc", "1"),
    ("disctotal", "1"),
    ("date", "1969-09-26"),
    ("genre", "Rock; Pop"),
    ("filename", "01 come together.flac"),
];

#[test]
fn default_template() {
    assert_eq!(
        render(DEFAULT_TEMPLATE, FULL, "flac"),
        ["The Beatles", "Abbey Road", "01 - Come Together.flac"]
    );
    let multi = [
        ("artist", "A"),
        ("album", "B"),
        ("title", "T"),
        ("track", "3"),
        ("disc", "2"),
    ];
    assert_eq!(
        render(DEFAULT_TEMPLATE, &multi, "mp3"),
        ["A", "B", "2-03 - T.mp3"]
    );
}

#[test]
fn default_template_with_nothing_known() {
    assert_eq!(
        render(DEFAULT_TEMPLATE, &[("filename", "dir/track.ogg")], "ogg"),
        ["Unknown Artist", "Unknown Album", "track.ogg"]
    );
    assert_eq!(
        render(DEFAULT_TEMPLATE, &[], "ogg"),
        ["Unknown Artist", "Unknown Album", "Unknown Title.ogg"]
    );
    // No track number: no dangling " - ".
    assert_eq!(
        render(DEFAULT_TEMPLATE, &[("title", "T"), ("disc", "2")], "m4a"),
        ["Unknown Artist", "Unknown Album", "T.m4a"]
    );
}

#[test]
fn fields_and_braces() {
    assert_eq!(
        one("$artist - ${album}x", FULL),
        "The Beatles - Abbey Roadx"
    );
    assert_eq!(one("$year $genre [$nosuch]", FULL), "1969 Rock; Pop []");
    assert_eq!(one("$track.$ext", FULL), "01.");
    assert_eq!(render("$track.$ext", FULL, "flac"), ["01.flac.flac"]);
}

#[test]
fn escapes_render_literally() {
    assert_eq!(one("$$ 100%% $% a,b} {c}", &[]), "$ 100% % a,b} {c}");
    assert_eq!(one("%lower{A$,B$}C}", &[]), "a,b}c");
    assert_eq!(one("%first{x$,y$,z,2,0,$,,+}", &[]), "x+y");
}

#[test]
fn every_function() {
    let f = FULL;
    assert_eq!(one("%lower{$album}", f), "abbey road");
    assert_eq!(one("%upper{$album}", f), "ABBEY ROAD");
    assert_eq!(one("%title{cOME tOGETHER}", f), "Come Together");
    assert_eq!(one("%the{$albumartist}", f), "Beatles, The");
    assert_eq!(one("%asciify{Motörhead – Ça}", f), "Motorhead - Ca");
    assert_eq!(one("%left{$album,5}", f), "Abbey");
    assert_eq!(one("%right{$album,4}", f), "Road");
    assert_eq!(one("%if{$genre,yes,no}", f), "yes");
    assert_eq!(one("%if{$nosuch,yes,no}", f), "no");
    assert_eq!(one("%if{$nosuch,yes}x", f), "x");
    assert_eq!(
        one("%if{0,yes,no}%if{false,yes,no}%if{1,yes,no}", f),
        "nonoyes"
    );
    assert_eq!(one("%ifdef{genre,G,-}%ifdef{mood,M,-}", f), "G-");
    assert_eq!(one("%ifdef{genre}", f), "Rock; Pop");
    assert_eq!(
        one("%ifdef{year,Y,-}", f),
        "Y",
        "derived fields count as defined"
    );
    assert_eq!(
        one("%ifdef{album,A,-}", &[]),
        "-",
        "Unknown fallbacks do not"
    );
    assert_eq!(one("%first{$genre}", f), "Rock");
    assert_eq!(one("%first{$genre,2,0,; , & }", f), "Rock & Pop");
    assert_eq!(one("%first{$genre,1,1}", f), "Pop");
}

#[test]
fn nesting() {
    assert_eq!(one("%upper{%left{%the{$albumartist},4}}", FULL), "BEAT");
    assert_eq!(
        one("%if{%ifdef{nosuch},x,%lower{%right{$title,8}}}", FULL),
        "together"
    );
    assert_eq!(one("%if{$multidisc,Disc $disc,single}", FULL), "single");
}

#[test]
fn template_slashes_split_value_slashes_do_not() {
    let f = [
        ("artist", "AC/DC"),
        ("album", "../../etc"),
        ("title", "/etc/passwd"),
    ];
    let out = render("$artist/$album/$title", &f, "mp3");
    assert_eq!(out, ["AC-DC", "_.-..-etc", "-etc-passwd.mp3"]);
    assert_safe(&out);
    // A slash written inside a function argument is the template's own.
    assert_eq!(
        render("%if{1,$artist/sub}/$title", &f, "mp3"),
        ["AC-DC", "sub", "-etc-passwd.mp3"]
    );
    assert_eq!(render("%lower{A/B}", &[], ""), ["a", "b"]);
    assert_eq!(render("%asciify{É/Ö}", &[], ""), ["E", "O"]);
}

#[test]
fn hostile_values_stay_in_their_component() {
    let long = "ü".repeat(150); // 300 bytes
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("artist", "../.."), ("album", ".."), ("title", ".")],
        vec![("artist", "/etc/passwd"), ("album", "/"), ("title", "a\0b")],
        vec![("artist", "a\0/\0b"), ("album", "\n\t"), ("title", "..\0.")],
        vec![("artist", &long), ("album", &long), ("title", &long)],
        vec![("artist", ".hidden"), ("album", "..."), ("title", " .x ")],
        vec![("artist", ""), ("album", ""), ("title", "")],
    ];
    for pairs in &cases {
        let out = render("$artist/$album/$title", pairs, "flac");
        assert_eq!(out.len(), 3, "{pairs:?} gave {out:?}");
        assert_safe(&out);
        assert!(out[2].ends_with(".flac"), "{out:?}");
    }
    assert_eq!(
        render("$artist/$album/$title", &cases[0], "flac"),
        ["_.-..", "_.", "_.flac"]
    );
    assert_eq!(
        render("$artist/$album/$title", &cases[2], "flac"),
        ["a-b", "Unknown Album", "_...flac"]
    );
    assert_eq!(
        render("$artist/$album/$title", &cases[4], "flac"),
        ["_hidden", "_..", "_x.flac"]
    );
    assert_eq!(
        render("$artist/$album/$title", &cases[5], "flac"),
        ["Unknown Artist", "Unknown Album", "Unknown Title.flac"]
    );
}

#[test]
fn length_limit_counts_ext_and_respects_chars() {
    let long = "ü".repeat(150); // 2 bytes each
    let out = render(
        "$artist/$title",
        &[("artist", &long), ("title", &long)],
        "flac",
    );
    assert_eq!(out[0], "ü".repeat(127)); // 254 bytes
    assert_eq!(out[1], format!("{}.flac", "ü".repeat(125))); // 250 + 5
    let emoji = "🎶".repeat(80); // 4 bytes each
    let out = render("$title", &[("title", &emoji)], "opus");
    assert_eq!(out[0], format!("{}.opus", "🎶".repeat(62))); // 248 + 5
    assert!(out[0].len() <= 255);
    // Exactly at the limit: 250 + ".flac".
    let exact = "a".repeat(250);
    assert_eq!(render("$title", &[("title", &exact)], "flac")[0].len(), 255);
}

#[test]
fn empty_components_get_a_name() {
    assert_eq!(
        render("$nosuch/$title", &[("title", "T")], "mp3"),
        ["Unknown", "T.mp3"]
    );
    assert_eq!(render("a//b", &[], ""), ["a", "Unknown", "b"]);
    assert_eq!(render("$nosuch", &[], "mp3"), ["Unknown.mp3"]);
}

#[test]
fn ext_forms() {
    assert_eq!(render("$title", &[("title", "T")], ".flac"), ["T.flac"]);
    assert_eq!(render("$title", &[("title", "T")], ""), ["T"]);
    assert_eq!(one("$ext", &[]), "Unknown");
    assert_eq!(
        render("$title [$ext]", &[("title", "T")], "wv"),
        ["T [wv].wv"]
    );
}

#[test]
fn tag_pairs_join_repeated_keys() {
    let tags: Vec<(String, String)> = vec![
        ("artist".into(), "A".into()),
        ("genre".into(), "Rock".into()),
        ("genre".into(), "Pop".into()),
    ];
    let t = Template::parse("$artist/$genre/%first{$genre,1,1}").unwrap();
    assert_eq!(t.render(&tags, "mp3"), ["A", "Rock; Pop", "Pop.mp3"]);
}

#[test]
fn parse_errors_surface() {
    for bad in [
        "", "   ", "%nope{x}", "${x", "%left{a}", "%if{a", "a\0b", "/$a", "$a/",
    ] {
        match Template::parse(bad) {
            Err(Error::Template { template, .. }) => assert_eq!(template, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match Template::parse("$artist/%bogus{$title}") {
        Err(Error::Template {
            position, message, ..
        }) => {
            assert_eq!(position, 8);
            assert!(message.contains("%bogus"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn template_identity() {
    let a = Template::parse(DEFAULT_TEMPLATE).unwrap();
    let b: Template = DEFAULT_TEMPLATE.parse().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.source(), DEFAULT_TEMPLATE);
    assert_eq!(a.to_string(), DEFAULT_TEMPLATE);
    assert_ne!(a, Template::parse("$title").unwrap());
    let c = a.clone();
    assert!(Arc::ptr_eq(&a.ast, &c.ast), "clones share the parsed form");
}
