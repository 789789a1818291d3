//! `musicfs import --beets` and `musicfs export`.
use anyhow::Result;
use musicfs_control::cli::{ExportArgs, ImportArgs};
use musicfs_control::config::Config;

pub async fn import(_args: &ImportArgs, _config: &Config) -> Result<()> {
    anyhow::bail!("musicfs import is not built yet")
}

pub async fn export(_args: &ExportArgs, _config: &Config) -> Result<()> {
    anyhow::bail!("musicfs export is not built yet")
}
