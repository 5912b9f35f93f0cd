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
    /// How much of each list is shown: an incident in a storm has millions of observations,
    /// and a reply holds only the ends of each list.
    #[serde(flatten)]
    pub counts: EvidenceCounts,
}

/// The size of an [`IncidentDetail`]'s lists: the first and last entries of each list are
/// shown (`page`); the rows between them are counted, not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceCounts {
    /// Which entries of each list are shown: the first `first` and the last `last` (the rows
    /// omitted lie between them); `null` when the lists are whole (`vfguard explain --all`).
    pub page: Option<EvidencePage>,
    /// Observations the journal holds for the incident (shown and omitted).
    pub observations_total: u64,
    /// Observations not shown: they lie after the first `page.first` entries of `observations`.
    pub observations_omitted: u64,
    /// Observations retention deleted (counted from journal schema 4 on).
    pub observations_dropped: u64,
    /// Decisions the journal holds about the incident.
    pub decisions_total: u64,
    /// Decisions not shown (after the first `page.first`).
    pub decisions_omitted: u64,
    /// Decisions retention deleted.
    pub decisions_dropped: u64,
    /// Actions the journal holds for the incident (never deleted).
    pub actions_total: u64,
    /// Actions not shown (after the first `page.first`).
    pub actions_omitted: u64,
}

impl EvidenceCounts {
    /// The counts of lists shown whole, of these lengths, with nothing dropped.
    pub fn whole(observations: usize, decisions: usize, actions: usize) -> EvidenceCounts {
        EvidenceCounts {
            page: None,
            observations_total: observations as u64,
            decisions_total: decisions as u64,
            actions_total: actions as u64,
            ..EvidenceCounts::default()
        }
    }
}

/// How many entries of each of an incident's lists to show: the first `first` and the last
/// `last` (`GET /v1/incidents/{id}?first=50&last=50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidencePage {
    /// Entries from the start of each list.
    pub first: u32,
    /// Entries from its end.
    pub last: u32,
}

impl EvidencePage {
    /// The most entries a request may ask for at either end of a list.
    pub const MAX: u32 = 10_000;
}

impl Default for EvidencePage {
    /// 50 at each end: the start of the story and where it stands.
    fn default() -> EvidencePage {
        EvidencePage {
            first: 50,
            last: 50,
        }
    }
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
