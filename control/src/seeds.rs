//! Headers a remote scan already fetched, kept briefly so the first read
//! of the file takes them from memory instead of fetching them again.
//!
//! A scan of a remote file reads its tags through a `RangeReader`, which
//! holds what it fetched: the file's first bytes up to and past its audio
//! body's start. When the file is read soon after (a player opening a new
//! album, or the re-read after a tag edit, where these bytes are the only
//! new ones), the remote read path asks for them through
//! [`musicfs_fusefs::StoreSource::seed`]. Only the version (size and
//! mtime) they were fetched at is served. Bounded: oldest dropped first.
use musicfs_fusefs::Seed;
use musicfs_index::{OriginId, Stamp};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Bytes held in all.
const MAX_BYTES: usize = 8 << 20;
/// The longest prefix kept per file (a header with big cover art is not
/// worth holding).
pub const MAX_SEED: u64 = 1 << 20;

type Key = (OriginId, Vec<u8>);

#[derive(Default)]
pub struct Seeds {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, (Stamp, Arc<Seed>)>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl Seeds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `seed`, bytes of `rel_path` at version `stamp`.
    pub fn put(&self, origin: OriginId, rel_path: &[u8], stamp: Stamp, seed: Seed) {
        if seed.is_empty() || seed.len() > MAX_BYTES {
            return;
        }
        let mut inner = self.lock();
        let key = (origin, rel_path.to_vec());
        let len = seed.len();
        if let Some((_, old)) = inner.map.insert(key.clone(), (stamp, Arc::new(seed))) {
            inner.bytes -= old.len();
            inner.order.retain(|k| *k != key);
        }
        inner.bytes += len;
        inner.order.push_back(key);
        while inner.bytes > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, b)) = inner.map.remove(&oldest) {
                inner.bytes -= b.len();
            }
        }
    }

    /// The bytes kept for `rel_path` if they are of version `stamp`.
    pub fn get(&self, origin: OriginId, rel_path: &[u8], stamp: Stamp) -> Option<Arc<Seed>> {
        let inner = self.lock();
        let (held, bytes) = inner.map.get(&(origin, rel_path.to_vec()))?;
        (*held == stamp).then(|| bytes.clone())
    }

    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(n: usize, b: u8) -> Seed {
        Seed {
            head: vec![b; n],
            ..Seed::default()
        }
    }

    fn st(m: i64) -> Stamp {
        Stamp {
            size: 100,
            mtime_ns: m,
        }
    }

    #[test]
    fn serves_only_the_version_it_holds_and_stays_bounded() {
        let s = Seeds::default();
        s.put(1, b"a", st(1), head(10, 1));
        assert_eq!(s.get(1, b"a", st(1)).unwrap().len(), 10);
        assert!(s.get(1, b"a", st(2)).is_none());
        assert!(s.get(2, b"a", st(1)).is_none());
        s.put(1, b"a", st(2), head(20, 2));
        assert!(s.get(1, b"a", st(1)).is_none());
        assert_eq!(s.held_bytes(), 20);
        for i in 0..20u8 {
            s.put(1, &[i], st(1), head(1 << 20, 0));
        }
        assert!(s.held_bytes() <= MAX_BYTES);
        assert!(s.get(1, &[0], st(1)).is_none(), "the oldest went first");
        assert!(s.get(1, &[19], st(1)).is_some());
    }
}
