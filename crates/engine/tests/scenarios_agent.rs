//! Every scenario of testdata/scenarios with the engine acting on the simulated host, under the
//! scenario's own `[policy]`, judged by the scenarios' one `[expect]` checker
//! (`vfguard_sim::expect`): each culprit contained in time (and again after a re-offence), an
//! uncontained one said so and notified again, no other tenant ever acted on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::run_agent;
use vfguard_engine::policy::PolicyError;
use vfguard_engine::{Engine, Policy};
use vfguard_sim::expect::{check, Run};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

/// The scenario's `[policy]`, read by the engine's parser (the defaults without one).
fn policy_of(sc: &Scenario) -> Policy {
    let text = sc.policy_toml().unwrap_or_else(|e| panic!("{e}"));
    text.map_or_else(Policy::default, |t| {
        Policy::from_toml(&t).unwrap_or_else(|e: PolicyError| {
            // A TOML error's byte offset points into the re-serialised table: leave it out.
            let what = if e.field == "policy" {
                format!("policy: {}", e.must)
            } else {
                format!("policy.{e}")
            };
            panic!("{}", sc.policy_error(what))
        })
    })
}

#[test]
fn every_scenario_meets_its_expectations_with_the_engine_acting() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for f in &files {
        let sc = Scenario::load(f).unwrap();
        let policy = policy_of(&sc);
        let duration = sc.scenario.duration_ms;
        let mut sim = SimHost::new(sc).unwrap();
        let mut engine = Engine::new(policy);
        let log = run_agent(&mut sim, &mut engine, duration, 100);
        let x = check(sim.scenario(), Run::Agent(&log));
        if !x.passed {
            failed.push(format!("{}:\n  {}", f.display(), x.failures.join("\n  ")));
        }
    }
    assert!(files.len() >= 12, "the suite covers every behaviour");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
