//! `musicfs tag set|reset|show`.
use anyhow::Result;
use musicfs_control::cli::TagCommand;
use musicfs_control::config::Config;

pub async fn run(_cmd: &TagCommand, _config: &Config) -> Result<()> {
    anyhow::bail!("musicfs tag is not built yet")
}
