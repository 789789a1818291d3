//! The control API over a real Unix socket with a real catalog (no mount):
//! socket mode, GetStatus, ListOrigins, RescanOrigin, Shutdown.
use musicfs_control::config::Config;
use musicfs_control::daemon::{build_origins, open_catalog};
use musicfs_control::scanner::Scanner;
use musicfs_control::service::{self, DaemonState, StopCause};
use musicfs_control::{socket, Error};
use musicfs_fusefs::FsStats;
use musicfs_index::scan::ScanOptions;
use musicfs_index::{Template, DEFAULT_TEMPLATE};
use musicfs_proto::v1 as pb;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::write_wav;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_over_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    write_wav(&lib.join("song.wav"), "Hello");
    std::fs::write(lib.join("junk.flac"), b"this is not audio at all").expect("write junk");

    let catalog = open_catalog(&dir.path().join("catalog.db")).expect("catalog");
    let targets =
        build_origins(&catalog, &Config::default(), Some(("music", &lib))).expect("origins");
    let template = Template::parse(DEFAULT_TEMPLATE).expect("template");
    let scanner = Arc::new(Scanner::new(
        catalog.clone(),
        template,
        ScanOptions::default(),
        targets,
    ));
    {
        let scanner = scanner.clone();
        tokio::task::spawn_blocking(move || {
            let target = scanner.targets()[0].clone();
            scanner.full_scan(&target, &|_| {})
        })
        .await
        .expect("join")
        .expect("scan");
    }

    let sock = dir.path().join("run/musicfs/control.sock");
    socket::prepare(&sock).expect("prepare");
    let listener = socket::bind(&sock).expect("bind");
    let meta = std::fs::metadata(&sock).expect("stat socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "socket must be 0600"
    );
    let dir_mode = std::fs::metadata(sock.parent().expect("parent"))
        .expect("stat dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "socket directory must be 0700");

    let (stop_tx, mut stop_rx) = tokio::sync::mpsc::unbounded_channel();
    // A small default image under the test's cache_dir, opened as the
    // daemon opens it (created and formatted on first use).
    let mut cache_config = Config {
        cache_dir: dir.path().join("cache"),
        ..Config::default()
    };
    cache_config.cache.size = musicfs_control::config::ByteSize(16 << 20);
    cache_config.cache.device = Some(cache_config.cache_dir.join("cache.img"));
    let cache = Arc::new(musicfs_control::cache::CacheSlot::default());
    let state = Arc::new(DaemonState {
        catalog: catalog.clone(),
        scanner: scanner.clone(),
        stats: Arc::new(FsStats::default()),
        mountpoint: dir.path().join("mnt"),
        mounted: false.into(),
        passthrough_enabled: true,
        started: Instant::now(),
        stop: stop_tx,
        cache: cache.clone(),
        cache_device: cache_config.cache_device(),
        library: Arc::new(musicfs_control::library::DaemonLibrary::new(
            catalog.clone(),
        )),
    });
    let (server_stop, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::serve(listener, state, async move {
        let _ = server_stop_rx.await;
    }));

    // A second daemon must not steal a live socket.
    assert!(matches!(
        socket::prepare(&sock),
        Err(Error::SocketBusy { .. })
    ));

    let mut client = socket::connect(&sock).await.expect("connect");
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("GetStatus")
        .into_inner();
    assert_eq!(status.pid, std::process::id());
    assert!(!status.mounted);
    assert_eq!(status.origins, 1);
    assert_eq!(status.files, 1, "{status:?}");
    assert_eq!(status.scan_errors, 1, "{status:?}");
    assert_eq!(status.errors.len(), 1);
    assert_eq!(status.errors[0].origin, "music");
    assert_eq!(status.errors[0].path, "junk.flac");
    assert_eq!(status.scans_completed, 1);
    assert!(!status.scanning);
    assert!(status.passthrough_active);
    assert_eq!(status.template, DEFAULT_TEMPLATE);
    assert_eq!(status.cache_state, "opening");
    let err = client
        .clear_cache(pb::ClearCacheRequest {})
        .await
        .expect_err("not open yet");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    {
        let cache = cache.clone();
        let config = cache_config.clone();
        tokio::task::spawn_blocking(move || cache.open(&config))
            .await
            .expect("join");
    }
    let stats = client
        .get_cache_stats(pb::GetCacheStatsRequest {})
        .await
        .expect("GetCacheStats")
        .into_inner();
    assert_eq!(stats.state, "open", "{stats:?}");
    assert_eq!(stats.kind, "image");
    assert!(stats.device.contains("cache.img"), "{stats:?}");
    assert!(["io_uring", "pread"].contains(&stats.io_backend.as_str()));
    assert!(stats.capacity_bytes > 0 && stats.capacity_bytes < 16 << 20);
    assert_eq!((stats.chunks, stats.used_bytes), (0, 0));
    let verify = client
        .verify_cache(pb::VerifyCacheRequest {})
        .await
        .expect("VerifyCache")
        .into_inner();
    assert!(verify.clean, "{verify:?}");
    assert_eq!(verify.superblocks_valid, vec![true, true]);
    let cleared = client
        .clear_cache(pb::ClearCacheRequest {})
        .await
        .expect("ClearCache")
        .into_inner();
    assert_eq!(cleared.chunks_dropped, 0);
    let backup = dir.path().join("cache.bak");
    client
        .backup_cache(pb::BackupCacheRequest {
            path: backup.display().to_string(),
        })
        .await
        .expect("BackupCache");
    musicfs_blockcache::check_backup(&backup).expect("a valid backup");
    let status = client
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("GetStatus")
        .into_inner();
    assert_eq!(status.cache_state, "open");

    let origins = client
        .list_origins(pb::ListOriginsRequest {})
        .await
        .expect("ListOrigins")
        .into_inner()
        .origins;
    assert_eq!(origins.len(), 1);
    let o = &origins[0];
    assert_eq!(o.name, "music");
    assert_eq!(o.kind, "local");
    let canonical = std::fs::canonicalize(&lib).expect("canonicalize");
    assert_eq!(o.location, canonical.display().to_string());
    assert_eq!((o.files, o.scan_errors), (1, 1));
    assert!(o.last_scan > 0, "a finished scan is recorded");

    // A rescan after a new file streams to a finished report that saw it.
    write_wav(&lib.join("second.wav"), "Second");
    let mut stream = client
        .rescan_origin(pb::RescanOriginRequest {
            origin: "music".into(),
        })
        .await
        .expect("RescanOrigin")
        .into_inner();
    let mut last = None;
    while let Some(msg) = stream.message().await.expect("progress") {
        last = Some(msg);
    }
    let last = last.expect("at least the final message");
    assert!(last.finished);
    let report = last.report.expect("report");
    assert_eq!(report.scanned, 3);
    assert_eq!(report.changed, 1);
    assert_eq!(report.errors, 0, "the bad file is unchanged: not reread");
    assert_eq!(report.errors_recorded, 1, "but still counted");
    assert_eq!(scanner.scans_completed(), 2);

    let unknown = client
        .rescan_origin(pb::RescanOriginRequest {
            origin: "nope".into(),
        })
        .await;
    assert_eq!(
        unknown.expect_err("unknown origin").code(),
        tonic::Code::NotFound
    );

    let reply = client
        .shutdown(pb::ShutdownRequest {
            drain_timeout_ms: 100,
        })
        .await
        .expect("Shutdown")
        .into_inner();
    assert!(reply.drained);
    assert_eq!(stop_rx.recv().await, Some(StopCause::Rpc));

    let _ = server_stop.send(());
    server.await.expect("join").expect("server");
}

#[tokio::test]
async fn connect_without_daemon_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("none.sock");
    match socket::connect(&sock).await {
        Err(Error::NoDaemon { socket }) => assert_eq!(socket, sock),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}
