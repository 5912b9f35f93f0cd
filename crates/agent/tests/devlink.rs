//! devlink health through the agent: on the simulated mlx5 host, whose log says nothing of its
//! misbehaving VFs, the vnic counters' events reach the engine, are journalled with their
//! details and counted in the fault-event metrics; a host without devlink runs without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::metrics::Metrics;
use vfguard_agent::pace::{self, Flow, VirtualClock};
use vfguard_journal::{Entry, Journal};
use vfguard_model::Observation;
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn scenario(name: &str) -> Scenario {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios")
        .join(name);
    Scenario::load(&f).unwrap()
}

#[test]
fn vnic_events_are_journalled_and_counted() {
    let sc = scenario("mlx5-vnic.toml");
    let duration = sc.scenario.duration_ms;
    let mut sim = SimHost::new(sc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let (mut agent, _) = Agent::start(AgentConfig::default(), host, Some(&db), 0).unwrap();
    let metrics = Metrics::new();
    let mut clock = VirtualClock::new(&mut sim, 0, duration, 100);
    let mut count = pace::each_step(|_, _, r| {
        metrics.record_step(&r);
        Ok(Flow::Go)
    });
    pace::run_until(&mut agent, &mut clock, &mut count).unwrap();
    assert!(agent.devlink_events >= 4, "{}", agent.devlink_events);
    assert_eq!(agent.devlink_errors, 0);
    let stats = agent.devlink_stats().unwrap();
    assert!(stats.diagnoses > 0 && stats.dumps > 0, "{stats:?}");
    assert_eq!((stats.malformed, stats.refused), (0, 0));
    let text = metrics.encode();
    let line = text
        .lines()
        .find(|l| l.starts_with("vfguard_fault_events_total") && l.contains("kind=\"mailbox\""))
        .unwrap_or_else(|| panic!("no mailbox fault events in\n{text}"));
    assert!(line.contains("driver=\"mlx5_core\""), "{line}");
    drop(agent);
    let j = Journal::open_read_only(&db).unwrap();
    let devlink: Vec<_> = j
        .replay_stream()
        .filter_map(|e| match e.unwrap() {
            Entry::Observation(o) => match o.observation {
                Observation::Fault(f)
                    if f.details.get("source").map(String::as_str) == Some("devlink") =>
                {
                    Some(f)
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(
        devlink
            .iter()
            .any(|f| f.catalog_id == "devlink.mlx5.vnic.error_queues" && f.vf.is_some()),
        "{devlink:#?}"
    );
    assert!(devlink
        .iter()
        .any(|f| f.catalog_id == "devlink.mlx5.vnic.commands"
            && f.details.contains_key("quota_exceeded_command")));
}

#[test]
fn devlink_off_sees_nothing_of_mlx5_vfs() {
    let sc = scenario("mlx5-vnic.toml");
    let duration = sc.scenario.duration_ms;
    let mut sim = SimHost::new(sc).unwrap();
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let cfg = AgentConfig {
        devlink: false,
        ..AgentConfig::default()
    };
    let (mut agent, _) = Agent::start(cfg, host, None, 0).unwrap();
    let mut clock = VirtualClock::new(&mut sim, 0, duration, 100);
    let mut count = pace::each_step(|_, _, _| Ok(Flow::Go));
    pace::run_until(&mut agent, &mut clock, &mut count).unwrap();
    assert_eq!(agent.devlink_events, 0);
    assert!(agent.devlink_stats().is_none());
    // Only the PF's Tx timeouts reach the log: notified, no tenant touched.
    assert!(sim
        .control_calls()
        .iter()
        .all(|c| !c.op.starts_with("set_vf")));
}
