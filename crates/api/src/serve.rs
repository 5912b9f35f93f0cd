//! The listeners: the Unix socket (always), TCP (only with a bearer token). Each marks every
//! request with its authenticated [`Caller`], and holds its clients to its [`Limits`].
//!
//! # Design
//! Connections are served one by one with hyper's HTTP/1.1 connection (not `axum::serve`, which
//! has no limits): a semaphore of [`Limits::max_connections`] permits is taken *before* each
//! accept, so a connection beyond the cap stays in the kernel's backlog and costs no fd. Each
//! connection runs in its own task beside a clock of what it is doing (`Phase`): reading a
//! request's head (bounded by [`Limits::header_read_timeout`]), handled (bounded by the handler
//! itself: a mutation waits at most 30 s for the loop), writing the answer or idle between
//! requests (bounded by [`Limits::idle_timeout`] without progress). hyper's own
//! `header_read_timeout` is not used: its timer also runs while a keep-alive connection waits
//! for its next request, so it cannot tell a slow head from an idle connection. A graceful
//! shutdown stops accepting, lets each connection finish the request in flight (idle ones close
//! at once) and waits for all of them.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{header, Extensions, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::auth::{token_matches, user_name, Caller, Reloadable};
use crate::limits::Limits;

/// `EMFILE` and `ENFILE` (include/uapi/asm-generic/errno-base.h): the process's, or the
/// system's, file table is full.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The longest request head read (request line and headers); a longer one is answered 431.
/// Bodies are at most [`crate::routes::MAX_BODY`]; this bounds each connection's read buffer.
const MAX_HEAD: usize = 64 * 1024;

/// After an accept failed for want of file descriptors, wait this long before the next try
/// (the connection stays queued, and would fail again at once).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning per this long about failed accepts (the rest are counted in it).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Binding or serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon answers on the socket.
    #[error("{0} is in use by a running vfguard; stop it first, or give another --socket")]
    InUse(String),
    /// Something other than a socket is at the socket's path: never removed.
    #[error("{0} exists and is not a socket; give --socket a path of its own")]
    NotASocket(String),
    /// TCP was asked for without a token.
    #[error("the API on TCP {0} needs a bearer token (set token_file); refusing to serve it open")]
    NoToken(String),
    /// Creating, binding or serving failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The socket or address.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Binds `path` (its directory created, a stale socket from a crashed run replaced, mode 0660,
/// owned by `group` when given, so that its members may connect) and serves `router`, held to
/// `limits`, until `shutdown` completes (then waits for the connections to finish their request
/// in flight).
pub async fn serve_unix(
    path: &Path,
    group: Option<u32>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let io = |what| {
        let path = path.display().to_string();
        move |source| ServeError::Io { what, path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            return Err(ServeError::NotASocket(path.display().to_string()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::InUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
    }
    // Bound under a private name, given its mode, then renamed into place: no client ever sees
    // the socket with the default mode.
    let staging = path.with_extension(format!("{}.new", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging).map_err(io("binding"))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o660))
        .and_then(|()| match group {
            Some(gid) => std::os::unix::fs::chown(&staging, None, Some(gid)),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&staging, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&staging);
            io("setting up")(e)
        })?;
    let what = path.display().to_string();
    let accept = move |cx: &mut Context<'_>| {
        listener.poll_accept(cx).map_ok(|(stream, _)| {
            // The peer as the kernel tells it, its user named once per connection.
            let mut marks = Extensions::new();
            if let Ok(c) = stream.peer_cred() {
                let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
                marks.insert(Caller::Unix {
                    uid: c.uid(),
                    pid: c.pid(),
                    user: user_name(&passwd, c.uid()),
                });
            }
            (stream, marks)
        })
    };
    serve_connections(accept, router, limits, shutdown, &what).await;
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The TCP listener's bearer tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// May read and change.
    pub change: Vec<u8>,
    /// May only read (give this one to Prometheus).
    pub read: Option<Vec<u8>>,
}

async fn check_token(
    State(tokens): State<Reloadable<Tokens>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let tokens = tokens.get();
    let change = |t: &[u8]| token_matches(t, &tokens.change);
    let read = |t: &[u8]| tokens.read.as_deref().is_some_and(|r| token_matches(t, r));
    match presented {
        Some(t) if change(t) || read(t) => {
            let read_only = !change(t);
            req.extensions_mut().insert(Caller::Token { peer, read_only });
            next.run(req).await
        }
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "the bearer token is wrong; it is in the daemon's token_file"})),
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "this API needs `Authorization: Bearer <token>` (the daemon's token_file)"})),
        )
            .into_response(),
    }
}

/// Serves `router` on TCP `addr`, every request checked against `token`, held to `limits`; an
/// empty token is refused ([`ServeError::NoToken`]).
pub async fn serve_tcp(
    addr: SocketAddr,
    router: Router,
    token: impl Into<Reloadable<Tokens>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let token = token.into();
    if weak(&token.get()) {
        return Err(ServeError::NoToken(addr.to_string()));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            what: "binding",
            path: addr.to_string(),
            source,
        })?;
    serve_tcp_on(listener, router, token, limits, shutdown).await
}

/// An empty token (or read token) would let anyone in.
fn weak(t: &Tokens) -> bool {
    let empty = |b: &[u8]| b.iter().all(u8::is_ascii_whitespace);
    empty(&t.change) || t.read.as_deref().is_some_and(empty)
}

/// As [`serve_tcp`], on a listener already bound (tests bind port 0 and read it back).
pub async fn serve_tcp_on(
    listener: TcpListener,
    router: Router,
    token: impl Into<Reloadable<Tokens>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "tcp".to_owned(), |a| a.to_string());
    let token = token.into();
    if weak(&token.get()) {
        return Err(ServeError::NoToken(addr));
    }
    let router = router.layer(middleware::from_fn_with_state(token, check_token));
    let accept = move |cx: &mut Context<'_>| {
        listener.poll_accept(cx).map_ok(|(stream, peer)| {
            let mut marks = Extensions::new();
            marks.insert(ConnectInfo(peer));
            (stream, marks)
        })
    };
    serve_connections(accept, router, limits, shutdown, &addr).await;
    Ok(())
}

/// Accepts connections from `accept` while fewer than `limits.max_connections` are served,
/// serves each in its own task with `marks` added to every request, until `shutdown`; then
/// stops accepting (the listener is dropped), asks each connection to close after its request
/// in flight, and waits for all of them.
async fn serve_connections<Io, A>(
    mut accept: A,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    what: &str,
) where
    A: FnMut(&mut Context<'_>) -> Poll<io::Result<(Io, Extensions)>> + Send,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slots = u32::try_from(limits.max_connections)
        .unwrap_or(u32::MAX)
        .max(1);
    let permits = Arc::new(Semaphore::new(slots as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut warned = Throttle::default();
    tokio::pin!(shutdown);
    loop {
        // The slot first: without one the connection is not accepted and waits in the backlog.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            a = std::future::poll_fn(&mut accept) => a,
        };
        match accepted {
            Ok((io, marks)) => {
                let conn = serve_one(io, marks, router.clone(), limits, stop_rx.clone());
                tokio::spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                let exhausted = matches!(e.raw_os_error(), Some(EMFILE | ENFILE));
                if let Some(suppressed) = warned.ready(Instant::now()) {
                    if exhausted {
                        tracing::warn!(listener = what, error = %e, suppressed,
                            "api: file descriptors exhausted, connections wait in the backlog");
                    } else {
                        tracing::warn!(listener = what, error = %e, suppressed, "api: accept failed");
                    }
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    drop(accept);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is done.
    let _ = permits.acquire_many(slots).await;
}

/// An accept error about the one connection (it went away before it was accepted), not about
/// the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Serves one connection: HTTP/1.1 with keep-alive, each request marked with `marks`, the
/// connection's [`Phase`] held to `limits`; closes gracefully when `stop` turns true.
async fn serve_one<Io>(
    io: Io,
    marks: Extensions,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let clock = Arc::new(ConnClock::new(Instant::now()));
    let io = TokioIo::new(Watched {
        inner: io,
        clock: clock.clone(),
    });
    let svc_clock = clock.clone();
    let served = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().extend(marks.clone());
        svc_clock.handling();
        let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let last = n >= limits.max_requests_per_connection;
        let (router, clock) = (router.clone(), svc_clock.clone());
        async move {
            let Ok(mut resp) = router.oneshot(req).await;
            if last {
                // hyper closes the connection once this answer is sent.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            clock.responding();
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    clock: Some(clock),
                })
            }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = clock.deadline(&limits);
        tokio::select! {
            // An error here is the client's (it went away, sent garbage): nothing to report.
            _ = conn.as_mut() => return,
            () = clock.changed.notified() => {}
            () = sleep_until(deadline) => {
                if clock.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    // Dropping the connection closes it, without an answer.
                    return;
                }
            }
            r = stop.changed(), if !stopping => {
                if r.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, and since when: each phase has its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's head, or reading it: since the accept, or since the first byte
    /// that followed an idle spell ([`Limits::header_read_timeout`]).
    Head { since: Instant },
    /// The head was read and the handler runs (it bounds itself).
    Handling,
    /// The answer is being written; the last byte went out at `progress`
    /// ([`Limits::idle_timeout`] without progress).
    Responding { progress: Instant },
    /// Between two requests, since the last answer was handed over
    /// ([`Limits::idle_timeout`]).
    Idle { since: Instant },
}

/// One connection's [`Phase`], moved by its reads, writes and requests, watched by its task.
#[derive(Debug)]
struct ConnClock {
    state: Mutex<ClockState>,
    /// Told when the phase changed (the deadline may have moved earlier).
    changed: Notify,
}

#[derive(Debug)]
struct ClockState {
    phase: Phase,
    /// Bytes of a following request read while the answer was still being written
    /// (pipelined): its head's clock starts there.
    early_head: Option<Instant>,
}

impl ConnClock {
    fn new(now: Instant) -> ConnClock {
        ConnClock {
            state: Mutex::new(ClockState {
                phase: Phase::Head { since: now },
                early_head: None,
            }),
            changed: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut ClockState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, phase: Phase) {
        self.with(|s| s.phase = phase);
        self.changed.notify_one();
    }

    /// When the connection is to be dropped, if nothing happens before.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match self.with(|s| s.phase) {
            Phase::Head { since } => Some(since + limits.header_read_timeout),
            Phase::Handling => None,
            Phase::Responding { progress } => Some(progress + limits.idle_timeout),
            Phase::Idle { since } => Some(since + limits.idle_timeout),
        }
    }

    /// Bytes came in.
    fn read(&self, now: Instant) {
        let moved = self.with(|s| match s.phase {
            Phase::Idle { .. } => {
                s.phase = Phase::Head { since: now };
                true
            }
            Phase::Responding { .. } => {
                s.early_head.get_or_insert(now);
                s.phase = Phase::Responding { progress: now };
                false
            }
            Phase::Head { .. } | Phase::Handling => false,
        });
        if moved {
            self.changed.notify_one();
        }
    }

    /// Bytes went out.
    fn wrote(&self, now: Instant) {
        self.with(|s| {
            if let Phase::Responding { .. } = s.phase {
                s.phase = Phase::Responding { progress: now };
            }
        });
    }

    /// A request's head was read: its handler runs.
    fn handling(&self) {
        self.with(|s| s.early_head = None);
        self.set(Phase::Handling);
    }

    /// The handler answered: its answer is being written.
    fn responding(&self) {
        self.set(Phase::Responding {
            progress: Instant::now(),
        });
    }

    /// The answer was handed over whole.
    fn answered(&self) {
        let now = Instant::now();
        let phase = self.with(|s| match s.early_head.take() {
            Some(since) => Phase::Head { since },
            None => Phase::Idle { since: now },
        });
        self.set(phase);
    }
}

/// A connection's socket, telling its [`ConnClock`] of every byte read or written.
struct Watched<Io> {
    inner: Io,
    clock: Arc<ConnClock>,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Watched<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.read(Instant::now());
        }
        r
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Watched<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.wrote(Instant::now());
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.wrote(Instant::now());
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An answer's body that tells the connection's clock when hyper is done with it (it drops the
/// body once the last frame is taken): the connection is then idle.
struct Tracked {
    inner: Body,
    clock: Option<Arc<ConnClock>>,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(c) = self.clock.take() {
            c.answered();
        }
    }
}

/// Lets a warning through at most once per [`WARN_EVERY`], counting the ones held back.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when a warning may go out now.
    fn ready(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|l| now < l + WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}
