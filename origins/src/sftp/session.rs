//! The SFTP origin's sessions: connecting (host key checked against
//! known_hosts, then key or password login, then the SFTP subsystem) and
//! the pool that leases them to calls.
use super::{Inner, Login, Site};
use crate::{Error, Result};
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::rawsession::Limits;
use russh_sftp::client::RawSftpSession;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// Largest read request sent; servers cap it further (OpenSSH: 255 KiB).
const READ_CHUNK_MAX: u64 = 64 * 1024;
/// Used when the server does not say how much one read may return: the
/// size every SFTP server must support (draft-ietf-secsh-filexfer).
const READ_CHUNK_DEFAULT: u64 = 32 * 1024;

/// One authenticated SSH connection with its SFTP session.
pub(super) struct Conn {
    // Kept so the connection stays open as long as the session is used.
    ssh: Handle<KnownHostsCheck>,
    pub(super) sftp: RawSftpSession,
    /// Bytes asked for in one read request.
    pub(super) read_chunk: u64,
}

impl Site {
    fn ssh(&self, what: &str, e: ConnectError) -> Error {
        match e {
            ConnectError::HostKey(message) => Error::Refused {
                origin: self.origin.clone(),
                message,
            },
            ConnectError::Ssh(e) => {
                let transient = ssh_error_is_transient(&e);
                self.err(format!("{what}: {e}"), transient, libc::EIO)
            }
        }
    }
}

/// Whether the same connection attempt may work a moment later: network
/// trouble and a server going away are; a negotiation or key problem is not.
fn ssh_error_is_transient(e: &russh::Error) -> bool {
    use russh::Error as E;
    !matches!(
        e,
        E::NoCommonAlgo { .. }
            | E::UnknownKey
            | E::WrongServerSig
            | E::KeyChanged { .. }
            | E::NotAuthenticated
            | E::UnsupportedAuthMethod
            | E::NoAuthMethod
            | E::InvalidConfig(_)
            | E::Keys(_)
            | E::SshKey(_)
            | E::CouldNotReadKey
    )
}

/// A session taken from the pool, with the slot that allows it to exist.
/// Dropped without [`Lease::give_back`], the session is closed.
pub(super) struct Lease {
    pub(super) conn: Arc<Conn>,
    inner: Arc<Inner>,
    _slot: OwnedSemaphorePermit,
}

impl Lease {
    pub(super) async fn take(inner: &Arc<Inner>, site: &Site) -> Result<Lease> {
        let slot = inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        loop {
            let idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(conn) if !conn.ssh.is_closed() => {
                    return Ok(Lease {
                        conn,
                        inner: inner.clone(),
                        _slot: slot,
                    })
                }
                // Closed while idle (server restart, keepalive timeout).
                Some(_) => continue,
                None => break,
            }
        }
        let conn = Arc::new(connect(inner, site).await?);
        Ok(Lease {
            conn,
            inner: inner.clone(),
            _slot: slot,
        })
    }

    pub(super) fn give_back(self) {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.conn.clone());
    }
}

/// Why a connection was refused before authentication.
#[derive(Debug)]
enum ConnectError {
    /// The host key is not trusted; the message says why.
    HostKey(String),
    Ssh(russh::Error),
}

impl From<russh::Error> for ConnectError {
    fn from(e: russh::Error) -> Self {
        ConnectError::Ssh(e)
    }
}

/// Accepts the server only if its key is listed in the known_hosts file.
struct KnownHostsCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
}

impl client::Handler for KnownHostsCheck {
    type Error = ConnectError;

    async fn check_server_key(
        &mut self,
        server: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, ConnectError> {
        let name = known_hosts_name(&self.host, self.port);
        let file = self.known_hosts.display();
        let PublicKeyOrCertificate::PublicKey { key, .. } = server else {
            return Err(ConnectError::HostKey(format!(
                "{name} presented a host certificate; only host keys listed in {file} are accepted"
            )));
        };
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Ok(false) => Err(ConnectError::HostKey(format!(
                "host key for {name} not in {file} (refusing an unknown server; its {} key \
                 fingerprint is {})",
                key.algorithm(),
                key.fingerprint(Default::default())
            ))),
            Err(russh::keys::Error::KeyChanged { line }) => Err(ConnectError::HostKey(format!(
                "host key CHANGED for {name}: the server's key differs from {file} line {line} \
                 (refusing: this may be a man-in-the-middle attack; if the key was really \
                 replaced, update that line)"
            ))),
            Err(e) => Err(ConnectError::HostKey(format!(
                "cannot check the host key for {name} against {file}: {e}"
            ))),
        }
    }
}

/// How known_hosts names a server: bare host on port 22, `[host]:port`
/// otherwise (as OpenSSH writes it).
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Opens, checks and authenticates one connection, and starts SFTP on it.
async fn connect(inner: &Inner, site: &Site) -> Result<Conn> {
    let cfg = &inner.cfg;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let ssh_config = Arc::new(client::Config {
        // Finds dead idle connections; the pool then drops them.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        inactivity_timeout: None,
        // Request/response traffic: waiting to coalesce only adds latency.
        nodelay: true,
        ..Default::default()
    });
    let check = KnownHostsCheck {
        host: cfg.host.clone(),
        port: cfg.port,
        known_hosts: cfg.known_hosts.clone(),
    };
    let mut ssh = client::connect(ssh_config, (cfg.host.as_str(), cfg.port), check)
        .await
        .map_err(|e| site.ssh(&format!("connect {addr}"), e))?;

    let auth = match &inner.login {
        Login::Key(key) => {
            let hash = if key.algorithm().is_rsa() {
                ssh.best_supported_rsa_hash()
                    .await
                    .map_err(|e| site.ssh("authenticate", e.into()))?
                    .flatten()
            } else {
                None
            };
            ssh.authenticate_publickey(&cfg.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
                .await
        }
        Login::Password(p) => ssh.authenticate_password(&cfg.user, p.expose()).await,
    }
    .map_err(|e| site.ssh("authenticate", e.into()))?;
    if !auth.success() {
        let method = match inner.login {
            Login::Key(_) => "key",
            Login::Password(_) => "password",
        };
        return Err(Error::Refused {
            origin: site.origin.clone(),
            message: format!(
                "authentication as {} on {addr} refused ({method})",
                cfg.user
            ),
        });
    }

    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| site.ssh("open a session", e.into()))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| site.ssh("start sftp", e.into()))?;
    let mut sftp = RawSftpSession::new(channel.into_stream());
    // remote::call bounds each attempt; the library's own per-request limit
    // must not cut in first.
    sftp.set_timeout(cfg.remote.timeout.as_secs() + 1);
    let version = sftp.init().await.map_err(|e| site.sftp(e))?;
    let mut read_chunk = READ_CHUNK_DEFAULT;
    let has_limits = version
        .extensions
        .get(russh_sftp::extensions::LIMITS)
        .is_some_and(|v| v == "1");
    if has_limits {
        let limits = Limits::from(sftp.limits().await.map_err(|e| site.sftp(e))?);
        read_chunk = read_chunk_for(limits.read_len);
        sftp.set_limits(limits);
    }
    tracing::debug!(origin = cfg.name, addr, read_chunk, "sftp session opened");
    Ok(Conn {
        ssh,
        sftp,
        read_chunk,
    })
}

fn read_chunk_for(server_max: Option<u64>) -> u64 {
    server_max
        .unwrap_or(READ_CHUNK_DEFAULT)
        .clamp(1, READ_CHUNK_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_names_non_standard_ports_in_brackets() {
        assert_eq!(known_hosts_name("nas.local", 22), "nas.local");
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn read_chunks_stay_within_bounds() {
        assert_eq!(read_chunk_for(None), READ_CHUNK_DEFAULT);
        assert_eq!(read_chunk_for(Some(261_120)), READ_CHUNK_MAX);
        assert_eq!(read_chunk_for(Some(4096)), 4096);
        assert_eq!(read_chunk_for(Some(0)), 1);
    }
}
