//! Prefetch: fills the chunk cache with the files under a virtual path.
use crate::service::DaemonState;
use musicfs_proto::v1 as pb;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

pub async fn prefetch(
    _state: &Arc<DaemonState>,
    _req: pb::PrefetchRequest,
) -> Result<ReceiverStream<Result<pb::PrefetchProgress, Status>>, Status> {
    Err(Status::unimplemented("Prefetch"))
}
