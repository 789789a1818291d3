//! Live changes: files added, retagged, renamed and deleted in the origin
//! show up in the mounted tree without a remount (inotify).
use musicfs_tests::{corpus, fsutil, require_fuse, tools, wait_until, Env};
use std::path::Path;
use std::time::Duration;

/// How long a change in the origin may take to reach the mount.
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);

fn cp(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp {} {}", from.display(), to.display());
}

fn listing(root: &Path) -> String {
    fsutil::files(root)
        .into_keys()
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_present(root: &Path, rel: &str, what: &str) {
    wait_until(&format!("{what}: {rel} to appear"), LIVE_TIMEOUT, || {
        root.join(rel).is_file()
    });
}

fn wait_gone(root: &Path, rel: &str, what: &str) {
    wait_until(&format!("{what}: {rel} to disappear"), LIVE_TIMEOUT, || {
        !root.join(rel).exists()
    });
}

#[test]
fn origin_changes_show_up_in_the_mount() {
    require_fuse!();
    let c = corpus();
    let env = Env::new();
    let origin = env.path().join("origin");
    std::fs::create_dir_all(origin.join("incoming")).expect("mkdir origin");
    let bjork = c.dir.join("Bjork");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&bjork)
        .arg(&origin)
        .status()
        .expect("cp -a");
    assert!(st.success());
    let m = env.mount(&origin, &[]);
    env.wait_scans(1);
    let root = m.root().to_path_buf();
    assert!(
        root.join("Björk/Homogenic/01 - Hunter.flac").is_file(),
        "mount has:\n{}",
        listing(&root)
    );

    // Added: a file without a title tag (its name becomes the title).
    let untitled = c
        .files
        .iter()
        .find(|f| f.path == "misc/untitled_take.flac")
        .expect("corpus file");
    let added = origin.join("incoming/untitled_take.flac");
    cp(&c.origin_path(untitled), &added);
    let rel = "Plain Artist/Plain Album/03 - untitled_take.flac";
    wait_present(&root, rel, "added file");
    wait_until("added file to read back identical", LIVE_TIMEOUT, || {
        tools::cmp(&added, &root.join(rel))
    });

    // Renamed in the origin: the title falls back to the new name.
    let renamed = origin.join("incoming/other_take.flac");
    std::fs::rename(&added, &renamed).expect("rename in origin");
    let rel2 = "Plain Artist/Plain Album/03 - other_take.flac";
    wait_present(&root, rel2, "renamed file");
    wait_gone(&root, rel, "renamed file");
    assert!(
        tools::cmp(&renamed, &root.join(rel2)),
        "renamed file reads back identical"
    );

    // Retagged in place: a new title and a new album move it.
    tools::mutagen_retag(&renamed, &["title=Found Title", "album=Found Album"]);
    let rel3 = "Plain Artist/Found Album/03 - Found Title.flac";
    wait_present(&root, rel3, "retagged file");
    wait_gone(&root, rel2, "retagged file");
    wait_until("retagged file to read back identical", LIVE_TIMEOUT, || {
        tools::cmp(&renamed, &root.join(rel3))
    });
    assert_eq!(
        std::fs::metadata(root.join(rel3)).expect("stat").len(),
        std::fs::metadata(&renamed).expect("stat").len(),
        "size follows the rewritten file"
    );

    // Renamed with its tags intact: same virtual path, still readable.
    let moved = origin.join("Bjork/Homogenic/hunter-renamed.flac");
    std::fs::rename(origin.join("Bjork/Homogenic/01.flac"), &moved).expect("rename in origin");
    let hunter = root.join("Björk/Homogenic/01 - Hunter.flac");
    wait_until(
        "a renamed-but-same-tags file to stay readable",
        LIVE_TIMEOUT,
        || hunter.is_file() && tools::cmp(&moved, &hunter),
    );

    // Deleted.
    std::fs::remove_file(&renamed).expect("delete in origin");
    wait_gone(&root, rel3, "deleted file");
    wait_gone(&root, "Plain Artist/Found Album", "emptied album dir");
    wait_gone(&root, "Plain Artist", "emptied artist dir");

    // The daemon is still healthy after all of that.
    let s = env.status();
    assert_eq!(s["mounted"].as_bool(), Some(true), "status: {s}");
}
