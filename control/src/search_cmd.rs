//! `musicfs search` and `musicfs collection list|create|delete`, over
//! the daemon's control socket.
use crate::unary;
use anyhow::{bail, Result};
use musicfs_control::cli::{CollectionCommand, SearchArgs};
use musicfs_control::config::Config;
use musicfs_control::socket;
use musicfs_proto::v1 as pb;

/// Tabs and newlines would break the tab-separated columns.
fn cell(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

pub async fn search(args: &SearchArgs, config: &Config) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    let reply = unary(c.search(pb::SearchRequest {
        query: args.query.join(" "),
        limit: args.limit,
    }))
    .await?;
    if args.json {
        let hits: Vec<serde_json::Value> = reply
            .hits
            .iter()
            .map(|h| {
                serde_json::json!({
                    "file_id": h.file_id, "path": h.path, "score": h.score,
                    "artist": h.artist, "album": h.album, "title": h.title,
                })
            })
            .collect();
        let v = serde_json::json!({"hits": hits, "total": reply.total, "took_us": reply.took_us});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for h in &reply.hits {
        println!(
            "{}\t{}\t{}\t{}",
            cell(&h.path),
            cell(&h.artist),
            cell(&h.album),
            cell(&h.title)
        );
    }
    eprintln!(
        "{} of {} matches in {:.1} ms",
        reply.hits.len(),
        reply.total,
        reply.took_us as f64 / 1000.0
    );
    Ok(())
}

pub async fn collection(cmd: &CollectionCommand, config: &Config) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    match cmd {
        CollectionCommand::List { json } => {
            let reply = unary(c.list_collections(pb::ListCollectionsRequest {})).await?;
            if *json {
                let v: Vec<serde_json::Value> = reply
                    .collections
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name, "query": c.query,
                            "builtin": c.builtin, "tracks": c.tracks,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for c in &reply.collections {
                    let kind = if c.builtin { "built-in" } else { "saved" };
                    println!("{}\t{}\t{}\t{}", cell(&c.name), c.tracks, kind, c.query);
                }
            }
        }
        CollectionCommand::Create { name, query } => {
            let made = unary(c.create_collection(pb::CreateCollectionRequest {
                name: name.clone(),
                query: query.join(" "),
            }))
            .await?;
            println!("{}\t{} tracks\t{}", made.name, made.tracks, made.query);
        }
        CollectionCommand::Delete { name } => {
            let reply =
                unary(c.delete_collection(pb::DeleteCollectionRequest { name: name.clone() }))
                    .await?;
            if !reply.deleted {
                bail!("no saved collection named {name:?}");
            }
        }
    }
    Ok(())
}
