//! A real OpenSSH sshd on 127.0.0.1 for the SFTP origin's tests.
//!
//! [`Sshd::start`] makes a tempdir holding a fresh host key, two client
//! ed25519 keys (one plain, one passphrase-protected), `authorized_keys`,
//! `known_hosts` (`[127.0.0.1]:PORT <host key>`) and an `sshd_config` that
//! only lets the test account `musicfs-sftp` in, only for `internal-sftp`.
//! The daemon runs in the foreground (`-D`) with a verbose log (`-E`).
//!
//! Things the test machine must provide (scripts/setup.sh does): the
//! `musicfs-sftp` account, `/usr/sbin/sshd`, `ssh-keygen`, `chpasswd`. A
//! missing piece is a failure ("run scripts/setup.sh"), never a skip.
//!
//! Side effects outside the tempdir, and why:
//! - the account's password is set (with `chpasswd`) to a random value,
//!   the same for every sshd of the whole machine's test runs: it is kept in
//!   `/run/musicfs-tests/sftp-password` (0600) so tests running in parallel,
//!   even in other processes, do not change it under each other;
//! - the served root and its ancestors below `/tmp` get `o+rx`, because the
//!   SFTP server reads them as `musicfs-sftp`. Nothing outside `/tmp` is
//!   touched: a root elsewhere must already be readable by that account.
//!
//! `StrictModes no`: sshd reads `authorized_keys` from the tempdir, whose
//! parent `/tmp` is world-writable, which strict modes refuse.
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The account the tests log in as (created by scripts/setup.sh).
pub const USER: &str = "musicfs-sftp";
const SSHD: &str = "/usr/sbin/sshd";
const PASSWORD_FILE: &str = "/run/musicfs-tests/sftp-password";
/// The passphrase of [`Sshd::encrypted_key_path`]'s key.
pub const KEY_PASSPHRASE: &str = "correct horse battery staple";

/// A running sshd; stopped (with every session process it started) on drop.
pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Sshd {
    /// Starts an sshd serving SFTP on a free port of 127.0.0.1. `root` is
    /// only made readable (see the module docs); the SFTP client names it
    /// by its absolute path.
    pub fn start(root: &Path) -> Sshd {
        preflight();
        open_up(root);
        let dir = tempfile::Builder::new()
            .prefix("musicfs-sshd-")
            .tempdir()
            .expect("tempdir for sshd");
        // sshd reads authorized_keys as the login user.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "", "musicfs-test-host");
        keygen(&d.join("client_ed25519"), "", "musicfs-test-client");
        keygen(
            &d.join("client_ed25519_encrypted"),
            KEY_PASSPHRASE,
            "musicfs-test-client-encrypted",
        );
        let mut authorized = String::new();
        for k in ["client_ed25519.pub", "client_ed25519_encrypted.pub"] {
            authorized.push_str(&fs::read_to_string(d.join(k)).unwrap());
        }
        write_mode(&d.join("authorized_keys"), authorized.as_bytes(), 0o644);
        fs::write(d.join("known_hosts_empty"), "").unwrap();

        let port = super::free_port();
        let host_pub = fs::read_to_string(d.join("host_ed25519.pub")).unwrap();
        let host_pub = host_pub.split_whitespace().take(2).collect::<Vec<_>>();
        fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {} {}\n", host_pub[0], host_pub[1]),
        )
        .unwrap();
        let config = format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {d}/host_ed25519\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             PermitRootLogin no\n\
             AllowUsers {USER}\n\
             AllowTcpForwarding no\n\
             X11Forwarding no\n\
             MaxStartups 100\n\
             MaxSessions 100\n\
             LogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n\
             ForceCommand internal-sftp\n",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).unwrap();
        let mut sshd = Sshd {
            dir,
            port,
            child: None,
        };
        sshd.start_again();
        sshd
    }

    /// Starts the daemon again (same port, keys and password) after
    /// [`Sshd::stop`]; the "server came back" half of outage tests.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let d = self.dir.path();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run /usr/sbin/sshd (run scripts/setup.sh)");
        self.child = Some(child);
        if !super::wait_port(self.port, Duration::from_secs(10)) {
            let log = self.log();
            self.stop();
            panic!(
                "sshd did not listen on 127.0.0.1:{}; its log:\n{log}",
                self.port
            );
        }
    }

    /// Stops the daemon and every session process it forked (they run in
    /// their own sessions, so killing the listener alone would leave open
    /// connections working: not what "the server went down" means).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as i32;
        let mut doomed = descendants(pid);
        doomed.push(pid);
        for p in &doomed {
            // SAFETY: kill(2) with a pid this test started (or one of its
            // descendants); no memory is involved.
            unsafe {
                libc::kill(*p, libc::SIGKILL);
            }
        }
        let _ = child.wait();
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn user(&self) -> &'static str {
        USER
    }
    /// The account's password (random, shared by every test sshd).
    pub fn password(&self) -> String {
        password().to_string()
    }
    /// The unencrypted client private key (OpenSSH format).
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }
    /// A client key encrypted with [`KEY_PASSPHRASE`].
    pub fn encrypted_key_path(&self) -> PathBuf {
        self.dir.path().join("client_ed25519_encrypted")
    }
    /// known_hosts holding this server's key as `[127.0.0.1]:PORT`.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }
    /// An empty known_hosts file: this server's key is unknown there.
    pub fn known_hosts_without_key(&self) -> PathBuf {
        self.dir.path().join("known_hosts_empty")
    }
    /// The last few KiB of the daemon's log, for failure messages.
    pub fn log(&self) -> String {
        let Ok(mut f) = fs::File::open(self.dir.path().join("sshd.log")) else {
            return "(no sshd log)".into();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        s
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn preflight() {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} is missing: run scripts/setup.sh"
    );
    let known = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(known, "the account {USER} is missing: run scripts/setup.sh");
    // sshd refuses to start without its privilege separation directory.
    fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
    password();
}

/// The account's password, set once per process; shared across processes
/// through [`PASSWORD_FILE`] under an exclusive lock.
fn password() -> &'static str {
    static PW: OnceLock<String> = OnceLock::new();
    PW.get_or_init(|| {
        fs::create_dir_all(Path::new(PASSWORD_FILE).parent().unwrap()).unwrap();
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(PASSWORD_FILE)
            .expect("open the SFTP test password file");
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .unwrap();
        // SAFETY: flock(2) on an fd we own for the duration of the call.
        let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
        assert_eq!(locked, 0, "flock {PASSWORD_FILE}");
        let mut pw = String::new();
        f.read_to_string(&mut pw).unwrap();
        let pw = pw.trim().to_string();
        let pw = if pw.len() == 24 && pw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            pw
        } else {
            let fresh = random_alnum(24);
            f.set_len(0).unwrap();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(fresh.as_bytes()).unwrap();
            fresh
        };
        // Set it every run: the file may outlive a reinstalled account.
        chpasswd(&pw);
        pw
    })
}

fn chpasswd(pw: &str) {
    // chpasswd may find /etc/shadow locked by another run for a moment.
    for _ in 0..20 {
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run chpasswd (run scripts/setup.sh)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{USER}:{pw}\n").as_bytes())
            .unwrap();
        if child.wait().map(|s| s.success()).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chpasswd could not set the password of {USER}");
}

fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut urandom = fs::File::open("/dev/urandom").expect("/dev/urandom");
    while out.len() < n {
        let mut b = [0u8; 1];
        urandom.read_exact(&mut b).unwrap();
        // 248 = 4 * 62: rejecting the rest keeps the choice uniform.
        if b[0] < 248 {
            out.push(ALPHABET[(b[0] % 62) as usize] as char);
        }
    }
    out
}

fn keygen(path: &Path, passphrase: &str, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("cannot run ssh-keygen (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `o+rx` on `root` and its ancestors strictly below `/tmp`.
fn open_up(root: &Path) {
    let root = root.canonicalize().expect("the served root must exist");
    for dir in root.ancestors() {
        if !dir.starts_with("/tmp") || dir == Path::new("/tmp") {
            continue;
        }
        let mode = fs::metadata(dir).unwrap().permissions().mode();
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o005)).unwrap();
    }
}

/// Every process below `pid`, from /proc's parent links.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The command name may hold spaces; fields resume after its ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}
