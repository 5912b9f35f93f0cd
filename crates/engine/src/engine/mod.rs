//! The engine: `observe(observation, topology, now) -> decisions`. Deterministic, sans-IO: the
//! same observations at the same times give the same decisions (a restart replays the journal
//! through it to rebuild its state).
//!
//! This module takes observations in and files faults under their incidents; the rest is split
//! by concern: [`ids`] (incident and action ids, across a replay), [`windows`] (rule windows),
//! [`correlation`] (per-VF counters around PF-level faults), [`ladder`] (the next rung, deciding
//! actions, exhaustion), [`guard`] (the blast-radius caps), [`localization`] (finding the VF a
//! PF-level fault came from) and [`probe_reverts`] (taking its gates off), [`lifecycle`]
//! (outcomes, re-offence, restore, close: the state machine's moves) and [`operator`] (an
//! operator's requests).

use std::collections::{BTreeMap, HashMap, VecDeque};

use vfguard_model::{
    ActionId, ActionKind, Bdf, Cause, Decision, FaultEvent, FaultKind, IncidentId, IncidentState,
    Millis, Observation, RuleRef, Severity, Topology, VfIndex, VfStats,
};

use crate::attribute::{Attributed, Attributor, Key};
use crate::incident::{Evidence, Incident};
use crate::policy::Policy;

mod correlation;
mod guard;
mod ids;
mod ladder;
mod lifecycle;
mod localization;
mod operator;
mod probe_reverts;
mod reconsider;
mod victim;
mod windows;

use ids::IdHints;
use lifecycle::transition;

/// Messages whose driver contains the VF by itself, beyond `vf_disabled` lines: ice's
/// mailbox-overflow warning (ice_virtchnl.c `ice_is_malicious_vf()`: later messages from that VF
/// are dropped until a VF reset clears the latch).
const DRIVER_CONTAINS: &[&str] = &["ice.mbx.overflow"];

/// A VF's last counters and when (and by how much) its `tx_dropped` last moved.
type StatsEntry = (VfStats, Option<(Millis, u64)>);

/// The engine.
pub struct Engine {
    policy: Policy,
    attributor: Attributor,
    incidents: BTreeMap<IncidentId, Incident>,
    by_key: HashMap<Key, IncidentId>,
    next_incident: u64,
    next_action: u64,
    /// While replaying a journal: the ids it gave, in order, taken before the counters.
    hints: IdHints,
    pending: HashMap<ActionId, (IncidentId, ActionKind)>,
    /// Recent actions for the guard: (when, PF).
    recent: VecDeque<(Millis, Option<Bdf>)>,
    /// Last VF counters and when tx_dropped last moved, per (PF, VF).
    stats: HashMap<(Bdf, VfIndex), StatsEntry>,
    /// The last victim-side line of each function, and when (corroboration only).
    victims: HashMap<Bdf, (Millis, String)>,
    /// Localization searches, by PF.
    searches: localization::Searches,
    /// Probe gates not yet reported on, and their PF.
    probes: HashMap<ActionId, Bdf>,
    /// Probe reverts not yet reported as done.
    reverts: HashMap<ActionId, probe_reverts::Revert>,
    /// Probe reverts that failed, decided again at their time.
    retries: Vec<(Millis, probe_reverts::Revert)>,
}

impl Engine {
    /// An engine with this policy.
    pub fn new(policy: Policy) -> Engine {
        Engine {
            policy,
            attributor: Attributor::new(),
            incidents: BTreeMap::new(),
            by_key: HashMap::new(),
            next_incident: 1,
            next_action: 1,
            hints: IdHints::default(),
            pending: HashMap::new(),
            recent: VecDeque::new(),
            stats: HashMap::new(),
            victims: HashMap::new(),
            searches: BTreeMap::new(),
            probes: HashMap::new(),
            reverts: HashMap::new(),
            retries: Vec::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the policy (SIGHUP); incidents carry on.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The open incident of a function (not a PF-level one), as an operator names it.
    pub fn function_incident(&self, function: Bdf) -> Option<&Incident> {
        self.by_key
            .get(&Key::Function(function))
            .and_then(|id| self.incidents.get(id))
    }

    /// Incidents in memory (closed ones are dropped; the journal keeps them).
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// One incident.
    pub fn incident(&self, id: IncidentId) -> Option<&Incident> {
        self.incidents.get(&id)
    }

    /// Takes in one observation.
    pub fn observe(&mut self, obs: &Observation, t: &Topology, now: Millis) -> Vec<Decision> {
        self.observe_linked(obs, t, now).0
    }

    /// Takes in one observation; also returns the incident the observation itself is about
    /// (where the journal files it as evidence), which is not the first incident its decisions
    /// name when it released a line held from another PF or function.
    ///
    /// A tick is about no incident of its own; it is linked to the first incident it decided
    /// something for, so that retention keeps it as long as that incident is open (a replay
    /// needs it), and evidence listings leave ticks out.
    pub fn observe_linked(
        &mut self,
        obs: &Observation,
        t: &Topology,
        now: Millis,
    ) -> (Vec<Decision>, Option<IncidentId>) {
        let mut out = Vec::new();
        let mut own = None;
        match obs {
            Observation::Fault(e) => {
                if !e.trusted {
                    // Not from the kernel: never a driver message (a tenant cannot frame another).
                    return (out, None);
                }
                let w = self.policy.sequence_window;
                let (list, last_is_own) = self.attributor.attribute(e.clone(), t, now, w);
                let n = list.len();
                for (i, a) in list.iter().enumerate() {
                    let id = self.fault(a, t, now, &mut out);
                    if last_is_own && i + 1 == n {
                        own = id;
                    }
                }
            }
            Observation::Aer {
                function,
                correctable,
                nonfatal,
                fatal,
            } => {
                for (kind, n) in [
                    (FaultKind::AerCorrectable, *correctable),
                    (FaultKind::AerNonfatal, *nonfatal),
                    (FaultKind::AerFatal, *fatal),
                ] {
                    if n == 0 {
                        continue;
                    }
                    let e = aer_event(*function, kind, n);
                    let w = self.policy.sequence_window;
                    let (list, _) = self.attributor.attribute(e, t, now, w);
                    for mut a in list {
                        a.evidence =
                            format!("AER counters of {function}: +{n} {kind}; {}", a.evidence);
                        for _ in 0..n.min(u64::from(u32::MAX)) {
                            let id = self.fault(&a, t, now, &mut out);
                            if a.event.function == Some(*function) {
                                own = own.or(id);
                            }
                            if out.len() > 1024 {
                                break;
                            }
                        }
                    }
                }
            }
            Observation::VfStats { pf, vf, stats } => self.sampled(*pf, *vf, stats, now),
            Observation::Outcome(o) => {
                // A localization probe's gate or revert is no rung of a ladder.
                if let Some(id) = self.probe_outcome(o, now, &mut out) {
                    return (out, id);
                }
                own = self.pending.get(&o.id).map(|(id, _)| *id);
                self.outcome(o, t, now, &mut out);
            }
            Observation::Operator(req) => {
                self.operator(req, t, now, &mut out);
                own = out.iter().find_map(Decision::incident);
            }
            Observation::Tick => {
                self.tick(t, now, &mut out);
                own = out.iter().find_map(Decision::incident);
            }
        }
        (out, own)
    }

    fn open(
        &mut self,
        key: Key,
        a: &Attributed,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> IncidentId {
        if let Some(id) = self.by_key.get(&key) {
            return *id;
        }
        let id = self.take_incident_id();
        let mut inc = Incident::new(id, key, now);
        inc.function = match key {
            Key::Function(b) => Some(b),
            // An ambiguous requester's incident is about the address as printed (read in
            // segment 0000), with no owner: its evidence lists every function it may be.
            Key::PfLevel(b) | Key::Ambiguous(b) => Some(b),
            Key::Host => None,
        };
        inc.pf = a.event.pf;
        inc.vf = a.event.vf;
        inc.owner = a.event.owner.clone();
        inc.owner_history.push((now, inc.owner_label()));
        out.push(Decision::IncidentOpened {
            incident: id,
            function: inc
                .function
                .unwrap_or_else(|| a.event.device.unwrap_or(zero())),
            owner: inc.owner.clone(),
        });
        self.incidents.insert(id, inc);
        self.by_key.insert(key, id);
        id
    }

    /// Files one attributed fault under its incident (opening it); returns that incident.
    fn fault(
        &mut self,
        a: &Attributed,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<IncidentId> {
        let e = &a.event;
        if e.kind == FaultKind::Admin {
            return None;
        }
        // A VF reset its own driver asked for at load is recorded where an incident exists, but
        // never opens one or counts; neither does what a VF's own driver says befell it (the
        // victim side: its owner suffered it).
        let counts = !(e.kind == FaultKind::VfReset && e.severity == Severity::Info || e.victim);
        if e.victim {
            self.remember_victim(a, now);
        }
        if !counts && !self.by_key.contains_key(&a.key) {
            return None;
        }
        if let Some(&id) = self.by_key.get(&a.key) {
            if counts && self.requester_outlives_containment(id, a, now) {
                return self.reconsider(id, a, t, now, out);
            }
        }
        let id = self.open(a.key, a, now, out);
        self.fault_in(id, a, counts, t, now, out);
        if let (Key::PfLevel(pf), true) = (a.key, counts) {
            self.localize_fault(pf, id, a, t, now, out);
        }
        Some(id)
    }

    fn fault_in(
        &mut self,
        id: IncidentId,
        a: &Attributed,
        counts: bool,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let e = &a.event;
        if e.victim {
            self.victim_context(id, a, now, out);
            return;
        }
        let pf_netdev = e.pf.and_then(|p| t.pf(p)).and_then(|p| p.netdev.clone());
        let correlated = self.correlation(a, now);
        let corroborated = self.corroboration(a, now);
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        if inc.state == IncidentState::Closed {
            return;
        }
        inc.pf_netdev = inc.pf_netdev.clone().or(pf_netdev);
        inc.pf = inc.pf.or(e.pf);
        inc.vf = inc.vf.or(e.vf);
        if let Some(o) = &e.owner {
            if inc.owner.as_ref() != Some(o) {
                inc.owner = Some(o.clone());
                inc.owner_history.push((now, o.label()));
            }
        }
        // An event may stand for a burst of identical records folded by the reader: the
        // windows and counts see every record, the evidence chain one line for the burst.
        let n = e.records();
        let mut evidence = match correlated {
            Some(c) => format!("{}; {c}", a.evidence),
            None => a.evidence.clone(),
        };
        if let Some(c) = corroborated {
            evidence.push_str(&format!("; {c}"));
        }
        if n > 1 {
            evidence.push_str(&format!("; {n} identical records"));
        }
        out.push(Decision::Attributed {
            incident: id,
            method: a.method,
            confidence: a.confidence,
            evidence: evidence.clone(),
        });
        inc.add_evidence(Evidence {
            at: now,
            kind: e.kind,
            method: a.method,
            confidence: a.confidence,
            text: evidence,
        });
        if a.confidence > inc.confidence || inc.faults == 0 {
            inc.method = a.method;
            inc.confidence = a.confidence;
        }
        if !counts {
            // A VF reset, even one its own driver asked for, lifts what the PF driver did to it.
            if let Some(rule) = self.offending_again(id, e, false, now, out) {
                self.escalate(id, &rule, t, now, out, true);
            }
            return;
        }
        inc.faults = inc.faults.saturating_add(n);
        inc.faults_since_action = inc.faults_since_action.saturating_add(n);
        inc.last_fault = now;
        inc.kinds.insert(e.kind);
        let driver_contains =
            e.kind == FaultKind::VfDisabled || DRIVER_CONTAINS.contains(&e.catalog_id.as_str());
        // Faulting again after being put back, or while a containment was supposed to hold:
        // climb again at once, whatever the windows say.
        let again = self.offending_again(id, e, driver_contains, now, out);
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        if driver_contains && e.vf.is_some() {
            // The PF driver contained the VF itself (i40e disabled it after MDD; ice ignores a
            // malicious VF's mailbox until it is reset): a VF reset lifts that, else the
            // policy's restore after the cool-down does.
            inc.driver_disabled = true;
            if inc.contained_at.is_none() {
                inc.contained_at = Some(now);
                transition(inc, Cause::Contained, out);
                out.push(Decision::Contained {
                    incident: id,
                    by: format!("driver: {}", e.catalog_id),
                });
            }
        }
        let crossed = windows::count(
            &mut inc.windows,
            &self.policy.rules,
            e.kind,
            (a.method, a.confidence),
            n,
            now,
        );
        if let Some(rule) = again {
            self.escalate(id, &rule, t, now, out, true);
        }
        for (rule, count) in crossed {
            out.push(Decision::ThresholdCrossed {
                incident: id,
                rule: rule.clone(),
                count,
            });
            self.escalate(id, &RuleRef::Rule(rule), t, now, out, false);
        }
    }
}

fn zero() -> Bdf {
    Bdf::from_requester_id(0, 0)
}

fn aer_event(function: Bdf, kind: FaultKind, n: u64) -> FaultEvent {
    FaultEvent {
        line: 0,
        end_line: 0,
        kind,
        severity: Severity::Warning,
        driver: None,
        device: Some(function),
        netdev: None,
        pf: None,
        vf: None,
        vf_abs: None,
        function: Some(function),
        queue: None,
        count: Some(n),
        mac: None,
        catalog_id: "aer.counters".into(),
        message: format!("{n} new {kind} errors in the AER counters"),
        trusted: true,
        trust: vfguard_model::TrustBasis::KernelRecord,
        format: vfguard_model::LogFormat::Kmsg,
        timestamp: None,
        seq: None,
        details: Default::default(),
        owner: None,
        repeats: 0,
        victim: false,
    }
}
