//! The simulated host behind the host traits: its tree reads back through the real topology
//! reader, and the agent's knobs land on the model.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use vfguard_host::KmsgRead;
use vfguard_model::{OwnerKind, VfChange, VfIndex, VfLinkState};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

const HOST: &str = r#"
[scenario]
name = "t"
seed = 1
duration_ms = 20000

[[pf]]
bdf = "0000:08:00.0"
driver = "ixgbe"
netdev = "ens3f0"
numvfs = 4

[[pf]]
bdf = "0000:3b:00.0"
driver = "i40e"
netdev = "enp59s0f0"
numvfs = 2

[[pf]]
bdf = "0000:02:00.0"
driver = "igb"
netdev = "enp2s0f0"
numvfs = 2
unsupported = ["link_state"]
firmware = ""

[[vm]]
name = "flooder"
functions = ["0000:08:00.0/vf1"]

[[vm]]
name = "i40e-flooder"
functions = ["0000:3b:00.0/vf0"]

[[container]]
name = "pod"
functions = ["0000:08:00.0/vf3"]

[[behaviour]]
owner = "flooder"
kind = "mdd_flood"
every_ms = 100

[[behaviour]]
owner = "i40e-flooder"
kind = "mdd_flood"
every_ms = 100

[[event]]
at_ms = 1
fail_vf_control = { pf = "0000:08:00.0", errno = "EBUSY", count = 1 }
"#;

fn host() -> SimHost {
    SimHost::new(Scenario::parse("t.toml", HOST).unwrap()).unwrap()
}

fn count_since(sim: &SimHost, needle: &str, from_seq: usize) -> usize {
    sim.records()
        .iter()
        .skip(from_seq)
        .filter(|r| r.text.contains(needle))
        .count()
}

#[test]
fn the_tree_reads_back_as_the_scenario_says() {
    let sim = host();
    let t = sim.topology_reader().read();
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let pf = t.pf("0000:08:00.0".parse().unwrap()).unwrap();
    assert_eq!((pf.numvfs, pf.driver.as_deref()), (4, Some("ixgbe")));
    let vf1 = &pf.vfs[1];
    assert_eq!(
        (vf1.owner.kind, vf1.owner.name.as_deref()),
        (OwnerKind::Vm, Some("flooder"))
    );
    assert_eq!(vf1.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(
        (pf.vfs[3].owner.kind, pf.vfs[3].owner.name.as_deref()),
        (OwnerKind::Netns, Some("pod"))
    );
    assert_eq!(pf.vfs[0].owner.kind, OwnerKind::Host);
    let state = vf1
        .state
        .as_ref()
        .expect("VF state comes from the simulated netlink");
    assert_eq!(state.link_state, Some(VfLinkState::Auto));
}

#[test]
fn the_map_has_the_firmware_each_driver_reports() {
    let sim = host();
    let t = sim.topology_reader().read();
    let fw = |pf: &str| t.pf(pf.parse().unwrap()).and_then(|p| p.firmware.clone());
    assert_eq!(fw("0000:08:00.0").as_deref(), Some("0x800007f8"));
    assert_eq!(
        fw("0000:3b:00.0").as_deref(),
        Some("9.20 0x8000d8c5 1.3353.0")
    );
    assert_eq!(
        fw("0000:02:00.0"),
        None,
        "firmware = \"\": the driver reports none"
    );
}

#[test]
fn a_vf_the_agent_disables_stops_emitting_and_failures_are_injected_and_recorded() {
    let mut sim = host();
    sim.advance_to(2000);
    let ctl = sim.vfctl();
    let down = VfChange::LinkState(VfLinkState::Disable);
    // The injected EBUSY first, then success.
    let err = ctl.set_vf("ens3f0", VfIndex(1), &down).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(16));
    ctl.set_vf("ens3f0", VfIndex(1), &down).unwrap();
    let seq = sim.records().len();
    sim.advance_to(6000);
    assert_eq!(
        count_since(&sim, "Malicious event on VF 1", seq),
        0,
        "a disabled VF is silent"
    );
    ctl.set_vf(
        "ens3f0",
        VfIndex(1),
        &VfChange::LinkState(VfLinkState::Auto),
    )
    .unwrap();
    let seq = sim.records().len();
    sim.advance_to(8000);
    assert!(
        count_since(&sim, "Malicious event on VF 1", seq) > 5,
        "re-enabled, it floods again"
    );
    // igb has no link-state knob.
    let err = ctl.set_vf("enp2s0f0", VfIndex(0), &down).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(95));
    let calls = sim.control_calls();
    let results: Vec<&str> = calls.iter().map(|c| c.result.as_str()).collect();
    assert_eq!(results, ["EBUSY", "ok", "ok", "EOPNOTSUPP"]);
    let vf = sim.vfnet().vf_states("ens3f0").unwrap();
    assert_eq!(vf[1].link_state, Some(VfLinkState::Auto));
}

#[test]
fn i40e_disables_on_mdd_and_a_reset_brings_the_vf_back() {
    let mut sim = host();
    sim.advance_to(3000);
    assert_eq!(
        count_since(&sim, "Use PF Control I/F to re-enable the VF #0", 0),
        1
    );
    let seq = sim.records().len();
    sim.advance_to(6000);
    assert_eq!(
        count_since(&sim, "Tx Malicious Driver Detection", seq),
        0,
        "disabled by its driver"
    );
    // A function-level reset through sysfs, as the agent would do it.
    sim.fs()
        .write(
            std::path::Path::new("/sys/bus/pci/devices/0000:3c:00.0/reset"),
            "1",
        )
        .unwrap();
    let seq = sim.records().len();
    sim.advance_to(9000);
    assert!(
        count_since(&sim, "Tx Malicious Driver Detection", seq) >= 1,
        "reset: it resumes"
    );
    assert!(sim
        .control_calls()
        .iter()
        .any(|c| c.op == "reset 0000:3c:00.0" && c.result == "ok"));
}

#[test]
fn the_kmsg_device_has_dev_kmsg_semantics() {
    let mut sim = host();
    sim.advance_to(3000);
    let mut dev = sim.kmsg();
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    while let KmsgRead::Record(len) = dev.read_record(&mut buf).unwrap() {
        let rec = vfguard_model::KmsgRecord::decode(&buf[..len]).unwrap();
        assert_eq!(rec.seq, n);
        n += 1;
    }
    assert_eq!(n as usize, sim.records().len());
    assert_eq!(dev.read_record(&mut buf).unwrap(), KmsgRead::WouldBlock);
}

#[test]
fn a_reader_that_falls_behind_the_ring_sees_an_overrun() {
    let sc = Scenario::parse("t.toml", HOST).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = SimHost::build(sc, dir.path(), 16, false).unwrap();
    let mut dev = sim.kmsg();
    sim.advance_to(10_000);
    let mut buf = vec![0u8; 8192];
    assert_eq!(dev.read_record(&mut buf).unwrap(), KmsgRead::Overrun);
    assert!(matches!(
        dev.read_record(&mut buf).unwrap(),
        KmsgRead::Record(_)
    ));
}
