//! A first start with `replay_window`: history older than the window is read past, not observed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

/// One VM flooding MDD events once a second from 1 s; the host already ran for 20 s.
fn host_with_history() -> SimHost {
    let text = r#"
[scenario]
name = "history"
seed = 1
duration_ms = 60000

[[pf]]
bdf = "0000:08:00.0"
driver = "ixgbe"
netdev = "ens3f0"
numvfs = 4

[[vm]]
name = "noisy"
functions = ["0000:08:00.0/vf1"]

[[behaviour]]
owner = "noisy"
kind = "mdd_flood"
start_ms = 1000
every_ms = 1000
"#;
    let mut sim = SimHost::new(Scenario::parse("history.toml", text).unwrap()).unwrap();
    sim.advance_to(20_000);
    sim
}

/// Starts an agent (no journal: a first start) and runs one step; returns it and its decisions.
fn first_step(sim: &SimHost, since_us: Option<u64>) -> (Agent, usize) {
    let host = AgentHost::simulated(sim, Arc::new(MemoryNotifier::default()));
    let cfg = AgentConfig {
        replay_since_us: since_us,
        ..AgentConfig::default()
    };
    let (mut agent, first) = Agent::start(cfg, host, None, 20_000).unwrap();
    let step = agent.step(20_000).unwrap();
    (agent, first.decisions.len() + step.decisions.len())
}

#[test]
fn history_outside_the_window_is_read_past_not_observed() {
    let (all, all_decisions) = first_step(&host_with_history(), None);
    assert!(all.records >= 19, "{} records", all.records);
    assert_eq!(all.history_skipped, 0);
    assert!(
        all_decisions > 0,
        "the whole ring replayed opens an incident"
    );

    // The last 5 s only: the earlier records are counted as skipped, the recent ones observed.
    let (recent, recent_decisions) = first_step(&host_with_history(), Some(15_000_000));
    assert_eq!(recent.records, all.records, "every record is still read");
    assert!(recent.history_skipped > 0);
    assert!(
        recent.history_skipped < recent.records,
        "{} of {} skipped",
        recent.history_skipped,
        recent.records
    );
    assert!(recent_decisions > 0);

    // A window that ends before every record: nothing observed, nothing decided.
    let mut sim = host_with_history();
    let (mut none, none_decisions) = first_step(&sim, Some(u64::MAX));
    assert_eq!(none.history_skipped, none.records);
    assert_eq!(none_decisions, 0);
    // Once caught up the cut-off is gone: what is logged after the start is observed, whatever
    // the kernel's clock says.
    let skipped = none.history_skipped;
    sim.advance_to(25_000);
    let later = none.step(25_000).unwrap();
    assert_eq!(none.history_skipped, skipped);
    assert!(none.records > skipped);
    assert!(
        !later.decisions.is_empty(),
        "records after the start were not observed"
    );
}

#[test]
fn a_reboot_is_a_first_start_not_a_resume() {
    // The journal's cursor is per boot: sequence numbers start again at 0 after a reboot.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let mut sim = host_with_history();
    let boot_id = sim.root().join("proc/sys/kernel/random/boot_id");
    std::fs::create_dir_all(boot_id.parent().unwrap()).unwrap();
    std::fs::write(&boot_id, "11111111-2222-3333-4444-555555555555\n").unwrap();
    let start = |sim: &SimHost| {
        let host = AgentHost::simulated(sim, Arc::new(MemoryNotifier::default()));
        let (mut a, _) = Agent::start(AgentConfig::default(), host, Some(&db), 20_000).unwrap();
        a.step(20_000).unwrap();
        a
    };
    let first = start(&sim);
    let all = first.records;
    assert!(all >= 19);
    drop(first);
    // Same boot: resume after the cursor, nothing read again.
    let again = start(&sim);
    assert_eq!(again.records, 0, "the same boot resumes after its cursor");
    drop(again);
    // Another boot (the simulated log is the same ring, standing in for the new boot's): the
    // old cursor must not apply, the log is read from its start.
    std::fs::write(&boot_id, "99999999-2222-3333-4444-555555555555\n").unwrap();
    sim.advance_to(20_000);
    let rebooted = start(&sim);
    assert_eq!(rebooted.records, all, "a new boot is a first start");
}
