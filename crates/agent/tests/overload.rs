//! A reader that falls behind: the kernel's ring overwrites records, the agent counts every one
//! it lost, memory stays bounded by its per-step budget, and every culprit is still found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::pace::{self, Clock as _, Flow, VirtualClock};
use vfguard_model::Decision;
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

#[test]
fn overruns_are_counted_and_culprits_still_found() {
    // 16 VFs, each flooding one MDD line per virtual ms from 1 s: 1600 records per 100 ms step,
    // against a ring of 4096 records and a reader budget of 1000 per step.
    let mut text = String::from(
        "[scenario]\nname = \"overload\"\nseed = 1\nduration_ms = 4000\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 16\n",
    );
    for i in 0..16 {
        text.push_str(&format!(
            "\n[[vm]]\nname = \"vm{i}\"\nfunctions = [\"0000:08:00.0/vf{i}\"]\n\n[[behaviour]]\nowner = \"vm{i}\"\nkind = \"mdd_flood\"\nstart_ms = 1000\nevery_ms = 1\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimHost::build(
        Scenario::parse("overload.toml", &text).unwrap(),
        dir.path(),
        4096,
        false,
    )
    .unwrap();
    let cfg = AgentConfig {
        max_records_per_step: 1000,
        ..AgentConfig::default()
    };
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let (mut agent, _) = Agent::start(cfg, host, None, 0).unwrap();
    let mut opened = BTreeSet::new();
    let mut note = |decisions: Vec<(u64, Decision)>| {
        for (_, d) in decisions {
            if let Decision::IncidentOpened { function, .. } = d {
                opened.insert(function);
            }
        }
    };
    let mut clock = VirtualClock::new(&mut sim, 0, 4000, 100);
    let mut steps = pace::each_step(|_, _, r| {
        note(r.decisions);
        Ok(Flow::Go)
    });
    pace::run_until(&mut agent, &mut clock, &mut steps).unwrap();
    let now = clock.now();
    // Drain what is left, then nothing more arrives.
    loop {
        let before = agent.records + agent.lost;
        note(agent.step(now).unwrap().decisions);
        if agent.records + agent.lost == before {
            break;
        }
    }
    let produced = sim.with_state(|s| s.log.next_seq());
    assert!(agent.lost > 0, "the reader was meant to fall behind");
    assert_eq!(
        agent.records + agent.lost,
        produced,
        "every record is either read or counted lost"
    );
    assert!(agent.records <= 40 * 1000 + 4096, "bounded by the budget");
    assert_eq!(
        opened.len(),
        16,
        "every flooding VF has an incident: {opened:?}"
    );
}
