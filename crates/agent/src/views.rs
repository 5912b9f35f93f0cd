//! What the daemon shows: JSON shapes shared by the CLI (`incidents`, `explain`) and the API, and
//! [`LiveView`], the API's view of a running agent.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use vfguard_api::{AgentView, IncidentQuery, Reply, ViewError};
use vfguard_engine::Policy;
use vfguard_model::OperatorRequest;

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
use vfguard_journal::{ActionRow, IncidentDetail, IncidentFilter, IncidentRow, Journal};

/// One incident in a list (`vfguard incidents --json`, `GET /v1/incidents`).
pub fn incident_row(i: &IncidentRow) -> Value {
    json!({
        "id": i.id,
        "function": i.function,
        "pf": i.pf,
        "state": i.state.as_str(),
        "owner": i.owner,
        "opened_ms": i.opened_at,
        "updated_ms": i.updated_at,
    })
}

/// One action with its outcome.
pub fn action_row(a: &ActionRow) -> Value {
    json!({"action": a.action, "outcome": a.outcome})
}

/// One incident with its evidence chain (`vfguard explain --json`, `GET /v1/incidents/{id}`).
pub fn incident_detail(d: &IncidentDetail) -> Value {
    let evidence: Vec<Value> = d
        .observations
        .iter()
        .map(|o| json!({"at_ms": o.at, "observation": o.observation}))
        .collect();
    let decisions: Vec<Value> = d
        .decisions
        .iter()
        .map(|r| json!({"at_ms": r.at, "decision": r.decision}))
        .collect();
    let actions: Vec<Value> = d.actions.iter().map(action_row).collect();
    json!({
        "id": d.incident.id,
        "function": d.incident.function,
        "pf": d.incident.pf,
        "state": d.incident.state.as_str(),
        "owner": d.incident.owner,
        "opened_ms": d.incident.opened_at,
        "observations": evidence,
        "decisions": decisions,
        "actions": actions,
    })
}

/// The API's view of the running agent: a snapshot the loop publishes after each step, and the
/// journal (opened per request, read-only use; WAL lets it read while the loop writes).
pub struct LiveView {
    journal: PathBuf,
    status: Mutex<Value>,
    /// The host map as last published; serialised only when asked for.
    topology: Mutex<Option<Arc<vfguard_model::Topology>>>,
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
            status: Mutex::new(json!({"state": "starting"})),
            topology: Mutex::new(None),
            metrics,
            control,
        }
    }

    /// Publishes the loop's state.
    pub fn publish_status(&self, v: Value) {
        if let Ok(mut s) = self.status.lock() {
            *s = v;
        }
    }

    /// Publishes the host map (when its version changed).
    pub fn publish_topology(&self, t: Arc<vfguard_model::Topology>) {
        if let Ok(mut slot) = self.topology.lock() {
            *slot = Some(t);
        }
    }

    fn journal(&self) -> Result<Journal, ViewError> {
        Journal::open_read_only(&self.journal).map_err(|e| ViewError(e.to_string()))
    }
}

impl AgentView for LiveView {
    fn status(&self) -> Value {
        self.status.lock().map_or(Value::Null, |s| s.clone())
    }

    fn topology(&self) -> Value {
        let t = self.topology.lock().ok().and_then(|t| t.clone());
        t.map_or(Value::Null, |t| {
            serde_json::to_value(&*t).unwrap_or_default()
        })
    }

    fn incidents(&self, q: &IncidentQuery) -> Result<Value, ViewError> {
        let filter = IncidentFilter {
            open_only: q.open,
            owner: q.owner.clone(),
            pf: q.pf,
        };
        let rows = self
            .journal()?
            .incidents(&filter)
            .map_err(|e| ViewError(e.to_string()))?;
        Ok(Value::Array(rows.iter().map(incident_row).collect()))
    }

    fn incident(&self, id: u64) -> Result<Option<Value>, ViewError> {
        let d = self
            .journal()?
            .incident(vfguard_model::IncidentId(id))
            .map_err(|e| ViewError(e.to_string()))?;
        Ok(d.as_ref().map(incident_detail))
    }

    fn actions(&self, limit: usize) -> Result<Value, ViewError> {
        let rows = self
            .journal()?
            .actions(limit)
            .map_err(|e| ViewError(e.to_string()))?;
        Ok(Value::Array(rows.iter().map(action_row).collect()))
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
