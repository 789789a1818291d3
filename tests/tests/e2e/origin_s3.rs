//! `S3Origin` against a real SeaweedFS S3 gateway on loopback: listing
//! under a prefix, stat, ranged reads at and past EOF, concurrent readers,
//! refused credentials, and the server going away and coming back.
//!
//! Also holds the small library and the checks `origin_webdav` shares.
use musicfs_origins::{Entry, Origin, RemoteOptions, S3Config, S3Origin, Secret};
use musicfs_tests::note;
use musicfs_tests::servers::s3::S3Server;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "library";
const PREFIX: &str = "music";

/// The files of the test library: path → bytes. Hidden entries are in
/// [`HIDDEN`] and must never be listed.
pub(crate) fn library() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("empty.flac".to_string(), Vec::new());
    files.insert(
        "Björk/Jóga.flac".to_string(),
        random_bytes(1, 5 * 1024 * 1024 + 123),
    );
    files.insert(
        "Björk/Homogenic/01 Hunter.flac".to_string(),
        random_bytes(2, 300 * 1024 + 7),
    );
    files.insert(
        "Various/Disc 1/a b+c&d.mp3".to_string(),
        random_bytes(3, 1000),
    );
    files.insert("one-byte.ogg".to_string(), random_bytes(4, 1));
    files
}

/// Hidden files and directories, written beside the library.
pub(crate) const HIDDEN: &[&str] = &[".x", "Björk/.hidden/secret.flac", "Björk/._junk.flac"];

/// Writes the library and its hidden entries under `dir`.
pub(crate) fn write_library(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    for path in HIDDEN {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"hidden").unwrap();
    }
}

use musicfs_tests::noise as random_bytes;

/// With the server down, every kind of call fails within the short
/// limits' deadline as a transient origin failure, without `secret` in
/// the error.
pub(crate) fn check_calls_fail_fast(origin: &dyn Origin, path: &[u8], secret: &str, label: &str) {
    for what in ["stat", "read", "list", "ping"] {
        let started = Instant::now();
        let e = match what {
            "stat" => origin.stat(path).map(|_| ()),
            "read" => origin.read_at(path, 0, &mut [0u8; 1024]).map(|_| ()),
            "list" => origin.list().map(|_| ()),
            _ => origin.ping(),
        }
        .unwrap_err();
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(3500),
            "{what} took {took:?}: {e}"
        );
        assert!(e.is_transient() && e.is_origin_failure(), "{what}: {e}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
        note(&format!("{label} down: {what} failed after {took:?}: {e}"));
    }
}

/// list() names exactly the library's files with their sizes; stat agrees.
pub(crate) fn check_listing(origin: &dyn Origin, files: &BTreeMap<String, Vec<u8>>) -> Vec<Entry> {
    let listed = origin.list().expect("list");
    let got: BTreeMap<String, u64> = listed
        .iter()
        .map(|e| (String::from_utf8(e.rel_path.clone()).unwrap(), e.size))
        .collect();
    let want: BTreeMap<String, u64> = files
        .iter()
        .map(|(p, b)| (p.clone(), b.len() as u64))
        .collect();
    assert_eq!(got, want, "listing of {}", origin.location());
    assert_eq!(listed.len(), files.len(), "no duplicates");
    for e in &listed {
        assert!(e.mtime_ns > 0, "mtime of {:?}", e);
        let st = origin.stat(&e.rel_path).expect("stat");
        assert_eq!(st.size, e.size);
        assert_eq!(st.rel_path, e.rel_path);
    }
    listed
}

/// read_at at many offsets (start, middle, across and past EOF) and whole
/// files in 256 KiB pieces equal the bytes.
pub(crate) fn check_reads(origin: &dyn Origin, files: &BTreeMap<String, Vec<u8>>) {
    let mut reads = 0;
    for (path, bytes) in files {
        let size = bytes.len() as u64;
        let mut probes: Vec<(u64, usize)> = vec![
            (0, 1),
            (0, 100),
            (0, bytes.len() + 10),
            (size / 2, 4096),
            (size.saturating_sub(1), 1),
            (size.saturating_sub(10), 100),
            (size, 10),
            (size + 1, 10),
            (size + 1_000_000, 64 * 1024),
        ];
        let noise = random_bytes(size + 99, 16 * 8);
        for i in 0..16 {
            let r = u64::from_le_bytes(noise[i * 8..i * 8 + 8].try_into().unwrap());
            probes.push((r % (size + 1), (r >> 40) as usize % 70_000 + 1));
        }
        for (offset, len) in probes {
            let mut buf = vec![0xAAu8; len];
            let n = origin
                .read_at(path.as_bytes(), offset, &mut buf)
                .unwrap_or_else(|e| panic!("read {path} at {offset}+{len}: {e}"));
            let start = (offset as usize).min(bytes.len());
            let end = (offset as usize).saturating_add(len).min(bytes.len());
            assert_eq!(n, end - start, "{path} at {offset}+{len}");
            assert!(
                buf[..n] == bytes[start..end],
                "{path} at {offset}+{len}: bytes differ"
            );
            reads += 1;
        }
        let whole = read_whole(origin, path, 256 * 1024);
        assert!(whole == *bytes, "{path}: whole-file read differs");
    }
    note(&format!(
        "{}: {reads} ranged reads checked",
        origin.location()
    ));
}

pub(crate) fn read_whole(origin: &dyn Origin, path: &str, piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; piece];
    loop {
        let n = origin
            .read_at(path.as_bytes(), out.len() as u64, &mut buf)
            .unwrap_or_else(|e| panic!("read {path} at {}: {e}", out.len()));
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Missing files are ENOENT (final), paths leaving the root are refused.
pub(crate) fn check_missing_and_escapes(origin: &dyn Origin) {
    let e = origin.stat(b"Nobody/nothing.flac").unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    assert!(!e.is_transient(), "{e}");
    let e = origin
        .read_at(b"Nobody/nothing.flac", 0, &mut [0u8; 10])
        .unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    for bad in [
        &b"../outside.flac"[..],
        b"a/../../b",
        b"/etc/passwd",
        b"./x",
        b"a//b",
        b"",
    ] {
        let e = origin.read_at(bad, 0, &mut [0u8; 4]).unwrap_err();
        assert_eq!(
            e.errno(),
            libc::EINVAL,
            "{:?}: {e}",
            String::from_utf8_lossy(bad)
        );
        assert!(origin.stat(bad).is_err());
    }
}

/// 8 threads read interleaved pieces of the biggest file at once.
pub(crate) fn check_concurrent(origin: Arc<dyn Origin>, path: &str, bytes: Arc<Vec<u8>>) {
    let started = Instant::now();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let origin = origin.clone();
            let bytes = bytes.clone();
            let path = path.to_string();
            std::thread::spawn(move || {
                let piece = 128 * 1024 + t as usize * 1000;
                let mut offset = t * 77_777;
                let mut buf = vec![0u8; piece];
                while offset < bytes.len() as u64 {
                    let n = origin.read_at(path.as_bytes(), offset, &mut buf).unwrap();
                    let end = (offset as usize + piece).min(bytes.len());
                    assert_eq!(n, end - offset as usize);
                    assert!(
                        buf[..n] == bytes[offset as usize..end],
                        "thread {t} at {offset}"
                    );
                    offset += piece as u64 * 8;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reader thread");
    }
    note(&format!(
        "{}: 8 concurrent readers over {} bytes in {:?}",
        origin.location(),
        bytes.len(),
        started.elapsed()
    ));
}

/// Time limits for the server-down checks: 1 s per attempt, 3 s in all.
pub(crate) fn short_limits() -> RemoteOptions {
    RemoteOptions {
        timeout: Duration::from_secs(1),
        retries: 3,
        backoff: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        deadline: Duration::from_secs(3),
    }
}

fn config(server: &S3Server, remote: RemoteOptions) -> S3Config {
    S3Config {
        name: "s3".into(),
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        bucket: BUCKET.into(),
        prefix: PREFIX.into(),
        path_style: true,
        access_key_id: Some(server.access_key().into()),
        secret_access_key: Some(Secret::new(server.secret_key())),
        remote,
    }
}

fn started_with_library(files: &BTreeMap<String, Vec<u8>>) -> S3Server {
    let server = S3Server::start();
    note(&format!(
        "SeaweedFS S3 answered after {:?}: {}",
        server.startup,
        server.command_line()
    ));
    let dir = tempfile::tempdir().unwrap();
    write_library(dir.path(), files);
    server.upload(dir.path(), BUCKET, PREFIX);
    server
}

#[test]
fn origin_s3_lists_stats_and_reads_a_library() {
    let files = library();
    let server = started_with_library(&files);
    // Beside the prefix, never listed: another prefix sharing its start.
    server.put(BUCKET, "music-old/stray.flac", b"stray");
    server.put(BUCKET, "elsewhere.flac", b"elsewhere");

    let origin = Arc::new(S3Origin::new(config(&server, RemoteOptions::default())).unwrap());
    origin.ping().expect("ping");
    check_listing(origin.as_ref(), &files);
    check_reads(origin.as_ref(), &files);
    check_missing_and_escapes(origin.as_ref());
    let big = "Björk/Jóga.flac";
    check_concurrent(origin.clone(), big, Arc::new(files[big].clone()));

    // A new object shows up in the next listing; a deleted one is gone.
    server.put(BUCKET, "music/Late/new.flac", b"late arrival");
    server.delete(BUCKET, "music/one-byte.ogg");
    let names: Vec<String> = origin
        .list()
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.rel_path).unwrap())
        .collect();
    assert!(names.contains(&"Late/new.flac".to_string()), "{names:?}");
    assert!(!names.contains(&"one-byte.ogg".to_string()), "{names:?}");
    assert_eq!(
        origin.stat(b"one-byte.ogg").unwrap_err().errno(),
        libc::ENOENT
    );

    // The whole bucket as root sees the prefix as a directory.
    let whole = S3Origin::new(S3Config {
        prefix: String::new(),
        ..config(&server, RemoteOptions::default())
    })
    .unwrap();
    let mut buf = [0u8; 9];
    assert_eq!(whole.read_at(b"elsewhere.flac", 0, &mut buf).unwrap(), 9);
    assert_eq!(&buf, b"elsewhere");
    assert!(whole.stat("music/Björk/Jóga.flac".as_bytes()).is_ok());

    // A missing bucket breaks the origin (never an empty library).
    let nobucket = S3Origin::new(S3Config {
        bucket: "no-such-bucket".into(),
        ..config(&server, RemoteOptions::default())
    })
    .unwrap();
    for e in [nobucket.list().unwrap_err(), nobucket.ping().unwrap_err()] {
        assert!(e.is_origin_failure() && !e.is_transient(), "{e}");
        assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    }
}

#[test]
fn origin_s3_refuses_wrong_credentials_quickly_without_leaking_them() {
    let files = library();
    let server = started_with_library(&files);
    let wrong_secret = "not-the-secret-0123456789";
    let cases = [
        (
            server.access_key().to_string(),
            Some(Secret::new(wrong_secret)),
        ),
        (
            "no-such-key".to_string(),
            Some(Secret::new(server.secret_key())),
        ),
    ];
    for (key, secret) in cases {
        let origin = S3Origin::new(S3Config {
            access_key_id: Some(key),
            secret_access_key: secret,
            ..config(&server, RemoteOptions::default())
        })
        .unwrap();
        let started = Instant::now();
        for e in [
            origin.list().unwrap_err(),
            origin.stat("Björk/Jóga.flac".as_bytes()).unwrap_err(),
            origin
                .read_at("Björk/Jóga.flac".as_bytes(), 0, &mut [0u8; 16])
                .unwrap_err(),
            origin.ping().unwrap_err(),
        ] {
            let text = format!("{e} {e:?}");
            assert!(!e.is_transient(), "{text}");
            assert!(!text.contains(wrong_secret), "{text}");
            assert!(!text.contains(server.secret_key()), "{text}");
        }
        // One attempt each, no retries: well under a second on loopback.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let e = origin.list().unwrap_err();
        assert_eq!(e.errno(), libc::EACCES, "{e}");
    }
    // Anonymous requests are refused too (the gateway wants signatures).
    let anonymous = S3Origin::new(S3Config {
        access_key_id: None,
        secret_access_key: None,
        ..config(&server, RemoteOptions::default())
    })
    .unwrap();
    let e = anonymous.list().unwrap_err();
    assert!(!e.is_transient(), "{e}");
}

#[test]
fn origin_s3_fails_fast_while_the_server_is_down_and_recovers() {
    let files = library();
    let mut server = started_with_library(&files);
    let origin = S3Origin::new(config(&server, short_limits())).unwrap();
    let path = "Björk/Jóga.flac".as_bytes();
    assert_eq!(
        origin.stat(path).unwrap().size,
        files["Björk/Jóga.flac"].len() as u64
    );

    server.stop();
    check_calls_fail_fast(&origin, path, server.secret_key(), "S3");

    server.restart();
    note(&format!(
        "SeaweedFS restarted on the same dir and ports in {:?}",
        server.startup
    ));
    let mut buf = vec![0u8; 4096];
    assert_eq!(origin.read_at(path, 1000, &mut buf).unwrap(), 4096);
    assert!(buf == files["Björk/Jóga.flac"][1000..5096]);
    check_listing(&origin, &files);
}
