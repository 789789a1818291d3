//! A TCP proxy that misbehaves on demand, put between an origin client and
//! a real server (sshd, SeaweedFS, a WebDAV server) to test timeouts,
//! retries, health checks and failover against real network failures
//! rather than mocks.
//!
//! Modes switch at runtime and apply to every connection, live or new:
//! pass, delay each chunk, hold everything (blackhole), slow drip, refuse
//! new connections; `cut` closes every live connection once. Everything
//! runs on std threads; dropping the proxy closes the listener and every
//! socket and joins every thread.
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Refuse,
    SlowDrip(u64),
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    /// Wakes pumps held by a mode (blackhole, delay, drip) when the mode
    /// changes, a connection is cut, or the proxy stops.
    changed: Condvar,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    bytes_forwarded: AtomicU64,
}

/// One proxied connection: both sockets, so `cut` and drop can close them
/// from outside the pumps.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    closed: AtomicBool,
}

impl Conn {
    /// Shuts both sockets (waking pumps blocked in reads and writes) and
    /// wakes pumps held by a mode.
    fn close(&self, shared: &Shared) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
        shared.wake_all();
    }
}

impl Shared {
    /// Notifies under the mode lock: a pump checks its conditions and
    /// starts waiting under that lock, so it cannot miss this.
    fn wake_all(&self) {
        let _mode = lock(&self.mode);
        self.changed.notify_all();
    }

    fn close_all(&self) {
        let conns: Vec<Arc<Conn>> = lock(&self.conns).drain().map(|(_, c)| c).collect();
        for conn in conns {
            conn.close(self);
        }
    }
}

/// A poisoned lock means a pump panicked; the proxy's state is still sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const CHUNK: usize = 16 * 1024;

impl FaultProxy {
    /// Listens on 127.0.0.1 at a free port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(Mode::Pass),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            bytes_forwarded: AtomicU64::new(0),
        });
        let accept_shared = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("faultproxy-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("start the fault proxy");
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Forward everything as it comes.
    pub fn pass(&self) {
        self.set(Mode::Pass);
    }

    /// Forward each chunk (either way) after `d`.
    pub fn delay(&self, d: Duration) {
        self.set(Mode::Delay(d));
    }

    /// Accept and hold connections, forward nothing, close nothing: a
    /// server that vanished without a word. What was held is forwarded
    /// once another mode is set.
    pub fn blackhole(&self) {
        self.set(Mode::Blackhole);
    }

    /// Reset new connections at once (live ones carry on).
    pub fn refuse(&self) {
        self.set(Mode::Refuse);
    }

    /// Close every live connection now, then pass.
    pub fn cut(&self) {
        self.set(Mode::Pass);
        self.shared.close_all();
    }

    /// Forward at most `bytes_per_sec` each way per connection.
    pub fn slow_drip(&self, bytes_per_sec: u64) {
        self.set(Mode::SlowDrip(bytes_per_sec.max(1)));
    }

    /// Bytes forwarded from upstream to clients so far.
    pub fn bytes_forwarded(&self) -> u64 {
        self.shared.bytes_forwarded.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn live_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    fn set(&self, mode: Mode) {
        let mut current = lock(&self.shared.mode);
        *current = mode;
        self.shared.changed.notify_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake_all();
        // Wake the blocking accept with a connection of our own; it sees
        // `stopping` and returns, dropping the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.shared.close_all();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if *lock(&shared.mode) == Mode::Refuse {
            reset(client);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("faultproxy-{id}"))
            .spawn(move || serve(id, client, conn_shared));
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        if let Ok(t) = spawned {
            threads.push(t);
        }
    }
}

/// Closes with RST rather than FIN: `SO_LINGER` of zero, then close.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger);
    drop(stream);
}

fn serve(id: u64, client: TcpStream, shared: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let conn = Arc::new(Conn {
        client: client2,
        upstream: upstream2,
        closed: AtomicBool::new(false),
    });
    {
        // Registered under the lock that drop drains, after checking
        // `stopping`, so no connection escapes the final close.
        let mut conns = lock(&shared.conns);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        conns.insert(id, conn.clone());
    }
    let (Ok(client_r), Ok(upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
        conn.close(&shared);
        return;
    };
    let down_shared = shared.clone();
    let down_conn = conn.clone();
    let downstream = std::thread::Builder::new()
        .name(format!("faultproxy-{id}-down"))
        .spawn(move || pump(upstream, client, &down_conn, &down_shared, true));
    pump(client_r, upstream_w, &conn, &shared, false);
    if let Ok(t) = downstream {
        let _ = t.join();
    }
    conn.close(&shared);
    lock(&shared.conns).remove(&id);
}

/// Copies `from` to `to` chunk by chunk under the current mode. On EOF it
/// passes the half-close on; on any error it closes the whole connection.
fn pump(mut from: TcpStream, mut to: TcpStream, conn: &Conn, shared: &Shared, counted: bool) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.close(shared);
                return;
            }
        };
        if forward(&buf[..n], &mut to, conn, shared, counted).is_err() {
            conn.close(shared);
            return;
        }
    }
}

/// Sends one chunk the way the mode says. `Err` when the connection is
/// closed or the proxy stops.
fn forward(
    mut data: &[u8],
    to: &mut TcpStream,
    conn: &Conn,
    shared: &Shared,
    counted: bool,
) -> Result<(), ()> {
    // A delay is counted from when the chunk arrived, even if the mode
    // changes to another delay meanwhile.
    let arrived = Instant::now();
    while !data.is_empty() {
        let mode = *lock(&shared.mode);
        let piece = match mode {
            Mode::Pass | Mode::Refuse => data.len(),
            Mode::Blackhole => {
                wait(shared, conn, mode, None)?;
                continue;
            }
            Mode::Delay(d) => {
                if arrived.elapsed() < d {
                    wait(shared, conn, mode, Some(arrived + d))?;
                    continue;
                }
                data.len()
            }
            // Pieces of a tenth of a second's worth, each sent after the
            // time it is worth: n bytes take at least n / rate.
            Mode::SlowDrip(rate) => {
                let piece = (rate / 10).clamp(1, data.len() as u64) as usize;
                let due = Instant::now() + Duration::from_secs_f64(piece as f64 / rate as f64);
                wait(shared, conn, mode, Some(due))?;
                if Instant::now() < due {
                    // Woken early: the mode changed; look again.
                    continue;
                }
                piece
            }
        };
        to.write_all(&data[..piece]).map_err(|_| ())?;
        if counted {
            shared
                .bytes_forwarded
                .fetch_add(piece as u64, Ordering::SeqCst);
        }
        data = &data[piece..];
    }
    Ok(())
}

/// Waits until `until`, or (when `None`) until something changes. Wakes
/// early when the mode is no longer `seen` (also if it changed before the
/// wait began); `Err` if the connection was closed or the proxy is stopping.
fn wait(shared: &Shared, conn: &Conn, seen: Mode, until: Option<Instant>) -> Result<(), ()> {
    let mode = lock(&shared.mode);
    let gone = || conn.closed.load(Ordering::SeqCst) || shared.stopping.load(Ordering::SeqCst);
    if gone() {
        return Err(());
    }
    if *mode != seen {
        return Ok(());
    }
    match until {
        None => {
            drop(shared.changed.wait(mode));
        }
        Some(t) => {
            let now = Instant::now();
            if t > now {
                drop(shared.changed.wait_timeout(mode, t - now));
            }
        }
    }
    if gone() {
        return Err(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes every byte back; one thread per connection. The listener
    /// thread ends with the test process (the server holds no resources
    /// the tests care about).
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut r = stream.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut stream);
                });
            }
        });
        addr
    }

    fn connect(proxy: &FaultProxy) -> TcpStream {
        let s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn echo(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        got
    }

    fn wait_until(what: &str, check: impl FnMut() -> bool) {
        crate::wait_until(what, Duration::from_secs(5), check)
    }

    #[test]
    fn faultproxy_pass_echoes_and_counts() {
        let proxy = FaultProxy::start(echo_server());
        let mut s = connect(&proxy);
        let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert_eq!(echo(&mut s, &msg), msg);
        // The forwarder counts after its write, so the client may have the
        // bytes a moment before the counter says so.
        wait_until("100,000 bytes counted", || {
            proxy.bytes_forwarded() == 100_000
        });
        assert_eq!(proxy.bytes_forwarded(), 100_000);
    }

    #[test]
    fn faultproxy_blackhole_holds_then_releases() {
        let proxy = FaultProxy::start(echo_server());
        let mut s = connect(&proxy);
        assert_eq!(echo(&mut s, b"hello"), b"hello");
        proxy.blackhole();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(b"lost?").unwrap();
        let mut buf = [0u8; 5];
        let err = s.read(&mut buf).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
        // New connections are accepted and held too.
        let mut fresh = connect(&proxy);
        fresh
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        fresh.write_all(b"x").unwrap();
        assert!(fresh.read(&mut buf).is_err());
        // Nothing was lost, only held.
        proxy.pass();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"lost?");
    }

    #[test]
    fn faultproxy_cut_closes_live_connections() {
        let proxy = FaultProxy::start(echo_server());
        let mut s = connect(&proxy);
        assert_eq!(echo(&mut s, b"hello"), b"hello");
        proxy.cut();
        let mut buf = [0u8; 8];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("read {n} bytes from a cut connection"),
            Err(e) => assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "a cut connection stayed open: {e}"
            ),
        }
        wait_until("no live connections", || proxy.live_connections() == 0);
        // And then it passes again.
        let mut again = connect(&proxy);
        assert_eq!(echo(&mut again, b"back"), b"back");
    }

    #[test]
    fn faultproxy_refuse_fails_new_connections_at_once() {
        let proxy = FaultProxy::start(echo_server());
        let mut live = connect(&proxy);
        // Accepted and through to the server before the switch.
        assert_eq!(echo(&mut live, b"early"), b"early");
        proxy.refuse();
        let start = Instant::now();
        if let Ok(mut s) = TcpStream::connect(proxy.addr()) {
            // Fails if the reset has already come in: so much the better.
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"anyone?");
            let mut buf = [0u8; 8];
            match s.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => panic!("a refused connection answered {n} bytes"),
                Err(e) => assert!(
                    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "a refused connection hung: {e}"
                ),
            }
        }
        assert!(start.elapsed() < Duration::from_secs(4));
        // Connections made before still work.
        assert_eq!(echo(&mut live, b"still"), b"still");
    }

    #[test]
    fn faultproxy_delay_adds_at_least_the_delay() {
        let proxy = FaultProxy::start(echo_server());
        let mut s = connect(&proxy);
        proxy.delay(Duration::from_millis(200));
        let start = Instant::now();
        assert_eq!(echo(&mut s, b"slow"), b"slow");
        // Delayed on the way there and on the way back.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(400),
            "round trip took {took:?}"
        );
    }

    #[test]
    fn faultproxy_slow_drip_limits_the_rate() {
        let proxy = FaultProxy::start(echo_server());
        let mut s = connect(&proxy);
        proxy.slow_drip(10_000);
        let start = Instant::now();
        let msg = vec![42u8; 5000];
        assert_eq!(echo(&mut s, &msg), msg);
        // 5000 bytes at 10 kB/s each way, pipelined: at least half a second.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(450), "took {took:?}");
    }

    #[test]
    fn faultproxy_drop_closes_everything() {
        let proxy = FaultProxy::start(echo_server());
        let addr = proxy.addr();
        let mut held = connect(&proxy);
        let mut passing = connect(&proxy);
        assert_eq!(echo(&mut passing, b"hi"), b"hi");
        proxy.blackhole();
        held.write_all(b"held").unwrap();
        wait_until("both connections live", || proxy.live_connections() == 2);
        let shared = Arc::downgrade(&proxy.shared);
        drop(proxy);
        // Every thread joined: nothing holds the shared state any more.
        assert_eq!(shared.strong_count(), 0);
        let mut buf = [0u8; 4];
        assert!(matches!(held.read(&mut buf), Ok(0) | Err(_)));
        assert!(matches!(passing.read(&mut buf), Ok(0) | Err(_)));
        assert!(
            TcpStream::connect(addr).is_err(),
            "the listener is still open"
        );
    }
}
