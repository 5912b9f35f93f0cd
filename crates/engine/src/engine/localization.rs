//! Localizing PF-level faults that name no VF (docs/localize.md): passive narrowing from the
//! VFs' Tx counters around each fault, then, when the policy allows it, group testing with
//! journalled, reverted gates ([`vfguard_localize`] decides; this module carries a search out).
//!
//! A search's round gates some suspects (a `max_tx_rate` throttle, else the link) for a
//! window, takes the gates off, and counts the PF's faults from `lag` after the gates went on
//! to `lag` after they came off (the driver reports late: ixgbe reads its spoof counter every
//! 2 s). The rate "before" is the newest ungated windows before the round. Between rounds one
//! ungated window passes, so each baseline is fresh. A round that overran its time to live
//! (the agent was down) is taken off and measured again; a gate that fails ends the search.
//! The culprits found get incidents of their own (method `localized`), and the PF's faults
//! that follow are filed on them too, so the ladder climbs for them.

use std::collections::{BTreeMap, VecDeque};

use vfguard_localize::{Gate, Localizer, Outcome, Passive, Probe, Verdict};
use vfguard_model::{
    Action, ActionId, ActionKind, ActionOutcome, Bdf, Decision, Errno, FaultKind, IncidentId,
    Millis, Mode, OwnerKind, RuleRef, Topology, VfChange, VfIndex, VfLinkState, VfState,
};

use crate::attribute::{Attributed, Key, Method};
use crate::incident::Evidence;

use super::lifecycle::ACTION_BACKSTOP;
use super::Engine;

/// The kinds of PF-level fault a VF's Tx may cause, which a gate on its Tx (a throttle, its
/// link) stops, and which its Tx counters tell about: spoofed frames, hangs from malformed
/// descriptors. A VF's mailbox requests (igb's "Unhandled Msg", MAC and VLAN overrides,
/// i40e's MAC limit) go on whatever its rate or link, and no per-VF counter shows them: no
/// gate can test them, so they are left to the sequence attribution (docs/localize.md).
const LOCALIZABLE: &[FaultKind] = &[FaultKind::Spoof, FaultKind::TxHang];

/// Faults kept per PF (a bound on memory under a flood; the baselines need minutes of them).
const HISTORY_CAP: usize = 100_000;

/// How sure a culprit confirmed alone under the gate is (it stopped a significant share of the
/// PF's faults at `z_confirm` deviations).
const CONFIRMED: f64 = 0.9;

/// A failed revert is tried again this many times (a tenant must never stay throttled).
const REVERT_ATTEMPTS: u32 = 3;

/// Windows looked back for an ungated baseline.
const LOOK_BACK: u64 = 64;

/// One gate of a round.
#[derive(Debug, Clone)]
struct GateRec {
    vf: VfIndex,
    set: ActionId,
    /// `None` until the actuator reports; `Ok(state before)` or the error.
    result: Option<Result<Option<VfState>, Errno>>,
}

/// A round in progress.
#[derive(Debug, Clone)]
struct Round {
    probe: Probe<u16>,
    set_at: Millis,
    gates: Vec<GateRec>,
    reverted_at: Option<Millis>,
}

/// A revert decided and not yet reported as done.
#[derive(Debug, Clone)]
pub(super) struct Revert {
    pf: Bdf,
    vf: VfIndex,
    change: VfChange,
    round: u32,
    attempt: u32,
    at: Millis,
}

/// One PF's localization.
#[derive(Debug, Clone)]
pub(super) struct Search {
    incident: IncidentId,
    first_fault: Millis,
    /// Faults (when, weight: spoofed packets for a spoof count, else records).
    faults: VecDeque<(Millis, u64)>,
    /// When gates were on, plus the driver's lag: never a baseline.
    disturbed: Vec<(Millis, Millis)>,
    passive: Passive<u16>,
    last: Attributed,
    localizer: Option<Localizer<u16>>,
    round: Option<Round>,
    rest_until: Millis,
    culprits: Vec<Bdf>,
    /// Each VF's `tx_packets` as last sampled since the search began, and when it last moved.
    /// Only samples seen while the search exists count: exactly those the journal keeps
    /// ([`Engine::matters`]), so a replay sees the same movements.
    tx: BTreeMap<u16, (u64, Option<Millis>)>,
    /// Tenant-milliseconds gated by the current search (each gate, from on to off).
    disturbed_ms: u64,
}

impl Search {
    fn quiet_since(&self) -> Millis {
        self.disturbed.last().map_or(0, |d| d.1)
    }

    /// The sum of the weights of faults in `[from, to)`.
    fn weight(&self, from: Millis, to: Millis) -> u64 {
        self.faults
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, w)| *w)
            .sum()
    }

    fn overlaps_gate(&self, from: Millis, to: Millis) -> bool {
        self.disturbed.iter().any(|&(a, b)| a < to && from < b)
    }

    /// The rate before `set_at` (faults per window of `w` ms, over the newest `n` ungated
    /// windows after the first fault) and the counts' dispersion (variance over mean of
    /// sub-windows of `sub` ms, at least 1). `None` before there is any ungated window.
    fn baseline(&self, set_at: Millis, w: Millis, n: u32, sub: Millis) -> Option<(f64, f64)> {
        let mut bins = Vec::new();
        for k in 0..LOOK_BACK {
            let Some(from) = set_at.checked_sub((k + 1) * w) else {
                break;
            };
            if from < self.first_fault {
                break;
            }
            let to = from + w;
            if !self.overlaps_gate(from, to) {
                bins.push((from, to));
            }
            if bins.len() >= n as usize {
                break;
            }
        }
        if bins.is_empty() {
            return None;
        }
        let total: u64 = bins.iter().map(|&(a, b)| self.weight(a, b)).sum();
        let mean = total as f64 / bins.len() as f64;
        let sub = sub.clamp(1, w);
        let mut counts = Vec::new();
        for &(a, b) in &bins {
            let mut s = a;
            while s + sub <= b {
                counts.push(self.weight(s, s + sub) as f64);
                s += sub;
            }
        }
        let m = counts.iter().sum::<f64>() / counts.len().max(1) as f64;
        let dispersion = if m > 0.0 && counts.len() > 1 {
            let var =
                counts.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / (counts.len() - 1) as f64;
            (var / m).clamp(1.0, 1_000.0)
        } else {
            1.0
        };
        Some((mean, dispersion))
    }
}

/// A fault's weight: a PF-wide spoof count stands for its packets, anything else for its
/// records.
fn weight(a: &Attributed) -> u64 {
    match (a.event.kind, a.event.count) {
        (FaultKind::Spoof, Some(n)) => n.max(1),
        _ => a.event.records(),
    }
}

/// The VFs of a PF a tenant holds: a VM or a network namespace.
fn tenants(t: &Topology, pf: Bdf) -> Vec<&vfguard_model::Vf> {
    t.pf(pf).map_or_else(Vec::new, |p| {
        p.vfs
            .iter()
            .filter(|v| matches!(v.owner.kind, OwnerKind::Vm | OwnerKind::Netns))
            .collect()
    })
}

fn gate_change(gate: Gate) -> VfChange {
    match gate {
        // ixgbe and most PF drivers refuse a minimum rate: only the maximum is lowered.
        Gate::Throttle { max_tx_mbps } => VfChange::Rate {
            min_mbps: 0,
            max_mbps: max_tx_mbps,
        },
        Gate::LinkDown => VfChange::LinkState(VfLinkState::Disable),
    }
}

/// What puts a gated VF back: the knob the gate changed, as read just before it.
fn revert_change(gate: Gate, before: Option<&VfState>) -> VfChange {
    match gate {
        Gate::Throttle { .. } => VfChange::Rate {
            min_mbps: before.and_then(|s| s.min_tx_rate).unwrap_or(0),
            max_mbps: before.and_then(|s| s.max_tx_rate).unwrap_or(0),
        },
        Gate::LinkDown => VfChange::LinkState(
            before
                .and_then(|s| s.link_state)
                .unwrap_or(VfLinkState::Auto),
        ),
    }
}

fn gate_text(gate: Gate) -> String {
    match gate {
        Gate::Throttle { max_tx_mbps } => format!("max_tx_rate {max_tx_mbps} Mbit/s"),
        Gate::LinkDown => "link-state disable".into(),
    }
}

fn vf_list(vfs: &[u16]) -> String {
    let mut v: Vec<u16> = vfs.to_vec();
    v.sort_unstable();
    let s: Vec<String> = v.iter().map(u16::to_string).collect();
    s.join(",")
}

impl Engine {
    /// A fault left on PF `pf` (incident `id`): remember it for the search, note the VFs that
    /// were active around it, and file it on the culprits already localized.
    pub(super) fn localize_fault(
        &mut self,
        pf: Bdf,
        id: IncidentId,
        a: &Attributed,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        if !LOCALIZABLE.contains(&a.event.kind) || a.event.victim {
            return;
        }
        let lag = self.policy.localize.lag;
        let candidates: Vec<u16> = tenants(t, pf).iter().map(|v| v.index.0).collect();
        let s = self
            .searches
            .entry(pf)
            .and_modify(|s| {
                if s.incident != id {
                    // A new incident on the PF: what the old search knew is stale.
                    s.incident = id;
                    s.first_fault = now;
                    s.faults.clear();
                    s.disturbed.clear();
                    s.passive = Passive::new(candidates.clone(), 0.1);
                    s.localizer = None;
                    s.culprits.clear();
                }
            })
            .or_insert_with(|| Search {
                incident: id,
                first_fault: now,
                faults: VecDeque::new(),
                disturbed: Vec::new(),
                passive: Passive::new(candidates, 0.1),
                last: a.clone(),
                localizer: None,
                round: None,
                rest_until: 0,
                culprits: Vec::new(),
                tx: BTreeMap::new(),
                disturbed_ms: 0,
            });
        if s.faults.len() >= HISTORY_CAP {
            s.faults.pop_front();
        }
        s.faults.push_back((now, weight(a)));
        s.last = a.clone();
        // The VFs whose Tx counters moved around the fault; nothing is known before a VF was
        // sampled twice, nor while gates are on (they hold the gated VFs' counters).
        let sampled = s.tx.values().any(|(_, moved)| moved.is_some());
        if sampled && s.round.is_none() {
            let active: Vec<u16> =
                s.tx.iter()
                    .filter(|(_, (_, m))| m.is_some_and(|at| at.saturating_add(lag + 2_000) >= now))
                    .map(|(vf, _)| *vf)
                    .collect();
            s.passive.observe(&active);
        }
        let culprits = s.culprits.clone();
        let n = culprits.len();
        for bdf in culprits {
            let Some(vf) = vf_at(t, pf, bdf) else {
                continue;
            };
            let evidence = format!(
                "{}; localized earlier to VF {} ({} of {n} culprit(s) on {pf}): filed on it",
                a.evidence,
                vf.index.0,
                vf.owner.label()
            );
            self.fault(&on_culprit(a, vf, evidence), t, now, out);
        }
    }

    /// Whether an observation must be journalled though it decides nothing, and under which
    /// incident: a VF's counters on a PF under localization, the first since the search began
    /// and each that moved (the passive record reads them, so a replay must see them too).
    pub fn matters(&self, obs: &vfguard_model::Observation) -> Option<IncidentId> {
        let vfguard_model::Observation::VfStats { pf, vf, stats } = obs else {
            return None;
        };
        let s = self.searches.get(pf)?;
        let news =
            s.tx.get(&vf.0)
                .is_none_or(|(last, _)| *last != stats.tx_packets);
        news.then_some(s.incident)
    }

    /// A VF's counters were sampled: the search on its PF notes whether its Tx moved.
    pub(super) fn localize_sampled(
        &mut self,
        pf: Bdf,
        vf: VfIndex,
        stats: &vfguard_model::VfStats,
        now: Millis,
    ) {
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        let e = s.tx.entry(vf.0).or_insert((stats.tx_packets, None));
        if e.0 != stats.tx_packets {
            *e = (stats.tx_packets, Some(now));
        }
    }

    /// Whether the incident has gates on (it is not closed before they are off).
    pub(super) fn probing(&self, id: IncidentId) -> bool {
        self.searches
            .values()
            .any(|s| s.incident == id && s.round.is_some())
            || self
                .reverts
                .values()
                .any(|r| self.searches.get(&r.pf).is_some_and(|s| s.incident == id))
    }

    /// An actuator's report on a probe or a revert; the incident it is about, if it was one.
    pub(super) fn probe_outcome(
        &mut self,
        o: &ActionOutcome,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<Option<IncidentId>> {
        if let Some(r) = self.reverts.remove(&o.id) {
            let id = self.searches.get(&r.pf).map(|s| s.incident);
            if let Some(err) = &o.error {
                let text = format!(
                    "localize round {}: reverting VF {} failed ({err}, attempt {})",
                    r.round, r.vf.0, r.attempt
                );
                if let Some(id) = id {
                    self.note(id, text, now, out);
                }
                if r.attempt < REVERT_ATTEMPTS {
                    self.revert(r.pf, r.vf, r.change, r.round, r.attempt + 1, t, now, out);
                }
            }
            return Some(id);
        }
        let pf = self.probes.remove(&o.id)?;
        let s = self.searches.get_mut(&pf)?;
        let id = s.incident;
        if let Some(g) = s
            .round
            .as_mut()
            .and_then(|r| r.gates.iter_mut().find(|g| g.set == o.id))
        {
            g.result = Some(match &o.error {
                None => Ok(o.before.clone()),
                Some(e) => Err(e.clone()),
            });
        }
        Some(Some(id))
    }

    /// Moves every search on: gates off when their window ends, rounds measured, searches
    /// started, culprits named.
    pub(super) fn localize_tick(&mut self, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let pfs: Vec<Bdf> = self.searches.keys().copied().collect();
        for pf in pfs {
            let Some(s) = self.searches.get(&pf) else {
                continue;
            };
            if !self.incidents.contains_key(&s.incident) {
                // Its incident closed (an operator released it): gates off, search dropped.
                self.take_gates_off(pf, t, now, out);
                self.searches.remove(&pf);
                continue;
            }
            if s.round.is_some() {
                self.round_tick(pf, t, now, out);
            } else {
                self.search_tick(pf, t, now, out);
            }
        }
        // A revert never reported on is decided again (the backstop).
        let mut stale: Vec<ActionId> = self
            .reverts
            .iter()
            .filter(|(_, r)| r.at + ACTION_BACKSTOP <= now)
            .map(|(id, _)| *id)
            .collect();
        stale.sort();
        for id in stale {
            let o = ActionOutcome {
                id,
                error: Some(Errno::ETIMEDOUT),
                before: None,
                at: now,
            };
            self.probe_outcome(&o, t, now, out);
        }
    }

    fn round_tick(&mut self, pf: Bdf, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let lag = self.policy.localize.lag;
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        let Some(r) = s.round.as_ref() else { return };
        // The gate stays on a lag longer than the window it is measured over: the driver's
        // reports in [set + lag, set + window + lag) cover only time it was on.
        let ends = r.set_at + r.probe.window_ms + lag;
        let waiting = r.gates.iter().any(|g| g.result.is_none());
        if waiting && now < r.set_at + ACTION_BACKSTOP {
            return;
        }
        let failed: Vec<String> = r
            .gates
            .iter()
            .filter_map(|g| match &g.result {
                Some(Err(e)) => Some(format!("VF {}: {e}", g.vf.0)),
                None => Some(format!("VF {}: no report", g.vf.0)),
                Some(Ok(_)) => None,
            })
            .collect();
        if !failed.is_empty() {
            let id = s.incident;
            let rest = self.policy.localize.rest;
            self.take_gates_off(pf, t, now, out);
            if let Some(s) = self.searches.get_mut(&pf) {
                s.localizer = None;
                s.rest_until = now + rest;
            }
            self.note(
                id,
                format!(
                    "localize: a gate failed ({}): the search ends, every gate taken off",
                    failed.join("; ")
                ),
                now,
                out,
            );
            return;
        }
        if now < ends {
            return;
        }
        // Gates off (a restart finds them still on), then the round is measured.
        self.take_gates_off(pf, t, now, out);
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        let Some(r) = s.round.take() else { return };
        let id = s.incident;
        let (w, n) = (
            self.policy.localize.probe.window_ms,
            self.policy.localize.probe.baseline_windows,
        );
        let overran = r.reverted_at.is_some_and(|at| at > ends + lag)
            || now > ends + lag
            || now > r.set_at + ttl_of(&r.probe, w);
        let baseline = s.baseline(r.set_at, w, n, lag.max(1_000));
        let gated = vf_list(&r.probe.gated);
        let text = match (overran, baseline) {
            (true, _) | (_, None) => {
                // The agent was away past the round's end (or nothing to compare with): the
                // round is measured again (the search asks for the same probe).
                format!(
                    "localize round {}: not measured (the gates stayed on past their window: the agent was away); measured again",
                    r.probe.round
                )
            }
            (false, Some((before, dispersion))) => {
                let scale = r.probe.window_ms as f64 / w as f64;
                let during = s.weight(r.set_at + lag, ends) as f64;
                if let Some(l) = s.localizer.as_mut() {
                    l.observe(Outcome {
                        before: before * scale,
                        during,
                        dispersion,
                    });
                }
                format!(
                    "localize round {}{}: VFs {gated} gated ({}) for {} ms: the PF's faults went from {:.1} per window before to {during:.0} (dispersion {dispersion:.1})",
                    r.probe.round,
                    if r.probe.confirmation { " (confirmation)" } else { "" },
                    gate_text(r.probe.gate),
                    r.probe.window_ms,
                    before * scale,
                )
            }
        };
        self.note(id, text, now, out);
    }

    fn search_tick(&mut self, pf: Bdf, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let cfg = self.policy.localize.clone();
        let mode = self.policy.mode;
        let w = cfg.probe.window_ms;
        let by_key = &self.by_key;
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        // A culprit whose incident closed is no longer one: a later fault may be someone else's.
        s.culprits
            .retain(|b| by_key.contains_key(&Key::Function(*b)));
        let id = s.incident;
        if s.localizer.is_none() {
            let span = w * u64::from(cfg.probe.baseline_windows);
            let recent = s
                .faults
                .iter()
                .filter(|(at, _)| at.saturating_add(span) >= now)
                .count();
            if !cfg.active
                || mode == Mode::Observe
                || !s.culprits.is_empty()
                || now < s.rest_until
                || now < s.first_fault + span
                || recent < cfg.min_faults as usize
                || now < s.quiet_since() + w
            {
                return;
            }
            let suspects = s.passive.suspects();
            let passive = s.passive.windows();
            let excluded: Vec<u16> = tenants(t, pf)
                .iter()
                .filter(|v| self.policy.excluded(&v.owner.label()))
                .map(|v| v.index.0)
                .collect();
            let n_tenants = tenants(t, pf).len();
            let l = Localizer::new(suspects.clone(), excluded.clone(), n_tenants, cfg.probe);
            if let Some(s) = self.searches.get_mut(&pf) {
                s.localizer = Some(l);
                s.disturbed_ms = 0;
            }
            self.note(
                id,
                format!(
                    "localize: search started on {pf}: {} suspect(s) of {n_tenants} tenant VFs after {passive} fault(s) with counters (passive){}",
                    suspects.len(),
                    if excluded.is_empty() {
                        String::new()
                    } else {
                        format!("; excluded, never gated: VFs {}", vf_list(&excluded))
                    }
                ),
                now,
                out,
            );
        }
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        if now < s.quiet_since() + w {
            return;
        }
        let Some(l) = s.localizer.as_mut() else {
            return;
        };
        let verdict = l.step();
        let tenant_ms = s.disturbed_ms;
        match verdict {
            Verdict::Probe(p) => self.set_gates(pf, p, t, now, out),
            Verdict::Found {
                culprits,
                rounds,
                unexplained,
            } => {
                s.localizer = None;
                s.rest_until = now + cfg.rest;
                let last = s.last.clone();
                let names: Vec<u16> = culprits.iter().map(|(k, _)| *k).collect();
                self.note(
                    id,
                    format!(
                        "localize: found VF(s) {} in {rounds} round(s), {} tenant-seconds disturbed; {:.0}% of the rate unexplained",
                        vf_list(&names),
                        tenant_ms / 1000,
                        unexplained * 100.0
                    ),
                    now,
                    out,
                );
                for (k, share) in culprits {
                    let Some(vf) = t.vf(pf, VfIndex(k)) else {
                        continue;
                    };
                    let bdf = vf.bdf;
                    if let Some(s) = self.searches.get_mut(&pf) {
                        s.culprits.push(bdf);
                    }
                    let evidence = format!(
                        "localized by group testing on {pf}: gated alone, VF {k} ({}) stopped {:.0}% of the PF's {} faults; {rounds} round(s), {} tenant-seconds disturbed",
                        vf.owner.label(),
                        share * 100.0,
                        last.event.kind,
                        tenant_ms / 1000
                    );
                    self.fault(&on_culprit(&last, vf, evidence), t, now, out);
                }
            }
            Verdict::Inconclusive {
                reason,
                suspects,
                rounds,
            } => {
                s.localizer = None;
                s.rest_until = now + cfg.rest;
                self.note(
                    id,
                    format!(
                        "localize: inconclusive after {rounds} round(s) ({reason}); suspects left: VFs {}; nobody is blamed",
                        vf_list(&suspects)
                    ),
                    now,
                    out,
                );
            }
            Verdict::Quiet { rounds } => {
                s.localizer = None;
                s.rest_until = now + cfg.rest;
                self.note(
                    id,
                    format!("localize: the faults stopped on their own after {rounds} round(s)"),
                    now,
                    out,
                );
            }
        }
    }

    /// A probe's time to live: the policy's, longer by as much as a repeated round's window
    /// is (a round measured again runs twice as long).
    fn probe_ttl(&self, p: &Probe<u16>) -> Millis {
        ttl_of(p, self.policy.localize.probe.window_ms)
    }

    /// Puts a round's gates on (or, in dry-run, journals what it would do and ends).
    fn set_gates(
        &mut self,
        pf: Bdf,
        p: Probe<u16>,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let dry_run = self.policy.mode == Mode::DryRun;
        let ttl_ms = self.probe_ttl(&p);
        let Some(id) = self.searches.get(&pf).map(|s| s.incident) else {
            return;
        };
        let pf_netdev = t.pf(pf).and_then(|p| p.netdev.clone());
        let mut gates = Vec::new();
        for &k in &p.gated {
            let Some(vf) = t.vf(pf, VfIndex(k)) else {
                continue;
            };
            let aid = self.take_action_id();
            out.push(Decision::Act(Action {
                id: aid,
                incident: id,
                function: vf.bdf,
                pf: Some(pf),
                pf_netdev: pf_netdev.clone(),
                vf: Some(vf.index),
                owner: Some(vf.owner.clone()),
                kind: ActionKind::SetVf(gate_change(p.gate)),
                rule: RuleRef::Probe {
                    round: p.round,
                    window_ms: p.window_ms,
                    ttl_ms,
                },
                dry_run,
                at: now,
            }));
            self.probes.insert(aid, pf);
            gates.push(GateRec {
                vf: vf.index,
                set: aid,
                result: None,
            });
        }
        let rest = self.policy.localize.rest;
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        if dry_run {
            s.localizer = None;
            s.rest_until = now + rest;
            self.note(
                id,
                format!(
                    "localize (dry run): round {} would gate VFs {} ({}) for {} ms; nothing was changed and the search goes no further",
                    p.round,
                    vf_list(&p.gated),
                    gate_text(p.gate),
                    p.window_ms
                ),
                now,
                out,
            );
            return;
        }
        s.round = Some(Round {
            probe: p,
            set_at: now,
            gates,
            reverted_at: None,
        });
    }

    /// Takes off every gate of the PF's round that went on.
    fn take_gates_off(&mut self, pf: Bdf, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let lag = self.policy.localize.lag;
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        let Some(r) = s.round.as_mut() else { return };
        if r.reverted_at.is_some() {
            return;
        }
        r.reverted_at = Some(now);
        s.disturbed.push((r.set_at, now + lag));
        s.disturbed_ms = s
            .disturbed_ms
            .saturating_add(r.gates.len() as u64 * now.saturating_sub(r.set_at));
        let round = r.probe.round;
        let gate = r.probe.gate;
        let todo: Vec<(VfIndex, VfChange)> = r
            .gates
            .iter()
            .filter_map(|g| match &g.result {
                Some(Ok(before)) => Some((g.vf, revert_change(gate, before.as_ref()))),
                // No report: it may have gone on; put back what is known of a VF at rest.
                None => Some((g.vf, revert_change(gate, None))),
                Some(Err(_)) => None,
            })
            .collect();
        for id in r.gates.iter().map(|g| g.set) {
            self.probes.remove(&id);
        }
        if r.gates.iter().any(|g| !matches!(g.result, Some(Ok(_)))) {
            // A failed round is over: nothing to measure.
            s.round = None;
        }
        for (vf, change) in todo {
            self.revert(pf, vf, change, round, 1, t, now, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn revert(
        &mut self,
        pf: Bdf,
        vf: VfIndex,
        change: VfChange,
        round: u32,
        attempt: u32,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let Some(id) = self.searches.get(&pf).map(|s| s.incident) else {
            return;
        };
        let Some(v) = t.vf(pf, vf) else { return };
        let aid = self.take_action_id();
        out.push(Decision::Act(Action {
            id: aid,
            incident: id,
            function: v.bdf,
            pf: Some(pf),
            pf_netdev: t.pf(pf).and_then(|p| p.netdev.clone()),
            vf: Some(vf),
            owner: Some(v.owner.clone()),
            kind: ActionKind::SetVf(change),
            rule: RuleRef::ProbeReverted { round },
            dry_run: false,
            at: now,
        }));
        self.reverts.insert(
            aid,
            Revert {
                pf,
                vf,
                change,
                round,
                attempt,
                at: now,
            },
        );
    }

    /// A line of evidence on an incident, with its method and confidence as they stand.
    fn note(&mut self, id: IncidentId, text: String, now: Millis, out: &mut Vec<Decision>) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let kind = inc.kinds.iter().next().copied().unwrap_or(FaultKind::Spoof);
        out.push(Decision::Attributed {
            incident: id,
            method: inc.method,
            confidence: inc.confidence,
            evidence: text.clone(),
        });
        inc.add_evidence(Evidence {
            at: now,
            kind,
            method: inc.method,
            confidence: inc.confidence,
            text,
        });
    }

    /// Forgets the probes and reverts a replay decided that the journal never carried out.
    pub(super) fn abandon_probes(&mut self, journalled: &std::collections::HashSet<ActionId>) {
        self.reverts.retain(|id, _| journalled.contains(id));
        let gone: Vec<ActionId> = self
            .probes
            .keys()
            .filter(|id| !journalled.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(pf) = self.probes.remove(&id) {
                if let Some(g) = self
                    .searches
                    .get_mut(&pf)
                    .and_then(|s| s.round.as_mut())
                    .and_then(|r| r.gates.iter_mut().find(|g| g.set == id))
                {
                    g.result = Some(Err(Errno::from_name("never carried out")));
                }
            }
        }
    }
}

/// A probe's time to live, given the policy's window `w`.
fn ttl_of(p: &Probe<u16>, w: Millis) -> Millis {
    p.ttl_ms.saturating_add(p.window_ms.saturating_sub(w))
}

/// The PF's VF at `bdf`.
fn vf_at(t: &Topology, pf: Bdf, bdf: Bdf) -> Option<&vfguard_model::Vf> {
    t.pf(pf).and_then(|p| p.vfs.iter().find(|v| v.bdf == bdf))
}

/// A PF-level fault filed on a culprit the search found.
fn on_culprit(a: &Attributed, vf: &vfguard_model::Vf, evidence: String) -> Attributed {
    let mut c = a.clone();
    c.key = Key::Function(vf.bdf);
    c.event.vf = Some(vf.index);
    c.event.function = Some(vf.bdf);
    c.event.owner = Some(vf.owner.clone());
    c.method = Method::Localized;
    c.confidence = CONFIRMED;
    c.evidence = evidence;
    c
}

/// Searches by PF.
pub(super) type Searches = BTreeMap<Bdf, Search>;
