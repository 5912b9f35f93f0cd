//! VF state as the PF reports it (rtnetlink `IFLA_VFINFO_LIST`).

use std::io;

use vfguard_model::VfState;

/// Reads the VF table of a PF. One request per PF, never one per VF: a dump with VF info costs
/// 1-2 ms per VF on large PFs.
pub trait VfNet: Send + Sync {
    /// The VFs of the PF whose netdev is `pf_netdev`, in index order; empty for a link without
    /// VFs.
    fn vf_states(&self, pf_netdev: &str) -> io::Result<Vec<VfState>>;

    /// The adapter's firmware version as the PF's driver reports it (ethtool's driver info);
    /// `None` when the driver reports none. Hosts that cannot ask say `None`.
    fn firmware(&self, pf_netdev: &str) -> io::Result<Option<String>> {
        let _ = pf_netdev;
        Ok(None)
    }
}
