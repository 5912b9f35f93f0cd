//! Evicting a VF from a container's namespace on the simulated host: the netdev comes back to
//! the host's namespace (down), the topology reader sees the host holding it, the container's
//! behaviours on it stop, and injected failures move nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vfguard_model::{Bdf, Owner, OwnerKind, Topology, VfIndex};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

const HOST: &str = r#"
[scenario]
name = "evict"
duration_ms = 20000

[[pf]]
bdf = "0000:02:00.0"
driver = "igb"
netdev = "enp2s0f0"
numvfs = 4
unsupported = ["link_state"]

[[container]]
name = "pod-a"
functions = ["0000:02:00.0/vf0", "0000:02:00.0/vf1"]

[[container]]
name = "pod-b"
functions = ["0000:02:00.0/vf2"]

[[vm]]
name = "vm1"
functions = ["0000:02:00.0/vf3"]

[[behaviour]]
owner = "pod-a"
kind = "mac_spoof"
every_ms = 100

[[event]]
at_ms = 1
fail_netns_control = { container = "pod-b", errno = "EPERM", count = 2 }
"#;

const PF: &str = "0000:02:00.0";

// errno values (asm-generic/errno-base.h).
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EINVAL: i32 = 22;

fn host() -> SimHost {
    SimHost::new(Scenario::parse("evict.toml", HOST).unwrap()).unwrap()
}

fn vf_bdf(t: &Topology, i: u16) -> Bdf {
    t.vf(PF.parse().unwrap(), VfIndex(i)).unwrap().bdf
}

fn owner_of(sim: &SimHost, i: u16) -> (Owner, Option<String>) {
    let t = sim.topology_reader().read();
    let vf = t.vf(PF.parse().unwrap(), VfIndex(i)).unwrap();
    (vf.owner.clone(), vf.netdev.clone())
}

fn overrides(sim: &SimHost, vf: u16, from: usize) -> usize {
    let needle = format!("VF {vf} attempted to override");
    sim.records()
        .iter()
        .skip(from)
        .filter(|r| r.text.contains(&needle))
        .count()
}

#[test]
fn an_evicted_vf_comes_back_to_the_host_down_and_its_pod_stops_acting_through_it() {
    let mut sim = host();
    sim.advance_to(2000);
    let (pod, netdev) = owner_of(&sim, 0);
    assert_eq!(
        (pod.kind, pod.name.as_deref()),
        (OwnerKind::Netns, Some("pod-a"))
    );
    assert_eq!(netdev, None, "in the pod's namespace, not the host's");
    assert!(overrides(&sim, 0, 0) > 5 && overrides(&sim, 1, 0) > 5);
    let changes = sim.topology_changes();
    let t = sim.topology_reader().read();
    let vf0 = vf_bdf(&t, 0);

    sim.netnsctl().evict(&pod, vf0).unwrap();

    let (owner, netdev) = owner_of(&sim, 0);
    assert_eq!(owner.kind, OwnerKind::Host, "{owner:?}");
    assert_eq!(
        netdev.as_deref(),
        Some("net1"),
        "it keeps its name in the pod"
    );
    let flags = std::fs::read_to_string(
        sim.root()
            .join(format!("sys/bus/pci/devices/{vf0}/net/net1/flags")),
    )
    .unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 0, "administratively down (no IFF_UP)");
    assert!(sim.topology_changes() > changes);
    // The pod keeps its other VF; the other tenants are untouched.
    let (o1, _) = owner_of(&sim, 1);
    assert_eq!(
        (o1.kind, o1.name.as_deref()),
        (OwnerKind::Netns, Some("pod-a"))
    );
    let (o2, _) = owner_of(&sim, 2);
    assert_eq!(
        (o2.kind, o2.name.as_deref()),
        (OwnerKind::Netns, Some("pod-b"))
    );
    assert_eq!(owner_of(&sim, 3).0.kind, OwnerKind::Vm);
    assert_eq!(
        sim.control_calls()
            .last()
            .map(|c| (c.op.clone(), c.result.clone())),
        Some((format!("evict {vf0} from netns:pod-a"), "ok".into()))
    );
    // The pod's behaviour stops on the evicted VF and goes on on the other.
    let from = sim.records().len();
    sim.advance_to(5000);
    assert_eq!(
        overrides(&sim, 0, from),
        0,
        "nothing through the evicted VF"
    );
    assert!(overrides(&sim, 1, from) > 5);
    // Twice: the pod no longer holds it.
    let e = sim.netnsctl().evict(&pod, vf0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOENT), "{e}");
}

#[test]
fn injected_failures_answer_their_errno_and_move_nothing() {
    let mut sim = host();
    sim.advance_to(10);
    let (pod_b, _) = owner_of(&sim, 2);
    let vf2 = vf_bdf(&sim.topology_reader().read(), 2);
    for _ in 0..2 {
        let e = sim.netnsctl().evict(&pod_b, vf2).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EPERM), "{e}");
        let (o, netdev) = owner_of(&sim, 2);
        assert_eq!((o.kind, netdev), (OwnerKind::Netns, None));
    }
    sim.netnsctl().evict(&pod_b, vf2).unwrap();
    assert_eq!(owner_of(&sim, 2).0.kind, OwnerKind::Host);
    let results: Vec<String> = sim
        .control_calls()
        .into_iter()
        .filter(|c| c.op.starts_with("evict"))
        .map(|c| c.result)
        .collect();
    assert_eq!(results, ["EPERM", "EPERM", "ok"]);
}

#[test]
fn a_name_taken_in_the_host_is_replaced_by_the_functions() {
    let mut sim = host();
    sim.advance_to(10);
    let t = sim.topology_reader().read();
    let (vf0, vf2) = (vf_bdf(&t, 0), vf_bdf(&t, 2));
    // Each pod calls its first VF net1.
    sim.netnsctl().evict(&owner_of(&sim, 0).0, vf0).unwrap();
    let pod_b = owner_of(&sim, 2).0;
    sim.netnsctl().evict(&pod_b, vf2).unwrap_err(); // EPERM (injected)
    sim.netnsctl().evict(&pod_b, vf2).unwrap_err(); // EPERM (injected)
    sim.netnsctl().evict(&pod_b, vf2).unwrap();
    assert_eq!(owner_of(&sim, 0).1.as_deref(), Some("net1"));
    assert_eq!(
        owner_of(&sim, 2).1,
        Some(vfguard_host::linux::evicted_name(vf2))
    );
}

#[test]
fn only_a_namespace_owner_holding_the_function_is_evicted_from() {
    let mut sim = host();
    sim.advance_to(10);
    let t = sim.topology_reader().read();
    let (vf2, vf3) = (vf_bdf(&t, 2), vf_bdf(&t, 3));
    let pod_a = owner_of(&sim, 0).0;
    let vm = owner_of(&sim, 3).0;
    // pod-a does not hold pod-b's VF; a VM is not a namespace; a pid nobody has.
    let e = sim.netnsctl().evict(&pod_a, vf2).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOENT));
    let e = sim.netnsctl().evict(&vm, vf3).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EINVAL));
    let gone = Owner {
        pid: Some(1),
        ..pod_a.clone()
    };
    let e = sim.netnsctl().evict(&gone, vf2).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOENT));
    assert_eq!(owner_of(&sim, 2).0.name.as_deref(), Some("pod-b"));
    assert_eq!(owner_of(&sim, 3).0.kind, OwnerKind::Vm);
}

#[test]
fn fail_netns_control_names_a_container_and_an_errno() {
    let bad = HOST.replace("container = \"pod-b\"", "container = \"vm1\"");
    let e = Scenario::parse("evict.toml", &bad).unwrap_err();
    assert!(e.message.contains("no container named \"vm1\""), "{e}");
    assert_eq!(e.line, 32, "{e}");
    let bad = HOST.replace("errno = \"EPERM\"", "errno = \"EIO\"");
    let e = Scenario::parse("evict.toml", &bad).unwrap_err();
    assert!(
        e.message.contains("fail_netns_control.errno \"EIO\""),
        "{e}"
    );
    assert_eq!(e.line, 32, "{e}");
}
