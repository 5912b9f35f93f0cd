//! Incidents: the faults of one function (or of one PF, when no function is named), their
//! evidence, their owner over time, and what was done about them.

use std::collections::{BTreeSet, HashMap, VecDeque};

use vfguard_model::{
    ActionId, ActionKind, Bdf, Errno, FaultKind, IncidentId, IncidentState, Millis, Owner,
    OwnerKind, VfIndex, VfState,
};

use crate::attribute::{Key, Method};

/// Evidence lines kept per incident (older ones are counted, not kept: memory stays bounded).
pub const EVIDENCE_KEPT: usize = 32;

/// One line of evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// When.
    pub at: Millis,
    /// The fault kind.
    pub kind: FaultKind,
    /// Attribution method.
    pub method: Method,
    /// Confidence.
    pub confidence: f64,
    /// The explanation.
    pub text: String,
}

/// What was done, and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    /// Id.
    pub id: ActionId,
    /// Action name.
    pub name: String,
    /// The ladder rung index it came from (`None` for restores and operator requests).
    pub rung: Option<usize>,
    /// When decided.
    pub at: Millis,
    /// `None` while pending, then `Ok(())` or the error.
    pub result: Option<Result<(), Errno>>,
    /// Attempts of this rung so far (retries after EBUSY).
    pub attempt: u32,
}

/// An incident.
#[derive(Debug, Clone)]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Key.
    pub key: Key,
    /// The function.
    pub function: Option<Bdf>,
    /// Its PF.
    pub pf: Option<Bdf>,
    /// The PF's netdev (for VF knobs).
    pub pf_netdev: Option<String>,
    /// The VF index.
    pub vf: Option<VfIndex>,
    /// The owner now.
    pub owner: Option<Owner>,
    /// Owner changes: (when, label).
    pub owner_history: Vec<(Millis, String)>,
    /// Where it stands (moved only by the engine's transitions, each a `StateChanged`).
    pub state: IncidentState,
    /// Opened at.
    pub opened: Millis,
    /// Last fault at.
    pub last_fault: Millis,
    /// Faults counted.
    pub faults: u64,
    /// Kinds seen.
    pub kinds: BTreeSet<FaultKind>,
    /// The newest evidence (at most [`EVIDENCE_KEPT`]).
    pub evidence: VecDeque<Evidence>,
    /// Best attribution so far.
    pub method: Method,
    /// Its confidence.
    pub confidence: f64,
    /// Per rule: the times of the newest faults in its window (at most `threshold` kept).
    pub windows: HashMap<usize, VecDeque<Millis>>,
    /// Next ladder rung.
    pub rung: usize,
    /// Actions.
    pub actions: Vec<ActionRecord>,
    /// When the last action was decided.
    pub last_action_at: Option<Millis>,
    /// Faults since that action.
    pub faults_since_action: u64,
    /// Contained at (cleared when the containment is lifted or undone).
    pub contained_at: Option<Millis>,
    /// The ladder rung whose action contained it last (a re-offence resumes there).
    pub contain_rung: Option<usize>,
    /// The driver contained the VF itself (i40e disabled it after MDD, ice latched its
    /// mailbox): a VF reset lifts that, and a restore must reset the VF.
    pub driver_disabled: bool,
    /// Faults after a restore so far (each doubles the next cool-down, up to 16 times).
    pub reoffences: u32,
    /// When the last notification was decided (an uncontained incident is notified again).
    pub notified_at: Option<Millis>,
    /// `faults` when it was.
    pub faults_at_notice: u64,
    /// The VF's state before the first action (what restore puts back).
    pub pre_state: Option<VfState>,
    /// Restored at.
    pub restored_at: Option<Millis>,
    /// A restore is under way.
    pub restoring: bool,
    /// Faults went on naming its requester after the agent contained it, the last one then:
    /// the attribution may be wrong (notified once; it is never escalated on for them, and
    /// the incident stays open while they go on, so the doubt is not forgotten).
    pub doubted: Option<Millis>,
}

impl Incident {
    /// A new incident.
    pub fn new(id: IncidentId, key: Key, now: Millis) -> Incident {
        Incident {
            id,
            key,
            function: None,
            pf: None,
            pf_netdev: None,
            vf: None,
            owner: None,
            owner_history: Vec::new(),
            state: IncidentState::Open,
            opened: now,
            last_fault: now,
            faults: 0,
            kinds: BTreeSet::new(),
            evidence: VecDeque::new(),
            method: Method::Unattributed,
            confidence: 0.0,
            windows: HashMap::new(),
            rung: 0,
            actions: Vec::new(),
            last_action_at: None,
            faults_since_action: 0,
            contained_at: None,
            contain_rung: None,
            driver_disabled: false,
            reoffences: 0,
            notified_at: None,
            faults_at_notice: 0,
            pre_state: None,
            restored_at: None,
            restoring: false,
            doubted: None,
        }
    }

    /// Whether its owner is a tenant (a VM or a container): only tenants are ever acted on.
    pub fn tenant(&self) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|o| matches!(o.kind, OwnerKind::Vm | OwnerKind::Netns))
    }

    /// Adds a line of evidence, dropping the oldest past the cap.
    pub fn add_evidence(&mut self, e: Evidence) {
        if self.evidence.len() == EVIDENCE_KEPT {
            self.evidence.pop_front();
        }
        self.evidence.push_back(e);
    }

    /// What puts the function back as it was, if anything: the VF state captured before our
    /// first action, or a reset for a VF its driver disabled; nothing once restored.
    pub fn restore_kind(&self) -> Option<ActionKind> {
        match (&self.pre_state, self.driver_disabled) {
            _ if self.restored_at.is_some() => None,
            (Some(s), _) => Some(ActionKind::Restore(Box::new(s.clone()))),
            (None, true) => Some(ActionKind::ResetVf),
            (None, false) => None,
        }
    }

    /// The owner's label.
    pub fn owner_label(&self) -> String {
        self.owner
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), Owner::label)
    }
}
