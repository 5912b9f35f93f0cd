//! A pod's VFs in the metrics: the VF gauges' `owner` is `netns:namespace/pod/container`, and
//! `vfguard_vf_pod_info` carries the pod's identity for joins; plain owners have none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;

use vfguard_agent::metrics::Metrics;
use vfguard_model::Bdf;
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

#[test]
fn pods_vfs_carry_their_kubernetes_identity() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios/k8s-pod-mdd.toml");
    let sim = SimHost::new(Scenario::load(&file).unwrap()).unwrap();
    let t = sim.topology_reader().read();
    let metrics = Metrics::new();
    metrics.publish_map(&t, &HashSet::<Bdf>::new());
    let text = metrics.encode();
    // Series come in the family's hash order.
    let mut info: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("vfguard_vf_pod_info{"))
        .collect();
    info.sort_unstable();
    assert_eq!(
        info,
        [
            r#"vfguard_vf_pod_info{pf="0000:3b:00.0",vf="2",namespace="telco",pod="pktgen-7d9f",container="dpdk"} 1"#,
            r#"vfguard_vf_pod_info{pf="0000:3b:00.0",vf="3",namespace="shop",pod="cache-0",container="redis"} 1"#,
            r#"vfguard_vf_pod_info{pf="0000:3b:00.0",vf="4",namespace="shop",pod="cache-0",container="redis"} 1"#,
        ],
        "{text}"
    );
    assert!(
        text.contains(
            r#"vfguard_vf_in_incident{pf="0000:3b:00.0",vf="2",owner="netns:telco/pktgen-7d9f/dpdk"} 0"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"vfguard_vf_in_incident{pf="0000:3b:00.0",vf="5",owner="netns:plain"} 0"#),
        "{text}"
    );
}
