//! MP3 and other ID3-framed streams: a new ID3v2.4 tag in front of the frames.
use super::{Original, Plan, ReadAt, TagEdit};
use crate::Result;

pub(super) fn plan(_o: Original<'_>, _src: &mut dyn ReadAt, _edits: &[TagEdit]) -> Result<Plan> {
    Err(crate::Error::Synth("ID3 synthesis not built yet".into()))
}
