//! Catalog nodes as FUSE attributes.
//!
//! Everything here is derived from the node alone, so `stat` through the
//! mount is exact and stable: the size is the served size, and mtime, ctime
//! and atime are all the node's mtime (nothing ever writes, so nothing moves
//! them).
use fuser::{FileAttr, FileType, INodeNo};
use musicfs_index::{Node, NodeKind};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Preferred I/O size shown by `stat`.
pub(crate) const BLKSIZE: u32 = 4096;

/// Owner shown for every entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub uid: u32,
    pub gid: u32,
}

pub(crate) fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
    }
}

/// Nanoseconds since the epoch (negative before it) as a `SystemTime`.
pub(crate) fn system_time(ns: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

pub(crate) fn node_attr(node: &Node, owner: Owner) -> FileAttr {
    let time = system_time(node.mtime_ns);
    let (perm, nlink) = match node.kind {
        NodeKind::Dir => (0o555, 2),
        NodeKind::File => (0o444, 1),
    };
    FileAttr {
        ino: INodeNo(node.ino),
        size: node.size,
        blocks: node.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: file_type(node.kind),
        perm,
        nlink,
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, size: u64, mtime_ns: i64) -> Node {
        Node {
            ino: 7,
            parent: 1,
            name: b"x".to_vec(),
            kind,
            file_id: None,
            size,
            mtime_ns,
        }
    }

    #[test]
    fn file_attr_is_exact_and_read_only() {
        let owner = Owner {
            uid: 1000,
            gid: 100,
        };
        let a = node_attr(
            &node(NodeKind::File, 1025, 1_700_000_000_123_456_789),
            owner,
        );
        assert_eq!(a.ino, INodeNo(7));
        assert_eq!(a.size, 1025);
        assert_eq!(a.blocks, 3);
        assert_eq!(a.perm, 0o444);
        assert_eq!(a.nlink, 1);
        assert_eq!((a.uid, a.gid), (1000, 100));
        assert_eq!(a.kind, FileType::RegularFile);
        let ns = a.mtime.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        assert_eq!(ns, 1_700_000_000_123_456_789);
        assert_eq!(a.mtime, a.ctime);
        assert_eq!(a.mtime, a.atime);
    }

    #[test]
    fn dir_attr() {
        let a = node_attr(&node(NodeKind::Dir, 0, 0), Owner { uid: 0, gid: 0 });
        assert_eq!(a.perm, 0o555);
        assert_eq!(a.nlink, 2);
        assert_eq!(a.blocks, 0);
        assert_eq!(a.kind, FileType::Directory);
    }

    #[test]
    fn times_before_the_epoch() {
        let t = system_time(-1_500_000_000);
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::new(1, 500_000_000)
        );
        assert_eq!(
            system_time(i64::MIN),
            UNIX_EPOCH - Duration::from_nanos(i64::MIN.unsigned_abs())
        );
    }
}
