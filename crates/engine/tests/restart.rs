//! A restarted engine, rebuilt by replaying what the journal recorded, decides exactly what the
//! engine that never stopped decides; an interrupted action is reconciled, not repeated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vfguard_engine::restart::{rebuild, reconcile, replay, Journalled, UsedIds};
use vfguard_engine::Engine;
use vfguard_model::{
    ActionOutcome, Decision, Errno, Millis, Observation, VfChange, VfLinkState, VfState,
};

#[test]
fn a_replayed_engine_continues_exactly_like_the_one_that_never_stopped() {
    let sim = sim_host();
    let t = topology(&sim);
    let lines = [
        "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on",
        "i40e 0000:3b:00.0: Malicious Driver Detection event 0x02 on TX queue 8 PF number 0x00 VF number 0x42",
        "i40e 0000:3b:00.0: VF attempting to override administratively set MAC address, bring down and up the VF interface to resume normal operation",
        "i40e 0000:3b:00.0: Invalid message from VF 0, opcode 10, len 4096",
        "ixgbe 0000:08:00.0 ens3f0: Malicious event on VF 1 tx:2 rx:0",
        "ixgbe 0000:08:00.0 ens3f0: 16 Spoofed packets detected",
    ];
    let mut live = Engine::new(policy(
        "hold_down = \"500ms\"\ncool_down = \"20s\"\nclose_after = \"20s\"",
    ));
    // What a journal records: every observation that decided something, in order, with outcomes.
    let mut journal: Vec<(Millis, Observation)> = Vec::new();
    let feed = |e: &mut Engine,
                obs: Observation,
                now: Millis,
                rec: Option<&mut Vec<(Millis, Observation)>>|
     -> Vec<Decision> {
        let mut all = Vec::new();
        let mut queue = vec![obs];
        let mut rec = rec;
        while let Some(o) = queue.pop() {
            let d = e.observe(&o, &t, now);
            if let Some(r) = rec.as_deref_mut() {
                if !d.is_empty() || !matches!(o, Observation::Tick) {
                    r.push((now, o.clone()));
                }
            }
            for dd in &d {
                if let Decision::Act(a) = dd {
                    let error = (a.id.0 % 4 == 0).then_some(Errno::EBUSY);
                    queue.push(Observation::Outcome(ActionOutcome {
                        id: a.id,
                        error,
                        before: None,
                        at: now,
                    }));
                }
            }
            all.extend(d);
        }
        all
    };
    let mut now = 1000;
    for i in 0..60usize {
        now += 700;
        let obs = if i % 5 == 4 {
            Observation::Tick
        } else {
            fault(lines[i % lines.len()])
        };
        feed(&mut live, obs, now, Some(&mut journal));
    }
    // Restart: a fresh engine replays the journal.
    let mut restarted = Engine::new(live.policy().clone());
    let replayed = replay(&mut restarted, &journal, &t);
    assert!(replayed.iter().any(|d| matches!(d, Decision::Act(_))));
    // From here on, both see the same inputs and must decide the same.
    for i in 0..80usize {
        now += 900;
        let obs = if i % 3 == 2 {
            Observation::Tick
        } else {
            fault(lines[(i * 7) % lines.len()])
        };
        let a = feed(&mut live, obs.clone(), now, None);
        let b = feed(&mut restarted, obs, now, None);
        assert_eq!(a, b, "diverged at step {i}");
    }
    let summary = |e: &Engine| {
        e.incidents()
            .map(|i| (i.id, i.state, i.faults, i.actions.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&live), summary(&restarted));
}

#[test]
fn an_interrupted_action_is_judged_from_the_state_read_back() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("ladder = [\"vf_disable\"]"));
    let d = e.observe(&fault("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on"), &t, 1000);
    let intent = d
        .iter()
        .find_map(|d| match d {
            Decision::Act(a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        intent.kind,
        vfguard_model::ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable))
    );
    let down = VfState {
        link_state: Some(VfLinkState::Disable),
        ..VfState::default()
    };
    let up = VfState {
        link_state: Some(VfLinkState::Auto),
        ..VfState::default()
    };
    assert_eq!(
        reconcile(&intent, Some(&down), 5000).error,
        None,
        "it took effect before the crash"
    );
    let o = reconcile(&intent, Some(&up), 5000);
    assert_eq!(o.error, Some(Errno::EINTR));
    assert_eq!(reconcile(&intent, None, 5000).error, Some(Errno::EINTR));
    // Reported as failed, the policy decides again (here: retry is not transient, the ladder is
    // exhausted, so it says so) instead of the action being repeated blindly.
    let d = e.observe(&Observation::Outcome(o), &t, 5000);
    assert_eq!(acts(&d), [("0000:3c:00.2".to_owned(), "notify".to_owned())]);
    assert_eq!(
        e.incidents().next().map(|i| i.state),
        Some(vfguard_model::IncidentState::Uncontained)
    );
}

/// `rebuild`, the one call a restart makes: from the journal's records, in the order the agent
/// commits them (a round's observations that decided something and its decisions, then its
/// intents, then their outcomes), the engine that ran comes back, ids included; and an id the
/// journal used is never given again.
#[test]
fn rebuild_brings_back_the_engine_that_ran_and_never_reuses_an_id() {
    let sim = sim_host();
    let t = topology(&sim);
    let p = policy("hold_down = \"500ms\"\ncool_down = \"20s\"\nclose_after = \"20s\"");
    let lines = [
        "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on",
        "ixgbe 0000:08:00.0 ens3f0: Malicious event on VF 1 tx:2 rx:0",
    ];
    let mut live = Engine::new(p.clone());
    let mut journal = Vec::new();
    let mut now = 1000;
    for i in 0..40usize {
        now += 700;
        let first = if i % 4 == 3 {
            Observation::Tick
        } else {
            fault(lines[i % lines.len()])
        };
        let mut round = vec![first];
        while !round.is_empty() {
            let mut intents = Vec::new();
            for o in round.drain(..) {
                let d = live.observe(&o, &t, now);
                if d.is_empty() {
                    continue;
                }
                if !matches!(o, Observation::Outcome(_)) {
                    journal.push(Journalled::Observation(now, o));
                }
                for d in d {
                    if let Decision::Act(a) = &d {
                        intents.push(a.clone());
                    }
                    journal.push(Journalled::Decision(d));
                }
            }
            journal.extend(intents.iter().cloned().map(Journalled::Intent));
            for a in intents {
                let o = ActionOutcome {
                    id: a.id,
                    error: None,
                    before: None,
                    at: now,
                };
                journal.push(Journalled::Outcome(o.clone()));
                round.push(Observation::Outcome(o));
            }
        }
    }
    assert!(journal.iter().any(|e| matches!(e, Journalled::Intent(_))));
    let mut restarted = Engine::new(p.clone());
    let used = UsedIds {
        action: Some(1000),
        incident: None,
    };
    let history = || {
        journal
            .iter()
            .cloned()
            .map(Ok::<_, std::convert::Infallible>)
    };
    let Ok(r) = rebuild(&mut restarted, history, &t, &p, used);
    assert!(r.replayed > 0);
    assert_eq!((r.diverged, r.abandoned), (0, 0), "{r:?}");
    let summary = |e: &Engine| {
        e.incidents()
            .map(|i| (i.id, i.state, i.faults, i.actions.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&live), summary(&restarted));
    // A new culprit: its actions take ids after every one the journal used.
    let d = restarted.observe(
        &fault("ixgbe 0000:08:00.0 ens3f0: Malicious event on VF 2 tx:2 rx:0"),
        &t,
        now + 1000,
    );
    let ids: Vec<u64> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Act(a) => Some(a.id.0),
            _ => None,
        })
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| *id > 1000),
        "{ids:?}"
    );
}

/// `rebuild` reads the journal in two passes, one record at a time; a read that fails in
/// either pass stops it with that error (the agent then refuses to start on a journal it cannot
/// read, rather than run an engine rebuilt from half of it).
#[test]
fn rebuild_takes_two_passes_and_stops_at_a_read_error() {
    let sim = sim_host();
    let t = topology(&sim);
    let p = policy("hold_down = \"500ms\"");
    let journal = [Journalled::Observation(
        1000,
        fault("ixgbe 0000:08:00.0 ens3f0: Malicious event on VF 1 tx:2 rx:0"),
    )];
    for failing_pass in 1..=2 {
        let mut pass = 0;
        let history = || {
            pass += 1;
            let fail = pass == failing_pass;
            journal
                .iter()
                .cloned()
                .map(Ok)
                .chain(fail.then_some(Err("disk I/O error")))
        };
        let mut e = Engine::new(p.clone());
        let r = rebuild(&mut e, history, &t, &p, UsedIds::default());
        assert_eq!(r, Err("disk I/O error"), "pass {failing_pass}");
    }
    let mut passes = 0;
    let history = || {
        passes += 1;
        journal.iter().cloned().map(Ok::<_, &str>)
    };
    let mut e = Engine::new(p.clone());
    let r = rebuild(&mut e, history, &t, &p, UsedIds::default());
    assert_eq!(r.map(|r| r.replayed), Ok(1));
    assert_eq!(passes, 2);
}
