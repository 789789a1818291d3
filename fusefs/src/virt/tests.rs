//! The virtual folders over a [`MemTree`] and a fake [`Library`].
use super::*;
use crate::testutil::MemTree;
use musicfs_index::{Counts, FileRecord, Stamp};
use std::sync::atomic::AtomicUsize;

/// MemTree plus `inos_of_file` (which MemTree leaves at the default).
struct Indexed(MemTree);

impl Tree for Indexed {
    fn node(&self, ino: u64) -> musicfs_index::Result<Option<Node>> {
        self.0.node(ino)
    }
    fn lookup(&self, parent: u64, name: &[u8]) -> musicfs_index::Result<Option<Node>> {
        self.0.lookup(parent, name)
    }
    fn children(&self, parent: u64, after: u64, limit: usize) -> musicfs_index::Result<Vec<Node>> {
        self.0.children(parent, after, limit)
    }
    fn file(&self, id: FileId) -> musicfs_index::Result<Option<FileRecord>> {
        self.0.file(id)
    }
    fn counts(&self) -> musicfs_index::Result<Counts> {
        self.0.counts()
    }
    fn inos_of_file(&self, id: FileId) -> musicfs_index::Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut stack = vec![ROOT_INO];
        while let Some(dir) = stack.pop() {
            for c in self.0.children(dir, 0, usize::MAX)? {
                match c.kind {
                    NodeKind::Dir => stack.push(c.ino),
                    NodeKind::File if c.file_id == Some(id) => out.push(c.ino),
                    NodeKind::File => {}
                }
            }
        }
        Ok(out)
    }
}

/// Search: files whose tree path contains the query; `!` is malformed.
#[derive(Default)]
struct FakeLibrary {
    paths: Mutex<Vec<(String, FileId)>>,
    prefetched: Mutex<Vec<Vec<FileId>>>,
    cover_calls: AtomicUsize,
    covers: Mutex<HashMap<u64, Vec<u8>>>,
}

impl Library for FakeLibrary {
    fn search(&self, query: &str, limit: usize) -> std::result::Result<Vec<FileId>, String> {
        if query.contains('!') {
            return Err("bad query".into());
        }
        Ok(self
            .paths
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.contains(query))
            .map(|(_, id)| *id)
            .take(limit)
            .collect())
    }
    fn collections(&self) -> Vec<String> {
        vec!["Recently Added".into(), "bad/name".into()]
    }
    fn collection(&self, name: &str, limit: usize) -> Option<Vec<FileId>> {
        (name == "Recently Added").then(|| {
            let paths = self.paths.lock().unwrap();
            paths.iter().rev().map(|(_, id)| *id).take(limit).collect()
        })
    }
    fn cover(&self, dir: u64, size: CoverSize) -> Option<Arc<[u8]>> {
        self.cover_calls.fetch_add(1, Ordering::SeqCst);
        let covers = self.covers.lock().unwrap();
        let base = covers.get(&dir)?;
        let n = match size {
            CoverSize::Original => base.len(),
            CoverSize::Medium => base.len() / 2,
            CoverSize::Thumbnail => base.len() / 4,
        };
        Some(base[..n].into())
    }
    fn prefetch(&self, files: Vec<FileId>) {
        self.prefetched.lock().unwrap().push(files);
    }
}

struct Rig {
    tree: Arc<Indexed>,
    lib: Arc<FakeLibrary>,
    virt: Virtual,
}

fn stamp() -> Stamp {
    Stamp {
        size: 100,
        mtime_ns: 7,
    }
}

fn rig(paths: &[&str]) -> Rig {
    let tree = Arc::new(Indexed(MemTree::new()));
    let lib = Arc::new(FakeLibrary::default());
    for p in paths {
        let ino = tree.0.add_file(p, 1, p.as_bytes(), stamp());
        let id = tree.0.node(ino).unwrap().unwrap().file_id.unwrap();
        lib.paths.lock().unwrap().push((p.to_string(), id));
    }
    let virt = Virtual::new(tree.clone(), lib.clone());
    Rig { tree, lib, virt }
}

fn path_node(tree: &Indexed, path: &str) -> Node {
    let mut node = tree.node(ROOT_INO).unwrap().unwrap();
    for part in path.split('/') {
        node = tree.lookup(node.ino, part.as_bytes()).unwrap().unwrap();
    }
    node
}

/// Every entry of a virtual folder, read `room` at a time as a small
/// kernel buffer would: (name, ino, cookie).
fn listing(virt: &Virtual, ino: u64, room: usize) -> Vec<(String, u64, u64)> {
    let mut all: Vec<(String, u64, u64)> = Vec::new();
    let mut offset = 0;
    loop {
        let mut page = Vec::new();
        virt.list(ino, offset, |n, cookie, name| {
            if page.len() == room {
                return true;
            }
            page.push((String::from_utf8_lossy(name).into_owned(), n.ino, cookie));
            false
        })
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        let Some(last) = page.last() else { break };
        offset = last.2;
        all.extend(page);
    }
    all
}

fn names(list: &[(String, u64, u64)]) -> Vec<&str> {
    list.iter().skip(2).map(|e| e.0.as_str()).collect()
}

#[test]
fn virt_inodes_decode_and_stay_out_of_the_catalog_range() {
    for ino in [SEARCH_INO, COLLECTIONS_INO, PREFETCH_INO, result_ino(5)] {
        assert!(is_virtual(ino));
    }
    assert_eq!(decode(SEARCH_INO), Some(Ino::Search));
    assert_eq!(decode(PREFETCH_INO), Some(Ino::Mirror(ROOT_INO)));
    assert_eq!(decode(mirror_ino(77)), Some(Ino::Mirror(77)));
    assert_eq!(decode(result_ino(9)), Some(Ino::Result(9)));
    assert_eq!(
        decode(cover_ino(123, CoverSize::Thumbnail)),
        Some(Ino::Cover(123, CoverSize::Thumbnail))
    );
    assert!(is_mirror(mirror_ino(77)) && !is_mirror(result_ino(77)));
    assert!(!is_virtual(123_456_789));
    assert!(is_extra_name(b"cover.jpg") && is_extra_name(b".search"));
    assert!(!is_extra_name(b"01 - Song.flac"));
    assert_eq!(decode(42), None);
}

#[test]
fn virt_search_folder_lists_the_tracks_under_their_own_inodes() {
    let r = rig(&[
        "Queen/Jazz/01 - Mustapha.flac",
        "Queen/Jazz/02 - Fat Bottomed Girls.flac",
        "Blur/Parklife/01 - Girls & Boys.mp3",
    ]);
    let folder = r.virt.lookup(SEARCH_INO, b"Girls").unwrap();
    assert_eq!(folder.kind, NodeKind::Dir);
    assert_eq!(folder.name, b"Girls");
    // The same query is the same folder while remembered.
    assert_eq!(r.virt.lookup(SEARCH_INO, b"Girls").unwrap().ino, folder.ino);
    assert_eq!(r.virt.node(folder.ino).unwrap().unwrap().name, b"Girls");

    let list = listing(&r.virt, folder.ino, 1);
    assert_eq!(list[0], (".".into(), folder.ino, 1));
    assert_eq!(list[1].1, SEARCH_INO, "parent of a search folder");
    assert_eq!(
        names(&list),
        [
            "Queen - Jazz - 02 - Fat Bottomed Girls.flac",
            "Blur - Parklife - 01 - Girls & Boys.mp3"
        ]
    );
    let real = path_node(&r.tree, "Queen/Jazz/02 - Fat Bottomed Girls.flac");
    assert_eq!(list[2].1, real.ino, "hard-link-like: the track's own inode");
    let entry = r
        .virt
        .lookup(folder.ino, b"Queen - Jazz - 02 - Fat Bottomed Girls.flac")
        .unwrap();
    assert_eq!(
        (entry.ino, entry.size, entry.file_id),
        (real.ino, real.size, real.file_id)
    );
    assert!(matches!(
        r.virt.lookup(folder.ino, b"nope.flac"),
        Err(Missing::NotFound)
    ));
    assert!(matches!(
        r.virt.lookup(SEARCH_INO, b"bad!"),
        Err(Missing::BadQuery)
    ));
    // The remembered queries are what `.search` lists.
    assert_eq!(names(&listing(&r.virt, SEARCH_INO, 10)), ["Girls", "bad!"]);
}

#[test]
fn virt_colliding_names_get_suffixes() {
    let r = rig(&["A/B/x.flac", "A/B/x.flac"]);
    let folder = r.virt.lookup(SEARCH_INO, b"x").unwrap();
    let list = listing(&r.virt, folder.ino, 10);
    assert_eq!(names(&list), ["A - B - x.flac", "A - B - x (2).flac"]);
    assert_ne!(list[2].1, list[3].1);
}

#[test]
fn virt_collections_list_valid_names_and_their_tracks() {
    let r = rig(&["A/B/1.flac", "A/B/2.flac"]);
    let list = listing(&r.virt, COLLECTIONS_INO, 10);
    assert_eq!(
        names(&list),
        ["Recently Added"],
        "a name with / is not shown"
    );
    let folder = r.virt.lookup(COLLECTIONS_INO, b"Recently Added").unwrap();
    assert_eq!(folder.ino, list[2].1);
    assert_eq!(
        names(&listing(&r.virt, folder.ino, 10)),
        ["A - B - 2.flac", "A - B - 1.flac"]
    );
    assert!(matches!(
        r.virt.lookup(COLLECTIONS_INO, b"Nope"),
        Err(Missing::NotFound)
    ));
}

#[test]
fn virt_result_folders_are_bounded() {
    let r = rig(&["A/B/1.flac"]);
    let first = r.virt.lookup(SEARCH_INO, b"q0").unwrap().ino;
    for i in 1..=REMEMBERED {
        r.virt
            .lookup(SEARCH_INO, format!("q{i}").as_bytes())
            .unwrap();
    }
    assert!(r.virt.node(first).unwrap().is_none(), "oldest forgotten");
    assert_eq!(r.virt.folders().by_id.len(), REMEMBERED);
    let again = r.virt.lookup(SEARCH_INO, b"q0").unwrap().ino;
    assert_ne!(again, first, "a forgotten folder's inode is not reused");
}

#[test]
fn virt_prefetch_lookup_of_an_album_prefetches_its_files_in_name_order() {
    let r = rig(&["Art/Alb/02.flac", "Art/Alb/01.flac", "Art/Other/01.flac"]);
    let artist = r.virt.lookup(PREFETCH_INO, b"Art").unwrap();
    assert_eq!(artist.ino, mirror_ino(path_node(&r.tree, "Art").ino));
    assert_eq!(artist.parent, PREFETCH_INO);
    assert!(
        r.lib.prefetched.lock().unwrap().is_empty(),
        "an artist folder holds no tracks itself"
    );
    let album = r.virt.lookup(artist.ino, b"Alb").unwrap();
    assert_eq!(album.kind, NodeKind::Dir);
    let id = |p: &str| path_node(&r.tree, p).file_id.unwrap();
    assert_eq!(
        *r.lib.prefetched.lock().unwrap(),
        vec![vec![id("Art/Alb/01.flac"), id("Art/Alb/02.flac")]]
    );
    let file = r.virt.lookup(album.ino, b"02.flac").unwrap();
    assert_eq!(file.ino, path_node(&r.tree, "Art/Alb/02.flac").ino);
    assert_eq!(
        r.lib.prefetched.lock().unwrap().last().unwrap(),
        &vec![id("Art/Alb/02.flac")]
    );
    // The mirror lists like the tree, with mirrored folders.
    let list = listing(&r.virt, artist.ino, 1);
    assert_eq!(names(&list), ["Alb", "Other"]);
    assert!(list[2..].iter().all(|e| is_mirror(e.1)));
    assert_eq!(list[1].1, PREFETCH_INO);
    assert_eq!(names(&listing(&r.virt, PREFETCH_INO, 10)), ["Art"]);
    assert!(
        r.lib.prefetched.lock().unwrap().len() == 2,
        "listing prefetches nothing"
    );
    assert!(matches!(
        r.virt.lookup(album.ino, b"03.flac"),
        Err(Missing::NotFound)
    ));
}

#[test]
fn virt_covers_only_in_album_folders_and_a_real_file_wins() {
    let r = rig(&["Art/Alb/01.flac", "Art/Bare/01.flac", "Art2/Alb2/cover.jpg"]);
    let alb = path_node(&r.tree, "Art/Alb");
    let alb2 = path_node(&r.tree, "Art2/Alb2");
    let cover = b"\xFF\xD8 jpeg bytes, twenty".to_vec();
    r.lib.covers.lock().unwrap().insert(alb.ino, cover.clone());
    r.lib.covers.lock().unwrap().insert(alb2.ino, cover.clone());

    let artist = path_node(&r.tree, "Art");
    assert!(r.virt.extras(&artist).unwrap().is_empty());
    assert_eq!(
        r.lib.cover_calls.load(Ordering::SeqCst),
        0,
        "no tracks, no cover asked"
    );

    let extras = r.virt.extras(&alb).unwrap();
    let shown: Vec<(&[u8], u64)> = extras.iter().map(|n| (&n.name[..], n.size)).collect();
    let len = cover.len() as u64;
    assert_eq!(
        shown,
        [
            (&b"cover.jpg"[..], len),
            (&b".cover-medium.jpg"[..], len / 2),
            (&b".cover-thumb.jpg"[..], len / 4)
        ]
    );
    assert!(r
        .virt
        .extras(&path_node(&r.tree, "Art/Bare"))
        .unwrap()
        .is_empty());
    let looked = r.virt.lookup_extra(&alb, b"cover.jpg").unwrap().unwrap();
    assert_eq!(looked.ino, extras[0].ino);
    assert_eq!(r.virt.node(looked.ino).unwrap().unwrap().size, len);
    assert!(r
        .virt
        .lookup_extra(&artist, b"cover.jpg")
        .unwrap()
        .is_none());

    let fh = r.virt.open(looked.ino).ok().unwrap();
    assert!(fh & VIRT != 0);
    assert_eq!(r.virt.read(fh, 0, 4096).unwrap(), cover);
    assert_eq!(r.virt.read(fh, 2, 3).unwrap(), &cover[2..5]);
    assert_eq!(r.virt.read(fh, 1000, 10).unwrap(), b"");
    r.virt.release(fh);
    assert_eq!(r.virt.read(fh, 0, 10), None);

    // The real cover.jpg in Alb2 wins: only the hidden renditions are added.
    let names: Vec<Vec<u8>> = r
        .virt
        .extras(&alb2)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(
        names,
        [b".cover-medium.jpg".to_vec(), b".cover-thumb.jpg".to_vec()]
    );
}

#[test]
fn virt_root_extras_are_the_dot_folders() {
    let r = rig(&["A/B/1.flac"]);
    let root = r.tree.node(ROOT_INO).unwrap().unwrap();
    let extras = r.virt.extras(&root).unwrap();
    let names: Vec<&[u8]> = extras.iter().map(|n| &n.name[..]).collect();
    assert_eq!(names, [&b".search"[..], b".collections", b".prefetch"]);
    assert_eq!(
        r.virt
            .lookup_extra(&root, b".prefetch")
            .unwrap()
            .unwrap()
            .ino,
        PREFETCH_INO
    );
    assert!(r.virt.lookup_extra(&root, b".other").unwrap().is_none());
    assert_eq!(
        r.virt.node(PREFETCH_INO).unwrap().unwrap().name,
        b".prefetch"
    );
}
