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
//! # Limitations
//! Replay uses the host map of the restart. If owners changed while the agent was down, the
//! replayed attribution follows the new map; ids then differ from the journal's, which the
//! caller sees in the returned decisions.

use vfguard_model::{
    Action, ActionKind, ActionOutcome, Decision, Errno, Millis, Observation, Topology, VfChange,
    VfState,
};

use crate::engine::Engine;

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
