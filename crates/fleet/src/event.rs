//! The messages on the bus: one JSON object each, `{"v": 1, "site", "host", "seq", "at_ms",
//! "type": "incident" | "action" | "outcome" | "heartbeat", ...}`. Field names are an interface
//! other tools consume (docs/fleet.md): add fields, never rename.

use serde::{Deserialize, Serialize};
use vfguard_model::{
    Action, ActionOutcome, Bdf, IncidentId, IncidentState, Millis, Owner, OwnerKind,
};

/// The version of the message format.
pub const VERSION: u32 = 1;

/// One message: who sent it, its place in the sender's journal, and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The format's version ([`VERSION`]).
    pub v: u32,
    /// The sender's site.
    pub site: String,
    /// The sender's host.
    pub host: String,
    /// The journal's commit-order number of what it reports (0 for a heartbeat).
    pub seq: u64,
    /// When the agent recorded it (its clock, milliseconds).
    pub at_ms: Millis,
    /// What it says.
    #[serde(flatten)]
    pub body: Body,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// An incident as it stands after a decision about it.
    Incident(IncidentEvent),
    /// An action's intent.
    Action(ActionEvent),
    /// An action's outcome.
    Outcome(OutcomeEvent),
    /// The agent is alive.
    Heartbeat(Heartbeat),
}

/// An incident after a decision: opened, a rule crossed, a state changed, closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    /// The incident's id on its host.
    pub incident: IncidentId,
    /// What happened to it: `opened`, `rule`, `state` or `closed`.
    pub change: String,
    /// The function it is about.
    pub function: Bdf,
    /// That function's PF, when known.
    pub pf: Option<Bdf>,
    /// Where it stands.
    pub state: IncidentState,
    /// The function's owner.
    pub owner: Option<Owner>,
    /// The owner's identity across hosts, for a VM.
    pub vm: Option<VmIdentity>,
    /// The owner's identity in Kubernetes, for a pod (absent from older agents' messages).
    #[serde(default)]
    pub pod: Option<PodIdentity>,
    /// The fault class: the policy rule that crossed its threshold (`mdd`, `spoof`, ...).
    pub class: Option<String>,
    /// The PF's driver, firmware and the host's kernel.
    pub platform: Platform,
}

/// A VM as the fleet knows it across hosts: its libvirt UUID (OpenStack's Nova instance UUID),
/// which a live migration keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmIdentity {
    /// The libvirt domain UUID (= the Nova instance UUID).
    pub uuid: String,
    /// The libvirt domain name.
    pub name: Option<String>,
    /// OpenStack's name for the instance (Nova's metadata in the domain XML), when present.
    pub nova_name: Option<String>,
    /// Its OpenStack project, when present.
    pub project: Option<String>,
    /// That project's UUID, when present.
    pub project_uuid: Option<String>,
}

impl VmIdentity {
    /// The identity of a VM owner with a UUID; `None` for anything else.
    pub fn of(owner: &Owner) -> Option<VmIdentity> {
        let meta = |k: &str| owner.metadata.get(k).cloned();
        match (owner.kind, &owner.id) {
            (OwnerKind::Vm, Some(uuid)) => Some(VmIdentity {
                uuid: uuid.clone(),
                name: owner.name.clone(),
                nova_name: meta("nova.name"),
                project: meta("nova.project"),
                project_uuid: meta("nova.project_uuid"),
            }),
            _ => None,
        }
    }
}

/// A Kubernetes pod as the fleet knows it: what its runtime's files on the node say
/// (`k8s.*` in the owner's metadata). The UID tells a pod apart from a later one of the same
/// name (a StatefulSet's `web-0` recreated, on this node or another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentity {
    /// The pod's Kubernetes namespace.
    pub k8s_namespace: String,
    /// The pod's name.
    pub k8s_pod: String,
    /// The container, when the pod has one besides its sandbox.
    pub k8s_container: Option<String>,
    /// The pod's UID, when the runtime records it.
    pub k8s_pod_uid: Option<String>,
}

impl PodIdentity {
    /// The identity of an owner Kubernetes named; `None` for anything else.
    pub fn of(owner: &Owner) -> Option<PodIdentity> {
        let meta = |k: &str| owner.metadata.get(k).cloned();
        Some(PodIdentity {
            k8s_namespace: meta("k8s.namespace")?,
            k8s_pod: meta("k8s.pod")?,
            k8s_container: meta("k8s.container"),
            k8s_pod_uid: meta("k8s.pod_uid"),
        })
    }
}

/// What a fault ran on: the same (driver, firmware, class) on many hosts is a platform bug.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// The PF's driver (`i40e`).
    pub driver: Option<String>,
    /// The adapter's firmware version, when the host map has it.
    pub firmware: Option<String>,
    /// The host's kernel release.
    pub kernel: Option<String>,
}

/// An action's intent, published before it is carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// The action.
    pub action: Action,
    /// The owner's identity across hosts, for a VM.
    pub vm: Option<VmIdentity>,
    /// The owner's identity in Kubernetes, for a pod (absent from older agents' messages).
    #[serde(default)]
    pub pod: Option<PodIdentity>,
}

/// An action's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeEvent {
    /// The outcome.
    pub outcome: ActionOutcome,
}

/// The agent is alive, and how its outbox stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's version.
    pub version: String,
    /// The host's kernel release.
    pub kernel: Option<String>,
    /// Messages the journal holds that the bus has not acknowledged yet.
    pub backlog: u64,
    /// Messages dropped because the backlog passed its bound while the bus was away.
    pub dropped: u64,
}
