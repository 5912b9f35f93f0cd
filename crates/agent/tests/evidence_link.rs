//! Evidence is filed under the incident of its own function or PF (issue 12: an ixgbe line and
//! tick rows were shown by `explain` for an igb PF incident, because an observation was linked
//! to the first incident its decisions named, and a line from one PF can release a line held
//! from another).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::pace::{self, NoDuties, VirtualClock};
use vfguard_journal::{IncidentFilter, Journal};
use vfguard_model::{Bdf, Observation};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios")
        .join(name)
}

/// Runs `file` with the agent over a journal; returns every (incident, observation) link that
/// names another function and PF than the incident's, and how many fault links were checked.
fn foreign_links(file: &Path) -> (Vec<String>, usize) {
    let sc = Scenario::load(file).unwrap();
    let mut sim = SimHost::new(sc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let (mut agent, _) = Agent::start(AgentConfig::default(), host, Some(&db), 0).unwrap();
    let mut clock = VirtualClock::scenario(&mut sim, 100);
    pace::run_until(&mut agent, &mut clock, &mut NoDuties).unwrap();
    let topo = agent.topology().clone();
    let j = Journal::open_read_only(&db).unwrap();
    let mut foreign = Vec::new();
    let mut checked = 0;
    for row in j.incidents(&IncidentFilter::default()).unwrap() {
        let detail = j.incident(row.id).unwrap().unwrap();
        // The incident's function and, for a VF, its PF (from the host map: the row's `pf`
        // column is filled from what is linked to it, so it would vouch for a wrong link).
        let pf = topo.function(row.function).map(|f| f.pf.bdf);
        let own: Vec<Bdf> = [Some(row.function), pf].into_iter().flatten().collect();
        for o in &detail.observations {
            match &o.observation {
                Observation::Fault(e) => {
                    checked += 1;
                    // An AER error a root port logged names its sender in its TLP header.
                    let sender = topo.tlp_sender(e).map(|(b, _)| b);
                    let names = [e.device, e.function, e.pf, sender];
                    // A requester printed without its segment (DMAR) names its bus:dev.fn in
                    // every segment (issue 14: the engine places it by the IOMMU unit).
                    let same_in_any_segment = |b: &Bdf, o: &Bdf| {
                        (b.bus(), b.device(), b.function()) == (o.bus(), o.device(), o.function())
                    };
                    let segmentless =
                        vfguard_model::segment_unprinted(&e.catalog_id, e.device.is_some());
                    let named = names.iter().flatten().any(|b| {
                        own.contains(b)
                            || segmentless && own.iter().any(|o| same_in_any_segment(b, o))
                    });
                    if !named {
                        foreign.push(format!(
                            "incident {} ({}) holds {:?} from {:?}",
                            row.id.0, row.function, e.message, e.device
                        ));
                    }
                }
                Observation::Tick => {
                    foreign.push(format!("incident {} lists a tick as evidence", row.id.0))
                }
                _ => {}
            }
        }
    }
    (foreign, checked)
}

#[test]
fn two_pfs_in_one_step_each_keep_their_own_evidence() {
    let (foreign, checked) = foreign_links(&scenario("two-pfs-one-step.toml"));
    assert!(checked > 0, "no fault was linked to any incident");
    assert!(foreign.is_empty(), "{foreign:#?}");
}

#[test]
fn no_scenario_of_the_suite_files_evidence_under_another_function() {
    let files = vfguard_sim::scenario::files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios"),
    )
    .unwrap();
    for f in files {
        let (foreign, _) = foreign_links(&f);
        assert!(foreign.is_empty(), "{}: {foreign:#?}", f.display());
    }
}
