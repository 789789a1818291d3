//! HTTP/WebDAV origin (OpenDAL): PROPFIND listings, ranged GETs.
//! STUB: to be written.
use crate::remote::{Cancel, RemoteOptions};
use crate::{Entry, Origin, OriginKind, Result, Secret};

/// One WebDAV origin's settings.
#[derive(Debug, Clone)]
pub struct WebDavConfig {
    pub name: String,
    /// The collection served as the root, e.g. `http://127.0.0.1:8080/music/`.
    /// Must not carry credentials (`user:pass@` is refused).
    pub url: String,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub remote: RemoteOptions,
}

pub struct WebDavOrigin {
    cfg: WebDavConfig,
    cancel: Cancel,
}

impl WebDavOrigin {
    /// Builds the client; does not contact the server.
    pub fn new(cfg: WebDavConfig) -> Result<WebDavOrigin> {
        Ok(WebDavOrigin {
            cfg,
            cancel: Cancel::default(),
        })
    }
}

impl Origin for WebDavOrigin {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::WebDav
    }
    fn location(&self) -> String {
        self.cfg.url.clone()
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
