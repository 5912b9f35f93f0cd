//! Host → [`Topology`]: PFs and whole NICs, their VFs (through `virtfnN`/`physfn`), IOMMU
//! groups, the VF table the PF reports, and the owner of every function with its evidence.
//!
//! It reads the host only through `vfguard-host` traits, so the same code maps the live host,
//! a fixture tree (`--root DIR`) and the simulator.
//!
//! # Design
//! A read is a snapshot; [`TopologyWatcher`] compares snapshots and bumps the version when the
//! structure changes (numvfs, drivers, netdevs, owners), so an attribution can name the topology
//! it used and a VF index is never mapped through a stale `virtfn` table.
//!
//! A read that fails as a whole ([`ReadError`]: file descriptors exhausted, the PCI device
//! directory unreadable) is told apart from a host that has no PFs: the watcher keeps the last
//! good map, marked stale ([`vfguard_model::StaleMap`]), until a read succeeds, so culprits stay
//! attributable (issue 13).

pub mod cri;
pub mod error;
pub mod fixture;
pub mod libvirt;
pub mod owners;
pub mod qemu;
pub mod sysfs;

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use vfguard_host::{HostFs, NetnsProbe, PodResources, VfNet};
use vfguard_model::{Bdf, Pf, StaleMap, Topology, Vf, VfIndex};

pub use error::ReadError;
use error::{is_fd_exhaustion, Watchful};

use owners::{Allocated, OwnerIndex};
use sysfs::{is_network_class, PciFunction, SysfsReader};

/// Reads the topology through the host traits.
#[derive(Clone)]
pub struct TopologyReader {
    fs: Arc<dyn HostFs>,
    netns: Arc<dyn NetnsProbe>,
    vfnet: Option<Arc<dyn VfNet>>,
    pods: Option<Arc<dyn PodResources>>,
    /// The kubelet's last answer and when, used for [`KUBELET_KEEP`] when it does not answer.
    last_pods: Arc<std::sync::Mutex<Option<(std::time::Instant, Allocated)>>>,
}

/// How long the kubelet's last answer stands in when it does not answer (a restart of the
/// kubelet, a slow call): owners do not flip to the files' names, nor exclusions by pod name
/// stop matching, for a hiccup.
pub const KUBELET_KEEP: std::time::Duration = std::time::Duration::from_secs(300);

impl TopologyReader {
    /// A reader; without `vfnet` the VF states are left unknown.
    pub fn new(
        fs: Arc<dyn HostFs>,
        netns: Arc<dyn NetnsProbe>,
        vfnet: Option<Arc<dyn VfNet>>,
    ) -> Self {
        TopologyReader {
            fs,
            netns,
            vfnet,
            pods: None,
            last_pods: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Also asks the kubelet which container each device plugin's VF was given to.
    #[must_use]
    pub fn with_pod_resources(mut self, pods: Arc<dyn PodResources>) -> Self {
        self.pods = Some(pods);
        self
    }

    /// The kubelet's allocations; its last answer (up to [`KUBELET_KEEP`] old) when it does
    /// not answer, said in the warnings.
    fn kubelet(&self, p: &dyn PodResources, warnings: &mut Vec<String>) -> Allocated {
        let mut last = self
            .last_pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match p.list() {
            Ok(list) => {
                let a = owners::allocated(&list);
                *last = Some((std::time::Instant::now(), a.clone()));
                a
            }
            Err(e) => match last.as_ref() {
                Some((at, a)) if at.elapsed() <= KUBELET_KEEP => {
                    warnings.push(format!(
                        "the kubelet's pod resources not read: {e}; its answer of {} s ago stands",
                        at.elapsed().as_secs()
                    ));
                    a.clone()
                }
                _ => {
                    warnings.push(format!("the kubelet's pod resources not read: {e}"));
                    BTreeMap::new()
                }
            },
        }
    }

    /// One snapshot (version 0; see [`TopologyWatcher`]); a read that failed as a whole gives
    /// an empty map with the reason as its warning (a one-off read: `inventory`, `scan --root`).
    pub fn read(&self) -> Topology {
        self.try_read().unwrap_or_else(|e| Topology {
            warnings: vec![e.chain()],
            ..Topology::default()
        })
    }

    /// One snapshot (version 0), or why the host could not be read as a whole: the PCI device
    /// directory could not be listed, or file descriptors ran out during the read.
    pub fn try_read(&self) -> Result<Topology, ReadError> {
        let fs = Watchful::new(self.fs.as_ref());
        let mut sys = SysfsReader::new(&fs);
        let bdfs = sys.try_list().map_err(|source| ReadError::Unlisted {
            path: sysfs::PCI_DEVICES.into(),
            source,
        })?;
        let all: BTreeMap<Bdf, PciFunction> =
            bdfs.into_iter().map(|b| (b, sys.function(b))).collect();
        let views = match self.netns.views() {
            Ok(v) => v,
            Err(e) if is_fd_exhaustion(&e) => {
                // The namespaces are found through /proc/PID/ns/net.
                let _ = fs.note(std::path::Path::new("/proc"), Err::<(), _>(e));
                Vec::new()
            }
            Err(e) => {
                sys.warnings
                    .push(format!("network namespaces not examined: {e}"));
                Vec::new()
            }
        };
        let allocated = self
            .pods
            .as_ref()
            .map(|p| self.kubelet(p.as_ref(), &mut sys.warnings));
        let idx = OwnerIndex::gather(&fs, views, allocated);
        let mut pfs = Vec::new();
        for (bdf, f) in &all {
            if f.physfn.is_some() || !(f.totalvfs.is_some() || is_network_class(f.class)) {
                continue;
            }
            let mut vfs = Vec::with_capacity(f.virtfns.len());
            for &(n, vbdf) in &f.virtfns {
                let vf_f = match all.get(&vbdf) {
                    Some(v) => v.clone(),
                    None => {
                        sys.warnings.push(format!(
                            "{bdf} virtfn{n} points to {vbdf}, which is not in /sys/bus/pci/devices (vanished?)"
                        ));
                        continue;
                    }
                };
                if vf_f.physfn.is_some_and(|p| p != *bdf) {
                    sys.warnings
                        .push(format!("{vbdf}: physfn does not point back to {bdf}"));
                }
                let group_peers = vf_f
                    .iommu_group
                    .map(|g| {
                        sys.group_members(g)
                            .into_iter()
                            .filter(|m| *m != vbdf)
                            .collect()
                    })
                    .unwrap_or_default();
                vfs.push(Vf {
                    index: VfIndex(n),
                    bdf: vbdf,
                    driver: vf_f.driver.clone(),
                    netdev: vf_f.netdevs.first().cloned(),
                    iommu_group: vf_f.iommu_group,
                    group_peers,
                    iommu_unit: vf_f.iommu_unit.clone(),
                    owner: idx.owner_of(&vf_f),
                    state: None,
                });
            }
            let numvfs = f.numvfs.unwrap_or(0);
            if usize::try_from(numvfs).is_ok_and(|n| n != vfs.len()) && f.totalvfs.is_some() {
                sys.warnings.push(format!(
                    "{bdf}: sriov_numvfs is {numvfs} but {} VFs were found",
                    vfs.len()
                ));
            }
            let netdev = f.netdevs.first().cloned();
            let mut firmware = None;
            if let (Some(vfnet), Some(nd)) = (&self.vfnet, &netdev) {
                match vfnet.firmware(nd) {
                    Ok(v) => firmware = v,
                    // A driver without driver info (or a netdev gone since the listing).
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENODEV)) => {
                    }
                    Err(e) => {
                        // The ioctl needs a socket: exhaustion fails the read.
                        let _ = fs
                            .note(std::path::Path::new(nd), Err::<(), _>(e))
                            .map_err(|e| {
                                sys.warnings
                                    .push(format!("{bdf} ({nd}): firmware version not read: {e}"));
                            });
                    }
                }
            }
            if let (Some(vfnet), Some(nd)) = (&self.vfnet, &netdev) {
                if !vfs.is_empty() {
                    match vfnet.vf_states(nd) {
                        Ok(states) => {
                            for st in states {
                                if let Some(v) = vfs.iter_mut().find(|v| v.index.0 == st.index) {
                                    v.state = Some(st);
                                }
                            }
                        }
                        Err(e) => {
                            // rtnetlink needs a socket: exhaustion fails the read.
                            let _ =
                                fs.note(std::path::Path::new(nd), Err::<(), _>(e))
                                    .map_err(|e| {
                                        sys.warnings
                                            .push(format!("{bdf} ({nd}): VF state not read: {e}"));
                                    });
                        }
                    }
                }
            }
            pfs.push(Pf {
                bdf: *bdf,
                vendor: f.vendor.clone(),
                device: f.device.clone(),
                driver: f.driver.clone(),
                netdevs: f.netdevs.clone(),
                netdev,
                numvfs,
                totalvfs: f.totalvfs.unwrap_or(0),
                numa_node: f.numa_node.filter(|n| *n >= 0),
                reset_method: f.reset_method.clone(),
                aer: f.aer,
                iommu_group: f.iommu_group,
                iommu_unit: f.iommu_unit.clone(),
                firmware,
                owner: idx.owner_of(f),
                vfs,
            });
        }
        if let Some(e) = fs.exhausted() {
            return Err(e);
        }
        let mut warnings = sys.warnings;
        warnings.extend(idx.warnings);
        Ok(Topology {
            version: 0,
            pfs,
            warnings,
            stale: None,
            index: Default::default(),
        })
    }
}

impl TopologyReader {
    /// A cheap signature of what usually changes when the map does: the PCI functions present,
    /// each known PF's `sriov_numvfs` and driver, each known function's driver and netdevs,
    /// libvirt's live domains and their files, the named namespaces, and whether each known VM
    /// process still runs. A few syscalls per
    /// function instead of the dozens a full read costs; [`TopologyWatcher::probe`] uses it to
    /// re-read only when something moved.
    pub fn signature(&self, last: &Topology) -> u64 {
        let fs = self.fs.as_ref();
        let mut h = DefaultHasher::new();
        let list = |p: &str| fs.list(std::path::Path::new(p)).unwrap_or_default();
        list("/sys/bus/pci/devices").hash(&mut h);
        list("/run/libvirt/qemu").hash(&mut h);
        list("/run/netns").hash(&mut h);
        // A domain whose definition changed (a hostdev hot-plugged) is rewritten by rename: a
        // new inode.
        for name in list("/run/libvirt/qemu") {
            if name.ends_with(".xml") {
                fs.inode(std::path::Path::new(&format!("/run/libvirt/qemu/{name}")))
                    .ok()
                    .hash(&mut h);
            }
        }
        let link = |p: String| fs.read_link(std::path::Path::new(&p)).ok();
        // The netdevs sysfs shows for a function: a move to another namespace (named or not)
        // or a rename changes the listing.
        let netdevs = |bdf: &vfguard_model::Bdf| list(&format!("/sys/bus/pci/devices/{bdf}/net"));
        let mut pids = Vec::new();
        for pf in &last.pfs {
            fs.read(std::path::Path::new(&format!(
                "/sys/bus/pci/devices/{}/sriov_numvfs",
                pf.bdf
            )))
            .ok()
            .hash(&mut h);
            link(format!("/sys/bus/pci/devices/{}/driver", pf.bdf)).hash(&mut h);
            netdevs(&pf.bdf).hash(&mut h);
            pids.extend(pf.owner.pid);
            for vf in &pf.vfs {
                link(format!("/sys/bus/pci/devices/{}/driver", vf.bdf)).hash(&mut h);
                netdevs(&vf.bdf).hash(&mut h);
                pids.extend(vf.owner.pid);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            fs.read(std::path::Path::new(&format!("/proc/{pid}/comm")))
                .is_ok()
                .hash(&mut h);
        }
        h.finish()
    }
}

/// Re-reads the topology and versions it: the version rises whenever the structure changes.
/// A read that fails as a whole ([`ReadError`]) never replaces the map: the last good one comes
/// back, marked stale ([`Topology::stale`]), until a read succeeds.
pub struct TopologyWatcher {
    reader: TopologyReader,
    fingerprint: Option<u64>,
    signature: Option<u64>,
    version: u64,
    /// The last map read whole.
    last_good: Option<Topology>,
    /// Reads failed since then.
    failed_reads: u64,
}

impl TopologyWatcher {
    /// A watcher starting at version 0 (the first refresh makes it 1).
    pub fn new(reader: TopologyReader) -> TopologyWatcher {
        TopologyWatcher {
            reader,
            fingerprint: None,
            signature: None,
            version: 0,
            last_good: None,
            failed_reads: 0,
        }
    }

    /// Re-reads the map only when its cheap signature moved since the last read (see
    /// [`TopologyReader::signature`]); returns the new map when it did.
    pub fn probe(&mut self, last: &Topology) -> Option<(Topology, bool)> {
        let sig = self.reader.signature(last);
        if self.signature == Some(sig) {
            return None;
        }
        let r = self.refresh();
        // The signature taken before the read: a change landing during the read (VFs
        // appearing one by one) then differs from it at the next probe, and is read then. After
        // a failed read, none: the next probe reads again.
        if r.0.stale.is_none() {
            self.signature = Some(sig);
        }
        Some(r)
    }

    /// A fresh snapshot, and whether its structure differs from the previous one; when the read
    /// fails as a whole, the last good map (empty before any), marked stale, and `false`.
    pub fn refresh(&mut self) -> (Topology, bool) {
        let mut t = match self.reader.try_read() {
            Ok(t) => t,
            Err(e) => {
                self.failed_reads += 1;
                self.signature = None;
                let mut t = self.last_good.clone().unwrap_or_else(|| Topology {
                    version: self.version,
                    ..Topology::default()
                });
                t.stale = Some(StaleMap {
                    failed_reads: self.failed_reads,
                    error: e.chain(),
                    fd_exhausted: e.is_fd_exhausted(),
                });
                return (t, false);
            }
        };
        self.failed_reads = 0;
        let fp = fingerprint(&t);
        let changed = self.fingerprint != Some(fp);
        if changed {
            self.version += 1;
            self.fingerprint = Some(fp);
        }
        t.version = self.version;
        self.last_good = Some(t.clone());
        (t, changed)
    }
}

/// A hash of what identifies functions and owners (VF states and counters excluded: they move
/// all the time without changing the map).
fn fingerprint(t: &Topology) -> u64 {
    let mut h = DefaultHasher::new();
    for pf in &t.pfs {
        (pf.bdf, &pf.driver, &pf.netdevs, pf.numvfs, &pf.owner).hash(&mut h);
        for vf in &pf.vfs {
            (vf.index, vf.bdf, &vf.driver, &vf.netdev, &vf.owner).hash(&mut h);
        }
    }
    h.finish()
}
