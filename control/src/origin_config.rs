//! `[[origins]]`: the config of one origin, and turning it into a running
//! [`ManagedOrigin`] (credentials resolved here: this crate alone reads
//! files and the environment).
//!
//! ```toml
//! [[origins]]                       # a local directory (watched with inotify)
//! name = "music"
//! path = "/srv/music"
//!
//! [[origins]]                       # SFTP
//! name = "nas"
//! kind = "sftp"
//! host = "nas.lan"
//! port = 22
//! user = "music"
//! path = "/volume1/music"           # the remote directory
//! key_file = "~/.ssh/id_ed25519"    # or password / password_file
//! # passphrase = "…"                # for an encrypted key
//! known_hosts = "~/.ssh/known_hosts"
//! connections = 4
//!
//! [[origins]]                       # S3-compatible
//! name = "bucket"
//! kind = "s3"
//! endpoint = "http://127.0.0.1:8333"  # omit for AWS
//! region = "us-east-1"
//! bucket = "music"
//! path = "library/"                 # key prefix ("" = whole bucket)
//! path_style = true
//! # access_key_id / secret_access_key here, else AWS_ACCESS_KEY_ID and
//! # AWS_SECRET_ACCESS_KEY, else credentials_file (default ~/.aws/credentials)
//! # with profile (default $AWS_PROFILE or "default"); none = anonymous.
//!
//! [[origins]]                       # HTTP/WebDAV
//! name = "dav"
//! kind = "webdav"
//! url = "https://dav.example.org/music/"
//! user = "me"
//! password_file = "/etc/musicfs/dav.pass"
//!
//! # Every origin may also set (defaults shown; remote origins only for
//! # the polling, time and retry keys):
//! # priority = 0              # lower is preferred for tracks on several origins
//! # poll_interval_s = 300     # list and compare this often (0 = never)
//! # bandwidth = "0"           # bytes per second, e.g. "10MiB" (0 = unlimited)
//! # concurrency = 4           # calls in flight
//! # timeout_ms = 5000         # one attempt
//! # retries = 3               # after a transient failure
//! # deadline_ms = 10000       # a call with all its retries: readers never wait longer
//! # health_interval_s = 30    # health checks while up (every 2 s while down)
//! ```
//!
//! Secrets (`password`, `passphrase`, `secret_access_key`) are shown as
//! `"<redacted>"` by `musicfs config show` and never logged.
use crate::config::ByteSize;
use crate::error::{Error, Result};
use musicfs_origins::{
    LocalOrigin, ManagedOrigin, Origin, OriginSettings, RemoteOptions, S3Config, S3Origin, Secret,
    SftpAuth, SftpConfig, SftpOrigin, WebDavConfig, WebDavOrigin,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A secret in the config file: read like a string, written as `"<redacted>"`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl Serialize for SecretValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl SecretValue {
    fn secret(&self) -> Secret {
        Secret::new(self.0.clone())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginKindConfig {
    #[default]
    Local,
    Sftp,
    S3,
    Webdav,
}

impl OriginKindConfig {
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKindConfig::Local => "local",
            OriginKindConfig::Sftp => "sftp",
            OriginKindConfig::S3 => "s3",
            OriginKindConfig::Webdav => "webdav",
        }
    }
}

/// `[[origins]]`: one place audio files live. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// Short unique name, shown by `musicfs origins` and used by `musicfs rescan NAME`.
    pub name: String,
    /// `local` (default), `sftp`, `s3` or `webdav`.
    #[serde(default)]
    pub kind: OriginKindConfig,
    /// local: the directory; sftp: the remote directory; s3: the key prefix.
    #[serde(default)]
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<SecretValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretValue>,
    /// A file whose first line is the password (keeps it out of the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_interval_s: Option<u64>,
}

/// Default polling period of remote origins.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);

fn bad(name: &str, key: &str, message: impl Into<String>) -> Error {
    Error::BadValue {
        key: format!("origins.{key}"),
        message: format!("origin {name:?}: {}", message.into()),
    }
}

impl OriginConfig {
    /// A local origin over `path`.
    pub fn local(name: &str, path: &Path) -> OriginConfig {
        OriginConfig {
            name: name.to_string(),
            path: path.to_path_buf(),
            ..OriginConfig::default()
        }
    }

    pub fn is_remote(&self) -> bool {
        self.kind != OriginKindConfig::Local
    }

    /// Checks what each kind needs, naming the key.
    pub fn validate(&self) -> Result<()> {
        let n = &self.name;
        let need = |v: bool, key: &str| {
            if v {
                Ok(())
            } else {
                Err(bad(
                    n,
                    key,
                    format!("kind {} needs {key}", self.kind.as_str()),
                ))
            }
        };
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self.kind {
            OriginKindConfig::Local => need(!self.path.as_os_str().is_empty(), "path")?,
            OriginKindConfig::Sftp => {
                need(present(&self.host), "host")?;
                need(present(&self.user), "user")?;
                let auths = [
                    self.key_file.is_some(),
                    self.password.is_some(),
                    self.password_file.is_some(),
                ];
                if auths.iter().filter(|a| **a).count() != 1 {
                    return Err(bad(
                        n,
                        "key_file",
                        "give exactly one of key_file, password, password_file",
                    ));
                }
            }
            OriginKindConfig::S3 => need(present(&self.bucket), "bucket")?,
            OriginKindConfig::Webdav => {
                need(present(&self.url), "url")?;
                let url = self.url.as_deref().unwrap_or("");
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(n, "url", "must start with http:// or https://"));
                }
                let authority = url.split("://").nth(1).unwrap_or("").split('/').next();
                if authority.is_some_and(|a| a.contains('@')) {
                    return Err(bad(
                        n,
                        "url",
                        "must not carry credentials; use user and password_file",
                    ));
                }
                if self.password.is_some() && self.password_file.is_some() {
                    return Err(bad(
                        n,
                        "password",
                        "give password or password_file, not both",
                    ));
                }
            }
        }
        if self.concurrency == Some(0) {
            return Err(bad(n, "concurrency", "must be at least 1"));
        }
        if self.timeout_ms == Some(0) || self.deadline_ms == Some(0) {
            return Err(bad(n, "timeout_ms", "time limits must be above 0"));
        }
        Ok(())
    }

    /// `~/` in this origin's local paths (not in remote paths).
    pub fn expand_home(&mut self, home: &Path) {
        let expand = |p: &mut PathBuf| {
            if let Ok(rest) = p.strip_prefix("~") {
                *p = home.join(rest);
            }
        };
        if !self.is_remote() {
            expand(&mut self.path);
        }
        for p in [
            &mut self.key_file,
            &mut self.password_file,
            &mut self.known_hosts,
            &mut self.credentials_file,
        ]
        .into_iter()
        .flatten()
        {
            expand(p);
        }
    }

    fn remote_options(&self) -> RemoteOptions {
        let d = RemoteOptions::default();
        RemoteOptions {
            timeout: self
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(d.timeout),
            retries: self.retries.unwrap_or(d.retries),
            deadline: self
                .deadline_ms
                .map(Duration::from_millis)
                .unwrap_or(d.deadline),
            ..d
        }
    }

    /// The federation settings (priority defaults to the origin's place in the config).
    pub fn settings(&self, position: usize) -> OriginSettings {
        let d = OriginSettings::default();
        let poll = match (self.is_remote(), self.poll_interval_s) {
            (_, Some(0)) => None,
            (_, Some(s)) => Some(Duration::from_secs(s)),
            (true, None) => Some(DEFAULT_POLL_INTERVAL),
            (false, None) => None,
        };
        OriginSettings {
            priority: self.priority.unwrap_or(position as i32),
            poll_interval: poll,
            bandwidth: self.bandwidth.map(|b| b.0).filter(|b| *b > 0),
            concurrency: self.concurrency.unwrap_or(d.concurrency),
            health_interval: self
                .health_interval_s
                .map(Duration::from_secs)
                .unwrap_or(d.health_interval),
            ..d
        }
    }

    /// Makes the origin (without contacting it). `env` looks up environment
    /// variables; `home` expands the default credential and key files.
    pub fn build(
        &self,
        position: usize,
        debounce: Duration,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Arc<ManagedOrigin>> {
        self.validate()?;
        let inner: Arc<dyn Origin> = match self.kind {
            OriginKindConfig::Local => {
                Arc::new(LocalOrigin::new(self.name.clone(), &self.path)?.with_debounce(debounce))
            }
            OriginKindConfig::Sftp => Arc::new(SftpOrigin::new(self.sftp_config(home)?)?),
            OriginKindConfig::S3 => Arc::new(S3Origin::new(self.s3_config(env, home)?)?),
            OriginKindConfig::Webdav => Arc::new(WebDavOrigin::new(WebDavConfig {
                name: self.name.clone(),
                url: self.url.clone().unwrap_or_default(),
                user: self.user.clone(),
                password: self.password_secret()?,
                remote: self.remote_options(),
            })?),
        };
        Ok(ManagedOrigin::new(inner, self.settings(position)))
    }

    fn password_secret(&self) -> Result<Option<Secret>> {
        if let Some(p) = &self.password {
            return Ok(Some(p.secret()));
        }
        let Some(file) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            bad(
                &self.name,
                "password_file",
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        Ok(Some(Secret::new(
            text.lines().next().unwrap_or("").to_string(),
        )))
    }

    fn sftp_config(&self, home: Option<&Path>) -> Result<SftpConfig> {
        let auth = match &self.key_file {
            Some(path) => SftpAuth::Key {
                path: path.clone(),
                passphrase: self.passphrase.as_ref().map(SecretValue::secret),
            },
            None => SftpAuth::Password(self.password_secret()?.unwrap_or_default()),
        };
        let known_hosts = match (&self.known_hosts, home) {
            (Some(p), _) => p.clone(),
            (None, Some(h)) => h.join(".ssh/known_hosts"),
            (None, None) => {
                return Err(bad(
                    &self.name,
                    "known_hosts",
                    "no home directory: set known_hosts",
                ))
            }
        };
        Ok(SftpConfig {
            name: self.name.clone(),
            host: self.host.clone().unwrap_or_default(),
            port: self.port.unwrap_or(22),
            user: self.user.clone().unwrap_or_default(),
            root: self.path.to_string_lossy().into_owned(),
            auth,
            known_hosts,
            connections: self.connections.unwrap_or(4).max(1),
            remote: self.remote_options(),
        })
    }

    fn s3_config(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<S3Config> {
        let (access_key_id, secret_access_key) = self.s3_credentials(env, home)?;
        let prefix = self
            .path
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        Ok(S3Config {
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            region: self
                .region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            bucket: self.bucket.clone().unwrap_or_default(),
            prefix,
            path_style: self.path_style.unwrap_or(true),
            access_key_id,
            secret_access_key,
            remote: self.remote_options(),
        })
    }

    /// Config, then `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, then the
    /// credentials file's profile; none = anonymous.
    fn s3_credentials(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<(Option<String>, Option<Secret>)> {
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            return Ok((Some(id.clone()), Some(secret.secret())));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(bad(
                &self.name,
                "access_key_id",
                "give both access_key_id and secret_access_key, or neither",
            ));
        }
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok((Some(id), Some(Secret::new(secret))));
        }
        let file = match (&self.credentials_file, home) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(h)) => Some(h.join(".aws/credentials")).filter(|p| p.exists()),
            (None, None) => None,
        };
        let Some(file) = file else {
            return Ok((None, None));
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            bad(
                &self.name,
                "credentials_file",
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        let profile = self
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        match credentials_profile(&text, &profile) {
            Some((id, secret)) => Ok((Some(id), Some(secret))),
            None => Err(bad(
                &self.name,
                "profile",
                format!(
                    "no aws_access_key_id/aws_secret_access_key for [{profile}] in {}",
                    file.display()
                ),
            )),
        }
    }
}

/// The keys of `[profile]` in an AWS credentials file (INI).
fn credentials_profile(text: &str, profile: &str) -> Option<(String, Secret)> {
    let mut in_profile = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(Secret::new(v.trim())),
                _ => {}
            }
        }
    }
    Some((id?, secret?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OriginConfig {
        #[derive(Deserialize)]
        struct W {
            origins: Vec<OriginConfig>,
        }
        toml::from_str::<W>(text).expect("parse").origins.remove(0)
    }

    #[test]
    fn secrets_are_redacted_when_shown() {
        let o = parse(
            "[[origins]]\nname = \"b\"\nkind = \"s3\"\nbucket = \"m\"\naccess_key_id = \"AK\"\nsecret_access_key = \"topsecret\"\n",
        );
        let shown = toml::to_string(&o).unwrap();
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!format!("{o:?}").contains("topsecret"));
    }

    #[test]
    fn kinds_need_their_keys() {
        let e = parse("[[origins]]\nname = \"n\"\nkind = \"sftp\"\nhost = \"h\"\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("origins.user"), "{e}");
        let e = parse("[[origins]]\nname = \"n\"\nkind = \"sftp\"\nhost = \"h\"\nuser = \"u\"\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("key_file"), "{e}");
        let e = parse("[[origins]]\nname = \"d\"\nkind = \"webdav\"\nurl = \"http://u:pw@h/x\"\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("credentials") && !e.contains("pw@"), "{e}");
        assert!(
            parse("[[origins]]\nname = \"b\"\nkind = \"s3\"\nbucket = \"m\"\n")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn s3_credentials_come_from_config_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n[other]\naws_access_key_id = O\naws_secret_access_key = OS\n",
        )
        .unwrap();
        let mut o = parse("[[origins]]\nname = \"b\"\nkind = \"s3\"\nbucket = \"m\"\n");
        o.credentials_file = Some(file);
        let no_env = |_: &str| None;
        let (id, s) = o.s3_credentials(&no_env, None).unwrap();
        assert_eq!((id.as_deref(), s.unwrap().expose()), (Some("D"), "DS"));
        o.profile = Some("other".into());
        let (id, _) = o.s3_credentials(&no_env, None).unwrap();
        assert_eq!(id.as_deref(), Some("O"));
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("E".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("ES".to_string()),
            _ => None,
        };
        let (id, _) = o.s3_credentials(&env, None).unwrap();
        assert_eq!(id.as_deref(), Some("E"));
        o.profile = Some("missing".into());
        assert!(o.s3_credentials(&no_env, None).is_err());
        o.credentials_file = None;
        assert_eq!(
            o.s3_credentials(&no_env, None).unwrap().0,
            None,
            "anonymous"
        );
    }

    #[test]
    fn remote_origins_poll_by_default_and_priority_follows_position() {
        let o = parse("[[origins]]\nname = \"b\"\nkind = \"s3\"\nbucket = \"m\"\n");
        let s = o.settings(3);
        assert_eq!(s.poll_interval, Some(DEFAULT_POLL_INTERVAL));
        assert_eq!(s.priority, 3);
        let l = OriginConfig::local("m", Path::new("/m"));
        assert_eq!(l.settings(0).poll_interval, None);
    }
}
