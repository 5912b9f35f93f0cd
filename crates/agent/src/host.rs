//! Wiring: the host handles the loop uses ([`AgentHost`]), on the live host, on a tree under
//! `--root`, or on the simulated host; the one place that chooses between them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use vfguard_act::{Actuator, Notifier};
use vfguard_host::linux::{
    open_kmsg, Kubelet, LinuxGenl, LiveNetns, LiveNetnsControl, NetlinkVfControl, NetlinkVfNet,
    Virsh,
};
use vfguard_host::{
    FsNetns, FsRoot, GenlLink, HostFs, KmsgDevice, NetnsControl, NetnsProbe, NoNetnsControl, VfNet,
};
use vfguard_topology::TopologyReader;

use crate::config::Config;

/// The host handles the loop uses.
pub struct AgentHost {
    /// The kernel log.
    pub kmsg: Box<dyn KmsgDevice>,
    /// The host map.
    pub topology: TopologyReader,
    /// VF tables (counters).
    pub vfnet: Arc<dyn VfNet>,
    /// sysfs (AER counters).
    pub fs: Arc<dyn HostFs>,
    /// The actuators.
    pub actuator: Actuator,
    /// Generic netlink for devlink health; `None` where there is none (a tree under
    /// `--root`, a socket that cannot be opened).
    pub devlink: Option<Box<dyn GenlLink>>,
}

impl AgentHost {
    /// Every handle on the simulated host, notifications going to `notifier`.
    pub fn simulated(sim: &vfguard_sim::SimHost, notifier: Arc<dyn Notifier>) -> AgentHost {
        AgentHost {
            kmsg: sim.kmsg(),
            topology: sim.topology_reader(),
            vfnet: sim.vfnet(),
            fs: sim.fs(),
            devlink: Some(sim.devlink()),
            actuator: Actuator {
                vfctl: sim.vfctl(),
                vfnet: sim.vfnet(),
                fs: sim.fs(),
                vm: sim.vmctl(),
                netns: sim.netnsctl(),
                notifier,
            },
        }
    }

    /// Every handle on this host as `cfg` names it: its kernel log device (opened here), sysfs
    /// under its root, rtnetlink, virsh, namespace control on `/`, notifications to the log
    /// and the configured webhook.
    pub fn live(cfg: &Config) -> anyhow::Result<AgentHost> {
        let kmsg = open_kmsg(&cfg.kmsg, true)
            .with_context(|| format!("opening {}", cfg.kmsg.display()))?;
        let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(&cfg.root));
        let vfnet: Arc<dyn VfNet> = Arc::new(NetlinkVfNet::default());
        Ok(AgentHost {
            devlink: live_devlink(cfg),
            kmsg,
            topology: topology_reader(&cfg.root),
            vfnet: vfnet.clone(),
            fs: fs.clone(),
            actuator: Actuator {
                vfctl: Arc::new(NetlinkVfControl),
                vfnet,
                fs,
                vm: Arc::new(Virsh::default()),
                netns: netns_control(&cfg.root),
                notifier: crate::notify::notifier(cfg.webhook.as_ref())?,
            },
        })
    }
}

/// The devlink socket of the live host (`/`), when the configuration wants it; a tree under
/// `--root` has none. A socket that cannot be opened is told once (the source stays off).
fn live_devlink(cfg: &Config) -> Option<Box<dyn GenlLink>> {
    if !cfg.agent.devlink || !FsRoot::new(&cfg.root).is_live() {
        return None;
    }
    match LinuxGenl::open() {
        Ok(l) => Some(Box::new(l)),
        Err(e) => {
            tracing::info!(error = %e, "no generic netlink socket; devlink health is off");
            None
        }
    }
}

/// A topology reader for the live host (`/`) or a tree (`--root DIR`).
pub fn topology_reader(root: &Path) -> TopologyReader {
    let fs = FsRoot::new(root);
    if fs.is_live() {
        let fs: Arc<dyn HostFs> = Arc::new(fs);
        let netns: Arc<dyn NetnsProbe> = Arc::new(LiveNetns);
        let vfnet: Arc<dyn VfNet> = Arc::new(NetlinkVfNet::default());
        TopologyReader::new(fs, netns, Some(vfnet)).with_pod_resources(Arc::new(Kubelet::default()))
    } else {
        let fs: Arc<dyn HostFs> = Arc::new(fs);
        let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
        TopologyReader::new(fs, netns, None)
    }
}

/// Namespace control (evicting a VF from a container's namespace) for the live host (`/`);
/// none for a tree (`--root DIR`), whose namespaces are files: evictions answer `EOPNOTSUPP`.
pub fn netns_control(root: &Path) -> Arc<dyn NetnsControl> {
    if FsRoot::new(root).is_live() {
        Arc::new(LiveNetnsControl)
    } else {
        Arc::new(NoNetnsControl)
    }
}
