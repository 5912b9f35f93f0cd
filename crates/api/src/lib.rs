//! The agent's HTTP API: JSON under `/v1` and OpenMetrics under `/metrics`, served on a Unix
//! socket (mode 0660, so only root and the socket's group reach it) and, when configured, on TCP
//! behind a bearer token.
//!
//! Written against [`AgentView`], what the running agent can show and be asked, so the routes
//! are tested without a daemon and the daemon decides how a view is produced (a snapshot the
//! loop publishes, the journal read on demand, requests handed to the loop). The routes are
//! documented in `docs/openapi.json`, checked against [`ROUTES`] by the tests.
//!
//! - [`view`]: the trait and the query type;
//! - [`reply`]: the replies as types, shared by the daemon (which answers with them) and the
//!   CLI (which reads them back);
//! - [`openapi`]: replies checked against `docs/openapi.json`, for the tests;
//! - [`routes`]: the handlers, their validation and their errors;
//! - [`auth`]: who is asking ([`Caller`]) and who may change things ([`Access`]);
//! - [`serve`]: the Unix and TCP listeners;
//! - [`limits`]: what each listener grants its clients (connections, timeouts, requests);
//! - [`exposition`]: OpenMetrics, or the classic text format for scrapers that do not ask for it.

pub mod auth;
pub mod exposition;
pub mod limits;
pub mod openapi;
pub mod reply;
pub mod routes;
pub mod serve;
pub mod view;

pub use auth::{Access, Caller, Reloadable};
pub use limits::Limits;
pub use routes::{router, ROUTES};
pub use serve::{serve_tcp, serve_tcp_on, serve_unix, ServeError, Tokens};
/// What a caller may ask the agent to do (quarantine, release, mode), with who asked: the same
/// type the engine takes as `Observation::Operator`, so a request is journalled as it came.
pub use vfguard_model::OperatorRequest as Control;
pub use view::{AgentView, IncidentQuery, Refusal, Reply, ViewError};
