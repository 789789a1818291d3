//! `WebDavOrigin` against a real WebDAV server (`rclone serve webdav`) on
//! loopback with basic auth: PROPFIND listings, stat, ranged reads,
//! concurrent readers, refused credentials, a missing collection, and the
//! server going away and coming back. The library and the checks are
//! `origin_s3`'s.
use super::origin_s3::{
    check_calls_fail_fast, check_concurrent, check_listing, check_missing_and_escapes, check_reads,
    library, short_limits, write_library,
};
use musicfs_origins::{Error, Origin, RemoteOptions, Secret, WebDavConfig, WebDavOrigin};
use musicfs_tests::note;
use musicfs_tests::servers::webdav::WebDav;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "listener";
const PASS: &str = "dav-secret-4711";

fn config(url: String, remote: RemoteOptions) -> WebDavConfig {
    WebDavConfig {
        name: "dav".into(),
        url,
        user: Some(USER.into()),
        password: Some(Secret::new(PASS)),
        remote,
    }
}

#[test]
fn origin_webdav_lists_stats_and_reads_a_library() {
    let files = library();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Mus ic");
    write_library(&root, &files);
    let server = WebDav::start(dir.path(), USER, PASS);
    note(&format!(
        "rclone serve webdav listening after {:?}",
        server.startup
    ));

    // The collection is a subdirectory whose name needs encoding.
    let url = format!("{}Mus%20ic/", server.url());
    let origin = Arc::new(WebDavOrigin::new(config(url, RemoteOptions::default())).unwrap());
    origin.ping().expect("ping");
    let listed = check_listing(origin.as_ref(), &files);
    // getlastmodified has whole seconds.
    for e in &listed {
        let local = std::fs::metadata(root.join(String::from_utf8_lossy(&e.rel_path).as_ref()))
            .unwrap()
            .mtime();
        assert_eq!(e.mtime_ns / 1_000_000_000, local, "{e:?}");
    }
    check_reads(origin.as_ref(), &files);
    check_missing_and_escapes(origin.as_ref());
    let big = "Björk/Jóga.flac";
    check_concurrent(origin.clone(), big, Arc::new(files[big].clone()));

    // Changes show in the next listing.
    std::fs::write(root.join("Björk/new.flac"), b"late arrival").unwrap();
    std::fs::remove_file(root.join("one-byte.ogg")).unwrap();
    let names: Vec<String> = origin
        .list()
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.rel_path).unwrap())
        .collect();
    assert!(names.contains(&"Björk/new.flac".to_string()), "{names:?}");
    assert!(!names.contains(&"one-byte.ogg".to_string()), "{names:?}");

    // A missing collection is an error, never an empty library.
    let gone = WebDavOrigin::new(config(
        format!("{}no-such-dir/", server.url()),
        RemoteOptions::default(),
    ))
    .unwrap();
    for e in [gone.list().unwrap_err(), gone.ping().unwrap_err()] {
        assert!(e.is_origin_failure() && !e.is_transient(), "{e}");
    }

    // An empty collection is an empty library.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let empty = WebDavOrigin::new(config(
        format!("{}empty", server.url()),
        RemoteOptions::default(),
    ))
    .unwrap();
    assert_eq!(empty.list().unwrap(), vec![]);
}

#[test]
fn origin_webdav_refuses_wrong_credentials_quickly_without_leaking_them() {
    let dir = tempfile::tempdir().unwrap();
    write_library(dir.path(), &library());
    let server = WebDav::start(dir.path(), USER, PASS);
    let wrong = "not-the-password-0123456789";
    let cases = [
        (Some(USER.to_string()), Some(Secret::new(wrong))),
        (Some("intruder".to_string()), Some(Secret::new(PASS))),
        (None, None),
    ];
    for (user, password) in cases {
        let origin = WebDavOrigin::new(WebDavConfig {
            user,
            password,
            ..config(server.url(), RemoteOptions::default())
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
            assert_eq!(e.errno(), libc::EACCES, "{text}");
            assert!(!e.is_transient(), "{text}");
            assert!(!text.contains(wrong) && !text.contains(PASS), "{text}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    // Credentials in the URL are refused before anything is sent, and the
    // refusal does not repeat them.
    let e = WebDavOrigin::new(config(
        format!("http://{USER}:{PASS}@127.0.0.1:{}/", server.port()),
        RemoteOptions::default(),
    ))
    .err()
    .expect("a URL with credentials is refused");
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains(PASS), "{e:?}");
}

#[test]
fn origin_webdav_fails_fast_while_the_server_is_down_and_recovers() {
    let files = library();
    let dir = tempfile::tempdir().unwrap();
    write_library(dir.path(), &files);
    let mut server = WebDav::start(dir.path(), USER, PASS);
    let origin = WebDavOrigin::new(config(server.url(), short_limits())).unwrap();
    let path = "Björk/Jóga.flac".as_bytes();
    assert_eq!(
        origin.stat(path).unwrap().size,
        files["Björk/Jóga.flac"].len() as u64
    );

    server.stop();
    check_calls_fail_fast(&origin, path, PASS, "WebDAV");

    server.restart();
    let mut buf = vec![0u8; 4096];
    assert_eq!(origin.read_at(path, 1000, &mut buf).unwrap(), 4096);
    assert!(buf == files["Björk/Jóga.flac"][1000..5096]);
    check_listing(&origin, &files);
}
