//! HTTP/WebDAV origin (OpenDAL): PROPFIND listings, ranged GETs.
//!
//! The collection URL is OpenDAL's endpoint as given (root `/`), so a path
//! already percent-encoded in the URL is not encoded twice, and the hrefs
//! of PROPFIND answers are cut at the same server path. Credentials travel
//! only as a basic-auth header built from [`WebDavConfig`]; a URL carrying
//! `user:pass@` is refused, since URLs end up in logs and `config show`.
use crate::dal::DalClient;
use crate::remote::RemoteOptions;
use crate::{Entry, Error, Origin, OriginKind, Result, Secret};
use opendal::Operator;

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
    client: DalClient,
}

impl WebDavOrigin {
    /// Builds the client; does not contact the server.
    pub fn new(cfg: WebDavConfig) -> Result<WebDavOrigin> {
        let config_error = |message: &str| Error::Config {
            origin: cfg.name.clone(),
            message: message.to_string(),
        };
        let endpoint = checked_url(&cfg.url).map_err(config_error)?;
        let mut builder = opendal::services::Webdav::default()
            .endpoint(endpoint)
            .root("/")
            // Never used (musicfs does not write), but say so.
            .disable_create_dir(true);
        let mut secrets = Vec::new();
        match (&cfg.user, &cfg.password) {
            (Some(user), password) => {
                builder = builder.username(user);
                if let Some(password) = password {
                    builder = builder.password(password.expose());
                    secrets.push(password.clone());
                    // A server echoing the Authorization header would show this.
                    secrets.push(Secret::new(basic_credentials(user, password)));
                }
            }
            (None, Some(_)) => return Err(config_error("a password is given without a user")),
            (None, None) => {}
        }
        let op = Operator::new(builder)
            .map_err(|_| config_error("cannot build a WebDAV client for this URL"))?;
        let client = DalClient::new(cfg.name.clone(), op, cfg.remote.clone(), secrets);
        Ok(WebDavOrigin { cfg, client })
    }
}

/// The URL without its trailing `/`, refusing anything but a plain
/// `http(s)://host[:port]/path` (no credentials, query or fragment). Never
/// echoes the URL: it may hold a password.
fn checked_url(url: &str) -> std::result::Result<&str, &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("the WebDAV URL must start with http:// or https://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the WebDAV URL must not carry credentials (user:pass@): give user and password apart",
        );
    }
    if authority.is_empty() {
        return Err("the WebDAV URL has no host");
    }
    if url.contains(['?', '#']) {
        return Err("the WebDAV URL must not have a query or fragment");
    }
    Ok(url.trim_end_matches('/'))
}

/// `base64(user:password)`, the basic-auth value, for scrubbing only.
fn basic_credentials(user: &str, password: &Secret) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{}", password.expose());
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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
    /// A recursive walk with PROPFIND (depth 1 per collection). OpenDAL
    /// reports a missing collection as empty, and an empty listing must
    /// never stand for a vanished root (a rescan would drop the whole
    /// library): when the server named nothing at all, not even the root
    /// itself, the root is checked.
    fn list(&self) -> Result<Vec<Entry>> {
        let (files, named) = self.client.list()?;
        if named == 0 {
            self.client.ping_root()?;
        }
        Ok(files)
    }
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        self.client.stat(rel_path)
    }
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.client.read_at(rel_path, offset, buf)
    }
    /// A PROPFIND of the root.
    fn ping(&self) -> Result<()> {
        self.client.ping_root()
    }
    fn cancel(&self) {
        self.client.cancel.fire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> WebDavConfig {
        WebDavConfig {
            name: "dav".into(),
            url: url.into(),
            user: Some("u".into()),
            password: Some(Secret::new("pa55word")),
            remote: RemoteOptions::default(),
        }
    }

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        let err = WebDavOrigin::new(cfg("http://u:topsecret@127.0.0.1:8080/music/"))
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(!err.to_string().contains("topsecret"), "{err}");
        for bad in ["ftp://h/", "http:///x", "http://h/x?a=b"] {
            assert!(WebDavOrigin::new(cfg(bad)).is_err(), "{bad}");
        }
        assert!(WebDavOrigin::new(cfg("http://127.0.0.1:8080/music/")).is_ok());
        assert!(WebDavOrigin::new(cfg("https://nas.local/dav/Mus%C3%ADc")).is_ok());
    }

    #[test]
    fn basic_credentials_encode_like_base64() {
        let b = |u: &str, p: &str| basic_credentials(u, &Secret::new(p));
        assert_eq!(b("Aladdin", "open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(b("a", "b"), "YTpi");
        assert_eq!(b("ab", "c"), "YWI6Yw==");
    }
}
