//! The victim side: lines a VF's own driver prints about what befell it (iavf "Failed to
//! communicate with PF", "Reset task did not complete, VF disabled"; `FaultEvent::victim`).
//!
//! They are events on the VF's own function, but its owner suffered them: on their own they
//! never open an incident, never count toward a rule's threshold, never undo or lift a
//! containment and never trigger an action. Where the function already has an incident (the
//! PF disabled the VF for MDD, and the VF's driver then reports its reset did not complete)
//! they join its evidence as context, marked [`VICTIM_CONTEXT`], so an explanation shows both
//! sides.
//!
//! They may corroborate a PF-side line: a line of the PF driver pinned on the VF within
//! [`CORROBORATES_WITHIN`] of the VF's own driver reporting trouble says so in its evidence
//! (its confidence is unchanged: the VF's word is the victim's, not a witness against it).

use vfguard_model::{Decision, IncidentId, IncidentState, Method, Millis, VICTIM_CONTEXT};

use crate::attribute::{Attributed, Key};
use crate::incident::Evidence;

use super::Engine;

/// How close in time a VF's own line and a PF-side line about it corroborate each other.
pub(super) const CORROBORATES_WITHIN: Millis = 5_000;

/// Functions remembered at most (the oldest lines are dropped first): memory stays bounded.
const REMEMBERED: usize = 4096;

impl Engine {
    /// Remembers a victim-side line of a function, for corroboration.
    pub(super) fn remember_victim(&mut self, a: &Attributed, now: Millis) {
        let Key::Function(f) = a.key else { return };
        if self.victims.len() >= REMEMBERED && !self.victims.contains_key(&f) {
            self.victims
                .retain(|_, (at, _)| now <= at.saturating_add(CORROBORATES_WITHIN));
            if self.victims.len() >= REMEMBERED {
                return;
            }
        }
        self.victims.insert(f, (now, a.event.catalog_id.clone()));
    }

    /// For a PF-side line pinned on a VF: whether the VF's own driver reported trouble close by.
    pub(super) fn corroboration(&self, a: &Attributed, now: Millis) -> Option<String> {
        let Key::Function(f) = a.key else { return None };
        let pf_side = matches!(
            a.method,
            Method::Direct | Method::Mac | Method::Absolute | Method::Sequence
        ) && a.event.device.is_some_and(|d| Some(d) == a.event.pf);
        if a.event.victim || !pf_side {
            return None;
        }
        let (at, id) = self.victims.get(&f)?;
        (now.abs_diff(*at) <= CORROBORATES_WITHIN).then(|| {
            format!(
                "corroborated by the VF's own driver ({id}, {} ms apart)",
                now.abs_diff(*at)
            )
        })
    }

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
