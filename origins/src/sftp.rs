//! SFTP origin (russh + russh-sftp): key or password auth, the server's
//! host key checked against a known_hosts file, a small pool of sessions.
//! STUB: to be written.
use crate::remote::{Cancel, RemoteOptions};
use crate::{Entry, Origin, OriginKind, Result, Secret};
use std::path::PathBuf;

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

pub struct SftpOrigin {
    cfg: SftpConfig,
    cancel: Cancel,
}

impl SftpOrigin {
    /// Checks the settings (key file readable, known_hosts present); does
    /// not connect: the first call does, so a mount never waits for a
    /// server that is down.
    pub fn new(cfg: SftpConfig) -> Result<SftpOrigin> {
        Ok(SftpOrigin {
            cfg,
            cancel: Cancel::default(),
        })
    }
}

impl Origin for SftpOrigin {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::Sftp
    }
    fn location(&self) -> String {
        format!(
            "sftp://{}@{}:{}/{}",
            self.cfg.user,
            self.cfg.host,
            self.cfg.port,
            self.cfg.root.trim_start_matches('/')
        )
    }
    fn list(&self) -> Result<Vec<Entry>> {
        todo!()
    }
    fn stat(&self, _rel_path: &[u8]) -> Result<Entry> {
        todo!()
    }
    fn read_at(&self, _rel_path: &[u8], _offset: u64, _buf: &mut [u8]) -> Result<usize> {
        todo!()
    }
    fn cancel(&self) {
        self.cancel.fire();
    }
}
