//! Spoofed frames a NIC drops without a word: mlx5 (ConnectX) prints nothing on the host when
//! its eswitch's anti-spoof check drops a VF's frames (legacy mode and switchdev alike), but the
//! VF's `tx_dropped` counter (rtnetlink `IFLA_VF_STATS_TX_DROPPED`) grows. Sans-IO: the agent
//! gives each VF's sampled counters; a growth becomes a `spoof` event on that VF.
//!
//! Only for drivers whose VF `tx_dropped` counts exactly those drops ([`SPOOF_BY_DROPS`]): on
//! Intel PFs the kernel says so in its log, and their counters are evidence only (the engine's
//! correlation).

use std::collections::{BTreeMap, HashMap};

use vfguard_model::{
    Bdf, FaultEvent, FaultKind, LogFormat, Severity, TrustBasis, VfIndex, VfStats,
};

/// Drivers whose VFs' `tx_dropped` is the per-VF spoof signal.
pub const SPOOF_BY_DROPS: &[&str] = &["mlx5_core"];

/// The catalog id of such an event.
pub const CATALOG_ID: &str = "counters.mlx5.vf_tx_dropped";

/// The last `tx_dropped` of each VF, to see it grow.
#[derive(Debug, Default)]
pub struct DropWatch {
    last: HashMap<(Bdf, VfIndex), u64>,
}

impl DropWatch {
    /// A watch with no baseline yet.
    pub fn new() -> DropWatch {
        DropWatch::default()
    }

    /// One VF's counters, sampled: a `spoof` event on it when its `tx_dropped` grew since the
    /// last sample (the first sample is the baseline; a counter that went back, after a VF
    /// reset, is a new baseline).
    pub fn observe(
        &mut self,
        pf: Bdf,
        driver: Option<&str>,
        vf: VfIndex,
        stats: &VfStats,
    ) -> Option<FaultEvent> {
        if !driver.is_some_and(|d| SPOOF_BY_DROPS.contains(&d)) {
            return None;
        }
        let before = self.last.insert((pf, vf), stats.tx_dropped)?;
        let grew = stats.tx_dropped.checked_sub(before).filter(|n| *n > 0)?;
        let mut details = BTreeMap::new();
        details.insert("source".to_owned(), "vf_counters".to_owned());
        details.insert("tx_dropped".to_owned(), stats.tx_dropped.to_string());
        Some(FaultEvent {
            line: 0,
            end_line: 0,
            kind: FaultKind::Spoof,
            severity: Severity::Warning,
            driver: driver.map(str::to_owned),
            device: Some(pf),
            netdev: None,
            pf: Some(pf),
            vf: Some(vf),
            vf_abs: None,
            function: None,
            queue: None,
            count: Some(grew),
            mac: None,
            catalog_id: CATALOG_ID.to_owned(),
            message: format!(
                "VF {} dropped {grew} transmitted frame(s) (anti-spoof or VLAN filter; mlx5 prints nothing)",
                vf.0
            ),
            // Counters read from the kernel over rtnetlink: no tenant writes them.
            trusted: true,
            trust: TrustBasis::KernelRecord,
            format: LogFormat::Bare,
            timestamp: None,
            seq: None,
            details,
            owner: None,
            repeats: 0,
            victim: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(tx_dropped: u64) -> VfStats {
        VfStats {
            tx_dropped,
            ..VfStats::default()
        }
    }

    #[test]
    fn a_growth_of_an_mlx5_vfs_tx_dropped_is_a_spoof_event_on_it() {
        let pf: Bdf = "0000:18:00.0".parse().unwrap();
        let mut w = DropWatch::new();
        let mlx5 = Some("mlx5_core");
        assert!(
            w.observe(pf, mlx5, VfIndex(2), &stats(100)).is_none(),
            "baseline"
        );
        assert!(
            w.observe(pf, mlx5, VfIndex(2), &stats(100)).is_none(),
            "no growth"
        );
        let e = w.observe(pf, mlx5, VfIndex(2), &stats(116)).unwrap();
        assert_eq!(
            (e.kind, e.pf, e.vf, e.count),
            (FaultKind::Spoof, Some(pf), Some(VfIndex(2)), Some(16))
        );
        assert!(e.is_fault());
        // A VF reset zeroes the counter: a new baseline, not a negative growth.
        assert!(w.observe(pf, mlx5, VfIndex(2), &stats(0)).is_none());
        assert_eq!(
            w.observe(pf, mlx5, VfIndex(2), &stats(3)).map(|e| e.count),
            Some(Some(3))
        );
        // Intel VFs' drops are evidence only.
        let mut w = DropWatch::new();
        for n in [0, 50, 900] {
            assert!(w.observe(pf, Some("i40e"), VfIndex(1), &stats(n)).is_none());
        }
    }
}
