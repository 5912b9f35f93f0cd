//! Every scenario of testdata/scenarios with the agent acting on the simulated host, under the
//! scenario's own `[policy]`, judged by the scenarios' one `[expect]` checker
//! (`vfguard_sim::expect`): each culprit contained in time (and again after a re-offence), an
//! uncontained one said so and notified again, no other tenant ever acted on. The real path
//! end to end: the kernel log read and classified, the engine deciding, the journal, vfguard-act's
//! actuators carrying the actions out on the simulated host and their outcomes fed back, paced by
//! the one loop driver.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use vfguard_agent::simrun::{self, scenario_policy};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn scenarios() -> Vec<PathBuf> {
    vfguard_sim::scenario::files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios"),
    )
    .unwrap()
}

#[test]
fn every_scenario_meets_its_expectations_with_the_agent_acting() {
    let files = scenarios();
    let mut failed = Vec::new();
    for f in &files {
        let sc = Scenario::load(f).unwrap();
        let policy = scenario_policy(&sc).unwrap_or_else(|e| panic!("{e}"));
        let mut sim = SimHost::new(sc).unwrap();
        let report = simrun::run(&mut sim, policy, None, 0.0, |_| {}).unwrap();
        let x = &report.expectations;
        if !x.passed {
            failed.push(format!("{}:\n  {}", f.display(), x.failures.join("\n  ")));
        }
    }
    assert!(files.len() >= 12, "the suite covers every behaviour");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// With a journal too (every step's transaction, intents before the actuators, outcomes
/// after), the runs decide the same.
#[test]
fn a_journal_changes_no_decision() {
    let dir = tempfile::tempdir().unwrap();
    for (i, f) in scenarios().iter().enumerate() {
        let run = |journal: Option<&Path>| {
            let sc = Scenario::load(f).unwrap();
            let policy = scenario_policy(&sc).unwrap();
            let mut sim = SimHost::new(sc).unwrap();
            simrun::run(&mut sim, policy, journal, 0.0, |_| {}).unwrap()
        };
        let db = dir.path().join(format!("{i}.db"));
        assert_eq!(run(None), run(Some(&db)), "{}", f.display());
    }
}
