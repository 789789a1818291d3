//! Vorbis comments (FLAC's VORBIS_COMMENT block, Ogg's comment packets):
//! parsing, applying edits, encoding; canonical key ↔ field name.
