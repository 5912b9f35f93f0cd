//! Kubernetes owners on fixture hosts: a pod's namespace named `namespace/pod/container` from
//! containerd's and CRI-O's bundles, and what happens when those files are wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsProbe, PodAllocation, PodResources};
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
fn kubelet_socket_in_a_tree_not_asked_is_noted() {
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

/// A kubelet that answers with `0`.
struct Kubelet(Vec<PodAllocation>);

impl PodResources for Kubelet {
    fn list(&self) -> std::io::Result<Vec<PodAllocation>> {
        Ok(self.0.clone())
    }
}

fn given(namespace: &str, pod: &str, container: &str, vfs: &[u16]) -> PodAllocation {
    PodAllocation {
        namespace: namespace.into(),
        pod: pod.into(),
        container: container.into(),
        resource: "intel.com/intel_sriov_dpdk".into(),
        device_ids: vfs
            .iter()
            .map(|i| format!("0000:3b:02.{i}"))
            .chain(["gpu-7f3a".to_owned()])
            .collect(),
    }
}

fn read_asking(root: &Path, kubelet: Vec<PodAllocation>) -> Topology {
    let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(root));
    let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
    TopologyReader::new(fs, netns, None)
        .with_pod_resources(Arc::new(Kubelet(kubelet)))
        .read()
}

/// A DPDK application, pid 6000, holding VF6's vfio group (`/dev/vfio/106`) open: no QEMU.
fn dpdk_process(f: &HostFixture) {
    f.add_process(
        6000,
        "dpdk-testpmd",
        &["dpdk-testpmd", "-a", "0000:3b:02.6"],
    )
    .unwrap();
    std::fs::write(f.path("/dev/vfio/106"), "").unwrap();
    std::os::unix::fs::symlink("/dev/vfio/106", f.path("/proc/6000/fd/21")).unwrap();
}

/// A DPDK pod's process holds VF6's vfio group open (`/dev/vfio/106`): without the kubelet it
/// is a `vm` named `pid 6000`; the kubelet names the pod.
#[test]
fn the_kubelet_names_a_dpdk_pods_vfio_vf() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    dpdk_process(&f);
    let before = owner(&read(dir.path()), 6);
    assert_eq!(
        (before.kind, before.name.as_deref()),
        (OwnerKind::Vm, Some("pid 6000"))
    );
    let o = owner(
        &read_asking(
            dir.path(),
            vec![given("telco", "pktgen-7d9f", "dpdk", &[6])],
        ),
        6,
    );
    assert_eq!(o.kind, OwnerKind::Netns);
    assert_eq!(o.name.as_deref(), Some("telco/pktgen-7d9f/dpdk"));
    assert_eq!(o.label(), "netns:telco/pktgen-7d9f/dpdk");
    assert_eq!(o.pid, Some(6000));
    assert_eq!(meta(&o, "k8s.container"), Some("dpdk"));
    assert_eq!(meta(&o, "k8s.resource"), Some("intel.com/intel_sriov_dpdk"));
    assert!(
        has(
            &o,
            "kubelet pod-resources: intel.com/intel_sriov_dpdk device 0000:3b:02.6 allocated to telco/pktgen-7d9f/dpdk"
        ),
        "{o:?}"
    );
    assert!(has(&o, "pid 6000 (dpdk-testpmd) holds /dev/vfio/106 open"));
}

/// The runtime's files cannot tell which of a pod's containers asked for its VF; the kubelet
/// can. Its socket is then asked, not noted.
#[test]
fn the_kubelet_names_the_container_of_a_pod_of_several() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    containerd_pod(&f);
    f.add_cri_bundle(&CriBundleSpec {
        netns_path: Some(format!("/proc/{POD_PID}/ns/net")),
        ..bundle(CriRuntime::Containerd, "app2", false, "istio-proxy")
    })
    .unwrap();
    std::fs::create_dir_all(f.path("/var/lib/kubelet/pod-resources")).unwrap();
    std::fs::write(f.path("/var/lib/kubelet/pod-resources/kubelet.sock"), "").unwrap();
    let o = owner(
        &read_asking(dir.path(), vec![given("telco", "dpdk-0", "pktgen", &[2])]),
        2,
    );
    assert_eq!(o.name.as_deref(), Some("telco/dpdk-0/pktgen"));
    assert_eq!(meta(&o, "k8s.container"), Some("pktgen"));
    assert_eq!(
        meta(&o, "k8s.pod_uid"),
        Some("6b1c0d8e-1111-2222-3333-444455556666"),
        "the runtime's pod UID is kept: the same pod"
    );
    assert!(!has(&o, "not asked"), "{o:?}");
    assert!(has(&o, "allocated to telco/dpdk-0/pktgen"));
}

/// A runtime's files that name another pod than the kubelet's: the kubelet's word, and the
/// disagreement said (the other pod's UID dropped).
#[test]
fn the_kubelet_wins_a_disagreement_and_it_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    containerd_pod(&f);
    let o = owner(
        &read_asking(dir.path(), vec![given("shop", "web-0", "nginx", &[2])]),
        2,
    );
    assert_eq!(o.name.as_deref(), Some("shop/web-0/nginx"));
    assert_eq!(meta(&o, "k8s.namespace"), Some("shop"));
    assert_eq!(meta(&o, "k8s.pod_uid"), None);
    assert!(
        has(
            &o,
            "disagreement: the runtime's files say telco/dpdk-0/pktgen, the kubelet shop/web-0/nginx"
        ),
        "{o:?}"
    );
}

/// KubeVirt runs a VM's QEMU in a pod: a VM that names itself stays the tenant, with the
/// kubelet's word as evidence. Functions the kubelet gave no one are as before.
#[test]
fn a_vm_that_names_itself_stays_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    sample_host(dir.path()).unwrap();
    let t = read_asking(
        dir.path(),
        vec![given("kubevirt", "virt-launcher-web-7", "compute", &[0])],
    );
    let o = owner(&t, 0);
    assert_eq!((o.kind, o.name.as_deref()), (OwnerKind::Vm, Some("web-7")));
    assert!(has(&o, "allocated to kubevirt/virt-launcher-web-7/compute"));
    assert_eq!(owner(&t, 1), owner(&read(dir.path()), 1));
}

/// The kubelet lists a finished pod's devices under it after they went to a new pod
/// (kubernetes#119423): the container the runtime's files also name is taken; with no such
/// word, none, and the evidence says why.
#[test]
fn a_device_listed_for_two_pods_goes_to_the_one_the_files_name_or_to_neither() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    containerd_pod(&f);
    dpdk_process(&f);
    let t = read_asking(
        dir.path(),
        vec![
            given("telco", "old-0", "app", &[2, 6]),
            given("telco", "dpdk-0", "pktgen", &[2]),
            given("telco", "new-1", "app", &[6]),
        ],
    );
    let o = owner(&t, 2);
    assert_eq!(o.name.as_deref(), Some("telco/dpdk-0/pktgen"), "{o:?}");
    let o = owner(&t, 6);
    assert_eq!(
        (o.kind, o.name.as_deref()),
        (OwnerKind::Vm, Some("pid 6000"))
    );
    assert!(
        has(
            &o,
            "lists device 0000:3b:02.6 for several containers (telco/old-0/app, telco/new-1/app): none taken"
        ),
        "{o:?}"
    );
}

/// A kubelet that answers once, then fails.
struct Flaky(std::sync::atomic::AtomicBool, Vec<PodAllocation>);

impl PodResources for Flaky {
    fn list(&self) -> std::io::Result<Vec<PodAllocation>> {
        if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Err(std::io::Error::from_raw_os_error(110))
        } else {
            Ok(self.1.clone())
        }
    }
}

#[test]
fn the_kubelets_last_answer_stands_when_it_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample_host(dir.path()).unwrap();
    dpdk_process(&f);
    let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(dir.path()));
    let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
    let kubelet = Flaky(
        std::sync::atomic::AtomicBool::new(false),
        vec![given("telco", "pktgen-7d9f", "dpdk", &[6])],
    );
    let reader = TopologyReader::new(fs, netns, None).with_pod_resources(Arc::new(kubelet));
    let first = reader.read();
    assert_eq!(
        owner(&first, 6).name.as_deref(),
        Some("telco/pktgen-7d9f/dpdk")
    );
    let second = reader.read();
    assert_eq!(
        owner(&second, 6).name.as_deref(),
        Some("telco/pktgen-7d9f/dpdk"),
        "a kubelet hiccup does not flip the owner"
    );
    assert!(
        second
            .warnings
            .iter()
            .any(|w| w.starts_with("the kubelet's pod resources not read:")
                && w.contains("s ago stands")),
        "{:?}",
        second.warnings
    );
}
