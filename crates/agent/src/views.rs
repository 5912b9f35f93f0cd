//! What the daemon shows: the API's replies ([`vfguard_api::reply`]) built from the agent and
//! the journal, shared by the CLI (`incidents`, `explain` on a journal file) and the API, and
//! [`LiveView`], the API's view of a running agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use vfguard_api::reply::{
    ActionEntry, ActionList, DecisionAt, EvidenceCounts, EvidencePage,
    IncidentDetail as DetailReply, IncidentList, IncidentSummary, ObservationAt, OperatorAccepted,
    RunningStatus, Status,
};
use vfguard_api::{AgentView, IncidentQuery, Reply, ViewError};
use vfguard_engine::Policy;
use vfguard_model::{IncidentId, IncidentState, Millis, OperatorRequest, Topology};

use crate::agent::{Agent, StepReport};
use crate::metrics::Metrics;

/// What the signal handlers and the API ask of the loop (one channel, read between steps).
pub enum Control {
    /// Finish the step in flight and stop.
    Stop,
    /// Replace the policy (SIGHUP).
    Reload(Box<Policy>),
    /// An operator's request; the loop answers on the sender once decided and journalled.
    Operator(OperatorRequest, oneshot::Sender<Reply>),
}
use vfguard_journal::{
    ActionRow, DecisionRow, IncidentFilter, IncidentPage, IncidentRow, Journal, ObservationRow,
};

/// One incident in a list (`vfguard incidents --json`, `GET /v1/incidents`).
pub fn incident_row(i: &IncidentRow) -> IncidentSummary {
    IncidentSummary {
        id: i.id,
        function: i.function,
        pf: i.pf,
        state: i.state,
        owner: i.owner.clone(),
        opened_ms: i.opened_at,
        updated_ms: i.updated_at,
    }
}

/// One action with its outcome.
pub fn action_row(a: &ActionRow) -> ActionEntry {
    ActionEntry {
        action: a.action.clone(),
        outcome: a.outcome.clone(),
    }
}

/// One observation as the API shows it.
pub fn observation_at(o: &ObservationRow) -> ObservationAt {
    ObservationAt {
        at_ms: o.at,
        observation: o.observation.clone(),
    }
}

/// One decision as the API shows it.
pub fn decision_at(r: &DecisionRow) -> DecisionAt {
    DecisionAt {
        at_ms: r.at,
        decision: r.decision.clone(),
    }
}

/// One incident with the ends of its evidence chain, as `page` asked, and the counts of what
/// lies between (`vfguard explain --json`, `GET /v1/incidents/{id}`).
pub fn incident_detail(d: &IncidentPage, page: EvidencePage) -> DetailReply {
    DetailReply {
        counts: EvidenceCounts {
            page: Some(page),
            observations_total: d.observations.total,
            observations_omitted: d.observations.omitted(),
            observations_dropped: d.observations.dropped,
            decisions_total: d.decisions.total,
            decisions_omitted: d.decisions.omitted(),
            decisions_dropped: d.decisions.dropped,
            actions_total: d.actions.total,
            actions_omitted: d.actions.omitted(),
        },
        observations: d.observations.iter().map(observation_at).collect(),
        decisions: d.decisions.iter().map(decision_at).collect(),
        actions: d.actions.iter().map(action_row).collect(),
        ..incident_head(&d.incident)
    }
}

/// An incident's own fields, with empty lists: what `vfguard explain --all` writes before it
/// streams the lists.
pub fn incident_head(i: &IncidentRow) -> DetailReply {
    DetailReply {
        id: i.id,
        function: i.function,
        pf: i.pf,
        state: i.state,
        owner: i.owner.clone(),
        opened_ms: i.opened_at,
        observations: Vec::new(),
        decisions: Vec::new(),
        actions: Vec::new(),
        counts: EvidenceCounts::default(),
    }
}

/// An incident's page, read from the journal: the first and last entries of each list as
/// `page` asks; `None` when the journal has no such incident.
pub fn read_incident(
    journal: &Journal,
    id: IncidentId,
    page: EvidencePage,
) -> Result<Option<DetailReply>, vfguard_journal::JournalError> {
    let d = journal.incident_page(id, page.first as usize, page.last as usize)?;
    Ok(d.as_ref().map(|d| incident_detail(d, page)))
}

/// `GET /v1/status` of the running loop at `now`; `incidents`: its
/// [`Agent::incidents_by_state`].
pub fn running_status(
    agent: &Agent,
    now: Millis,
    incidents: &BTreeMap<&'static str, u64>,
) -> RunningStatus {
    let t = agent.topology();
    RunningStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: agent.policy().mode,
        now_ms: now,
        records: agent.records,
        lost: agent.lost,
        history_skipped: agent.history_skipped,
        topology_version: t.version,
        topology_stale: t.stale.is_some(),
        pfs: t.pfs.len() as u64,
        vfs: t.pfs.iter().map(|p| p.vfs.len() as u64).sum(),
        incidents: incidents
            .iter()
            .filter_map(|(name, n)| Some((IncidentState::from_name(name)?, *n)))
            .collect(),
    }
}

/// The answer to an operator's request the loop carried out at `now` (`report`: what it did).
pub fn operator_accepted(report: &StepReport, now: Millis) -> OperatorAccepted {
    OperatorAccepted {
        at_ms: now,
        decisions: report.decisions.iter().map(|(_, d)| d.clone()).collect(),
        outcomes: report.outcomes.clone(),
    }
}

/// The API's view of the running agent: a snapshot the loop publishes after each step, and the
/// journal (opened per request, read-only use; WAL lets it read while the loop writes).
pub struct LiveView {
    journal: PathBuf,
    status: Mutex<Status>,
    /// The host map as last published; serialised only when asked for.
    topology: Mutex<Option<Arc<Topology>>>,
    metrics: Arc<Metrics>,
    control: mpsc::Sender<Control>,
}

impl LiveView {
    /// Over the journal at `journal`, nothing published yet; requests go to the loop on
    /// `control`.
    pub fn new(
        journal: PathBuf,
        metrics: Arc<Metrics>,
        control: mpsc::Sender<Control>,
    ) -> LiveView {
        LiveView {
            journal,
            status: Mutex::new(Status::Starting),
            topology: Mutex::new(None),
            metrics,
            control,
        }
    }

    /// Publishes the loop's state.
    pub fn publish_status(&self, s: RunningStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Status::Running(s);
    }

    /// Publishes the host map (when its version changed).
    pub fn publish_topology(&self, t: Arc<Topology>) {
        *self.topology.lock().unwrap_or_else(PoisonError::into_inner) = Some(t);
    }

    fn journal(&self) -> Result<Journal, ViewError> {
        Journal::open_read_only(&self.journal).map_err(|e| ViewError(e.to_string()))
    }
}

impl AgentView for LiveView {
    fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn topology(&self) -> Option<Arc<Topology>> {
        self.topology
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn incidents(&self, q: &IncidentQuery) -> Result<IncidentList, ViewError> {
        let filter = IncidentFilter {
            open_only: q.open,
            owner: q.owner.clone(),
            pf: q.pf,
        };
        let rows = self
            .journal()?
            .incidents(&filter)
            .map_err(|e| ViewError(e.to_string()))?;
        Ok(rows.iter().map(incident_row).collect())
    }

    fn incident(&self, id: u64, page: EvidencePage) -> Result<Option<DetailReply>, ViewError> {
        read_incident(&self.journal()?, IncidentId(id), page).map_err(|e| ViewError(e.to_string()))
    }

    fn actions(&self, limit: usize) -> Result<ActionList, ViewError> {
        let rows = self
            .journal()?
            .actions(limit)
            .map_err(|e| ViewError(e.to_string()))?;
        Ok(rows.iter().map(action_row).collect())
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn submit(&self, req: OperatorRequest) -> Result<oneshot::Receiver<Reply>, ViewError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Operator(req, tx))
            .map_err(|_| ViewError("the agent loop has stopped".into()))?;
        Ok(rx)
    }
}
