//! The control socket: binding it safely (private directory, mode 0600,
//! stale sockets replaced, live ones refused), checking the peer's uid, and
//! connecting to it from the CLI.
use crate::error::{Error, Result};
use hyper_util::rt::TokioIo;
use musicfs_proto::v1::musicfs_client::MusicfsClient;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// Creates the socket's directory (0700, only the parts we create: an
/// existing directory such as /tmp is left alone) and clears a stale socket.
/// Fails with [`Error::SocketBusy`] when something answers on it.
pub fn prepare(socket: &Path) -> Result<()> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("create socket directory {}", dir.display()), e))?;
    }
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => Err(Error::SocketBusy {
            socket: socket.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            // Nothing listens (ECONNREFUSED) or it is not a socket we can
            // use: a leftover of a daemon that died. Only ever remove a socket.
            match std::fs::symlink_metadata(socket) {
                Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                    tracing::info!(socket = %socket.display(), "removing stale control socket");
                    std::fs::remove_file(socket).map_err(|e| {
                        Error::io(format!("remove stale socket {}", socket.display()), e)
                    })
                }
                Ok(_) => Err(Error::Usage(format!(
                    "{} exists and is not a socket; choose another --socket",
                    socket.display()
                ))),
                Err(e) => Err(Error::io(format!("stat {}", socket.display()), e)),
            }
        }
    }
}

/// Binds the listener with mode 0600 from the first instant (umask), then
/// makes sure of the mode. Call [`prepare`] first. Must run inside a tokio
/// runtime.
pub fn bind(socket: &Path) -> Result<tokio::net::UnixListener> {
    // The umask is process-wide; nothing else in the daemon creates files
    // while the socket is bound (the scanner starts after).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(socket);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| Error::io(format!("bind {}", socket.display()), e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("chmod {}", socket.display()), e))?;
    Ok(listener)
}

/// Whether a peer with `peer_uid` may use the control API: the daemon's own
/// user and root only.
pub fn peer_allowed(peer_uid: Option<u32>, daemon_uid: u32) -> bool {
    matches!(peer_uid, Some(uid) if uid == daemon_uid || uid == 0)
}

/// A tonic interceptor refusing every request whose peer (SO_PEERCRED) is
/// neither the daemon's user nor root. Fails closed when the credentials
/// are missing.
pub fn check_peer(
    req: tonic::Request<()>,
) -> std::result::Result<tonic::Request<()>, tonic::Status> {
    let uid = req
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| cred.uid());
    if peer_allowed(uid, nix::unistd::geteuid().as_raw()) {
        Ok(req)
    } else {
        tracing::warn!(?uid, "refused control connection from another user");
        Err(tonic::Status::permission_denied(
            "the musicfs control socket serves only its own user and root",
        ))
    }
}

/// A daemon that accepts but never answers counts as none.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to the daemon. [`Error::NoDaemon`] when nothing answers.
pub async fn connect(socket: &Path) -> Result<MusicfsClient<Channel>> {
    let path: PathBuf = socket.to_path_buf();
    let no_daemon = || Error::NoDaemon {
        socket: socket.to_path_buf(),
    };
    // The URI is required by the HTTP/2 layer and never dialled.
    let endpoint = Endpoint::try_from("http://musicfs.invalid")
        .map_err(|_| no_daemon())?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|_| no_daemon())?;
    Ok(MusicfsClient::new(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_user_and_root_are_allowed() {
        assert!(peer_allowed(Some(1000), 1000));
        assert!(peer_allowed(Some(0), 1000));
        assert!(!peer_allowed(Some(1001), 1000));
        assert!(!peer_allowed(None, 1000), "no credentials: refuse");
        assert!(peer_allowed(Some(0), 0));
    }

    #[test]
    fn prepare_creates_private_dir_and_clears_stale_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("run/musicfs/control.sock");
        prepare(&sock).expect("prepare");
        let mode = std::fs::metadata(sock.parent().expect("parent"))
            .expect("stat dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        // A socket nobody listens on any more is stale.
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        assert!(matches!(prepare(&sock), Err(Error::SocketBusy { .. })));
        drop(listener);
        prepare(&sock).expect("stale socket is replaced");
        assert!(!sock.exists());

        // A regular file is never removed.
        std::fs::write(&sock, b"x").expect("write");
        assert!(prepare(&sock).is_err());
        assert!(sock.exists());
    }
}
