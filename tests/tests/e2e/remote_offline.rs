//! Mounting while a remote origin is unreachable: the tree comes from the
//! catalog of an earlier mount, cached files read from the chunk cache,
//! uncached ones fail with EIO within the deadline, `origins` says the
//! origin is down; when it comes back it is up again and everything reads.
use super::{DAV_PASS, DAV_USER};
use musicfs_tests::faultproxy::FaultProxy;
use musicfs_tests::remote::{
    drop_page_cache, mount_configured, served_dir, sftp_origin, wait_health, webdav_origin,
    write_config, FAST,
};
use musicfs_tests::servers::sshd::Sshd;
use musicfs_tests::servers::webdav::WebDav;
use musicfs_tests::{corpus, fsutil, note, require_fuse, tools, CorpusFile, Env};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Four plain tracks of the corpus, copied under `root`.
fn fill(root: &Path) -> Vec<&'static CorpusFile> {
    let c = corpus();
    let tracks: Vec<&CorpusFile> = c
        .audio()
        .filter(|f| f.predictable() && f.collision.is_none())
        .take(4)
        .collect();
    assert_eq!(tracks.len(), 4);
    for f in &tracks {
        let dest = root.join(&f.path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(c.origin_path(f), &dest).unwrap();
    }
    musicfs_tests::remote::open_tree(root);
    tracks
}

/// Every path of the mounted tree (`ls -R`).
fn tree(root: &Path) -> BTreeSet<String> {
    fsutil::walk(root, true)
        .into_iter()
        .map(|f| f.rel)
        .collect()
}

/// The whole story for origin `name` (configured in `env` behind `proxy`):
/// mount, cache one track, unmount; `outage`; mount again and check the
/// offline behaviour; `proxy.pass()` and check the recovery.
fn offline_then_back(
    env: &Env,
    name: &str,
    proxy: &FaultProxy,
    outage: fn(&FaultProxy),
    tracks: &[&CorpusFile],
) {
    let c = corpus();
    let cached = tracks[0];
    // Not from `cached`'s album: opening a track prefetches the next ones
    // of its folder, which would leave nothing uncached there.
    let folder = |f: &CorpusFile| {
        let p = f.default_path();
        p.rsplit_once('/').map(|(dir, _)| dir.to_string())
    };
    let uncached = *tracks
        .iter()
        .find(|t| folder(t) != folder(cached))
        .expect("a track from another album");
    let before = {
        let m = mount_configured(env);
        env.wait_scans(1);
        let before = tree(m.root());
        assert!(
            tools::cmp(
                &m.root().join(cached.default_path()),
                &c.origin_path(cached)
            ),
            "{} differs from its source",
            cached.default_path()
        );
        for f in tracks {
            assert!(before.contains(&f.default_path()), "{}", f.default_path());
        }
        before
    };
    // The first daemon has exited (the guard waited for it).
    outage(proxy);

    let m = mount_configured(env);
    let root = m.root();
    // Read at once, before anything has found the origin down: this read
    // meets the outage itself and must give up within the deadline.
    let uncached_path = root.join(uncached.default_path());
    let start = Instant::now();
    let err = std::fs::read(&uncached_path).expect_err("an uncached track cannot be read offline");
    let failed_in = start.elapsed();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EIO),
        "reading an uncached track offline: {err}"
    );
    assert!(
        failed_in < Duration::from_secs(15),
        "the offline read failed only after {failed_in:?}"
    );
    assert_eq!(
        tree(root),
        before,
        "the offline mount lists the catalog's tree"
    );
    let cached_path = root.join(cached.default_path());
    drop_page_cache(&cached_path);
    assert!(
        tools::cmp(&cached_path, &c.origin_path(cached)),
        "the cached track read offline differs from its source"
    );
    let down_in = wait_health(env, name, "down", Duration::from_secs(15));
    // Still the whole tree after the failed scan and reads.
    assert_eq!(tree(root), before, "the tree after the failed reads");

    proxy.pass();
    let up_in = wait_health(env, name, "up", Duration::from_secs(15));
    drop_page_cache(&uncached_path);
    assert!(
        tools::cmp(&uncached_path, &c.origin_path(uncached)),
        "the uncached track read after the origin came back differs from its source"
    );
    assert_eq!(tree(root), before, "the tree after the origin came back");
    note(&format!(
        "remote: offline {name}: an uncached read at mount failed (EIO) in {failed_in:?}, \
         down reported {down_in:?} later, up again {up_in:?} after the proxy passed"
    ));
    assert!(
        up_in < Duration::from_secs(10),
        "{name} took {up_in:?} to be up again"
    );
}

/// SFTP whose server vanishes without a word (a blackhole: every packet
/// held, nothing refused): the hard case, only timeouts tell.
#[test]
fn offline_sftp_blackhole_serves_the_cache_and_recovers() {
    require_fuse!();
    let root = served_dir("musicfs-remote-off-");
    let tracks = fill(root.path());
    let sshd = Sshd::start(root.path());
    let proxy = FaultProxy::start(([127, 0, 0, 1], sshd.port()).into());
    let env = Env::new();
    write_config(
        &env,
        "",
        "",
        &sftp_origin("nas", &sshd, proxy.port(), root.path(), FAST),
    );
    offline_then_back(&env, "nas", &proxy, FaultProxy::blackhole, &tracks);
}

/// WebDAV whose server refuses connections (a host up, the service down).
#[test]
fn offline_webdav_refused_serves_the_cache_and_recovers() {
    require_fuse!();
    let root = tempfile::tempdir().unwrap();
    let tracks = fill(root.path());
    let dav = WebDav::start(root.path(), DAV_USER, DAV_PASS);
    let proxy = FaultProxy::start(([127, 0, 0, 1], dav.port()).into());
    let env = Env::new();
    let url = format!("http://127.0.0.1:{}/", proxy.port());
    write_config(
        &env,
        "",
        "",
        &webdav_origin("dav", &url, DAV_USER, DAV_PASS, FAST),
    );
    offline_then_back(&env, "dav", &proxy, FaultProxy::refuse, &tracks);
}
