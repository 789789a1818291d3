//! Giving freed heap memory back to the kernel.

/// Returns free heap pages to the kernel (glibc keeps them otherwise, so a
/// daemon that once built a 100k-track tree in memory would idle at that
/// peak). Cheap when there is little to release.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own allocator state under its
    // locks; it takes no pointers from us and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
