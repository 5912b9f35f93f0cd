//! The incident's life after its faults: action outcomes (containment, retries, fallbacks),
//! offending again (re-offence, undone containment), cool-down restores, closing, and the
//! state machine's moves ([`vfguard_model::incident`]).

use vfguard_model::{
    ActionId, ActionKind, ActionOutcome, Cause, Decision, Errno, FaultEvent, FaultKind, IncidentId,
    IncidentState, Millis, RuleRef, Topology,
};

use crate::incident::Incident;
use crate::policy::Mode;

use super::Engine;

/// An action not reported on within this long is taken as failed (`ETIMEDOUT`); actuators
/// time out well before.
pub(super) const ACTION_BACKSTOP: Millis = 60_000;

/// Retries of one rung after a transient error (EBUSY, ETIMEDOUT) before stepping up.
pub(super) const RETRIES: u32 = 1;

/// The outcome of an action no actuator reported on within [`ACTION_BACKSTOP`].
pub(super) fn timed_out(id: ActionId, now: Millis) -> ActionOutcome {
    ActionOutcome {
        id,
        error: Some(Errno::ETIMEDOUT),
        before: None,
        at: now,
    }
}

/// Moves `inc` by `cause` along the state machine ([`vfguard_model::incident`]) and says so;
/// a cause the table has no move for leaves the state as it is.
pub(super) fn transition(inc: &mut Incident, cause: Cause, out: &mut Vec<Decision>) {
    if let Some(to) = inc.state.after(cause) {
        out.push(Decision::StateChanged {
            incident: inc.id,
            from: inc.state,
            to,
            cause,
        });
        inc.state = to;
    }
}

/// The cool-down before an incident's function is put back: doubled by each re-offence (up to
/// 16 times), so that a tenant that resumes at once spends ever longer contained.
pub(super) fn cool_down(base: Millis, inc: &Incident) -> Millis {
    base.saturating_mul(1 << inc.reoffences.min(4))
}

impl Engine {
    /// Whether this fault shows the function offending again: after its restore (a
    /// re-offence), or while a containment was supposed to hold (a VF reset lifted the
    /// driver's, or offences go on past the hold-down). Moves the incident back to
    /// `escalating` and returns what to climb with.
    pub(super) fn offending_again(
        &mut self,
        id: IncidentId,
        e: &FaultEvent,
        driver_contains: bool,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<RuleRef> {
        let hold = self.policy.hold_down;
        let inc = self.incidents.get_mut(&id)?;
        if inc.restoring {
            return None;
        }
        match inc.state {
            IncidentState::Restored if e.kind.is_offence() => {
                inc.reoffences = inc.reoffences.saturating_add(1);
                inc.contained_at = None;
                inc.restored_at = None;
                inc.driver_disabled = false;
                // Resume at the rung that contained it: the rungs below did not stop it before.
                if let Some(r) = inc.contain_rung {
                    inc.rung = r;
                }
                transition(inc, Cause::Reoffended, out);
                Some(RuleRef::Reoffence {
                    count: inc.reoffences,
                    kind: e.kind,
                })
            }
            IncidentState::Contained => {
                let lifted = e.kind == FaultKind::VfReset && inc.driver_disabled;
                let broken = e.kind.is_offence()
                    && !driver_contains
                    && inc
                        .contained_at
                        .is_some_and(|c| now > c.saturating_add(hold));
                if !(lifted || broken) {
                    return None;
                }
                inc.contained_at = None;
                inc.driver_disabled = false;
                transition(inc, Cause::ContainmentUndone, out);
                Some(if lifted {
                    RuleRef::DriverContainmentLifted
                } else {
                    RuleRef::OffendedWhileContained { kind: e.kind }
                })
            }
            _ => None,
        }
    }

    pub(super) fn outcome(
        &mut self,
        o: &ActionOutcome,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let Some((id, kind)) = self.pending.remove(&o.id) else {
            return;
        };
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let mut retry = None;
        let mut rung = None;
        if let Some(rec) = inc.actions.iter_mut().find(|a| a.id == o.id) {
            rung = rec.rung;
            rec.result = Some(match &o.error {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            });
            if let Some(e) = &o.error {
                retry = Some((rec.rung, rec.attempt, e.clone()));
            }
        }
        if o.error.is_none() {
            if inc.pre_state.is_none() {
                inc.pre_state = o.before.clone();
            }
            match &kind {
                ActionKind::Restore(_) | ActionKind::ResetVf if inc.restoring => {
                    inc.restoring = false;
                    inc.restored_at = Some(now);
                    inc.contained_at = None;
                    transition(inc, Cause::Restored, out);
                    out.push(Decision::Restored { incident: id });
                }
                k if k.contains() && inc.contained_at.is_none() => {
                    inc.contained_at = Some(now);
                    inc.contain_rung = rung.or(inc.contain_rung);
                    transition(inc, Cause::Contained, out);
                    out.push(Decision::Contained {
                        incident: id,
                        by: k.name(),
                    });
                }
                _ => {}
            }
            return;
        }
        if inc.restoring {
            inc.restoring = false;
            return;
        }
        // A failed rung is never silent: retry a transient error once, else step up now.
        if let Some((Some(rung), attempt, err)) = retry {
            if err.is_transient() && attempt <= RETRIES {
                let pf = self.incidents.get(&id).and_then(|i| i.pf);
                match self.guard_ok(pf, now) {
                    Ok(()) => {
                        let rule = RuleRef::Retry { error: err };
                        self.decide(id, kind, Some(rung), &rule, t, now, out);
                    }
                    Err(reason) => out.push(Decision::Suppressed {
                        incident: id,
                        action: kind.name(),
                        reason,
                    }),
                }
            } else {
                let rule = RuleRef::Fallback {
                    action: kind.name(),
                    error: err,
                };
                self.escalate(id, &rule, t, now, out, true);
            }
        }
    }

    /// Decides the action that puts an incident's function back as it was.
    pub(super) fn restore(
        &mut self,
        id: IncidentId,
        kind: ActionKind,
        rule: &RuleRef,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.restoring = true;
        }
        self.decide(id, kind, None, rule, t, now, out);
    }

    pub(super) fn close(&mut self, id: IncidentId, reason: &str, out: &mut Vec<Decision>) {
        if let Some(mut inc) = self.incidents.remove(&id) {
            transition(&mut inc, Cause::Closed, out);
            self.by_key.remove(&inc.key);
            out.push(Decision::Closed {
                incident: id,
                reason: reason.to_owned(),
            });
        }
    }

    pub(super) fn tick(&mut self, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        // An action no actuator reported on within the backstop timeout failed: never wait
        // forever (and never let an incident stay in memory for it).
        let mut stale: Vec<ActionId> = self
            .pending
            .iter()
            .filter(|(aid, (iid, _))| {
                self.incidents
                    .get(iid)
                    .and_then(|i| i.actions.iter().find(|a| a.id == **aid))
                    .is_none_or(|a| a.at + ACTION_BACKSTOP <= now)
            })
            .map(|(aid, _)| *aid)
            .collect();
        stale.sort();
        for id in stale {
            self.outcome(&timed_out(id, now), t, now, out);
        }
        let w = self.policy.sequence_window;
        for a in self.attributor.expire(t, now, w) {
            self.fault(&a, t, now, out);
        }
        let (cool, close_after) = (self.policy.cool_down, self.policy.close_after);
        let ids: Vec<IncidentId> = self.incidents.keys().copied().collect();
        for id in ids {
            let Some(inc) = self.incidents.get(&id) else {
                continue;
            };
            let quiet = now.saturating_sub(inc.last_fault);
            let pending = inc.actions.iter().any(|a| a.result.is_none());
            // Faults that made the agent doubt its attribution still come: keep the incident
            // (and its doubt) until they stop ([`super::reconsider`]).
            let doubted_on = inc
                .doubted
                .is_some_and(|d| now.saturating_sub(d) < close_after);
            if inc.state == IncidentState::Uncontained
                && inc.faults > inc.faults_at_notice
                && quiet < close_after
                && inc
                    .notified_at
                    .is_none_or(|n| now >= n.saturating_add(self.policy.renotify_every))
            {
                let rule = RuleRef::StillUncontained {
                    faults: inc.faults - inc.faults_at_notice,
                };
                self.decide(id, ActionKind::Notify, None, &rule, t, now, out);
                continue;
            }
            if inc.contained_at.is_some()
                && inc.restored_at.is_none()
                && !inc.restoring
                && !pending
                && quiet >= cool_down(cool, inc)
            {
                // Cool-down passed: put the function back as it was before we (or its driver) acted.
                if self.policy.mode == Mode::Observe {
                    continue;
                }
                match inc.restore_kind() {
                    Some(kind) => self.restore(id, kind, &RuleRef::CoolDown, t, now, out),
                    None if doubted_on => {}
                    None => self.close(id, "contained, nothing to restore", out),
                }
                continue;
            }
            let done = inc
                .restored_at
                .map_or(!pending && inc.contained_at.is_none(), |r| {
                    now >= r.saturating_add(close_after)
                });
            if done && quiet >= close_after && !inc.restoring && !doubted_on && !self.probing(id) {
                self.close(id, "quiet", out);
            }
        }
        self.localize_tick(t, now, out);
    }
}
