//! Reconsidering an attribution by requester ID when the faults outlive the containment.
//!
//! An IOMMU fault (or an AER error by its TLP header) names the requester ID of the function
//! that sent the DMA. Once the agent contained that function (unplugged it from its VM, forced
//! its link down, paused its VM), it cannot be sending DMA: faults that still name the same
//! requester past the hold-down say the attribution was wrong, not that the containment failed
//! (a requester printed without its segment can be another segment's function, or a function
//! that is not in the map at all). Climbing the ladder would punish the same function again,
//! so the engine reconsiders instead:
//! - if exactly one other function of the map answers to the printed requester (the same
//!   bus:dev.fn in another segment) and it is not contained, the faults are its, by
//!   elimination (`requester`, 0.6);
//! - else it raises an alarm, once: a notice that faults continue from a contained requester
//!   and the attribution may be wrong. The contained function is never escalated on for them,
//!   then or after its cool-down restores it (its faults by requester ID are evidence only).

use vfguard_model::{ActionKind, Decision, IncidentId, Method, Millis, RuleRef, Topology};

use crate::attribute::{Attributed, Key};
use crate::incident::Evidence;
use crate::policy::Mode;
use crate::segment;

use super::Engine;

impl Engine {
    /// Whether `a` names, by requester ID, the function of incident `id` that the agent
    /// contained more than the hold-down ago (in `enforce` mode: a dry run contains nothing,
    /// so faults going on say nothing about the attribution).
    pub(super) fn requester_outlives_containment(
        &self,
        id: IncidentId,
        a: &Attributed,
        now: Millis,
    ) -> bool {
        let Some(inc) = self.incidents.get(&id) else {
            return false;
        };
        let by_requester =
            matches!(a.method, Method::Requester | Method::TlpHeader) && a.event.kind.is_offence();
        // Once doubted, always: restored after its cool-down, the function is not punished
        // again for the faults that made the agent doubt.
        let contained = self.policy.mode == Mode::Enforce
            && inc.state == vfguard_model::IncidentState::Contained
            && !inc.driver_disabled
            && inc
                .contained_at
                .is_some_and(|c| now > c.saturating_add(self.policy.hold_down));
        by_requester && (contained || inc.doubted.is_some())
    }

    /// Re-attributes `a` by elimination, or raises the alarm (see the module docs); returns
    /// the incident the fault was filed under.
    pub(super) fn reconsider(
        &mut self,
        id: IncidentId,
        a: &Attributed,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<IncidentId> {
        let Key::Function(contained) = a.key else {
            return None;
        };
        let others: Vec<_> = segment::candidates(&a.event, contained, t)
            .into_iter()
            .filter(|c| *c != contained)
            .filter(|c| {
                self.by_key
                    .get(&Key::Function(*c))
                    .and_then(|i| self.incidents.get(i))
                    .is_none_or(|i| i.contained_at.is_none())
            })
            .collect();
        if let [other] = others.as_slice() {
            let mut ev = a.event.clone();
            ev.function = Some(*other);
            ev.pf = None;
            ev.vf = None;
            ev.owner = None;
            ev.resolve(t);
            let evidence = format!(
                "{contained} was contained and cannot be sending DMA, yet {} still names its \
                 requester ID: by elimination {other}, the other function at it; owner {}",
                a.event.catalog_id,
                crate::attribute::owner_label(ev.owner.as_ref())
            );
            let again = Attributed {
                event: ev,
                key: Key::Function(*other),
                method: Method::Requester,
                confidence: 0.6,
                evidence,
            };
            return self.fault(&again, t, now, out);
        }
        let text = format!(
            "faults continue from contained requester {contained}; attribution may be wrong \
             ({})",
            a.event.catalog_id
        );
        let inc = self.incidents.get_mut(&id)?;
        out.push(Decision::Attributed {
            incident: id,
            method: a.method,
            confidence: a.confidence,
            evidence: format!("{text}; not counted: {}", a.evidence),
        });
        inc.add_evidence(Evidence {
            at: now,
            kind: a.event.kind,
            method: a.method,
            confidence: a.confidence,
            text: text.clone(),
        });
        if inc.doubted.replace(now).is_none() {
            let rule = RuleRef::Rule(format!(
                "faults continue from a contained requester ({contained}); attribution may be \
                 wrong"
            ));
            self.decide(id, ActionKind::Notify, None, &rule, t, now, out);
        }
        Some(id)
    }
}
