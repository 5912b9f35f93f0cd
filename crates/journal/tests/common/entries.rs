//! What replay must return for a committed batch: its observations, then its decisions, each
//! stamped with the batch's time, numbered on from `seq`. Shared by the integration tests only
//! (it names the journal's own types).

use vfguard_journal::{Batch, DecisionRow, Entry, ObservationRow};

/// The entries of `b`, numbered from `seq`.
pub fn of_batch(b: &Batch, mut seq: u64) -> Vec<Entry> {
    let mut out = Vec::with_capacity(b.observations.len() + b.decisions.len());
    for (observation, incident) in &b.observations {
        out.push(Entry::Observation(ObservationRow {
            seq,
            at: b.at,
            incident: *incident,
            observation: observation.clone(),
        }));
        seq += 1;
    }
    for decision in &b.decisions {
        out.push(Entry::Decision(DecisionRow {
            seq,
            at: b.at,
            decision: decision.clone(),
        }));
        seq += 1;
    }
    out
}
