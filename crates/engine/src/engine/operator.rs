//! Operator requests (quarantine, release, mode): they enter the same path as the engine's own
//! decisions.

use vfguard_model::{
    ActionKind, Bdf, Decision, FaultEvent, FaultKind, Millis, OperatorRequest, OwnerKind, RuleRef,
    Topology, VfChange, VfLinkState,
};

use crate::attribute::{Attributed, Key, Method};
use crate::incident::{Evidence, Incident};

use super::{aer_event, Engine};

pub(super) fn operator_event(function: Bdf, t: &Topology) -> FaultEvent {
    let mut e = aer_event(function, FaultKind::Admin, 0);
    e.catalog_id = "operator".into();
    e.message = "operator request".into();
    e.resolve(t);
    e
}

impl Engine {
    pub(super) fn operator(
        &mut self,
        req: &OperatorRequest,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        match req {
            OperatorRequest::Quarantine {
                function,
                reason,
                by,
            } => {
                let e = operator_event(*function, t);
                let a = Attributed {
                    evidence: format!("quarantine requested by {by}: {reason}"),
                    key: Key::Function(*function),
                    method: Method::Direct,
                    confidence: 1.0,
                    event: e,
                };
                let id = self.open(a.key, &a, now, out);
                if let Some(inc) = self.incidents.get_mut(&id) {
                    inc.pf = inc.pf.or(a.event.pf);
                    inc.vf = inc.vf.or(a.event.vf);
                    inc.pf_netdev = inc.pf_netdev.clone().or(a
                        .event
                        .pf
                        .and_then(|p| t.pf(p))
                        .and_then(|p| p.netdev.clone()));
                    inc.add_evidence(Evidence {
                        at: now,
                        kind: FaultKind::Admin,
                        method: Method::Direct,
                        confidence: 1.0,
                        text: a.evidence.clone(),
                    });
                }
                let Some(inc) = self.incidents.get(&id) else {
                    return;
                };
                let vm = inc.owner.as_ref().is_some_and(|o| o.kind == OwnerKind::Vm);
                let kind = if inc.vf.is_some() && inc.pf_netdev.is_some() {
                    ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable))
                } else if vm {
                    ActionKind::Detach
                } else {
                    out.push(Decision::Suppressed { incident: id, action: "quarantine".into(), reason: format!("{function} is neither a VF nor held by a VM: nothing to quarantine it with") });
                    return;
                };
                let rule = RuleRef::Quarantine {
                    by: by.clone(),
                    reason: reason.clone(),
                };
                self.decide(id, kind, None, &rule, t, now, out);
            }
            OperatorRequest::Release { function, by } => {
                let Some(&id) = self.by_key.get(&Key::Function(*function)) else {
                    return;
                };
                // Put it back as it was, as the cool-down does.
                if let Some(kind) = self.incidents.get(&id).and_then(Incident::restore_kind) {
                    let rule = RuleRef::Release { by: by.clone() };
                    self.restore(id, kind, &rule, t, now, out);
                }
                self.close(id, &format!("released by {by}"), out);
            }
            OperatorRequest::SetMode { mode, by } => {
                let (from, to) = (self.policy.mode, *mode);
                self.policy.mode = to;
                out.push(Decision::ModeChanged {
                    from,
                    to,
                    by: by.clone(),
                });
            }
        }
    }
}
