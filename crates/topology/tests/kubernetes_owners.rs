//! Kubernetes owners on fixture hosts: a pod's namespace named `namespace/pod/container` from
//! containerd's and CRI-O's bundles, and what happens when those files are wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsProbe};
use vfguard_model::{Bdf, Owner, OwnerKind, Topology, VfIndex};
use vfguard_topology::cri::CriRuntime;
use vfguard_topology::fixture::{sample_host, CriBundleSpec, HostFixture};
use vfguard_topology::TopologyReader;

fn read(root: &Path) -> Topology {
    let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(root));
    let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
    TopologyReader::new(fs, netns, None).read()
}

fn owner(t: &Topology, i: u16) -> Owner {
    let pf: Bdf = "0000:3b:00.0".parse().unwrap();
    t.vf(pf, VfIndex(i)).unwrap().owner.clone()
}

/// The sample host's pod: pid 5000 in `net:[4026532100]`, VF2's `net1` in it.
const POD_PID: u32 = 5000;
const SANDBOX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn bundle(runtime: CriRuntime, id: &str, sandbox: bool, container: &str) -> CriBundleSpec {
    CriBundleSpec {
        runtime,
        id: id.into(),
        sandbox,
        sandbox_id: SANDBOX.into(),
        namespace: "telco".into(),
        pod: "dpdk-0".into(),
        pod_uid: "6b1c0d8e-1111-2222-3333-444455556666".into(),
        container: container.into(),
        netns_path: None,
        pid: None,
    }
}

fn meta<'a>(o: &'a Owner, k: &str) -> Option<&'a str> {
    o.metadata.get(k).map(String::as_str)
}

fn has(o: &Owner, text: &str) -> bool {
    o.evidence.iter().any(|e| e.contains(text))
}

/// containerd: the sandbox found by its `init.pid`, its one container by the sandbox's
/// `/proc/<pid>/ns/net` it joins.
fn containerd_pod(f: &HostFixture) {
    f.add_cri_bundle(&CriBundleSpec {
        netns_path: Some("/var/run/netns/cni-7a1b".into()),
        pid: Some(POD_PID),
        ..bundle(CriRuntime::Containerd, SANDBOX, true, "")
    })
    .unwrap();
    f.add_cri_bundle(&CriBundleSpec {
        netns_path: Some(format!("/proc/{POD_PID}/ns/net")),
        ..bundle(CriRuntime::Containerd, "app1", false, "pktgen")
    })
    .unwrap();
}

#[test]
fn containerd_pod_is_named_namespace_pod_container() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    let before = read(dir.path());
    containerd_pod(&f);
    let t = read(dir.path());
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let o = owner(&t, 2);
    assert_eq!(
        (o.kind, o.name.as_deref(), o.pid),
        (OwnerKind::Netns, Some("telco/dpdk-0/pktgen"), Some(POD_PID))
    );
    assert_eq!(o.label(), "netns:telco/dpdk-0/pktgen");
    assert_eq!(meta(&o, "k8s.namespace"), Some("telco"));
    assert_eq!(meta(&o, "k8s.pod"), Some("dpdk-0"));
    assert_eq!(meta(&o, "k8s.container"), Some("pktgen"));
    assert_eq!(
        meta(&o, "k8s.pod_uid"),
        Some("6b1c0d8e-1111-2222-3333-444455556666")
    );
    assert!(has(&o, "its init pid 5000 is in net:[4026532100]"), "{o:?}");
    assert!(has(&o, "/app1/config.json"), "{o:?}");
    assert!(!has(&o, "kubelet"), "no socket, no word of it");
    // The id is still the container's (cgroup), and nobody else changed.
    assert_eq!(o.id, owner(&before, 2).id);
    for i in [0, 1, 3, 4, 5, 6, 7] {
        assert_eq!(owner(&t, i), owner(&before, i), "VF{i}");
    }
}

#[test]
fn crio_pod_in_a_pinned_namespace_is_named_by_its_netns_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    // VF3 lives in the pinned namespace `tenant-a`; CRI-O's bundles point there, no pid files.
    for (id, sandbox, container) in [("sb-3", true, ""), ("c-3", false, "nginx")] {
        f.add_cri_bundle(&CriBundleSpec {
            namespace: "shop".into(),
            pod: "web-5f7".into(),
            sandbox_id: "sb-3".into(),
            netns_path: Some("/var/run/netns/tenant-a".into()),
            ..bundle(CriRuntime::Crio, id, sandbox, container)
        })
        .unwrap();
    }
    let t = read(dir.path());
    let o = owner(&t, 3);
    assert_eq!(o.name.as_deref(), Some("shop/web-5f7/nginx"));
    assert_eq!(meta(&o, "k8s.container"), Some("nginx"));
    assert!(
        has(&o, "its network namespace is /var/run/netns/tenant-a"),
        "{o:?}"
    );
    assert!(has(&o, "crio sandbox"), "{o:?}");
    // The other pod namespace has no bundle: its old name, no metadata.
    let o2 = owner(&t, 2);
    assert_eq!(o2.name.as_deref(), Some("pause"));
    assert!(o2.metadata.is_empty());
}

#[test]
fn a_pod_of_several_containers_is_named_by_its_pod() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    containerd_pod(&f);
    f.add_cri_bundle(&CriBundleSpec {
        netns_path: Some(format!("/proc/{POD_PID}/ns/net")),
        ..bundle(CriRuntime::Containerd, "app2", false, "istio-proxy")
    })
    .unwrap();
    let o = owner(&read(dir.path()), 2);
    assert_eq!(o.name.as_deref(), Some("telco/dpdk-0"));
    assert_eq!(meta(&o, "k8s.container"), None);
    assert_eq!(meta(&o, "k8s.pod"), Some("dpdk-0"));
    assert!(
        has(
            &o,
            "containers istio-proxy, pktgen share the pod's namespace"
        ),
        "{o:?}"
    );
}

#[test]
fn kubelet_socket_is_noted_not_queried() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    containerd_pod(&f);
    std::fs::create_dir_all(f.path("/var/lib/kubelet/pod-resources")).unwrap();
    std::fs::write(f.path("/var/lib/kubelet/pod-resources/kubelet.sock"), "").unwrap();
    let o = owner(&read(dir.path()), 2);
    assert_eq!(o.name.as_deref(), Some("telco/dpdk-0/pktgen"));
    assert!(has(&o, "pod-resources socket"), "{o:?}");
}

#[test]
fn invalid_or_missing_config_is_said_in_the_evidence_and_names_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    let before = owner(&read(dir.path()), 2);
    // A bundle of the pod's process whose config.json is cut short.
    let d = f.path("/run/containerd/io.containerd.runtime.v2.task/k8s.io/broken");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), "{\"annotations\": {\"io.kub").unwrap();
    std::fs::write(d.join("init.pid"), POD_PID.to_string()).unwrap();
    // One with a pid file and no config.json at all (CRI-O mid-creation).
    let d = f.path("/run/containers/storage/overlay-containers/gone/userdata");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("pidfile"), format!("{POD_PID}\n")).unwrap();
    // One of another namespace, an unreadable pid, a podman container: all ignored.
    f.add_cri_bundle(&CriBundleSpec {
        pid: Some(777),
        ..bundle(CriRuntime::Containerd, "elsewhere", true, "")
    })
    .unwrap();
    let d = f.path("/run/containers/storage/overlay-containers/podman1/userdata");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), r#"{"ociVersion": "1.0.2"}"#).unwrap();
    std::fs::write(d.join("pidfile"), "not a pid").unwrap();

    let o = owner(&read(dir.path()), 2);
    assert_eq!(o.name, before.name, "not named from broken files");
    assert!(o.metadata.is_empty());
    assert!(has(&o, "broken/config.json: not JSON"), "{o:?}");
    assert!(has(&o, "gone/userdata/config.json: "), "{o:?}");
    assert!(has(&o, "the pod it describes is not known"), "{o:?}");
    assert!(!has(&o, "elsewhere"), "{o:?}");
    assert!(!has(&o, "podman1"), "{o:?}");
}

#[test]
fn bundles_of_two_pods_in_one_namespace_name_neither() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    containerd_pod(&f);
    f.add_cri_bundle(&CriBundleSpec {
        pod: "other".into(),
        netns_path: Some(format!("/proc/{POD_PID}/ns/net")),
        ..bundle(CriRuntime::Crio, "x2", false, "c")
    })
    .unwrap();
    let o = owner(&read(dir.path()), 2);
    assert_eq!(o.name.as_deref(), Some("pause"));
    assert!(o.metadata.is_empty());
    assert!(
        has(
            &o,
            "disagreement: bundles of several pods (telco/dpdk-0, telco/other)"
        ),
        "{o:?}"
    );
}
