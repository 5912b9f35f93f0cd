//! The incident state machine has one truth: after every step of the agent, the journal's state
//! of every incident is the engine's (issue 12: `/v1/status` said "open" while `vfguard
//! incidents` said "escalating", each deriving the state its own way). Scenarios of the suite
//! run with a short cool-down and close-after, so that incidents go through every state:
//! contained, restored, re-offending, undone, uncontained and closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::pace::{self, Flow, VirtualClock};
use vfguard_engine::Policy;
use vfguard_journal::{IncidentFilter, Journal};
use vfguard_model::{Decision, IncidentId, IncidentState};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn scenarios() -> Vec<PathBuf> {
    vfguard_sim::scenario::files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios"),
    )
    .unwrap()
}

/// Runs `file` with the agent over a journal, comparing the states after every step; returns
/// every state the incidents went through.
fn run(file: &Path, seed: u64, step_ms: u64) -> Vec<IncidentState> {
    let mut sc = Scenario::load(file).unwrap();
    sc.scenario.seed = seed;
    let duration = sc.scenario.duration_ms;
    let mut sim = SimHost::new(sc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let policy = Policy::from_toml(
        "cool_down = \"3s\"\nclose_after = \"4s\"\nrenotify_every = \"2s\"\nhold_down = \"500ms\"\n",
    )
    .unwrap();
    let cfg = AgentConfig {
        policy,
        ..AgentConfig::default()
    };
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let (mut agent, _) = Agent::start(cfg, host, Some(&db), 0).unwrap();
    let reader = Journal::open_read_only(&db).unwrap();
    let mut seen = Vec::new();
    // Past the scenario's end, so that quiet incidents are restored and closed too.
    let mut clock = VirtualClock::new(&mut sim, 0, duration + 12_000, step_ms);
    let mut check = pace::each_step(|agent, now, report| {
        for (_, d) in &report.decisions {
            if let Decision::StateChanged { from, to, .. } = d {
                assert_ne!(
                    *from,
                    IncidentState::Closed,
                    "a closed incident moved to {to}"
                );
                seen.push(*to);
            }
        }
        let engine: BTreeMap<IncidentId, IncidentState> = agent.incident_states().collect();
        let journal: BTreeMap<IncidentId, IncidentState> = reader
            .incidents(&IncidentFilter::default())
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
        for (id, state) in &journal {
            // Closed incidents leave the engine's memory; the journal keeps them, closed.
            let expected = engine.get(id).copied().unwrap_or(IncidentState::Closed);
            assert_eq!(
                *state,
                expected,
                "{} seed {seed} step {step_ms} ms at {now} ms: incident {} is {state} in the \
                 journal but {expected} in the engine",
                file.display(),
                id.0
            );
        }
        for id in engine.keys() {
            assert!(
                journal.contains_key(id),
                "{}: incident {} is not in the journal",
                file.display(),
                id.0
            );
        }
        Ok(Flow::Go)
    });
    pace::run_until(&mut agent, &mut clock, &mut check).unwrap();
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn after_every_step_the_journal_holds_the_engines_state(
        pick in any::<prop::sample::Index>(),
        seed in 1u64..1000,
        step_ms in prop::sample::select(vec![50u64, 100, 250, 700]),
    ) {
        let files = scenarios();
        let file = pick.get(&files);
        run(file, seed, step_ms);
    }
}

#[test]
fn every_scenario_of_the_suite_keeps_the_journal_and_the_engine_in_step() {
    let mut states = std::collections::BTreeSet::new();
    for f in scenarios() {
        states.extend(run(&f, 1, 100));
    }
    // The suite exercises the whole machine, so the comparison above saw every state stored.
    for s in [
        IncidentState::Escalating,
        IncidentState::Contained,
        IncidentState::Restored,
        IncidentState::Uncontained,
        IncidentState::Closed,
    ] {
        assert!(states.contains(&s), "no incident of the suite became {s}");
    }
}
