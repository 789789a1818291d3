//! The effective configuration: defaults, then `config.toml`, then
//! `MUSICFS_*` environment variables, then command-line flags (flags win).
//!
//! Only this crate reads files and the environment; the library crates get
//! plain values (`FsConfig`, `ScanOptions`, paths).
//!
//! Every unknown key in the file and every unknown `MUSICFS_*` variable is an
//! error naming it, so a typo never silently falls back to a default.
//! A leading `~/` in a path from the file or the environment means the home
//! directory; nothing else is expanded.
//!
//! A complete file, with the defaults (`socket` defaults to
//! `$XDG_RUNTIME_DIR/musicfs/control.sock`, or `~/.cache/musicfs/control.sock`
//! without `XDG_RUNTIME_DIR`; `musicfs config show` prints the values in effect):
//!
//! ```toml
//! catalog = "~/.local/share/musicfs/catalog.db"
//! cache_dir = "~/.cache/musicfs"
//! socket = "/run/user/1000/musicfs/control.sock"
//! log_file = "~/.local/state/musicfs/musicfs.log"
//! log_level = "info"
//! template = "$albumartist/$album/%if{$track,%if{$multidisc,$disc-}$track - }$title"
//!
//! [fuse]
//! passthrough = true
//! threads = 4
//! ttl_ms = 1000
//! allow_other = false
//!
//! [scan]
//! threads = 2
//! debounce_ms = 300
//!
//! [cache]
//! kind = "image"                 # "image", "device" or "ublk"
//! device = "~/.cache/musicfs/cache.img"
//! size = "10GiB"                 # for an image file (and a ublk backing file)
//! # ublk_backing = "/dev/sdb1"   # kind = "ublk": the file or partition served
//! ublk_id = 0                     # kind = "ublk": serve /dev/ublkb0
//! min_chunk = "16KiB"
//! avg_chunk = "64KiB"
//! max_chunk = "256KiB"
//! high_watermark = 0.9
//! low_watermark = 0.8
//! export_size = "2GiB"          # fully cached remote files exported for passthrough
//! readahead = "8MiB"
//!
//! [[origins]]
//! name = "music"
//! kind = "local"
//! path = "/srv/music"
//! ```
//!
//! Remote origins (`sftp`, `s3`, `webdav`) and their keys: see
//! [`crate::origin_config`].
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The whole configuration. Every key is optional in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The catalog database (SQLite). Default
    /// `$XDG_DATA_HOME/musicfs/catalog.db` (`~/.local/share/musicfs/catalog.db`).
    /// Env `MUSICFS_CATALOG`, flag `--catalog`.
    pub catalog: PathBuf,
    /// Directory for caches (the block cache of remote origins, later).
    /// Default `$XDG_CACHE_HOME/musicfs` (`~/.cache/musicfs`). Env `MUSICFS_CACHE_DIR`.
    pub cache_dir: PathBuf,
    /// The daemon's control socket. Default `$XDG_RUNTIME_DIR/musicfs/control.sock`,
    /// or `$XDG_CACHE_HOME/musicfs/control.sock` when `XDG_RUNTIME_DIR` is unset.
    /// Env `MUSICFS_SOCKET`, flag `--socket`.
    pub socket: PathBuf,
    /// Where a detached daemon writes its log. Default
    /// `$XDG_STATE_HOME/musicfs/musicfs.log` (`~/.local/state/musicfs/musicfs.log`).
    /// Env `MUSICFS_LOG_FILE`, flag `--log-file`.
    pub log_file: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`. Default `info`.
    /// Env `MUSICFS_LOG_LEVEL`, flag `--log-level`.
    pub log_level: LogLevel,
    /// The path template of the virtual tree (`.$ext` is appended to the file
    /// name). Default [`musicfs_index::DEFAULT_TEMPLATE`]:
    /// `$albumartist/$album/%if{$track,%if{$multidisc,$disc-}$track - }$title`.
    /// Changing it rebuilds the tree. Env `MUSICFS_TEMPLATE`, flag `--template`.
    pub template: String,
    /// The FUSE filesystem.
    pub fuse: FuseConfig,
    /// The scanner and the origin watchers.
    pub scan: ScanConfig,
    /// The chunk cache of remote origins.
    pub cache: CacheConfig,
    /// Origins to serve (besides one given on the `mount`/`scan` command line).
    pub origins: Vec<OriginConfig>,
}

/// `[fuse]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuseConfig {
    /// Open untouched local files with kernel passthrough (Linux 6.9+, needs
    /// CAP_SYS_ADMIN; falls back to daemon reads otherwise). Default `true`.
    /// Env `MUSICFS_FUSE_PASSTHROUGH`, flag `--no-passthrough`.
    pub passthrough: bool,
    /// FUSE worker threads, at least 1. Default `4`.
    /// Env `MUSICFS_FUSE_THREADS`, flag `mount --threads`.
    pub threads: usize,
    /// How long the kernel may cache attributes and names, in milliseconds.
    /// Default `1000`. Env `MUSICFS_FUSE_TTL_MS`.
    pub ttl_ms: u64,
    /// Let other users see the mount (needs root or `user_allow_other` in
    /// /etc/fuse.conf). Default `false`. Env `MUSICFS_FUSE_ALLOW_OTHER`,
    /// flag `--allow-other`.
    pub allow_other: bool,
}

/// `[scan]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Files read in parallel by a scan, at least 1. Default `2`.
    /// Env `MUSICFS_SCAN_THREADS`.
    pub threads: usize,
    /// How long the watcher waits for changes to settle before rescanning
    /// the changed files, in milliseconds. Default `300`.
    /// Env `MUSICFS_SCAN_DEBOUNCE_MS`.
    pub debounce_ms: u64,
}

/// `[cache]`: the chunk store that caches remote content, on a block
/// device of its own (no filesystem in between).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `image` (a sparse image file, created and formatted on first use),
    /// `device` (a partition, loop or other block device, formatted with
    /// `musicfs cache format DEVICE`), or `ublk` (musicfs serves
    /// `/dev/ublkbN` over `ublk_backing` for as long as the daemon runs).
    /// Default `image`. Env `MUSICFS_CACHE_KIND`.
    pub kind: CacheKind,
    /// The image file or block device. Default `<cache_dir>/cache.img`
    /// (`~/.cache/musicfs/cache.img`). Env `MUSICFS_CACHE_DEVICE`.
    pub device: Option<PathBuf>,
    /// Size of a new image file (sparse: it takes space as it fills), in
    /// bytes or with a unit (`"10GiB"`, `"500MB"`). Default `10GiB`.
    /// Env `MUSICFS_CACHE_SIZE`.
    pub size: ByteSize,
    /// For `kind = "ublk"`: the file or partition the ublk device serves.
    /// Default: `device`. Env `MUSICFS_CACHE_UBLK_BACKING`.
    pub ublk_backing: Option<PathBuf>,
    /// For `kind = "ublk"`: the N of `/dev/ublkbN`. A fixed id lets a daemon
    /// restarted after a crash reclaim its dead device instead of leaving it
    /// behind. Default `0`. Env `MUSICFS_CACHE_UBLK_ID`.
    pub ublk_id: u32,
    /// Content-defined chunk sizes (FastCDC). Defaults `16KiB`, `64KiB`,
    /// `256KiB`. Env `MUSICFS_CACHE_MIN_CHUNK`, `_AVG_CHUNK`, `_MAX_CHUNK`.
    pub min_chunk: ByteSize,
    pub avg_chunk: ByteSize,
    pub max_chunk: ByteSize,
    /// Eviction starts when this fraction of the data region is used.
    /// Default `0.9`. Env `MUSICFS_CACHE_HIGH_WATERMARK`.
    pub high_watermark: f64,
    /// Eviction frees down to this fraction. Default `0.8`.
    /// Env `MUSICFS_CACHE_LOW_WATERMARK`.
    pub low_watermark: f64,
    /// Remote files that are cached whole are also written out as plain
    /// files under `<cache_dir>/export` and handed to the kernel for
    /// passthrough (native-speed reads); at most this many bytes, least
    /// recently opened dropped first. `0` turns exports off. Default `2GiB`.
    pub export_size: ByteSize,
    /// Reads that run this far ahead of what is cached extend the cache
    /// (farther seeks are read straight from the origin). Default `8MiB`.
    pub readahead: ByteSize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    #[default]
    Image,
    Device,
    Ublk,
}

impl std::str::FromStr for CacheKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "image" => Ok(CacheKind::Image),
            "device" => Ok(CacheKind::Device),
            "ublk" => Ok(CacheKind::Ublk),
            _ => Err(format!(
                "invalid cache kind {s:?}, expected one of image, device, ublk"
            )),
        }
    }
}

impl CacheKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Image => "image",
            CacheKind::Device => "device",
            CacheKind::Ublk => "ublk",
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            kind: CacheKind::Image,
            device: None,
            size: ByteSize(10 << 30),
            ublk_backing: None,
            ublk_id: 0,
            min_chunk: ByteSize(16 << 10),
            avg_chunk: ByteSize(64 << 10),
            max_chunk: ByteSize(256 << 10),
            high_watermark: 0.9,
            low_watermark: 0.8,
            export_size: ByteSize(2 << 30),
            readahead: ByteSize(8 << 20),
        }
    }
}

impl CacheConfig {
    /// The image file or block device (after [`Config::load`] it is set).
    pub fn device_path(&self, cache_dir: &Path) -> PathBuf {
        self.device
            .clone()
            .unwrap_or_else(|| cache_dir.join("cache.img"))
    }
}

/// A size in bytes, written as a number or a string with a unit:
/// `"10GiB"`, `"64 MiB"`, `"500MB"`, `"4096"` (K/M/G/T are powers of 1024
/// with or without `iB`; `KB`/`MB`/`GB`/`TB` powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            format!("invalid size {s:?}, expected bytes or a number with a unit such as \"10GiB\"")
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size in bytes or a string such as \"10GiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

pub use crate::origin_config::{OriginConfig, OriginKindConfig};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "invalid log level {s:?}, expected one of error, warn, info, debug, trace"
            )),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let home = dirs::home_dir().unwrap_or_else(std::env::temp_dir);
        let data = dirs::data_dir().unwrap_or_else(|| home.join(".local/share"));
        let cache = dirs::cache_dir().unwrap_or_else(|| home.join(".cache"));
        let state = dirs::state_dir().unwrap_or_else(|| home.join(".local/state"));
        let runtime = dirs::runtime_dir().unwrap_or_else(|| cache.clone());
        Config {
            catalog: data.join("musicfs/catalog.db"),
            cache_dir: cache.join("musicfs"),
            socket: runtime.join("musicfs/control.sock"),
            log_file: state.join("musicfs/musicfs.log"),
            log_level: LogLevel::Info,
            template: musicfs_index::DEFAULT_TEMPLATE.to_string(),
            fuse: FuseConfig::default(),
            scan: ScanConfig::default(),
            cache: CacheConfig::default(),
            origins: Vec::new(),
        }
    }
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig {
            passthrough: true,
            threads: 4,
            ttl_ms: 1000,
            allow_other: false,
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            threads: 2,
            debounce_ms: 300,
        }
    }
}

/// Values that replace the file's: one set from the environment, one from flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub catalog: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<LogLevel>,
    pub template: Option<String>,
    pub passthrough: Option<bool>,
    pub fuse_threads: Option<usize>,
    pub ttl_ms: Option<u64>,
    pub allow_other: Option<bool>,
    pub scan_threads: Option<usize>,
    pub debounce_ms: Option<u64>,
    pub cache_kind: Option<CacheKind>,
    pub cache_device: Option<PathBuf>,
    pub cache_size: Option<ByteSize>,
    pub cache_ublk_backing: Option<PathBuf>,
    pub cache_ublk_id: Option<u32>,
    pub cache_min_chunk: Option<ByteSize>,
    pub cache_avg_chunk: Option<ByteSize>,
    pub cache_max_chunk: Option<ByteSize>,
    pub cache_high_watermark: Option<f64>,
    pub cache_low_watermark: Option<f64>,
}

/// The environment variable that names the config file.
pub const ENV_CONFIG: &str = "MUSICFS_CONFIG";

/// Every `MUSICFS_*` variable musicfs understands (besides [`ENV_CONFIG`]).
pub const ENV_VARS: &[&str] = &[
    "MUSICFS_CATALOG",
    "MUSICFS_CACHE_DIR",
    "MUSICFS_SOCKET",
    "MUSICFS_LOG_FILE",
    "MUSICFS_LOG_LEVEL",
    "MUSICFS_TEMPLATE",
    "MUSICFS_FUSE_PASSTHROUGH",
    "MUSICFS_FUSE_THREADS",
    "MUSICFS_FUSE_TTL_MS",
    "MUSICFS_FUSE_ALLOW_OTHER",
    "MUSICFS_SCAN_THREADS",
    "MUSICFS_SCAN_DEBOUNCE_MS",
    "MUSICFS_CACHE_KIND",
    "MUSICFS_CACHE_DEVICE",
    "MUSICFS_CACHE_SIZE",
    "MUSICFS_CACHE_UBLK_BACKING",
    "MUSICFS_CACHE_MIN_CHUNK",
    "MUSICFS_CACHE_AVG_CHUNK",
    "MUSICFS_CACHE_MAX_CHUNK",
    "MUSICFS_CACHE_HIGH_WATERMARK",
    "MUSICFS_CACHE_LOW_WATERMARK",
];

impl Overrides {
    /// Reads the `MUSICFS_*` variables out of `env`. Unknown names and bad
    /// values are errors naming the variable.
    pub fn from_env(env: &[(OsString, OsString)]) -> Result<Overrides> {
        let mut o = Overrides::default();
        for (name, value) in env {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with("MUSICFS_") || name == ENV_CONFIG {
                continue;
            }
            let bad = |message: String| Error::Env {
                var: name.to_string(),
                message,
            };
            let text = || {
                value
                    .to_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("value is not valid UTF-8".into()))
            };
            let path = || PathBuf::from(value);
            match name {
                "MUSICFS_CATALOG" => o.catalog = Some(path()),
                "MUSICFS_CACHE_DIR" => o.cache_dir = Some(path()),
                "MUSICFS_SOCKET" => o.socket = Some(path()),
                "MUSICFS_LOG_FILE" => o.log_file = Some(path()),
                "MUSICFS_LOG_LEVEL" => o.log_level = Some(text()?.parse().map_err(bad)?),
                "MUSICFS_TEMPLATE" => o.template = Some(text()?),
                "MUSICFS_FUSE_PASSTHROUGH" => {
                    o.passthrough = Some(parse_bool(&text()?).map_err(bad)?)
                }
                "MUSICFS_FUSE_THREADS" => o.fuse_threads = Some(parse_num(&text()?).map_err(bad)?),
                "MUSICFS_FUSE_TTL_MS" => o.ttl_ms = Some(parse_num(&text()?).map_err(bad)?),
                "MUSICFS_FUSE_ALLOW_OTHER" => {
                    o.allow_other = Some(parse_bool(&text()?).map_err(bad)?)
                }
                "MUSICFS_SCAN_THREADS" => o.scan_threads = Some(parse_num(&text()?).map_err(bad)?),
                "MUSICFS_SCAN_DEBOUNCE_MS" => {
                    o.debounce_ms = Some(parse_num(&text()?).map_err(bad)?)
                }
                "MUSICFS_CACHE_KIND" => o.cache_kind = Some(text()?.parse().map_err(bad)?),
                "MUSICFS_CACHE_DEVICE" => o.cache_device = Some(path()),
                "MUSICFS_CACHE_SIZE" => o.cache_size = Some(text()?.parse().map_err(bad)?),
                "MUSICFS_CACHE_UBLK_BACKING" => o.cache_ublk_backing = Some(path()),
                "MUSICFS_CACHE_UBLK_ID" => {
                    o.cache_ublk_id = Some(parse_num(&text()?).map_err(bad)?)
                }
                "MUSICFS_CACHE_MIN_CHUNK" => {
                    o.cache_min_chunk = Some(text()?.parse().map_err(bad)?)
                }
                "MUSICFS_CACHE_AVG_CHUNK" => {
                    o.cache_avg_chunk = Some(text()?.parse().map_err(bad)?)
                }
                "MUSICFS_CACHE_MAX_CHUNK" => {
                    o.cache_max_chunk = Some(text()?.parse().map_err(bad)?)
                }
                "MUSICFS_CACHE_HIGH_WATERMARK" => {
                    o.cache_high_watermark = Some(parse_fraction(&text()?).map_err(bad)?)
                }
                "MUSICFS_CACHE_LOW_WATERMARK" => {
                    o.cache_low_watermark = Some(parse_fraction(&text()?).map_err(bad)?)
                }
                _ => {
                    return Err(bad(format!(
                        "unknown variable; musicfs knows {ENV_CONFIG}, {}",
                        ENV_VARS.join(", ")
                    )))
                }
            }
        }
        Ok(o)
    }

    fn apply(&self, c: &mut Config) {
        fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        set(&mut c.catalog, &self.catalog);
        set(&mut c.cache_dir, &self.cache_dir);
        set(&mut c.socket, &self.socket);
        set(&mut c.log_file, &self.log_file);
        set(&mut c.log_level, &self.log_level);
        set(&mut c.template, &self.template);
        set(&mut c.fuse.passthrough, &self.passthrough);
        set(&mut c.fuse.threads, &self.fuse_threads);
        set(&mut c.fuse.ttl_ms, &self.ttl_ms);
        set(&mut c.fuse.allow_other, &self.allow_other);
        set(&mut c.scan.threads, &self.scan_threads);
        set(&mut c.scan.debounce_ms, &self.debounce_ms);
        set(&mut c.cache.kind, &self.cache_kind);
        if self.cache_device.is_some() {
            c.cache.device = self.cache_device.clone();
        }
        set(&mut c.cache.size, &self.cache_size);
        if self.cache_ublk_backing.is_some() {
            c.cache.ublk_backing = self.cache_ublk_backing.clone();
        }
        set(&mut c.cache.ublk_id, &self.cache_ublk_id);
        set(&mut c.cache.min_chunk, &self.cache_min_chunk);
        set(&mut c.cache.avg_chunk, &self.cache_avg_chunk);
        set(&mut c.cache.max_chunk, &self.cache_max_chunk);
        set(&mut c.cache.high_watermark, &self.cache_high_watermark);
        set(&mut c.cache.low_watermark, &self.cache_low_watermark);
    }
}

fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}, expected true or false")),
    }
}

fn parse_fraction(s: &str) -> std::result::Result<f64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid number {s:?}, expected a fraction such as 0.9"))
}

fn parse_num<T: std::str::FromStr>(s: &str) -> std::result::Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid number {s:?}, expected a non-negative integer"))
}

/// Where the config comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE`.
    pub config_flag: Option<PathBuf>,
    /// The process environment (all of it; only `MUSICFS_*` is looked at).
    pub env: Vec<(OsString, OsString)>,
    /// Values given as flags.
    pub flags: Overrides,
}

impl Sources {
    /// The config file to read and whether it was named explicitly (an
    /// explicitly named file must exist; the default one may be missing).
    pub fn config_path(&self) -> (PathBuf, bool) {
        if let Some(p) = &self.config_flag {
            return (p.clone(), true);
        }
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == ENV_CONFIG) {
            return (PathBuf::from(v), true);
        }
        let dir = dirs::config_dir().unwrap_or_else(|| {
            dirs::home_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join(".config")
        });
        (dir.join("musicfs/config.toml"), false)
    }
}

impl Config {
    /// Defaults < file < environment < flags, then validation.
    pub fn load(sources: &Sources) -> Result<Config> {
        let (path, explicit) = sources.config_path();
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => Config::from_toml(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::default(),
            Err(e) => {
                return Err(Error::ConfigFile {
                    path,
                    message: e.to_string(),
                })
            }
        };
        Overrides::from_env(&sources.env)?.apply(&mut config);
        config.expand_home(dirs::home_dir().as_deref());
        sources.flags.apply(&mut config);
        // The image follows `cache_dir` unless named; `config show` prints it.
        if config.cache.device.is_none() {
            config.cache.device = Some(config.cache_dir.join("cache.img"));
        }
        config.validate()?;
        Ok(config)
    }

    /// `~/x` → `$HOME/x` in every path (file and environment values; the
    /// shell has already done this for flags).
    fn expand_home(&mut self, home: Option<&Path>) {
        let Some(home) = home else { return };
        let expand = |p: &mut PathBuf| {
            if let Ok(rest) = p.strip_prefix("~") {
                *p = home.join(rest);
            }
        };
        expand(&mut self.catalog);
        expand(&mut self.cache_dir);
        expand(&mut self.socket);
        expand(&mut self.log_file);
        for o in &mut self.origins {
            o.expand_home(home);
        }
        for p in [&mut self.cache.device, &mut self.cache.ublk_backing]
            .into_iter()
            .flatten()
        {
            expand(p);
        }
    }

    /// Parses a config file's text; errors name the line and the key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })
    }

    /// Checks what the types alone do not.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: &str| {
            Err(Error::BadValue {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.fuse.threads == 0 {
            return bad("fuse.threads", "must be at least 1");
        }
        if self.scan.threads == 0 {
            return bad("scan.threads", "must be at least 1");
        }
        if self.template.trim().is_empty() {
            return bad("template", "must not be empty");
        }
        for (key, p) in [
            ("catalog", &self.catalog),
            ("socket", &self.socket),
            ("log_file", &self.log_file),
            ("cache_dir", &self.cache_dir),
        ] {
            if p.as_os_str().is_empty() {
                return bad(key, "must not be empty");
            }
        }
        let c = &self.cache;
        if !(0.0 < c.low_watermark && c.low_watermark < c.high_watermark && c.high_watermark <= 1.0)
        {
            return Err(Error::BadValue {
                key: "cache.low_watermark".into(),
                message: format!(
                    "need 0 < low_watermark < high_watermark <= 1, got {} and {}",
                    c.low_watermark, c.high_watermark
                ),
            });
        }
        let cdc = self.cdc_params();
        if let Err(e) = cdc.validate() {
            return Err(Error::BadValue {
                key: "cache.min_chunk".into(),
                message: format!(
                    "chunk sizes {} / {} / {} (min / avg / max): {e}",
                    c.min_chunk, c.avg_chunk, c.max_chunk
                ),
            });
        }
        if c.kind == CacheKind::Image && c.size.0 < (1 << 20) {
            return bad("cache.size", "must be at least 1MiB");
        }
        if matches!(&c.device, Some(p) if p.as_os_str().is_empty()) {
            return bad("cache.device", "must not be empty");
        }
        let mut seen = std::collections::HashSet::new();
        for o in &self.origins {
            if o.name.trim().is_empty() || o.name.contains('/') {
                return bad("origins.name", "must be non-empty and contain no '/'");
            }
            if !seen.insert(o.name.as_str()) {
                return Err(Error::BadValue {
                    key: "origins.name".into(),
                    message: format!("origin {:?} is named twice", o.name),
                });
            }
            if o.kind == OriginKindConfig::Local && o.path.as_os_str().is_empty() {
                return Err(Error::BadValue {
                    key: "origins.path".into(),
                    message: format!("origin {:?} has an empty path", o.name),
                });
            }
            o.validate()?;
        }
        Ok(())
    }

    /// FastCDC sizes of `[cache]`.
    pub fn cdc_params(&self) -> musicfs_blockcache::CdcParams {
        let c = &self.cache;
        let size = |b: ByteSize| usize::try_from(b.0).unwrap_or(usize::MAX);
        musicfs_blockcache::CdcParams {
            min: size(c.min_chunk),
            avg: size(c.avg_chunk),
            max: size(c.max_chunk),
        }
    }

    /// The image file or block device of the cache (for `ublk`, the
    /// backing the ublk device serves).
    pub fn cache_device(&self) -> PathBuf {
        self.cache.device_path(&self.cache_dir)
    }

    /// The file or partition a `ublk` cache serves.
    pub fn ublk_backing(&self) -> PathBuf {
        self.cache
            .ublk_backing
            .clone()
            .unwrap_or_else(|| self.cache_device())
    }

    /// Whether the cache is the image musicfs made itself at its default
    /// place, which it may create and format on first use.
    pub fn cache_is_default_image(&self) -> bool {
        self.cache_device() == self.cache_dir.join("cache.img")
    }

    /// The effective config as TOML (`musicfs config show`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// "line 3: `fuse.threads`: invalid type: ..." — the dotted key is found
/// from the error's position, since the toml error does not carry it.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return message.to_string();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let table = text
        .lines()
        .take(line_no - 1)
        .filter_map(|l| {
            let l = l.trim();
            let inner = l.strip_prefix("[[").and_then(|r| r.split("]]").next());
            inner
                .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))
                .map(|t| t.trim().to_string())
        })
        .last();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match (key, table) {
        (Some(k), Some(t)) => format!("line {line_no}: `{t}.{k}`: {message}"),
        (Some(k), None) => format!("line {line_no}: `{k}`: {message}"),
        (None, _) => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn with_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write config");
        (dir, path)
    }

    fn load(text: &str, env: &[(&str, &str)], flags: Overrides) -> Result<Config> {
        let (_dir, path) = with_file(text);
        Config::load(&Sources {
            config_flag: Some(path),
            env: os(env),
            flags,
        })
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = load("", &[], Overrides::default()).expect("load");
        let mut want = Config::default();
        want.cache.device = Some(want.cache_dir.join("cache.img"));
        assert_eq!(c, want);
        assert!(c.fuse.passthrough);
        assert_eq!(c.fuse.threads, 4);
        assert_eq!(c.fuse.ttl_ms, 1000);
        assert_eq!(c.scan.threads, 2);
        assert_eq!(c.scan.debounce_ms, 300);
        assert_eq!(c.log_level, LogLevel::Info);
        assert!(c.catalog.ends_with("musicfs/catalog.db"));
        assert!(c.socket.ends_with("musicfs/control.sock"));
    }

    #[test]
    fn file_values_are_read() {
        let c = load(
            "catalog = \"/x/c.db\"\ntemplate = \"$artist/$title\"\n[fuse]\nthreads = 8\npassthrough = false\n\n[[origins]]\nname = \"m\"\npath = \"/srv/m\"\n",
            &[],
            Overrides::default(),
        )
        .expect("load");
        assert_eq!(c.catalog, PathBuf::from("/x/c.db"));
        assert_eq!(c.template, "$artist/$title");
        assert_eq!(c.fuse.threads, 8);
        assert!(!c.fuse.passthrough);
        assert_eq!(c.origins.len(), 1);
        assert_eq!(c.origins[0].kind, OriginKindConfig::Local);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = load(
            "log_level = \"info\"\n[fuse]\nthread = 3\n",
            &[],
            Overrides::default(),
        )
        .expect_err("unknown key");
        let msg = err.to_string();
        assert!(err.is_usage());
        assert!(msg.contains("`fuse.thread`"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("config.toml"), "{msg}");
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let msg = load("catalgo = \"/x\"\n", &[], Overrides::default())
            .expect_err("unknown")
            .to_string();
        assert!(msg.contains("catalgo"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn bad_value_is_named() {
        let msg = load(
            "[scan]\ndebounce_ms = \"soon\"\n",
            &[],
            Overrides::default(),
        )
        .expect_err("bad value")
        .to_string();
        assert!(msg.contains("`scan.debounce_ms`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");

        let msg = load("log_level = \"loud\"\n", &[], Overrides::default())
            .expect_err("bad level")
            .to_string();
        assert!(msg.contains("`log_level`"), "{msg}");

        let msg = load(
            "[[origins]]\nname = \"a\"\nkind = \"ftp\"\npath = \"/a\"\n",
            &[],
            Overrides::default(),
        )
        .expect_err("bad kind")
        .to_string();
        assert!(msg.contains("`origins.kind`"), "{msg}");
    }

    #[test]
    fn semantic_checks_name_the_key() {
        let msg = load("[fuse]\nthreads = 0\n", &[], Overrides::default())
            .expect_err("zero threads")
            .to_string();
        assert!(msg.contains("fuse.threads"), "{msg}");
        let msg = load(
            "[[origins]]\nname = \"a\"\npath = \"/a\"\n[[origins]]\nname = \"a\"\npath = \"/b\"\n",
            &[],
            Overrides::default(),
        )
        .expect_err("duplicate")
        .to_string();
        assert!(msg.contains("origins.name"), "{msg}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file = "catalog = \"/file/c.db\"\nsocket = \"/file/s\"\nlog_level = \"warn\"\n[fuse]\nthreads = 3\n";
        let env = [
            ("MUSICFS_CATALOG", "/env/c.db"),
            ("MUSICFS_SOCKET", "/env/s"),
            ("MUSICFS_FUSE_THREADS", "5"),
            ("MUSICFS_FUSE_PASSTHROUGH", "false"),
            ("HOME", "/ignored"),
        ];
        let c = load(file, &env, Overrides::default()).expect("load");
        assert_eq!(c.catalog, PathBuf::from("/env/c.db"));
        assert_eq!(c.socket, PathBuf::from("/env/s"));
        assert_eq!(c.fuse.threads, 5);
        assert!(!c.fuse.passthrough);
        assert_eq!(
            c.log_level,
            LogLevel::Warn,
            "file value kept where env is silent"
        );

        let flags = Overrides {
            catalog: Some("/flag/c.db".into()),
            fuse_threads: Some(7),
            passthrough: Some(true),
            ..Overrides::default()
        };
        let c = load(file, &env, flags).expect("load");
        assert_eq!(c.catalog, PathBuf::from("/flag/c.db"));
        assert_eq!(c.fuse.threads, 7);
        assert!(c.fuse.passthrough);
        assert_eq!(
            c.socket,
            PathBuf::from("/env/s"),
            "env kept where flags are silent"
        );
    }

    #[test]
    fn unknown_or_bad_env_var_is_named() {
        let err =
            load("", &[("MUSICFS_CATALOGUE", "/x")], Overrides::default()).expect_err("unknown");
        assert!(err.is_usage());
        assert!(err.to_string().contains("MUSICFS_CATALOGUE"), "{err}");
        let err = load(
            "",
            &[("MUSICFS_SCAN_THREADS", "many")],
            Overrides::default(),
        )
        .expect_err("bad");
        assert!(err.to_string().contains("MUSICFS_SCAN_THREADS"), "{err}");
        assert!(err.to_string().contains("many"), "{err}");
    }

    #[test]
    fn config_file_from_env_and_flag_precedence() {
        let (_d1, env_file) = with_file("catalog = \"/from-env-file\"\n");
        let (_d2, flag_file) = with_file("catalog = \"/from-flag-file\"\n");
        let env = vec![(
            OsString::from(ENV_CONFIG),
            env_file.clone().into_os_string(),
        )];
        let c = Config::load(&Sources {
            config_flag: None,
            env: env.clone(),
            flags: Overrides::default(),
        })
        .expect("load");
        assert_eq!(c.catalog, PathBuf::from("/from-env-file"));
        let c = Config::load(&Sources {
            config_flag: Some(flag_file),
            env,
            flags: Overrides::default(),
        })
        .expect("load");
        assert_eq!(c.catalog, PathBuf::from("/from-flag-file"));
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let err = Config::load(&Sources {
            config_flag: Some("/nonexistent/musicfs.toml".into()),
            ..Sources::default()
        })
        .expect_err("missing");
        assert!(err.is_usage());
        assert!(err.to_string().contains("/nonexistent/musicfs.toml"));
    }

    #[test]
    fn tilde_means_home_in_file_and_env_values() {
        let mut c = Config::from_toml(
            "catalog = \"~/c.db\"\nsocket = \"/abs/~/s\"\n[[origins]]\nname = \"m\"\npath = \"~/Music\"\n",
            Path::new("t.toml"),
        )
        .expect("parse");
        c.expand_home(Some(Path::new("/home/u")));
        assert_eq!(c.catalog, PathBuf::from("/home/u/c.db"));
        assert_eq!(
            c.socket,
            PathBuf::from("/abs/~/s"),
            "only a leading ~ expands"
        );
        assert_eq!(c.origins[0].path, PathBuf::from("/home/u/Music"));
    }

    #[test]
    fn cache_defaults_follow_cache_dir() {
        let c = load("cache_dir = \"/var/c\"\n", &[], Overrides::default()).expect("load");
        assert_eq!(c.cache.kind, CacheKind::Image);
        assert_eq!(c.cache_device(), PathBuf::from("/var/c/cache.img"));
        assert!(c.cache_is_default_image());
        assert_eq!(c.cache.size, ByteSize(10 << 30));
        assert_eq!(
            (
                c.cache.min_chunk.0,
                c.cache.avg_chunk.0,
                c.cache.max_chunk.0
            ),
            (16 << 10, 64 << 10, 256 << 10)
        );
        assert_eq!((c.cache.high_watermark, c.cache.low_watermark), (0.9, 0.8));
        assert_eq!(c.ublk_backing(), PathBuf::from("/var/c/cache.img"));
    }

    #[test]
    fn cache_keys_are_read_from_file_and_env() {
        let c = load(
            "[cache]\nkind = \"ublk\"\ndevice = \"/dev/sdz\"\nsize = \"64 MiB\"\nublk_backing = \"~/b.img\"\nmin_chunk = 8192\navg_chunk = \"32KiB\"\nmax_chunk = \"128k\"\nhigh_watermark = 0.95\nlow_watermark = 0.5\n",
            &[],
            Overrides::default(),
        )
        .expect("load");
        assert_eq!(c.cache.kind, CacheKind::Ublk);
        assert_eq!(c.cache_device(), PathBuf::from("/dev/sdz"));
        assert!(!c.cache_is_default_image());
        assert_eq!(c.cache.size, ByteSize(64 << 20));
        assert!(c.ublk_backing().ends_with("b.img") && !c.ublk_backing().starts_with("~"));
        assert_eq!(c.cdc_params().min, 8192);
        assert_eq!(c.cdc_params().avg, 32 << 10);
        assert_eq!(c.cdc_params().max, 128 << 10);
        assert_eq!((c.cache.high_watermark, c.cache.low_watermark), (0.95, 0.5));

        let env = [
            ("MUSICFS_CACHE_KIND", "device"),
            ("MUSICFS_CACHE_DEVICE", "/dev/loop7"),
            ("MUSICFS_CACHE_SIZE", "1GB"),
            ("MUSICFS_CACHE_LOW_WATERMARK", "0.7"),
        ];
        let c = load("[cache]\nkind = \"ublk\"\n", &env, Overrides::default()).expect("load");
        assert_eq!(c.cache.kind, CacheKind::Device);
        assert_eq!(c.cache_device(), PathBuf::from("/dev/loop7"));
        assert_eq!(c.cache.size, ByteSize(1_000_000_000));
        assert_eq!(c.cache.low_watermark, 0.7);
    }

    #[test]
    fn bad_cache_values_name_their_key() {
        for (text, key) in [
            ("[cache]\nkind = \"tape\"\n", "`cache.kind`"),
            ("[cache]\nsize = \"lots\"\n", "`cache.size`"),
            ("[cache]\nsize = -5\n", "`cache.size`"),
            ("[cache]\ndevise = \"/x\"\n", "cache.devise"),
            (
                "[cache]\nhigh_watermark = 0.5\nlow_watermark = 0.6\n",
                "cache.low_watermark",
            ),
            ("[cache]\nmin_chunk = \"1MiB\"\n", "cache.min_chunk"),
            ("[cache]\nsize = 4096\n", "cache.size"),
        ] {
            let msg = load(text, &[], Overrides::default())
                .expect_err(text)
                .to_string();
            assert!(msg.contains(key), "{text}: {msg}");
        }
        let err =
            load("", &[("MUSICFS_CACHE_SIZE", "big")], Overrides::default()).expect_err("bad env");
        assert!(err.to_string().contains("MUSICFS_CACHE_SIZE"), "{err}");
    }

    #[test]
    fn byte_sizes_parse_and_print() {
        for (text, n) in [
            ("4096", 4096),
            ("10GiB", 10 << 30),
            ("10 GiB", 10 << 30),
            ("64m", 64 << 20),
            ("500MB", 500_000_000),
            ("3KiB", 3072),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(n)), "{text}");
        }
        assert!("".parse::<ByteSize>().is_err());
        assert!("1.5GiB".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(10 << 30).to_string(), "10GiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn show_round_trips() {
        let mut c = Config::default();
        c.origins
            .push(OriginConfig::local("m", Path::new("/srv/m")));
        c.origins.push(OriginConfig {
            name: "b".into(),
            kind: OriginKindConfig::S3,
            bucket: Some("music".into()),
            priority: Some(2),
            ..OriginConfig::default()
        });
        c.fuse.threads = 9;
        c.cache.size = ByteSize(64 << 20);
        c.cache.kind = CacheKind::Device;
        c.cache.device = Some("/dev/loop3".into());
        let text = c.to_toml();
        let back = Config::from_toml(&text, Path::new("shown.toml")).expect("parse shown");
        assert_eq!(back, c);
        assert!(text.contains("[fuse]"), "{text}");
    }
}
