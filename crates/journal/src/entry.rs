//! What goes into the journal (a [`Batch`], an intent, an outcome) and what comes back out
//! ([`Entry`] in commit order, and the row types of the queries).
//!
//! Bodies are stored as the model types' own serde JSON (split into a shared and an own part by
//! `body.rs`), so the journal holds exactly what the engine saw and said; the few columns beside
//! the body (`type`, `function`, `incident`) are derived here, once, for indexing and for
//! operators' `sqlite3` queries.

use vfguard_model::{Action, ActionOutcome, Bdf, Decision, IncidentId, Millis, Observation};

/// What one step of the engine produced, committed in one transaction: the observations that
/// mattered, the decisions they produced, and the source cursor covering them, so that a
/// restart resumes exactly after the last committed record and never sees half a step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// When (agent clock); every row of the batch carries it.
    pub at: Millis,
    /// Observations, each with the incident it was attached to (if any).
    pub observations: Vec<(Observation, Option<IncidentId>)>,
    /// Decisions, in the order the engine made them.
    pub decisions: Vec<Decision>,
    /// The source (`kmsg`) and the sequence number of the last record this batch covers.
    pub cursor: Option<(String, u64)>,
}

/// One journalled observation.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    /// Commit order (`observations.id`).
    pub seq: u64,
    /// When it was recorded.
    pub at: Millis,
    /// The incident it was attached to.
    pub incident: Option<IncidentId>,
    /// It.
    pub observation: Observation,
}

/// One journalled decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// Commit order (`decisions.id`).
    pub seq: u64,
    /// When it was recorded.
    pub at: Millis,
    /// It.
    pub decision: Decision,
}

/// One journalled action: its intent and, once reported, its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    /// Commit order of the intent (`actions.intent_seq`).
    pub seq: u64,
    /// The intent.
    pub action: Action,
    /// Commit order of the outcome (`actions.outcome_seq`).
    pub outcome_seq: Option<u64>,
    /// The outcome, when reported.
    pub outcome: Option<ActionOutcome>,
}

/// One record of the journal, as [`crate::Journal::replay`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// An observation.
    Observation(ObservationRow),
    /// A decision.
    Decision(DecisionRow),
    /// An action's intent, journalled before it was carried out.
    Intent {
        /// Commit order.
        seq: u64,
        /// The action (its `at` is when it was decided).
        action: Action,
    },
    /// An action's outcome.
    Outcome {
        /// Commit order.
        seq: u64,
        /// The outcome (its `at` is when it finished).
        outcome: ActionOutcome,
    },
}

impl Entry {
    /// Its place in commit order (unique across the journal, increasing).
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Observation(o) => o.seq,
            Entry::Decision(d) => d.seq,
            Entry::Intent { seq, .. } | Entry::Outcome { seq, .. } => *seq,
        }
    }

    /// When it happened on the agent's clock.
    pub fn at(&self) -> Millis {
        match self {
            Entry::Observation(o) => o.at,
            Entry::Decision(d) => d.at,
            Entry::Intent { action, .. } => action.at,
            Entry::Outcome { outcome, .. } => outcome.at,
        }
    }
}

/// `observations.type`: the serde tag of the variant.
pub(crate) fn observation_type(o: &Observation) -> &'static str {
    match o {
        Observation::Fault(_) => "fault",
        Observation::Aer { .. } => "aer",
        Observation::VfStats { .. } => "vf_stats",
        Observation::Outcome(_) => "outcome",
        Observation::Operator(_) => "operator",
        Observation::Tick => "tick",
    }
}

/// `observations.function`: the PCI function the observation is about, as far as it says.
pub(crate) fn observation_function(o: &Observation) -> Option<Bdf> {
    match o {
        Observation::Fault(ev) => ev.function.or(ev.pf).or(ev.device),
        Observation::Aer { function, .. } => Some(*function),
        Observation::VfStats { pf, .. } => Some(*pf),
        Observation::Operator(
            vfguard_model::OperatorRequest::Quarantine { function, .. }
            | vfguard_model::OperatorRequest::Release { function, .. },
        ) => Some(*function),
        Observation::Operator(vfguard_model::OperatorRequest::SetMode { .. })
        | Observation::Outcome(_)
        | Observation::Tick => None,
    }
}

/// The PF an observation names (fills `incidents.pf`).
pub(crate) fn observation_pf(o: &Observation) -> Option<Bdf> {
    match o {
        Observation::Fault(ev) => ev.pf,
        Observation::VfStats { pf, .. } => Some(*pf),
        _ => None,
    }
}

/// `decisions.type`: the serde tag of the variant.
pub(crate) fn decision_type(d: &Decision) -> &'static str {
    match d {
        Decision::IncidentOpened { .. } => "incident_opened",
        Decision::Attributed { .. } => "attributed",
        Decision::ThresholdCrossed { .. } => "threshold_crossed",
        Decision::Act(_) => "act",
        Decision::Suppressed { .. } => "suppressed",
        Decision::Contained { .. } => "contained",
        Decision::Restored { .. } => "restored",
        Decision::Closed { .. } => "closed",
        Decision::StateChanged { .. } => "state_changed",
        Decision::ModeChanged { .. } => "mode_changed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn tag(value: &serde_json::Value, key: &str) -> String {
        value[key].as_str().unwrap().to_owned()
    }

    #[test]
    fn type_columns_are_the_serde_tags() {
        for o in testdata::observations() {
            let json = serde_json::to_value(&o).unwrap();
            assert_eq!(observation_type(&o), tag(&json, "type"), "{o:?}");
        }
        for d in testdata::decisions(IncidentId(1)) {
            let json = serde_json::to_value(&d).unwrap();
            assert_eq!(decision_type(&d), tag(&json, "decision"), "{d:?}");
        }
    }

    #[test]
    fn entry_seq_and_at_come_from_the_record() {
        let action = testdata::action(7, IncidentId(1), 40);
        let e = Entry::Intent {
            seq: 3,
            action: action.clone(),
        };
        assert_eq!((e.seq(), e.at()), (3, 40));
        let e = Entry::Outcome {
            seq: 4,
            outcome: testdata::outcome(&action, 55, None),
        };
        assert_eq!((e.seq(), e.at()), (4, 55));
    }
}
