//! Active localization by group testing: each round gates a set of suspects for a probe window
//! and compares the fault rate with the rate before.
//!
//! The search keeps a stack of sub-searches, each a set of suspects and the share of the fault
//! rate it accounts for (1 at the start). A round gates part of one set (half of it, or fewer
//! when the cap on tenants gated at once says so) and measures the share the rate fell by:
//!
//! - about nothing of the set's share: the gated VFs are cleared (never touched again);
//! - about all of it: the rest of the set is cleared, the search goes on in the gated part;
//! - part of it: culprits on both sides; two sub-searches, each with its share.
//!
//! "About" is statistical: fault counts are Poisson, so a fall counts only when it is `z`
//! standard deviations away from the alternative; a round that cannot tell is repeated with a
//! window twice as long.
//!
//! A set of one is a candidate. When no search is left, each candidate is confirmed on its own:
//! gated alone, the rate must fall significantly (`z_confirm` deviations) and by at least half
//! the share its search found for it. A candidate that fails is not named (noise
//! can fake a split; an innocent tenant is never named for it). If no candidate holds and the
//! gate was the throttle, the throttle did not stop the culprit's faults: the search starts
//! again with the link-state gate. Otherwise the result is inconclusive, with what is known.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How a VF is gated for a probe. Never trust or MAC changes: they reset the VF and wipe the
/// PF's MDD counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum Gate {
    /// `max_tx_rate` lowered (the tenant keeps its link, slowly).
    Throttle {
        /// The rate, Mbit/s.
        max_tx_mbps: u32,
    },
    /// The VF's link disabled (the tenant is offline for the window).
    LinkDown,
}

/// How the search probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// The largest share of the PF's tenants gated at once (0.5: half).
    pub max_share: f64,
    /// How long a gate stays on to measure the rate, ms.
    pub window_ms: u64,
    /// When a gate is reverted whatever happens (the agent died): ms after it was set.
    pub ttl_ms: u64,
    /// The throttle's rate, Mbit/s.
    pub throttle_mbps: u32,
    /// How many standard deviations a difference of fault counts must reach to count (counts
    /// are Poisson: the deviation of a count `c` is `sqrt(c)`).
    pub z: f64,
    /// The same, for confirming a candidate on its own: stricter, since naming an innocent
    /// tenant is the error that must not happen.
    pub z_confirm: f64,
    /// How many windows (each as long as the probe's) the rate "before" is averaged over: its
    /// noise shrinks accordingly.
    pub baseline_windows: u32,
    /// A round whose counts cannot tell "none" from "all" is repeated with a window twice as
    /// long, at most this many times.
    pub max_repeats: u32,
    /// Give up after this many rounds.
    pub max_rounds: u32,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            max_share: 0.5,
            window_ms: 10_000,
            ttl_ms: 30_000,
            throttle_mbps: 10,
            z: 2.0,
            z_confirm: 4.0,
            baseline_windows: 3,
            max_repeats: 3,
            max_rounds: 40,
        }
    }
}

/// One round's gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe<K> {
    /// Its number, from 1.
    pub round: u32,
    /// The VFs to gate.
    pub gated: Vec<K>,
    /// How.
    pub gate: Gate,
    /// For how long, ms.
    pub window_ms: u64,
    /// Reverted after this whatever happens, ms.
    pub ttl_ms: u64,
    /// Whether it confirms the culprits found.
    pub confirmation: bool,
}

/// What a round measured: the faults of the gate's window, and the faults per window of the
/// same length just before it (averaged over `baseline_windows` such windows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Faults per window (of the probe's length) before the gate, averaged.
    pub before: f64,
    /// Faults in the window the gate was on.
    pub during: f64,
    /// How much more the counts scatter than Poisson counts would (variance over mean of the
    /// baseline's windows, at least 1): faults that come in bursts (a PF-wide counter read
    /// every 2 s) are less sure than their number says, so every deviation is widened by its
    /// square root.
    pub dispersion: f64,
}

impl Outcome {
    /// Counts that scatter as Poisson counts do.
    pub fn poisson(before: f64, during: f64) -> Outcome {
        Outcome {
            before,
            during,
            dispersion: 1.0,
        }
    }
}

/// Where the search stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<K> {
    /// Carry out this probe, then [`Localizer::observe`] its outcome.
    Probe(Probe<K>),
    /// The culprits, confirmed, each with the share of the fault rate it accounted for.
    Found {
        /// The culprits.
        culprits: Vec<(K, f64)>,
        /// Rounds used (the confirmation included).
        rounds: u32,
        /// The share of the rate the culprits did not explain (noise, or culprits among the
        /// excluded).
        unexplained: f64,
    },
    /// No answer: why, and the suspects still standing.
    Inconclusive {
        /// Why.
        reason: String,
        /// The suspects not cleared (excluded ones included).
        suspects: Vec<K>,
        /// Rounds used.
        rounds: u32,
    },
    /// The faults stopped on their own before or during a round: nothing to localize.
    Quiet {
        /// Rounds used.
        rounds: u32,
    },
}

#[derive(Debug, Clone)]
struct Search<K> {
    set: Vec<K>,
    share: f64,
}

#[derive(Debug, Clone)]
enum Pending<K> {
    Test { gated: Vec<K> },
    Confirm { candidate: K, share: f64 },
}

/// `share` (clamped to 0..=1) of `n`, rounded down.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0 <= result <= n
fn share_of(n: usize, share: f64) -> usize {
    (share.clamp(0.0, 1.0) * n as f64).floor() as usize
}

/// One PF's search.
#[derive(Debug, Clone)]
pub struct Localizer<K> {
    cfg: ProbeConfig,
    cap: usize,
    initial: Vec<K>,
    excluded: Vec<K>,
    work: Vec<Search<K>>,
    /// Candidates (a set of one), not yet confirmed.
    candidates: Vec<(K, f64)>,
    /// Culprits confirmed, with their share.
    found: Vec<(K, f64)>,
    /// The share of the rate the confirmed culprits' rounds stopped.
    confirmed_fall: f64,
    cleared: BTreeSet<K>,
    gate: Gate,
    round: u32,
    /// Repeats of the current round (window doubled each time).
    repeats: u32,
    pending: Option<(Pending<K>, Probe<K>)>,
    done: Option<Verdict<K>>,
    tenant_ms: u64,
    escalated: bool,
}

impl<K: Ord + Clone> Localizer<K> {
    /// A search among `suspects` (best first: the passive record's order), never gating
    /// `excluded`, on a PF with `tenants` tenants (the cap on how many are gated at once is a
    /// share of them).
    pub fn new(
        suspects: Vec<K>,
        excluded: Vec<K>,
        tenants: usize,
        cfg: ProbeConfig,
    ) -> Localizer<K> {
        let excluded_set: BTreeSet<&K> = excluded.iter().collect();
        let probeable: Vec<K> = suspects
            .into_iter()
            .filter(|k| !excluded_set.contains(k))
            .collect();
        let cap = share_of(tenants, cfg.max_share).max(1);
        let gate = Gate::Throttle {
            max_tx_mbps: cfg.throttle_mbps,
        };
        Localizer {
            work: vec![Search {
                set: probeable.clone(),
                share: 1.0,
            }],
            initial: probeable,
            excluded,
            cfg,
            cap,
            candidates: Vec::new(),
            found: Vec::new(),
            confirmed_fall: 0.0,
            cleared: BTreeSet::new(),
            gate,
            round: 0,
            repeats: 0,
            pending: None,
            done: None,
            tenant_ms: 0,
            escalated: false,
        }
    }

    /// Rounds so far.
    pub fn rounds(&self) -> u32 {
        self.round
    }

    /// Tenant-milliseconds disturbed so far: for each round, the VFs gated times its window.
    pub fn tenant_ms(&self) -> u64 {
        self.tenant_ms
    }

    /// The VFs cleared so far (never gated again).
    pub fn cleared(&self) -> &BTreeSet<K> {
        &self.cleared
    }

    /// The next thing to do: a probe (the same one until its outcome is observed) or the end.
    pub fn step(&mut self) -> Verdict<K> {
        if let Some(v) = &self.done {
            return v.clone();
        }
        if let Some((_, p)) = &self.pending {
            return Verdict::Probe(p.clone());
        }
        if self.round >= self.cfg.max_rounds {
            return self
                .finish_inconclusive(format!("no answer within {} rounds", self.cfg.max_rounds));
        }
        while let Some(top) = self.work.last() {
            match top.set.len() {
                0 => {
                    self.work.pop();
                }
                1 => {
                    if let Some(s) = self.work.pop() {
                        if let Some(k) = s.set.into_iter().next() {
                            self.candidates.push((k, s.share));
                        }
                    }
                }
                n => {
                    let take = n.div_ceil(2).min(self.cap);
                    let gated: Vec<K> = top.set.iter().take(take).cloned().collect();
                    return self.probe(
                        Pending::Test {
                            gated: gated.clone(),
                        },
                        gated,
                        false,
                    );
                }
            }
        }
        if let Some((candidate, share)) = self.candidates.first().cloned() {
            return self.probe(
                Pending::Confirm {
                    candidate: candidate.clone(),
                    share,
                },
                vec![candidate],
                true,
            );
        }
        if !self.found.is_empty() {
            let v = Verdict::Found {
                culprits: std::mem::take(&mut self.found),
                rounds: self.round,
                unexplained: (1.0 - self.confirmed_fall).clamp(0.0, 1.0),
            };
            self.done = Some(v.clone());
            return v;
        }
        if !self.escalated && matches!(self.gate, Gate::Throttle { .. }) && self.round > 0 {
            // No candidate held under the throttle: it may not stop the culprit's faults.
            // Nothing it cleared is cleared. Again, with the link-state gate.
            self.escalated = true;
            self.gate = Gate::LinkDown;
            self.cleared.clear();
            self.work = vec![Search {
                set: self.initial.clone(),
                share: 1.0,
            }];
            return self.step();
        }
        self.finish_inconclusive(
            "no suspect held: the culprit is among the excluded VFs, the faults do not come from a VF, or they are too few to tell"
                .into(),
        )
    }

    fn probe(&mut self, p: Pending<K>, gated: Vec<K>, confirmation: bool) -> Verdict<K> {
        self.round += 1;
        let probe = Probe {
            round: self.round,
            gated,
            gate: self.gate,
            window_ms: self.cfg.window_ms << self.repeats.min(8),
            ttl_ms: self.cfg.ttl_ms,
            confirmation,
        };
        self.pending = Some((p, probe.clone()));
        Verdict::Probe(probe)
    }

    fn finish_inconclusive(&mut self, reason: String) -> Verdict<K> {
        let mut suspects: Vec<K> = self
            .initial
            .iter()
            .filter(|k| !self.cleared.contains(k))
            .cloned()
            .collect();
        suspects.extend(self.excluded.iter().cloned());
        let v = Verdict::Inconclusive {
            reason,
            suspects,
            rounds: self.round,
        };
        self.done = Some(v.clone());
        v
    }

    /// The outcome of the probe [`Localizer::step`] gave.
    pub fn observe(&mut self, outcome: Outcome) {
        let Some((pending, probe)) = self.pending.take() else {
            return;
        };
        self.tenant_ms = self
            .tenant_ms
            .saturating_add(probe.gated.len() as u64 * probe.window_ms);
        let before = outcome.before.max(0.0);
        let during = outcome.during.max(0.0);
        if before <= 0.0 && during <= 0.0 {
            self.done = Some(Verdict::Quiet { rounds: self.round });
            return;
        }
        let fell = before - during;
        // The deviation of the difference: Poisson counts, the baseline averaged over
        // `baseline_windows` windows as long as the probe's.
        let spread = if outcome.dispersion.is_finite() {
            outcome.dispersion.max(1.0)
        } else {
            1.0
        };
        let sigma =
            (spread * (before / f64::from(self.cfg.baseline_windows.max(1)) + during)).sqrt();
        let z = self.cfg.z * sigma.max(1.0);
        match pending {
            Pending::Test { gated } => self.tested(&gated, before, fell, z, probe),
            Pending::Confirm { candidate, share } => {
                // Gated alone, it must stop a significant part of the faults (`z_confirm`
                // deviations), and at least half of the share its search found for it. A fall
                // of that size that is not yet significant is measured again, longer.
                let strict = self.cfg.z_confirm * sigma.max(1.0);
                let consistent = fell >= 0.5 * share * before;
                if consistent && fell <= strict && self.repeats < self.cfg.max_repeats {
                    self.repeats += 1;
                    self.round += 1;
                    let again = Probe {
                        round: self.round,
                        window_ms: self.cfg.window_ms << self.repeats,
                        ..probe
                    };
                    self.pending = Some((Pending::Confirm { candidate, share }, again));
                    return;
                }
                self.candidates.retain(|(k, _)| *k != candidate);
                if consistent && fell > strict {
                    self.confirmed_fall += (fell / before).clamp(0.0, 1.0);
                    self.found.push((candidate, share));
                }
                // Otherwise not confirmed: never named; it stays uncleared.
                self.repeats = 0;
            }
        }
    }

    fn tested(&mut self, gated: &[K], before: f64, fell: f64, z: f64, probe: Probe<K>) {
        let Some(search) = self.work.last() else {
            return;
        };
        let expected_all = search.share * before;
        let mut none = fell < z;
        let mut all = expected_all - fell < z;
        if none && all {
            // Too few faults to tell: the same gate again, in a round of its own over a
            // window twice as long.
            if self.repeats < self.cfg.max_repeats {
                self.repeats += 1;
                self.round += 1;
                let again = Probe {
                    round: self.round,
                    window_ms: self.cfg.window_ms << self.repeats,
                    ..probe
                };
                self.pending = Some((
                    Pending::Test {
                        gated: gated.to_vec(),
                    },
                    again,
                ));
                return;
            }
        }
        if none && all {
            // Still too few to tell after the repeats: the nearer of the two.
            none = fell < expected_all - fell;
            all = !none;
        }
        self.repeats = 0;
        let Some(search) = self.work.pop() else {
            return;
        };
        let gated_set: BTreeSet<&K> = gated.iter().collect();
        let (inside, outside): (Vec<K>, Vec<K>) =
            search.set.into_iter().partition(|k| gated_set.contains(k));
        if none {
            self.cleared.extend(inside);
            self.work.push(Search {
                set: outside,
                share: search.share,
            });
        } else if all {
            self.cleared.extend(outside);
            self.work.push(Search {
                set: inside,
                share: search.share,
            });
        } else {
            let part = (fell / before).clamp(0.0, search.share);
            self.work.push(Search {
                set: outside,
                share: search.share - part,
            });
            self.work.push(Search {
                set: inside,
                share: part,
            });
        }
    }
}
