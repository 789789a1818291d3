//! `musicfs tag set|reset|show`: overlay edits through the daemon. The
//! origin files are never written; the mount serves the edited tags.
use crate::unary;
use crate::vpath::{mountpoint, virtual_path};
use anyhow::{bail, Result};
use musicfs_control::cli::{TagCommand, TagResetArgs, TagSetArgs, TagShowArgs};
use musicfs_control::config::Config;
use musicfs_control::socket;
use musicfs_proto::v1 as pb;
use musicfs_proto::v1::musicfs_client::MusicfsClient;
use std::path::Path;

type Client = MusicfsClient<tonic::transport::Channel>;

pub async fn run(cmd: &TagCommand, config: &Config) -> Result<()> {
    let mut client = socket::connect(&config.socket).await?;
    match cmd {
        TagCommand::Set(a) => set(&mut client, a).await,
        TagCommand::Reset(a) => reset(&mut client, a).await,
        TagCommand::Show(a) => show(&mut client, a).await,
    }
}

async fn set(client: &mut Client, args: &TagSetArgs) -> Result<()> {
    let (paths, assignments) = if args.query.is_some() {
        (Vec::new(), args.args.as_slice())
    } else {
        split_paths(&args.args)
    };
    if assignments.is_empty() {
        bail!("no edits given: add KEY=VALUE (or KEY= to remove a tag) after the paths");
    }
    let edits = parse_edits(assignments)?;
    if paths.is_empty() && args.query.is_none() {
        bail!("no tracks given: name paths before the KEY=VALUE edits, or use --query");
    }
    let mountpoint = mountpoint(client).await?;
    let paths = paths
        .iter()
        .map(|p| virtual_path(&mountpoint, p))
        .collect::<Result<Vec<_>>>()?;
    let reply = unary(client.set_tags(pb::SetTagsRequest {
        paths,
        query: args.query.clone().unwrap_or_default(),
        edits,
        max_tracks: 0,
    }))
    .await?;
    report("edited", &mountpoint, &reply);
    Ok(())
}

async fn reset(client: &mut Client, args: &TagResetArgs) -> Result<()> {
    if args.paths.is_empty() && args.query.is_none() {
        bail!("no tracks given: name paths, or use --query");
    }
    let mountpoint = mountpoint(client).await?;
    let paths = args
        .paths
        .iter()
        .map(|p| virtual_path(&mountpoint, p))
        .collect::<Result<Vec<_>>>()?;
    let reply = unary(client.reset_tags(pb::ResetTagsRequest {
        paths,
        query: args.query.clone().unwrap_or_default(),
        keys: args.keys.clone(),
        max_tracks: 0,
    }))
    .await?;
    report("reset", &mountpoint, &reply);
    Ok(())
}

async fn show(client: &mut Client, args: &TagShowArgs) -> Result<()> {
    let mountpoint = mountpoint(client).await?;
    let path = virtual_path(&mountpoint, &args.path)?;
    let t = unary(client.get_track(pb::GetTrackRequest { path })).await?;
    if args.json {
        let tags = |tags: &[pb::Tag]| -> Vec<serde_json::Value> {
            tags.iter()
                .map(|t| serde_json::json!([t.key, t.value]))
                .collect()
        };
        let overlay: Vec<serde_json::Value> = t
            .overlay
            .iter()
            .map(|e| serde_json::json!({"key": e.key, "values": e.values, "remove": e.remove}))
            .collect();
        let v = serde_json::json!({
            "file_id": t.file_id,
            "path": t.path,
            "origin": t.origin,
            "origin_path": t.origin_path,
            "format": t.format,
            "origin_size": t.origin_size,
            "served_size": t.served_size,
            "duration_ms": t.duration_ms,
            "synthesized": t.synthesized,
            "tags": tags(&t.tags),
            "scanned_tags": tags(&t.scanned_tags),
            "overlay": overlay,
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!("{}", mountpoint.join(&t.path).display());
    out!(
        "  origin {}:{} ({}, {} bytes; served {} bytes{})",
        t.origin,
        t.origin_path,
        t.format,
        t.origin_size,
        t.served_size,
        if t.synthesized {
            ", synthesized header"
        } else {
            ""
        }
    );
    out!("  tags as served:");
    for tag in &t.tags {
        let edited = t.overlay.iter().any(|e| e.key == tag.key);
        let mark = if edited { "*" } else { " " };
        out!("   {mark}{} = {}", tag.key, tag.value);
    }
    for e in t.overlay.iter().filter(|e| e.values.is_empty()) {
        out!("   -{} (removed)", e.key);
    }
    if !t.overlay.is_empty() {
        out!("  (* edited, - removed in the overlay; the origin file is unchanged)");
    }
    Ok(())
}

fn report(what: &str, mountpoint: &Path, reply: &pb::SetTagsReply) {
    out!(
        "{what} {} track{}",
        reply.tracks_changed,
        if reply.tracks_changed == 1 { "" } else { "s" }
    );
    for p in &reply.paths {
        out!("  {}", mountpoint.join(p).display());
    }
}

/// Paths first, then edits: the edits start at the first argument that
/// looks like `KEY=...` (a key holds no `/`) and is not an existing file.
fn split_paths(args: &[String]) -> (Vec<String>, &[String]) {
    let at = args
        .iter()
        .position(|a| {
            a.split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && !k.contains('/'))
                && !Path::new(a).exists()
        })
        .unwrap_or(args.len());
    (args[..at].to_vec(), &args[at..])
}

/// `KEY=VALUE` edits; `KEY=` removes the key; a key given twice is
/// multi-valued (the daemon collects the values).
fn parse_edits(args: &[String]) -> Result<Vec<pb::TagEdit>> {
    args.iter()
        .map(|a| {
            let Some((key, value)) = a.split_once('=') else {
                bail!("malformed edit {a:?}: expected KEY=VALUE (paths come before the edits)");
            };
            let key = key.trim();
            if key.is_empty() || key.contains('/') {
                bail!("malformed edit {a:?}: expected KEY=VALUE (paths come before the edits)");
            }
            Ok(if value.is_empty() {
                pb::TagEdit {
                    key: key.to_string(),
                    values: Vec::new(),
                    remove: true,
                }
            } else {
                pb::TagEdit {
                    key: key.to_string(),
                    values: vec![value.to_string()],
                    remove: false,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_come_before_edits() {
        let args = strings(&["A/B/01 - x.flac", "A/B/02.mp3", "title=T=1", "genre="]);
        let (paths, edits) = split_paths(&args);
        assert_eq!(paths, strings(&["A/B/01 - x.flac", "A/B/02.mp3"]));
        let edits = parse_edits(edits).unwrap();
        assert_eq!(edits[0].key, "title");
        assert_eq!(edits[0].values, vec!["T=1".to_string()]);
        assert!(edits[1].remove && edits[1].values.is_empty());
    }

    #[test]
    fn a_path_after_the_edits_is_a_malformed_edit() {
        let args = strings(&["x.flac", "title=T", "other/y.flac"]);
        let (_, edits) = split_paths(&args);
        let err = parse_edits(edits).unwrap_err().to_string();
        assert!(err.contains("other/y.flac"), "{err}");
    }
}
