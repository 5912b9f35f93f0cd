//! Properties over random event sequences from many VFs where only some misbehave:
//! - no action ever targets a function other than its incident's, and no owner without faults
//!   is touched;
//! - the ladder only climbs while faults continue;
//! - the guard's caps always hold.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use proptest::prelude::*;
use vfguard_engine::Engine;
use vfguard_model::{ActionOutcome, Bdf, Decision, Errno, IncidentId, Observation, RuleRef};

/// Lines a misbehaving VF of the i40e PF (VF n) can cause.
fn bad_line(kind: u8, vf: u16) -> String {
    let mac = format!("5254003b{vf:04x}");
    match kind % 5 {
        0 => format!("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF {vf} MAC {mac}. mdd-auto-reset-vfs=on"),
        1 => format!("i40e 0000:3b:00.0: Invalid message from VF {vf}, opcode 10, len 4096"),
        2 => format!("i40e 0000:3b:00.0: Unprivileged VF {vf} is attempting to configure promiscuous mode"),
        3 => format!("DMAR: [DMA Read NO_PASID] Request device [3c:00.{vf}] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set"),
        _ => format!("i40e 0000:3b:00.0: Malicious Driver Detection event 0x02 on TX queue 1 PF number 0x00 VF number 0x{:02x}", 64 + u32::from(vf)),
    }
}

/// Lines no tenant caused, or that count for nothing.
fn noise_line(kind: u8, vf: u16) -> String {
    match kind % 4 {
        0 => "ixgbe 0000:08:00.0 ens3f0: 77 Spoofed packets detected".to_owned(),
        1 => format!("i40e 0000:3b:00.0: Setting MAC 52:54:00:00:00:0{vf} on VF {vf}"),
        2 => "pcieport 0000:3a:00.0: AER: Correctable error message received from 0000:3b:00.0"
            .to_owned(),
        _ => "i40e 0000:3b:00.0 enp59s0f0: tx_timeout recovery level 1, txqueue 3".to_owned(),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Bad { vf: u16, kind: u8, dt: u64 },
    Noise { vf: u16, kind: u8, dt: u64 },
    Tick { dt: u64 },
}

fn step(bad: Vec<u16>) -> impl Strategy<Value = Step> {
    prop_oneof![
        (prop::sample::select(bad), any::<u8>(), 0u64..3000).prop_map(|(vf, kind, dt)| Step::Bad {
            vf,
            kind,
            dt
        }),
        (0u16..8, any::<u8>(), 0u64..3000).prop_map(|(vf, kind, dt)| Step::Noise { vf, kind, dt }),
        (0u64..120_000).prop_map(|dt| Step::Tick { dt }),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<u16>, Vec<Step>, Vec<u8>)> {
    prop::sample::subsequence(vec![0u16, 2, 3, 5, 7], 1..4).prop_flat_map(|bad| {
        (
            Just(bad.clone()),
            prop::collection::vec(step(bad), 1..120),
            prop::collection::vec(any::<u8>(), 64),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn actions_hit_only_culprits_climb_only_on_new_faults_and_respect_the_guard((bad, steps, outcomes) in scenario()) {
        let sim = sim_host();
        let t = topology(&sim);
        let max_pf = 3u32;
        let max_host = 4u32;
        let window = 30_000u64;
        let mut e = Engine::new(policy(&format!(
            "hold_down = \"2s\"\ncool_down = \"100s\"\n[guard]\nmax_actions_per_pf = {max_pf}\nmax_actions_per_host = {max_host}\nwindow = \"{window}ms\"\n"
        )));
        let bad_fns: BTreeSet<Bdf> = bad.iter().map(|v| format!("0000:3c:00.{v}").parse().unwrap()).collect();
        let mut now = 1000u64;
        let mut outcome_i = 0usize;
        let mut faults_at: HashMap<IncidentId, Vec<u64>> = HashMap::new();
        let mut acts: Vec<(u64, vfguard_model::Action)> = Vec::new();
        let mut queue: Vec<Observation> = Vec::new();
        for s in steps {
            match s {
                Step::Bad { vf, kind, dt } => { now += dt; queue.push(fault(&bad_line(kind, vf))); }
                Step::Noise { vf, kind, dt } => { now += dt; queue.push(fault(&noise_line(kind, vf))); }
                Step::Tick { dt } => { now += dt; queue.push(Observation::Tick); }
            }
            while let Some(obs) = queue.pop() {
                for d in e.observe(&obs, &t, now) {
                    match d {
                        Decision::Attributed { incident, .. } => faults_at.entry(incident).or_default().push(now),
                        Decision::Act(a) => {
                            let r = outcomes[outcome_i % outcomes.len()];
                            outcome_i += 1;
                            let error = match r % 6 { 0 => Some(Errno::EBUSY), 1 => Some(Errno::EOPNOTSUPP), _ => None };
                            queue.push(Observation::Outcome(ActionOutcome { id: a.id, error, before: None, at: now }));
                            acts.push((now, a));
                        }
                        _ => {}
                    }
                }
            }
        }
        for (_, a) in &acts {
            let notify = a.kind.name() == "notify";
            // Only culprits are touched (notifications about PF-level trouble name the PF).
            if !notify {
                prop_assert!(bad_fns.contains(&a.function), "acted on {} ({:?}), culprits {:?}", a.function, a.kind, bad_fns);
                prop_assert!(a.owner.as_ref().is_some_and(|o| o.name.is_some()));
            }
        }
        // The ladder climbs only when faults continued since the previous rung.
        let mut by_incident: HashMap<IncidentId, Vec<&(u64, vfguard_model::Action)>> = HashMap::new();
        for a in &acts { by_incident.entry(a.1.incident).or_default().push(a); }
        for (inc, list) in by_incident {
            for w in list.windows(2) {
                let (t0, _) = w[0];
                let (t1, a1) = w[1];
                // Retries, fallbacks and the notice that nothing is left follow a failed action,
                // not a fault.
                let climb = !matches!(a1.rule, RuleRef::Retry { .. } | RuleRef::Fallback { .. } | RuleRef::Uncontained { .. } | RuleRef::CoolDown);
                if climb {
                    let faults = faults_at.get(&inc).map_or(0, |v| v.iter().filter(|&&f| f > *t0 && f <= *t1).count());
                    prop_assert!(faults > 0, "incident {inc:?} climbed to {} at {t1} with no fault since {t0}", a1.kind.name());
                }
            }
        }
        // The guard's caps hold over every window.
        let capped: Vec<&(u64, vfguard_model::Action)> = acts.iter().filter(|(_, a)| a.kind.name() != "notify" && a.rule != RuleRef::CoolDown).collect();
        for (i, (t0, _)) in capped.iter().enumerate() {
            let in_window: Vec<_> = capped[i..].iter().filter(|(t1, _)| *t1 < t0 + window).collect();
            prop_assert!(in_window.len() as u32 <= max_host, "{} actions on the host within {window} ms", in_window.len());
            let pf3b = in_window.iter().filter(|(_, a)| a.pf.map(|p| p.to_string()) == Some("0000:3b:00.0".into())).count();
            prop_assert!(pf3b as u32 <= max_pf, "{pf3b} actions on one PF within {window} ms");
        }
    }
}
