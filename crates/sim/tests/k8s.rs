//! `[[container]] k8s`: the simulated host writes the pod's CRI bundles (containerd's or
//! CRI-O's), and the real topology reader names its namespace `namespace/pod/container`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use vfguard_model::{Owner, OwnerKind, Topology, VfIndex};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

const PF: &str = "0000:3b:00.0";

fn sim() -> SimHost {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios/k8s-pod-mdd.toml");
    SimHost::new(Scenario::load(&file).unwrap()).unwrap()
}

fn owner(t: &Topology, i: u16) -> Owner {
    t.vf(PF.parse().unwrap(), VfIndex(i)).unwrap().owner.clone()
}

#[test]
fn pods_are_named_from_their_runtimes_files_and_a_plain_container_is_not() {
    let sim = sim();
    let t = sim.topology_reader().read();
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let o = owner(&t, 2);
    assert_eq!(
        (o.kind, o.name.as_deref()),
        (OwnerKind::Netns, Some("telco/pktgen-7d9f/dpdk"))
    );
    let meta = |o: &Owner, k: &str| o.metadata.get(k).cloned();
    assert_eq!(
        meta(&o, "k8s.pod_uid").as_deref(),
        Some("3f1c2a9e-5b7d-4e21-9c3a-7d2e8f104b66")
    );
    assert!(
        o.evidence
            .iter()
            .any(|e| e.starts_with("containerd container")),
        "{:?}",
        o.evidence
    );
    for i in [3, 4] {
        let o = owner(&t, i);
        assert_eq!(o.name.as_deref(), Some("shop/cache-0/redis"), "VF{i}");
        assert_eq!(meta(&o, "k8s.namespace").as_deref(), Some("shop"));
        assert!(
            o.evidence.iter().any(|e| e.starts_with("crio sandbox")),
            "{:?}",
            o.evidence
        );
    }
    let plain = owner(&t, 5);
    assert_eq!(
        (plain.kind, plain.name.as_deref()),
        (OwnerKind::Netns, Some("plain"))
    );
    assert!(plain.metadata.is_empty());
    // The files are where the runtimes keep them.
    assert!(sim
        .root()
        .join("run/containers/storage/overlay-containers")
        .is_dir());
    assert!(sim
        .root()
        .join("run/containerd/io.containerd.runtime.v2.task/k8s.io")
        .is_dir());
}

#[test]
fn a_pods_vf_is_evicted_by_its_pid_despite_its_slashed_name() {
    let sim = sim();
    let t = sim.topology_reader().read();
    let o = owner(&t, 2);
    let bdf = t.vf(PF.parse().unwrap(), VfIndex(2)).unwrap().bdf;
    sim.netnsctl().evict(&o, bdf).unwrap();
    let t = sim.topology_reader().read();
    assert_eq!(owner(&t, 2).kind, OwnerKind::Host);
    assert_eq!(
        owner(&t, 3).name.as_deref(),
        Some("shop/cache-0/redis"),
        "the other pod keeps its VFs"
    );
}
