//! `musicfs cache …`: through the daemon when one answers on the socket,
//! otherwise offline on the configured device (stats, clear, verify,
//! backup); `format` and `restore` are offline only. Every report says
//! which it was.
use crate::{client, unary, Progress};
use anyhow::{bail, Context, Result};
use musicfs_control::cache::{self, CacheRef, Create, OpenCache};
use musicfs_control::cli::{CacheCommand, CacheFileArgs, CacheFormatArgs};
use musicfs_control::config::{ByteSize, Config};
use musicfs_control::service::{stats_reply, verify_reply};
use musicfs_control::socket;
use musicfs_proto::v1 as pb;
use musicfs_proto::v1::musicfs_client::MusicfsClient;
use std::path::{Path, PathBuf};

type Client = MusicfsClient<tonic::transport::Channel>;

pub fn run(cmd: &CacheCommand, config: &Config) -> Result<()> {
    match cmd {
        CacheCommand::Stats(a) => client(stats(config, a.json)),
        CacheCommand::Clear => client(clear(config)),
        CacheCommand::Verify => client(verify(config)),
        CacheCommand::Format(a) => format(config, a),
        CacheCommand::Backup(a) => client(backup(config, a)),
        CacheCommand::Restore(a) => client(restore(config, a)),
    }
}

/// The daemon's client, or `None` when no daemon answers.
async fn daemon(config: &Config) -> Option<Client> {
    socket::connect(&config.socket).await.ok()
}

/// The configured store, opened here (no daemon holds it).
fn open_offline(config: &Config) -> Result<(OpenCache, CacheRef)> {
    let cache = OpenCache::open(config, Create::Never)?;
    let r = CacheRef {
        store: cache.store().clone(),
        description: cache.description.clone(),
        backend: cache.backend,
        kind: cache.kind,
    };
    Ok((cache, r))
}

fn offline_note(config: &Config) -> String {
    format!(
        "offline: no daemon answers on {}; read from {}",
        config.socket.display(),
        cache::offline_path(config).display()
    )
}

pub(crate) fn human(bytes: u64) -> String {
    let b = bytes as f64;
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= size {
            return format!("{:.1} {unit}", b / size as f64);
        }
    }
    format!("{bytes} B")
}

async fn stats(config: &Config, json: bool) -> Result<()> {
    let (source, s) = match daemon(config).await {
        Some(mut c) => (
            "daemon".to_string(),
            unary(c.get_cache_stats(pb::GetCacheStatsRequest {})).await?,
        ),
        None => {
            let (cache, r) = open_offline(config)?;
            let reply = stats_reply(&r);
            drop(r);
            cache.close();
            ("offline".to_string(), reply)
        }
    };
    if json {
        let v = serde_json::json!({
            "source": source,
            "state": s.state,
            "error": s.error,
            "device": s.device,
            "kind": s.kind,
            "io_backend": s.io_backend,
            "capacity_bytes": s.capacity_bytes,
            "used_bytes": s.used_bytes,
            "free_bytes": s.free_bytes,
            "chunks": s.chunks,
            "logical_bytes": s.logical_bytes,
            "stored_bytes": s.stored_bytes,
            "dedup_ratio": s.dedup_ratio,
            "hits": s.hits,
            "misses": s.misses,
            "evictions": s.evictions,
            "corrupt_chunks": s.corrupt_chunks,
            "pinned_chunks": s.pinned_chunks,
        });
        out!("{v}");
        return Ok(());
    }
    if source == "daemon" {
        out!("source:       the daemon on {}", config.socket.display());
    } else {
        out!("source:       {}", offline_note(config));
    }
    out!("state:        {}", s.state);
    out!("device:       {}", s.device);
    if s.state != "open" {
        if !s.error.is_empty() {
            out!("error:        {}", s.error);
        }
        return Ok(());
    }
    let pct = |n: u64| {
        if s.capacity_bytes == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.capacity_bytes as f64
        }
    };
    out!("kind:         {}", s.kind);
    out!("io backend:   {}", s.io_backend);
    out!("capacity:     {}", human(s.capacity_bytes));
    out!(
        "used:         {} ({:.1}%)",
        human(s.used_bytes),
        pct(s.used_bytes)
    );
    out!("free:         {}", human(s.free_bytes));
    out!("chunks:       {}", s.chunks);
    out!(
        "logical:      {} in {} stored (dedup ratio {:.2})",
        human(s.logical_bytes),
        human(s.stored_bytes),
        s.dedup_ratio
    );
    out!(
        "hits:         {}, misses {}, evictions {}, corrupt chunks {}",
        s.hits,
        s.misses,
        s.evictions,
        s.corrupt_chunks
    );
    Ok(())
}

async fn clear(config: &Config) -> Result<()> {
    let (via, r) = match daemon(config).await {
        Some(mut c) => (
            "through the daemon".to_string(),
            unary(c.clear_cache(pb::ClearCacheRequest {})).await?,
        ),
        None => {
            let (cache, r) = open_offline(config)?;
            let before = r.store.stats();
            r.store.clear()?;
            drop(r);
            cache.close();
            (
                offline_note(config),
                pb::ClearCacheReply {
                    chunks_dropped: before.chunks,
                    bytes_freed: before.used_bytes,
                },
            )
        }
    };
    out!(
        "cleared {} chunks ({}) ({via})",
        r.chunks_dropped,
        human(r.bytes_freed)
    );
    Ok(())
}

async fn verify(config: &Config) -> Result<()> {
    let (via, r) = match daemon(config).await {
        Some(mut c) => {
            // A verify reads every chunk: give it longer than a quick request.
            let reply = c
                .verify_cache(pb::VerifyCacheRequest {})
                .await
                .map_err(musicfs_control::Error::from)?
                .into_inner();
            ("through the daemon".to_string(), reply)
        }
        None => {
            let (cache, r) = open_offline(config)?;
            let report = r.store.verify()?;
            let reply = verify_reply(&report, &r.description);
            drop(r);
            cache.close();
            (offline_note(config), reply)
        }
    };
    out!("device:       {} ({via})", r.device);
    out!(
        "superblocks:  copy 0 {}, copy 1 {}",
        valid(r.superblocks_valid.first()),
        valid(r.superblocks_valid.get(1))
    );
    out!("chunks:       {} checked", r.chunks_checked);
    for id in &r.corrupt_chunks {
        out!("corrupt:      chunk {id}");
    }
    if r.bitmap_mismatches > 0 {
        out!(
            "bitmap:       {} blocks disagree with the index",
            r.bitmap_mismatches
        );
    }
    for p in &r.problems {
        out!("problem:      {p}");
    }
    if !r.clean {
        bail!(
            "the cache is damaged: {} problems, {} corrupt chunks",
            r.problems.len(),
            r.corrupt_chunks.len()
        );
    }
    out!("clean");
    Ok(())
}

fn valid(v: Option<&bool>) -> &'static str {
    if v.copied().unwrap_or(false) {
        "valid"
    } else {
        "INVALID"
    }
}

fn format(config: &Config, a: &CacheFormatArgs) -> Result<()> {
    let f = cache::format_device(config, &a.device, a.size.map(|ByteSize(n)| n), a.force)?;
    let overwrote = f
        .overwrote
        .map(|s| format!("; overwrote {s}"))
        .unwrap_or_default();
    out!(
        "formatted {}: {} of chunk space{overwrote}",
        f.description,
        human(f.capacity_bytes)
    );
    Ok(())
}

/// `file` made absolute (the daemon may run in another directory).
fn absolute(file: &Path) -> Result<PathBuf> {
    if file.is_absolute() {
        return Ok(file.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("current directory")?
        .join(file))
}

async fn backup(config: &Config, a: &CacheFileArgs) -> Result<()> {
    let file = absolute(&a.file)?;
    let progress = Progress::new(&format!("backing up to {}", file.display()));
    let (via, bytes, chunks) = match daemon(config).await {
        Some(mut c) => {
            progress.update(0, 0, "the daemon copies the cache");
            let reply = c
                .backup_cache(pb::BackupCacheRequest {
                    path: file.display().to_string(),
                })
                .await
                .map_err(musicfs_control::Error::from);
            progress.finish();
            let reply = reply?.into_inner();
            ("through the daemon".to_string(), reply.bytes, reply.chunks)
        }
        None => {
            let (cache, r) = open_offline(config)?;
            let chunks = r.store.stats().chunks;
            let info = r
                .store
                .backup(&file, &mut |done, total| progress.update(total, done, ""));
            progress.finish();
            let info = info?;
            drop(r);
            cache.close();
            (offline_note(config), info.payload_bytes, chunks)
        }
    };
    out!(
        "backed up {chunks} chunks ({}) to {} ({via})",
        human(bytes),
        file.display()
    );
    Ok(())
}

async fn restore(config: &Config, a: &CacheFileArgs) -> Result<()> {
    if daemon(config).await.is_some() {
        bail!(
            "a daemon answers on {}; restore replaces the cache under it: stop it first (musicfs shutdown)",
            config.socket.display()
        );
    }
    let progress = Progress::new(&format!("restoring {}", a.file.display()));
    let result = cache::restore(config, &a.file, &mut |done, total| {
        progress.update(total, done, "")
    });
    progress.finish();
    let (info, report, stats) = result?;
    if !report.is_clean() {
        bail!(
            "restored {} but verify found problems: {}",
            a.file.display(),
            report.problems.join("; ")
        );
    }
    out!(
        "restored {} onto {}: {} chunks ({}), verify clean",
        a.file.display(),
        cache::offline_path(config).display(),
        stats.chunks,
        human(info.payload_bytes)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
