//! Tag overlay service: SetTags, ResetTags, GetTrack. Edits go to the
//! catalog (never the origin); edited files get a synthesized header plan.
use crate::service::DaemonState;
use musicfs_proto::v1 as pb;
use std::sync::Arc;
use tonic::Status;

pub async fn set_tags(
    _state: &Arc<DaemonState>,
    _req: pb::SetTagsRequest,
) -> Result<pb::SetTagsReply, Status> {
    Err(Status::unimplemented("SetTags"))
}

pub async fn reset_tags(
    _state: &Arc<DaemonState>,
    _req: pb::ResetTagsRequest,
) -> Result<pb::SetTagsReply, Status> {
    Err(Status::unimplemented("ResetTags"))
}

pub async fn get_track(
    _state: &Arc<DaemonState>,
    _req: pb::GetTrackRequest,
) -> Result<pb::Track, Status> {
    Err(Status::unimplemented("GetTrack"))
}

/// The one way overlay edits are written: for each `(file, edits)`, records
/// the edits, computes the file's synthesized layout (reading the
/// original's header through its origin), syncs the tree and tells the
/// kernel what changed. Returns the files whose served tags changed.
/// Used by SetTags, ImportBeets and (with no edits) after rescans.
pub async fn apply_edits(
    _state: &Arc<DaemonState>,
    _changes: Vec<(musicfs_index::FileId, Vec<musicfs_index::synth::TagEdit>)>,
) -> Result<Vec<musicfs_index::FileId>, Status> {
    Err(Status::unimplemented("tag edits"))
}
