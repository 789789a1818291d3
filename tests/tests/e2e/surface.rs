//! The rest of the user-visible surface: xattrs naming the original,
//! statfs, `--foreground`, `musicfs origins`, the socket's mode, config
//! precedence, the catalog's journal mode.
use musicfs_tests::daemon::{is_mounted, process_alive};
use musicfs_tests::{corpus, fsutil, require_fuse, tools, wait_until, Env};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `getfattr --only-values -n NAME FILE`.
fn getfattr(name: &str, file: &std::path::Path) -> String {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(file)
        .output()
        .expect("run getfattr (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "getfattr -n {name} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn xattrs_name_the_original_of_every_file() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);
    let files = fsutil::files(m.root());
    assert!(!files.is_empty());
    for (rel, found) in &files {
        let listed = tools::sh(r#"getfattr -d -m - "$1""#, &[&found.path]);
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains("user.musicfs.origin") && listed.contains("user.musicfs.path"),
            "getfattr -d {rel}: {listed}"
        );
        assert_eq!(
            getfattr("user.musicfs.origin", &found.path),
            "local",
            "{rel}"
        );
        let origin_rel = getfattr("user.musicfs.path", &found.path);
        let entry = c
            .files
            .iter()
            .find(|f| f.path == origin_rel)
            .unwrap_or_else(|| {
                panic!("{rel}: user.musicfs.path {origin_rel:?} is not in the corpus")
            });
        assert!(
            tools::cmp(&c.origin_path(entry), &found.path),
            "{rel} vs its xattr's original {origin_rel}"
        );
        if entry.predictable() {
            assert_eq!(
                &entry.default_path(),
                rel,
                "the file named by the xattr renders to this path"
            );
        }
    }
}

#[test]
fn statfs_reports_a_read_only_filesystem() {
    require_fuse!();
    let env = Env::new();
    let m = env.mount(&corpus().dir, &[]);
    let path = std::ffi::CString::new(m.root().as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: statvfs(3) on a NUL-terminated path into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs: {}", std::io::Error::last_os_error());
    assert_ne!(st.f_flag & libc::ST_RDONLY, 0, "mounted read-only");
    assert!(st.f_namemax >= 255, "f_namemax {}", st.f_namemax);
    let df = tools::sh(r#"df -h "$1""#, &[m.root()]);
    assert!(
        df.status.success(),
        "df: {}",
        String::from_utf8_lossy(&df.stderr)
    );
    let mounts = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == m.root().to_str())
        .expect("the mount is in /proc/mounts");
    assert!(line.contains("fuse"), "{line}");
    assert!(
        line.split(' ')
            .nth(3)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "{line}"
    );
}

#[test]
fn foreground_mount_stops_on_sigterm() {
    require_fuse!();
    let env = Env::new();
    let mut cmd = env.command();
    cmd.arg("mount")
        .arg(&corpus().dir)
        .arg(&env.mnt)
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn musicfs mount --foreground");
    let pid = child.id() as i32;
    let mounted = (|| {
        for _ in 0..200 {
            if is_mounted(&env.mnt) {
                return true;
            }
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })();
    if !mounted {
        let _ = child.kill();
        let _ = child.wait();
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&env.mnt)
            .status();
        panic!("--foreground did not mount within 10 s\n{}", env.log_tail());
    }
    let s = env.status();
    assert_eq!(
        s["pid"].as_i64(),
        Some(pid as i64),
        "the foreground process is the daemon: {s}"
    );
    // SAFETY: kill(2) on the child this test spawned.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = (|| {
        for _ in 0..300 {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    })();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&env.mnt)
            .status();
        panic!("--foreground did not exit within 15 s of SIGTERM");
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        !is_mounted(&env.mnt),
        "still mounted after the foreground daemon exited"
    );
}

#[test]
fn origins_socket_and_catalog() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let m = env.mount(&c.dir, &["--name", "music"]);
    env.wait_scans(1);
    let out = env.run_ok(&["origins"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("music"))
        .unwrap_or_else(|| panic!("`musicfs origins` lists the origin named by --name: {text}"));
    assert!(line.contains("local"), "kind: {line}");
    assert!(
        line.contains(c.dir.to_str().expect("UTF-8")),
        "location: {line}"
    );
    assert!(
        line.contains(&c.audio().count().to_string()),
        "file count: {line}"
    );

    let mode = std::fs::metadata(&env.socket)
        .expect("stat socket")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "control socket mode {:o}",
        mode & 0o777
    );

    let db = rusqlite::Connection::open_with_flags(
        &env.catalog,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the catalog read-only");
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode.to_lowercase(), "wal", "the catalog runs in WAL mode");
    drop(db);
    assert!(m.pid.is_some_and(process_alive));
}

#[test]
fn config_precedence_flags_over_env_over_file() {
    let env = Env::new();
    let config = env.path().join("config.toml");
    std::fs::write(&config, "log_level = \"error\"\n").expect("write config");
    let show = |env_level: Option<&str>, flag: Option<&str>| {
        let mut cmd = env.command();
        cmd.arg("--config").arg(&config);
        if let Some(level) = env_level {
            cmd.env("MUSICFS_LOG_LEVEL", level);
        }
        if let Some(level) = flag {
            cmd.args(["--log-level", level]);
        }
        cmd.args(["config", "show"]);
        let out = cmd.output().expect("run musicfs config show");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        show(None, None).contains("log_level = \"error\""),
        "file over default"
    );
    assert!(
        show(Some("debug"), None).contains("log_level = \"debug\""),
        "env over file"
    );
    assert!(
        show(Some("debug"), Some("warn")).contains("log_level = \"warn\""),
        "flag over env"
    );
    // A bad value is a usage error naming the key.
    std::fs::write(&config, "log_level = \"loud\"\n").expect("write config");
    let out = env.run(&[
        "--config",
        config.to_str().expect("UTF-8"),
        "config",
        "show",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad value: {stderr}");
    assert!(
        stderr.contains("log_level"),
        "the error names the key: {stderr}"
    );
}

#[test]
fn mount_of_a_missing_source_fails_clearly() {
    require_fuse!();
    let env = Env::new();
    let missing = env.path().join("no-such-dir");
    let out = env.run(&[
        "mount",
        missing.to_str().expect("UTF-8"),
        env.mnt.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mounting a missing source succeeded");
    assert!(stderr.starts_with("musicfs: "), "stderr: {stderr}");
    assert!(stderr.contains("no-such-dir"), "names the source: {stderr}");
    assert!(!is_mounted(&env.mnt), "left a mount behind");
    wait_until("no daemon to answer", Duration::from_secs(5), || {
        env.run(&["status"]).status.code() == Some(1)
    });
}
