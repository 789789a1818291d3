//! `musicfs prefetch PATH`: fills the chunk cache with a file or a folder
//! of the mount, showing a byte progress bar on a terminal.
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use musicfs_control::cli::PrefetchArgs;
use musicfs_control::config::Config;
use musicfs_control::socket;
use musicfs_proto::v1 as pb;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

pub async fn run(args: &PrefetchArgs, config: &Config) -> Result<()> {
    let mut client = socket::connect(&config.socket).await?;
    let status = crate::unary(client.get_status(pb::GetStatusRequest { max_errors: 1 })).await?;
    let path = virtual_path(Path::new(&status.mountpoint), &args.path)?;
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

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The path relative to the mount root: an absolute path must be under
/// the mountpoint; a relative one is taken from the working directory
/// when that is inside the mount, else from the mount root.
fn virtual_path(mountpoint: &Path, given: &str) -> Result<String> {
    let p = Path::new(given);
    let absolute = match std::env::current_dir() {
        _ if p.is_absolute() => p.to_path_buf(),
        Ok(cwd) if cwd.starts_with(mountpoint) => cwd.join(p),
        _ => mountpoint.join(p),
    };
    let mut clean = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    let rel = clean.strip_prefix(mountpoint).with_context(|| {
        format!(
            "{given} is not under the mountpoint {}",
            mountpoint.display()
        )
    })?;
    rel.to_str()
        .map(str::to_string)
        .with_context(|| format!("{given}: virtual paths are UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_paths_are_relative_to_the_mount() {
        let m = Path::new("/mnt/music");
        assert_eq!(virtual_path(m, "/mnt/music/A/B").unwrap(), "A/B");
        assert_eq!(virtual_path(m, "/mnt/music/A/../C").unwrap(), "C");
        assert_eq!(virtual_path(m, "/mnt/music").unwrap(), "");
        assert!(virtual_path(m, "/elsewhere/A").is_err());
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
