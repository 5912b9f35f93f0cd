//! Who holds each PCI function: a VM (QEMU through vfio, per its open file descriptors, its
//! command line and libvirt's live XML), a network namespace (the VF's netdev lives there; a
//! Kubernetes pod's is named `namespace/pod/container` from its runtime's files, [`crate::cri`]),
//! the host, or nobody; a function the kubelet gave to a pod's container is that container's
//! ([`allocated`]). Every answer carries the evidence it rests on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vfguard_host::{HostFs, NetnsView, PodAllocation};
use vfguard_model::{Bdf, Owner, OwnerKind};

use crate::cri::{CriIndex, PodMatch};
use crate::libvirt::{parse_domain_xml, LiveDomain};
use crate::qemu::{parse_cmdline, VmCmdline};
use crate::sysfs::{is_vfio_driver, PciFunction};

/// A process of interest.
#[derive(Debug, Clone, Default)]
pub struct Process {
    /// pid.
    pub pid: u32,
    /// `comm`.
    pub comm: String,
    /// What its command line says, for a QEMU process.
    pub vm: Option<VmCmdline>,
    /// Container ID from its cgroup path, when it shows one.
    pub container: Option<String>,
}

/// Everything owners are decided from, gathered once per topology read.
#[derive(Debug, Default)]
pub struct OwnerIndex {
    /// `/dev/vfio/<group>` or `/dev/vfio/devices/vfioN` → processes holding it open.
    holders: BTreeMap<String, Vec<u32>>,
    procs: BTreeMap<u32, Process>,
    domains: Vec<(PathBuf, LiveDomain)>,
    netns: Vec<NetnsView>,
    /// What the CRI runtime's files say of each of `netns` (same order).
    pods: Vec<Option<PodMatch>>,
    /// What the kubelet allocated, by device (a device plugin's PCI address): one container,
    /// or several when its listing names the device more than once.
    allocated: Allocated,
    /// What could not be read.
    pub warnings: Vec<String>,
}

impl OwnerIndex {
    /// Scans `/proc`, `/run/libvirt/qemu` and takes the namespace views.
    /// `allocated`: what the kubelet said of each device, `None` when it was not asked.
    pub fn gather(
        fs: &dyn HostFs,
        netns: Vec<NetnsView>,
        allocated: Option<Allocated>,
    ) -> OwnerIndex {
        let asked = allocated.is_some();
        let mut idx = OwnerIndex {
            netns,
            allocated: allocated.unwrap_or_default(),
            ..OwnerIndex::default()
        };
        idx.scan_proc(fs);
        idx.scan_libvirt(fs);
        idx.scan_cri(fs, asked);
        idx
    }

    /// Reads the CRI runtimes' bundles, only when some namespace holds a PCI function's netdev
    /// (a host of VMs pays nothing), and ties them to the namespaces.
    fn scan_cri(&mut self, fs: &dyn HostFs, kubelet_asked: bool) {
        let wanted = self
            .netns
            .iter()
            .any(|ns| ns.links.iter().any(|l| l.parent.is_some()));
        if !wanted {
            return;
        }
        let mut cri = CriIndex::scan(fs);
        // The kubelet answered for itself (its allocations are evidence of their own).
        cri.kubelet_socket &= !kubelet_asked;
        if cri.bundles.is_empty() && cri.broken.is_empty() {
            return;
        }
        self.pods = self.netns.iter().map(|ns| cri.pod_of(fs, ns)).collect();
    }

    fn scan_proc(&mut self, fs: &dyn HostFs) {
        let pids: Vec<u32> = match fs.list(Path::new("/proc")) {
            Ok(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
            Err(e) => {
                self.warnings.push(format!("/proc: {e}"));
                return;
            }
        };
        for pid in pids {
            let base = PathBuf::from(format!("/proc/{pid}"));
            // A process that exits mid-scan just stops answering: skip it quietly.
            let Ok(fds) = fs.list(&base.join("fd")) else {
                continue;
            };
            let mut holds_vfio = false;
            for fd in fds {
                let Ok(target) = fs.read_link(&base.join("fd").join(&fd)) else {
                    continue;
                };
                let t = target.to_string_lossy();
                if t.starts_with("/dev/vfio/") && t != "/dev/vfio/vfio" {
                    self.holders.entry(t.into_owned()).or_default().push(pid);
                    holds_vfio = true;
                }
            }
            let cmdline = fs.read(&base.join("cmdline")).unwrap_or_default();
            let vm = parse_cmdline(cmdline.as_bytes());
            let container = fs
                .read(&base.join("cgroup"))
                .ok()
                .and_then(|c| container_id(&c));
            if holds_vfio || vm.is_some() || container.is_some() {
                let comm = fs
                    .read(&base.join("comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_default();
                self.procs.insert(
                    pid,
                    Process {
                        pid,
                        comm,
                        vm,
                        container,
                    },
                );
            }
        }
        for list in self.holders.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
    }

    fn scan_libvirt(&mut self, fs: &dyn HostFs) {
        let dir = Path::new("/run/libvirt/qemu");
        let Ok(names) = fs.list(dir) else {
            return;
        };
        for name in names.into_iter().filter(|n| n.ends_with(".xml")) {
            let path = dir.join(&name);
            match fs.read(&path).map(|t| parse_domain_xml(&t)) {
                Ok(Ok(d)) => self.domains.push((path, d)),
                Ok(Err(e)) => self.warnings.push(format!("{}: {e}", path.display())),
                Err(e) => self.warnings.push(format!("{}: {e}", path.display())),
            }
        }
    }

    /// Decides the owner of one function.
    pub fn owner_of(&self, f: &PciFunction) -> Owner {
        let Some(bdf) = f.bdf else {
            return Owner::none("no address");
        };
        let owner = self.owner_by_files(bdf, f);
        match self.allocated.get(&bdf).map(Vec::as_slice) {
            Some([a]) => given_to_pod(owner, bdf, a),
            Some(several) if !several.is_empty() => listed_twice(owner, bdf, several),
            _ => owner,
        }
    }

    fn owner_by_files(&self, bdf: Bdf, f: &PciFunction) -> Owner {
        match f.driver.as_deref() {
            Some(d) if is_vfio_driver(d) => self.vm_owner(bdf, f, d),
            Some(d) if !f.netdevs.is_empty() => Owner::host(format!(
                "bound to {d}, netdev {} in the host namespace",
                f.netdevs.join(", ")
            )),
            driver => {
                if let Some(o) = self.netns_owner(bdf) {
                    return o;
                }
                match driver {
                    Some(d) => Owner::host(format!(
                        "bound to {d}; no netdev in the host namespace or in any namespace found"
                    )),
                    None => Owner::none("no driver bound"),
                }
            }
        }
    }

    fn vm_owner(&self, bdf: Bdf, f: &PciFunction, driver: &str) -> Owner {
        let mut evidence = vec![format!("bound to {driver}")];
        let mut devs = Vec::new();
        if let Some(g) = f.iommu_group {
            devs.push(format!("/dev/vfio/{g}"));
        }
        if let Some(c) = &f.vfio_cdev {
            devs.push(format!("/dev/vfio/devices/{c}"));
        }
        let mut holders: Vec<&Process> = Vec::new();
        for dev in &devs {
            for pid in self.holders.get(dev).into_iter().flatten() {
                if let Some(p) = self.procs.get(pid) {
                    evidence.push(format!("pid {pid} ({}) holds {dev} open", p.comm));
                    holders.push(p);
                }
            }
        }
        // Among the holders (a group can hold several functions), the one whose command line
        // names this function; else any QEMU naming it; else the single holder.
        let by_cmdline: Vec<&Process> = self
            .procs
            .values()
            .filter(|p| p.vm.as_ref().is_some_and(|v| v.hostdevs.contains(&bdf)))
            .collect();
        for p in &by_cmdline {
            evidence.push(format!(
                "pid {} command line has -device vfio-pci for {bdf}",
                p.pid
            ));
        }
        let qemu = by_cmdline
            .iter()
            .find(|p| holders.iter().any(|h| h.pid == p.pid))
            .or_else(|| by_cmdline.first())
            .copied()
            .or_else(|| {
                (holders.len() == 1)
                    .then(|| holders.first().copied())
                    .flatten()
            });
        let libvirt = self.domains.iter().find(|(_, d)| d.hostdevs.contains(&bdf));
        if let Some((path, d)) = libvirt {
            evidence.push(format!("libvirt live XML {} lists {bdf}", path.display()));
            if let Some(q) = qemu {
                let qname = q.vm.as_ref().and_then(|v| v.name.clone());
                if qname.is_some() && qname != d.name {
                    evidence.push(format!(
                        "disagreement: QEMU pid {} calls itself {:?}, libvirt says {:?}",
                        q.pid, qname, d.name
                    ));
                }
                if d.pid.is_some_and(|p| p != q.pid) {
                    evidence.push(format!(
                        "disagreement: libvirt says pid {:?}, the holder is pid {}",
                        d.pid, q.pid
                    ));
                }
            }
            let mut metadata = BTreeMap::new();
            for (key, value) in [
                ("nova.name", &d.nova_name),
                ("nova.project", &d.nova_project),
                ("nova.project_uuid", &d.nova_project_uuid),
            ] {
                if let Some(v) = value {
                    metadata.insert(key.to_owned(), v.clone());
                }
            }
            return Owner {
                kind: OwnerKind::Vm,
                name: d.name.clone(),
                id: d.uuid.clone(),
                pid: d.pid.or(qemu.map(|q| q.pid)),
                evidence,
                metadata,
            };
        }
        match qemu {
            Some(q) => Owner {
                kind: OwnerKind::Vm,
                name: q
                    .vm
                    .as_ref()
                    .and_then(|v| v.name.clone())
                    .or_else(|| Some(format!("pid {}", q.pid))),
                id: q.vm.as_ref().and_then(|v| v.uuid.clone()),
                pid: Some(q.pid),
                evidence,
                metadata: BTreeMap::new(),
            },
            None => {
                evidence.push("no process holds its vfio device and no VM names it".to_owned());
                Owner {
                    kind: OwnerKind::None,
                    name: None,
                    id: None,
                    pid: None,
                    evidence,
                    metadata: BTreeMap::new(),
                }
            }
        }
    }

    fn netns_owner(&self, bdf: Bdf) -> Option<Owner> {
        let (k, ns, link) = self.netns.iter().enumerate().find_map(|(k, ns)| {
            ns.links
                .iter()
                .find(|l| l.parent == Some(bdf))
                .map(|l| (k, ns, l))
        })?;
        let proc_ = ns.pid.and_then(|p| self.procs.get(&p));
        let mut evidence = vec![format!(
            "netdev {} is in namespace {}",
            link.ifname, ns.source
        )];
        let container = proc_.and_then(|p| p.container.clone());
        if let (Some(p), Some(c)) = (proc_, &container) {
            evidence.push(format!(
                "pid {} ({}) in that namespace runs in container {c}",
                p.pid, p.comm
            ));
        }
        // The namespace's name; else the process's name (a container runtime names its init);
        // else the container ID; else the pid.
        let mut name = ns.name.clone().or_else(|| match (proc_, &container) {
            (Some(p), _) if !p.comm.is_empty() => Some(p.comm.clone()),
            (_, Some(c)) => Some(format!("container {}", c.get(..12).unwrap_or(c))),
            _ => ns.pid.map(|p| format!("pid {p}")),
        });
        // A Kubernetes pod's namespace is named as Kubernetes names it: `namespace/pod/container`
        // (`namespace/pod` when the container is not known), whatever its pinned name or process.
        let mut metadata = BTreeMap::new();
        if let Some(Some(pod)) = self.pods.get(k) {
            evidence.extend(pod.evidence.iter().cloned());
            if let Some(id) = &pod.identity {
                name = Some(id.name());
                metadata.extend(id.metadata().into_iter().map(|(k, v)| (k.to_owned(), v)));
            }
        }
        Some(Owner {
            kind: OwnerKind::Netns,
            name,
            id: container.or_else(|| ns.inode.map(|i| format!("net:[{i}]"))),
            pid: ns.pid,
            evidence,
            metadata,
        })
    }
}

/// What the kubelet allocated, by device: one container, or several when its listing names the
/// device more than once.
pub type Allocated = BTreeMap<Bdf, Vec<PodAllocation>>;

/// The kubelet's allocations by device: the IDs that are PCI addresses (the SR-IOV device
/// plugins'); other plugins' IDs name no function.
pub fn allocated(list: &[PodAllocation]) -> Allocated {
    let mut out = Allocated::new();
    for a in list {
        for id in &a.device_ids {
            if let Ok(bdf) = id.parse::<Bdf>() {
                let at = out.entry(bdf).or_default();
                let same = |b: &PodAllocation| {
                    (&b.namespace, &b.pod, &b.container) == (&a.namespace, &a.pod, &a.container)
                };
                if !at.iter().any(same) {
                    at.push(a.clone());
                }
            }
        }
    }
    out
}

/// A device the kubelet lists for several containers (a finished pod's devices handed to a new
/// one are still listed under the old one, kubernetes#119423): the one the runtime's files also
/// name, if any, else none of them; said in the evidence.
fn listed_twice(owner: Owner, bdf: Bdf, several: &[PodAllocation]) -> Owner {
    let files = owner.name.clone().unwrap_or_default();
    let by_files = several
        .iter()
        .find(|a| owner.kind == OwnerKind::Netns && (files == a.name() || files == a.pod_name()));
    if let Some(a) = by_files {
        return given_to_pod(owner, bdf, a);
    }
    let mut owner = owner;
    let names: Vec<String> = several.iter().map(PodAllocation::name).collect();
    owner.evidence.push(format!(
        "kubelet pod-resources lists device {bdf} for several containers ({}): none taken",
        names.join(", ")
    ));
    owner
}

/// The owner of a function the kubelet gave to a pod's container: that container, named as
/// Kubernetes names it, whatever the files said (a DPDK pod's vfio-bound VF, held by a process
/// that is no VM), unless a VM that names itself holds it (KubeVirt runs QEMU in a pod: the VM
/// is the tenant) or its netdev is in the host's namespace (not moved into the pod yet, or
/// evicted from it). The kubelet's word is evidence either way, and a runtime's files that
/// named another pod are kept as a disagreement.
fn given_to_pod(owner: Owner, bdf: Bdf, a: &PodAllocation) -> Owner {
    let name = a.name();
    let said = format!(
        "kubelet pod-resources: {} device {bdf} allocated to {name}",
        a.resource
    );
    let named_vm = owner.kind == OwnerKind::Vm
        && owner
            .name
            .as_deref()
            .is_some_and(|n| !n.starts_with("pid "));
    let mut owner = owner;
    owner.evidence.push(said);
    if named_vm {
        return owner;
    }
    if owner.kind == OwnerKind::Host {
        // Its netdev is in the host's namespace: not moved into the pod yet, or taken back
        // from it (an eviction): the pod does not hold it now.
        owner.evidence.push(format!(
            "its netdev is in the host namespace: {name} does not hold it now"
        ));
        return owner;
    }
    if owner.kind == OwnerKind::Netns
        && owner.metadata.contains_key("k8s.pod")
        && owner
            .name
            .as_deref()
            .is_some_and(|n| n != name && n != format!("{}/{}", a.namespace, a.pod))
    {
        owner.evidence.push(format!(
            "disagreement: the runtime's files say {}, the kubelet {name}",
            owner.name.as_deref().unwrap_or("?")
        ));
        owner.metadata.remove("k8s.pod_uid");
    }
    let id = (owner.kind == OwnerKind::Netns)
        .then(|| owner.id.clone())
        .flatten();
    let mut metadata = owner.metadata;
    for (k, v) in [
        ("k8s.namespace", &a.namespace),
        ("k8s.pod", &a.pod),
        ("k8s.container", &a.container),
        ("k8s.resource", &a.resource),
    ] {
        metadata.insert(k.to_owned(), v.clone());
    }
    Owner {
        kind: OwnerKind::Netns,
        name: Some(name),
        id,
        pid: owner.pid,
        evidence: owner.evidence,
        metadata,
    }
}

/// A container ID in a cgroup path: `docker-<64 hex>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope`, `/docker/<id>`, `/kubepods/.../<id>`.
pub fn container_id(cgroup: &str) -> Option<String> {
    for line in cgroup.lines() {
        let path = line.rsplit(':').next().unwrap_or(line);
        for comp in path.split('/').rev() {
            let comp = comp.strip_suffix(".scope").unwrap_or(comp);
            let id = comp.rsplit(['-', ':']).next().unwrap_or(comp);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for line in [
            format!("0::/system.slice/docker-{id}.scope"),
            format!("0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-{id}.scope"),
            format!("12:pids:/docker/{id}"),
            format!("0::/machine.slice/libpod-{id}.scope/container"),
        ] {
            assert_eq!(container_id(&line).as_deref(), Some(id), "{line}");
        }
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }
}
