//! Names of the entries of a result folder (`/.search/<query>/`,
//! `/.collections/<name>/`).
//!
//! A result folder is flat, so a track's own name ("01 - Intro.flac") is
//! not enough to tell it apart: each entry is named after the track's
//! place in the tree, its last three path components joined by " - "
//! ("<albumartist> - <album> - <file name>" with the default template).
//! That reads well in a file manager and is unique unless two tracks share
//! all three, which a collision suffix settles.
use crate::tree::Tree;
use musicfs_index::{FileId, Node, NodeKind, Result, ROOT_INO};
use std::collections::HashSet;

/// Longest name the kernel accepts.
const NAME_MAX: usize = 255;
/// An extension longer than this is not kept apart when truncating.
const EXT_MAX: usize = 16;
/// Path components a name is made of, counted from the file up.
const DEPTH: usize = 3;

/// The entries for `files` (in their order) inside the folder `folder`:
/// the files' own tree nodes (same inode, size, mtime), renamed and
/// reparented. Files no longer in the tree are left out.
pub(crate) fn result_entries(tree: &dyn Tree, folder: u64, files: &[FileId]) -> Result<Vec<Node>> {
    let mut taken = HashSet::new();
    let mut out = Vec::with_capacity(files.len());
    for &id in files {
        let Some(&ino) = tree.inos_of_file(id)?.first() else {
            continue;
        };
        let Some(node) = tree.node(ino)? else {
            continue;
        };
        if node.kind != NodeKind::File {
            continue;
        }
        let mut parts = vec![node.name.clone()];
        let mut up = node.parent;
        while parts.len() < DEPTH && up != ROOT_INO {
            let Some(dir) = tree.node(up)? else { break };
            parts.push(dir.name);
            up = dir.parent;
        }
        parts.reverse();
        let name = unique(&entry_name(&parts), &mut taken);
        out.push(Node {
            parent: folder,
            name,
            ..node
        });
    }
    Ok(out)
}

/// `parts` joined by " - ", with `/` and NUL replaced, at most
/// [`NAME_MAX`] bytes (the extension kept).
pub(crate) fn entry_name(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut name = parts.join(&b" - "[..]);
    for b in &mut name {
        if *b == b'/' || *b == 0 {
            *b = b'_';
        }
    }
    if name.is_empty() || name == b"." || name == b".." {
        name = b"_".to_vec();
    }
    fit(&name, b"")
}

/// `name`, or `name` with " (2)", " (3)"… before its extension when taken.
fn unique(name: &[u8], taken: &mut HashSet<Vec<u8>>) -> Vec<u8> {
    let mut candidate = name.to_vec();
    let mut n = 2u32;
    while taken.contains(&candidate) {
        candidate = fit(name, format!(" ({n})").as_bytes());
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// `name` with `suffix` before its extension, cut to [`NAME_MAX`] bytes
/// at a character boundary of the stem.
fn fit(name: &[u8], suffix: &[u8]) -> Vec<u8> {
    let (stem, ext) = match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 && name.len() - dot <= EXT_MAX => name.split_at(dot),
        _ => (name, &b""[..]),
    };
    let room = NAME_MAX.saturating_sub(ext.len() + suffix.len());
    let mut cut = stem.len().min(room);
    // Never split a UTF-8 sequence: back up over continuation bytes.
    while cut > 0 && cut < stem.len() && stem[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    [&stem[..cut], suffix, ext].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &[&str]) -> Vec<Vec<u8>> {
        p.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn virt_names_join_and_sanitise() {
        assert_eq!(
            entry_name(&parts(&["Artist", "Album", "01 - Song.flac"])),
            b"Artist - Album - 01 - Song.flac"
        );
        assert_eq!(entry_name(&parts(&["a/b", "c\0d.mp3"])), b"a_b - c_d.mp3");
    }

    #[test]
    fn virt_names_fit_255_bytes_keeping_extension_and_characters() {
        let long = "é".repeat(200); // 400 bytes
        let name = entry_name(&parts(&[&long, "x.flac"]));
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert!(name.ends_with(b".flac"));
        assert!(std::str::from_utf8(&name).is_ok(), "cut inside a character");
        let mut taken = HashSet::new();
        let a = unique(&name, &mut taken);
        let b = unique(&name, &mut taken);
        assert_ne!(a, b);
        assert!(b.len() <= NAME_MAX);
        assert!(b.ends_with(b" (2).flac"), "{}", String::from_utf8_lossy(&b));
        assert!(std::str::from_utf8(&b).is_ok());
    }
}
