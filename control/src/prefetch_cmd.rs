//! `musicfs prefetch PATH`: fills the chunk cache with a file or a folder
//! of the mount, showing a byte progress bar on a terminal.
use crate::cache_cmd::human;
use crate::vpath::{mountpoint, virtual_path};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use musicfs_control::cli::PrefetchArgs;
use musicfs_control::config::Config;
use musicfs_control::socket;
use musicfs_proto::v1 as pb;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub async fn run(args: &PrefetchArgs, config: &Config) -> Result<()> {
    let mut client = socket::connect(&config.socket).await?;
    let path = virtual_path(&mountpoint(&mut client).await?, &args.path)?;
    let started = Instant::now();
    let mut stream = client
        .prefetch(pb::PrefetchRequest { path: path.clone() })
        .await
        .map_err(musicfs_control::Error::from)?
        .into_inner();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} prefetching [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut last = pb::PrefetchProgress::default();
    while let Some(p) = stream
        .message()
        .await
        .map_err(musicfs_control::Error::from)?
    {
        if let Some(b) = &bar {
            b.set_length(p.bytes_total);
            b.set_position(p.bytes_done);
            b.set_message(format!("{}/{} files", p.files_done, p.files_total));
        }
        let done = p.done;
        last = p;
        if done {
            break;
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    for e in &last.errors {
        eprintln!("musicfs: {e}");
    }
    println!(
        "prefetched {}/{} files of {}: {} in the cache, {} fetched from origins, in {:.1} s",
        last.files_done,
        last.files_total,
        if path.is_empty() { "/" } else { &path },
        human(last.bytes_done),
        human(last.bytes_fetched),
        started.elapsed().as_secs_f64()
    );
    if !last.done {
        anyhow::bail!("the daemon stopped answering before the prefetch finished");
    }
    if last.files_done < last.files_total {
        anyhow::bail!(
            "{} of {} files were not prefetched",
            last.files_total - last.files_done,
            last.files_total
        );
    }
    Ok(())
}
