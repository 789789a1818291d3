//! Search and smart collections: Search, List/Create/DeleteCollection.
use crate::service::DaemonState;
use musicfs_proto::v1 as pb;
use std::sync::Arc;
use tonic::Status;

pub async fn search(
    _state: &Arc<DaemonState>,
    _req: pb::SearchRequest,
) -> Result<pb::SearchReply, Status> {
    Err(Status::unimplemented("Search"))
}

pub async fn list_collections(
    _state: &Arc<DaemonState>,
    _req: pb::ListCollectionsRequest,
) -> Result<pb::ListCollectionsReply, Status> {
    Err(Status::unimplemented("ListCollections"))
}

pub async fn create_collection(
    _state: &Arc<DaemonState>,
    _req: pb::CreateCollectionRequest,
) -> Result<pb::Collection, Status> {
    Err(Status::unimplemented("CreateCollection"))
}

pub async fn delete_collection(
    _state: &Arc<DaemonState>,
    _req: pb::DeleteCollectionRequest,
) -> Result<pb::DeleteCollectionReply, Status> {
    Err(Status::unimplemented("DeleteCollection"))
}
