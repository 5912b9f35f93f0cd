//! A `[[container]]` that is a Kubernetes pod: its CRI runtime's bundles in the tree, as
//! containerd or CRI-O keep them (`vfguard_topology::cri`), so the host map names the pod's
//! namespace `namespace/pod/container` as it does on a real node.
//!
//! The sandbox's bundle gives the container's process (its `pause`) as init pid and a pinned
//! namespace path (`/var/run/netns/cni-<uuid>` for containerd, `/var/run/netns/<uuid>` for
//! CRI-O, not materialised: the pid ties it to the namespace). The pod's container, when named,
//! is a second process in the same namespace with its own bundle, pointing at the sandbox's
//! namespace the way each runtime does (containerd: `/proc/<sandbox pid>/ns/net`).

use std::io;

use vfguard_topology::cri::CriRuntime;
use vfguard_topology::fixture::{CriBundleSpec, HostFixture};

use crate::scenario::{K8sMeta, K8sRuntime};

/// The pid of a pod's container process: its sandbox's plus this (containers are 6000..).
const CONTAINER_PID_OFFSET: u32 = 500;

/// Writes the bundles of the pod `meta`, the `k`-th container of the scenario, whose sandbox
/// process is `pid` with container ID `sandbox_id`, in the namespace `inode`.
pub(crate) fn write(
    f: &HostFixture,
    meta: &K8sMeta,
    k: usize,
    pid: u32,
    sandbox_id: &str,
    inode: u64,
) -> io::Result<()> {
    let runtime = match meta.runtime {
        K8sRuntime::Containerd => CriRuntime::Containerd,
        K8sRuntime::Crio => CriRuntime::Crio,
    };
    let uuid = format!("00000000-0000-4000-a000-{:012x}", k + 1);
    let pinned = match runtime {
        CriRuntime::Containerd => format!("/var/run/netns/cni-{uuid}"),
        CriRuntime::Crio => format!("/var/run/netns/{uuid}"),
    };
    let base = CriBundleSpec {
        runtime,
        id: sandbox_id.to_owned(),
        sandbox: true,
        sandbox_id: sandbox_id.to_owned(),
        namespace: meta.namespace.clone(),
        pod: meta.pod.clone(),
        pod_uid: meta.uid.clone().unwrap_or_else(|| uuid.clone()),
        container: String::new(),
        netns_path: Some(pinned.clone()),
        pid: Some(pid),
    };
    f.add_cri_bundle(&base)?;
    let Some(container) = &meta.container else {
        return Ok(());
    };
    let cpid = pid + CONTAINER_PID_OFFSET;
    let cid = format!("{:0>64}", format!("{:x}", 0xc0de00_u64 + k as u64));
    f.add_container(cpid, container, &cid, inode, &[])?;
    f.add_cri_bundle(&CriBundleSpec {
        id: cid,
        sandbox: false,
        container: container.clone(),
        netns_path: Some(match runtime {
            CriRuntime::Containerd => format!("/proc/{pid}/ns/net"),
            CriRuntime::Crio => pinned,
        }),
        pid: Some(cpid),
        ..base
    })
}

/// The simulated node's kubelet: the SR-IOV network device plugin gave each pod's container
/// its VFs (resource `intel.com/intel_sriov_netdevice`, device IDs their PCI addresses), as
/// its pod-resources API lists them. A pod without a named container lists nothing: its
/// scenario leaves unsaid which container asked for the VF.
#[derive(Debug, Clone, Default)]
pub struct SimKubelet(Vec<vfguard_host::PodAllocation>);

/// The resource the simulated device plugin advertises.
pub const SRIOV_RESOURCE: &str = "intel.com/intel_sriov_netdevice";

impl SimKubelet {
    /// The allocations of the scenario's pods.
    pub fn of(sc: &crate::scenario::Scenario) -> SimKubelet {
        let mut out = Vec::new();
        for c in &sc.container {
            let Some(k) = &c.k8s else { continue };
            let Some(container) = &k.container else {
                continue;
            };
            let device_ids = c
                .functions
                .iter()
                .map(|f| {
                    let f = f.get_ref();
                    f.vf.map_or(f.pf, |v| crate::state::vf_bdf(f.pf, v.0))
                        .to_string()
                })
                .collect();
            out.push(vfguard_host::PodAllocation {
                namespace: k.namespace.clone(),
                pod: k.pod.clone(),
                container: container.clone(),
                resource: SRIOV_RESOURCE.into(),
                device_ids,
            });
        }
        SimKubelet(out)
    }
}

impl vfguard_host::PodResources for SimKubelet {
    fn list(&self) -> io::Result<Vec<vfguard_host::PodAllocation>> {
        Ok(self.0.clone())
    }
}
