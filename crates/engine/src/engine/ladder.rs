//! The escalation ladder: which rung applies next to an incident, climbing it, deciding an
//! action, and saying so when nothing is left (`uncontained`).

use vfguard_model::{
    Action, ActionKind, Cause, Decision, FaultKind, IncidentId, IncidentState, Millis, OwnerKind,
    RuleRef, Topology, VfChange,
};

use crate::attribute::Method;
use crate::incident::{ActionRecord, Incident};
use crate::policy::{Mode, Rung};

use super::lifecycle::transition;
use super::{zero, Engine};

/// Whether a rung makes sense for what the incident has shown (a spoof-check does nothing
/// against malformed descriptors).
pub(super) fn relevant(rung: Rung, kinds: &std::collections::BTreeSet<FaultKind>) -> bool {
    use FaultKind as K;
    let any = |ks: &[K]| ks.iter().any(|k| kinds.contains(k));
    match rung {
        Rung::SpoofchkOn | Rung::QuarantineVlan => {
            any(&[K::Spoof, K::MacOverride, K::VlanOverride])
        }
        Rung::TrustOff => any(&[K::Spoof, K::MacOverride, K::VlanOverride, K::Mailbox]),
        Rung::RateLimit => any(&[K::Spoof, K::Mailbox, K::TxHang]),
        Rung::Notify | Rung::VfReset | Rung::VfDisable | Rung::Detach | Rung::Pause => true,
    }
}

/// Link and hardware faults: correctable AER (a receiver error, a bad TLP or DLLP, a replay
/// timeout or rollover is the link's doing, and the hardware corrected it), receive-queue and
/// firmware faults, PF resets. The function's owner did not cause them: they are notified, and
/// never justify an action on it (a VM holding a NIC whole lost it to a marginal link's
/// receiver errors before this rule; issue 14).
pub(super) fn link_or_hardware(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::AerCorrectable | FaultKind::RxError | FaultKind::FwFault | FaultKind::PfReset
    )
}

/// Whether what an incident has shown can justify acting on its owner: some fault beyond the
/// link's and the hardware's own.
pub(super) fn warrants_action(kinds: &std::collections::BTreeSet<FaultKind>) -> bool {
    kinds.iter().any(|k| k.is_fault() && !link_or_hardware(*k))
}

pub(super) fn inc_notified(e: &Engine, id: IncidentId) -> bool {
    e.incidents
        .get(&id)
        .is_some_and(|i| i.actions.iter().any(|a| a.name == "notify"))
}

impl Engine {
    /// The next applicable rung at or above `from`, with its action.
    pub(super) fn next_rung(
        &self,
        inc: &Incident,
        from: usize,
        t: &Topology,
    ) -> Option<(usize, Rung, ActionKind)> {
        let is_vf = inc.vf.is_some() && inc.pf_netdev.is_some();
        let vm = inc.owner.as_ref().is_some_and(|o| o.kind == OwnerKind::Vm);
        let pod = inc
            .owner
            .as_ref()
            .is_some_and(|o| o.kind == OwnerKind::Netns);
        let state = inc
            .pf
            .zip(inc.vf)
            .and_then(|(p, v)| t.vf(p, v))
            .and_then(|v| v.state.clone());
        for (i, rung) in self.policy.ladder.iter().enumerate().skip(from) {
            if !relevant(*rung, &inc.kinds) {
                continue;
            }
            let kind = match rung.vf_change(&self.policy) {
                Some(change) if is_vf => {
                    let already = match (&state, change) {
                        (Some(s), VfChange::SpoofChk(on)) => s.spoofchk == Some(on),
                        (Some(s), VfChange::Trust(on)) => s.trust == Some(on),
                        (Some(s), VfChange::LinkState(l)) => s.link_state == Some(l),
                        _ => false,
                    };
                    if already {
                        continue;
                    }
                    ActionKind::SetVf(change)
                }
                Some(_) => continue,
                None => match rung {
                    Rung::Notify => ActionKind::Notify,
                    Rung::VfReset if inc.vf.is_some() => ActionKind::ResetVf,
                    // A VM's function is unplugged, a pod's VF evicted from its namespace
                    // (docs/actions.md).
                    Rung::Detach if vm || pod => ActionKind::Detach,
                    Rung::Pause if vm => ActionKind::PauseVm,
                    _ => continue,
                },
            };
            return Some((i, *rung, kind));
        }
        None
    }

    pub(super) fn escalate(
        &mut self,
        id: IncidentId,
        rule: &RuleRef,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
        fallback: bool,
    ) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        if inc.contained_at.is_some() || inc.restoring {
            return;
        }
        if !fallback {
            if let Some(last) = inc.last_action_at {
                if now < last.saturating_add(self.policy.hold_down) || inc.faults_since_action == 0
                {
                    return;
                }
            }
        }
        // Only a tenant known to be at fault, for something beyond a link or hardware fault, is
        // ever acted on.
        let tenant = inc.tenant() && inc.method != Method::Unattributed;
        let tenant = tenant && warrants_action(&inc.kinds);
        let Some((ri, rung, kind)) = self.next_rung(inc, inc.rung, t) else {
            if tenant {
                self.exhausted(id, rule, t, now, out);
            }
            return;
        };
        let inc_rung_only_notify = !tenant;
        if inc_rung_only_notify && rung != Rung::Notify {
            // No tenant is known to be at fault: notify once, never punish anyone.
            if inc.actions.is_empty() {
                self.decide(id, ActionKind::Notify, None, rule, t, now, out);
            }
            return;
        }
        let label = inc.owner_label();
        if rung != Rung::Notify {
            if self.policy.excluded(&label) {
                out.push(Decision::Suppressed {
                    incident: id,
                    action: rung.name().into(),
                    reason: format!("{label} is on the exclusion list: notify only"),
                });
                self.bump(id, ri, now);
                if inc_notified(self, id) {
                    return;
                }
                self.decide(id, ActionKind::Notify, None, rule, t, now, out);
                return;
            }
            if self.policy.mode == Mode::Observe {
                out.push(Decision::Suppressed {
                    incident: id,
                    action: rung.name().into(),
                    reason: "observe mode".into(),
                });
                self.bump(id, ri, now);
                return;
            }
            let pf = self.incidents.get(&id).and_then(|i| i.pf);
            if let Err(reason) = self.guard_ok(pf, now) {
                out.push(Decision::Suppressed {
                    incident: id,
                    action: rung.name().into(),
                    reason,
                });
                return;
            }
        }
        self.decide(id, kind, Some(ri), rule, t, now, out);
    }

    /// No rung is left that works for this function, and it is not contained: say so, notify
    /// now, and again every `renotify_every` while its faults go on ([`Engine::tick`]).
    pub(super) fn exhausted(
        &mut self,
        id: IncidentId,
        rule: &RuleRef,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        if inc.state == IncidentState::Uncontained {
            return;
        }
        transition(inc, Cause::Exhausted, out);
        if inc.state != IncidentState::Uncontained {
            return;
        }
        let rule = RuleRef::Uncontained {
            owner: inc.owner_label(),
            after: Box::new(rule.clone()),
        };
        self.decide(id, ActionKind::Notify, None, &rule, t, now, out);
    }

    pub(super) fn bump(&mut self, id: IncidentId, ri: usize, now: Millis) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.rung = ri + 1;
            inc.last_action_at = Some(now);
            inc.faults_since_action = 0;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide(
        &mut self,
        id: IncidentId,
        kind: ActionKind,
        rung: Option<usize>,
        rule: &RuleRef,
        _t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let dry_run = self.policy.mode == Mode::DryRun && kind != ActionKind::Notify;
        let aid = self.take_action_id();
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let action = Action {
            id: aid,
            incident: id,
            function: inc.function.unwrap_or(zero()),
            pf: inc.pf,
            pf_netdev: inc.pf_netdev.clone(),
            vf: inc.vf,
            owner: inc.owner.clone(),
            kind: kind.clone(),
            rule: rule.clone(),
            dry_run,
            at: now,
        };
        let attempt = inc
            .actions
            .last()
            .filter(|a| a.rung == rung && rung.is_some())
            .map_or(1, |a| a.attempt + 1);
        inc.actions.push(ActionRecord {
            id: aid,
            name: kind.name(),
            rung,
            at: now,
            result: None,
            attempt,
        });
        if let Some(r) = rung {
            inc.rung = r + 1;
        }
        inc.last_action_at = Some(now);
        inc.faults_since_action = 0;
        if kind == ActionKind::Notify {
            inc.notified_at = Some(now);
            inc.faults_at_notice = inc.faults;
        } else if !inc.restoring {
            transition(inc, Cause::Escalated, out);
        }
        if kind != ActionKind::Notify {
            self.recent.push_back((now, inc.pf));
        }
        self.pending.insert(aid, (id, kind));
        out.push(Decision::Act(action));
    }
}
