//! beets import (ImportBeets) and catalog export (ExportCatalog).
use crate::service::DaemonState;
use musicfs_proto::v1 as pb;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

pub async fn import(
    _state: &Arc<DaemonState>,
    _req: pb::ImportBeetsRequest,
) -> Result<ReceiverStream<Result<pb::ImportProgress, Status>>, Status> {
    Err(Status::unimplemented("ImportBeets"))
}

pub async fn export(
    _state: &Arc<DaemonState>,
    _req: pb::ExportRequest,
) -> Result<ReceiverStream<Result<pb::ExportChunk, Status>>, Status> {
    Err(Status::unimplemented("ExportCatalog"))
}
