//! `musicfs prefetch PATH`.
use anyhow::Result;
use musicfs_control::cli::PrefetchArgs;
use musicfs_control::config::Config;

pub async fn run(_args: &PrefetchArgs, _config: &Config) -> Result<()> {
    anyhow::bail!("musicfs prefetch is not built yet")
}
