//! Every scenario of testdata/scenarios with the engine acting on the simulated host: each
//! culprit is contained (within the scenario's deadline when it sets one), and no other tenant
//! is ever acted on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::run_agent;
use vfguard_engine::{Engine, Policy};
use vfguard_model::{Decision, IncidentId};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

#[test]
fn every_scenario_contains_its_culprits_and_touches_no_one_else() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let sc = Scenario::load(f).unwrap();
        let culprits: BTreeSet<String> = sc
            .expect
            .culprits
            .iter()
            .map(|c| c.get_ref().clone())
            .collect();
        let deadline = sc.expect.contained_within_ms;
        let duration = sc.scenario.duration_ms;
        let mut sim = SimHost::new(sc).unwrap();
        let mut engine = Engine::new(Policy::default());
        let log = run_agent(&mut sim, &mut engine, duration, 100);
        let mut owner_of: BTreeMap<IncidentId, Option<String>> = BTreeMap::new();
        let mut first_fault: BTreeMap<IncidentId, u64> = BTreeMap::new();
        let mut contained: BTreeMap<IncidentId, u64> = BTreeMap::new();
        for (at, d) in &log {
            match d {
                Decision::IncidentOpened {
                    incident, owner, ..
                } => {
                    owner_of.insert(*incident, owner.as_ref().and_then(|o| o.name.clone()));
                    first_fault.insert(*incident, *at);
                }
                Decision::Contained { incident, .. } => {
                    contained.entry(*incident).or_insert(*at);
                }
                Decision::Act(a) if a.kind.name() != "notify" && a.rule != "cool_down" => {
                    let who = a
                        .owner
                        .as_ref()
                        .and_then(|o| o.name.clone())
                        .unwrap_or_default();
                    assert!(
                        culprits.contains(&who),
                        "{}: acted on {who} ({}) who is not a culprit",
                        f.display(),
                        a.kind.name()
                    );
                }
                _ => {}
            }
        }
        for c in &culprits {
            let mine: Vec<IncidentId> = owner_of
                .iter()
                .filter(|(_, o)| o.as_deref() == Some(c))
                .map(|(i, _)| *i)
                .collect();
            assert!(
                !mine.is_empty(),
                "{}: no incident for culprit {c}",
                f.display()
            );
            let any_contained = mine.iter().find_map(|i| contained.get(i).map(|t| (*i, *t)));
            let (inc, at) = any_contained
                .unwrap_or_else(|| panic!("{}: culprit {c} never contained", f.display()));
            if let Some(limit) = deadline {
                let took = at - first_fault[&inc];
                assert!(
                    took <= limit,
                    "{}: {c} contained after {took} ms (limit {limit})",
                    f.display()
                );
            }
        }
    }
}
