//! S3-compatible origin (OpenDAL): AWS, MinIO, SeaweedFS, Ceph RGW.
//! STUB: to be written.
use crate::remote::{Cancel, RemoteOptions};
use crate::{Entry, Origin, OriginKind, Result, Secret};

/// One S3 origin's settings. Credentials are resolved by the caller
/// (config, environment, credentials file); none means anonymous access.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub name: String,
    /// e.g. `http://127.0.0.1:8333`; `None` = AWS for `region`.
    pub endpoint: Option<String>,
    /// Default "us-east-1".
    pub region: String,
    pub bucket: String,
    /// Key prefix served as the root ("" = the whole bucket), no leading `/`.
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`), which most self-hosted
    /// servers need. Default true.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub remote: RemoteOptions,
}

pub struct S3Origin {
    cfg: S3Config,
    cancel: Cancel,
}

impl S3Origin {
    /// Builds the client; does not contact the server.
    pub fn new(cfg: S3Config) -> Result<S3Origin> {
        Ok(S3Origin {
            cfg,
            cancel: Cancel::default(),
        })
    }
}

impl Origin for S3Origin {
    fn name(&self) -> &str {
        &self.cfg.name
    }
    fn kind(&self) -> OriginKind {
        OriginKind::S3
    }
    fn location(&self) -> String {
        let ep = self.cfg.endpoint.as_deref().unwrap_or("aws");
        format!("s3://{}/{} ({ep})", self.cfg.bucket, self.cfg.prefix)
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
