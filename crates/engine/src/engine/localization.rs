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
    Millis, Mode, Owner, OwnerKind, RuleRef, Topology, VfChange, VfIndex, VfLinkState, VfState,
};

use crate::attribute::{Attributed, Key, Method};
use crate::incident::Evidence;

use super::lifecycle::ACTION_BACKSTOP;
use super::probe_reverts::{unjournalled, Revert};
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

/// Rounds in a row that could not be measured (the agent was away, or its steps came later
/// than the driver's lag) before the search gives up.
const MAX_VOIDS: u32 = 3;

/// Windows looked back for an ungated baseline.
const LOOK_BACK: u64 = 64;

/// One gate of a round.
#[derive(Debug, Clone)]
struct GateRec {
    vf: VfIndex,
    bdf: Bdf,
    owner: Owner,
    set: ActionId,
    /// `None` until the actuator reports; `Ok(state before)` or the error.
    result: Option<Result<Option<VfState>, Errno>>,
    /// The VF's state the actuator read before acting (also when the call then failed).
    before: Option<VfState>,
    /// Decided by a replay, never carried out.
    abandoned: bool,
}

impl GateRec {
    /// Whether the gate surely never went on: its actuator refused it outright, or it was
    /// never carried out. Anything else (a timeout, an interrupted call) may have set it.
    fn surely_off(&self) -> bool {
        self.abandoned
            || matches!(
                &self.result,
                Some(Err(e)) if matches!(
                    *e,
                    Errno::EOPNOTSUPP | Errno::EINVAL | Errno::EPERM | Errno::ENODEV | Errno::ENOENT
                )
            )
    }
}

/// A round in progress.
#[derive(Debug, Clone)]
struct Round {
    probe: Probe<u16>,
    set_at: Millis,
    gates: Vec<GateRec>,
    reverted_at: Option<Millis>,
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
    /// Each tenant VF's owner when the search began: a VF that changes hands ends it.
    owners: BTreeMap<u16, String>,
    /// Rounds in a row not measured.
    voids: u32,
}

impl Search {
    /// A search for incident `id`'s faults, the first of them `a` at `now`, among `candidates`.
    fn new(
        id: IncidentId,
        now: Millis,
        candidates: impl IntoIterator<Item = u16>,
        a: &Attributed,
    ) -> Search {
        Search {
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
            owners: BTreeMap::new(),
            voids: 0,
        }
    }

    fn quiet_since(&self) -> Millis {
        self.disturbed.last().map_or(0, |d| d.1)
    }

    /// The sum of the weights of faults in `[from, to)` (they are kept in time order).
    fn weight(&self, from: Millis, to: Millis) -> u64 {
        let i = self.faults.partition_point(|(at, _)| *at < from);
        let j = self.faults.partition_point(|(at, _)| *at < to);
        self.faults.range(i..j.max(i)).map(|(_, w)| *w).sum()
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
        let fresh = || Search::new(id, now, tenants(t, pf).iter().map(|v| v.index.0), a);
        let s = self.searches.entry(pf).or_insert_with(fresh);
        if s.incident != id {
            // A new incident on the PF: what the old search knew is stale, but for the
            // counters (which the journal holds since it began).
            *s = Search {
                tx: std::mem::take(&mut s.tx),
                ..fresh()
            };
        }
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
        // A culprit whose incident closed (released, or quiet) is no longer one.
        let culprits: Vec<Bdf> = s
            .culprits
            .iter()
            .copied()
            .filter(|b| self.by_key.contains_key(&Key::Function(*b)))
            .collect();
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
            || self.reverting(id)
    }

    /// An actuator's report on a probe or a revert; the incident it is about, if it was one.
    pub(super) fn probe_outcome(
        &mut self,
        o: &ActionOutcome,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<Option<IncidentId>> {
        if self.reverts.contains_key(&o.id) {
            return Some(self.revert_outcome(o, now, out));
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
            g.before.clone_from(&o.before);
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
        self.revert_tick(t, now, out);
    }

    fn round_tick(&mut self, pf: Bdf, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let lag = self.policy.localize.lag;
        let (w, n) = (
            self.policy.localize.probe.window_ms,
            self.policy.localize.probe.baseline_windows,
        );
        let rest = self.policy.localize.rest;
        let Some(s) = self.searches.get(&pf) else {
            return;
        };
        let Some(r) = s.round.as_ref() else { return };
        let id = s.incident;
        // The gate stays on a lag longer than the window it is measured over: the driver's
        // reports in [set + lag, set + window + lag) cover only time it was on.
        let ends = r.set_at + r.probe.window_ms + lag;
        let ttl = ttl_of(&r.probe, w);
        if now < r.set_at {
            // The clock went back: the window cannot be told. Gates off, measured again.
            self.take_gates_off(pf, t, now, out);
            self.void_round(pf, "the clock went back", now, out);
            return;
        }
        let waiting = r.gates.iter().any(|g| g.result.is_none());
        if waiting && now < r.set_at + ACTION_BACKSTOP.min(ttl) {
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
            self.take_gates_off(pf, t, now, out);
            self.end_search(
                pf,
                format!(
                    "localize: a gate failed ({}): the search ends, every gate taken off",
                    failed.join("; ")
                ),
                now + rest,
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
        let overran = r.reverted_at.is_some_and(|at| at > ends + lag)
            || now > ends + lag
            || now > r.set_at + ttl;
        let baseline = s.baseline(r.set_at, w, n, lag.max(1_000));
        let (false, Some((before, dispersion))) = (overran, baseline) else {
            // The agent was away past the round's end (or its steps come later than the
            // driver's lag), or there is nothing to compare with: the round is measured again
            // (the search asks for the same probe), a few times at most.
            let why = if overran {
                "the gates stayed on past their window: the agent was away or late"
            } else {
                "no ungated window to compare with"
            };
            s.round = None;
            self.void_round(pf, why, now, out);
            return;
        };
        s.voids = 0;
        let scale = r.probe.window_ms as f64 / w as f64;
        let during = s.weight(r.set_at + lag, ends) as f64;
        if let Some(l) = s.localizer.as_mut() {
            l.observe(Outcome {
                before: before * scale,
                during,
                dispersion,
            });
        }
        let text = format!(
            "localize round {}{}: VFs {} gated ({}) for {} ms: the PF's faults went from {:.1} per window before to {during:.0} (dispersion {dispersion:.1})",
            r.probe.round,
            if r.probe.confirmation { " (confirmation)" } else { "" },
            vf_list(&r.probe.gated),
            gate_text(r.probe.gate),
            r.probe.window_ms,
            before * scale,
        );
        self.note(id, text, now, out);
    }

    /// A round that could not be measured: said, and tried again, [`MAX_VOIDS`] times in a row
    /// at most.
    fn void_round(&mut self, pf: Bdf, why: &str, now: Millis, out: &mut Vec<Decision>) {
        let rest = self.policy.localize.rest;
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        s.round = None;
        s.voids += 1;
        let (id, voids) = (s.incident, s.voids);
        if voids >= MAX_VOIDS {
            self.end_search(
                pf,
                format!(
                    "localize: {voids} rounds in a row could not be measured ({why}): the search ends; nobody is blamed"
                ),
                now + rest,
                now,
                out,
            );
            return;
        }
        self.note(
            id,
            format!("localize: a round was not measured ({why}); measured again"),
            now,
            out,
        );
    }

    /// Ends the PF's search: said in its incident's evidence, the next one not before `until`.
    fn end_search(
        &mut self,
        pf: Bdf,
        text: String,
        until: Millis,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        s.localizer = None;
        s.round = None;
        s.voids = 0;
        s.rest_until = until;
        let id = s.incident;
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
            let owners = owner_labels(t, pf);
            if let Some(s) = self.searches.get_mut(&pf) {
                s.localizer = Some(l);
                s.disturbed_ms = 0;
                s.voids = 0;
                s.owners = owners;
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
        if now < s.quiet_since() + w || s.localizer.is_none() {
            return;
        }
        // A search's rounds compare tenants: one that changed hands (a VM migrated away, a new
        // pod) makes them compare different things, and the new holder must not be gated or
        // named for the old one's faults.
        let now_owners = owner_labels(t, pf);
        let moved: Vec<u16> = s
            .owners
            .iter()
            .filter(|(vf, label)| now_owners.get(vf) != Some(*label))
            .map(|(vf, _)| *vf)
            .collect();
        if !moved.is_empty() {
            self.end_search(
                pf,
                format!(
                    "localize: the tenants of VFs {} changed during the search: it ends, nobody is blamed",
                    vf_list(&moved)
                ),
                now,
                now,
                out,
            );
            return;
        }
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
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
                let last = s.last.clone();
                let names: Vec<u16> = culprits.iter().map(|(k, _)| *k).collect();
                self.end_search(
                    pf,
                    format!(
                        "localize: found VF(s) {} in {rounds} round(s), {} tenant-seconds disturbed; {:.0}% of the rate unexplained",
                        vf_list(&names),
                        tenant_ms / 1000,
                        unexplained * 100.0
                    ),
                    now + cfg.rest,
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
            } => self.end_search(
                pf,
                format!(
                    "localize: inconclusive after {rounds} round(s) ({reason}); suspects left: VFs {}; nobody is blamed",
                    vf_list(&suspects)
                ),
                now + cfg.rest,
                now,
                out,
            ),
            Verdict::Quiet { rounds } => self.end_search(
                pf,
                format!("localize: the faults stopped on their own after {rounds} round(s)"),
                now + cfg.rest,
                now,
                out,
            ),
        }
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
        let ttl_ms = ttl_of(&p, self.policy.localize.probe.window_ms);
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
                bdf: vf.bdf,
                owner: vf.owner.clone(),
                set: aid,
                result: None,
                before: None,
                abandoned: false,
            });
        }
        if dry_run {
            let rest = self.policy.localize.rest;
            self.end_search(
                pf,
                format!(
                    "localize (dry run): round {} would gate VFs {} ({}) for {} ms; nothing was changed and the search goes no further",
                    p.round,
                    vf_list(&p.gated),
                    gate_text(p.gate),
                    p.window_ms
                ),
                now + rest,
                now,
                out,
            );
            return;
        }
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        s.round = Some(Round {
            probe: p,
            set_at: now,
            gates,
            reverted_at: None,
        });
    }

    /// Takes off every gate of the PF's round that may have gone on: each that the PF did not
    /// surely refuse, put back as its outcome read it just before (to no limit, or the link's
    /// automatic state, when that was not read: said in the evidence).
    fn take_gates_off(&mut self, pf: Bdf, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let lag = self.policy.localize.lag;
        let pf_netdev = t.pf(pf).and_then(|p| p.netdev.clone());
        let Some(s) = self.searches.get_mut(&pf) else {
            return;
        };
        let id = s.incident;
        let Some(r) = s.round.as_mut() else { return };
        if r.reverted_at.is_some() {
            return;
        }
        r.reverted_at = Some(now);
        s.disturbed.push((r.set_at, now + lag));
        s.disturbed_ms = s
            .disturbed_ms
            .saturating_add(r.gates.len() as u64 * now.saturating_sub(r.set_at));
        let (round, gate) = (r.probe.round, r.probe.gate);
        let mut unknown = Vec::new();
        let mut todo = Vec::new();
        for g in r.gates.iter().filter(|g| !g.surely_off()) {
            let before = g.before.as_ref();
            if before.is_none() {
                unknown.push(g.vf.0);
            }
            todo.push(Revert {
                incident: id,
                pf,
                pf_netdev: pf_netdev.clone(),
                vf: g.vf,
                bdf: g.bdf,
                owner: Some(g.owner.clone()),
                change: revert_change(gate, before),
                round,
                attempt: 0,
                at: now,
            });
        }
        for g in &r.gates {
            self.probes.remove(&g.set);
        }
        if r.gates.iter().any(|g| !matches!(g.result, Some(Ok(_)))) {
            // A failed round is over: nothing to measure.
            s.round = None;
        }
        if !unknown.is_empty() {
            self.note(
                id,
                format!(
                    "localize round {round}: the state of VFs {} before their gate was not read (no report, or the agent stopped in between): put back to {}",
                    vf_list(&unknown),
                    match gate {
                        Gate::Throttle { .. } => "no rate limit",
                        Gate::LinkDown => "the link's automatic state",
                    }
                ),
                now,
                out,
            );
        }
        for r in todo {
            self.revert(r, now, out);
        }
    }

    /// A line of evidence on an incident, with its method and confidence as they stand.
    pub(super) fn note(
        &mut self,
        id: IncidentId,
        text: String,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
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
        self.redo_unjournalled_reverts(journalled);
        for id in unjournalled(self.probes.keys(), journalled) {
            if let Some(pf) = self.probes.remove(&id) {
                if let Some(g) = self
                    .searches
                    .get_mut(&pf)
                    .and_then(|s| s.round.as_mut())
                    .and_then(|r| r.gates.iter_mut().find(|g| g.set == id))
                {
                    g.result = Some(Err(Errno::from_name("never carried out")));
                    g.abandoned = true;
                }
            }
        }
    }
}

/// Each tenant VF's owner, by index.
fn owner_labels(t: &Topology, pf: Bdf) -> BTreeMap<u16, String> {
    tenants(t, pf)
        .iter()
        .map(|v| (v.index.0, v.owner.label()))
        .collect()
}

/// A probe's time to live, given the policy's window `w`: the policy's, longer by as much as a
/// repeated round's window is (a round measured again runs twice as long).
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
