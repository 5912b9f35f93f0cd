//! The API's replies as types: what the daemon answers (its [`crate::AgentView`] returns them,
//! the routes serialise them) and what the CLI reads back (`vfguard status`, `incidents`,
//! `explain`, `quarantine`, `release`, `mode`). Field names and shapes are a scripted interface,
//! documented route by route in `docs/openapi.json`; the agent's tests
//! (`crates/agent/tests/openapi.rs`) validate every reply of a simulated run against it, and
//! check that every field here is documented there and every documented field is sent.
//!
//! | route | reply |
//! |---|---|
//! | `GET /v1/status` | [`Status`] |
//! | `GET /v1/topology` | [`TopologyReply`]: the host map, `null` while the agent starts |
//! | `GET /v1/incidents` | [`IncidentList`] of [`IncidentSummary`] |
//! | `GET /v1/incidents/{id}` | [`IncidentDetail`] |
//! | `GET /v1/actions` | [`ActionList`] of [`ActionEntry`] |
//! | `POST /v1/functions/{bdf}/quarantine`, `.../release`, `/v1/policy/mode` | [`OperatorAccepted`] |
//! | any error | [`ErrorBody`] |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vfguard_model::{
    Action, ActionOutcome, Bdf, Decision, IncidentId, IncidentState, Millis, Mode, Observation,
    Owner, Topology,
};

/// `GET /v1/status`: `{"state": "starting"}` until the loop has published once, then the
/// loop's state (`{"state": "running", "version": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// The agent is starting (reading the host, replaying its journal): nothing else to say.
    Starting,
    /// The loop runs; what it last published.
    Running(RunningStatus),
}

/// The running loop's state, published after each step (and each request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningStatus {
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The policy's mode now (a `POST /v1/policy/mode` shows here at once).
    pub mode: Mode,
    /// The agent's clock when this was published.
    pub now_ms: Millis,
    /// Kernel log records read.
    pub records: u64,
    /// Kernel log records lost (overwritten in the ring before they were read).
    pub lost: u64,
    /// Records from before the start left unread (`replay_window`).
    pub history_skipped: u64,
    /// The host map's version.
    pub topology_version: u64,
    /// The last read of the host failed: the map in use is the last good one.
    pub topology_stale: bool,
    /// PFs (and whole NICs) in the map.
    pub pfs: u64,
    /// VFs in the map.
    pub vfs: u64,
    /// Incidents not closed, by state (a state without any is left out).
    pub incidents: BTreeMap<IncidentState, u64>,
}

/// `GET /v1/topology`: the host map in use (the shape of `vfguard inventory --json`), `null`
/// until the loop has published one.
pub type TopologyReply = Option<Topology>;

/// One incident in a list (`GET /v1/incidents`, `vfguard incidents --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// Its id.
    pub id: IncidentId,
    /// The function it is about (a VF, a whole NIC, or a PF for PF-level faults).
    pub function: Bdf,
    /// That function's PF, once an observation or action named it.
    pub pf: Option<Bdf>,
    /// Where it stands.
    pub state: IncidentState,
    /// The function's owner when it was opened.
    pub owner: Option<Owner>,
    /// When it was opened.
    pub opened_ms: Millis,
    /// When a decision or observation last concerned it.
    pub updated_ms: Millis,
}

/// `GET /v1/incidents`: newest first.
pub type IncidentList = Vec<IncidentSummary>;

/// One incident with its evidence chain (`GET /v1/incidents/{id}`, `vfguard explain --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentDetail {
    /// Its id.
    pub id: IncidentId,
    /// The function it is about.
    pub function: Bdf,
    /// That function's PF, once known.
    pub pf: Option<Bdf>,
    /// Where it stands.
    pub state: IncidentState,
    /// The function's owner when it was opened.
    pub owner: Option<Owner>,
    /// When it was opened.
    pub opened_ms: Millis,
    /// What was observed about it (its evidence), in commit order.
    pub observations: Vec<ObservationAt>,
    /// What was decided about it, in commit order.
    pub decisions: Vec<DecisionAt>,
    /// Its actions with their outcomes, in commit order.
    pub actions: Vec<ActionEntry>,
}

/// An observation with the time it was journalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationAt {
    /// When.
    pub at_ms: Millis,
    /// What.
    pub observation: Observation,
}

/// A decision with the time it was journalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionAt {
    /// When.
    pub at_ms: Millis,
    /// What.
    pub decision: Decision,
}

/// An action (its intent) with its outcome, once reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEntry {
    /// The intent, as journalled before it was carried out.
    pub action: Action,
    /// How it went; `null` while it runs, or when the agent stopped before it reported.
    pub outcome: Option<ActionOutcome>,
}

/// `GET /v1/actions`: the latest actions, newest last.
pub type ActionList = Vec<ActionEntry>;

/// The answer (200) to an operator's request (quarantine, release, mode) the loop carried out:
/// what it decided and journalled, and the outcomes of the actions it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorAccepted {
    /// The agent's clock when it was carried out.
    pub at_ms: Millis,
    /// Its decisions, in order.
    pub decisions: Vec<Decision>,
    /// The outcomes of the actions carried out.
    pub outcomes: Vec<ActionOutcome>,
}

/// Every error's body: `{"error": "..."}`, a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
}
