//! The chunk store on a dedicated block device. It grows in its own issue.
