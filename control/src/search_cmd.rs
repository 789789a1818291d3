//! `musicfs search` and `musicfs collection list|create|delete`.
use anyhow::Result;
use musicfs_control::cli::{CollectionCommand, SearchArgs};
use musicfs_control::config::Config;

pub async fn search(_args: &SearchArgs, _config: &Config) -> Result<()> {
    anyhow::bail!("musicfs search is not built yet")
}

pub async fn collection(_cmd: &CollectionCommand, _config: &Config) -> Result<()> {
    anyhow::bail!("musicfs collection is not built yet")
}
