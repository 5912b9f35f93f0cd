//! Wiring: the one place that chooses between the live host and a tree under `--root`.

use std::path::Path;
use std::sync::Arc;

use vfguard_host::linux::{LiveNetns, LiveNetnsControl, NetlinkVfNet};
use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsControl, NetnsProbe, NoNetnsControl, VfNet};
use vfguard_topology::TopologyReader;

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
