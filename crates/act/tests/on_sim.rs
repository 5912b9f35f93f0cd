//! Actuators against the simulated host: knobs, resets, VM control, restore, dry-run, errno.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vfguard_act::{Actuator, MemoryNotifier};
use vfguard_model::{Action, ActionId, ActionKind, IncidentId, VfChange, VfIndex, VfLinkState};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

const HOST: &str = r#"
[scenario]
name = "act"
duration_ms = 10000
[[pf]]
bdf = "0000:02:00.0"
driver = "igb"
netdev = "enp2s0f0"
numvfs = 2
unsupported = ["link_state"]
[[vm]]
name = "vm1"
functions = ["0000:02:00.0/vf1"]
[[container]]
name = "pod"
functions = ["0000:02:00.0/vf0"]
"#;

fn setup() -> (SimHost, Actuator, Arc<MemoryNotifier>) {
    let sim = SimHost::new(Scenario::parse("t", HOST).unwrap()).unwrap();
    let notes = Arc::new(MemoryNotifier::default());
    let act = Actuator {
        vfctl: sim.vfctl(),
        vfnet: sim.vfnet(),
        fs: sim.fs(),
        vm: sim.vmctl(),
        netns: sim.netnsctl(),
        notifier: notes.clone(),
    };
    (sim, act, notes)
}

fn action(id: u64, kind: ActionKind, dry_run: bool, sim: &SimHost) -> Action {
    action_on(1, id, kind, dry_run, sim)
}

fn action_on(vf: u16, id: u64, kind: ActionKind, dry_run: bool, sim: &SimHost) -> Action {
    let t = sim.topology_reader().read();
    let vf = t.vf("0000:02:00.0".parse().unwrap(), VfIndex(vf)).unwrap();
    Action {
        id: ActionId(id),
        incident: IncidentId(1),
        function: vf.bdf,
        pf: Some("0000:02:00.0".parse().unwrap()),
        pf_netdev: Some("enp2s0f0".into()),
        vf: Some(vf.index),
        owner: Some(vf.owner.clone()),
        kind,
        rule: vfguard_model::RuleRef::Rule("test".into()),
        dry_run,
        at: 0,
    }
}

#[test]
fn knobs_errnos_before_state_and_restore() {
    let (sim, act, notes) = setup();
    let o = act.execute(
        &action(1, ActionKind::SetVf(VfChange::SpoofChk(false)), false, &sim),
        1,
    );
    assert_eq!(o.error, None);
    assert_eq!(
        o.before.as_ref().unwrap().spoofchk,
        Some(true),
        "captured before acting"
    );
    let o = act.execute(
        &action(
            2,
            ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable)),
            false,
            &sim,
        ),
        2,
    );
    assert_eq!(
        o.error,
        Some(vfguard_model::Errno::EOPNOTSUPP),
        "igb has no link-state knob"
    );
    let before = vfguard_model::VfState {
        spoofchk: Some(true),
        trust: Some(false),
        ..Default::default()
    };
    let o = act.execute(
        &action(3, ActionKind::Restore(Box::new(before)), false, &sim),
        3,
    );
    assert_eq!(o.error, None);
    assert_eq!(
        sim.vfnet().vf_states("enp2s0f0").unwrap()[1].spoofchk,
        Some(true)
    );
    act.execute(&action(4, ActionKind::Notify, false, &sim), 4);
    assert_eq!(notes.0.lock().unwrap().len(), 1);
}

#[test]
fn dry_run_touches_nothing_and_detach_takes_the_function_from_its_vm() {
    let (sim, act, _) = setup();
    let o = act.execute(
        &action(1, ActionKind::SetVf(VfChange::Trust(true)), true, &sim),
        1,
    );
    assert_eq!(o.error, None);
    assert!(sim.control_calls().is_empty(), "dry-run");
    let o = act.execute(&action(2, ActionKind::Detach, false, &sim), 2);
    assert_eq!(o.error, None);
    let t = sim.topology_reader().read();
    let vf = t.vf("0000:02:00.0".parse().unwrap(), VfIndex(1)).unwrap();
    assert_eq!(
        vf.owner.kind,
        vfguard_model::OwnerKind::None,
        "no VM holds it any more"
    );
    let o = act.execute(&action(3, ActionKind::ResetVf, false, &sim), 3);
    assert_eq!(o.error, None);
    assert!(sim
        .control_calls()
        .iter()
        .any(|c| c.op.starts_with("reset")));
}

#[test]
fn detach_evicts_a_containers_vf_to_the_host_and_pause_leaves_the_pod_alone() {
    let (sim, act, _) = setup();
    let pf: vfguard_model::Bdf = "0000:02:00.0".parse().unwrap();
    let o = act.execute(&action_on(0, 1, ActionKind::PauseVm, false, &sim), 1);
    assert_eq!(
        o.error,
        Some(vfguard_model::Errno::EOPNOTSUPP),
        "a pod is not a VM"
    );
    let o = act.execute(&action_on(0, 2, ActionKind::Detach, false, &sim), 2);
    assert_eq!(o.error, None);
    let t = sim.topology_reader().read();
    let vf0 = t.vf(pf, VfIndex(0)).unwrap();
    assert_eq!(
        vf0.owner.kind,
        vfguard_model::OwnerKind::Host,
        "{:?}",
        vf0.owner
    );
    assert!(vf0.netdev.is_some(), "its netdev is in the host namespace");
    assert_eq!(
        t.vf(pf, VfIndex(1)).unwrap().owner.kind,
        vfguard_model::OwnerKind::Vm,
        "the VM keeps its VF"
    );
    assert!(sim
        .control_calls()
        .iter()
        .any(|c| c.op == format!("evict {} from netns:pod", vf0.bdf) && c.result == "ok"));
    assert!(
        !sim.control_calls()
            .iter()
            .any(|c| c.op.starts_with("pause")),
        "no VM was paused for the pod"
    );
}
