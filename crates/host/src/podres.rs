//! Which container the kubelet gave each device to: the pod-resources API
//! (`/var/lib/kubelet/pod-resources/kubelet.sock`, `v1.PodResourcesLister/List`).
//!
//! The SR-IOV network device plugin names its devices by PCI address, so the answer maps a VF
//! straight to `namespace/pod/container`, for a VF whose netdev moved into the pod and for one
//! bound to vfio-pci for DPDK alike.

use std::io;

/// One container's devices of one resource, as the kubelet lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAllocation {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// The extended resource (`intel.com/intel_sriov_netdevice`).
    pub resource: String,
    /// The device plugin's IDs of the devices (PCI addresses for SR-IOV VFs).
    pub device_ids: Vec<String>,
}

impl PodAllocation {
    /// `namespace/pod`, as an owner of the pod is named when its container is not known.
    pub fn pod_name(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }

    /// `namespace/pod/container`, as the container is named as an owner.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.pod, self.container)
    }
}

/// Lists the kubelet's device allocations.
pub trait PodResources: Send + Sync {
    /// Every container's devices; empty where no kubelet runs.
    fn list(&self) -> io::Result<Vec<PodAllocation>>;
}
