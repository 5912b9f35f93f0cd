//! Changing a VF through its PF: the knobs remediation turns.

use std::io;

use vfguard_model::{VfChange, VfIndex};

/// Applies VF changes (`RTM_SETLINK` on the PF with one `IFLA_VF_INFO`). Errors keep the
/// kernel's errno (`EOPNOTSUPP` from a driver without that knob, `EBUSY`...) so that policy can
/// step to another rung.
pub trait VfControl: Send + Sync {
    /// Applies one change to VF `vf` of the PF whose netdev is `pf_netdev`.
    fn set_vf(&self, pf_netdev: &str, vf: VfIndex, change: &VfChange) -> io::Result<()>;
}
