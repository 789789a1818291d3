//! The `musicfs` command line (clap). The binary dispatches on [`Command`];
//! the config-related flags become [`Overrides`] that win over environment
//! and file.
use crate::config::{LogLevel, Overrides, Sources};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// musicfs: a read-only FUSE filesystem that shows a music library organised
/// by its tags, over audio files that are never written to.
#[derive(Debug, Parser)]
#[command(name = "musicfs", version, propagate_version = true)]
#[command(
    after_help = "Config precedence: flags > MUSICFS_* environment > config file > defaults.\n\
    `musicfs config show` prints the effective configuration."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file [env: MUSICFS_CONFIG] [default: $XDG_CONFIG_HOME/musicfs/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Catalog database [env: MUSICFS_CATALOG] [default: $XDG_DATA_HOME/musicfs/catalog.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// Control socket [env: MUSICFS_SOCKET] [default: $XDG_RUNTIME_DIR/musicfs/control.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Log file of a detached daemon [env: MUSICFS_LOG_FILE] [default: $XDG_STATE_HOME/musicfs/musicfs.log]
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Log level [env: MUSICFS_LOG_LEVEL] [default: info]
    #[arg(long, global = true, value_name = "LEVEL", value_enum)]
    pub log_level: Option<LogLevel>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount the library (starts the daemon; returns once mounted unless --foreground)
    #[command(long_about = "Mount the library by its tags at MOUNTPOINT.\n\n\
        SOURCE, a local directory, becomes (or updates) the origin named NAME; without SOURCE \
        the origins come from the config file (or, failing that, the catalog). The mount serves \
        the catalog's tree at once, then scans the origins incrementally in the background and \
        watches them for changes.\n\n\
        Without --foreground the daemon is started detached and this command returns as soon \
        as the filesystem is mounted and the control socket answers. `fusermount3 -u MOUNTPOINT` \
        or `musicfs shutdown` stops it.")]
    Mount(MountArgs),
    /// Scan a local directory into the catalog (no daemon needed) and build the tree
    Scan(ScanArgs),
    /// Show the daemon's status
    Status(StatusArgs),
    /// List the daemon's origins: name, kind, location, files, errors, health,
    /// priority, bytes read, scan bytes per track, last error (tab-separated)
    Origins(OriginsArgs),
    /// Read every file of an origin (all when ORIGIN is omitted) whole, record
    /// content hashes, and rescan files whose content changed unseen
    Verify(VerifyArgs),
    /// Rescan an origin (all when ORIGIN is omitted) and wait until done
    Rescan(RescanArgs),
    /// Drain, unmount and stop the daemon; returns once it has exited
    Shutdown(ShutdownArgs),
    /// Configuration commands
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The chunk cache of remote origins: stats, clear, verify, format, backup, restore
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Edit tags in the catalog (the origin files are never changed): set, reset, show
    #[command(subcommand)]
    Tag(TagCommand),
    /// Search the library (beets-like queries: `artist:beatles year:1960..1969 love`)
    Search(SearchArgs),
    /// Smart collections shown under /.collections/: list, create, delete
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Import tags from a beets library.db into the catalog
    Import(ImportArgs),
    /// Export the catalog (tags as served) as JSON or CSV
    Export(ExportArgs),
    /// Fill the cache with a file or every file under a virtual folder
    Prefetch(PrefetchArgs),
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// Set tags: `musicfs tag set PATH... KEY=VALUE...` or `--query Q KEY=VALUE...`;
    /// `KEY=` removes the tag, a key given twice becomes multi-valued
    Set(TagSetArgs),
    /// Drop overlay edits (of the given keys, or all): the file is served as it is
    Reset(TagResetArgs),
    /// Show a track's tags as served, as scanned, and its overlay edits
    Show(TagShowArgs),
}

#[derive(Debug, Args)]
pub struct TagSetArgs {
    /// Edit every track this search query matches
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// Virtual paths (under the mountpoint, or relative to it) then KEY=VALUE edits
    #[arg(value_name = "PATH|KEY=VALUE", required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagResetArgs {
    /// Reset every track this search query matches
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// Reset only this key (repeatable; default: every edit)
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Virtual paths (under the mountpoint, or relative to it)
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagShowArgs {
    /// Virtual path (under the mountpoint, or relative to it)
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query; several words are joined with spaces
    #[arg(value_name = "QUERY", required = true)]
    pub query: Vec<String>,
    /// At most this many results
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// List collections (built-in and saved) with their track counts
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Save a query as a collection shown at /.collections/NAME/
    Create {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "QUERY", required = true)]
        query: Vec<String>,
    },
    /// Delete a saved collection
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The beets library database (library.db)
    #[arg(long, value_name = "FILE")]
    pub beets: PathBuf,
    /// Report what would change without writing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format
    #[arg(long, value_parser = ["json", "csv"], default_value = "json")]
    pub format: String,
    /// Write here instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// Virtual path of a file or folder (under the mountpoint, or relative to it)
    #[arg(value_name = "PATH")]
    pub path: String,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Sizes, counters, dedup ratio, device and I/O backend (from the daemon,
    /// or read offline from the configured device when no daemon answers)
    Stats(CacheStatsArgs),
    /// Drop every cached chunk (through the daemon, or offline)
    Clear,
    /// Check the whole store: superblocks, journal, index, bitmap, every chunk's checksum
    Verify,
    /// Write an empty chunk store onto DEVICE (offline). Refuses a mounted
    /// or busy device always, and one holding a filesystem, partition table
    /// or store unless --force
    Format(CacheFormatArgs),
    /// Write a consistent backup of the whole cache to FILE
    Backup(CacheFileArgs),
    /// Check the backup FILE, write it onto the configured device (offline), and verify it
    Restore(CacheFileArgs),
}

#[derive(Debug, Args)]
pub struct CacheStatsArgs {
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CacheFormatArgs {
    /// A block device (partition, loop device) or an image file (created if missing)
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// Size of an image file, e.g. 10GiB [default: the configured [cache] size]
    #[arg(long, value_name = "S")]
    pub size: Option<crate::config::ByteSize>,
    /// Overwrite a filesystem, partition table or store found on DEVICE
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CacheFileArgs {
    /// The backup file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

fn template_help() -> String {
    format!(
        "Path template; `.$ext` is appended to the file name [env: MUSICFS_TEMPLATE] [default: {}]",
        musicfs_index::DEFAULT_TEMPLATE
    )
}

#[derive(Debug, Args)]
#[command(override_usage = "musicfs mount [OPTIONS] [SOURCE] <MOUNTPOINT>")]
pub struct MountArgs {
    /// Local directory of audio files to serve; given alone, this is the
    /// MOUNTPOINT and the origins come from the config file (or the catalog)
    #[arg(value_name = "SOURCE")]
    pub first: PathBuf,
    /// Where to mount
    #[arg(value_name = "MOUNTPOINT")]
    pub second: Option<PathBuf>,
    /// Stay in the foreground until unmounted, SIGINT/SIGTERM, or `musicfs shutdown`
    #[arg(long, short = 'f')]
    pub foreground: bool,
    #[arg(long, value_name = "T", help = template_help())]
    pub template: Option<String>,
    /// Serve every read from the daemon instead of kernel passthrough [env: MUSICFS_FUSE_PASSTHROUGH=false]
    #[arg(long)]
    pub no_passthrough: bool,
    /// FUSE worker threads [env: MUSICFS_FUSE_THREADS] [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf) [env: MUSICFS_FUSE_ALLOW_OTHER]
    #[arg(long)]
    pub allow_other: bool,
    /// Name of the origin SOURCE becomes
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub name: String,
    /// Internal: the readiness pipe of a detached daemon
    #[arg(long, hide = true, value_name = "FD")]
    pub ready_fd: Option<i32>,
}

impl MountArgs {
    /// `(SOURCE, MOUNTPOINT)`: with one positional it is the mountpoint.
    pub fn source_and_mountpoint(&self) -> (Option<PathBuf>, PathBuf) {
        match &self.second {
            Some(mp) => (Some(self.first.clone()), mp.clone()),
            None => (None, self.first.clone()),
        }
    }
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Local directory of audio files
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Name of the origin SOURCE becomes
    #[arg(long, value_name = "NAME", default_value = "local")]
    pub name: String,
    #[arg(long, value_name = "T", help = template_help())]
    pub template: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OriginsArgs {
    /// Print one JSON array
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Origin name (default: every origin)
    #[arg(value_name = "ORIGIN")]
    pub origin: Option<String>,
}

#[derive(Debug, Args)]
pub struct RescanArgs {
    /// Origin name (default: every origin)
    #[arg(value_name = "ORIGIN")]
    pub origin: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Seconds to wait for open files to close before unmounting anyway
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (after file, environment and flags) as TOML
    Show,
}

impl Cli {
    /// The flags that override config values.
    pub fn overrides(&self) -> Overrides {
        let g = &self.global;
        let mut o = Overrides {
            catalog: g.catalog.clone(),
            socket: g.socket.clone(),
            log_file: g.log_file.clone(),
            log_level: g.log_level,
            ..Overrides::default()
        };
        match &self.command {
            Command::Mount(m) => {
                o.template = m.template.clone();
                o.passthrough = m.no_passthrough.then_some(false);
                o.fuse_threads = m.threads.map(|n| n as usize);
                o.allow_other = m.allow_other.then_some(true);
            }
            Command::Scan(s) => o.template = s.template.clone(),
            _ => {}
        }
        o
    }

    /// Config sources: these flags and the process environment.
    pub fn sources(&self) -> Sources {
        Sources {
            config_flag: self.global.config.clone(),
            env: std::env::vars_os().collect(),
            flags: self.overrides(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let a =
            Cli::try_parse_from(["musicfs", "--socket", "/s", "status", "--json"]).expect("parse");
        let b =
            Cli::try_parse_from(["musicfs", "status", "--json", "--socket", "/s"]).expect("parse");
        assert_eq!(a.global.socket, Some(PathBuf::from("/s")));
        assert_eq!(b.global.socket, Some(PathBuf::from("/s")));
    }

    #[test]
    fn cache_commands_parse() {
        let c = Cli::try_parse_from([
            "musicfs",
            "cache",
            "format",
            "/dev/loop3",
            "--size",
            "64MiB",
            "--force",
        ])
        .expect("parse");
        let Command::Cache(CacheCommand::Format(f)) = &c.command else {
            panic!("not cache format")
        };
        assert_eq!(f.size, Some(crate::config::ByteSize(64 << 20)));
        assert!(f.force);
        assert!(
            Cli::try_parse_from(["musicfs", "cache", "format", "/x", "--size", "big"]).is_err()
        );
        let c = Cli::try_parse_from(["musicfs", "cache", "stats", "--json"]).expect("parse");
        assert!(matches!(
            c.command,
            Command::Cache(CacheCommand::Stats(CacheStatsArgs { json: true }))
        ));
    }

    #[test]
    fn mount_takes_one_or_two_positionals() {
        let c = Cli::try_parse_from([
            "musicfs",
            "mount",
            "/src",
            "/mnt",
            "--no-passthrough",
            "--threads",
            "3",
        ])
        .expect("parse");
        let Command::Mount(m) = &c.command else {
            panic!("not mount")
        };
        assert_eq!(
            m.source_and_mountpoint(),
            (Some("/src".into()), "/mnt".into())
        );
        let o = c.overrides();
        assert_eq!(o.passthrough, Some(false));
        assert_eq!(o.fuse_threads, Some(3));
        assert_eq!(o.allow_other, None, "absent switch does not override");

        let c = Cli::try_parse_from(["musicfs", "mount", "/mnt"]).expect("parse");
        let Command::Mount(m) = &c.command else {
            panic!("not mount")
        };
        assert_eq!(m.source_and_mountpoint(), (None, "/mnt".into()));
        assert!(Cli::try_parse_from(["musicfs", "mount", "/mnt", "--threads", "0"]).is_err());
    }
}
