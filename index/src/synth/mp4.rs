//! MP4/M4A: `ilst` rewritten inside a new `moov`; chunk offsets adjusted.
use super::{Original, Plan, ReadAt, TagEdit};
use crate::Result;

pub(super) fn plan(_o: Original<'_>, _src: &mut dyn ReadAt, _edits: &[TagEdit]) -> Result<Plan> {
    Err(crate::Error::Synth("MP4 synthesis not built yet".into()))
}
