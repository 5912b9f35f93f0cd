//! The agent's HTTP API: JSON under `/v1`, served on a Unix socket (mode 0660, so only root and
//! the socket's group reach it).
//!
//! Written against [`AgentView`], what the running agent can show, so the routes are tested
//! without a daemon and the daemon decides how a view is produced (a snapshot the loop
//! publishes, the journal read on demand). Every error is JSON, `{"error": "..."}`, with a
//! message that says what to do.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use vfguard_model::Bdf;

/// Which incidents to list (`GET /v1/incidents?open=true&owner=vm:web-7&pf=0000:3b:00.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentQuery {
    /// Only those not closed.
    pub open: bool,
    /// Only this owner (label, name or id).
    pub owner: Option<String>,
    /// Only on this PF.
    pub pf: Option<Bdf>,
}

/// A view failed (the journal could not be read): a 500 with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ViewError(pub String);

/// What the running agent can show. Values are JSON already in their documented shape.
pub trait AgentView: Send + Sync + 'static {
    /// `GET /v1/status`: version, mode, records read and lost, topology version, open incidents.
    fn status(&self) -> Value;
    /// `GET /v1/topology`: the host map in use (the shape of `vfguard inventory --json`).
    fn topology(&self) -> Value;
    /// `GET /v1/incidents`.
    fn incidents(&self, q: &IncidentQuery) -> Result<Value, ViewError>;
    /// `GET /v1/incidents/{id}`: with its evidence chain (the shape of `vfguard explain --json`).
    fn incident(&self, id: u64) -> Result<Option<Value>, ViewError>;
    /// `GET /v1/actions?limit=N`: the latest actions, newest last.
    fn actions(&self, limit: usize) -> Result<Value, ViewError>;
}

/// An error response: a status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: String) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{e} (see the daemon's log)"),
        }
    }
}

type Shared = Arc<dyn AgentView>;

/// The routes over `view`.
pub fn router(view: Arc<dyn AgentView>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/topology", get(topology))
        .route("/v1/incidents", get(incidents))
        .route("/v1/incidents/{id}", get(incident))
        .route("/v1/actions", get(actions))
        .fallback(not_found)
        .with_state(view)
}

async fn status(State(v): State<Shared>) -> Json<Value> {
    Json(v.status())
}

async fn topology(State(v): State<Shared>) -> Json<Value> {
    Json(v.topology())
}

/// Unknown keys are refused rather than ignored: a typo must not silently widen a filter.
fn only_keys(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown query parameter `{k}`; this route takes: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

async fn incidents(
    State(v): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only_keys(&q, &["open", "owner", "pf"])?;
    let open = match q.get("open").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "open={o}: expected true or false"
            )))
        }
    };
    let pf = match q.get("pf") {
        None => None,
        Some(p) => Some(
            p.parse::<Bdf>()
                .map_err(|e| ApiError::bad_request(format!("pf={p}: {e}")))?,
        ),
    };
    let query = IncidentQuery {
        open,
        owner: q.get("owner").cloned(),
        pf,
    };
    Ok(Json(v.incidents(&query)?))
}

async fn incident(
    State(v): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let n: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "incident id `{id}` is not a number; list them with GET /v1/incidents"
        ))
    })?;
    match v.incident(n)? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no incident {n}; list them with GET /v1/incidents"),
        }),
    }
}

async fn actions(
    State(v): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only_keys(&q, &["limit"])?;
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n @ 1..=10_000) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit={l}: expected a number from 1 to 10000"
                )))
            }
        },
    };
    Ok(Json(v.actions(limit)?))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no route {}; routes: /v1/status, /v1/topology, /v1/incidents, /v1/incidents/{{id}}, /v1/actions",
            uri.path()
        ),
    }
}

/// Binding the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon answers on the socket.
    #[error("{0} is in use by a running vfguard; stop it first, or give another --socket")]
    InUse(String),
    /// Creating, binding or serving failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The socket.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Binds `path` (its directory created, a stale socket from a crashed run replaced, mode 0660)
/// and serves `router` until `shutdown` completes.
pub async fn serve_unix(
    path: &Path,
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
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::InUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
    }
    // Bound under a private name, given its mode, then renamed into place: no client ever sees
    // the socket with the default mode.
    let staging = path.with_extension(format!("{}.new", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = tokio::net::UnixListener::bind(&staging).map_err(io("binding"))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o660))
        .and_then(|()| std::fs::rename(&staging, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&staging);
            io("setting up")(e)
        })?;
    let r = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(io("serving"));
    let _ = std::fs::remove_file(path);
    r
}
