//! Passive narrowing: which VFs were active around each fault.
//!
//! For each fault the caller gives the VFs whose counters moved in a window around it (Tx
//! packets or bytes for a spoof or malformed-descriptor fault; mailbox-related counters where a
//! driver has them). A culprit is active around every fault it caused; an innocent tenant is
//! active around some. A VF's score is the share of faults it was active around; the suspects
//! are those within `tolerance` of the best score (counters are sampled, so a culprit may miss
//! a window now and then).

use std::collections::BTreeMap;
use std::hash::Hash;

/// The passive record of one PF's faults that name no VF.
#[derive(Debug, Clone)]
pub struct Passive<K: Ord> {
    /// VFs that could be the culprit (all the PF's VFs with a tenant), each with the number of
    /// fault windows it was active in.
    active: BTreeMap<K, u32>,
    /// Fault windows seen.
    windows: u32,
    /// How far below the best score a VF still counts as a suspect (0.1: a culprit may miss one
    /// window in ten).
    tolerance: f64,
}

impl<K: Ord + Clone + Hash> Passive<K> {
    /// A record over these candidate VFs.
    pub fn new(candidates: impl IntoIterator<Item = K>, tolerance: f64) -> Passive<K> {
        Passive {
            active: candidates.into_iter().map(|k| (k, 0)).collect(),
            windows: 0,
            tolerance: tolerance.clamp(0.0, 1.0),
        }
    }

    /// One fault, and the VFs whose counters moved around it. VFs that are not candidates are
    /// ignored.
    pub fn observe(&mut self, active: &[K]) {
        self.windows += 1;
        for k in active {
            if let Some(n) = self.active.get_mut(k) {
                *n += 1;
            }
        }
    }

    /// Faults seen.
    pub fn windows(&self) -> u32 {
        self.windows
    }

    /// The suspects: the candidates active around (nearly) every fault, best first. Before
    /// any fault, every candidate.
    pub fn suspects(&self) -> Vec<K> {
        if self.windows == 0 {
            return self.active.keys().cloned().collect();
        }
        let best = self.active.values().copied().max().unwrap_or(0);
        let floor = f64::from(best) - self.tolerance * f64::from(self.windows);
        let mut s: Vec<(&K, u32)> = self
            .active
            .iter()
            .filter(|(_, &n)| n > 0 && f64::from(n) >= floor)
            .map(|(k, &n)| (k, n))
            .collect();
        s.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        s.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// How sure the record is that the culprit is among [`Passive::suspects`], and that a single
    /// suspect is it: 0 before any fault; grows with the faults seen (an innocent VF active in
    /// a share `p` of windows stays a suspect after `w` faults with probability about `p^w`)
    /// and shrinks with the number of suspects left.
    pub fn confidence(&self) -> f64 {
        let suspects = self.suspects().len();
        if self.windows == 0 || suspects == 0 {
            return 0.0;
        }
        let evidence = 1.0 - 0.5f64.powf(f64::from(self.windows));
        evidence / suspects as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_culprit_is_active_around_every_fault_and_innocents_drop_out() {
        let mut p = Passive::new(0..8u16, 0.1);
        assert_eq!(p.suspects().len(), 8);
        assert!(p.confidence() == 0.0);
        // VF 5 is the culprit; the others are busy now and then.
        let windows: [&[u16]; 5] = [&[5, 1, 2], &[5, 2, 3], &[5, 1], &[5, 7], &[5, 2]];
        let mut last = 8;
        for w in windows {
            p.observe(w);
            assert!(p.suspects().len() <= last);
            last = p.suspects().len();
        }
        assert_eq!(p.suspects(), [5]);
        assert!(p.confidence() > 0.9, "{}", p.confidence());
    }

    #[test]
    fn a_culprit_that_misses_a_window_stays_a_suspect() {
        let mut p = Passive::new(0..4u16, 0.2);
        for i in 0..10 {
            if i == 3 {
                p.observe(&[1]);
            } else {
                p.observe(&[2, if i % 2 == 0 { 1 } else { 3 }]);
            }
        }
        assert_eq!(p.suspects()[0], 2);
    }
}
