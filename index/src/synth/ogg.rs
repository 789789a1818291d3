//! Ogg Vorbis and Opus: the comment header packet rewritten into new pages.
use super::{Original, Plan, ReadAt, TagEdit};
use crate::Result;

pub(super) fn plan(_o: Original<'_>, _src: &mut dyn ReadAt, _edits: &[TagEdit]) -> Result<Plan> {
    Err(crate::Error::Synth("Ogg synthesis not built yet".into()))
}
