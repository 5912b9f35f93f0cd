//! Rounds and tenant-seconds disturbed to localize `d` culprits among 64 VFs (issue 15 item 3),
//! against the baseline of gating one VF at a time (in the passive record's order, stopping at
//! the last culprit): 1000 searches per row, culprits placed at random, each faulting at a
//! random 10 to 40 faults per 10 s window with Poisson noise; throttling stops them.
//!
//! ```sh
//! cargo bench -p vfguard-localize --bench rounds
//! ```

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;

use vfguard_localize::oracle::SimulatedPf;
use vfguard_localize::{Localizer, ProbeConfig, Verdict};

const N: u16 = 64;
const TRIALS: u64 = 1000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn log2_binomial(n: u64, d: u64) -> f64 {
    (0..d)
        .map(|i| ((n - i) as f64 / (i + 1) as f64).log2())
        .sum()
}

fn main() {
    println!("| z | culprits | ⌈log2 C(64,d)⌉+d | rounds: mean | rounds: max | found exactly | at least one | innocent named | tenant-seconds: mean | one at a time: rounds | one at a time: tenant-seconds |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // The library's default deviations (2), and the engine's (3: docs/localize.md).
    for z in [2.0, 3.0] {
        let cfg = ProbeConfig {
            z,
            ..ProbeConfig::default()
        };
        rows(&cfg);
    }
}

fn rows(cfg: &ProbeConfig) {
    let window_s = cfg.window_ms as f64 / 1000.0;
    for d in 1..=3u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ d);
        let (mut rounds, mut max_rounds, mut exact, mut tenant_s) = (0u64, 0u32, 0u64, 0.0);
        let (mut some, mut innocent) = (0u64, 0u64);
        let (mut naive_rounds, mut naive_s) = (0u64, 0.0);
        for trial in 0..TRIALS {
            let mut culprits = BTreeMap::new();
            while (culprits.len() as u64) < d {
                let vf = u16::try_from(rng.next() % u64::from(N)).unwrap();
                culprits.insert(vf, 10.0 + (rng.next() % 31) as f64);
            }
            let mut pf = SimulatedPf::new(culprits.clone(), 1.0, trial + 1);
            let mut l = Localizer::new((0..N).collect(), Vec::new(), usize::from(N), cfg.clone());
            let verdict = loop {
                match l.step() {
                    Verdict::Probe(p) => {
                        let o = pf.run(&p);
                        l.observe(o);
                    }
                    v => break v,
                }
            };
            if let Verdict::Found {
                culprits: found, ..
            } = &verdict
            {
                let found: Vec<u16> = found.iter().map(|(k, _)| *k).collect();
                if found == culprits.keys().copied().collect::<Vec<_>>() {
                    exact += 1;
                }
                some += u64::from(found.iter().any(|k| culprits.contains_key(k)));
                innocent += u64::from(found.iter().any(|k| !culprits.contains_key(k)));
            }
            rounds += u64::from(l.rounds());
            max_rounds = max_rounds.max(l.rounds());
            tenant_s += l.tenant_ms() as f64 / 1000.0;
            // One at a time: rounds up to the last culprit, one tenant per round.
            let last = u64::from(*culprits.keys().last().unwrap()) + 1;
            naive_rounds += last;
            naive_s += last as f64 * window_s;
        }
        let t = TRIALS as f64;
        println!(
            "| {} | {d} | {} | {:.2} | {max_rounds} | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.1} | {:.0} |",
            cfg.z,
            log2_binomial(u64::from(N), d).ceil() as u64 + d,
            rounds as f64 / t,
            exact as f64 * 100.0 / t,
            some as f64 * 100.0 / t,
            innocent as f64 * 100.0 / t,
            tenant_s / t,
            naive_rounds as f64 / t,
            naive_s / t
        );
    }
}
