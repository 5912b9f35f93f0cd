//! Correlation over time: per-VF counters sampled around PF-level faults that name no VF
//! (evidence only: they never blame a tenant on their own).

use vfguard_model::{Bdf, FaultKind, Millis, VfIndex, VfStats};

use crate::attribute::{Attributed, Key};

use super::Engine;

impl Engine {
    /// A VF's counters were sampled: remember when its `tx_dropped` last moved, and by how much.
    pub(super) fn sampled(&mut self, pf: Bdf, vf: VfIndex, stats: &VfStats, now: Millis) {
        let entry = self.stats.entry((pf, vf)).or_insert((*stats, None));
        let moved = stats.tx_dropped.saturating_sub(entry.0.tx_dropped);
        if moved > 0 {
            entry.1 = Some((now, moved));
        }
        entry.0 = *stats;
        self.localize_sampled(pf, vf, stats, now);
    }

    /// For a PF-level spoof line: which VFs' dropped counters moved lately (evidence only).
    pub(super) fn correlation(&self, a: &Attributed, now: Millis) -> Option<String> {
        let Key::PfLevel(pf) = a.key else { return None };
        if a.event.kind != FaultKind::Spoof {
            return None;
        }
        let mut moved: Vec<String> = self
            .stats
            .iter()
            .filter(|((p, _), (_, m))| *p == pf && m.is_some_and(|(at, _)| at + 5_000 >= now))
            .map(|((_, vf), (_, m))| {
                format!("vf {} (+{} tx_dropped)", vf.0, m.map_or(0, |(_, n)| n))
            })
            .collect();
        moved.sort();
        (!moved.is_empty()).then(|| {
            format!(
                "VFs whose dropped counters moved in the last 5 s: {} (evidence only)",
                moved.join(", ")
            )
        })
    }
}
