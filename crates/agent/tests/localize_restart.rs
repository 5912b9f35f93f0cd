//! A crash in the middle of a localization round (docs/localize.md): the gates the agent put on
//! come off as soon as it starts again (the journal's replay rebuilds the round, finds it past
//! its time to live and reverts it), the round is measured again, and the search still names
//! the culprit and no one else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::pace::{self, Flow, VirtualClock};
use vfguard_agent::simrun::scenario_policy;
use vfguard_model::{Decision, Method, RuleRef};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn scenario() -> Scenario {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios/localize-one-of-64-ixgbe.toml");
    Scenario::load(&f).unwrap()
}

fn start(sim: &SimHost, db: &Path, now: u64) -> Agent {
    let cfg = AgentConfig {
        policy: scenario_policy(&scenario()).unwrap(),
        ..AgentConfig::default()
    };
    let h = AgentHost::simulated(sim, Arc::new(MemoryNotifier::default()));
    Agent::start(cfg, h, Some(db), now).unwrap().0
}

/// The decisions of the agent's steps from `from` to `to`.
fn run(a: &mut Agent, sim: &mut SimHost, from: u64, to: u64) -> Vec<Decision> {
    let mut all = Vec::new();
    let mut clock = VirtualClock::new(sim, from, to, 100);
    let mut steps = pace::each_step(|_, _, r| {
        all.extend(r.decisions.into_iter().map(|(_, d)| d));
        Ok(Flow::Go)
    });
    pace::run_until(a, &mut clock, &mut steps).unwrap();
    all
}

/// The VFs whose `max_tx_rate` is capped on the simulated host.
fn throttled(sim: &SimHost) -> usize {
    sim.with_state(|s| {
        s.pfs
            .iter()
            .flat_map(|p| p.vfs.iter())
            .filter(|v| v.max_tx_rate != 0)
            .count()
    })
}

#[test]
fn gates_on_at_a_crash_come_off_at_the_restart_and_the_search_still_finds_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let mut sim = SimHost::new(scenario()).unwrap();
    let mut a = start(&sim, &db, 0);
    // The search starts once 30 s of faults are seen (3 baseline windows of 10 s): round 1
    // throttles half of the 64 tenants at 32 s.
    let before = run(&mut a, &mut sim, 0, 36_000);
    let gates = before
        .iter()
        .filter(
            |d| matches!(d, Decision::Act(x) if matches!(x.rule, RuleRef::Probe { round: 1, .. })),
        )
        .count();
    assert_eq!(gates, 32, "round 1 gates half of the 64 tenants");
    assert_eq!(throttled(&sim), 32);
    // The agent dies with the gates on; the host goes on without it past the gates' time to
    // live (30 s after 32 s).
    drop(a);
    sim.advance_to(80_000);
    assert_eq!(throttled(&sim), 32, "nothing reverts a gate but the agent");

    let mut a = start(&sim, &db, 80_000);
    assert_eq!(
        a.replay_diverged, 0,
        "the replay rebuilt the engine that ran"
    );
    let first = run(&mut a, &mut sim, 80_000, 80_500);
    assert_eq!(throttled(&sim), 0, "every gate came off at the restart");
    let reverted = first
        .iter()
        .filter(|d| matches!(d, Decision::Act(x) if x.rule == RuleRef::ProbeReverted { round: 1 }))
        .count();
    assert_eq!(reverted, 32);

    let after = run(&mut a, &mut sim, 80_500, 330_000);
    let culprit = sim.with_state(|s| s.pfs[0].vfs[37].bdf);
    let named: Vec<_> = after
        .iter()
        .filter_map(|d| match d {
            Decision::IncidentOpened { function, .. } => Some(*function),
            _ => None,
        })
        .collect();
    assert_eq!(named, [culprit], "vm-37, and no one else, has an incident");
    assert!(
        after.iter().any(|d| matches!(
            d,
            Decision::Attributed { method: Method::Localized, evidence, .. }
                if evidence.starts_with("localized by group testing")
        )),
        "the culprit is named by the search"
    );
    // The round cut short by the crash was measured again: no round's measurement spans the
    // time the agent was away.
    assert!(after.iter().any(|d| matches!(
        d,
        Decision::Attributed { evidence, .. } if evidence.starts_with("localize round 1: VFs")
    )));
    assert_eq!(throttled(&sim), 0, "no gate is left on");
}
