//! Taking a function away from the network namespace that holds it: a container or pod whose
//! namespace holds a VF's netdev.
//!
//! # Design
//! Detaching a function from its tenant means, for a VM, hot-unplugging it through libvirt
//! ([`crate::VmControl`]); for a network-namespace owner it means evicting the VF's netdev:
//! moving it back into the host's namespace and leaving it administratively down, so the pod
//! loses the VF while the VF itself (and its PF's other tenants) stay as they were. The Linux
//! implementation is [`crate::linux::LiveNetnsControl`]; the simulator has its own.

use std::io;

use vfguard_model::{Bdf, Owner};

/// Evicts functions from the network namespaces that hold them.
pub trait NetnsControl: Send + Sync {
    /// Moves the netdev of PCI function `function` out of the namespace of `owner` (a
    /// [`vfguard_model::OwnerKind::Netns`] owner: its `pid`, else its `name` under `/run/netns`)
    /// into the host's namespace, administratively down. Errors keep the errno: `ENOENT` when
    /// that namespace holds no link of that function, `EPERM` without `CAP_NET_ADMIN`...
    fn evict(&self, owner: &Owner, function: Bdf) -> io::Result<()>;
}

/// No namespace control configured: every call answers `EOPNOTSUPP`, so policy steps elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNetnsControl;

impl NetnsControl for NoNetnsControl {
    fn evict(&self, _: &Owner, _: Bdf) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
}
