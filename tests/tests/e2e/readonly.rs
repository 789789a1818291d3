//! Every write operation through the mount answers EROFS, and the origin is
//! left exactly as it was.
use musicfs_tests::{corpus, fsutil, require_fuse, tools, Env};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// Turns a libc return value into an io::Result.
fn libc_result(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn assert_erofs(what: &str, result: io::Result<()>) {
    match result {
        Ok(()) => panic!("{what}: succeeded on a read-only mount"),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EROFS),
            "{what}: expected EROFS, got {e}"
        ),
    }
}

#[test]
fn every_write_operation_gives_erofs_and_the_origin_is_untouched() {
    require_fuse!();
    let c = corpus();
    let before = fsutil::snapshot(&c.dir);
    let env = Env::new();
    let m = env.mount(&c.dir, &[]);
    env.wait_scans(1);

    let target = c
        .audio()
        .find(|f| f.predictable() && f.format == "flac")
        .expect("a predictable FLAC");
    let rel = target.default_path();
    let file = m.root().join(&rel);
    let album = file.parent().expect("album dir").to_path_buf();
    let artist = album.parent().expect("artist dir").to_path_buf();
    let root = m.root().to_path_buf();
    assert!(file.is_file(), "{rel} is not in the mount");

    let ops: Vec<(&str, io::Result<()>)> = vec![
        (
            "fs::write new file",
            std::fs::write(album.join("new.flac"), b"x"),
        ),
        ("fs::write existing file", std::fs::write(&file, b"x")),
        (
            "open for write",
            OpenOptions::new().write(true).open(&file).map(drop),
        ),
        (
            "open for append",
            OpenOptions::new().append(true).open(&file).map(drop),
        ),
        (
            "open with truncate",
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&file)
                .map(drop),
        ),
        (
            "create_new",
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(root.join("x.mp3"))
                .map(drop),
        ),
        ("remove_file", std::fs::remove_file(&file)),
        (
            "rename file",
            std::fs::rename(&file, album.join("renamed.flac")),
        ),
        (
            "rename dir",
            std::fs::rename(&album, artist.join("Renamed")),
        ),
        (
            "create_dir at root",
            std::fs::create_dir(root.join("newdir")),
        ),
        (
            "create_dir in album",
            std::fs::create_dir(album.join("sub")),
        ),
        ("remove_dir", std::fs::remove_dir(&album)),
        (
            "set_permissions file",
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)),
        ),
        (
            "set_permissions dir",
            std::fs::set_permissions(&album, std::fs::Permissions::from_mode(0o700)),
        ),
        (
            "symlink",
            std::os::unix::fs::symlink("/etc/passwd", album.join("link")),
        ),
        (
            "hard_link",
            std::fs::hard_link(&file, album.join("hard.flac")),
        ),
        // SAFETY (the libc calls below): valid NUL-terminated paths and
        // buffers that outlive each call.
        (
            "setxattr",
            libc_result(unsafe {
                libc::setxattr(
                    c_path(&file).as_ptr(),
                    c"user.musicfs".as_ptr(),
                    b"x".as_ptr().cast(),
                    1,
                    0,
                )
            }),
        ),
        (
            "removexattr",
            libc_result(unsafe {
                libc::removexattr(c_path(&file).as_ptr(), c"user.musicfs".as_ptr())
            }),
        ),
        (
            "truncate",
            libc_result(unsafe { libc::truncate(c_path(&file).as_ptr(), 0) }),
        ),
        (
            "chown",
            libc_result(unsafe { libc::chown(c_path(&file).as_ptr(), 1, 1) }),
        ),
        (
            "utimensat",
            libc_result(unsafe {
                libc::utimensat(libc::AT_FDCWD, c_path(&file).as_ptr(), std::ptr::null(), 0)
            }),
        ),
        (
            "mknod fifo",
            libc_result(unsafe {
                libc::mknod(
                    c_path(&album.join("fifo")).as_ptr(),
                    libc::S_IFIFO | 0o644,
                    0,
                )
            }),
        ),
    ];
    for (what, result) in ops {
        assert_erofs(what, result);
    }

    // The same through a shell, as a user would.
    let shell: [(&str, &str); 8] = [
        ("touch existing", r#"touch "$1""#),
        ("touch new", r#"touch "$2/new.mp3""#),
        ("mv", r#"mv "$1" "$2/moved.flac""#),
        ("cp into", r#"cp /etc/hostname "$2/""#),
        ("rm", r#"rm -f "$1""#),
        ("mkdir", r#"mkdir "$2/d""#),
        ("ln -s", r#"ln -s x "$2/l""#),
        ("append", r#"echo x >> "$1""#),
    ];
    for (what, script) in shell {
        let out = tools::sh(script, &[&file, &album]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: `{script}` succeeded on the mount"
        );
        assert!(
            stderr.contains("Read-only file system"),
            "{what}: `{script}` said: {stderr}"
        );
    }

    // Nothing changed in the mount either.
    assert!(tools::cmp(&c.origin_path(target), &file), "{rel} changed");
    for name in [
        "new.flac",
        "renamed.flac",
        "sub",
        "link",
        "hard.flac",
        "fifo",
        "moved.flac",
        "hostname",
        "d",
        "l",
    ] {
        assert!(
            !album.join(name).exists(),
            "{name} appeared in the album dir"
        );
    }
    drop(m);
    fsutil::assert_same_snapshot(&before, &fsutil::snapshot(&c.dir));
}
