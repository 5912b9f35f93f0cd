//! A simulated PF for tests, benchmarks and the simulator: culprits with fault rates, a gate's
//! effect on them, and Poisson noise from a seeded generator, so that a search can be run
//! against a known answer.

use std::collections::BTreeMap;

use crate::group::{Gate, Outcome, Probe};

/// A PF whose culprits fault at known rates.
#[derive(Debug, Clone)]
pub struct SimulatedPf<K: Ord> {
    /// Each culprit's faults per probe window, ungated.
    pub culprits: BTreeMap<K, f64>,
    /// The share of a culprit's faults a throttle stops (1: all; 0: none).
    pub throttle_stops: f64,
    /// The seed of the noise (0: no noise, expected values exactly).
    rng: u64,
    /// The probe window the rates are per, ms, and the windows "before" is averaged over.
    window_ms: u64,
    baseline_windows: u32,
}

impl<K: Ord + Clone> SimulatedPf<K> {
    /// A PF with these culprits and rates; `seed` 0 for no noise.
    pub fn new(culprits: BTreeMap<K, f64>, throttle_stops: f64, seed: u64) -> SimulatedPf<K> {
        let cfg = crate::group::ProbeConfig::default();
        SimulatedPf {
            culprits,
            throttle_stops: throttle_stops.clamp(0.0, 1.0),
            rng: seed,
            window_ms: cfg.window_ms,
            baseline_windows: cfg.baseline_windows,
        }
    }

    /// What a probe measures: the faults per window of its length before it (averaged over the
    /// baseline's windows), and the faults during its window.
    pub fn run(&mut self, p: &Probe<K>) -> Outcome {
        let scale = p.window_ms as f64 / self.window_ms as f64;
        let rate: f64 = self.culprits.values().sum::<f64>() * scale;
        let windows = self.baseline_windows.max(1);
        let before = (0..windows).map(|_| self.noisy(rate)).sum::<f64>() / f64::from(windows);
        let stops = match p.gate {
            Gate::Throttle { .. } => self.throttle_stops,
            Gate::LinkDown => 1.0,
        };
        let during: f64 = self
            .culprits
            .iter()
            .map(|(k, r)| {
                if p.gated.contains(k) {
                    r * (1.0 - stops)
                } else {
                    *r
                }
            })
            .sum();
        Outcome::poisson(before, self.noisy(during * scale))
    }

    /// A Poisson sample of mean `mean` (Knuth's method; exact value without noise).
    fn noisy(&mut self, mean: f64) -> f64 {
        if self.rng == 0 || mean <= 0.0 {
            return mean;
        }
        if mean > 500.0 {
            // Normal approximation: Knuth's loop underflows for large means.
            let u1 = self.uniform().max(f64::MIN_POSITIVE);
            let u2 = self.uniform();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (mean + z * mean.sqrt()).max(0.0).round();
        }
        let l = (-mean).exp();
        let mut k = 0.0;
        let mut p = 1.0;
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }

    /// xorshift64*: a uniform number in [0, 1).
    fn uniform(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        v as f64 / (1u64 << 53) as f64
    }
}
