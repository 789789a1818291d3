//! What the play log needs from open handles: which track each handle is
//! on and how many bytes were read through the daemon (passthrough reads
//! never reach us, so those handles report 0).
use musicfs_index::FileId;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Plays {
    handles: Mutex<HashMap<u64, (FileId, u64)>>,
}

impl Plays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (FileId, u64)>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn opened(&self, fh: u64, file: FileId) {
        self.lock().insert(fh, (file, 0));
    }

    pub(crate) fn read(&self, fh: u64, bytes: u64) {
        if let Some((_, n)) = self.lock().get_mut(&fh) {
            *n += bytes;
        }
    }

    /// The handle's track and bytes read, forgetting the handle.
    pub(crate) fn released(&self, fh: u64) -> Option<(FileId, u64)> {
        self.lock().remove(&fh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virt_plays_count_bytes_per_handle() {
        let p = Plays::default();
        p.opened(1, 10);
        p.opened(2, 20);
        p.read(1, 100);
        p.read(1, 50);
        p.read(3, 7); // not a track handle
        assert_eq!(p.released(1), Some((10, 150)));
        assert_eq!(p.released(1), None);
        assert_eq!(p.released(2), Some((20, 0)));
    }
}
