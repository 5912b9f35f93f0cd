//! The Linux implementations of the host traits. Thin: translation only, no policy.

pub mod devlink;
pub mod ethtool;
pub mod fdlimit;
pub mod kmsg;
pub mod netlink;
pub mod netns;
pub mod podresources;
mod process;
pub mod virsh;

pub use devlink::LinuxGenl;
pub use fdlimit::{fd_limits, raise_fd_limit, FdLimit};
pub use kmsg::{monotonic_us, open_kmsg, DevKmsg, KmsgStream};
pub use netlink::{NetlinkVfControl, NetlinkVfNet, Rtnl};
pub use netns::{evicted_name, LiveNetns, LiveNetnsControl};
pub use podresources::Kubelet;
pub use virsh::Virsh;
