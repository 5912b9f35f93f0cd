//! The host behind small traits.
//!
//! Everything that touches the machine sits behind a trait named after the domain, with a Linux
//! implementation in [`linux`] and a simulated one in `vfguard-sim`. The traits use only
//! `vfguard-model` types and `std::io`.
//!
//! - [`fs::HostFs`]: sysfs, procfs and /run under a root (`--root DIR`).
//! - [`devlink::GenlLink`]: generic netlink requests and notifications (devlink health).
//! - [`kmsg::KmsgDevice`]: a source of `/dev/kmsg`-format records.
//! - [`netns::NetnsProbe`]: network namespaces and the PCI functions of their links.
//! - [`netnsctl::NetnsControl`]: evicting a VF's netdev from a container's namespace.
//! - [`vfnet::VfNet`]: a PF's VF table over rtnetlink.
//! - [`vfctl::VfControl`]: changing a VF through its PF.
//! - [`vmctl::VmControl`]: detaching functions from VMs, pausing VMs.

pub mod devlink;
pub mod fs;
pub mod kmsg;
pub mod linux;
pub mod netns;
pub mod netnsctl;
pub mod podres;
pub mod vfctl;
pub mod vfnet;
pub mod vmctl;

pub use devlink::GenlLink;
pub use fs::{FsRoot, HostFs};
pub use kmsg::{KmsgDevice, KmsgRead, KmsgSeek};
pub use netns::{FsNetns, NetnsLink, NetnsProbe, NetnsView};
pub use netnsctl::{NetnsControl, NoNetnsControl};
pub use podres::{PodAllocation, PodResources};
pub use vfctl::VfControl;
pub use vfnet::VfNet;
pub use vmctl::{NoVmControl, VmControl};
