//! musicfs-control: composes the daemon (catalog, origins, scanner, FUSE),
//! reads the configuration (file, environment, flags), serves and calls the
//! `musicfs.v1` gRPC control API over a Unix socket.

pub mod config;
mod error;

pub use error::{Error, Result};
