//! Paths the user types (absolute under the mountpoint, or relative) →
//! virtual paths relative to the mount root, as the control API takes them.
use crate::unary;
use anyhow::{Context, Result};
use musicfs_proto::v1 as pb;
use musicfs_proto::v1::musicfs_client::MusicfsClient;
use std::path::{Component, Path, PathBuf};

/// The daemon's mountpoint, to turn paths under it into virtual paths.
pub async fn mountpoint(client: &mut MusicfsClient<tonic::transport::Channel>) -> Result<PathBuf> {
    let s = unary(client.get_status(pb::GetStatusRequest { max_errors: 1 })).await?;
    Ok(PathBuf::from(s.mountpoint))
}

/// A path as the user gave it → the virtual path relative to the mount
/// root. Absolute paths must be under the mountpoint; relative ones are
/// taken from the working directory when it is inside the mount, else
/// from the mount root.
pub fn virtual_path(mountpoint: &Path, given: &str) -> Result<String> {
    let p = Path::new(given);
    let absolute = if p.is_absolute() {
        p.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) if cwd.starts_with(mountpoint) => cwd.join(p),
            _ => mountpoint.join(p),
        }
    };
    let rel = normalize(&absolute)
        .strip_prefix(mountpoint)
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "{given} is not under the mountpoint {}",
                mountpoint.display()
            )
        })?;
    rel.to_str()
        .map(str::to_string)
        .with_context(|| format!("{given}: virtual paths are UTF-8"))
}

/// `.` and `..` resolved lexically (the mount has no symlinks).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_relative_to_the_mount() {
        let m = Path::new("/mnt/music");
        assert_eq!(
            virtual_path(m, "/mnt/music/A/B/c.flac").unwrap(),
            "A/B/c.flac"
        );
        assert_eq!(virtual_path(m, "/mnt/music/A/../C").unwrap(), "C");
        assert_eq!(virtual_path(m, "/mnt/music").unwrap(), "");
        assert!(virtual_path(m, "/elsewhere/c.flac").is_err());
        assert!(virtual_path(m, "/mnt/music/../x").is_err());
    }
}
