//! The routes: JSON under `/v1`, `/metrics` in OpenMetrics text. Every reply is one of
//! [`crate::reply`]'s types; every error is JSON, `{"error": "..."}` ([`ErrorBody`]), with a
//! message that says what to do; a malformed request is a 4xx, never a panic or a 500.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use vfguard_model::{Bdf, OperatorRequest};

use crate::auth::{Access, Caller, Reloadable};
use crate::reply::{
    ActionList, ErrorBody, EvidencePage, IncidentDetail, IncidentList, OperatorAccepted, Status,
};
use crate::view::{AgentView, IncidentQuery, Refusal, ViewError};

/// Every route, as (method, path): the OpenAPI document (`docs/openapi.json`) is checked
/// against this list, and this list against the router, by the tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("GET", "/v1/topology"),
    ("GET", "/v1/incidents"),
    ("GET", "/v1/incidents/{id}"),
    ("GET", "/v1/actions"),
    ("POST", "/v1/functions/{bdf}/quarantine"),
    ("POST", "/v1/functions/{bdf}/release"),
    ("POST", "/v1/policy/mode"),
    ("GET", "/metrics"),
];

/// A request body larger than this is refused (413): every body here is a line of JSON.
pub const MAX_BODY: usize = 64 * 1024;

/// How long a mutation waits for the loop's answer (one step, plus a slow actuator).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// An error response: a status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> ApiError {
        // The answer says "see the daemon's log": the log must say it.
        tracing::error!(error = %e, "an API request failed inside the daemon");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e} (see the daemon's log)"),
        )
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = match r {
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, r.to_string())
    }
}

#[derive(Clone)]
struct Shared {
    view: Arc<dyn AgentView>,
    access: Reloadable<Access>,
}

/// The routes over `view`; `access` says who may change things over the Unix socket (a
/// [`Reloadable`] lets a configuration reload replace it).
pub fn router(view: Arc<dyn AgentView>, access: impl Into<Reloadable<Access>>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/topology", get(topology))
        .route("/v1/incidents", get(incidents))
        .route("/v1/incidents/{id}", get(incident))
        .route("/v1/actions", get(actions))
        .route("/v1/functions/{bdf}/quarantine", post(quarantine))
        .route("/v1/functions/{bdf}/release", post(release))
        .route("/v1/policy/mode", post(set_mode))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Shared {
            view,
            access: access.into(),
        })
}

async fn status(State(s): State<Shared>) -> Json<Status> {
    Json(s.view.status())
}

/// The map is shared with the loop ([`std::sync::Arc`]): serialised from it, never copied.
async fn topology(State(s): State<Shared>) -> Response {
    let t = s.view.topology();
    Json(t.as_deref()).into_response()
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
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<IncidentList>, ApiError> {
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
    let view = s.view.clone();
    Ok(Json(blocking(move || view.incidents(&query)).await??))
}

/// Runs a view's journal read off the async threads: a slow read (SQLite waiting on the loop's
/// commit) never holds up the other requests or the listeners.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "an API journal read failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the journal read failed: {e} (see the daemon's log)"),
        )
    })
}

/// A path segment the router could not decode (bad percent-encoding): a JSON 400.
fn segment(p: Result<UrlPath<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|UrlPath(s)| s).map_err(|e| {
        ApiError::bad_request(format!("{}; see GET /v1/status for the API", e.body_text()))
    })
}

/// `first=N` or `last=N`: from 0 to [`EvidencePage::MAX`], else a 400 that says so.
fn page_end(q: &HashMap<String, String>, key: &str, default: u32) -> Result<u32, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n <= EvidencePage::MAX => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "{key}={v}: expected a number from 0 to {}",
                EvidencePage::MAX
            ))),
        },
    }
}

async fn incident(
    State(s): State<Shared>,
    id: Result<UrlPath<String>, PathRejection>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<IncidentDetail>, ApiError> {
    only_keys(&q, &["first", "last"])?;
    let default = EvidencePage::default();
    let page = EvidencePage {
        first: page_end(&q, "first", default.first)?,
        last: page_end(&q, "last", default.last)?,
    };
    let id = segment(id)?;
    let n: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "incident id `{id}` is not a number; list them with GET /v1/incidents"
        ))
    })?;
    if i64::try_from(n).is_err() {
        // The journal numbers incidents with SQLite integers: none is this large.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident {n}; list them with GET /v1/incidents"),
        ));
    }
    let view = s.view.clone();
    match blocking(move || view.incident(n, page)).await?? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident {n}; list them with GET /v1/incidents"),
        )),
    }
}

async fn actions(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ActionList>, ApiError> {
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
    let view = s.view.clone();
    Ok(Json(blocking(move || view.actions(limit)).await??))
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format.
async fn metrics(State(s): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let text = s.view.metrics();
    if crate::exposition::wants_openmetrics(accept) {
        (
            [(header::CONTENT_TYPE, crate::exposition::OPENMETRICS)],
            text,
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, crate::exposition::CLASSIC)],
            crate::exposition::to_classic(&text),
        )
            .into_response()
    }
}

/// The caller's label when they may change things.
fn authorise(s: &Shared, caller: Option<&Caller>) -> Result<String, ApiError> {
    s.access
        .get()
        .may_change(caller)
        .map_err(|(code, message)| {
            ApiError::new(
                StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN),
                message,
            )
        })
}

fn function(bdf: &str) -> Result<Bdf, ApiError> {
    bdf.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "`{bdf}` is not a PCI address ({e}); write it as 0000:3b:02.1"
        ))
    })
}

/// Parses a JSON body; `example` shows the expected shape in the error. An empty body is `{}`.
fn body<T: DeserializeOwned>(
    raw: Result<Bytes, BytesRejection>,
    example: &str,
) -> Result<T, ApiError> {
    let raw = raw.map_err(|e| {
        ApiError::new(
            e.status(),
            format!(
                "{}; a body is at most {MAX_BODY} bytes of JSON",
                e.body_text()
            ),
        )
    })?;
    let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &raw
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("body: {e}; expected JSON like {example}")))
}

async fn submit(s: &Shared, req: OperatorRequest) -> Result<Json<OperatorAccepted>, ApiError> {
    let rx = s.view.submit(req)?;
    match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(Ok(v))) => Ok(Json(v)),
        Ok(Ok(Err(refusal))) => Err(refusal.into()),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent loop stopped before answering; nothing was done (see the daemon's log)",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the agent loop did not answer within {} s; the request may still be carried out: \
                 check GET /v1/actions",
                ANSWER_WITHIN.as_secs()
            ),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineBody {
    reason: Option<String>,
}

async fn quarantine(
    State(s): State<Shared>,
    caller: Option<Extension<Caller>>,
    bdf: Result<UrlPath<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<OperatorAccepted>, ApiError> {
    let by = authorise(&s, caller.as_deref())?;
    let function = function(&segment(bdf)?)?;
    let b: QuarantineBody = body(raw, r#"{"reason": "tenant reported a compromised guest"}"#)?;
    let reason = b.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "a reason is required: {\"reason\": \"why this function is quarantined\"}; it goes in the journal",
        ));
    }
    if reason.len() > 1024 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "the reason must be one line of at most 1024 bytes",
        ));
    }
    submit(
        &s,
        OperatorRequest::Quarantine {
            function,
            reason: reason.to_owned(),
            by,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {}

async fn release(
    State(s): State<Shared>,
    caller: Option<Extension<Caller>>,
    bdf: Result<UrlPath<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<OperatorAccepted>, ApiError> {
    let by = authorise(&s, caller.as_deref())?;
    let function = function(&segment(bdf)?)?;
    let ReleaseBody {} = body(raw, "{}")?;
    submit(&s, OperatorRequest::Release { function, by }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    mode: Option<String>,
}

async fn set_mode(
    State(s): State<Shared>,
    caller: Option<Extension<Caller>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<OperatorAccepted>, ApiError> {
    let by = authorise(&s, caller.as_deref())?;
    let b: ModeBody = body(raw, r#"{"mode": "observe"}"#)?;
    let Some(mode) = b.mode.as_deref().and_then(vfguard_model::Mode::parse) else {
        return Err(ApiError::bad_request(format!(
            "mode {}: expected one of observe, dry_run, enforce",
            b.mode
                .map_or_else(|| "missing".to_owned(), |m| format!("`{m}`"))
        )));
    };
    submit(&s, OperatorRequest::SetMode { mode, by }).await
}

fn route_list() -> String {
    ROUTES
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {}; routes: {}", uri.path(), route_list()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}; routes: {}",
            uri.path(),
            route_list()
        ),
    )
}
