//! The listeners: the Unix socket (always), TCP (only with a bearer token). Each marks every
//! request with its authenticated [`Caller`].

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::{TcpListener, UnixListener};

use crate::auth::{token_matches, user_name, Caller, Reloadable};

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

/// The peer of a Unix connection, as the kernel tells it (its user named once per connection,
/// not per request).
#[derive(Debug, Clone)]
struct Peer(Option<Caller>);

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Peer {
        Peer(stream.io().peer_cred().ok().map(|c| {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            Caller::Unix {
                uid: c.uid(),
                pid: c.pid(),
                user: user_name(&passwd, c.uid()),
            }
        }))
    }
}

async fn mark_unix(ConnectInfo(peer): ConnectInfo<Peer>, mut req: Request, next: Next) -> Response {
    if let Some(c) = peer.0 {
        req.extensions_mut().insert(c);
    }
    next.run(req).await
}

/// Binds `path` (its directory created, a stale socket from a crashed run replaced, mode 0660,
/// owned by `group` when given, so that its members may connect) and serves `router` until
/// `shutdown` completes.
pub async fn serve_unix(
    path: &Path,
    group: Option<u32>,
    router: Router,
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
    let app = router
        .layer(middleware::from_fn(mark_unix))
        .into_make_service_with_connect_info::<Peer>();
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(io("serving"));
    let _ = std::fs::remove_file(path);
    r
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

/// Serves `router` on TCP `addr`, every request checked against `token`; an empty token is
/// refused ([`ServeError::NoToken`]).
pub async fn serve_tcp(
    addr: SocketAddr,
    router: Router,
    token: impl Into<Reloadable<Tokens>>,
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
    serve_tcp_on(listener, router, token, shutdown).await
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "tcp".to_owned(), |a| a.to_string());
    let token = token.into();
    if weak(&token.get()) {
        return Err(ServeError::NoToken(addr));
    }
    let app = router
        .layer(middleware::from_fn_with_state(token, check_token))
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io {
            what: "serving",
            path: addr,
            source,
        })
}
