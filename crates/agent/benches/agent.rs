//! The agent loop on the simulated host (docs/performance.md):
//! - record → action latency: VFs turning malicious one after another, each record's step timed
//!   from the moment the record is in the kernel log ring to the actuator's return;
//! - a storm: 64 VFs flooding MDD events every virtual millisecond; records the loop takes in
//!   per wall-clock second, and the latency of the actions decided meanwhile.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::sync::Arc;
use std::time::Instant;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::pace::{self, Flow, VirtualClock};
use vfguard_engine::Policy;
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn host(every_ms: u64, stagger_ms: u64, duration_ms: u64) -> SimHost {
    let mut text = format!(
        "[scenario]\nname = \"bench\"\nseed = 1\nduration_ms = {duration_ms}\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 64\n"
    );
    for i in 0..64u64 {
        text.push_str(&format!(
            "\n[[vm]]\nname = \"vm{i}\"\nfunctions = [\"0000:08:00.0/vf{i}\"]\n\n[[behaviour]]\nowner = \"vm{i}\"\nkind = \"mdd_flood\"\nstart_ms = {}\nevery_ms = {every_ms}\n",
            1000 + i * stagger_ms
        ));
    }
    SimHost::new(Scenario::parse("bench.toml", &text).unwrap()).unwrap()
}

/// The agent on `sim`: identical records folded or not, with a journal at `journal` or none.
fn agent(
    sim: &SimHost,
    policy: &str,
    fold_repeats: bool,
    journal: Option<&std::path::Path>,
) -> Agent {
    let handles = AgentHost::simulated(sim, Arc::new(MemoryNotifier::default()));
    let cfg = AgentConfig {
        policy: Policy::from_toml(policy).unwrap(),
        stats_every_ms: 1000,
        fold_repeats,
        ..AgentConfig::default()
    };
    Agent::start(cfg, handles, journal, 0).unwrap().0
}

fn pct(v: &mut [u128], p: f64) -> u128 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(0)
}

fn main() {
    // `cargo bench --bench agent -- storm` runs the storm alone (for a profiler).
    let only_storm = std::env::args().any(|a| a == "storm");
    if !only_storm {
        latency();
    }
    let dir = tempfile::tempdir().unwrap();
    storm(false, None);
    storm(true, None);
    storm(true, Some(&dir.path().join("journal.db")));
}

fn latency() {
    // Latency: a new culprit every 500 ms; the first rung disables the VF at once.
    let mut sim = host(200, 500, 40_000);
    let mut a = agent(
        &sim,
        "ladder = [\"vf_disable\"]\n[guard]\nmax_actions_per_pf = 1000\nmax_actions_per_host = 1000\n",
        true,
        None,
    );
    let mut lat = Vec::new();
    let mut clock = VirtualClock::new(&mut sim, 0, 40_000, 10);
    let mut steps = pace::each_step(|_, _, r| {
        lat.extend(r.acted_after.iter().map(std::time::Duration::as_nanos));
        Ok(Flow::Go)
    });
    pace::run_until(&mut a, &mut clock, &mut steps).unwrap();
    let n = lat.len();
    println!(
        "record -> action (step with an action, {n} samples): p50 {} us, p99 {} us, max {} us",
        pct(&mut lat, 0.5) / 1000,
        pct(&mut lat, 0.99) / 1000,
        lat.last().copied().unwrap_or(0) / 1000
    );
}

/// `fold`: identical records of a step folded into one event (the default), or each classified
/// on its own (the baseline).
/// `journal`: with the journal on disk (one `synchronous=FULL` transaction per step).
fn storm(fold: bool, journal: Option<&std::path::Path>) {
    // Storm: 64 VFs, one MDD line each per virtual millisecond, 2 virtual seconds; ixgbe keeps the
    // VFs enabled, and the policy only notifies (observe), so the storm never stops.
    const VIRTUAL_MS: u64 = 10_000;
    let mut sim = host(1, 0, VIRTUAL_MS);
    let mut a = agent(&sim, "mode = \"observe\"", fold, journal);
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut in_agent = std::time::Duration::ZERO;
    let mut clock = VirtualClock::new(&mut sim, 0, VIRTUAL_MS, 100);
    let mut steps = pace::each_step(|_, _, r| {
        in_agent += r.took;
        lat.extend(r.acted_after.iter().map(std::time::Duration::as_nanos));
        Ok(Flow::Go)
    });
    pace::run_until(&mut a, &mut clock, &mut steps).unwrap();
    let records = a.records;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "storm ({}): {records} records; the agent's steps took {:.3} s: {:.0} records/s; with the simulator writing them {secs:.3} s: {:.0} records/s; lost {}; actions decided meanwhile: {} taken, p99 {} us after their step began",
        match (fold, journal.is_some()) {
            (false, _) => "baseline: every record on its own",
            (true, false) => "identical records folded",
            (true, true) => "identical records folded, journal on disk",
        },
        in_agent.as_secs_f64(),
        records as f64 / in_agent.as_secs_f64(),
        records as f64 / secs,
        a.lost,
        lat.len(),
        pct(&mut lat, 0.99) / 1_000
    );
}
