//! Wiring: the host handles the loop uses ([`AgentHost`]), on the live host, on a tree under
//! `--root`, or on the simulated host; the one place that chooses between them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use vfguard_act::{Actuator, Notifier};
use vfguard_host::linux::{
    open_kmsg, LiveNetns, LiveNetnsControl, NetlinkVfControl, NetlinkVfNet, Virsh,
};
use vfguard_host::{
    FsNetns, FsRoot, HostFs, KmsgDevice, NetnsControl, NetnsProbe, NoNetnsControl, VfNet,
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
}

impl AgentHost {
    /// Every handle on the simulated host, notifications going to `notifier`.
    pub fn simulated(sim: &vfguard_sim::SimHost, notifier: Arc<dyn Notifier>) -> AgentHost {
        AgentHost {
            kmsg: sim.kmsg(),
            topology: sim.topology_reader(),
            vfnet: sim.vfnet(),
            fs: sim.fs(),
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
        let vfnet: Arc<dyn VfNet> = Arc::new(NetlinkVfNet);
        Ok(AgentHost {
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

/// A topology reader for the live host (`/`) or a tree (`--root DIR`).
pub fn topology_reader(root: &Path) -> TopologyReader {
    let fs = FsRoot::new(root);
    if fs.is_live() {
        let fs: Arc<dyn HostFs> = Arc::new(fs);
        let netns: Arc<dyn NetnsProbe> = Arc::new(LiveNetns);
        let vfnet: Arc<dyn VfNet> = Arc::new(NetlinkVfNet);
        TopologyReader::new(fs, netns, Some(vfnet))
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
