//! Parsed query terms to a tantivy query.
//!
//! Scoring: an exact word scores (BM25) with a boost over a prefix or a
//! one-typo match, which score a constant; so "love" ranks files with the
//! word "love" above those with "lovely" or "live".
use super::query::{Field as QueryField, Match, Term as QueryTerm};
use super::schema::Fields;
use std::ops::Bound;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

/// Shortest word matched as a prefix; shorter prefixes expand to too
/// many terms to stay fast on a large library.
const MIN_PREFIX_CHARS: usize = 3;
/// Shortest bare word also matched with one typo.
const MIN_FUZZY_CHARS: usize = 4;
const EXACT_BOOST: f32 = 4.0;

pub fn compile(terms: &[QueryTerm], fields: &Fields, analyzer: &TextAnalyzer) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for term in terms {
        let query = match (&term.what, term.field) {
            (Match::Years(lo, hi), _) => years(fields.year, *lo, *hi),
            (Match::Words(text) | Match::Phrase(text), Some(QueryField::Format)) => {
                Box::new(TermQuery::new(
                    Term::from_field_text(fields.format, &text.to_lowercase()),
                    IndexRecordOption::Basic,
                ))
            }
            (Match::Words(text), field) => {
                let (target, fuzzy) = match field.and_then(|f| fields.text(f)) {
                    Some(f) => (f, false),
                    None => (fields.all, true),
                };
                words(target, &tokens(analyzer, text), fuzzy)
            }
            (Match::Phrase(text), field) => {
                let target = field.and_then(|f| fields.text(f)).unwrap_or(fields.all);
                phrase(target, &tokens(analyzer, text))
            }
        };
        let occur = if term.negated {
            Occur::MustNot
        } else {
            Occur::Must
        };
        clauses.push((occur, query));
    }
    // Only exclusions: they exclude from everything.
    if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    Box::new(BooleanQuery::new(clauses))
}

fn tokens(analyzer: &TextAnalyzer, text: &str) -> Vec<String> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// A query that matches nothing (a value with no words in it, such as
/// `artist:!!`): an empty must-have-one-of.
fn nothing() -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![(
        Occur::Must,
        Box::new(BooleanQuery::new(vec![])) as Box<dyn Query>,
    )]))
}

/// Every word must be in `field`: exactly, or as a prefix (the last word
/// only, as one types), or with one typo (`fuzzy`, long enough words).
fn words(field: Field, words: &[String], fuzzy: bool) -> Box<dyn Query> {
    if words.is_empty() {
        return nothing();
    }
    let mut all: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let term = Term::from_field_text(field, word);
        let mut any: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Should,
            Box::new(BoostQuery::new(
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                EXACT_BOOST,
            )),
        )];
        let chars = word.chars().count();
        let last = i + 1 == words.len();
        if last && chars >= MIN_PREFIX_CHARS {
            any.push((
                Occur::Should,
                Box::new(FuzzyTermQuery::new_prefix(term.clone(), 0, true)),
            ));
        }
        if fuzzy && chars >= MIN_FUZZY_CHARS {
            any.push((Occur::Should, Box::new(FuzzyTermQuery::new(term, 1, true))));
        }
        all.push((Occur::Must, Box::new(BooleanQuery::new(any))));
    }
    Box::new(BooleanQuery::new(all))
}

fn phrase(field: Field, words: &[String]) -> Box<dyn Query> {
    match words {
        [] => nothing(),
        [one] => Box::new(TermQuery::new(
            Term::from_field_text(field, one),
            IndexRecordOption::WithFreqs,
        )),
        _ => Box::new(PhraseQuery::new(
            words
                .iter()
                .map(|w| Term::from_field_text(field, w))
                .collect(),
        )),
    }
}

fn years(field: Field, lo: Option<i64>, hi: Option<i64>) -> Box<dyn Query> {
    let bound = |y: Option<i64>| match y {
        Some(y) => Bound::Included(Term::from_field_i64(field, y)),
        None => Bound::Unbounded,
    };
    if lo.is_some() && lo == hi {
        return Box::new(TermQuery::new(
            Term::from_field_i64(field, lo.unwrap_or_default()),
            IndexRecordOption::Basic,
        ));
    }
    Box::new(RangeQuery::new(bound(lo), bound(hi)))
}
