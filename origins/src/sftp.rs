//! SFTP origin (russh + russh-sftp): key or password auth, the server's
//! host key checked against a known_hosts file, a small pool of sessions.
//!
//! Every network call goes through [`remote::call`] (time limit per
//! attempt, bounded retries with backoff, a deadline, cancellation). A call
//! leases one authenticated SFTP session from the pool (at most
//! `connections` exist at once), opening one when none is idle; a session
//! that failed below the SFTP level (connection reset, timeout, protocol
//! error) is dropped rather than returned, so the retry opens a fresh one.
//! SFTP status errors (no such file, permission denied) leave the session
//! healthy. Connecting and the pool live in `sftp/session.rs`.
//!
//! Host keys are never accepted blindly: the key the server shows must be
//! listed for `host` (`[host]:port` when the port is not 22) in the
//! configured known_hosts file; an unknown key and a changed key are both
//! refused, without retries.
//!
//! Limits that come from the protocol library: russh-sftp carries names as
//! UTF-8 `String`s (decoding lossily), so files whose names are not UTF-8
//! cannot be named back to the server; `list()` skips them with a warning.
//! Reads open files by name, so a symlink on the server's side of a path is
//! followed there; `list()` and `stat()` never report symlinks, so the
//! catalog never holds a path ending in one. File handles are `String`s
//! there too: OpenSSH's are 4-byte indices, valid UTF-8 while a session has
//! fewer than 128 open at once, which holds since a call keeps at most one
//! open and a session serves one call at a time.
use crate::beneath::check_rel;
use crate::remote::{self, CallSite, Cancel, RemoteOptions};
use crate::{Entry, Error, Origin, OriginKind, Result, Secret};
use russh::keys::PrivateKey;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use session::{Conn, Lease};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

mod session;

/// How to log in.
#[derive(Debug, Clone)]
pub enum SftpAuth {
    /// A private key file (OpenSSH format), optionally encrypted.
    Key {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
    Password(Secret),
}

/// One SFTP origin's settings.
#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub name: String,
    pub host: String,
    /// Default 22.
    pub port: u16,
    pub user: String,
    /// Directory on the server served as the origin's root (absolute, or
    /// relative to the user's home).
    pub root: String,
    pub auth: SftpAuth,
    /// The server's key must be listed here (OpenSSH known_hosts format,
    /// `[host]:port` for non-22 ports); unknown or changed keys are refused.
    pub known_hosts: PathBuf,
    /// Sessions kept open at most. Default 4.
    pub connections: usize,
    pub remote: RemoteOptions,
}

/// Read requests in flight at once on one session, for one call.
const READS_IN_FLIGHT: usize = 16;

pub struct SftpOrigin {
    inner: Arc<Inner>,
}

/// What the calls share; owned by every attempt's future.
struct Inner {
    cfg: SftpConfig,
    cancel: Cancel,
    login: Login,
    /// `root` as joined with relative paths: no trailing `/`; `.` for the
    /// home directory.
    root: String,
    idle: Mutex<Vec<Arc<Conn>>>,
    slots: Arc<Semaphore>,
}

/// The credential, resolved once: a key file is read and decrypted in
/// [`SftpOrigin::new`], not on every connection.
enum Login {
    Key(Arc<PrivateKey>),
    Password(Secret),
}

impl SftpOrigin {
    /// Checks the settings (key file readable, known_hosts present); does
    /// not connect: the first call does, so a mount never waits for a
    /// server that is down.
    pub fn new(cfg: SftpConfig) -> Result<SftpOrigin> {
        let config_err = |message: String| Error::Config {
            origin: cfg.name.clone(),
            message,
        };
        if cfg.host.is_empty() || cfg.user.is_empty() {
            return Err(config_err("sftp: host and user are required".into()));
        }
        if !cfg.known_hosts.is_file() {
            return Err(config_err(format!(
                "sftp: known_hosts file {} is missing: the server's host key must be listed there \
                 (e.g. `ssh-keyscan -p {} {} >> {}`, after checking the key)",
                cfg.known_hosts.display(),
                cfg.port,
                cfg.host,
                cfg.known_hosts.display()
            )));
        }
        let login = match &cfg.auth {
            SftpAuth::Key { path, passphrase } => {
                let key =
                    russh::keys::load_secret_key(path, passphrase.as_ref().map(|p| p.expose()))
                        .map_err(|e| {
                            // russh's messages name the problem, never the passphrase.
                            config_err(format!("sftp: cannot load key {}: {e}", path.display()))
                        })?;
                Login::Key(Arc::new(key))
            }
            SftpAuth::Password(p) => Login::Password(p.clone()),
        };
        let root = cfg.root.trim_end_matches('/');
        let root = match (root.is_empty(), cfg.root.starts_with('/')) {
            (true, true) => "/".to_string(),
            (true, false) => ".".to_string(),
            (false, _) => root.to_string(),
        };
        let slots = Arc::new(Semaphore::new(cfg.connections.max(1)));
        Ok(SftpOrigin {
            inner: Arc::new(Inner {
                cfg,
                cancel: Cancel::default(),
                login,
                root,
                idle: Mutex::new(Vec::new()),
                slots,
            }),
        })
    }

    /// Runs `op` through [`remote::call`] with a leased session: the
    /// session goes back to the pool unless `op` found it broken.
    fn run<T, F, Fut>(&self, op: &'static str, path: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<Conn>, Site) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let inner = self.inner.clone();
        let site = Site {
            origin: inner.cfg.name.clone(),
            op,
            path: path.to_string(),
        };
        let f = Arc::new(f);
        let outer = &self.inner;
        remote::call(
            &outer.cfg.remote,
            &outer.cancel,
            CallSite {
                origin: &outer.cfg.name,
                op,
                path,
            },
            move || {
                let inner = inner.clone();
                let site = site.clone();
                let f = f.clone();
                async move {
                    let lease = Lease::take(&inner, &site).await?;
                    let out = f(lease.conn.clone(), site).await;
                    match &out {
                        Err(Error::Remote {
                            transient: true, ..
                        }) => drop(lease),
                        _ => lease.give_back(),
                    }
                    out
                }
            },
        )
    }

    /// Lists one directory: (name, attributes) of every entry but `.`/`..`.
    fn read_dir(&self, dir: &str) -> Result<Vec<(String, FileAttributes)>> {
        let full = self.inner.full_path(dir);
        self.run("list", dir, move |conn, site| {
            let full = full.clone();
            async move {
                let handle = conn
                    .sftp
                    .opendir(full.as_str())
                    .await
                    .map_err(|e| site.sftp(e))?
                    .handle;
                let mut out = Vec::new();
                let listed = loop {
                    match conn.sftp.readdir(handle.as_str()).await {
                        Ok(name) => out.extend(
                            name.files
                                .into_iter()
                                .filter(|f| f.filename != "." && f.filename != "..")
                                .map(|f| (f.filename, f.attrs)),
                        ),
                        Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => {
                            break Ok(out)
                        }
                        Err(e) => break Err(site.sftp(e)),
                    }
                };
                close(&conn, handle, &site).await?;
                listed
            }
        })
    }
}

impl Inner {
    fn full_path(&self, rel: &str) -> String {
        match (rel.is_empty(), self.root.as_str()) {
            (true, root) => root.to_string(),
            (false, "/") => format!("/{rel}"),
            (false, root) => format!("{root}/{rel}"),
        }
    }
}

/// Closes a file or directory handle; only a broken session is an error.
async fn close(conn: &Conn, handle: String, site: &Site) -> Result<()> {
    match conn.sftp.close(handle).await {
        Ok(_) | Err(SftpError::Status(_)) => Ok(()),
        Err(e) => Err(site.sftp(e)),
    }
}

/// The origin, operation and path a failure is reported against.
#[derive(Clone)]
struct Site {
    origin: String,
    op: &'static str,
    path: String,
}

impl Site {
    fn err(&self, message: String, transient: bool, errno: i32) -> Error {
        Error::Remote {
            origin: self.origin.clone(),
            op: self.op,
            path: self.path.clone(),
            message,
            transient,
            errno,
        }
    }

    /// SFTP status replies are the server's answer about a file (the
    /// session is fine); anything else means the session is not usable.
    fn sftp(&self, e: SftpError) -> Error {
        match e {
            SftpError::Status(s) => {
                let errno = match s.status_code {
                    StatusCode::NoSuchFile => libc::ENOENT,
                    StatusCode::PermissionDenied => libc::EACCES,
                    StatusCode::OpUnsupported => libc::ENOTSUP,
                    _ => libc::EIO,
                };
                let text = if s.error_message.is_empty() {
                    s.status_code.to_string()
                } else {
                    s.error_message
                };
                self.err(text, false, errno)
            }
            other => self.err(format!("sftp session failed: {other}"), true, libc::EIO),
        }
    }
}

/// The relative path as the server's string, refused when it could leave
/// the root or cannot be named over SFTP.
fn rel_str(origin: &str, op: &'static str, rel: &[u8]) -> Result<String> {
    let shown = String::from_utf8_lossy(rel).into_owned();
    let refuse = |message: String| Error::Remote {
        origin: origin.to_string(),
        op,
        path: shown.clone(),
        message,
        transient: false,
        errno: libc::EINVAL,
    };
    check_rel(rel).map_err(|e| refuse(e.to_string()))?;
    String::from_utf8(rel.to_vec())
        .map_err(|_| refuse("SFTP names must be UTF-8 here (russh-sftp)".into()))
}

/// S_IFMT bits of an SFTP permissions field.
fn file_type(attrs: &FileAttributes) -> u32 {
    attrs.permissions.unwrap_or(0) & 0o170000
}
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

fn entry_of(rel_path: Vec<u8>, attrs: &FileAttributes) -> Entry {
    Entry {
        rel_path,
        size: attrs.size.unwrap_or(0),
        mtime_ns: i64::from(attrs.mtime.unwrap_or(0)) * 1_000_000_000,
    }
}

/// Reads into a fresh buffer of up to `len` bytes at `offset` of an open
/// file: requests are pipelined, and a short reply is read on from where
/// it ended, so only EOF ends the buffer early.
async fn read_range(
    conn: &Conn,
    handle: &str,
    offset: u64,
    len: usize,
    site: &Site,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let chunk = conn.read_chunk;
    while out.len() < len {
        let start = offset + out.len() as u64;
        let left = (len - out.len()) as u64;
        let requests = (0..READS_IN_FLIGHT as u64)
            .map(|i| i * chunk)
            .take_while(|at| *at < left)
            .map(|at| {
                let want = chunk.min(left - at) as u32;
                async move { (want, conn.sftp.read(handle, start + at, want).await) }
            });
        let replies = futures::future::join_all(requests).await;
        for (want, reply) in replies {
            match reply {
                Ok(data) => {
                    let got = data.data.len();
                    out.extend_from_slice(&data.data);
                    if got == 0 {
                        return Ok(out);
                    }
                    if got < want as usize {
                        // Later replies start past a gap: read on from here.
                        break;
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => return Ok(out),
                Err(e) => return Err(site.sftp(e)),
            }
        }
    }
    Ok(out)
}

impl Origin for SftpOrigin {
    fn name(&self) -> &str {
        &self.inner.cfg.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Sftp
    }
    fn location(&self) -> String {
        let cfg = &self.inner.cfg;
        format!(
            "sftp://{}@{}:{}/{}",
            cfg.user,
            cfg.host,
            cfg.port,
            cfg.root.trim_start_matches('/')
        )
    }

    /// Regular files in path order; hidden entries, symlinks and other
    /// special files are skipped. One directory read (with its retries)
    /// per directory, so a large library is not one long call.
    fn list(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let listed = match self.read_dir(&dir) {
                Ok(listed) => listed,
                // Below the root, a directory that is unreadable or gone
                // since its parent was read is skipped, as the local origin
                // does; a failing server fails the whole listing, so that a
                // rescan never takes an outage for deleted files.
                Err(e)
                    if !dir.is_empty()
                        && !e.is_transient()
                        && matches!(e.errno(), libc::EACCES | libc::ENOENT) =>
                {
                    tracing::warn!(origin = self.inner.cfg.name, "skipped: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (name, attrs) in listed {
                if name.starts_with('.') {
                    continue;
                }
                let rel = if dir.is_empty() {
                    name.clone()
                } else {
                    format!("{dir}/{name}")
                };
                if name.contains('\u{FFFD}') || name.contains('/') {
                    tracing::warn!(
                        origin = self.inner.cfg.name,
                        path = rel,
                        "skipped: the name is not UTF-8 and cannot be named over SFTP"
                    );
                    continue;
                }
                match file_type(&attrs) {
                    S_IFDIR => dirs.push(rel),
                    S_IFREG => entries.push(entry_of(rel.into_bytes(), &attrs)),
                    _ => {}
                }
            }
        }
        entries.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        Ok(entries)
    }

    /// lstat: a symlink is reported as one (ELOOP), as `list()` skips it.
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        let rel = rel_str(&self.inner.cfg.name, "stat", rel_path)?;
        let full = self.inner.full_path(&rel);
        let rel_bytes = rel_path.to_vec();
        self.run("stat", &rel, move |conn, site| {
            let full = full.clone();
            let rel_bytes = rel_bytes.clone();
            async move {
                let attrs = conn
                    .sftp
                    .lstat(full.as_str())
                    .await
                    .map_err(|e| site.sftp(e))?
                    .attrs;
                match file_type(&attrs) {
                    S_IFREG => Ok(entry_of(rel_bytes, &attrs)),
                    S_IFDIR => Err(site.err("is a directory".into(), false, libc::EISDIR)),
                    S_IFLNK => Err(site.err("is a symlink".into(), false, libc::ELOOP)),
                    _ => Err(site.err("not a regular file".into(), false, libc::EINVAL)),
                }
            }
        })
    }

    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        let rel = rel_str(&self.inner.cfg.name, "read", rel_path)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let full = self.inner.full_path(&rel);
        let len = buf.len();
        let data = self.run("read", &rel, move |conn, site| {
            let full = full.clone();
            async move {
                let handle = conn
                    .sftp
                    .open(full.as_str(), OpenFlags::READ, FileAttributes::empty())
                    .await
                    .map_err(|e| site.sftp(e))?
                    .handle;
                let data = read_range(&conn, &handle, offset, len, &site).await;
                close(&conn, handle, &site).await?;
                data
            }
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    fn ping(&self) -> Result<()> {
        let full = self.inner.full_path("");
        self.run("ping", "", move |conn, site| {
            let full = full.clone();
            async move {
                conn.sftp
                    .stat(full.as_str())
                    .await
                    .map(|_| ())
                    .map_err(|e| site.sftp(e))
            }
        })
    }

    fn cancel(&self) {
        self.inner.cancel.fire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_cannot_leave_the_root() {
        for bad in [
            &b""[..],
            b"..",
            b"a/../../etc/passwd",
            b"./a",
            b"a//b",
            b"/etc/passwd",
            b"a/.",
            b"a\0b",
        ] {
            let e = rel_str("o", "read", bad).unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL, "{bad:?}");
            assert!(!e.is_transient());
        }
        assert_eq!(
            rel_str("o", "read", b"A/B/01 x.flac").unwrap(),
            "A/B/01 x.flac"
        );
        assert_eq!(
            rel_str("o", "read", b"..hidden-ish").unwrap(),
            "..hidden-ish"
        );
    }

    #[test]
    fn non_utf8_names_are_refused_not_mangled() {
        let e = rel_str("o", "read", b"caf\xe9.flac").unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn status_errors_keep_the_session_others_do_not() {
        let site = Site {
            origin: "o".into(),
            op: "read",
            path: "a".into(),
        };
        let missing = SftpError::Status(russh_sftp::protocol::Status {
            id: 1,
            status_code: StatusCode::NoSuchFile,
            error_message: "No such file".into(),
            language_tag: "en".into(),
        });
        let e = site.sftp(missing);
        assert_eq!(e.errno(), libc::ENOENT);
        assert!(!e.is_transient());
        let broken = site.sftp(SftpError::IO("connection reset".into()));
        assert_eq!(broken.errno(), libc::EIO);
        assert!(broken.is_transient());
    }

    fn config(known_hosts: PathBuf, auth: SftpAuth) -> SftpConfig {
        SftpConfig {
            name: "o".into(),
            host: "127.0.0.1".into(),
            port: 2222,
            user: "u".into(),
            root: "/srv/music/".into(),
            auth,
            known_hosts,
            connections: 4,
            remote: RemoteOptions::default(),
        }
    }

    #[test]
    fn new_checks_files_without_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        let pw = SftpAuth::Password(Secret::new("pw"));
        let e = SftpOrigin::new(config(kh.clone(), pw.clone()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("known_hosts"), "{e}");
        std::fs::write(&kh, "").unwrap();
        let o = SftpOrigin::new(config(kh.clone(), pw)).unwrap();
        assert_eq!(o.inner.full_path("a/b.flac"), "/srv/music/a/b.flac");
        assert_eq!(o.location(), "sftp://u@127.0.0.1:2222/srv/music/");
        let key = SftpAuth::Key {
            path: dir.path().join("absent"),
            passphrase: Some(Secret::new("sekrit-passphrase")),
        };
        let e = SftpOrigin::new(config(kh, key)).err().unwrap();
        assert!(matches!(e, Error::Config { .. }));
        assert!(!e.to_string().contains("sekrit"), "{e}");
    }
}
