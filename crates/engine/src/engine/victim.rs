//! The victim side: lines a VF's own driver prints about what befell it (iavf "Failed to
//! communicate with PF", "Reset task did not complete, VF disabled"; `FaultEvent::victim`).
//!
//! They are events on the VF's own function, but its owner suffered them: on their own they
//! never open an incident, never count toward a rule's threshold, never undo or lift a
//! containment and never trigger an action. Where the function already has an incident (the
//! PF disabled the VF for MDD, and the VF's driver then reports its reset did not complete)
//! they join its evidence as context, marked [`VICTIM_CONTEXT`], so an explanation shows both
//! sides.

use vfguard_model::{Decision, IncidentId, IncidentState, Millis, VICTIM_CONTEXT};

use crate::attribute::Attributed;
use crate::incident::Evidence;

use super::Engine;

impl Engine {
    /// Attaches a victim-side event to incident `id` as context: evidence, nothing counted.
    pub(super) fn victim_context(
        &mut self,
        id: IncidentId,
        a: &Attributed,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        if inc.state == IncidentState::Closed {
            return;
        }
        let text = format!(
            "{VICTIM_CONTEXT}{}: {:?}; {}",
            a.event.catalog_id, a.event.message, a.evidence
        );
        out.push(Decision::Attributed {
            incident: id,
            method: a.method,
            confidence: a.confidence,
            evidence: text.clone(),
        });
        inc.add_evidence(Evidence {
            at: now,
            kind: a.event.kind,
            method: a.method,
            confidence: a.confidence,
            text,
        });
    }
}
