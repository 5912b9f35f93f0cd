//! A simulated host: NIC models, tenants that misbehave, the exact kernel lines their drivers
//! print, on a virtual clock. It stands behind the same host traits as the real machine
//! (`HostFs`, `KmsgDevice`, `VfNet`, `VfControl`, `NetnsProbe`), so the agent runs on it
//! unchanged.
//!
//! # Design
//! - The host is materialised as a real tree (sysfs, /proc, /run/libvirt, netns views) with
//!   `vfguard_topology::fixture`, so the topology reader reads it exactly as it reads `/`.
//! - Time is virtual and only moves in [`SimHost::advance_to`]: a run is deterministic for a seed
//!   (same records, byte for byte) and much faster than real time.
//! - Kernel lines are rendered from the driver catalog's format strings; the log is a bounded
//!   ring with `/dev/kmsg` semantics (a reader that falls behind gets an overrun).
//! - The agent's actions land on the model: a VF it disables stops emitting, a reset VF resumes,
//!   a VF detached from its VM has no owner, a VF evicted from a container's namespace comes back
//!   to the host's. Every control call is recorded, and failures can be injected (`EBUSY`,
//!   `EOPNOTSUPP`; `EPERM`... for evictions).

pub mod devlink;
pub mod drivers;
pub mod expect;
mod pod;
pub mod render;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod state;
mod traits;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use vfguard_host::{
    FsNetns, HostFs, KmsgDevice, NetnsControl, NetnsProbe, VfControl, VfNet, VmControl,
};
use vfguard_model::{Bdf, KmsgRecord, VfIndex, VfLinkState, VfStats};
use vfguard_topology::fixture::{DomainSpec, FunctionSpec, HostFixture, NovaSpec, QemuSpec};
use vfguard_topology::TopologyReader;

use drivers::Printer;
use rng::Rng;
use scenario::{BehaviourKind, Scenario};
use state::{ControlCall, Failures, LogRing, NetnsFailures, SimOwner, SimPf, SimVf};

pub use traits::{SimFs, SimKmsg, SimNetnsControl, SimVfControl, SimVfNet, SimVmControl};

/// Records the ring keeps by default (the kernel's default buffer holds a few thousand).
pub const DEFAULT_RING: usize = 1 << 16;

/// What the scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    /// The drivers' 1 s service task (MDD summaries, ixgbe's spoof check) and traffic.
    Service,
    /// Behaviour `b` acts on its function `f`.
    Behaviour { b: usize, f: usize },
    /// Scenario event `e`.
    Event(usize),
}

/// The shared state behind the host-trait handles.
pub struct Shared {
    /// Virtual time.
    pub now_ms: u64,
    /// PFs.
    pub pfs: Vec<SimPf>,
    /// Tenants.
    pub owners: Vec<SimOwner>,
    /// The kernel log.
    pub log: LogRing,
    /// Every control call the agent made.
    pub calls: Vec<ControlCall>,
    /// Injected failures.
    pub failures: Failures,
    /// Injected eviction failures, per container.
    pub netns_failures: NetnsFailures,
    /// Bumped when the tree changed (an owner left, a VF was detached).
    pub topology_changes: u64,
    pub(crate) fixture: HostFixture,
}

impl Shared {
    fn emit(&mut self, p: Printer) {
        for r in p.out {
            self.log.push(r);
        }
    }

    /// The PF whose netdev is `netdev`.
    pub fn pf_by_netdev(&mut self, netdev: &str) -> Option<&mut SimPf> {
        self.pfs.iter_mut().find(|p| p.spec.netdev == netdev)
    }

    /// The VF at this address.
    pub fn vf_by_bdf(&mut self, bdf: Bdf) -> Option<&mut SimVf> {
        self.pfs
            .iter_mut()
            .flat_map(|p| p.vfs.iter_mut())
            .find(|v| v.bdf == bdf)
    }
}

/// The simulated host.
pub struct SimHost {
    scenario: Scenario,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    shared: Arc<Mutex<Shared>>,
    rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64, Job)>>,
    tie: u64,
    /// Per behaviour: its target functions (PF index, VF index or `None` for the PF).
    targets: Vec<Vec<(usize, Option<usize>)>>,
}

impl SimHost {
    /// Builds the host of `scenario` in a fresh temporary directory.
    pub fn new(scenario: Scenario) -> io::Result<SimHost> {
        let dir = tempfile::Builder::new().prefix("vfguard-sim-").tempdir()?;
        let root = dir.path().to_path_buf();
        let mut h = SimHost::build(scenario, &root, DEFAULT_RING, true)?;
        h._dir = Some(dir);
        Ok(h)
    }

    /// Builds the host of `scenario` under `root` (kept after the run), with a log ring of
    /// `ring` records; `keep_all` also keeps every record for [`SimHost::records`].
    pub fn build(
        scenario: Scenario,
        root: &Path,
        ring: usize,
        keep_all: bool,
    ) -> io::Result<SimHost> {
        let fixture = HostFixture::new(root)?;
        let mut pfs = Vec::new();
        for (pi, spec) in scenario.pf.iter().enumerate() {
            let (vendor, device, _) = spec.driver.ids();
            fixture.add_function(&FunctionSpec {
                vendor: vendor.into(),
                device: device.into(),
                driver: Some(spec.driver.pf_driver().into()),
                netdevs: vec![spec.netdev.clone()],
                totalvfs: (spec.totalvfs > 0 && spec.numvfs > 0)
                    .then_some(u32::from(spec.totalvfs)),
                iommu_group: Some(u32::try_from(pi).unwrap_or(0) * 1000 + 999),
                iommu_unit: spec.iommu_unit.clone(),
                ..FunctionSpec::new(spec.bdf)
            })?;
            let vfs: Vec<SimVf> = (0..spec.numvfs)
                .map(|i| SimVf {
                    index: VfIndex(i),
                    bdf: state::vf_bdf(spec.bdf, i),
                    mac: state::vf_mac(spec.bdf.bus(), i),
                    vlan: 0,
                    qos: 0,
                    spoofchk: true,
                    trust: false,
                    link_state: VfLinkState::Auto,
                    min_tx_rate: 0,
                    max_tx_rate: 0,
                    stats: VfStats::default(),
                    driver_disabled: false,
                    mdd_tx: 0,
                    mdd_rx: 0,
                    mbx_latched: false,
                    resets: 0,
                    vnic: devlink::Vnic::default(),
                })
                .collect();
            pfs.push(SimPf {
                spec: spec.clone(),
                vfs,
                last_summary_ms: None,
                summary_pending: Vec::new(),
                ssvpc: 0,
                aer_rxerr: 0,
                tx_hangs: 0,
                health: devlink::PfHealth::new(spec.driver, spec.bdf.function(), spec.numvfs),
            });
        }
        // Tenants.
        let pf_index = |b: Bdf| scenario.pf.iter().position(|p| p.bdf == b);
        let functions_of = |fns: &[toml::Spanned<scenario::FnRef>]| -> Vec<(usize, Option<usize>)> {
            fns.iter()
                .filter_map(|f| {
                    let f = f.get_ref();
                    Some((pf_index(f.pf)?, f.vf.map(|v| usize::from(v.0))))
                })
                .collect()
        };
        let owner = |name: &str, vm: bool, pid: u32, fns| SimOwner {
            name: name.to_owned(),
            vm,
            pid,
            functions: functions_of(fns),
            present: true,
            paused: false,
        };
        // VMs are pids 4000.., containers 6000.. (the fixture's process table).
        let pid = |base: u32, k: usize| base + u32::try_from(k).unwrap_or(0);
        let owners: Vec<SimOwner> = (scenario.vm.iter().enumerate())
            .map(|(k, vm)| owner(&vm.name, true, pid(4000, k), &vm.functions))
            .chain(
                (scenario.container.iter().enumerate())
                    .map(|(k, c)| owner(&c.name, false, pid(6000, k), &c.functions)),
            )
            .collect();
        let shared = Shared {
            now_ms: 0,
            pfs,
            owners,
            log: LogRing::new(ring, keep_all),
            calls: Vec::new(),
            failures: Failures::new(),
            netns_failures: NetnsFailures::new(),
            topology_changes: 0,
            fixture,
        };
        let mut h = SimHost {
            rng: Rng::new(scenario.scenario.seed),
            scenario,
            root: root.to_path_buf(),
            _dir: None,
            shared: Arc::new(Mutex::new(shared)),
            queue: BinaryHeap::new(),
            tie: 0,
            targets: Vec::new(),
        };
        h.materialise()?;
        h.schedule_all();
        Ok(h)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes VFs, drivers, QEMU processes, libvirt XML and container namespaces into the tree.
    fn materialise(&self) -> io::Result<()> {
        let s = self.lock();
        let owner_of = |pi: usize, vi: Option<usize>| {
            s.owners
                .iter()
                .position(|o| o.present && o.functions.contains(&(pi, vi)))
        };
        for (pi, pf) in s.pfs.iter().enumerate() {
            let family = pf.family();
            let (vendor, _, vf_device) = family.ids();
            let group_base = u32::try_from(pi).unwrap_or(0) * 1000;
            let vm_vf = |vi: usize| {
                owner_of(pi, Some(vi))
                    .and_then(|o| s.owners.get(o))
                    .is_some_and(|o| o.vm)
            };
            let in_container = |vi: usize| {
                owner_of(pi, Some(vi))
                    .and_then(|o| s.owners.get(o))
                    .is_some_and(|o| !o.vm)
            };
            if !pf.vfs.is_empty() {
                s.fixture.set_vfs(
                    pf.spec.bdf,
                    u16::try_from(pf.vfs.len()).unwrap_or(0),
                    |i| state::vf_bdf(pf.spec.bdf, i),
                    |i, bdf| {
                        let vi = usize::from(i);
                        let driver = if vm_vf(vi) {
                            "vfio-pci"
                        } else {
                            family.vf_driver()
                        };
                        let netdevs = if vm_vf(vi) || in_container(vi) {
                            vec![]
                        } else {
                            vec![format!("{}v{i}", pf.spec.netdev)]
                        };
                        FunctionSpec {
                            vendor: vendor.into(),
                            device: vf_device.into(),
                            driver: Some(driver.into()),
                            iommu_group: Some(group_base + u32::from(i)),
                            iommu_unit: pf.spec.iommu_unit.clone(),
                            netdevs,
                            ..FunctionSpec::new(bdf)
                        }
                    },
                )?;
            }
            if owner_of(pi, None)
                .and_then(|o| s.owners.get(o))
                .is_some_and(|o| o.vm)
            {
                // A whole NIC given to a VM: bound to vfio-pci, no host netdev.
                s.fixture.remove_netdev(pf.spec.bdf, &pf.spec.netdev)?;
                s.fixture.bind(pf.spec.bdf, Some("vfio-pci"))?;
            }
        }
        for (k, o) in s.owners.iter().enumerate() {
            let bdfs: Vec<(Bdf, u32)> = o
                .functions
                .iter()
                .filter_map(|&(pi, vi)| {
                    let pf = s.pfs.get(pi)?;
                    let group_base = u32::try_from(pi).unwrap_or(0) * 1000;
                    match vi {
                        Some(v) => Some((pf.vfs.get(v)?.bdf, group_base + u32::try_from(v).ok()?)),
                        None => Some((pf.spec.bdf, group_base + 999)),
                    }
                })
                .collect();
            if o.vm {
                let spec = self.scenario.vm.iter().find(|v| v.name == o.name);
                let uuid = spec
                    .and_then(|v| v.uuid.clone())
                    .unwrap_or_else(|| format!("00000000-0000-4000-8000-{:012x}", k + 1));
                s.fixture.add_qemu(&QemuSpec {
                    pid: o.pid,
                    name: o.name.clone(),
                    uuid: Some(uuid.clone()),
                    hostdevs: bdfs.iter().map(|(b, _)| *b).collect(),
                    json: k % 2 == 1,
                    vfio_groups: bdfs.iter().map(|(_, g)| *g).collect(),
                })?;
                let libvirt = self
                    .scenario
                    .vm
                    .iter()
                    .find(|v| v.name == o.name)
                    .is_some_and(|v| v.libvirt);
                if libvirt {
                    s.fixture.add_domain(&DomainSpec {
                        name: o.name.clone(),
                        uuid,
                        pid: o.pid,
                        hostdevs: bdfs.iter().map(|(b, _)| *b).collect(),
                        interfaces: vec![],
                        nova: spec.and_then(|v| v.nova.as_ref()).map(|n| NovaSpec {
                            name: n.name.clone(),
                            project: n.project.clone(),
                            project_uuid: n.project_uuid.clone(),
                        }),
                    })?;
                }
            } else {
                let id = format!("{:0>64}", format!("{:x}", 0xc0ffee_u64 + k as u64));
                let links: Vec<(String, Bdf)> = bdfs
                    .iter()
                    .enumerate()
                    .map(|(n, (b, _))| (format!("net{}", n + 1), *b))
                    .collect();
                let refs: Vec<(&str, Bdf)> = links.iter().map(|(n, b)| (n.as_str(), *b)).collect();
                let inode = 4_026_532_100 + k as u64;
                s.fixture.add_container(o.pid, &o.name, &id, inode, &refs)?;
                let k8s = self
                    .scenario
                    .container
                    .iter()
                    .find(|c| c.name == o.name)
                    .and_then(|c| c.k8s.as_ref());
                if let Some(meta) = k8s {
                    pod::write(&s.fixture, meta, k, o.pid, &id, inode)?;
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, at: u64, job: Job) {
        self.tie += 1;
        self.queue.push(Reverse((at, self.tie, job)));
    }

    fn schedule_all(&mut self) {
        self.push(1000, Job::Service);
        let s = self.shared.clone();
        let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut targets = Vec::new();
        for b in &self.scenario.behaviour {
            let t: Vec<(usize, Option<usize>)> = match (&b.owner, &b.function) {
                (Some(o), _) => s
                    .owners
                    .iter()
                    .find(|x| &x.name == o.get_ref())
                    .map(|x| x.functions.clone())
                    .unwrap_or_default(),
                (None, Some(f)) => {
                    let f = f.get_ref();
                    self.scenario
                        .pf
                        .iter()
                        .position(|p| p.bdf == f.pf)
                        .map(|pi| vec![(pi, f.vf.map(|v| usize::from(v.0)))])
                        .unwrap_or_default()
                }
                (None, None) => Vec::new(),
            };
            targets.push(t);
        }
        drop(s);
        for (bi, t) in targets.iter().enumerate() {
            let start = self.scenario.behaviour.get(bi).map_or(0, |b| b.start_ms);
            for f in 0..t.len() {
                // Stagger the functions of one owner a little.
                self.push(
                    start + u64::try_from(f).unwrap_or(0) * 3,
                    Job::Behaviour { b: bi, f },
                );
            }
        }
        self.targets = targets;
        for (ei, e) in self.scenario.event.iter().enumerate() {
            let at = e.at_ms;
            self.tie += 1;
            self.queue.push(Reverse((at, self.tie, Job::Event(ei))));
        }
    }

    /// Where the host tree lives (give it as `--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Virtual time now.
    pub fn now_ms(&self) -> u64 {
        self.lock().now_ms
    }

    /// Whether the scenario's duration has been played.
    pub fn finished(&self) -> bool {
        self.now_ms() >= self.scenario.scenario.duration_ms
    }

    /// Plays everything scheduled up to `t_ms` (capped at the scenario's end).
    pub fn advance_to(&mut self, t_ms: u64) {
        let end = self.scenario.scenario.duration_ms;
        let t_ms = t_ms.min(end);
        while let Some(Reverse((at, _, job))) = self.queue.peek().copied() {
            if at > t_ms {
                break;
            }
            self.queue.pop();
            self.lock().now_ms = at;
            self.run(at, job);
        }
        self.lock().now_ms = t_ms;
    }

    /// Plays the whole scenario.
    pub fn run_to_end(&mut self) {
        self.advance_to(self.scenario.scenario.duration_ms);
    }

    fn run(&mut self, at: u64, job: Job) {
        match job {
            Job::Service => {
                let mut s = self.lock();
                let mut p = Printer::new(at);
                for pi in 0..s.pfs.len() {
                    if let Some(pf) = s.pfs.get_mut(pi) {
                        if !pf.summary_pending.is_empty() {
                            let auto = pf.spec.mdd_auto_reset;
                            drivers::flush_summaries(&mut p, pf, at, auto);
                        }
                        if at.is_multiple_of(2000) {
                            drivers::ixgbe_spoof_check(&mut p, pf);
                        }
                        // Traffic: every enabled VF that someone holds moves some packets.
                        // A VF whose max_tx_rate caps it sends its share of that.
                        for vf in pf.vfs.iter_mut().filter(|v| v.enabled()) {
                            vf.stats.rx_packets += 1000;
                            vf.stats.tx_packets += vf.tx_allowed(800);
                            vf.stats.rx_bytes += 1_000_000;
                            vf.stats.tx_bytes += vf.tx_allowed(700_000);
                        }
                    }
                }
                s.emit(p);
                drop(s);
                self.push(at + 1000, Job::Service);
            }
            Job::Behaviour { b, f } => {
                let Some(spec) = self.scenario.behaviour.get(b).cloned() else {
                    return;
                };
                let end = spec.end_ms.unwrap_or(u64::MAX);
                if at >= end {
                    return;
                }
                let Some(&(pi, vi)) = self.targets.get(b).and_then(|t| t.get(f)) else {
                    return;
                };
                let bits = self.rng.next_u64();
                let fire = match spec.kind {
                    BehaviourKind::BuggyDriver => self.rng.chance(15),
                    _ => true,
                };
                let still_owned = match &spec.owner {
                    Some(o) => self.lock().owners.iter().any(|x| {
                        &x.name == o.get_ref()
                            && x.present
                            && !x.paused
                            && x.functions.contains(&(pi, vi))
                    }),
                    None => true,
                };
                if fire && still_owned {
                    self.act(at, spec.kind, pi, vi, bits);
                }
                // Jitter of up to 10% keeps events from lining up exactly.
                let jitter = self.rng.below(spec.every_ms / 10 + 1);
                self.push(at + spec.every_ms + jitter, Job::Behaviour { b, f });
            }
            Job::Event(e) => self.scenario_event(e),
        }
    }

    fn act(&mut self, at: u64, kind: BehaviourKind, pi: usize, vi: Option<usize>, bits: u64) {
        let mut s = self.lock();
        let mut p = Printer::new(at);
        // A NIC a VM holds whole is bound to vfio-pci: AER prints its details under that.
        let held_whole = s
            .owners
            .iter()
            .any(|o| o.present && o.vm && o.functions.contains(&(pi, None)));
        let Some(pf) = s.pfs.get_mut(pi) else { return };
        let dmar_unit = pf.spec.iommu_unit.clone();
        match (kind, vi) {
            (BehaviourKind::AerStorm, _) => {
                let driver = if held_whole {
                    "vfio-pci"
                } else {
                    pf.family().pf_driver()
                };
                drivers::aer_storm(&mut p, pf, driver);
                let text = format!("RxErr {0}\nBadTLP 0\nTOTAL_ERR_COR {0}\n", pf.aer_rxerr);
                let bdf = pf.spec.bdf;
                let _ = s.fixture.write_aer(bdf, "aer_dev_correctable", &text);
            }
            (BehaviourKind::PfTxHang, _) => drivers::pf_tx_hang(&mut p, pf, bits),
            (BehaviourKind::MalformedTlp, v) => render::malformed_tlp(&mut p, pf, v, bits),
            (BehaviourKind::DmaFault, None) => drivers::dma_fault(&mut p, pf.spec.bdf, bits),
            (k, Some(v)) => drivers::vf_event(&mut p, pf, v, k, at, bits),
            (_, None) => {}
        }
        if let (BehaviourKind::DmaFault, Some(unit)) = (kind, dmar_unit) {
            render::dmar_dump_after_fault(&mut p, &unit);
        }
        s.emit(p);
    }

    fn scenario_event(&mut self, e: usize) {
        let Some(ev) = self.scenario.event.get(e).cloned() else {
            return;
        };
        let mut s = self.lock();
        if let Some(name) = &ev.migrate_away {
            let found = s.owners.iter().position(|o| &o.name == name.get_ref());
            if let Some(k) = found {
                let (pid, vm_name) = s
                    .owners
                    .get(k)
                    .map(|o| (o.pid, o.name.clone()))
                    .unwrap_or_default();
                if let Some(o) = s.owners.get_mut(k) {
                    o.present = false;
                }
                let _ = s.fixture.remove_process(pid);
                let _ = s.fixture.remove_domain(&vm_name);
                s.topology_changes += 1;
            }
        }
        if let Some(f) = &ev.fail_vf_control {
            s.failures.insert(f.pf, (f.errno.clone(), f.count));
        }
        if let Some(f) = &ev.fail_netns_control {
            s.netns_failures.insert(
                f.container.get_ref().clone(),
                (f.errno.get_ref().clone(), f.count),
            );
        }
    }

    /// Every record written so far (when the host keeps them).
    pub fn records(&self) -> Vec<KmsgRecord> {
        self.records_since(0)
    }

    /// The kept records from the `from`-th on.
    pub fn records_since(&self, from: usize) -> Vec<KmsgRecord> {
        self.lock()
            .log
            .kept
            .as_ref()
            .and_then(|k| k.get(from..))
            .map(<[KmsgRecord]>::to_vec)
            .unwrap_or_default()
    }

    /// The agent's control calls so far.
    pub fn control_calls(&self) -> Vec<ControlCall> {
        self.lock().calls.clone()
    }

    /// How many times the tree's owners changed.
    pub fn topology_changes(&self) -> u64 {
        self.lock().topology_changes
    }

    /// A look at the state (tests, reports).
    pub fn with_state<T>(&self, f: impl FnOnce(&Shared) -> T) -> T {
        f(&self.lock())
    }

    /// The host's files (reads the tree; writes to `reset` and `sriov_numvfs` act on the model).
    pub fn fs(&self) -> Arc<dyn HostFs> {
        Arc::new(SimFs::new(&self.root, self.shared.clone()))
    }

    /// A kernel log reader positioned at the oldest record.
    pub fn kmsg(&self) -> Box<dyn KmsgDevice> {
        Box::new(SimKmsg::new(self.shared.clone()))
    }

    /// The PFs' VF tables.
    pub fn vfnet(&self) -> Arc<dyn VfNet> {
        Arc::new(SimVfNet::new(self.shared.clone()))
    }

    /// The VF knobs.
    pub fn vfctl(&self) -> Arc<dyn VfControl> {
        Arc::new(SimVfControl::new(self.shared.clone()))
    }

    /// VM control (detach, pause) on the simulated tenants.
    pub fn vmctl(&self) -> Arc<dyn VmControl> {
        Arc::new(SimVmControl::new(self.shared.clone()))
    }

    /// Namespace control (evicting a VF from a container) on the simulated tenants.
    pub fn netnsctl(&self) -> Arc<dyn NetnsControl> {
        Arc::new(SimNetnsControl::new(self.shared.clone()))
    }

    /// Namespace views, from the tree.
    pub fn netns(&self) -> Arc<dyn NetnsProbe> {
        Arc::new(FsNetns::new(self.fs()))
    }

    /// The generic netlink socket (devlink health).
    pub fn devlink(&self) -> Box<dyn vfguard_host::GenlLink> {
        Box::new(devlink::SimGenl::new(self.shared.clone()))
    }

    /// A topology reader over this host, with its VF tables and its kubelet.
    pub fn topology_reader(&self) -> TopologyReader {
        TopologyReader::new(self.fs(), self.netns(), Some(self.vfnet()))
            .with_pod_resources(Arc::new(pod::SimKubelet::of(&self.scenario)))
    }
}
