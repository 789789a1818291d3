//! `musicfs import --beets` and `musicfs export`.
use crate::Progress;
use anyhow::{Context, Result};
use musicfs_control::cli::{ExportArgs, ImportArgs};
use musicfs_control::config::Config;
use musicfs_control::socket;
use musicfs_proto::v1 as pb;
use std::io::Write;

pub async fn import(args: &ImportArgs, config: &Config) -> Result<()> {
    // The daemon opens the file itself, possibly from another directory.
    let db = std::path::absolute(&args.beets)
        .with_context(|| format!("resolving {}", args.beets.display()))?;
    let mut client = socket::connect(&config.socket).await?;
    let mut stream = client
        .import_beets(pb::ImportBeetsRequest {
            library_db: db.to_string_lossy().into_owned(),
            dry_run: args.dry_run,
        })
        .await
        .map_err(musicfs_control::Error::from)?
        .into_inner();
    let progress = Progress::new(&format!("importing {}", db.display()));
    let mut last = None;
    while let Some(msg) = stream
        .message()
        .await
        .map_err(musicfs_control::Error::from)?
    {
        if msg.done {
            last = Some(msg);
            break;
        }
        progress.update(
            msg.items_total,
            msg.items_done,
            &format!("{} matched", msg.matched),
        );
    }
    progress.finish();
    let p = last.context("the daemon ended the import without a summary")?;
    out!(
        "{} beets items: {} matched, {} unmatched; {} track{} {}",
        p.items_total,
        p.matched,
        p.unmatched,
        p.tracks_changed,
        if p.tracks_changed == 1 { "" } else { "s" },
        if args.dry_run {
            "would change (dry run: nothing written)"
        } else {
            "changed"
        }
    );
    if p.skipped > 0 {
        out!(
            "{} matched track{} skipped (tags cannot be served), for example:",
            p.skipped,
            if p.skipped == 1 { "" } else { "s" }
        );
        for why in &p.skipped_sample {
            out!("  {why}");
        }
    }
    if !p.unmatched_sample.is_empty() {
        out!("not in the catalog (local origins), for example:");
        for path in &p.unmatched_sample {
            out!("  {path}");
        }
    }
    Ok(())
}

pub async fn export(args: &ExportArgs, config: &Config) -> Result<()> {
    let mut client = socket::connect(&config.socket).await?;
    let mut stream = client
        .export_catalog(pb::ExportRequest {
            format: args.format.clone(),
        })
        .await
        .map_err(musicfs_control::Error::from)?
        .into_inner();
    // Into a temporary file beside the target, renamed at the end, so a
    // failed export never leaves a truncated file under the name asked for.
    let (mut sink, target): (Box<dyn Write>, _) = match &args.output {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            (Box::new(std::io::BufWriter::new(file)), Some((tmp, path)))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let mut bytes = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(musicfs_control::Error::from)?
    {
        bytes += chunk.data.len() as u64;
        sink.write_all(&chunk.data).context("writing the export")?;
    }
    sink.flush().context("writing the export")?;
    drop(sink);
    if let Some((tmp, path)) = target {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        eprintln!(
            "exported {bytes} bytes of {} to {}",
            args.format,
            path.display()
        );
    }
    Ok(())
}
