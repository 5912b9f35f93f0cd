//! An agent restart on a journal holding an incident of 2,000,000 observations (issue 13 item
//! 2): the wall time and peak memory of `Agent::start`, which rebuilds the engine by replaying
//! the journal, against the old way of replaying it (the whole journal read into a `Vec`).
//!
//! ```sh
//! cargo bench -p vfguard-agent --bench big_restart
//! VFGUARD_BENCH_UNBOUNDED=1 cargo bench -p vfguard-agent --bench big_restart
//! VFGUARD_BENCH_OBSERVATIONS=200000 cargo bench -p vfguard-agent --bench big_restart
//! ```
//!
//! `VFGUARD_BENCH_OBSERVATIONS` sets the incident's length (default 2,000,000);
//! `VFGUARD_BENCH_UNBOUNDED=1` measures, instead of `Agent::start`, the old way: `replay()`
//! collected into a `Vec`, mapped to what the engine reads, then `rebuild` over that `Vec`. One
//! per run, since the allocator keeps what a phase freed; for the same reason the journal is
//! written by a child process, so that the measured process starts with a clean heap.
//!
//! The host is the simulated one of `testdata/scenarios/reoffence-ixgbe.toml`: `evil-2` floods
//! its ixgbe VF with malformed Tx descriptors. Its kernel line (`ixgbe.mdd.event`, `Malicious
//! event on VF 2 tx:4 rx:0`, taken from the simulator and classified as the agent does; it names
//! the VF, so each record is attributed to it directly) is observed `N` times by an engine with
//! the scenario's policy in observe mode (so the storm never stops: no action disables the VF),
//! against the host map the agent reads at start, and journalled as the agent's loop journals
//! it: each observation that decided something with its incident, the decisions, the kmsg
//! cursor, one step of 100 ms per 1000 records, a tick at the end of each step. Each record is
//! an observation of its own, as the loop journals a storm of distinct lines (or identical ones
//! with `fold_repeats = false`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use vfguard_act::{Actuator, MemoryNotifier};
use vfguard_agent::agent::{kmsg_cursor_key, Agent, AgentConfig, AgentHost};
use vfguard_engine::restart::{self, Journalled, RebuildReport, UsedIds};
use vfguard_engine::{Engine, Mode, Policy};
use vfguard_journal::{Batch, Entry, Journal};
use vfguard_model::{ActionKind, Decision, FaultEvent, Millis, Observation, Topology};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;
use vfguard_topology::TopologyWatcher;

/// Records per step (and per transaction).
const PER_STEP: u64 = 1_000;
const STEP_MS: Millis = 100;
/// The culprit's line, as the catalog names it.
const CULPRIT_LINE: &str = "ixgbe.mdd.event";
/// The child that writes the journal is given its path here.
const WRITE_ENV: &str = "VFGUARD_BENCH_WRITE_JOURNAL";

fn scenario() -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios/reoffence-ixgbe.toml");
    Scenario::load(&path).unwrap()
}

/// The scenario's policy in observe mode: the storm goes on (in enforce mode the VF is disabled
/// and falls silent).
fn policy() -> Policy {
    let mut p = vfguard_agent::simrun::scenario_policy(&scenario()).unwrap();
    p.mode = Mode::Observe;
    p
}

/// The host map as `Agent::start` reads it.
fn topology(sim: &SimHost) -> Topology {
    TopologyWatcher::new(sim.topology_reader()).refresh().0
}

/// The agent's clock after `n` records: one step per `PER_STEP` records.
fn end_of_storm(n: u64) -> Millis {
    n.div_ceil(PER_STEP) * STEP_MS + STEP_MS
}

/// The culprit's MDD line, as the simulator prints it and the agent's classifier reads it.
fn culprit_line() -> FaultEvent {
    let mut sim = SimHost::new(scenario()).unwrap();
    sim.advance_to(2_000);
    sim.records()
        .iter()
        .filter_map(vfguard_parse::kmsg)
        .find(|e| e.catalog_id == CULPRIT_LINE)
        .expect("the culprit's MDD line")
}

/// A journal entry as the engine's restart reads it (`agent.rs` maps it so).
fn journalled(e: Entry) -> Journalled {
    match e {
        Entry::Observation(o) => Journalled::Observation(o.at, o.observation),
        Entry::Decision(d) => Journalled::Decision(d.decision),
        Entry::Intent { action, .. } => Journalled::Intent(action),
        Entry::Outcome { outcome, .. } => Journalled::Outcome(outcome),
    }
}

/// What the generator journalled.
#[derive(Default)]
struct Written {
    observations: u64,
    decisions: u64,
    opened: u64,
    actions: u64,
}

/// One step of the agent's loop (`Agent::process_with_cursor`): observe, journal what decided
/// something with the decisions and the cursor in one commit, then the round's intents, carry
/// them out, journal their outcomes, and observe the outcomes in the next round.
fn step(
    engine: &mut Engine,
    actuator: &Actuator,
    j: &mut Journal,
    topo: &Topology,
    (first, now, mut cursor): (Vec<Observation>, Millis, Option<(String, u64)>),
    w: &mut Written,
) {
    let mut round = first;
    while !round.is_empty() || cursor.is_some() {
        let mut batch = Batch {
            at: now,
            cursor: cursor.take(),
            ..Batch::default()
        };
        let mut acts = Vec::new();
        for obs in round.drain(..) {
            let (decisions, incident) = engine.observe_linked(&obs, topo, now);
            if decisions.is_empty() {
                continue;
            }
            if !matches!(obs, Observation::Outcome(_)) {
                batch.observations.push((obs, incident));
            }
            for d in decisions {
                match &d {
                    Decision::Act(a) => {
                        assert_eq!(a.kind, ActionKind::Notify, "observe mode only notifies");
                        acts.push(a.clone());
                    }
                    Decision::IncidentOpened { .. } => w.opened += 1,
                    _ => {}
                }
                batch.decisions.push(d);
            }
        }
        w.observations += batch.observations.len() as u64;
        w.decisions += batch.decisions.len() as u64;
        j.record_batch(&batch).unwrap();
        if !acts.is_empty() {
            j.record_intents(&acts).unwrap();
            w.actions += acts.len() as u64;
            let outcomes: Vec<_> = acts.iter().map(|a| actuator.execute(a, now)).collect();
            j.record_outcomes(&outcomes).unwrap();
            round.extend(outcomes.into_iter().map(Observation::Outcome));
        }
    }
}

/// Writes the storm's journal at `path` (in the child process).
fn write_journal(path: &Path, n: u64) {
    let line = culprit_line();
    let sim = SimHost::new(scenario()).unwrap();
    let topo = topology(&sim);
    let actuator = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default())).actuator;
    let key = kmsg_cursor_key(sim.fs().as_ref());
    let base_seq = line.seq.unwrap_or(0);
    let mut engine = Engine::new(policy());
    let mut j = Journal::open(path).unwrap();
    let t0 = Instant::now();
    let (mut seq, mut now) = (0, 0);
    let mut w = Written::default();
    while seq < n {
        now += STEP_MS;
        let end = (seq + PER_STEP).min(n);
        let mut queue: Vec<Observation> = (seq..end)
            .map(|s| {
                let mut e = line.clone();
                e.seq = Some(base_seq + s);
                e.timestamp = Some(now as f64 / 1_000.0);
                Observation::Fault(e)
            })
            .collect();
        queue.push(Observation::Tick);
        let cursor = Some((key.clone(), base_seq + end - 1));
        step(
            &mut engine,
            &actuator,
            &mut j,
            &topo,
            (queue, now, cursor),
            &mut w,
        );
        seq = end;
    }
    j.close().unwrap();
    let took = t0.elapsed().as_secs_f64();
    let size = std::fs::metadata(path).unwrap().len();
    println!(
        "journal: {n} records `{}` ({CULPRIT_LINE}) observed and journalled in {took:.1} s ({:.1} µs each): {} observations, {} decisions, {} actions (notify) journalled, {} incident(s) opened; file {:.1} MiB ({} bytes per observation)\n",
        line.message,
        took * 1e6 / n as f64,
        w.observations,
        w.decisions,
        w.actions,
        w.opened,
        size as f64 / 1_048_576.0,
        size / w.observations.max(1),
    );
    assert_eq!(w.opened, 1, "one incident");
    assert!(w.observations >= n, "every record journalled");
}

/// A `kB` field of /proc/self/status.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak RSS to the current RSS (Linux 4.0+); false if the kernel refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Runs `phase`, printing its time and the peak RSS it reached over the RSS before it.
fn measure<T>(name: &str, phase: impl FnOnce() -> T) -> T {
    let reset = reset_peak();
    let before = status_kib("VmRSS:");
    let t0 = Instant::now();
    let out = phase();
    let took = t0.elapsed();
    let peak = status_kib("VmHWM:");
    println!(
        "| {name} | {:.3} s | {} | {} | **{}**{} |",
        took.as_secs_f64(),
        mib(before),
        mib(peak),
        mib(peak.saturating_sub(before)),
        if reset { "" } else { " (peak not reset)" }
    );
    out
}

/// What `Agent::start` did with its journal before the rebuild was streamed: the whole journal
/// read into a `Vec`, then replayed from it (here through the two passes `rebuild` now makes).
fn start_unbounded(sim: &SimHost, cfg: &AgentConfig, path: &Path) -> RebuildReport {
    let topo = topology(sim);
    let mut engine = Engine::new(cfg.policy.clone());
    let j = Journal::open(path).unwrap();
    let _cursor = j.cursor(&kmsg_cursor_key(sim.fs().as_ref())).unwrap();
    let used = UsedIds {
        action: j.max_action_id().unwrap(),
        incident: j.max_incident_id().unwrap(),
    };
    let history: Vec<Journalled> = j.replay().unwrap().into_iter().map(journalled).collect();
    let passes = || history.iter().cloned().map(Ok::<_, Infallible>);
    let Ok(report) = restart::rebuild(&mut engine, passes, &topo, &cfg.policy, used);
    report
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: do little.
    let testing = !std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("VFGUARD_BENCH_OBSERVATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 2_000 } else { 2_000_000 });
    if let Some(path) = std::env::var_os(WRITE_ENV) {
        write_journal(Path::new(&path), n);
        return;
    }
    let unbounded = std::env::var("VFGUARD_BENCH_UNBOUNDED").is_ok_and(|v| v == "1");

    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("journal.db");
    let status = Command::new(std::env::current_exe().unwrap())
        .env(WRITE_ENV, &path)
        .env("VFGUARD_BENCH_OBSERVATIONS", n.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "writing the journal: {status}");

    let sim = SimHost::new(scenario()).unwrap();
    let cfg = AgentConfig {
        policy: policy(),
        ..AgentConfig::default()
    };
    println!("| an agent restart on an incident of {n} observations | time | RSS before | peak RSS | peak over before |");
    println!("|---|---|---|---|---|");
    // What any start costs, without a journal: the host map, the kmsg reader. Kept alive, so
    // that the measured restart cannot reuse what it allocated.
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let _bare = measure(
        "`Agent::start` without a journal (what any start costs)",
        || Agent::start(cfg.clone(), host, None, end_of_storm(n)).unwrap(),
    );
    if unbounded {
        let r = measure(
            "the old way: `replay()` into a `Vec`, `rebuild` over it (unbounded)",
            || start_unbounded(&sim, &cfg, &path),
        );
        println!("\n{r:?}");
        assert_eq!((r.diverged, r.abandoned), (0, 0));
        assert!(r.replayed as u64 >= n);
    } else {
        let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
        let (agent, _) = measure("`Agent::start` (the journal streamed, twice)", || {
            Agent::start(cfg, host, Some(&path), end_of_storm(n)).unwrap()
        });
        println!(
            "\nreplay diverged: {}; incidents: {:?}",
            agent.replay_diverged,
            agent.incidents_by_state()
        );
        assert_eq!(agent.replay_diverged, 0);
        assert_eq!(agent.incidents_by_state().values().sum::<u64>(), 1);
    }
}
