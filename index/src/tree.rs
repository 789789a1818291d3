//! Virtual tree sync.
