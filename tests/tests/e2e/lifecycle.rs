//! The daemon's life: mount, status, malformed input, stable inodes across
//! remounts and rescans, unmount by fusermount3 and by `musicfs shutdown`,
//! the scan command, config errors.
use musicfs_tests::daemon::{is_mounted, process_alive};
use musicfs_tests::{corpus, fsutil, require_fuse, Env, Kind};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

fn inodes(root: &Path) -> BTreeMap<String, u64> {
    fsutil::walk(root, true)
        .into_iter()
        .map(|f| (f.rel, f.meta.ino()))
        .collect()
}

fn assert_same_inodes(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, when: &str) {
    for (rel, ino) in before {
        assert_eq!(after.get(rel), Some(ino), "{when}: inode of {rel}");
    }
    assert_eq!(before.len(), after.len(), "{when}: same entries");
}

#[test]
fn mount_returns_quickly_and_serves_the_root_at_once() {
    require_fuse!();
    let env = Env::new();
    let m = env.mount(&corpus().dir, &[]);
    musicfs_tests::note(&format!(
        "MEASURED musicfs mount returned after {:?}",
        m.elapsed
    ));
    assert!(
        m.elapsed < Duration::from_secs(10),
        "musicfs mount took {:?}",
        m.elapsed
    );
    std::fs::read_dir(m.root()).expect("read the root right after mount returns");
    let s = env.status();
    assert_eq!(s["mounted"].as_bool(), Some(true), "status: {s}");
    assert_eq!(s["mountpoint"].as_str(), m.root().to_str(), "status: {s}");
    assert!(
        s["pid"].as_i64().is_some(),
        "status has the daemon pid: {s}"
    );
    let s = env.wait_scans(1);
    let audio = corpus().audio().count() as u64;
    assert_eq!(s["files"].as_u64(), Some(audio), "status files: {s}");
    assert!(s["dirs"].as_u64().unwrap_or(0) >= 8, "status dirs: {s}");
}

#[test]
fn malformed_files_are_scan_errors_not_crashes() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    let s = env.wait_scans(1);
    let pid = m.pid.expect("status gives the daemon pid");
    assert!(process_alive(pid), "daemon died during the scan");
    let errors = s["errors"].as_array().cloned().unwrap_or_default();
    let paths: Vec<String> = errors
        .iter()
        .map(|e| e["path"].as_str().unwrap_or_default().to_string())
        .collect();
    for f in c.files.iter().filter(|f| f.kind == Kind::Malformed) {
        let listed = errors
            .iter()
            .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(&f.path)));
        let listed = listed
            .unwrap_or_else(|| panic!("{} should be a scan error; errors: {paths:?}", f.path));
        assert!(
            !listed["message"].as_str().unwrap_or_default().is_empty(),
            "{} has an empty error message",
            f.path
        );
    }
    // A stray document is not audio: a scan error too (album sidecars such as
    // cover images, cue sheets and rip logs are skipped quietly instead).
    for f in c.files.iter().filter(|f| f.kind == Kind::Other) {
        let listed = errors
            .iter()
            .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(&f.path)))
            .unwrap_or_else(|| panic!("{} should be a scan error; errors: {paths:?}", f.path));
        assert!(
            listed["message"]
                .as_str()
                .unwrap_or_default()
                .contains("not an audio file"),
            "{}: {listed}",
            f.path
        );
    }
    for sidecar in ["Bjork/Homogenic/cover.jpg", "Bjork/Homogenic/rip.log"] {
        assert!(
            c.dir.join(sidecar).is_file(),
            "the corpus has the sidecar {sidecar}"
        );
        assert!(
            !paths.iter().any(|p| p.ends_with(sidecar)),
            "{sidecar} is an album sidecar, not a scan error: {paths:?}"
        );
    }
    for f in c.audio() {
        assert!(
            !paths.iter().any(|p| p.ends_with(&f.path)),
            "{} is a good file but was recorded as a scan error: {errors:?}",
            f.path
        );
    }
    assert!(
        s["scan_errors"].as_u64().unwrap_or(0) >= 4,
        "scan_errors counts them: {}",
        s["scan_errors"]
    );
    // Still serving.
    assert!(
        !fsutil::files(m.root()).is_empty(),
        "the mount still lists files"
    );
    let again = env.status();
    assert_eq!(again["mounted"].as_bool(), Some(true));
}

#[test]
fn inodes_survive_a_remount_and_a_rescan() {
    require_fuse!();
    let env = Env::new();
    let source = &corpus().dir;
    let before = {
        let m = env.mount(source, &[]);
        env.wait_scans(1);
        let before = inodes(m.root());
        assert!(before.len() > 30, "walked {} entries", before.len());
        env.run_ok(&["shutdown"]);
        assert!(
            !is_mounted(m.root()),
            "still mounted after `musicfs shutdown` returned"
        );
        m.wait_daemon_exit(EXIT_TIMEOUT);
        before
    };
    let m = env.mount(source, &[]);
    // The catalog's tree is served at once, before the rescan.
    assert_same_inodes(&before, &inodes(m.root()), "right after remount");
    env.wait_scans(1);
    assert_same_inodes(&before, &inodes(m.root()), "after the remount's scan");
    env.run_ok(&["rescan"]);
    let s = env.status();
    assert!(
        s["scans_completed"].as_u64().unwrap_or(0) >= 2,
        "rescan counted: {s}"
    );
    assert_same_inodes(&before, &inodes(m.root()), "after `musicfs rescan`");
}

#[test]
fn fusermount_unmount_stops_the_daemon() {
    require_fuse!();
    let env = Env::new();
    let m = env.mount(&corpus().dir, &[]);
    let pid = m.pid.expect("status gives the daemon pid");
    let st = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(m.root())
        .status()
        .expect("run fusermount3");
    assert!(st.success(), "fusermount3 -u failed");
    m.wait_daemon_exit(EXIT_TIMEOUT);
    assert!(!process_alive(pid));
    let out = env.run(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "status without a daemon exits 1"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no daemon answers on"), "stderr: {stderr}");
}

#[test]
fn shutdown_command_unmounts_and_stops_the_daemon() {
    require_fuse!();
    let env = Env::new();
    let m = env.mount(&corpus().dir, &[]);
    env.wait_scans(1);
    // A file held open past the drain timeout does not stop the shutdown.
    let any = fsutil::files(m.root())
        .into_values()
        .next()
        .expect("a file");
    let held = std::fs::File::open(&any.path).expect("open a file");
    let start = std::time::Instant::now();
    env.run_ok(&["shutdown", "--timeout", "2"]);
    musicfs_tests::note(&format!(
        "MEASURED musicfs shutdown with a held file took {:?}",
        start.elapsed()
    ));
    assert!(
        !is_mounted(m.root()),
        "still mounted after `musicfs shutdown` returned"
    );
    m.wait_daemon_exit(EXIT_TIMEOUT);
    drop(held);
}

#[test]
fn status_without_a_daemon_is_a_clear_error() {
    let env = Env::new();
    let out = env.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "exit code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("musicfs: "), "stderr: {stderr}");
    assert!(stderr.contains("no daemon answers on"), "stderr: {stderr}");
    assert!(
        stderr.contains(env.socket.to_str().expect("UTF-8")),
        "names the socket: {stderr}"
    );
}

#[test]
fn scan_command_summarises_and_is_incremental() {
    let c = corpus();
    let env = Env::new();
    let first = env.run_ok(&["scan", c.dir.to_str().expect("UTF-8")]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text.contains("scanned "), "summary line: {text}");
    let malformed = c.files.iter().filter(|f| f.kind == Kind::Malformed).count();
    assert!(text.contains(" errors)"), "summary counts errors: {text}");
    assert!(
        !text.contains(" 0 errors)") || malformed == 0,
        "malformed files are errors: {text}"
    );
    let second = env.run_ok(&["scan", c.dir.to_str().expect("UTF-8")]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        text.contains("(0 new or changed"),
        "a second scan rereads nothing: {text}"
    );
}

#[test]
fn unknown_config_key_is_a_usage_error_naming_it() {
    let env = Env::new();
    let config = env.path().join("config.toml");
    std::fs::write(&config, "bogus_key_xyz = 1\n").expect("write config");
    for cmd in [&["config", "show"][..], &["status"][..]] {
        let mut args = vec!["--config", config.to_str().expect("UTF-8")];
        args.extend_from_slice(cmd);
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "musicfs {args:?}: stderr {stderr}"
        );
        assert!(
            stderr.contains("bogus_key_xyz"),
            "the error names the key: {stderr}"
        );
    }
}

#[test]
fn config_show_reflects_flags() {
    let env = Env::new();
    let out = env.run_ok(&["config", "show"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(env.catalog.to_str().expect("UTF-8")),
        "the --catalog flag wins: {stdout}"
    );
}
