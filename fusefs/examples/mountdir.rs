//! Mounts a plain directory through musicfs-fusefs, mirroring its layout,
//! for manual checks and quick benchmarks of the FUSE layer alone (no
//! catalog, no tags): `cargo run --release -p musicfs-fusefs --example
//! mountdir -- SRC MNT [--no-passthrough]`. Ctrl-C or `fusermount3 -u MNT`
//! ends it; the counters are printed at the end.
use musicfs_fusefs::testutil::{DirOrigin, MemTree};
use musicfs_fusefs::{FsConfig, FsStats, OriginTable};
use musicfs_index::Stamp;
use musicfs_origins::Origin;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, RwLock};

fn add_dir(tree: &MemTree, root: &Path, dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let m = std::fs::symlink_metadata(&path)?;
        if m.is_dir() {
            add_dir(tree, root, &path)?;
        } else if m.is_file() {
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let Some(rel) = rel.to_str() else { continue };
            let stamp = Stamp {
                size: m.len(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            };
            tree.add_file(rel, 1, rel.as_bytes(), stamp);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(src), Some(mnt)) = (args.first(), args.get(1)) else {
        eprintln!("usage: mountdir SRC MNT [--no-passthrough]");
        std::process::exit(2);
    };
    let passthrough = !args.iter().any(|a| a == "--no-passthrough");
    let root = Path::new(src).canonicalize()?;
    let tree = Arc::new(MemTree::new());
    add_dir(&tree, &root, &root)?;
    let origin: Arc<dyn Origin> = Arc::new(DirOrigin {
        name: "dir".into(),
        root,
    });
    let origins: OriginTable = Arc::new(RwLock::new(HashMap::from([(1, origin)])));
    let stats = Arc::new(FsStats::default());
    let config = FsConfig {
        passthrough,
        ..FsConfig::default()
    };
    let mounted = musicfs_fusefs::mount_tree(tree, origins, config, stats.clone(), Path::new(mnt))?;
    eprintln!("mounted {mnt}; fusermount3 -u {mnt} to stop");
    mounted.wait();
    eprintln!("{:?}", stats.snapshot());
    Ok(())
}
