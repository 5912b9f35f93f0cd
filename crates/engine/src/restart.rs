//! Restarting without losing or repeating anything.
//!
//! The engine is deterministic, so its state after a restart is rebuilt by replaying, in
//! commit order, the observations the journal recorded (faults, counters, outcomes, operator
//! requests, and the ticks that decided something). The replay decides again what was decided
//! before, with the same ids; [`replay`] returns those decisions so the caller can check them
//! against the journal, and carries nothing out.
//!
//! An action whose intent was journalled but whose outcome was not (the agent died in between)
//! is never repeated blindly: [`reconcile`] compares it with the function's state read back from
//! the host and turns it into an outcome.
//!
//! [`rebuild`] is the one call a restart makes: given what the journal holds, in commit order (read
//! twice, streamed: never held in memory), it
//! replays it with the journal's ids, against the host map as it was before the agent's own
//! actions, abandons what only the replay decided, puts the configured policy back and reserves
//! every id the journal used.
//!
//! # Limitations
//! Replay uses the host map of the restart. If owners changed while the agent was down, the
//! replayed attribution follows the new map; ids then differ from the journal's, which the
//! caller sees in the returned decisions.

use vfguard_model::{
    Action, ActionKind, ActionOutcome, Decision, Errno, Millis, Observation, Topology, VfChange,
    VfState,
};

use std::collections::{HashMap, HashSet};

use vfguard_model::{ActionId, Bdf, IncidentId};

use crate::engine::Engine;
use crate::policy::Policy;

/// Replays journalled observations into `engine`; returns the decisions replay produced.
pub fn replay<'a>(
    engine: &mut Engine,
    history: impl IntoIterator<Item = &'a (Millis, Observation)>,
    t: &Topology,
) -> Vec<Decision> {
    let mut out = Vec::new();
    // Mode switches replay too, so that the history decides what it decided then (and the ids
    // come out the same); the caller sets the configuration's mode afterwards (a switch lasts
    // until a restart).
    for (at, obs) in history {
        out.extend(engine.observe(obs, t, *at));
    }
    out
}

/// Whether `state` shows `change` in effect.
fn applied(change: &VfChange, s: &VfState) -> bool {
    match *change {
        VfChange::LinkState(l) => s.link_state == Some(l),
        VfChange::SpoofChk(on) => s.spoofchk == Some(on),
        VfChange::Trust(on) => s.trust == Some(on),
        VfChange::Rate { min_mbps, max_mbps } => {
            s.min_tx_rate == Some(min_mbps) && s.max_tx_rate == Some(max_mbps)
        }
        VfChange::Vlan { vlan, qos } => {
            s.vlan == Some(u32::from(vlan)) && s.qos == Some(u32::from(qos))
        }
        VfChange::Mac(m) => s.mac == Some(m),
    }
}

/// The outcome of an action interrupted between intent and outcome, judged from the state read
/// back now: a VF knob found in its wanted state succeeded; anything else is reported failed
/// (`EINTR`) so the policy decides again, instead of the action being repeated blindly.
pub fn reconcile(intent: &Action, current: Option<&VfState>, now: Millis) -> ActionOutcome {
    let done = match (&intent.kind, current) {
        (ActionKind::SetVf(c), Some(s)) => applied(c, s),
        (ActionKind::Notify, _) => true,
        _ => false,
    };
    ActionOutcome {
        id: intent.id,
        error: (!done).then_some(Errno::EINTR),
        before: None,
        at: now,
    }
}

/// One record of the journal as a restart reads it back, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub enum Journalled {
    /// An observation that decided something, with the time it was observed at.
    Observation(Millis, Observation),
    /// A decision.
    Decision(Decision),
    /// An action's intent, journalled before it was carried out.
    Intent(Action),
    /// An action's outcome.
    Outcome(ActionOutcome),
}

/// The largest ids the journal ever gave (their rows may since have gone with retention).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsedIds {
    /// The largest action id.
    pub action: Option<u64>,
    /// The largest incident id.
    pub incident: Option<u64>,
}

/// What [`rebuild`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Observations replayed.
    pub replayed: usize,
    /// Actions the replay decided differently from the journal: 0 when the rebuilt engine is
    /// the one that ran.
    pub diverged: usize,
    /// Actions only the replay decided, abandoned: never carried out, they are not taken for
    /// interrupted ones and retried.
    pub abandoned: usize,
}

/// An action as the journal and a replay name it: id, action, function.
type ActionKey = (ActionId, String, Bdf);

fn action_key(a: &Action) -> ActionKey {
    (a.id, a.kind.name(), a.function)
}

/// Rebuilds `engine` (a new one) from the journal's history, so that it is the engine that
/// ran: the ids the journal gave (in order: retention may have deleted older incidents), each
/// VF's knobs as before the agent's first action on it, mode switches as they happened, then
/// the configured `policy` (a switch lasts until a restart). Ids in `used` are never given
/// again, whatever the replay decided.
///
/// `history` starts a new pass over the journal in commit order each time it is called; it is
/// called twice. The first pass gathers ids, intents and the VFs' first states (memory grows
/// with incidents and actions, not with observations); the second replays the observations one
/// at a time. So a journal of millions of observations is never held in memory. The first error
/// a pass yields stops the rebuild and is returned (the engine is then half-built: drop it).
pub fn rebuild<I, E>(
    engine: &mut Engine,
    mut history: impl FnMut() -> I,
    t: &Topology,
    policy: &Policy,
    used: UsedIds,
) -> Result<RebuildReport, E>
where
    I: IntoIterator<Item = Result<Journalled, E>>,
{
    let mut ids = JournalIds::default();
    for e in history() {
        ids.note(&e?);
    }
    let surviving: HashSet<IncidentId> = ids.opened.iter().copied().collect();
    // Every intent journalled, and those the replay should decide again (their incidents' rows
    // survive retention).
    let known: HashSet<ActionKey> = ids.intents.iter().map(|(k, _)| k.clone()).collect();
    let expected: HashSet<ActionKey> = ids
        .intents
        .iter()
        .filter(|(_, incident)| surviving.contains(incident))
        .map(|(k, _)| k.clone())
        .collect();
    let acted = ids
        .intents
        .iter()
        .filter(|(_, incident)| surviving.contains(incident))
        .map(|(k, _)| k.0)
        .collect();
    engine.replay_ids(ids.opened, acted);
    let replay_map = for_replay(t, &ids.first_states);
    // Mode switches replay too, so that the history decides what it decided then (and the ids
    // come out the same); the policy is put back afterwards.
    let mut replayed = 0;
    let mut decided: HashSet<ActionKey> = HashSet::new();
    for e in history() {
        let decisions = match e? {
            Journalled::Observation(at, o) => engine.observe(&o, &replay_map, at),
            Journalled::Outcome(o) => {
                let at = o.at;
                engine.observe(&Observation::Outcome(o), &replay_map, at)
            }
            Journalled::Decision(_) | Journalled::Intent(_) => continue,
        };
        replayed += 1;
        decided.extend(decisions.iter().filter_map(|d| match d {
            Decision::Act(a) => Some(action_key(a)),
            _ => None,
        }));
    }
    engine.end_replay();
    // Actions only the replay decided (none when it rebuilt the engine that ran) were never
    // carried out: they must not be taken for interrupted ones and retried.
    let abandoned = engine.abandon_unjournalled(&known);
    // An operator's mode switch, replayed as it happened, lasts until a restart.
    engine.set_policy(policy.clone());
    // Should the replay still have gone elsewhere than the live run, the ids already journalled
    // are never reused.
    engine.reserve_ids(used.action, used.incident);
    Ok(RebuildReport {
        replayed,
        diverged: decided.symmetric_difference(&expected).count(),
        abandoned,
    })
}

/// What the first pass of [`rebuild`] gathers: everything but the observations.
#[derive(Default)]
struct JournalIds {
    /// The incidents opened, in order.
    opened: Vec<IncidentId>,
    /// Every intent: its key and its incident.
    intents: Vec<(ActionKey, IncidentId)>,
    /// The VF each intent was about, by action id (for `first_states`).
    target: HashMap<ActionId, (Bdf, u16)>,
    /// Each VF's state as the journal saw it before the agent's first action on it (the
    /// `before` of its earliest outcome), by PF and VF index.
    first_states: HashMap<(Bdf, u16), VfState>,
}

impl JournalIds {
    fn note(&mut self, e: &Journalled) {
        match e {
            Journalled::Decision(Decision::IncidentOpened { incident, .. }) => {
                self.opened.push(*incident);
            }
            Journalled::Intent(action) => {
                self.intents.push((action_key(action), action.incident));
                if let (Some(pf), Some(vf)) = (action.pf, action.vf) {
                    self.target.insert(action.id, (pf, vf.0));
                }
            }
            Journalled::Outcome(outcome) => {
                if let (Some(key), Some(state)) = (self.target.get(&outcome.id), &outcome.before) {
                    self.first_states
                        .entry(*key)
                        .or_insert_with(|| state.clone());
                }
            }
            Journalled::Decision(_) | Journalled::Observation(..) => {}
        }
    }
}

/// The host map as a replay must see it: the VF knobs the agent's own actions change (link
/// state, spoof check, trust) as they were before its first action on the VF, not as they are
/// now, or the replay would find its actions "already applied" and decide differently from the
/// live run. A VF never acted on, and everything else (owners, MACs for attribution), is as now.
fn for_replay(t: &Topology, before: &HashMap<(Bdf, u16), VfState>) -> Topology {
    let mut t = t.clone();
    for pf in &mut t.pfs {
        for vf in &mut pf.vfs {
            let (Some(s), Some(b)) = (vf.state.as_mut(), before.get(&(pf.bdf, vf.index.0))) else {
                continue;
            };
            s.link_state = b.link_state;
            s.spoofchk = b.spoofchk;
            s.trust = b.trust;
        }
    }
    t
}
