//! Taking localization gates off until the PF says they are off: a tenant must never stay
//! throttled. A revert that fails, or that no actuator reported on, is decided again later
//! (1 s, 2 s, 4 s ... at most a minute apart), for as long as its VF exists; one a replay
//! decided but the journal never carried out (the agent died between the two) is decided
//! again at once. Each revert carries what it acts on, so a partial host map or a search that
//! ended never stops it.

use vfguard_model::{
    Action, ActionId, ActionKind, ActionOutcome, Bdf, Decision, Errno, IncidentId, Millis, Owner,
    RuleRef, Topology, VfChange, VfIndex,
};

use super::lifecycle::{timed_out, ACTION_BACKSTOP};
use super::Engine;

/// The longest wait between two attempts.
const MAX_BACKOFF: Millis = 60_000;

/// A gate to take off.
#[derive(Debug, Clone)]
pub(super) struct Revert {
    /// The PF incident whose search put the gate on.
    pub(super) incident: IncidentId,
    pub(super) pf: Bdf,
    pub(super) pf_netdev: Option<String>,
    pub(super) vf: VfIndex,
    pub(super) bdf: Bdf,
    pub(super) owner: Option<Owner>,
    /// What puts the VF back.
    pub(super) change: VfChange,
    pub(super) round: u32,
    /// Attempts so far.
    pub(super) attempt: u32,
    /// When it was last decided.
    pub(super) at: Millis,
}

impl Engine {
    /// Decides the revert `r` now.
    pub(super) fn revert(&mut self, mut r: Revert, now: Millis, out: &mut Vec<Decision>) {
        let aid = self.take_action_id();
        r.attempt += 1;
        r.at = now;
        out.push(Decision::Act(Action {
            id: aid,
            incident: r.incident,
            function: r.bdf,
            pf: Some(r.pf),
            pf_netdev: r.pf_netdev.clone(),
            vf: Some(r.vf),
            owner: r.owner.clone(),
            kind: ActionKind::SetVf(r.change),
            rule: RuleRef::ProbeReverted { round: r.round },
            dry_run: false,
            at: now,
        }));
        self.reverts.insert(aid, r);
    }

    /// What an actuator said of a revert (`None`: not a revert). A failure is tried again later.
    pub(super) fn revert_outcome(
        &mut self,
        o: &ActionOutcome,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<IncidentId> {
        let r = self.reverts.remove(&o.id)?;
        let id = r.incident;
        if let Some(err) = &o.error {
            let gone = matches!(*err, Errno::ENODEV | Errno::ENOENT);
            let next = if gone {
                "the VF is gone: given up".to_owned()
            } else {
                format!("tried again in {} s", backoff(r.attempt) / 1000)
            };
            let text = format!(
                "localize round {}: putting VF {} back failed ({err}, attempt {}); {next}",
                r.round, r.vf.0, r.attempt
            );
            self.note(id, text, now, out);
            if !gone {
                self.retries.push((now + backoff(r.attempt), r));
            }
        }
        Some(id)
    }

    /// Reverts due again, and reverts no actuator reported on within the backstop.
    pub(super) fn revert_tick(&mut self, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let mut stale: Vec<ActionId> = self
            .reverts
            .iter()
            .filter(|(_, r)| r.at + ACTION_BACKSTOP <= now)
            .map(|(id, _)| *id)
            .collect();
        stale.sort();
        for id in stale {
            self.revert_outcome(&timed_out(id, now), now, out);
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retries = later;
        for (_, r) in due {
            let exists = t.vf(r.pf, r.vf).is_some_and(|v| v.bdf == r.bdf);
            if exists {
                self.revert(r, now, out);
            } else {
                let text = format!(
                    "localize round {}: VF {} ({}) is no longer on the map: nothing to put back",
                    r.round, r.vf.0, r.bdf
                );
                self.note(r.incident, text, now, out);
            }
        }
    }

    /// Whether gates of the incident's searches are still to be taken off.
    pub(super) fn reverting(&self, id: IncidentId) -> bool {
        self.reverts.values().any(|r| r.incident == id)
            || self.retries.iter().any(|(_, r)| r.incident == id)
    }

    /// Reverts a replay decided that the journal never carried out: decided again at the next
    /// step (dropping them would leave their tenants gated).
    pub(super) fn redo_unjournalled_reverts(
        &mut self,
        journalled: &std::collections::HashSet<ActionId>,
    ) {
        for id in unjournalled(self.reverts.keys(), journalled) {
            if let Some(mut r) = self.reverts.remove(&id) {
                r.attempt = r.attempt.saturating_sub(1);
                self.retries.push((0, r));
            }
        }
    }
}

/// The ids of `ids` the journal does not hold, in order (a replay decides in id order).
pub(super) fn unjournalled<'a>(
    ids: impl Iterator<Item = &'a ActionId>,
    journalled: &std::collections::HashSet<ActionId>,
) -> Vec<ActionId> {
    let mut gone: Vec<ActionId> = ids.filter(|id| !journalled.contains(id)).copied().collect();
    gone.sort();
    gone
}

/// The wait after the `attempt`-th failure: 1 s, doubling, at most a minute.
fn backoff(attempt: u32) -> Millis {
    (1_000u64 << attempt.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}
