//! The musicfs catalog.
//!
//! - [`Catalog`]: SQLite (WAL, versioned schema with migrations) holding
//!   origins, files, tags, audio properties, scan errors and the persistent
//!   virtual tree whose node ids are the FUSE inode numbers.
//! - [`art`]: embedded cover art and bounded-size JPEG renditions.
//! - [`scan`]: reads tags and audio properties with lofty and finds where the
//!   audio body starts; never panics on bad input.
//! - [`synth`]: synthesized tag headers for files whose tags were edited.
//! - [`template`]: beets-like path templates and path-component sanitising.
//!
//! `Catalog` is `Send + Sync`: readers use a small pool of read-only
//! connections (WAL lets them run beside the writer), writers share one
//! connection behind a mutex.

pub mod art;
pub mod beets;
mod catalog;
mod error;
mod fields;
mod identity;
pub mod scan;
mod schema;
pub mod search;
pub mod synth;
pub mod template;
#[cfg(test)]
mod testutil;
mod tree;

pub use catalog::{
    Catalog, Counts, FileId, FileRecord, Node, NodeKind, OriginId, OriginRow, ScanErrorRow, Stamp,
    TreeChanges, ROOT_INO,
};
pub use error::{Error, Result};
pub use scan::{AudioProps, ScannedFile, Tags};
pub use template::{Template, DEFAULT_TEMPLATE};
