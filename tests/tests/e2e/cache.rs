//! `musicfs cache …` through the real binary: format, stats (offline and
//! through a running daemon), verify, clear, backup and restore, and the
//! refusals of `cache format` (a filesystem signature unless --force, a
//! mounted device always). Small images (64 MiB), each test in its own
//! tempdir with its own config.
use musicfs_blockcache::{CdcParams, ChunkStore, FileBlockDevice, StoreOptions};
use musicfs_tests::{require_fuse, wait_for, Env};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

/// A config whose cache is a 64 MiB image at `<tmp>/cache/cache.img`.
fn config(env: &Env) -> (PathBuf, PathBuf) {
    let cache_dir = env.path().join("cache");
    let cfg = env.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "cache_dir = \"{}\"\n[cache]\nsize = \"64MiB\"\n",
            cache_dir.display()
        ),
    )
    .expect("write config");
    (cfg, cache_dir.join("cache.img"))
}

fn run(env: &Env, cfg: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", cfg.to_str().expect("UTF-8 path")]);
    env.run(&all)
}

fn run_ok(env: &Env, cfg: &Path, args: &[&str]) -> String {
    let out = run(env, cfg, args);
    assert!(
        out.status.success(),
        "musicfs {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stats(env: &Env, cfg: &Path) -> Value {
    let text = run_ok(env, cfg, &["cache", "stats", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats --json is not JSON ({e}): {text}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stores some content in the (closed) image directly, as the remote
/// origins will: two copies of one file (deduplicated) and another.
fn fill(image: &Path) -> u64 {
    let dev = Arc::new(FileBlockDevice::open(image, None).expect("open image"));
    let store = ChunkStore::open(dev, StoreOptions::default()).expect("open store");
    // xorshift: incompressible bytes, so FastCDC cuts near the average.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let body: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let params = CdcParams::default();
    store.put_stream(&body[..], &params).expect("put");
    store.put_stream(&body[..], &params).expect("put again");
    store
        .put_stream(&body[..1_000_000], &params)
        .expect("put a prefix");
    store.checkpoint().expect("checkpoint");
    store.stats().chunks
}

fn same_content(a: &Value, b: &Value) {
    for key in [
        "chunks",
        "used_bytes",
        "logical_bytes",
        "stored_bytes",
        "capacity_bytes",
    ] {
        assert_eq!(a[key], b[key], "{key}: {a} vs {b}");
    }
}

#[test]
fn format_stats_verify_clear_offline() {
    let env = Env::new();
    let (cfg, image) = config(&env);
    let out = run(&env, &cfg, &["cache", "stats"]);
    assert_eq!(out.status.code(), Some(1), "no image yet");
    assert!(stderr(&out).contains("no cache image"), "{}", stderr(&out));

    let img = image.to_str().expect("UTF-8");
    let text = run_ok(&env, &cfg, &["cache", "format", img, "--size", "64MiB"]);
    assert!(text.contains("formatted"), "{text}");
    assert_eq!(
        std::fs::metadata(&image).expect("image").len(),
        64 << 20,
        "a sparse image of the asked size"
    );

    let s = stats(&env, &cfg);
    assert_eq!(s["source"], "offline", "{s}");
    assert_eq!(s["state"], "open");
    assert_eq!(s["kind"], "image");
    assert_eq!(s["chunks"], 0);
    assert!(
        s["io_backend"] == "io_uring" || s["io_backend"] == "pread",
        "{s}"
    );
    let cap = s["capacity_bytes"].as_u64().expect("capacity");
    assert!(cap > 32 << 20 && cap < 64 << 20, "{s}");
    let text = run_ok(&env, &cfg, &["cache", "stats"]);
    assert!(text.contains("offline: no daemon answers"), "{text}");

    let chunks = fill(&image);
    assert!(chunks > 10);
    let s = stats(&env, &cfg);
    assert_eq!(s["chunks"], chunks);
    assert!(s["dedup_ratio"].as_f64().expect("ratio") > 2.0, "{s}");

    let text = run_ok(&env, &cfg, &["cache", "verify"]);
    assert!(text.contains("clean") && text.contains("offline"), "{text}");
    assert!(text.contains(&format!("{chunks} checked")), "{text}");

    let text = run_ok(&env, &cfg, &["cache", "clear"]);
    assert!(text.contains(&format!("cleared {chunks} chunks")), "{text}");
    assert_eq!(stats(&env, &cfg)["chunks"], 0);
}

#[test]
fn backup_then_restore_round_trips() {
    let env = Env::new();
    let (cfg, image) = config(&env);
    run_ok(
        &env,
        &cfg,
        &["cache", "format", image.to_str().expect("UTF-8")],
    );
    fill(&image);
    let before = stats(&env, &cfg);
    let backup = env.path().join("cache.bak");
    let text = run_ok(
        &env,
        &cfg,
        &["cache", "backup", backup.to_str().expect("UTF-8")],
    );
    assert!(text.contains("backed up"), "{text}");
    assert!(
        std::fs::metadata(&backup).expect("backup").len() < 32 << 20,
        "free blocks are not copied"
    );

    run_ok(&env, &cfg, &["cache", "clear"]);
    assert_eq!(stats(&env, &cfg)["chunks"], 0);
    let text = run_ok(
        &env,
        &cfg,
        &["cache", "restore", backup.to_str().expect("UTF-8")],
    );
    assert!(text.contains("verify clean"), "{text}");
    same_content(&before, &stats(&env, &cfg));
    let text = run_ok(&env, &cfg, &["cache", "verify"]);
    assert!(text.contains("clean"), "{text}");

    // Not a backup, or a damaged one: refused, and the cache is untouched.
    let out = run(
        &env,
        &cfg,
        &["cache", "restore", cfg.to_str().expect("UTF-8")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a musicfs cache backup"),
        "{}",
        stderr(&out)
    );
    let mut bytes = std::fs::read(&backup).expect("read backup");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let damaged = env.path().join("damaged.bak");
    std::fs::write(&damaged, bytes).expect("write");
    let out = run(
        &env,
        &cfg,
        &["cache", "restore", damaged.to_str().expect("UTF-8")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
    same_content(&before, &stats(&env, &cfg));
}

#[test]
fn a_running_daemon_serves_the_cache_and_a_restart_reattaches() {
    require_fuse!();
    let env = Env::new();
    let (cfg, image) = config(&env);
    let source = env.path().join("music");
    std::fs::create_dir(&source).expect("mkdir");
    let cfg_s = cfg.to_str().expect("UTF-8");
    {
        let m = env.mount(&source, &["--config", cfg_s]);
        // The daemon creates and formats its default image beside the mount.
        let status = wait_for("the cache to open", Duration::from_secs(30), || {
            let s = env.status();
            (s["cache_state"] != "opening").then_some(s)
        });
        assert_eq!(
            status["cache_state"],
            "open",
            "{status}\n{}",
            env.log_tail()
        );
        assert!(image.is_file());
        let s = stats(&env, &cfg);
        assert_eq!(s["source"], "daemon", "{s}");
        assert_eq!(s["state"], "open");
        assert_eq!(s["chunks"], 0);
        let text = run_ok(&env, &cfg, &["cache", "verify"]);
        assert!(
            text.contains("through the daemon") && text.contains("clean"),
            "{text}"
        );
        let text = run_ok(&env, &cfg, &["cache", "clear"]);
        assert!(text.contains("through the daemon"), "{text}");

        // The daemon holds the device: no format or restore under it.
        let out = run(
            &env,
            &cfg,
            &["cache", "format", image.to_str().expect("UTF-8"), "--force"],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
        let backup = env.path().join("live.bak");
        let text = run_ok(
            &env,
            &cfg,
            &["cache", "backup", backup.to_str().expect("UTF-8")],
        );
        assert!(text.contains("through the daemon"), "{text}");
        let out = run(
            &env,
            &cfg,
            &["cache", "restore", backup.to_str().expect("UTF-8")],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));

        run_ok(&env, &cfg, &["shutdown"]);
        m.wait_daemon_exit(Duration::from_secs(15));
    }
    // Offline now: put content in, then a new daemon shows the same content.
    fill(&image);
    let before = stats(&env, &cfg);
    assert_eq!(before["source"], "offline");
    {
        let _m = env.mount(&source, &["--config", cfg_s]);
        wait_for("the cache to open", Duration::from_secs(30), || {
            (env.status()["cache_state"] == "open").then_some(())
        });
        let after = stats(&env, &cfg);
        assert_eq!(after["source"], "daemon");
        same_content(&before, &after);
        run_ok(&env, &cfg, &["shutdown"]);
    }
}

#[test]
fn format_refuses_an_ext4_image_unless_forced() {
    let env = Env::new();
    let (cfg, _) = config(&env);
    let img = env.path().join("ext4.img");
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .arg("64M")
        .output()
        .expect("mkfs.ext4 (e2fsprogs; scripts/setup.sh installs it)");
    assert!(mkfs.status.success(), "mkfs.ext4: {}", stderr(&mkfs));
    let img_s = img.to_str().expect("UTF-8");
    let out = run(&env, &cfg, &["cache", "format", img_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ext4 filesystem") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    let text = run_ok(&env, &cfg, &["cache", "format", img_s, "--force"]);
    assert!(text.contains("overwrote an ext4 filesystem"), "{text}");
    // Now it is a store, which is refused too without --force.
    let out = run(&env, &cfg, &["cache", "format", img_s]);
    assert!(
        stderr(&out).contains("musicfs chunk store"),
        "{}",
        stderr(&out)
    );
}

/// A loop device over an ext4 image, mounted; undone on drop.
struct MountedLoop {
    device: String,
    mountpoint: PathBuf,
}

impl Drop for MountedLoop {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mountpoint).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

#[test]
fn format_refuses_a_mounted_loop_device_even_forced() {
    let env = Env::new();
    let (cfg, _) = config(&env);
    let img = env.path().join("fs.img");
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .arg("64M")
        .output()
        .expect("mkfs.ext4");
    assert!(mkfs.status.success(), "mkfs.ext4: {}", stderr(&mkfs));
    let attach = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&img)
        .output();
    let device = match attach {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        other => {
            musicfs_tests::note(&format!(
                "SKIPPED {}: no loop device here (losetup: {:?})",
                module_path!(),
                other.map(|o| stderr(&o))
            ));
            return;
        }
    };
    let guard = MountedLoop {
        device,
        mountpoint: env.path().join("fs"),
    };
    std::fs::create_dir(&guard.mountpoint).expect("mkdir");
    let mounted = Command::new("mount")
        .arg(&guard.device)
        .arg(&guard.mountpoint)
        .output()
        .expect("mount");
    assert!(mounted.status.success(), "mount: {}", stderr(&mounted));

    for args in [
        vec!["cache", "format", guard.device.as_str(), "--force"],
        vec!["cache", "format", guard.device.as_str()],
    ] {
        let out = run(&env, &cfg, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("is mounted at") && stderr(&out).contains("fs"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // The image under the loop device is in use too.
    let out = run(
        &env,
        &cfg,
        &["cache", "format", img.to_str().expect("UTF-8"), "--force"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("attached to"), "{}", stderr(&out));
    // Nothing was written: the filesystem is still there.
    assert!(guard.mountpoint.join("lost+found").is_dir());
}
