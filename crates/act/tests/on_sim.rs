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
"#;

fn setup() -> (SimHost, Actuator, Arc<MemoryNotifier>) {
    let sim = SimHost::new(Scenario::parse("t", HOST).unwrap()).unwrap();
    let notes = Arc::new(MemoryNotifier::default());
    let act = Actuator {
        vfctl: sim.vfctl(),
        vfnet: sim.vfnet(),
        fs: sim.fs(),
        vm: sim.vmctl(),
        notifier: notes.clone(),
    };
    (sim, act, notes)
}

fn action(id: u64, kind: ActionKind, dry_run: bool, sim: &SimHost) -> Action {
    let t = sim.topology_reader().read();
    let vf = t.vf("0000:02:00.0".parse().unwrap(), VfIndex(1)).unwrap();
    Action {
        id: ActionId(id),
        incident: IncidentId(1),
        function: vf.bdf,
        pf: Some("0000:02:00.0".parse().unwrap()),
        pf_netdev: Some("enp2s0f0".into()),
        vf: Some(VfIndex(1)),
        owner: Some(vf.owner.clone()),
        kind,
        rule: "test".into(),
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
        o.error.as_deref(),
        Some("EOPNOTSUPP"),
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
