//! The host map: PFs (and whole NICs), their VFs, and who owns each function.
//!
//! Built by `vfguard-topology`, consumed by the engine: every attribution names the topology
//! version it used, and a VF index is only ever mapped to a BDF through the topology of the
//! moment (the `virtfnN` links), never by arithmetic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::pci::{Bdf, VfIndex};

/// The map of the host's network functions at one moment.
///
/// Treat it as immutable once built: lookups build an index on first use (a map is read on
/// every event, and a host has thousands of VFs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Bumped whenever the structure changes (numvfs, drivers, netdevs, owners).
    pub version: u64,
    /// PFs and whole NICs, by BDF.
    pub pfs: Vec<Pf>,
    /// What could not be read, and why (the rest is still valid).
    pub warnings: Vec<String>,
    /// Set when the last read of the host failed as a whole (file descriptors exhausted, sysfs
    /// unreadable): this map is then the last good one, kept until a read succeeds, never an
    /// empty one. `None` for a fresh map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<StaleMap>,
    /// Function address → (PF position, VF position), built on first lookup.
    #[serde(skip)]
    pub index: LookupIndex,
}

/// Why a [`Topology`] is the last good map rather than a fresh read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleMap {
    /// Reads that failed since the last good one.
    pub failed_reads: u64,
    /// Why the latest one failed (`/sys/bus/pci/devices: Too many open files (os error 24)`).
    pub error: String,
    /// It failed for want of file descriptors (`EMFILE`, `ENFILE`).
    pub fd_exhausted: bool,
}

/// A lazily built lookup index (equal to any other: it is derived data).
#[derive(Debug, Clone, Default)]
pub struct LookupIndex(std::sync::OnceLock<std::collections::HashMap<Bdf, (usize, Option<usize>)>>);

impl PartialEq for LookupIndex {
    fn eq(&self, _: &LookupIndex) -> bool {
        true
    }
}

/// A physical function: an SR-IOV capable PF, or a network function without SR-IOV (a whole
/// NIC or one port of a multi-function NIC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pf {
    /// PCI address.
    pub bdf: Bdf,
    /// PCI vendor ID (`8086`).
    pub vendor: Option<String>,
    /// PCI device ID (`1572`).
    pub device: Option<String>,
    /// The bound driver (`i40e`, `vfio-pci`), if any.
    pub driver: Option<String>,
    /// Netdevs in the host namespace.
    pub netdevs: Vec<String>,
    /// The first netdev (the one VF control goes through).
    pub netdev: Option<String>,
    /// `sriov_numvfs`.
    pub numvfs: u32,
    /// `sriov_totalvfs` (0 for a function without SR-IOV).
    pub totalvfs: u32,
    /// NUMA node, when the platform reports one.
    pub numa_node: Option<i32>,
    /// `reset_method`.
    pub reset_method: Option<String>,
    /// AER counter files present (`aer_dev_correctable`...).
    pub aer: bool,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// The IOMMU unit that translates its DMA (`iommu` link: `dmar1`, `ivhd0`), when sysfs
    /// shows one: a fault line that prints a requester without its PCI segment is told apart
    /// by the unit it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_unit: Option<String>,
    /// The adapter's firmware version as its driver reports it (ethtool's driver info,
    /// `9.20 0x8000d8c5 1.3353.0` for an i40e port), when read: one (driver, firmware, fault
    /// class) on many hosts is a platform bug, not a tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Who holds it (a VM for whole-device passthrough, else the host or none).
    pub owner: Owner,
    /// Its VFs, by index.
    pub vfs: Vec<Vf>,
}

/// A virtual function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vf {
    /// Index under its PF (`virtfnN`).
    pub index: VfIndex,
    /// PCI address.
    pub bdf: Bdf,
    /// The bound driver (`iavf`, `vfio-pci`), if any.
    pub driver: Option<String>,
    /// Its netdev, when it lives in the host namespace.
    pub netdev: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// The other members of its IOMMU group (DMA from any of them is indistinguishable).
    pub group_peers: Vec<Bdf>,
    /// The IOMMU unit that translates its DMA (`iommu` link: `dmar1`), when sysfs shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_unit: Option<String>,
    /// Who holds it.
    pub owner: Owner,
    /// Its state as the PF reports it over rtnetlink, when read.
    pub state: Option<VfState>,
}

/// The kind of owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// A virtual machine (QEMU/libvirt holding the function through vfio).
    Vm,
    /// A network namespace (a container or pod holding the VF's netdev).
    Netns,
    /// The host itself (bound to a host driver, netdev in the host namespace).
    Host,
    /// Nobody (no driver bound).
    None,
}

impl OwnerKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Vm => "vm",
            OwnerKind::Netns => "netns",
            OwnerKind::Host => "host",
            OwnerKind::None => "none",
        }
    }
}

/// Who holds a function, and how we know.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The kind.
    pub kind: OwnerKind,
    /// A VM's name, a netns name, `host`; a Kubernetes pod's namespace as Kubernetes names it,
    /// `namespace/pod/container` (`namespace/pod` when the container is not known).
    pub name: Option<String>,
    /// A VM's UUID, a container ID, a netns inode.
    pub id: Option<String>,
    /// The process that holds it (QEMU, a container's init).
    pub pid: Option<u32>,
    /// Which files or processes said so, one line each.
    pub evidence: Vec<String>,
    /// What the orchestrator says of it, when its files do: OpenStack Nova's instance name and
    /// project from the domain XML's `<nova:instance>` metadata (`nova.name`, `nova.project`,
    /// `nova.project_uuid`); a Kubernetes pod's identity from its container runtime's files
    /// (`k8s.namespace`, `k8s.pod`, `k8s.container`, `k8s.pod_uid`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl Owner {
    /// Nobody holds it.
    pub fn none(evidence: impl Into<String>) -> Owner {
        Owner {
            kind: OwnerKind::None,
            name: None,
            id: None,
            pid: None,
            evidence: vec![evidence.into()],
            metadata: std::collections::BTreeMap::new(),
        }
    }

    /// The host holds it.
    pub fn host(evidence: impl Into<String>) -> Owner {
        Owner {
            kind: OwnerKind::Host,
            name: Some("host".to_owned()),
            id: None,
            pid: None,
            evidence: vec![evidence.into()],
            metadata: std::collections::BTreeMap::new(),
        }
    }

    /// A short label: `vm:web-7`, `netns:tenant-a`, `netns:shop/web-5f7/nginx` (a pod's),
    /// `host`, `none`.
    pub fn label(&self) -> String {
        match (&self.kind, &self.name) {
            (OwnerKind::Host, _) => "host".to_owned(),
            (OwnerKind::None, _) => "none".to_owned(),
            (k, Some(n)) => format!("{}:{n}", k.as_str()),
            (k, None) => format!("{}:?", k.as_str()),
        }
    }
}

impl Default for Owner {
    fn default() -> Owner {
        Owner::none("not examined")
    }
}

/// A VF's link state knob (`IFLA_VF_LINK_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VfLinkState {
    /// Follows the PF's link.
    Auto,
    /// Forced up.
    Enable,
    /// Forced down.
    Disable,
}

/// A VF as the PF reports it (`IFLA_VF_INFO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VfState {
    /// The VF index in the message.
    pub index: u16,
    /// `IFLA_VF_MAC`.
    pub mac: Option<MacAddr>,
    /// Port VLAN (`IFLA_VF_VLAN`), 0 = none.
    pub vlan: Option<u32>,
    /// VLAN priority.
    pub qos: Option<u32>,
    /// `IFLA_VF_SPOOFCHK`.
    pub spoofchk: Option<bool>,
    /// `IFLA_VF_TRUST`.
    pub trust: Option<bool>,
    /// `IFLA_VF_LINK_STATE`.
    pub link_state: Option<VfLinkState>,
    /// `IFLA_VF_RATE` minimum, Mbps.
    pub min_tx_rate: Option<u32>,
    /// `IFLA_VF_RATE` maximum, Mbps (0 = unlimited).
    pub max_tx_rate: Option<u32>,
    /// `IFLA_VF_STATS`.
    pub stats: Option<VfStats>,
}

/// Per-VF counters (`IFLA_VF_STATS`, include/uapi/linux/if_link.h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VfStats {
    /// `IFLA_VF_STATS_RX_PACKETS`.
    pub rx_packets: u64,
    /// `IFLA_VF_STATS_TX_PACKETS`.
    pub tx_packets: u64,
    /// `IFLA_VF_STATS_RX_BYTES`.
    pub rx_bytes: u64,
    /// `IFLA_VF_STATS_TX_BYTES`.
    pub tx_bytes: u64,
    /// `IFLA_VF_STATS_BROADCAST`.
    pub broadcast: u64,
    /// `IFLA_VF_STATS_MULTICAST`.
    pub multicast: u64,
    /// `IFLA_VF_STATS_RX_DROPPED`.
    pub rx_dropped: u64,
    /// `IFLA_VF_STATS_TX_DROPPED`.
    pub tx_dropped: u64,
}

/// AER counters of one function (`aer_dev_correctable`, `aer_dev_nonfatal`, `aer_dev_fatal`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AerCounters {
    /// Per named bit (and `<array>_bit[N]` for unnamed bits), correctable.
    pub correctable: BTreeMap<String, u64>,
    /// Uncorrectable non-fatal.
    pub nonfatal: BTreeMap<String, u64>,
    /// Uncorrectable fatal.
    pub fatal: BTreeMap<String, u64>,
    /// `TOTAL_ERR_COR`.
    pub total_correctable: u64,
    /// `TOTAL_ERR_NONFATAL`.
    pub total_nonfatal: u64,
    /// `TOTAL_ERR_FATAL`.
    pub total_fatal: u64,
}

impl Topology {
    fn lookup(&self) -> &std::collections::HashMap<Bdf, (usize, Option<usize>)> {
        self.index.0.get_or_init(|| {
            let mut m = std::collections::HashMap::new();
            for (pi, pf) in self.pfs.iter().enumerate() {
                m.insert(pf.bdf, (pi, None));
                for (vi, vf) in pf.vfs.iter().enumerate() {
                    m.insert(vf.bdf, (pi, Some(vi)));
                }
            }
            m
        })
    }

    /// The VF with this index under this PF, per the topology of the moment.
    pub fn vf(&self, pf: Bdf, index: VfIndex) -> Option<&Vf> {
        let vfs = &self.pf(pf)?.vfs;
        // VFs are listed in index order; fall back to a search if they are not.
        vfs.get(usize::from(index.0))
            .filter(|v| v.index == index)
            .or_else(|| vfs.iter().find(|v| v.index == index))
    }

    /// The PF with this address.
    pub fn pf(&self, pf: Bdf) -> Option<&Pf> {
        match self.lookup().get(&pf) {
            Some(&(pi, None)) => self.pfs.get(pi),
            _ => None,
        }
    }

    /// Every function (PF or VF) at this bus, device and function number, in any PCI segment:
    /// what a requester printed without its segment (Intel DMAR, old AMD-Vi) may be.
    pub fn in_any_segment(&self, bus: u8, device: u8, function: u8) -> Vec<FunctionRef<'_>> {
        let same = |b: Bdf| b.bus() == bus && b.device() == device && b.function() == function;
        let mut out = Vec::new();
        for pf in &self.pfs {
            if same(pf.bdf) {
                out.push(FunctionRef { pf, vf: None });
            }
            for vf in pf.vfs.iter().filter(|v| same(v.bdf)) {
                out.push(FunctionRef { pf, vf: Some(vf) });
            }
        }
        out.sort_by_key(FunctionRef::bdf);
        out
    }

    /// Where a requester printed without its segment (read as `printed`, segment 0000) is,
    /// given the IOMMU unit the log named, if any: the one function of the map at that
    /// bus:dev.fn, the one among several that `unit` translates, else every candidate (or none
    /// when the map has no function there).
    pub fn place_requester(&self, printed: Bdf, unit: Option<&str>) -> Placement<'_> {
        // Most hosts have one segment: a lookup, not a scan of every VF (a DMAR storm calls
        // this for every line). A VF is always in its PF's segment.
        if self
            .pfs
            .iter()
            .all(|p| p.bdf.segment() == printed.segment())
        {
            return match self.function(printed) {
                Some(r) => Placement::One(r),
                None => Placement::Several(Vec::new()),
            };
        }
        let all = self.in_any_segment(printed.bus(), printed.device(), printed.function());
        if let [only] = all.as_slice() {
            return Placement::One(*only);
        }
        let by_unit: Vec<FunctionRef<'_>> = all
            .iter()
            .filter(|c| unit.is_some() && c.iommu_unit() == unit)
            .copied()
            .collect();
        match by_unit.as_slice() {
            [one] => Placement::ByUnit(*one, all),
            _ => Placement::Several(all),
        }
    }

    /// Moves a resolved event whose requester was printed without its PCI segment
    /// ([`crate::segment_unprinted`]) to where [`Topology::place_requester`] puts it, given the
    /// IOMMU unit its details name (`unit`, `iommu_unit`); when several functions answer to it,
    /// nobody is named: `function`, `pf`, `vf` and `owner` are cleared and `details.candidates`
    /// lists them. Front ends without the engine (host-only reports, `vfguard scan --root`)
    /// call it after [`FaultEvent::resolve`]; the engine does the same with its evidence.
    pub fn place_segmentless(&self, e: &mut crate::FaultEvent) {
        let Some(f) = e
            .function
            .filter(|_| crate::segment_unprinted(&e.catalog_id, e.device.is_some()))
        else {
            return;
        };
        let unit = ["iommu_unit", "unit"]
            .iter()
            .find_map(|k| e.details.get(*k))
            .cloned();
        let to = match self.place_requester(f, unit.as_deref()) {
            Placement::One(r) | Placement::ByUnit(r, _) if r.bdf() == f => return,
            Placement::One(r) | Placement::ByUnit(r, _) => Some(r.bdf()),
            Placement::Several(all) if all.is_empty() => return,
            Placement::Several(all) => {
                let list: Vec<String> = all.iter().map(|c| c.bdf().to_string()).collect();
                e.details.insert("candidates".to_owned(), list.join(", "));
                None
            }
        };
        e.function = to;
        e.pf = None;
        e.vf = None;
        e.owner = None;
        if to.is_some() {
            e.resolve(self);
        }
    }

    /// The function that sent the bad TLP of an AER error, by the decoded header the parser
    /// put in its details (`tlp_type`, `tlp_requester`, `tlp_completer`): the completer of a
    /// completion (`Cpl*`), else the requester, in the reporter's PCI segment (a TLP never
    /// leaves its segment), with its role (`requester`, `completer`). Only when a root port or
    /// a PF reported it (not a VF reporting its own error), the sender is another function,
    /// and the map knows it.
    pub fn tlp_sender(&self, e: &crate::FaultEvent) -> Option<(Bdf, &'static str)> {
        use crate::FaultKind as K;
        if !matches!(e.kind, K::AerCorrectable | K::AerNonfatal | K::AerFatal) {
            return None;
        }
        let completion = e
            .details
            .get("tlp_type")
            .is_some_and(|t| t.trim().starts_with("Cpl"));
        let (key, role) = if completion {
            ("tlp_completer", "completer")
        } else {
            ("tlp_requester", "requester")
        };
        let raw = e.details.get(key)?.trim();
        let id: Bdf = raw.parse().ok()?;
        let sender = if raw.matches(':').count() == 2 {
            id
        } else {
            let segment = e.device.or(e.function)?.segment();
            Bdf::new(segment, id.bus(), id.device(), id.function())?
        };
        let reporter_is_vf = e
            .function
            .and_then(|f| self.function(f))
            .is_some_and(|r| r.vf.is_some());
        if e.function == Some(sender) || reporter_is_vf {
            return None;
        }
        self.function(sender).map(|_| (sender, role))
    }

    /// The owner of any function (PF or VF) by address, with the PF it belongs to.
    pub fn function(&self, bdf: Bdf) -> Option<FunctionRef<'_>> {
        let &(pi, vi) = self.lookup().get(&bdf)?;
        let pf = self.pfs.get(pi)?;
        match vi {
            None => Some(FunctionRef { pf, vf: None }),
            Some(vi) => Some(FunctionRef {
                pf,
                vf: Some(pf.vfs.get(vi)?),
            }),
        }
    }
}

/// Where a requester printed without its PCI segment was placed ([`Topology::place_requester`]).
#[derive(Debug, Clone)]
pub enum Placement<'a> {
    /// The only function of the map at that bus:dev.fn.
    One(FunctionRef<'a>),
    /// The one the named IOMMU unit translates, among all these.
    ByUnit(FunctionRef<'a>, Vec<FunctionRef<'a>>),
    /// None or several, nothing telling them apart.
    Several(Vec<FunctionRef<'a>>),
}

/// A function found in the topology: a PF, or a VF with its PF.
#[derive(Debug, Clone, Copy)]
pub struct FunctionRef<'a> {
    /// The PF (or the function itself when `vf` is `None`).
    pub pf: &'a Pf,
    /// The VF, when the function is one.
    pub vf: Option<&'a Vf>,
}

impl FunctionRef<'_> {
    /// The function's owner.
    pub fn owner(&self) -> &Owner {
        self.vf.map_or(&self.pf.owner, |v| &v.owner)
    }

    /// The function's address.
    pub fn bdf(&self) -> Bdf {
        self.vf.map_or(self.pf.bdf, |v| v.bdf)
    }

    /// The IOMMU unit that translates the function's DMA, when known.
    pub fn iommu_unit(&self) -> Option<&str> {
        self.vf
            .map_or(self.pf.iommu_unit.as_deref(), |v| v.iommu_unit.as_deref())
    }
}

/// One change to a VF through its PF (`ip link set <pf> vf N ...`): the knobs actions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "knob", content = "value")]
pub enum VfChange {
    /// `state auto|enable|disable` (`IFLA_VF_LINK_STATE`).
    LinkState(VfLinkState),
    /// `spoofchk on|off` (`IFLA_VF_SPOOFCHK`).
    SpoofChk(bool),
    /// `trust on|off` (`IFLA_VF_TRUST`).
    Trust(bool),
    /// `min_tx_rate`/`max_tx_rate` in Mbps (`IFLA_VF_RATE`; 0 = no limit).
    Rate {
        /// Minimum.
        min_mbps: u32,
        /// Maximum.
        max_mbps: u32,
    },
    /// `vlan N qos Q` (`IFLA_VF_VLAN`; 0 = none).
    Vlan {
        /// VLAN ID.
        vlan: u16,
        /// Priority.
        qos: u8,
    },
    /// `mac X` (`IFLA_VF_MAC`).
    Mac(MacAddr),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(bdf: &str, unit: Option<&str>, vfs: &[&str]) -> Pf {
        Pf {
            bdf: bdf.parse().unwrap(),
            vendor: None,
            device: None,
            driver: None,
            netdevs: Vec::new(),
            netdev: None,
            numvfs: 0,
            totalvfs: 0,
            numa_node: None,
            reset_method: None,
            aer: false,
            iommu_group: None,
            iommu_unit: unit.map(str::to_owned),
            firmware: None,
            owner: Owner::default(),
            vfs: vfs
                .iter()
                .enumerate()
                .map(|(i, b)| Vf {
                    index: VfIndex(u16::try_from(i).unwrap()),
                    bdf: b.parse().unwrap(),
                    driver: None,
                    netdev: None,
                    iommu_group: None,
                    group_peers: Vec::new(),
                    iommu_unit: unit.map(str::to_owned),
                    owner: Owner::default(),
                    state: None,
                })
                .collect(),
        }
    }

    fn placed(p: &Placement<'_>) -> (Option<String>, Vec<String>) {
        match p {
            Placement::One(r) => (Some(r.bdf().to_string()), Vec::new()),
            Placement::ByUnit(r, all) => (
                Some(r.bdf().to_string()),
                all.iter().map(|c| c.bdf().to_string()).collect(),
            ),
            Placement::Several(all) => (None, all.iter().map(|c| c.bdf().to_string()).collect()),
        }
    }

    #[test]
    fn a_segmentless_requester_is_placed_by_the_map_and_the_iommu_unit() {
        let printed: Bdf = "3c:00.3".parse().unwrap();
        let one = Topology {
            pfs: vec![pf("0000:3b:00.0", None, &["0000:3c:00.3"])],
            ..Topology::default()
        };
        assert_eq!(
            placed(&one.place_requester(printed, None)),
            (Some("0000:3c:00.3".into()), vec![])
        );
        let only_elsewhere = Topology {
            pfs: vec![pf("0001:3b:00.0", Some("dmar7"), &["0001:3c:00.3"])],
            ..Topology::default()
        };
        assert_eq!(
            placed(&only_elsewhere.place_requester(printed, None)).0,
            Some("0001:3c:00.3".into())
        );
        let two = Topology {
            pfs: vec![
                pf("0000:3b:00.0", Some("dmar1"), &["0000:3c:00.3"]),
                pf("0001:3b:00.0", Some("dmar7"), &["0001:3c:00.3"]),
            ],
            ..Topology::default()
        };
        let both = vec!["0000:3c:00.3".to_owned(), "0001:3c:00.3".to_owned()];
        assert_eq!(
            placed(&two.place_requester(printed, Some("dmar7"))),
            (Some("0001:3c:00.3".into()), both.clone())
        );
        assert_eq!(
            placed(&two.place_requester(printed, None)),
            (None, both.clone())
        );
        assert_eq!(
            placed(&two.place_requester(printed, Some("dmar3"))),
            (None, both)
        );
    }
}
