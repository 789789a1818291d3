//! The `musicfs.v1` gRPC protocol, generated from `proto/musicfs.proto`.
//! Nothing here is written by hand.

pub mod v1 {
    tonic::include_proto!("musicfs.v1");
}
