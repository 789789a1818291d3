//! Helpers for the end-to-end tests of remote origins read through the
//! mount: `[[origins]]` config snippets for the test servers (optionally
//! reached through a [`crate::faultproxy::FaultProxy`]), mounting from the
//! config file alone, the daemon's counters (`status --json`,
//! `origins --json`), and tagged audio files large enough that reading only
//! their tags is measurably different from reading them whole.
use crate::servers::s3::S3Server;
use crate::servers::sshd::Sshd;
use crate::{Env, Mount};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Short time limits, so a test meets a failure in seconds: one attempt
/// 1 s, a call with its retries 4 s, health checked and origins polled
/// every second.
pub const FAST: &str = "timeout_ms = 1000\n\
                        deadline_ms = 4000\n\
                        retries = 2\n\
                        health_interval_s = 1\n\
                        poll_interval_s = 1\n";

/// A TOML basic string (quotes and backslashes escaped).
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[[origins]]` for a local directory.
pub fn local_origin(name: &str, dir: &Path) -> String {
    format!(
        "[[origins]]\nname = {}\nkind = \"local\"\npath = {}\n\n",
        toml_str(name),
        toml_str(&dir.to_string_lossy())
    )
}

/// `[[origins]]` for `sshd` serving `root`, reached at `127.0.0.1:port`
/// (the server's own port, or a proxy's: `known_hosts` is written for the
/// port given), logging in with its key. `extra` is appended verbatim.
pub fn sftp_origin(name: &str, sshd: &Sshd, port: u16, root: &Path, extra: &str) -> String {
    let auth = format!(
        "key_file = {}",
        toml_str(&sshd.key_path().to_string_lossy())
    );
    sftp_origin_auth(name, sshd, port, root, &auth, extra)
}

/// Like [`sftp_origin`], logging in with `password` instead of the key.
pub fn sftp_password_origin(
    name: &str,
    sshd: &Sshd,
    port: u16,
    root: &Path,
    password: &str,
    extra: &str,
) -> String {
    let auth = format!("password = {}", toml_str(password));
    sftp_origin_auth(name, sshd, port, root, &auth, extra)
}

fn sftp_origin_auth(
    name: &str,
    sshd: &Sshd,
    port: u16,
    root: &Path,
    auth: &str,
    extra: &str,
) -> String {
    format!(
        "[[origins]]\nname = {}\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         user = {}\npath = {}\n{auth}\nknown_hosts = {}\n{extra}\n",
        toml_str(name),
        toml_str(sshd.user()),
        toml_str(&root.to_string_lossy()),
        toml_str(&known_hosts_for(sshd, port).to_string_lossy()),
    )
}

/// A known_hosts file holding `sshd`'s host key as `[127.0.0.1]:port`,
/// so a client going through a proxy on `port` still checks the real key.
pub fn known_hosts_for(sshd: &Sshd, port: u16) -> PathBuf {
    let text = std::fs::read_to_string(sshd.known_hosts_path()).expect("read known_hosts");
    let key = text
        .split_once(' ')
        .map(|(_, key)| key.trim().to_string())
        .expect("known_hosts line has a key");
    let path = sshd
        .known_hosts_path()
        .with_file_name(format!("known_hosts_{port}"));
    std::fs::write(&path, format!("[127.0.0.1]:{port} {key}\n")).expect("write known_hosts");
    path
}

/// `[[origins]]` for `bucket/prefix` on `s3`, at `endpoint` (the server's
/// or a proxy's), with the server's keys in the config.
pub fn s3_origin(
    name: &str,
    s3: &S3Server,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    extra: &str,
) -> String {
    format!(
        "[[origins]]\nname = {}\nkind = \"s3\"\nendpoint = {}\nregion = \"us-east-1\"\n\
         bucket = {}\npath = {}\npath_style = true\naccess_key_id = {}\n\
         secret_access_key = {}\n{extra}\n",
        toml_str(name),
        toml_str(endpoint),
        toml_str(bucket),
        toml_str(prefix),
        toml_str(s3.access_key()),
        toml_str(s3.secret_key()),
    )
}

/// `[[origins]]` for a WebDAV collection at `url` with basic auth.
pub fn webdav_origin(name: &str, url: &str, user: &str, pass: &str, extra: &str) -> String {
    format!(
        "[[origins]]\nname = {}\nkind = \"webdav\"\nurl = {}\nuser = {}\npassword = {}\n{extra}\n",
        toml_str(name),
        toml_str(url),
        toml_str(user),
        toml_str(pass),
    )
}

/// Writes the config every `env` command reads by default
/// (`$XDG_CONFIG_HOME/musicfs/config.toml` inside the test's tempdir):
/// `top` (top-level keys), a `[cache]` table with a 1 GiB sparse image and
/// `cache_extra`, then `origins` (`[[origins]]` tables).
pub fn write_config(env: &Env, top: &str, cache_extra: &str, origins: &str) -> PathBuf {
    let path = env.path().join("xdg/config/musicfs/config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).expect("config dir");
    let text = format!("{top}\n[cache]\nsize = \"1GiB\"\n{cache_extra}\n\n{origins}");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `musicfs mount MNT`: the origins come from the config file alone.
pub fn mount_configured(env: &Env) -> Mount<'_> {
    env.mount_with(&["mount", env.mnt.to_str().expect("UTF-8 mountpoint")])
}

/// `musicfs origins --json`, parsed.
pub fn origins(env: &Env) -> Vec<Value> {
    let out = env.run_ok(&["origins", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "origins --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v.as_array().cloned().expect("origins --json is an array")
}

/// One origin of `musicfs origins --json`, by name.
pub fn origin(env: &Env, name: &str) -> Value {
    let all = origins(env);
    all.iter()
        .find(|o| o["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no origin {name:?} in origins --json: {all:?}"))
}

/// A counter of a JSON object (`status --json`, an origin); panics,
/// naming it, when the daemon does not report it.
pub fn counter(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key:?} is missing from the daemon's JSON: {v}"))
}

/// An origin's health state ("up", "down", "unknown").
pub fn health(env: &Env, name: &str) -> String {
    origin(env, name)["health"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until origin `name` reports health `state`; returns how long it took.
pub fn wait_health(env: &Env, name: &str, state: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    crate::wait_until(&format!("origin {name} to be {state}"), timeout, || {
        health(env, name) == state
    });
    start.elapsed()
}

/// A directory under /tmp that the SFTP login user can read (sshd serves
/// it as that user).
pub fn served_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod served dir");
    dir
}

/// Makes every directory and file below `root` world-readable.
pub fn open_tree(root: &Path) {
    let st = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(root)
        .status()
        .expect("run chmod");
    assert!(st.success(), "chmod -R a+rX {}", root.display());
}

/// Writes a stereo 16-bit 44.1 kHz FLAC of `secs` seconds of white noise
/// (about 170 KB a second: noise does not compress), different for every
/// `seed`, tagged with `tags` (`key`, `value`; ffmpeg's names: title,
/// artist, album_artist, album, track, date, genre, comment).
pub fn noise_flac(path: &Path, secs: u32, seed: u32, tags: &[(&str, &str)]) {
    noise_track(
        path,
        secs,
        seed,
        tags,
        &["-c:a", "flac", "-sample_fmt", "s16"],
    );
}

/// Like [`noise_flac`], in the codec `codec_args` names (the container
/// follows `path`'s extension), e.g. `["-c:a", "libmp3lame", "-b:a", "320k"]`.
pub fn noise_track(path: &Path, secs: u32, seed: u32, tags: &[(&str, &str)], codec_args: &[&str]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir for track");
    }
    let graph = format!(
        "anoisesrc=d={secs}:c=white:a=0.5:seed={a}[l];\
         anoisesrc=d={secs}:c=white:a=0.5:seed={b}[r];[l][r]amerge=inputs=2[o]",
        a = seed * 2 + 1,
        b = seed * 2 + 2
    );
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-filter_complex", &graph, "-map", "[o]", "-ar", "44100"])
        .args(codec_args);
    for (k, v) in tags {
        cmd.arg("-metadata").arg(format!("{k}={v}"));
    }
    let out = cmd
        .arg(path)
        .output()
        .expect("run ffmpeg (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops the page cache of one file, so the next read reaches the daemon
/// instead of being answered by the kernel from a previous read.
pub fn drop_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // SAFETY: posix_fadvise on an fd this function owns; no memory involved.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise DONTNEED {}", path.display());
}

/// A process's command line, arguments separated by spaces.
pub fn cmdline_of(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}
