//! Operator requests across a restart: a mode switch replays as it happened (so the rebuilt
//! engine decides what it decided then, and never reuses an action id), then the
//! configuration's mode holds again; releases and quarantines are refused when there is nothing
//! to do, without opening anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::pace::{self, Clock as _, Flow, VirtualClock};
use vfguard_api::Refusal;
use vfguard_engine::{Mode, Policy};
use vfguard_model::{Decision, OperatorRequest};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

/// Two VMs on one ixgbe PF: vm0 floods MDD from 1 s, vm1 from 5 s.
fn host() -> SimHost {
    let mut text = String::from(
        "[scenario]\nname = \"operator\"\nseed = 1\nduration_ms = 8000\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 4\n",
    );
    for (i, start) in [(0, 1000), (1, 5000)] {
        text.push_str(&format!(
            "\n[[vm]]\nname = \"vm{i}\"\nfunctions = [\"0000:08:00.0/vf{i}\"]\n\n[[behaviour]]\nowner = \"vm{i}\"\nkind = \"mdd_flood\"\nstart_ms = {start}\nevery_ms = 50\n"
        ));
    }
    SimHost::new(Scenario::parse("operator.toml", &text).unwrap()).unwrap()
}

fn config() -> AgentConfig {
    AgentConfig {
        policy: Policy::from_toml("mode = \"observe\"\nladder = [\"vf_disable\"]\n").unwrap(),
        ..AgentConfig::default()
    }
}

/// The agent on `sim`, over the journal at `db` (none: `None`), at `now`.
fn start(sim: &SimHost, cfg: AgentConfig, db: Option<&std::path::Path>, now: u64) -> Agent {
    let h = AgentHost::simulated(sim, Arc::new(MemoryNotifier::default()));
    Agent::start(cfg, h, db, now).unwrap().0
}

fn set_mode(a: &mut Agent, mode: Mode, now: u64) {
    a.operator(
        OperatorRequest::SetMode {
            mode,
            by: "uid=0(root) via unix socket".into(),
        },
        now,
    )
    .unwrap()
    .unwrap();
}

fn acted(a: &mut Agent, sim: &mut SimHost, from: u64, to: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut clock = VirtualClock::new(sim, from, to, 100);
    let mut steps = pace::each_step(|_, _, r| {
        for (_, d) in r.decisions {
            if let Decision::Act(x) = d {
                ids.push(x.id.0);
            }
        }
        Ok(Flow::Go)
    });
    pace::run_until(a, &mut clock, &mut steps).unwrap();
    ids
}

#[test]
fn a_mode_switch_replays_as_it_happened_and_lasts_until_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let mut sim = host();
    let start = |sim: &SimHost, now| start(sim, config(), Some(&db), now);
    let mut a = start(&sim, 0);
    set_mode(&mut a, Mode::Enforce, 0);
    let first = acted(&mut a, &mut sim, 0, 3000);
    assert!(!first.is_empty(), "vm0 is acted on in enforce mode");
    drop(a);

    // Restart: the configuration's mode (observe) holds again...
    let mut a = start(&sim, 3000);
    assert_eq!(
        a.replay_diverged, 0,
        "the replay rebuilt the engine that ran"
    );
    assert_eq!(a.policy().mode, Mode::Observe);
    // ...and a new switch to enforce acts on vm1 with fresh action ids (a reused id would be
    // refused by the journal and stop the agent).
    set_mode(&mut a, Mode::Enforce, 3000);
    let second = acted(&mut a, &mut sim, 3000, 8000);
    assert!(!second.is_empty(), "vm1 is acted on");
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "ids reused: {first:?} then {second:?}"
    );
}

#[test]
fn requests_with_nothing_to_do_are_refused_and_open_nothing() {
    let mut sim = host();
    let mut a = start(&sim, config(), None, 0);
    let by = "uid=0(root) via unix socket".to_owned();
    let release = |a: &mut Agent, f: &str| {
        a.operator(
            OperatorRequest::Release {
                function: f.parse().unwrap(),
                by: by.clone(),
            },
            100,
        )
        .unwrap()
    };
    // The PF has a function but no incident of its own: nothing to release.
    assert!(matches!(
        release(&mut a, "0000:08:00.0"),
        Err(Refusal::Conflict(_))
    ));
    assert!(matches!(
        release(&mut a, "0000:99:00.0"),
        Err(Refusal::NotFound(_))
    ));
    // A PF is neither a VF nor held by a VM: the quarantine is refused before any incident.
    let r = a
        .operator(
            OperatorRequest::Quarantine {
                function: "0000:08:00.0".parse().unwrap(),
                reason: "test".into(),
                by: by.clone(),
            },
            100,
        )
        .unwrap();
    assert!(matches!(r, Err(Refusal::Unprocessable(_))), "{r:?}");
    assert_eq!(a.incidents_by_state().values().sum::<u64>(), 0);
    // A VF: quarantined once; a second time there is nothing to do.
    let q = |a: &mut Agent| {
        a.operator(
            OperatorRequest::Quarantine {
                function: "0000:09:00.0".parse().unwrap(),
                reason: "test".into(),
                by: by.clone(),
            },
            200,
        )
        .unwrap()
    };
    let first = q(&mut a).unwrap();
    assert!(first
        .decisions
        .iter()
        .any(|(_, d)| matches!(d, Decision::Act(_))));
    assert!(matches!(q(&mut a), Err(Refusal::Conflict(_))));
    sim.advance_to(300);
    // Released: the VF's state before the quarantine is restored.
    let r = release(&mut a, "0000:09:00.0").unwrap();
    assert!(r
        .decisions
        .iter()
        .any(|(_, d)| matches!(d, Decision::Act(x) if x.kind.name() == "restore")));
}

/// The reviewer's case: an i40e VF flooding the mailbox climbs the whole default ladder (notify,
/// rate limit, reset, link disabled) and is contained; a restart must rebuild that incident on
/// the same rung, so that the cool-down still restores the VF.
#[test]
fn a_restart_mid_incident_keeps_its_rung_and_the_cool_down_still_restores() {
    let text = "[scenario]\nname = \"mbx\"\nseed = 1\nduration_ms = 400000\n\n[[pf]]\nbdf = \"0000:3b:00.0\"\ndriver = \"i40e\"\nnetdev = \"enp59s0f0\"\nnumvfs = 4\n\n[[vm]]\nname = \"vm0\"\nfunctions = [\"0000:3b:00.0/vf0\"]\n\n[[behaviour]]\nowner = \"vm0\"\nkind = \"mailbox_flood\"\nstart_ms = 1000\nend_ms = 30000\nevery_ms = 50\n";
    let mut sim = SimHost::new(Scenario::parse("mbx.toml", text).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    // The default policy: its whole ladder.
    let start = |sim: &SimHost, now| start(sim, AgentConfig::default(), Some(&db), now);
    let mut a = start(&sim, 0);
    let mut clock = VirtualClock::new(&mut sim, 0, 30_000, 100);
    let mut until_contained = pace::each_step(|a, _, _| {
        Ok(if a.incidents_by_state().contains_key("contained") {
            Flow::Stop
        } else {
            Flow::Go
        })
    });
    pace::run_until(&mut a, &mut clock, &mut until_contained).unwrap();
    let now = clock.now();
    assert!(
        a.incidents_by_state().contains_key("contained"),
        "{:?}",
        a.incidents_by_state()
    );
    drop(a);
    let mut a = start(&sim, now);
    assert_eq!(a.replay_diverged, 0);
    assert!(
        a.incidents_by_state().contains_key("contained"),
        "{:?}",
        a.incidents_by_state()
    );
    // Quiet after 30 s; the cool-down restores the VF's link.
    let mut restored = false;
    let mut clock = VirtualClock::new(&mut sim, now, 400_000, 1000);
    let mut until_restored = pace::each_step(|_, _, r| {
        restored = r
            .decisions
            .iter()
            .any(|(_, d)| matches!(d, Decision::Act(x) if x.kind.name() == "restore"));
        Ok(if restored { Flow::Stop } else { Flow::Go })
    });
    pace::run_until(&mut a, &mut clock, &mut until_restored).unwrap();
    let now = clock.now();
    assert!(restored, "the VF was never restored after the restart");
    // Restored, not yet closed: an operator may quarantine it again.
    let q = a
        .operator(
            OperatorRequest::Quarantine {
                function: "0000:3c:00.0".parse().unwrap(),
                reason: "again".into(),
                by: "uid=0(root) via unix socket".into(),
            },
            now,
        )
        .unwrap();
    assert!(q.is_ok(), "{q:?}");
}

/// The second reviewer's case: journal retention deleted an old closed incident's rows, so the
/// replay numbers actions differently from the journal. Whatever it decided was never carried
/// out: it must not be retried as an interrupted action (which would act on the tenant again).
#[test]
fn after_retention_a_restart_never_repeats_actions() {
    let text = "[scenario]\nname = \"ret\"\nseed = 1\nduration_ms = 4000000\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 4\n\n[[vm]]\nname = \"vm0\"\nfunctions = [\"0000:08:00.0/vf0\"]\n\n[[vm]]\nname = \"vm1\"\nfunctions = [\"0000:08:00.0/vf1\"]\n\n[[behaviour]]\nowner = \"vm0\"\nkind = \"mdd_flood\"\nstart_ms = 1000\nend_ms = 5000\nevery_ms = 50\n\n[[behaviour]]\nowner = \"vm1\"\nkind = \"mdd_flood\"\nstart_ms = 3700000\nend_ms = 3720000\nevery_ms = 50\n";
    let mut sim = SimHost::new(Scenario::parse("ret.toml", text).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let cfg = || AgentConfig {
        retention_age_ms: 600_000,
        ..AgentConfig::default()
    };
    let start = |sim: &SimHost, now| start(sim, cfg(), Some(&db), now);
    let mut a = start(&sim, 0);
    let mut now = 0;
    assert!(
        run(&mut a, &mut sim, &mut now, 20_000, 100) > 0,
        "vm0 is acted on"
    );
    // vm0's incident closes; retention (hourly, 10 min here) deletes its rows.
    run(&mut a, &mut sim, &mut now, 3_699_000, 1000);
    assert!(
        run(&mut a, &mut sim, &mut now, 3_730_000, 100) > 0,
        "vm1 is acted on"
    );
    assert!(a.incidents_by_state().contains_key("contained"));
    drop(a);
    let calls = sim.control_calls().len();
    let mut a = start(&sim, now);
    assert_eq!(a.replay_diverged, 0, "the replay gave the journal's ids");
    assert!(a.incidents_by_state().contains_key("contained"));
    let to = now + 90_000;
    let acts = run(&mut a, &mut sim, &mut now, to, 1000);
    assert_eq!(acts, 0, "nothing is decided again after the restart");
    assert_eq!(
        sim.control_calls().len(),
        calls,
        "nothing is done to a VF again"
    );
    // And the cool-down still restores vm1's VF.
    let to = now + 600_000;
    assert!(
        run(&mut a, &mut sim, &mut now, to, 1000) > 0,
        "vm1's VF is restored"
    );
}

/// Steps from `now` to `to`; the actions decided.
fn run(a: &mut Agent, sim: &mut SimHost, now: &mut u64, to: u64, step: u64) -> usize {
    let mut acts = 0;
    let mut clock = VirtualClock::new(sim, *now, to, step);
    let mut count = pace::each_step(|_, _, r| {
        acts += r
            .decisions
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Act(_)))
            .count();
        Ok(Flow::Go)
    });
    pace::run_until(a, &mut clock, &mut count).unwrap();
    *now = clock.now();
    acts
}
