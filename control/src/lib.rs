//! musicfs-control: composes the daemon (catalog, origins, scanner, FUSE),
//! reads the configuration (file, environment, flags), serves and calls the
//! `musicfs.v1` gRPC control API over a Unix socket.
//!
//! - [`cache`]: the chunk cache: opening, claiming, formatting, restoring;
//! - [`config`]: the effective config and where it comes from;
//! - [`cli`]: the `musicfs` command line;
//! - [`covers`]: cover art for album folders, cached under `<cache_dir>/art`;
//! - [`daemon`]: the mount daemon (`musicfs mount`);
//! - [`detach`]: starting the daemon in the background;
//! - [`origin_config`]: `[[origins]]` and building the origins they describe;
//! - [`scanner`]: scan coordination shared by the daemon and `musicfs scan`;
//! - [`seeds`]: headers a remote scan fetched, kept for the first read;
//! - [`service`]: the gRPC service; [`socket`]: the control socket;
//! - [`tags`]: tag overlay edits; [`beets`]: beets import, catalog export;
//! - [`search`]: search and smart collections; [`prefetch`]: cache prefetch;
//! - [`verify`]: content hashes on demand (`musicfs verify`).

pub mod beets;
pub mod cache;
pub mod cli;
pub mod config;
pub mod covers;
pub mod daemon;
pub mod detach;
mod error;
pub mod library;
mod memory;
pub mod origin_config;
pub mod prefetch;
pub mod scanner;
pub mod search;
pub mod seeds;
pub mod service;
pub mod socket;
pub mod tags;
pub mod verify;

pub use error::{Error, Result};
