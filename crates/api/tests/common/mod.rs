//! A real listener on its own thread (a current-thread runtime, as the daemon's API runs), a
//! view that always answers the same, and a plain blocking HTTP/1.1 client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use vfguard_api::reply::{ActionList, EvidencePage, IncidentDetail, IncidentList, Status};
use vfguard_api::{Access, AgentView, IncidentQuery, Limits, Reply, ViewError};
use vfguard_model::{OperatorRequest, Topology};

/// Answers every read the same way; refuses every request.
pub struct Still;

impl AgentView for Still {
    fn status(&self) -> Status {
        Status::Starting
    }
    fn topology(&self) -> Option<Arc<Topology>> {
        None
    }
    fn incidents(&self, _: &IncidentQuery) -> Result<IncidentList, ViewError> {
        Ok(Vec::new())
    }
    fn incident(&self, _: u64, _: EvidencePage) -> Result<Option<IncidentDetail>, ViewError> {
        Ok(None)
    }
    fn actions(&self, _: usize) -> Result<ActionList, ViewError> {
        Ok(Vec::new())
    }
    fn metrics(&self) -> String {
        "# EOF\n".into()
    }
    fn submit(&self, _: OperatorRequest) -> Result<oneshot::Receiver<Reply>, ViewError> {
        Err(ViewError("no loop here".into()))
    }
}

/// A listener served on its own thread until dropped (then shut down gracefully).
pub struct Server {
    /// The socket's path (Unix) or address (TCP).
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

fn router() -> axum::Router {
    vfguard_api::router(Arc::new(Still), Access::root_and(0))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl Server {
    /// On a Unix socket in a temporary directory.
    pub fn unix(limits: Limits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("api.sock");
        let (tx, rx) = oneshot::channel::<()>();
        let p = path.clone();
        let thread = std::thread::spawn(move || {
            runtime()
                .block_on(vfguard_api::serve_unix(&p, None, router(), limits, async {
                    let _ = rx.await;
                }))
                .unwrap();
        });
        assert!(
            wait_until(Duration::from_secs(10), || path.exists()),
            "the socket never appeared"
        );
        Server {
            addr: path.display().to_string(),
            stop: Some(tx),
            thread: Some(thread),
            _dir: Some(dir),
        }
    }

    /// On TCP, loopback, behind the token `TOKEN`.
    pub fn tcp(limits: Limits) -> Server {
        let (tx, rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let tokens = vfguard_api::Tokens {
                change: TOKEN.as_bytes().to_vec(),
                read: None,
            };
            rt.block_on(vfguard_api::serve_tcp_on(
                listener,
                router(),
                tokens,
                limits,
                async {
                    let _ = rx.await;
                },
            ))
            .unwrap();
        });
        Server {
            addr: addr_rx.recv().unwrap().to_string(),
            stop: Some(tx),
            thread: Some(thread),
            _dir: None,
        }
    }

    /// A client of the Unix socket.
    pub fn connect_unix(&self) -> std::os::unix::net::UnixStream {
        std::os::unix::net::UnixStream::connect(&self.addr).unwrap()
    }

    /// A client over TCP.
    pub fn connect_tcp(&self) -> std::net::TcpStream {
        std::net::TcpStream::connect(&self.addr).unwrap()
    }

    /// Shuts the server down and waits for it, at most `within`; whether it stopped in time.
    pub fn stop_within(mut self, within: Duration) -> bool {
        let _ = self.stop.take().map(|s| s.send(()));
        let thread = self.thread.take().unwrap();
        let stopped = wait_until(within, || thread.is_finished());
        if stopped {
            thread.join().unwrap();
        }
        stopped
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The TCP listener's token.
pub const TOKEN: &str = "s3cret-token-for-tests";

/// `GET /v1/status`, keeping the connection open, with the token (ignored on the socket).
pub const GET_STATUS: &str = "GET /v1/status HTTP/1.1\r\nHost: vfguard\r\nAuthorization: Bearer s3cret-token-for-tests\r\n\r\n";

/// Polls `cond` until it holds or `within` has passed.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One answer read off `s`: its head (status line and headers, lowercased names) and body.
/// `None` when the connection closed (or timed out) before a whole answer.
pub fn read_response(s: &mut impl std::io::Read) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, String::from_utf8_lossy(&body).into_owned()))
}

/// Whether the peer closed `s`: a read gives end of file (or a reset) within `within`.
pub fn closed_within(s: &mut (impl std::io::Read + ReadTimeout), within: Duration) -> bool {
    s.set_timeout(Some(within));
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Sends `req` on `s`.
pub fn send(s: &mut impl std::io::Write, req: &str) {
    s.write_all(req.as_bytes()).unwrap();
}

/// Read timeouts on both kinds of stream.
pub trait ReadTimeout {
    /// Sets the read timeout.
    fn set_timeout(&self, t: Option<Duration>);
}

impl ReadTimeout for std::os::unix::net::UnixStream {
    fn set_timeout(&self, t: Option<Duration>) {
        self.set_read_timeout(t).unwrap();
    }
}

impl ReadTimeout for std::net::TcpStream {
    fn set_timeout(&self, t: Option<Duration>) {
        self.set_read_timeout(t).unwrap();
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
