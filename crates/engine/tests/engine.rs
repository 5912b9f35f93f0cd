//! The engine against a simulated host map: attribution methods, the ladder, driver policy,
//! failures, the guard, modes, operator requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vfguard_engine::{Engine, IncidentState as State};
use vfguard_model::{
    ActionId, ActionKind, ActionOutcome, Decision, Errno, Method, Observation, OperatorRequest,
    RuleRef,
};

fn attributed(d: &[Decision]) -> Vec<(Method, f64)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Attributed {
                method, confidence, ..
            } => Some((*method, *confidence)),
            _ => None,
        })
        .collect()
}

#[test]
fn direct_mdd_climbs_the_ladder_while_faults_continue_and_stops_when_contained() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("hold_down = \"1s\""));
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on";
    let d = e.observe(&fault(line), &t, 1000);
    assert_eq!(attributed(&d), [(Method::Direct, 1.0)]);
    assert_eq!(acts(&d), [("0000:3c:00.2".to_owned(), "notify".to_owned())]);
    // Within the hold-down: no climb.
    assert!(acts(&e.observe(&fault(line), &t, 1500)).is_empty());
    let ok = |id: u64, at| {
        Observation::Outcome(ActionOutcome {
            id: ActionId(id),
            error: None,
            before: None,
            at,
        })
    };
    e.observe(&ok(1, 1001), &t, 1001);
    // After it, with faults continuing: MDD skips the spoof/trust/rate rungs.
    let d = e.observe(&fault(line), &t, 2600);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.2".to_owned(), "reset_vf".to_owned())]
    );
    e.observe(&ok(2, 2601), &t, 2601);
    let d = e.observe(&fault(line), &t, 3700);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.2".to_owned(), "set_vf:link_state".to_owned())]
    );
    let d = e.observe(&ok(3, 3701), &t, 3701);
    assert!(d.iter().any(|d| matches!(d, Decision::Contained { .. })));
    // A line still in flight within the hold-down does not count against the containment.
    assert!(acts(&e.observe(&fault(line), &t, 4200)).is_empty());
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.state, State::Contained);
    assert_eq!(inc.owner.as_ref().unwrap().name.as_deref(), Some("vm2"));
    // Faults past it show the containment does not hold: undone, and the next rung at once.
    let d = e.observe(&fault(line), &t, 9000);
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::StateChanged {
            from: State::Contained,
            to: State::Escalating,
            cause: vfguard_model::Cause::ContainmentUndone,
            ..
        }
    )));
    assert_eq!(acts(&d), [("0000:3c:00.2".to_owned(), "detach".to_owned())]);
}

#[test]
fn a_vf_the_driver_disabled_is_contained_then_restored_by_policy_only() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("cool_down = \"60s\"\nclose_after = \"60s\""));
    let d = e.observe(
        &fault("i40e 0000:3b:00.0: Use PF Control I/F to re-enable the VF #2"),
        &t,
        1000,
    );
    assert!(d
        .iter()
        .any(|d| matches!(d, Decision::Contained { by, .. } if by.starts_with("driver"))));
    // Before the cool-down nothing re-enables it.
    for now in [2000, 30_000, 60_999] {
        assert!(acts(&e.observe(&Observation::Tick, &t, now))
            .iter()
            .all(|(_, a)| a == "notify"));
    }
    let d = e.observe(&Observation::Tick, &t, 61_000);
    let restore: Vec<_> = acts(&d);
    assert_eq!(
        restore,
        [("0000:3c:00.2".to_owned(), "reset_vf".to_owned())]
    );
    let id = d
        .iter()
        .find_map(|d| match d {
            Decision::Act(a) => Some(a.id),
            _ => None,
        })
        .unwrap();
    let d = e.observe(
        &Observation::Outcome(ActionOutcome {
            id,
            error: None,
            before: None,
            at: 61_001,
        }),
        &t,
        61_001,
    );
    assert!(d.iter().any(|d| matches!(d, Decision::Restored { .. })));
    let d = e.observe(&Observation::Tick, &t, 130_000);
    assert!(d.iter().any(|d| matches!(d, Decision::Closed { .. })));
}

#[test]
fn pf_level_lines_never_punish_a_tenant() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let mut all = Vec::new();
    for i in 0..20u64 {
        all.extend(acts(&e.observe(
            &fault("ixgbe 0000:08:00.0 ens3f0: 500 Spoofed packets detected"),
            &t,
            1000 + i * 500,
        )));
        all.extend(acts(&e.observe(
            &fault("ixgbe 0000:08:00.0 ens3f0: Reset adapter"),
            &t,
            1100 + i * 500,
        )));
    }
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|(f, a)| a == "notify" && f == "0000:08:00.0"),
        "{all:?}"
    );
}

#[test]
fn sequence_attribution_takes_the_vf_the_next_line_names() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let d1 = e.observe(&fault("i40e 0000:3b:00.0: VF attempting to override administratively set MAC address, bring down and up the VF interface to resume normal operation"), &t, 1000);
    assert!(attributed(&d1).is_empty(), "held until the next line");
    let d2 = e.observe(
        &fault("i40e 0000:3b:00.0: VF 2 failed opcode 10, retval: -1"),
        &t,
        1200,
    );
    let methods: Vec<Method> = attributed(&d2).into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, [Method::Sequence, Method::Direct]);
    // Too late: it stays on the PF.
    e.observe(&fault("i40e 0000:3b:00.0: VF is not trusted, switch the VF to trusted to add more VLAN addresses"), &t, 5000);
    let d = e.observe(&Observation::Tick, &t, 7000);
    assert_eq!(attributed(&d), [(Method::Unattributed, 0.0)]);
}

#[test]
fn absolute_vf_numbers_are_attributed_only_with_the_vf_s_own_line() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let global = "i40e 0000:3b:00.0: Malicious Driver Detection event 0x02 on TX queue 8 PF number 0x00 VF number 0x42";
    assert!(attributed(&e.observe(&fault(global), &t, 1000)).is_empty());
    let d = e.observe(&fault("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=off"), &t, 1001);
    let methods: Vec<Method> = attributed(&d).into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, [Method::Absolute, Method::Direct]);
    // Learned (base 0x40): the next global line (0x43 = VF 3) waits for VF 3's own line. Another
    // culprit's line printed first (VF 5) does not release it: with several culprits the base
    // could be wrong, and a VF that printed nothing is never blamed through it alone.
    let global3 = "i40e 0000:3b:00.0: Malicious Driver Detection event 0x02 on TX queue 12 PF number 0x00 VF number 0x43";
    assert!(attributed(&e.observe(&fault(global3), &t, 5000)).is_empty());
    let d = e.observe(&fault("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 5 MAC 5254003b0005. mdd-auto-reset-vfs=off"), &t, 5001);
    assert_eq!(attributed(&d), [(Method::Direct, 1.0)]);
    let d = e.observe(&fault("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 3 MAC 5254003b0003. mdd-auto-reset-vfs=off"), &t, 5002);
    assert_eq!(
        attributed(&d),
        [(Method::Absolute, 0.9), (Method::Direct, 1.0)]
    );
    assert!(e
        .incidents()
        .filter(|i| i.function == Some("0000:3c:00.3".parse().unwrap()))
        .all(|i| i.faults == 2));
}

#[test]
fn concurrent_culprits_never_teach_a_base_that_blames_an_innocent() {
    // proptest found it: VF 7's global line (0x47) followed by VF 5's own line teaches base 0x42;
    // VF 5's next global line (0x45) then mapped to VF 3, which did nothing.
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let global = |n: u32| {
        format!("i40e 0000:3b:00.0: Malicious Driver Detection event 0x02 on TX queue 1 PF number 0x00 VF number 0x{:02x}", n)
    };
    let own = |vf: u32| {
        format!("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF {vf} MAC 5254003b{vf:04x}. mdd-auto-reset-vfs=on")
    };
    let mut blamed = std::collections::BTreeSet::new();
    let mut now = 1000;
    for line in [global(0x47), own(5), global(0x45), own(5), own(7)] {
        now += 1;
        e.observe(&fault(&line), &t, now);
    }
    e.observe(&Observation::Tick, &t, now + 60_000);
    for i in e.incidents() {
        blamed.insert(i.function.map(|f| f.to_string()));
    }
    assert!(
        !blamed.contains(&Some("0000:3c:00.3".to_owned())),
        "VF 3 printed nothing: {blamed:?}"
    );
}

#[test]
fn requester_mac_and_whole_device_attributions() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let d = e.observe(&fault("DMAR: [DMA Read NO_PASID] Request device [3c:00.2] fault addr 0x7ff3c000 [fault reason 0x06] PTE Read access is not set"), &t, 1000);
    assert_eq!(attributed(&d), [(Method::Requester, 0.9)]);
    let mac = "ice 0000:86:00.0: VF MAC 52:54:00:86:00:03 on PF MAC b4:96:91:86:00:01 is generating asynchronous messages and may be overflowing the PF message queue. Please see the Adapter User Guide for more information";
    let d = e.observe(&fault(mac), &t, 1000);
    assert_eq!(attributed(&d), [(Method::Mac, 0.95)]);
    let d = e.observe(&fault("DMAR: [DMA Write NO_PASID] Request device [5e:00.1] fault addr 0x1000 [fault reason 0x05] PTE Write access is not set"), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::WholeDevice);
}

#[test]
fn an_unsupported_knob_steps_up_at_once_and_ebusy_is_retried_once() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("ladder = [\"vf_disable\", \"detach\"]"));
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 0 MAC 5254003b0000. mdd-auto-reset-vfs=on";
    let d = e.observe(&fault(line), &t, 1000);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.0".to_owned(), "set_vf:link_state".to_owned())]
    );
    let busy = |id, at| {
        Observation::Outcome(ActionOutcome {
            id: ActionId(id),
            error: Some(Errno::EBUSY),
            before: None,
            at,
        })
    };
    let d = e.observe(&busy(1, 1001), &t, 1001);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.0".to_owned(), "set_vf:link_state".to_owned())],
        "retried"
    );
    let d = e.observe(&busy(2, 1002), &t, 1002);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.0".to_owned(), "detach".to_owned())],
        "then the next rung"
    );
    let unsupported = Observation::Outcome(ActionOutcome {
        id: ActionId(3),
        error: Some(Errno::EOPNOTSUPP),
        before: None,
        at: 1003,
    });
    let d = e.observe(&unsupported, &t, 1003);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.0".to_owned(), "notify".to_owned())],
        "the ladder is exhausted: nothing more to try but to say so"
    );
    assert_eq!(e.incidents().next().unwrap().state, State::Uncontained);
    let inc = e.incidents().next().unwrap();
    let results: Vec<String> = inc
        .actions
        .iter()
        .map(|a| format!("{}={:?}", a.name, a.result))
        .collect();
    assert_eq!(results.len(), 4, "{results:?}");
}

#[test]
fn the_guard_caps_actions_per_pf_and_the_exclusion_list_only_notifies() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("ladder = [\"vf_disable\"]\n[guard]\nmax_actions_per_pf = 1\nmax_actions_per_host = 5\nexclude = [\"vm:infra-*\"]"));
    let line = |vf: u16| {
        format!("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF {vf} MAC 5254003b000{vf}. mdd-auto-reset-vfs=on")
    };
    let d0 = e.observe(&fault(&line(0)), &t, 1000);
    assert_eq!(acts(&d0).len(), 1);
    let d2 = e.observe(&fault(&line(2)), &t, 1001);
    assert!(acts(&d2).is_empty());
    assert!(d2
        .iter()
        .any(|d| matches!(d, Decision::Suppressed { reason, .. } if reason.starts_with("guard"))));
    let d3 = e.observe(&fault(&line(3)), &t, 1002);
    assert_eq!(
        acts(&d3),
        [("0000:3c:00.3".to_owned(), "notify".to_owned())],
        "excluded owner: notify only"
    );
}

#[test]
fn observe_mode_acts_on_nothing_and_dry_run_only_says_what_it_would_do() {
    let sim = sim_host();
    let t = topology(&sim);
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on";
    let mut obs = Engine::new(policy("mode = \"observe\"\nladder = [\"vf_disable\"]"));
    let d = obs.observe(&fault(line), &t, 1000);
    assert!(acts(&d).is_empty());
    assert!(d
        .iter()
        .any(|d| matches!(d, Decision::Suppressed { reason, .. } if reason == "observe mode")));
    let mut dry = Engine::new(policy("mode = \"dry_run\"\nladder = [\"vf_disable\"]"));
    let d = dry.observe(&fault(line), &t, 1000);
    let a = d
        .iter()
        .find_map(|d| match d {
            Decision::Act(a) => Some(a),
            _ => None,
        })
        .unwrap();
    assert!(a.dry_run);
}

#[test]
fn untrusted_lines_are_ignored_and_operators_can_quarantine_and_release() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let forged = faults("11,5,100,-;i40e 0000:3b:00.0: 9 Tx Malicious Driver Detection events detected on PF 0 VF 0 MAC 5254003b0000. mdd-auto-reset-vfs=off\n");
    assert!(!forged[0].trusted);
    assert!(e
        .observe(&Observation::Fault(forged[0].clone()), &t, 1000)
        .is_empty());
    let q = Observation::Operator(OperatorRequest::Quarantine {
        function: "0000:3c:00.0".parse().unwrap(),
        reason: "ticket 42".into(),
        by: "alice".into(),
    });
    let d = e.observe(&q, &t, 2000);
    let a = d
        .iter()
        .find_map(|d| match d {
            Decision::Act(a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(a.kind.name(), "set_vf:link_state");
    assert_eq!(
        a.rule,
        RuleRef::Quarantine {
            by: "alice".into(),
            reason: "ticket 42".into()
        }
    );
    assert_eq!(a.rule.to_string(), "operator alice: ticket 42");
    let before = vfguard_model::VfState {
        index: 0,
        spoofchk: Some(true),
        link_state: Some(vfguard_model::VfLinkState::Auto),
        ..Default::default()
    };
    e.observe(
        &Observation::Outcome(ActionOutcome {
            id: a.id,
            error: None,
            before: Some(before),
            at: 2001,
        }),
        &t,
        2001,
    );
    let r = Observation::Operator(OperatorRequest::Release {
        function: "0000:3c:00.0".parse().unwrap(),
        by: "alice".into(),
    });
    let d = e.observe(&r, &t, 3000);
    assert!(d
        .iter()
        .any(|d| matches!(d, Decision::Act(a) if matches!(a.kind, ActionKind::Restore(_)))));
    assert!(d.iter().any(|d| matches!(d, Decision::Closed { .. })));
}

#[test]
fn memory_is_bounded_by_the_windows_not_by_uptime() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("mode = \"observe\"\nclose_after = \"10m\"\n[[rule]]\nname = \"mdd\"\nkinds = [\"mdd_tx\"]\nwindow = \"1m\"\nthreshold = 50\n"));
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on";
    let obs = fault(line);
    for i in 0..20_000u64 {
        let now = 1000 + i * 100;
        for d in e.observe(&obs, &t, now) {
            if let Decision::Act(a) = d {
                e.observe(
                    &Observation::Outcome(ActionOutcome {
                        id: a.id,
                        error: None,
                        before: None,
                        at: now,
                    }),
                    &t,
                    now,
                );
            }
        }
    }
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.faults, 20_000);
    assert!(inc.windows.values().all(|w| w.len() <= 50));
    assert!(inc.evidence.len() <= vfguard_engine::incident::EVIDENCE_KEPT);
    // Quiet long enough: the incident leaves memory (the journal keeps it).
    let d = e.observe(&Observation::Tick, &t, 1000 + 20_000 * 100 + 11 * 60_000);
    assert!(d.iter().any(|d| matches!(d, Decision::Closed { .. })));
    assert_eq!(e.incidents().count(), 0);
}

#[test]
fn an_action_no_actuator_reports_on_times_out_and_is_retried() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("ladder = [\"vf_disable\", \"detach\"]"));
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 0 MAC 5254003b0000. mdd-auto-reset-vfs=on";
    assert_eq!(acts(&e.observe(&fault(line), &t, 1000)).len(), 1);
    assert!(
        acts(&e.observe(&Observation::Tick, &t, 30_000)).is_empty(),
        "not yet"
    );
    let d = e.observe(&Observation::Tick, &t, 61_000);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.0".to_owned(), "set_vf:link_state".to_owned())]
    );
    let a = d
        .iter()
        .find_map(|d| match d {
            Decision::Act(a) => Some(a.rule.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        a,
        RuleRef::Retry {
            error: Errno::ETIMEDOUT
        }
    );
    assert_eq!(a.to_string(), "retry after ETIMEDOUT");
}

#[test]
fn the_same_vf_index_under_two_pfs_is_two_functions() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    e.observe(&fault("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 1 MAC 5254003b0001. mdd-auto-reset-vfs=on"), &t, 1000);
    e.observe(
        &fault("ixgbe 0000:08:00.0 ens3f0: Malicious event on VF 1 tx:2 rx:0"),
        &t,
        1001,
    );
    let mut fns: Vec<String> = e.incidents().map(|i| format!("{:?}", i.function)).collect();
    fns.sort();
    assert_eq!(fns, ["Some(0000:09:00.1)", "Some(0000:3c:00.1)"]);
    let owners: Vec<String> = e.incidents().map(|i| i.owner_label()).collect();
    assert!(owners.contains(&"vm:x1".to_owned()));
}

#[test]
fn the_longest_durations_a_policy_may_write_do_not_overflow() {
    // parse_duration takes any u64 of ms; window, hold-down and close-after arithmetic saturates.
    let sim = sim_host();
    let t = topology(&sim);
    let max = u64::MAX;
    let mut e = Engine::new(policy(&format!(
        "close_after = \"{max}ms\"\nhold_down = \"{max}ms\"\n[[rule]]\nname = \"mdd\"\nkinds = [\"mdd_tx\"]\nwindow = \"{max}ms\"\nthreshold = 2\n"
    )));
    let obs = fault("i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on");
    let mut decided = 0;
    for now in [1000, 2000, 3000, 4000] {
        decided += e.observe(&obs, &t, now).len();
    }
    assert!(decided > 0);
    assert_eq!(e.incidents().next().unwrap().faults, 4);
}

#[test]
fn a_folded_burst_counts_every_record_and_crosses_a_threshold_like_the_records_would() {
    let sim = sim_host();
    let t = topology(&sim);
    let rules = "ladder = [\"vf_disable\"]\n[[rule]]\nname = \"mdd\"\nkinds = [\"mdd_tx\"]\nwindow = \"1m\"\nthreshold = 5\n";
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on";
    let burst = |repeats: u64| {
        let Observation::Fault(mut e) = fault(line) else {
            unreachable!("fault() makes a fault")
        };
        e.repeats = repeats;
        Observation::Fault(e)
    };
    // Four records folded into one event: below the threshold of 5, nothing is done.
    let mut folded = Engine::new(policy(rules));
    let d = folded.observe(&burst(3), &t, 1000);
    assert!(acts(&d).is_empty(), "{d:#?}");
    assert_eq!(folded.incidents().next().unwrap().faults, 4);
    // The fifth record crosses it, as five separate records do.
    let d = folded.observe(&burst(0), &t, 1000);
    let mut separate = Engine::new(policy(rules));
    let mut want = Vec::new();
    for _ in 0..5 {
        want = separate.observe(&burst(0), &t, 1000);
    }
    assert_eq!(acts(&d), acts(&want));
    assert_eq!(
        acts(&d),
        [("0000:3c:00.2".to_owned(), "set_vf:link_state".to_owned())]
    );
    // A burst alone crosses it too, and the evidence says how many records it stood for.
    let mut one = Engine::new(policy(rules));
    let d = one.observe(&burst(9), &t, 1000);
    assert_eq!(
        acts(&d),
        [("0000:3c:00.2".to_owned(), "set_vf:link_state".to_owned())]
    );
    let inc = one.incidents().next().unwrap();
    assert_eq!(inc.faults, 10);
    assert!(inc
        .evidence
        .iter()
        .any(|e| e.text.ends_with("; 10 identical records")));
    assert!(inc.windows.values().all(|w| w.len() <= 5));
    // A burst as large as a count can be: counted (saturating), its window still bounded (a
    // window fed record by record would never finish).
    let mut huge = Engine::new(policy(rules));
    huge.observe(&burst(u64::MAX), &t, 1000);
    let inc = huge.incidents().next().unwrap();
    assert_eq!(inc.faults, u64::MAX);
    assert!(inc.windows.values().all(|w| w.len() <= 5));
}

/// A successful outcome, with the VF's state read before acting (what a restore puts back).
fn ok(id: ActionId, at: u64) -> Observation {
    Observation::Outcome(ActionOutcome {
        id,
        error: None,
        before: Some(vfguard_model::VfState {
            link_state: Some(vfguard_model::VfLinkState::Auto),
            ..vfguard_model::VfState::default()
        }),
        at,
    })
}

fn states(d: &[Decision]) -> Vec<(State, State, vfguard_model::Cause)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::StateChanged {
                from, to, cause, ..
            } => Some((*from, *to, *cause)),
            _ => None,
        })
        .collect()
}

/// Issue 12: an adapter that keeps resetting was never notified (no rule counted PF resets).
#[test]
fn a_repeated_adapter_reset_is_notified_once() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let line = "ixgbe 0000:08:00.0 ens3f0: Reset adapter";
    assert!(
        acts(&e.observe(&fault(line), &t, 1000)).is_empty(),
        "one reset"
    );
    let d = e.observe(&fault(line), &t, 60_000);
    assert_eq!(acts(&d), [("0000:08:00.0".to_owned(), "notify".to_owned())]);
    for at in [120_000, 180_000] {
        assert!(acts(&e.observe(&fault(line), &t, at)).is_empty(), "once");
    }
}

/// Issue 12: a culprit that offends again after its cool-down restore was never acted on again.
#[test]
fn a_reoffence_after_the_restore_is_contained_again_at_the_rung_that_contained_it() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(
        "cool_down = \"5s\"\nladder = [\"notify\", \"vf_reset\", \"vf_disable\", \"detach\"]",
    ));
    let line = "ixgbe 0000:08:00.0: Malicious event on VF 2 tx:4 rx:0";
    let mut now = 1000;
    let mut contained_by = None;
    // Climb to containment: notify, reset, link state.
    while contained_by.is_none() && now < 10_000 {
        for d in e.observe(&fault(line), &t, now) {
            if let Decision::Act(a) = d {
                for d in e.observe(&ok(a.id, now), &t, now) {
                    if matches!(d, Decision::Contained { .. }) {
                        contained_by = Some(a.kind.name());
                    }
                }
            }
        }
        now += 600;
    }
    assert_eq!(contained_by.as_deref(), Some("set_vf:link_state"));
    // Quiet for the cool-down: restored.
    let d = e.observe(&Observation::Tick, &t, now + 5_000);
    let restore = d
        .iter()
        .find_map(|d| match d {
            Decision::Act(a) if a.kind.name() == "restore" => Some(a.id),
            _ => None,
        })
        .unwrap();
    let d = e.observe(&ok(restore, now + 5_000), &t, now + 5_000);
    assert_eq!(
        states(&d),
        [(
            State::Contained,
            State::Restored,
            vfguard_model::Cause::Restored
        )]
    );
    // It floods again: escalating at once, and the link forced down again (not notify first).
    let d = e.observe(&fault(line), &t, now + 5_100);
    assert_eq!(
        states(&d),
        [(
            State::Restored,
            State::Escalating,
            vfguard_model::Cause::Reoffended
        )]
    );
    assert_eq!(
        acts(&d),
        [("0000:09:00.2".to_owned(), "set_vf:link_state".to_owned())]
    );
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.reoffences, 1);
}

/// Issue 12: ice's mailbox latch cleared by a VF reset was still taken for a containment.
#[test]
fn a_vf_reset_lifts_the_drivers_containment_and_the_ladder_climbs_again() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let latch = "ice 0000:86:00.0: VF MAC 52:54:00:86:00:03 on PF MAC b4:96:91:86:00:01 is generating asynchronous messages and may be overflowing the PF message queue. Please see the Adapter User Guide for more information";
    let d = e.observe(&fault(latch), &t, 1000);
    assert!(d.iter().any(|d| matches!(d, Decision::Contained { .. })));
    assert_eq!(e.incidents().next().unwrap().state, State::Contained);
    let d = e.observe(
        &fault("ice 0000:86:00.0: PF-to-VF reset on PF 0 VF 3 due to MDD event"),
        &t,
        1500,
    );
    assert_eq!(
        states(&d)[0],
        (
            State::Contained,
            State::Escalating,
            vfguard_model::Cause::ContainmentUndone
        )
    );
    assert!(!acts(&d).is_empty(), "the ladder climbs at once");
    assert_eq!(e.incidents().next().unwrap().contained_at, None);
}

/// Issue 12: once every rung failed for a pod, the agent went silent while it kept faulting.
#[test]
fn an_uncontained_incident_is_notified_again_at_a_bounded_rate_while_faults_go_on() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(
        "ladder = [\"vf_disable\"]\nrenotify_every = \"10s\"\nclose_after = \"60s\"",
    ));
    let mdd = "ice 0000:86:00.0: Malicious Driver Detection event TX_TCLAN detected on VF 3";
    let mut notices = Vec::new();
    let mut now = 1000;
    while now <= 40_000 {
        let mut queue = vec![fault(mdd), Observation::Tick];
        while let Some(obs) = queue.pop() {
            for d in e.observe(&obs, &t, now) {
                if let Decision::Act(a) = d {
                    let error = (a.kind.name() != "notify").then_some(Errno::EOPNOTSUPP);
                    if a.kind.name() == "notify" {
                        notices.push((now, a.rule.clone()));
                    }
                    queue.push(Observation::Outcome(ActionOutcome {
                        id: a.id,
                        error,
                        before: None,
                        at: now,
                    }));
                }
            }
        }
        now += 500;
    }
    assert_eq!(e.incidents().next().unwrap().state, State::Uncontained);
    assert!(
        matches!(&notices[0].1, RuleRef::Uncontained { owner, after }
        if owner == "netns:pod-i" && **after == RuleRef::Fallback {
            action: "set_vf:link_state".into(),
            error: Errno::EOPNOTSUPP,
        }),
        "{notices:?}"
    );
    // Then every 10 s, not at every fault.
    let again: Vec<u64> = notices.iter().skip(1).map(|(at, _)| *at).collect();
    assert!((3..=4).contains(&again.len()), "{notices:?}");
    assert!(again.windows(2).all(|w| w[1] - w[0] >= 10_000), "{again:?}");
    assert!(
        matches!(notices[1].1, RuleRef::StillUncontained { faults } if faults > 0),
        "{notices:?}"
    );
    // Quiet: it closes, and is notified no more.
    let d = e.observe(&Observation::Tick, &t, 200_000);
    assert!(acts(&d).is_empty());
    assert!(d.iter().any(|d| matches!(d, Decision::Closed { .. })));
}
