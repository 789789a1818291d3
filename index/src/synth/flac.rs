//! FLAC: a new VORBIS_COMMENT block; STREAMINFO, PICTURE and other blocks carried over.
use super::{Original, Plan, ReadAt, TagEdit};
use crate::Result;

pub(super) fn plan(_o: Original<'_>, _src: &mut dyn ReadAt, _edits: &[TagEdit]) -> Result<Plan> {
    Err(crate::Error::Synth("FLAC synthesis not built yet".into()))
}
