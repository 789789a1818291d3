//! musicfs end-to-end tests: a real `musicfs` binary mounts the generated
//! corpus over FUSE, and real tools (cmp, ffprobe, mutagen, sh, coreutils)
//! read the mount. Each test has its own tempdir, catalog, socket and log.
//! They skip, saying so, only when /dev/fuse or fusermount3 is absent.

mod beets;
mod cache;
mod covers;
mod lifecycle;
mod live;
mod origin_s3;
mod origin_sftp;
mod origin_webdav;
mod overlay;
mod prefetch;
mod readonly;
mod reads;
mod remote;
mod search;
mod surface;
mod tree;
mod virtual_dirs;
