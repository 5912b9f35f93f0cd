//! Localizing PF-level faults that name no VF (docs/localize.md), through the engine alone: an
//! ixgbe PF of 8 tenant VMs, one of which sends spoofed frames that the PF counts PF-wide
//! ("N Spoofed packets detected" every 2 s). The harness plays the PF: it carries out the
//! engine's gates and reverts, reports their outcomes, and counts spoofs only while the
//! culprit's gate is off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{fault, policy};
use vfguard_engine::restart::replay;
use vfguard_engine::{Engine, Policy};
use vfguard_model::{
    ActionOutcome, Bdf, Decision, Errno, Method, Millis, Observation, RuleRef, Topology, VfChange,
    VfIndex, VfLinkState, VfState, VfStats,
};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

const PF: &str = "0000:08:00.0";

fn host() -> (SimHost, Topology) {
    let mut text = String::from(
        "[scenario]\nname = \"localize\"\nseed = 1\nduration_ms = 1000\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 8\n",
    );
    for i in 0..8 {
        let name = if i == 3 {
            "infra-dns".to_owned()
        } else {
            format!("vm{i}")
        };
        text.push_str(&format!(
            "\n[[vm]]\nname = \"{name}\"\nfunctions = [\"0000:08:00.0/vf{i}\"]\n"
        ));
    }
    let sim = SimHost::new(Scenario::parse("localize.toml", &text).unwrap()).unwrap();
    let mut t = sim.topology_reader().read();
    t.version = 1;
    (sim, t)
}

/// The PF as the harness plays it.
struct World {
    engine: Engine,
    t: Topology,
    pf: Bdf,
    culprit: u16,
    /// VFs that send nothing (their Tx counters never move).
    idle: Vec<u16>,
    /// Each VF's knobs now.
    rate: BTreeMap<u16, u32>,
    link: BTreeMap<u16, VfLinkState>,
    tx: [u64; 8],
    /// Gates fail with this error (the PF refuses rate limits).
    refuse: Option<Errno>,
    /// Gates go on but their call reports this error (it timed out after the PF acted).
    late: Option<Errno>,
    /// This many reverts fail with EBUSY before they work.
    busy_reverts: u32,
    decisions: Vec<(Millis, Decision)>,
    /// What the agent's journal keeps: the observations that decided something, every
    /// outcome, and the observations the engine says matter.
    journal: Vec<(Millis, Observation)>,
}

impl World {
    fn new(p: Policy, culprit: u16) -> World {
        let (_sim, t) = host();
        World {
            engine: Engine::new(p),
            pf: PF.parse().unwrap(),
            t,
            culprit,
            idle: Vec::new(),
            rate: BTreeMap::new(),
            link: BTreeMap::new(),
            tx: [0; 8],
            refuse: None,
            late: None,
            busy_reverts: 0,
            decisions: Vec::new(),
            journal: Vec::new(),
        }
    }

    fn gated(&self, vf: u16) -> bool {
        self.rate.get(&vf).is_some_and(|r| *r != 0)
            || self.link.get(&vf) == Some(&VfLinkState::Disable)
    }

    fn state(&self, vf: u16) -> VfState {
        VfState {
            index: vf,
            max_tx_rate: Some(self.rate.get(&vf).copied().unwrap_or(0)),
            min_tx_rate: Some(0),
            link_state: Some(self.link.get(&vf).copied().unwrap_or(VfLinkState::Auto)),
            spoofchk: Some(true),
            trust: Some(false),
            ..VfState::default()
        }
    }

    fn feed(&mut self, obs: Observation, now: Millis) {
        let mut queue = vec![obs];
        while let Some(o) = queue.pop() {
            let matters = self.engine.matters(&o).is_some();
            let decided = self.engine.observe(&o, &self.t, now);
            // The agent journals every outcome (right after its actuator returns).
            let outcome = matches!(o, Observation::Outcome(_));
            if matters || outcome || !decided.is_empty() {
                self.journal.push((now, o.clone()));
            }
            for d in decided {
                if let Decision::Act(a) = &d {
                    let vf = a.vf.map_or(u16::MAX, |v| v.0);
                    let before = self.state(vf);
                    let probe = matches!(a.rule, RuleRef::Probe { .. });
                    let revert = matches!(a.rule, RuleRef::ProbeReverted { .. });
                    let mut error = if probe && !a.dry_run {
                        self.refuse.clone()
                    } else {
                        None
                    };
                    if revert && self.busy_reverts > 0 {
                        self.busy_reverts -= 1;
                        error = Some(Errno::EBUSY);
                    }
                    if error.is_none() && !a.dry_run {
                        match &a.kind {
                            vfguard_model::ActionKind::SetVf(VfChange::Rate {
                                max_mbps, ..
                            }) => {
                                self.rate.insert(vf, *max_mbps);
                            }
                            vfguard_model::ActionKind::SetVf(VfChange::LinkState(l)) => {
                                self.link.insert(vf, *l);
                            }
                            _ => {}
                        }
                    }
                    if probe && !a.dry_run && error.is_none() {
                        error = self.late.clone();
                    }
                    queue.push(Observation::Outcome(ActionOutcome {
                        id: a.id,
                        error,
                        before: Some(before),
                        at: now,
                    }));
                }
                self.decisions.push((now, d));
            }
        }
    }

    /// Plays the PF from `from` to `to` in steps of 100 ms.
    fn run(&mut self, from: Millis, to: Millis) {
        for now in (from..to).step_by(100) {
            if now % 1000 == 0 {
                for vf in 0..8u16 {
                    if !self.idle.contains(&vf) && !self.gated(vf) {
                        self.tx[usize::from(vf)] += 500;
                    }
                    let stats = VfStats {
                        tx_packets: self.tx[usize::from(vf)],
                        ..VfStats::default()
                    };
                    let obs = Observation::VfStats {
                        pf: self.pf,
                        vf: VfIndex(vf),
                        stats,
                    };
                    self.feed(obs, now);
                }
            }
            if now % 2000 == 0 && now > 0 && !self.gated(self.culprit) {
                let line = format!("ixgbe {PF} ens3f0: 40 Spoofed packets detected");
                self.feed(fault(&line), now);
            }
            self.feed(Observation::Tick, now);
        }
    }

    fn probes(&self) -> Vec<&vfguard_model::Action> {
        self.decisions
            .iter()
            .filter_map(|(_, d)| match d {
                Decision::Act(a) if matches!(a.rule, RuleRef::Probe { .. }) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Asserts that some line of evidence starts with `prefix` (printing them all if not).
    fn assert_said(&self, prefix: &str) {
        assert!(
            self.evidence().iter().any(|e| e.starts_with(prefix)),
            "no evidence starts with {prefix:?}: {:#?}",
            self.evidence()
        );
    }

    fn evidence(&self) -> Vec<&str> {
        self.decisions
            .iter()
            .filter_map(|(_, d)| match d {
                Decision::Attributed { evidence, .. } => Some(evidence.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The functions incidents were opened on, but the PF's own.
    fn blamed(&self) -> Vec<Bdf> {
        self.decisions
            .iter()
            .filter_map(|(_, d)| match d {
                Decision::IncidentOpened { function, .. } if *function != self.pf => {
                    Some(*function)
                }
                _ => None,
            })
            .collect()
    }

    fn vf_bdf(&self, vf: u16) -> Bdf {
        self.t.vf(self.pf, VfIndex(vf)).unwrap().bdf
    }
}

const ACTIVE: &str = "[guard]\nexclude = [\"vm:infra-*\"]\n[localize]\nactive = true\n";

#[test]
fn the_culprit_is_found_every_gate_comes_off_and_the_excluded_are_never_gated() {
    let mut w = World::new(policy(ACTIVE), 5);
    w.run(0, 400_000);
    let named: Vec<Bdf> = w.blamed();
    assert_eq!(named, [w.vf_bdf(5)], "{:#?}", w.evidence());
    assert!(w.decisions.iter().any(|(_, d)| matches!(
        d,
        Decision::Attributed {
            method: Method::Localized,
            ..
        }
    )));
    // Every gate is a throttle (never trust or MAC), and every one came off.
    let probes = w.probes();
    assert!(!probes.is_empty());
    for a in &probes {
        assert!(
            matches!(
                a.kind,
                vfguard_model::ActionKind::SetVf(VfChange::Rate { max_mbps: 10, .. })
            ),
            "{a:?}"
        );
        assert_ne!(a.vf, Some(VfIndex(3)), "infra-dns is excluded");
        assert!(!a.dry_run);
    }
    // Once found, the culprit climbs its own ladder (a rate limit, ...); nothing else stays
    // gated.
    for vf in (0..8).filter(|vf| *vf != 5) {
        assert!(!w.gated(vf), "VF {vf} left gated");
    }
    // 7 suspects (8 less the excluded): at most half of the 8 tenants gated at once.
    let mut per_round: BTreeMap<u32, usize> = BTreeMap::new();
    for a in &probes {
        if let RuleRef::Probe { round, .. } = a.rule {
            *per_round.entry(round).or_default() += 1;
        }
    }
    assert!(per_round.values().all(|n| *n <= 4), "{per_round:?}");
    assert!(
        per_round.len() <= 4,
        "3 halvings and a confirmation: {per_round:?}"
    );
}

#[test]
fn the_spoof_counts_after_the_culprit_is_found_are_filed_on_it() {
    let mut w = World::new(policy(ACTIVE), 6);
    w.run(0, 200_000);
    let culprit = w.vf_bdf(6);
    assert_eq!(w.blamed(), [culprit]);
    let filed = w
        .evidence()
        .iter()
        .filter(|e| e.contains("localized earlier to VF 6"))
        .count();
    assert!(
        filed > 0,
        "later PF-level counts go to the culprit's incident"
    );
}

#[test]
fn probing_is_opt_in_and_never_in_observe_mode() {
    for p in ["", "mode = \"observe\"\n[localize]\nactive = true\n"] {
        let mut w = World::new(policy(p), 5);
        w.run(0, 120_000);
        assert!(w.probes().is_empty(), "policy {p:?}");
        assert!(w.blamed().is_empty());
    }
}

#[test]
fn dry_run_journals_the_first_probe_and_changes_nothing() {
    let mut w = World::new(policy(&format!("mode = \"dry_run\"\n{ACTIVE}")), 5);
    w.run(0, 120_000);
    let probes = w.probes();
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|a| a.dry_run));
    assert!(probes
        .iter()
        .all(|a| matches!(a.rule, RuleRef::Probe { round: 1, .. })));
    assert!((0..8).all(|vf| !w.gated(vf)));
    w.assert_said("localize (dry run): round 1 would gate VFs");
    assert!(w.blamed().is_empty());
}

#[test]
fn a_gate_the_pf_refuses_ends_the_search_and_no_one_is_blamed() {
    let mut w = World::new(policy(ACTIVE), 5);
    w.refuse = Some(Errno::EOPNOTSUPP);
    w.run(0, 120_000);
    assert!(!w.probes().is_empty());
    w.assert_said("localize: a gate failed");
    assert!(w.blamed().is_empty());
    assert!((0..8).all(|vf| !w.gated(vf)));
}

#[test]
fn a_culprit_among_the_excluded_is_never_gated_nor_named() {
    let mut w = World::new(policy(ACTIVE), 3);
    w.run(0, 600_000);
    assert!(w.probes().iter().all(|a| a.vf != Some(VfIndex(3))));
    assert!(w.blamed().is_empty(), "{:#?}", w.evidence());
    w.assert_said("localize: inconclusive");
}

#[test]
fn the_passive_record_narrows_the_suspects_to_the_vfs_that_sent() {
    let mut w = World::new(policy(ACTIVE), 5);
    w.idle = vec![0, 1, 2, 4, 6];
    w.run(0, 200_000);
    w.assert_said("localize: search started on 0000:08:00.0: 3 suspect(s) of 8");
    // Only the VFs that sent were ever gated.
    assert!(w
        .probes()
        .iter()
        .all(|a| matches!(a.vf, Some(VfIndex(3 | 5 | 7)))));
    assert_eq!(w.blamed(), [w.vf_bdf(5)]);
}

#[test]
fn a_replay_of_what_the_journal_keeps_decides_the_same() {
    // Idle VFs make the passive record matter: the counters it read must be in the journal.
    let p = policy(ACTIVE);
    let mut w = World::new(p.clone(), 5);
    w.idle = vec![0, 1, 2, 4, 6];
    w.run(0, 200_000);
    assert!(!w.blamed().is_empty());
    let mut again = Engine::new(p);
    let replayed = replay(&mut again, &w.journal, &w.t);
    let live: Vec<Decision> = w.decisions.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(replayed.len(), live.len());
    assert!(replayed == live, "the replay decided otherwise");
}

#[test]
fn a_revert_the_pf_refuses_is_tried_again_until_the_gate_is_off() {
    let mut w = World::new(policy(ACTIVE), 5);
    // Round 1 (at 32 s) gates half the tenants; every revert is refused 12 times over.
    w.busy_reverts = 12 * 4;
    w.run(0, 60_000);
    assert!(
        (0..8).any(|vf| w.gated(vf)),
        "the reverts are still being refused"
    );
    assert!(w
        .evidence()
        .iter()
        .any(|e| e.contains("putting VF")
            && e.contains("failed (EBUSY, attempt 1); tried again in 1 s")));
    w.run(60_000, 400_000);
    assert_eq!(w.busy_reverts, 0);
    for vf in (0..8).filter(|vf| *vf != 5) {
        assert!(!w.gated(vf), "VF {vf} left gated");
    }
    assert_eq!(w.blamed(), [w.vf_bdf(5)]);
}

#[test]
fn a_gate_whose_call_timed_out_is_taken_off_all_the_same() {
    let mut w = World::new(policy(ACTIVE), 5);
    // The PF throttles, but the call reports a timeout: the gate may be on.
    w.late = Some(Errno::ETIMEDOUT);
    w.run(0, 120_000);
    assert!(!w.probes().is_empty());
    w.assert_said("localize: a gate failed");
    assert!((0..8).all(|vf| !w.gated(vf)), "{:?}", w.rate);
    assert!(w.blamed().is_empty());
}

#[test]
fn a_vf_changing_hands_ends_the_search_and_a_new_one_starts() {
    let mut w = World::new(policy(ACTIVE), 5);
    w.run(0, 60_000);
    assert!(!w.probes().is_empty(), "the search is under way");
    // vm6 leaves; another VM takes VF 6.
    let pf = w.pf;
    let vf =
        w.t.pfs
            .iter_mut()
            .find(|p| p.bdf == pf)
            .and_then(|p| p.vfs.get_mut(6))
            .unwrap();
    vf.owner.name = Some("newcomer".into());
    w.run(60_000, 200_000);
    w.assert_said("localize: the tenants of VFs 6 changed during the search");
    // A new search among the tenants as they are now finds the spoofer, never the newcomer.
    assert_eq!(w.blamed(), [w.vf_bdf(5)]);
    let searches = w
        .evidence()
        .iter()
        .filter(|e| e.starts_with("localize: search started"))
        .count();
    assert_eq!(searches, 2);
    for vf in (0..8).filter(|vf| *vf != 5) {
        assert!(!w.gated(vf), "VF {vf} left gated");
    }
}

#[test]
fn a_released_culprit_is_not_blamed_again_by_the_pfs_counts() {
    let mut w = World::new(policy(ACTIVE), 5);
    w.run(0, 200_000);
    let culprit = w.vf_bdf(5);
    assert_eq!(w.blamed(), [culprit]);
    w.feed(
        Observation::Operator(vfguard_model::OperatorRequest::Release {
            function: culprit,
            by: "test".into(),
        }),
        200_000,
    );
    // Its spoofing goes on; within the search's rest nobody is named again.
    w.run(200_100, 300_000);
    assert_eq!(w.blamed(), [culprit], "{:#?}", w.evidence());
}
