//! The `musicfs` binary: parses the command line, loads the config, and
//! runs the command. Exit codes: 0 ok, 1 runtime error, 2 usage or config
//! error; errors go to stderr prefixed "musicfs: ".
use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use musicfs_control::cli::{Cli, Command, ConfigCommand, MountArgs};
use musicfs_control::config::{Config, LogLevel};
use musicfs_control::daemon::{self, MountRequest};
use musicfs_control::detach::{self, Ready};
use musicfs_control::scanner::Scanner;
use musicfs_control::socket;
use musicfs_index::Template;
use musicfs_proto::v1 as pb;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `println!` that ends the program quietly when stdout is gone (`musicfs
/// status | head -1`) instead of panicking; the daemon keeps SIGPIPE ignored,
/// so this is how a closed pipe shows up.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod beets_cmd;
mod cache_cmd;
mod prefetch_cmd;
mod search_cmd;
mod tag_cmd;
mod vpath;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let config = match Config::load(&cli.sources()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("musicfs: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cli, &config);
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("musicfs: {e:#}");
            let usage = e
                .downcast_ref::<musicfs_control::Error>()
                .is_some_and(|e| e.is_usage());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Help and version go to stdout with status 0; real usage errors to
/// stderr, "musicfs: "-prefixed, status 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    eprint!("musicfs: {}", text.strip_prefix("error: ").unwrap_or(&text));
    ExitCode::from(2)
}

/// The daemon logs at the configured level (to the log file when detached:
/// its stderr is that file); short-lived commands only warn unless asked
/// for debug output.
fn init_logging(cli: &Cli, config: &Config) {
    let level = match (&cli.command, config.log_level) {
        (Command::Mount(_), level) => level,
        (_, level @ (LogLevel::Debug | LogLevel::Trace)) => level,
        (_, LogLevel::Error) => LogLevel::Error,
        _ => LogLevel::Warn,
    };
    // Debug and trace are for musicfs's own crates; the libraries under
    // them (lofty logs every tag frame at debug) stay at info.
    let ours = level.as_str();
    let base = match level {
        LogLevel::Debug | LogLevel::Trace => "info",
        other => other.as_str(),
    };
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{base},lofty=warn,h2=warn,hyper=warn,hyper_util=warn,tower=warn,\
         musicfs={ours},musicfs_control={ours},musicfs_index={ours},musicfs_origins={ours},\
         musicfs_fusefs={ours},musicfs_blockcache={ours}"
    ));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(cli: Cli, config: Config) -> Result<()> {
    match &cli.command {
        Command::Mount(m) => mount(m, &config),
        Command::Scan(s) => scan(&config, &s.name, &s.source),
        Command::Config(ConfigCommand::Show) => {
            out!("{}", config.to_toml().trim_end());
            Ok(())
        }
        Command::Status(s) => client(status(&config, s.json)),
        Command::Origins(a) => client(origins(&config, a.json)),
        Command::Verify(v) => client(verify(&config, v.origin.clone())),
        Command::Rescan(r) => client(rescan(&config, r.origin.clone())),
        Command::Shutdown(s) => client(shutdown(&config, s.timeout)),
        Command::Cache(c) => cache_cmd::run(c, &config),
        Command::Tag(t) => client(tag_cmd::run(t, &config)),
        Command::Search(s) => client(search_cmd::search(s, &config)),
        Command::Collection(c) => client(search_cmd::collection(c, &config)),
        Command::Import(i) => client(beets_cmd::import(i, &config)),
        Command::Export(e) => client(beets_cmd::export(e, &config)),
        Command::Prefetch(p) => client(prefetch_cmd::run(p, &config)),
    }
}

pub(crate) fn client(fut: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the client runtime")?
        .block_on(fut)
}

fn mount(m: &MountArgs, config: &Config) -> Result<()> {
    let (source, mountpoint) = m.source_and_mountpoint();
    if m.foreground {
        let ready = m.ready_fd.map(Ready::from_fd).transpose()?;
        let req = MountRequest {
            source,
            name: m.name.clone(),
            mountpoint,
        };
        daemon::run(config, &req, ready)?;
        return Ok(());
    }
    // Cheap checks here, so mistakes get status 2 without a daemon start.
    Template::parse(&config.template).map_err(musicfs_control::Error::from)?;
    daemon::check_mountpoint(&mountpoint)?;
    if let Some(src) = &source {
        if !src.is_dir() {
            return Err(musicfs_control::Error::Usage(format!(
                "source {} is not a directory",
                src.display()
            ))
            .into());
        }
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let pid = detach::spawn_detached(&args, &config.log_file)?;
    out!(
        "mounted at {} (daemon pid {pid}; log {})",
        mountpoint.display(),
        config.log_file.display()
    );
    Ok(())
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Progress shown on a terminal as a bar, otherwise as a line every few seconds.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    last_line: std::sync::Mutex<Instant>,
    label: String,
}

impl Progress {
    pub(crate) fn new(label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = progress_bar(0);
            b.set_prefix(label.to_string());
            b
        });
        Progress {
            bar,
            last_line: std::sync::Mutex::new(Instant::now()),
            label: label.to_string(),
        }
    }
    pub(crate) fn update(&self, total: u64, done: u64, current: &str) {
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(done);
                b.set_message(current.to_string());
            }
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    eprintln!("{}: {done}/{total}", self.label);
                }
            }
        }
    }
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn scan(config: &Config, name: &str, source: &std::path::Path) -> Result<()> {
    let template = Template::parse(&config.template).map_err(musicfs_control::Error::from)?;
    let catalog = daemon::open_catalog(&config.catalog)?;
    // Only the directory given is scanned, not the config's origins.
    let mut only = config.clone();
    only.origins.clear();
    let targets = daemon::build_origins(&catalog, &only, Some((name, source)))?;
    let scanner = Scanner::new(catalog, template, daemon::scan_options(config), targets);
    let target = scanner.target(name).cloned().context("origin vanished")?;
    let progress = Progress::new(&format!("scanning {}", source.display()));
    let outcome = scanner.full_scan(&target, &|p| progress.update(p.total, p.done, &p.current));
    progress.finish();
    let outcome = outcome?;
    let r = &outcome.report;
    // Errors recorded, not just reread: an unchanged bad file is still bad.
    out!(
        "scanned {} files ({} new or changed, {} errors) in {:.1} s",
        r.seen,
        r.changed,
        outcome.errors_recorded,
        r.elapsed.as_secs_f64()
    );
    Ok(())
}

/// How long a quick request (status, origins) may take before the daemon
/// is reported as not answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) async fn unary<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(reply) => Ok(reply.map_err(musicfs_control::Error::from)?.into_inner()),
        Err(_) => anyhow::bail!(
            "the daemon did not answer within {} s",
            REQUEST_TIMEOUT.as_secs()
        ),
    }
}

async fn status(config: &Config, json: bool) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    let s = unary(c.get_status(pb::GetStatusRequest { max_errors: 0 })).await?;
    if json {
        let errors: Vec<serde_json::Value> = s
            .errors
            .iter()
            .map(|e| serde_json::json!({"origin": e.origin, "path": e.path, "message": e.message, "at": e.at}))
            .collect();
        let v = serde_json::json!({
            "mounted": s.mounted,
            "mountpoint": s.mountpoint,
            "pid": s.pid,
            "version": s.version,
            "uptime_ms": s.uptime_ms,
            "template": s.template,
            "origins": s.origins,
            "files": s.files,
            "dirs": s.dirs,
            "scanning": s.scanning,
            "scans_completed": s.scans_completed,
            "scan_errors": s.scan_errors,
            "errors": errors,
            "passthrough_opens": s.passthrough_opens,
            "daemon_opens": s.daemon_opens,
            "open_handles": s.open_handles,
            "reads": s.reads,
            "bytes_read": s.bytes_read,
            "passthrough_active": s.passthrough_active,
            "passthrough_unavailable": s.passthrough_unavailable,
            "cache_state": s.cache_state,
            "cache_device": s.cache_device,
            "cache_error": s.cache_error,
            "cache_hit_bytes": s.cache_hit_bytes,
            "origin_bytes": s.origin_bytes,
            "direct_reads": s.direct_reads,
            "failovers": s.failovers,
            "exports": s.exports,
        });
        out!("{v}");
        return Ok(());
    }
    out!(
        "mounted:      {}",
        if s.mounted {
            s.mountpoint.as_str()
        } else {
            "no"
        }
    );
    out!("pid:          {}", s.pid);
    out!("template:     {}", s.template);
    out!("origins:      {}", s.origins);
    out!("files:        {} in {} directories", s.files, s.dirs);
    out!(
        "scans:        {} completed{}",
        s.scans_completed,
        if s.scanning { ", scanning now" } else { "" }
    );
    if s.scanning {
        let origins = unary(c.list_origins(pb::ListOriginsRequest {}))
            .await?
            .origins;
        for p in origins.iter().filter_map(|o| o.progress.as_ref()) {
            out!(
                "  {}: {}/{} read, {} errors{}",
                p.origin,
                p.done,
                p.total,
                p.errors,
                if p.current_path.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.current_path)
                }
            );
        }
    }
    out!(
        "opens:        {} passthrough, {} daemon, {} open now",
        s.passthrough_opens,
        s.daemon_opens,
        s.open_handles
    );
    match (&s.passthrough_unavailable, s.passthrough_active) {
        (Some(why), _) => out!("passthrough:  not in use: {why}"),
        (None, true) => out!("passthrough:  active"),
        (None, false) => out!("passthrough:  off"),
    }
    match s.cache_state.as_str() {
        "failed" => out!("cache:        unavailable: {}", s.cache_error),
        state => out!("cache:        {state}: {}", s.cache_device),
    }
    if s.cache_hit_bytes + s.origin_bytes + s.direct_reads > 0 {
        out!(
            "remote reads: {} bytes from the cache, {} fetched, {} uncached reads, {} failovers, {} files exported",
            s.cache_hit_bytes,
            s.origin_bytes,
            s.direct_reads,
            s.failovers,
            s.exports
        );
    }
    out!("scan errors:  {}", s.scan_errors);
    for e in &s.errors {
        out!("  {}: {}: {}", e.origin, e.path, e.message);
    }
    if (s.errors.len() as u64) < s.scan_errors {
        out!("  ... and {} more", s.scan_errors - s.errors.len() as u64);
    }
    Ok(())
}

async fn origins(config: &Config, json: bool) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    let list = unary(c.list_origins(pb::ListOriginsRequest {})).await?;
    if json {
        let all: Vec<serde_json::Value> = list
            .origins
            .iter()
            .map(|o| {
                let h = o.health.clone().unwrap_or_default();
                serde_json::json!({
                    "name": o.name, "kind": o.kind, "location": o.location,
                    "files": o.files, "scan_errors": o.scan_errors, "last_scan": o.last_scan,
                    "scanning": o.scanning, "priority": o.priority,
                    "bytes_read": o.bytes_read, "requests": o.requests, "errors": o.errors,
                    "scan_bytes": o.scan_bytes, "scan_files": o.scan_files,
                    "poll_interval_s": o.poll_interval_s,
                    "health": {
                        "state": h.state, "since": h.since, "last_error": h.last_error,
                        "consecutive_failures": h.consecutive_failures,
                        "latency_ms": h.latency_ms, "last_check": h.last_check,
                    },
                })
            })
            .collect();
        out!("{}", serde_json::Value::Array(all));
        return Ok(());
    }
    for o in list.origins {
        let h = o.health.unwrap_or_default();
        let per_track = o.scan_bytes.checked_div(o.scan_files).unwrap_or(0);
        out!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            o.name,
            o.kind,
            o.location,
            o.files,
            o.scan_errors,
            if h.state.is_empty() {
                "unknown"
            } else {
                &h.state
            },
            o.priority,
            o.bytes_read,
            per_track,
            h.last_error
        );
    }
    Ok(())
}

async fn verify(config: &Config, origin: Option<String>) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    let mut stream = c
        .verify_origin(pb::VerifyOriginRequest {
            name: origin.unwrap_or_default(),
        })
        .await
        .map_err(musicfs_control::Error::from)?
        .into_inner();
    let mut bars: std::collections::HashMap<String, Progress> = Default::default();
    let mut failed = 0;
    while let Some(msg) = stream
        .message()
        .await
        .map_err(musicfs_control::Error::from)?
    {
        let bar = bars
            .entry(msg.origin.clone())
            .or_insert_with(|| Progress::new(&format!("verifying {}", msg.origin)));
        if !msg.finished {
            bar.update(msg.total, msg.done, &msg.current);
            continue;
        }
        bar.finish();
        failed += msg.failed;
        out!(
            "verified {}: {} files hashed ({} bytes), {} changed and rescanned, {} unreadable",
            msg.origin,
            msg.hashed,
            msg.bytes,
            msg.changed,
            msg.failed
        );
        for f in &msg.failures {
            eprintln!("  {f}");
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} files could not be read");
    }
    Ok(())
}

async fn rescan(config: &Config, origin: Option<String>) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    let mut stream = c
        .rescan_origin(pb::RescanOriginRequest {
            origin: origin.unwrap_or_default(),
        })
        .await
        .map_err(musicfs_control::Error::from)?
        .into_inner();
    let mut bars: std::collections::HashMap<String, Progress> = Default::default();
    while let Some(msg) = stream
        .message()
        .await
        .map_err(musicfs_control::Error::from)?
    {
        let bar = bars
            .entry(msg.origin.clone())
            .or_insert_with(|| Progress::new(&format!("rescanning {}", msg.origin)));
        if !msg.finished {
            bar.update(msg.total, msg.done, &msg.current_path);
            continue;
        }
        bar.finish();
        if let Some(r) = msg.report {
            out!(
                "rescanned {}: {} files ({} new or changed, {} removed, {} errors) in {:.1} s",
                r.origin,
                r.scanned,
                r.changed,
                r.removed,
                r.errors_recorded,
                r.duration_ms as f64 / 1000.0
            );
        }
    }
    Ok(())
}

async fn shutdown(config: &Config, timeout_s: u64) -> Result<()> {
    let mut c = socket::connect(&config.socket).await?;
    let reply = c
        .shutdown(pb::ShutdownRequest {
            drain_timeout_ms: timeout_s.saturating_mul(1000).max(1),
        })
        .await
        .map_err(musicfs_control::Error::from)?
        .into_inner();
    if !reply.drained {
        eprintln!(
            "musicfs: {} files were still open after {timeout_s} s; unmounted anyway",
            reply.open_handles
        );
    }
    // Returns once the daemon is gone: socket removed and process exited.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let socket_gone = std::os::unix::net::UnixStream::connect(&config.socket).is_err();
        if socket_gone && !process_alive(reply.pid) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the daemon (pid {}) did not exit within 30 s", reply.pid)
}

/// Alive and not a zombie (a zombie has exited; its parent just has not reaped it).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}
