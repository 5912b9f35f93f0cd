//! What the API asks of the running agent: [`AgentView`] to show, and operator requests to
//! hand to the loop.

use std::sync::Arc;

use tokio::sync::oneshot;
use vfguard_model::{Bdf, OperatorRequest, Topology};

use crate::reply::{
    ActionList, EvidencePage, IncidentDetail, IncidentList, OperatorAccepted, Status,
};

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

/// Why the agent did not carry out an operator's request; each becomes a 4xx with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The function or incident is not there (404).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the state (409): nothing to release, already quarantined.
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but cannot be done (422).
    #[error("{0}")]
    Unprocessable(String),
}

/// The loop's answer to an operator request: what it decided, or why not.
pub type Reply = Result<OperatorAccepted, Refusal>;

/// What the running agent can show and be asked, as the typed replies of [`crate::reply`]
/// (the routes serialise them in their documented shape).
pub trait AgentView: Send + Sync + 'static {
    /// `GET /v1/status`: version, mode, records read and lost, topology version, open incidents.
    fn status(&self) -> Status;
    /// `GET /v1/topology`: the host map in use (the shape of `vfguard inventory --json`);
    /// `None` (`null`) until the loop has published one.
    fn topology(&self) -> Option<Arc<Topology>>;
    /// `GET /v1/incidents`.
    fn incidents(&self, q: &IncidentQuery) -> Result<IncidentList, ViewError>;
    /// `GET /v1/incidents/{id}?first=N&last=N`: with its evidence chain (the shape of `vfguard
    /// explain --json`), the first and last entries of each list as `page` asks, with counts.
    fn incident(&self, id: u64, page: EvidencePage) -> Result<Option<IncidentDetail>, ViewError>;
    /// `GET /v1/actions?limit=N`: the latest actions, newest last.
    fn actions(&self, limit: usize) -> Result<ActionList, ViewError>;
    /// `GET /metrics`: the OpenMetrics text exposition (the route converts it for scrapers that
    /// want the classic format).
    fn metrics(&self) -> String;
    /// Hands an operator request (quarantine, release, mode) to the loop; the receiver gets the
    /// loop's answer once it has decided (and journalled) it. `Err` when the loop is gone.
    fn submit(&self, req: OperatorRequest) -> Result<oneshot::Receiver<Reply>, ViewError>;
}
