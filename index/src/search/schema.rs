//! The search index's fields and its folding tokenizer.
use super::query::Field as QueryField;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};

/// Name of the tokenizer of every text field: words split at anything not
/// alphanumeric, lower-cased and folded to ASCII, so "Beyoncé" is found
/// by "beyonce" and the reverse.
pub const FOLDED: &str = "musicfs_folded";

/// The analyzer registered as [`FOLDED`]; queries run their text through
/// it too, so both sides fold alike.
pub fn folded() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Handles on the index's fields.
#[derive(Clone)]
pub struct Fields {
    pub schema: Schema,
    /// The catalog's FileId (as u64); fast for hit resolution, indexed for
    /// deletes.
    pub file_id: Field,
    /// xxh3 of everything indexed about the file, to find changed files
    /// without rereading the index.
    pub fingerprint: Field,
    pub artist: Field,
    pub albumartist: Field,
    pub album: Field,
    pub title: Field,
    pub genre: Field,
    pub composer: Field,
    /// Every text field's words, for bare words and phrases.
    pub all: Field,
    pub year: Field,
    /// Unix seconds when the file was first catalogued.
    pub added: Field,
    /// Lower-case container name, untokenized.
    pub format: Field,
}

impl Fields {
    pub fn new() -> Fields {
        let mut b = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(FOLDED)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let file_id = b.add_u64_field("file_id", INDEXED | FAST | STORED);
        let fingerprint = b.add_u64_field("fingerprint", FAST);
        let artist = b.add_text_field("artist", text.clone());
        let albumartist = b.add_text_field("albumartist", text.clone());
        let album = b.add_text_field("album", text.clone());
        let title = b.add_text_field("title", text.clone());
        let genre = b.add_text_field("genre", text.clone());
        let composer = b.add_text_field("composer", text.clone());
        let all = b.add_text_field("all", text);
        let year = b.add_i64_field("year", NumericOptions::default() | INDEXED | FAST);
        let added = b.add_i64_field("added", FAST);
        let format = b.add_text_field("format", STRING);
        Fields {
            schema: b.build(),
            file_id,
            fingerprint,
            artist,
            albumartist,
            album,
            title,
            genre,
            composer,
            all,
            year,
            added,
            format,
        }
    }

    /// The index field of a text field named in a query (`None` for year
    /// and format, which are not text).
    pub fn text(&self, f: QueryField) -> Option<Field> {
        Some(match f {
            QueryField::Artist => self.artist,
            QueryField::AlbumArtist => self.albumartist,
            QueryField::Album => self.album,
            QueryField::Title => self.title,
            QueryField::Genre => self.genre,
            QueryField::Composer => self.composer,
            QueryField::Year | QueryField::Format => return None,
        })
    }
}
