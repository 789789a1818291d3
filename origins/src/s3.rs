//! S3-compatible origin (OpenDAL): AWS, MinIO, SeaweedFS, Ceph RGW.
//!
//! Credentials come only from [`S3Config`]: OpenDAL's own loading (the
//! `AWS_*` environment, `~/.aws` files, instance metadata) is switched off,
//! because musicfs resolves credentials itself and a daemon must not pick
//! up whatever a shell happened to export. No credentials means unsigned
//! (anonymous) requests.
//!
//! The calls themselves go through [`DalClient`] (`dal.rs`), shared with
//! the WebDAV origin.
use crate::dal::{describe, DalClient};
use crate::remote::RemoteOptions;
use crate::{Entry, Error, Origin, OriginKind, Result, Secret};
use opendal::Operator;

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
    client: DalClient,
}

impl S3Origin {
    /// Builds the client; does not contact the server.
    pub fn new(cfg: S3Config) -> Result<S3Origin> {
        let config_error = |message: String| Error::Config {
            origin: cfg.name.clone(),
            message,
        };
        if cfg.bucket.is_empty() {
            return Err(config_error("the bucket is empty".into()));
        }
        let region = if cfg.region.is_empty() {
            "us-east-1"
        } else {
            &cfg.region
        };
        let mut builder = opendal::services::S3::default()
            .bucket(&cfg.bucket)
            .region(region)
            .root(&format!("/{}", cfg.prefix.trim_matches('/')))
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if !cfg.path_style {
            builder = builder.enable_virtual_host_style();
        }
        let mut secrets = Vec::new();
        match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder.access_key_id(id).secret_access_key(secret.expose());
                secrets.push(secret.clone());
            }
            (None, None) => builder = builder.skip_signature(),
            _ => {
                return Err(config_error(
                    "give both an access key id and a secret access key, or neither".into(),
                ))
            }
        }
        let op = Operator::new(builder).map_err(|e| config_error(describe(&e, &secrets)))?;
        let client = DalClient::new(cfg.name.clone(), op, cfg.remote.clone(), secrets);
        Ok(S3Origin { cfg, client })
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
    /// Every object under the prefix whose key does not end in `/`, with
    /// no component starting with `.`.
    fn list(&self) -> Result<Vec<Entry>> {
        self.client.list().map(|(files, _)| files)
    }
    fn stat(&self, rel_path: &[u8]) -> Result<Entry> {
        self.client.stat(rel_path)
    }
    fn read_at(&self, rel_path: &[u8], offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.client.read_at(rel_path, offset, buf)
    }
    /// One `ListObjectsV2` with `max-keys=1`: proves the endpoint answers,
    /// the bucket exists and the credentials are accepted.
    fn ping(&self) -> Result<()> {
        self.client.ping_list()
    }
    fn cancel(&self) {
        self.client.cancel.fire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_needs_both_keys_or_none() {
        let cfg = S3Config {
            name: "s3".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: String::new(),
            bucket: "b".into(),
            prefix: "music".into(),
            path_style: true,
            access_key_id: Some("AK".into()),
            secret_access_key: None,
            remote: RemoteOptions::default(),
        };
        assert!(matches!(
            S3Origin::new(cfg.clone()),
            Err(Error::Config { .. })
        ));
        assert!(S3Origin::new(S3Config {
            access_key_id: None,
            ..cfg.clone()
        })
        .is_ok());
        assert!(matches!(
            S3Origin::new(S3Config {
                bucket: String::new(),
                access_key_id: None,
                ..cfg
            }),
            Err(Error::Config { .. })
        ));
    }
}
