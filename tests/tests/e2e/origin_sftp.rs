//! The SFTP origin against a real OpenSSH sshd on loopback (library calls,
//! no mount): listing, stat and ranged reads equal the served directory;
//! key, encrypted-key and password logins; host keys refused when unknown
//! or changed; concurrent readers; an outage fails within the deadline and
//! the pool recovers when the server is back.
use musicfs_origins::{
    Entry, Error, Origin, RemoteOptions, Secret, SftpAuth, SftpConfig, SftpOrigin,
};
use musicfs_tests::note;
use musicfs_tests::servers::sshd::{Sshd, KEY_PASSPHRASE};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A library with awkward sizes (0 bytes, chunk boundaries ± 1, 5 MB),
/// nesting, a non-ASCII name, hidden entries, symlinks and a directory the
/// login user cannot read.
struct Library {
    dir: tempfile::TempDir,
}

const FILES: &[(&str, usize)] = &[
    ("empty.flac", 0),
    ("small.flac", 1000),
    ("café/été.mp3", 4097),
    ("A/B/01 track.flac", 300_000),
    ("A/B/big.flac", 5 * 1024 * 1024),
    ("A/odd size.mp3", 65_537),
    ("A/exact.ogg", 131_072),
    ("C/D/E/deep.opus", 65_535),
];

impl Library {
    fn new() -> Library {
        let dir = tempfile::Builder::new()
            .prefix("musicfs-sftp-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path();
        for (i, (rel, size)) in FILES.iter().enumerate() {
            write(&root.join(rel), &noise(i as u64 + 1, *size));
        }
        write(&root.join(".x"), b"hidden file");
        write(&root.join(".hidden/in.flac"), b"in a hidden dir");
        std::os::unix::fs::symlink("small.flac", root.join("link.flac")).unwrap();
        std::os::unix::fs::symlink("A", root.join("dirlink")).unwrap();
        // Unreadable by the login user: skipped by list(), EACCES on read.
        write(&root.join("locked/secret.flac"), b"not for you");
        std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        Library { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root().join(rel)).unwrap()
    }
    /// What list() must say: the visible regular files, from the local
    /// filesystem's own metadata.
    fn expected(&self) -> BTreeMap<Vec<u8>, (u64, i64)> {
        FILES
            .iter()
            .map(|(rel, _)| {
                let m = std::fs::metadata(self.root().join(rel)).unwrap();
                let secs = m
                    .modified()
                    .unwrap()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                (rel.as_bytes().to_vec(), (m.len(), secs as i64))
            })
            .collect()
    }
}

fn write(path: &Path, bytes: &[u8]) {
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

use musicfs_tests::noise;

fn config(sshd: &Sshd, lib: &Library, auth: SftpAuth) -> SftpConfig {
    SftpConfig {
        name: "sftp-test".into(),
        host: "127.0.0.1".into(),
        port: sshd.port(),
        user: sshd.user().into(),
        root: lib.root().to_str().unwrap().into(),
        auth,
        known_hosts: sshd.known_hosts_path(),
        connections: 4,
        remote: RemoteOptions::default(),
    }
}

fn key_auth(sshd: &Sshd) -> SftpAuth {
    SftpAuth::Key {
        path: sshd.key_path(),
        passphrase: None,
    }
}

fn open(cfg: SftpConfig) -> SftpOrigin {
    SftpOrigin::new(cfg).expect("SftpOrigin::new")
}

/// Reads a whole file through read_at in `piece`-sized calls.
fn read_all(o: &SftpOrigin, rel: &str, piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; piece];
    loop {
        let n = o
            .read_at(rel.as_bytes(), out.len() as u64, &mut buf)
            .unwrap_or_else(|e| panic!("read_at {rel} at {}: {e}", out.len()));
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn listing(entries: &[Entry]) -> BTreeMap<Vec<u8>, (u64, i64)> {
    entries
        .iter()
        .map(|e| {
            assert_eq!(
                e.mtime_ns % 1_000_000_000,
                0,
                "SFTP mtimes are whole seconds"
            );
            (e.rel_path.clone(), (e.size, e.mtime_ns / 1_000_000_000))
        })
        .collect()
}

#[test]
fn sftp_lists_stats_and_reads_like_the_directory() {
    let lib = Library::new();
    let sshd = Sshd::start(lib.root());
    let o = open(config(&sshd, &lib, key_auth(&sshd)));

    let t = Instant::now();
    let entries = o
        .list()
        .unwrap_or_else(|e| panic!("list: {e}\n{}", sshd.log()));
    note(&format!(
        "sftp: listed {} files in {:?}",
        entries.len(),
        t.elapsed()
    ));
    // Hidden entries and both symlinks are absent; everything else matches.
    assert_eq!(listing(&entries), lib.expected());
    let paths: Vec<_> = entries.iter().map(|e| e.rel_path.clone()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "list() is in path order");

    for (rel, _) in FILES {
        let e = o.stat(rel.as_bytes()).unwrap();
        let (size, secs) = lib.expected()[rel.as_bytes()];
        assert_eq!((e.size, e.mtime_ns / 1_000_000_000), (size, secs), "{rel}");
    }
    // A symlink is never reported as a file.
    let e = o.stat(b"link.flac").unwrap_err();
    assert_eq!(e.errno(), libc::ELOOP, "{e}");

    // Ranged reads: start, middle, across chunk boundaries, across EOF,
    // at EOF and past it.
    let big = lib.bytes("A/B/big.flac");
    let n = big.len();
    for (offset, len) in [
        (0, 1),
        (0, 4096),
        (1, 65_536),
        (65_535, 70_000),
        (n / 2, 1_000_000),
        (n - 10, 4096),
        (n - 1, 1),
        (n, 10),
        (n + 12345, 10),
    ] {
        let mut buf = vec![0xAAu8; len];
        let got = o.read_at(b"A/B/big.flac", offset as u64, &mut buf).unwrap();
        let want = &big[offset.min(n)..(offset + len).min(n)];
        assert_eq!(got, want.len(), "bytes read at {offset}+{len}");
        assert!(buf[..got] == *want, "bytes at {offset}+{len} differ");
    }
    let mut buf = [0u8; 8];
    assert_eq!(o.read_at(b"empty.flac", 0, &mut buf).unwrap(), 0);

    // Whole files in 256 KiB pieces equal the files.
    let t = Instant::now();
    let mut total = 0;
    for (rel, _) in FILES {
        let got = read_all(&o, rel, 256 * 1024);
        total += got.len();
        assert!(got == lib.bytes(rel), "{rel} read through SFTP differs");
    }
    let took = t.elapsed();
    note(&format!(
        "sftp: read {total} bytes in 256 KiB pieces in {took:?} ({:.1} MB/s, debug build)",
        total as f64 / took.as_secs_f64() / 1e6
    ));

    // Missing files and escaping paths.
    let e = o.stat(b"A/nope.flac").unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    assert!(!e.is_transient());
    let e = o.read_at(b"nope.flac", 0, &mut buf).unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    let e = o.read_at(b"locked/secret.flac", 0, &mut buf).unwrap_err();
    assert_eq!(e.errno(), libc::EACCES, "{e}");
    assert!(!e.is_transient());
    for bad in [&b"../etc/passwd"[..], b"A/../../x", b"./small.flac", b""] {
        let e = o.read_at(bad, 0, &mut buf).unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert_eq!(e.errno(), libc::EINVAL, "{e}");
    }
    o.ping().unwrap();
}

#[test]
fn sftp_password_and_encrypted_key_logins() {
    let lib = Library::new();
    let sshd = Sshd::start(lib.root());

    let pw = open(config(
        &sshd,
        &lib,
        SftpAuth::Password(Secret::new(sshd.password())),
    ));
    assert_eq!(
        read_all(&pw, "small.flac", 4096),
        lib.bytes("small.flac"),
        "password login: {}",
        sshd.log()
    );

    let enc = open(config(
        &sshd,
        &lib,
        SftpAuth::Key {
            path: sshd.encrypted_key_path(),
            passphrase: Some(Secret::new(KEY_PASSPHRASE)),
        },
    ));
    assert_eq!(enc.list().unwrap().len(), FILES.len());

    // The wrong passphrase is a settings error that does not echo it.
    let e = SftpOrigin::new(config(
        &sshd,
        &lib,
        SftpAuth::Key {
            path: sshd.encrypted_key_path(),
            passphrase: Some(Secret::new("not-the-passphrase-xyz")),
        },
    ))
    .err()
    .expect("a wrong passphrase must be refused");
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(!e.to_string().contains("not-the-passphrase-xyz"), "{e}");

    // A wrong password: refused once, not retried, and never printed.
    let wrong = format!("{}-wrong", sshd.password());
    let o = open(config(&sshd, &lib, SftpAuth::Password(Secret::new(&wrong))));
    let t = Instant::now();
    let e = o.list().unwrap_err();
    let took = t.elapsed();
    assert!(!e.is_transient(), "{e}");
    assert_eq!(e.errno(), libc::EACCES, "{e}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&wrong), "{shown}");
    assert!(!shown.contains(&sshd.password()), "{shown}");
    assert!(took < Duration::from_secs(3), "no retry storm: {took:?}");
    let log = sshd.log();
    let failures = log.matches("Failed password").count();
    assert_eq!(failures, 1, "exactly one password attempt:\n{log}");
    note(&format!("sftp: wrong password refused in {took:?}"));
}

#[test]
fn sftp_refuses_unknown_and_changed_host_keys() {
    let lib = Library::new();
    let sshd = Sshd::start(lib.root());

    let mut cfg = config(&sshd, &lib, key_auth(&sshd));
    cfg.known_hosts = sshd.known_hosts_without_key();
    let t = Instant::now();
    let e = open(cfg).list().unwrap_err();
    let text = e.to_string();
    assert!(!e.is_transient(), "{e}");
    assert_eq!(e.errno(), libc::EACCES, "{e}");
    let name = format!("[127.0.0.1]:{}", sshd.port());
    assert!(
        text.contains(&format!("host key for {name} not in")),
        "{text}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!sshd.log().contains("Accepted publickey"), "{}", sshd.log());

    // Another ed25519 key listed for this host and port: a changed key.
    let other =
        std::fs::read_to_string(PathBuf::from(format!("{}.pub", sshd.key_path().display())))
            .unwrap();
    let other: Vec<_> = other.split_whitespace().take(2).collect();
    let changed = lib.dir.path().with_extension("known_hosts_changed");
    std::fs::write(&changed, format!("{name} {} {}\n", other[0], other[1])).unwrap();
    let mut cfg = config(&sshd, &lib, key_auth(&sshd));
    cfg.known_hosts = changed.clone();
    let e = open(cfg).stat(b"small.flac").unwrap_err();
    let _ = std::fs::remove_file(&changed);
    assert!(!e.is_transient(), "{e}");
    assert!(e.to_string().contains("host key CHANGED"), "{e}");
}

#[test]
fn sftp_serves_concurrent_readers() {
    let lib = Library::new();
    let sshd = Sshd::start(lib.root());
    let o = std::sync::Arc::new(open(config(&sshd, &lib, key_auth(&sshd))));
    let t = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let o = o.clone();
            let (rel, _) = FILES[i % FILES.len()];
            let want = lib.bytes(rel);
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let got = read_all(&o, rel, 100_000);
                    assert!(got == want, "thread {i}: {rel} differs");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a reader thread failed");
    }
    note(&format!(
        "sftp: 8 threads x 3 whole-file reads over 4 sessions in {:?}",
        t.elapsed()
    ));
    let sessions = sshd.log().matches("Accepted publickey").count();
    assert!(
        (1..=4).contains(&sessions),
        "the pool opens at most `connections` sessions, saw {sessions}"
    );
}

#[test]
fn sftp_outage_fails_within_the_deadline_then_recovers() {
    let lib = Library::new();
    let mut sshd = Sshd::start(lib.root());
    let mut cfg = config(&sshd, &lib, key_auth(&sshd));
    cfg.remote = RemoteOptions {
        timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(3),
        ..RemoteOptions::default()
    };
    let deadline = cfg.remote.deadline;
    let o = open(cfg);
    let want = lib.bytes("A/odd size.mp3");
    assert!(read_all(&o, "A/odd size.mp3", 8192) == want);

    // Down: pooled sessions break, new connections are refused.
    sshd.stop();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        let t = Instant::now();
        let e = o.read_at(b"A/odd size.mp3", 0, &mut buf).unwrap_err();
        let took = t.elapsed();
        assert!(e.is_transient(), "{e}");
        assert_eq!(e.errno(), libc::EIO, "{e}");
        assert!(
            took <= deadline + Duration::from_millis(500),
            "failed after {took:?}, deadline {deadline:?}"
        );
        note(&format!("sftp: server down, read failed in {took:?}: {e}"));
    }
    assert!(o.ping().is_err());

    // Back on the same port: the pool reconnects.
    sshd.start_again();
    assert!(
        read_all(&o, "A/odd size.mp3", 8192) == want,
        "{}",
        sshd.log()
    );
    o.ping().unwrap();
}

#[test]
fn sftp_cancel_ends_calls() {
    let lib = Library::new();
    let sshd = Sshd::start(lib.root());
    let o = open(config(&sshd, &lib, key_auth(&sshd)));
    o.ping().unwrap();
    o.cancel();
    let e = o.stat(b"small.flac").unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
}
