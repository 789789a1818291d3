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
