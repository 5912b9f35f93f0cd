//! Controlling the VMs that hold functions (libvirt underneath on a real host).

use std::io;

use vfguard_model::Bdf;

/// Detaches functions from, and pauses, VMs.
pub trait VmControl: Send + Sync {
    /// Hot-unplugs PCI function `bdf` from the running domain `domain`.
    fn detach(&self, domain: &str, bdf: Bdf) -> io::Result<()>;
    /// Suspends the domain's vCPUs.
    fn pause(&self, domain: &str) -> io::Result<()>;
}

/// No VM control configured: every call answers `EOPNOTSUPP`, so policy steps elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVmControl;

impl VmControl for NoVmControl {
    fn detach(&self, _: &str, _: Bdf) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
    fn pause(&self, _: &str) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
}
