//! The engine: `observe(observation, topology, now) -> decisions`. Deterministic, sans-IO: the
//! same observations at the same times give the same decisions (a restart replays the journal
//! through it to rebuild its state).

use std::collections::{BTreeMap, HashMap, VecDeque};

use vfguard_model::{
    Action, ActionId, ActionKind, ActionOutcome, Bdf, Cause, Decision, FaultEvent, FaultKind,
    IncidentId, IncidentState, Millis, Observation, OperatorRequest, OwnerKind, Severity, Topology,
    VfChange, VfIndex, VfLinkState, VfStats,
};

use crate::attribute::{Attributed, Attributor, Key, Method};
use crate::incident::{ActionRecord, Evidence, Incident};
use crate::policy::{Mode, Policy, Rung};

/// Messages whose driver contains the VF by itself, beyond `vf_disabled` lines: ice's
/// mailbox-overflow warning (ice_virtchnl.c `ice_is_malicious_vf()`: later messages from that VF
/// are dropped until a VF reset clears the latch).
const DRIVER_CONTAINS: &[&str] = &["ice.mbx.overflow"];

/// An action not reported on within this long is taken as failed (`ETIMEDOUT`); actuators
/// time out well before.
const ACTION_BACKSTOP: Millis = 60_000;

/// Retries of one rung after a transient error (EBUSY, ETIMEDOUT) before stepping up.
const RETRIES: u32 = 1;

/// Whether a rung makes sense for what the incident has shown (a spoof-check does nothing
/// against malformed descriptors).
fn relevant(rung: Rung, kinds: &std::collections::BTreeSet<FaultKind>) -> bool {
    use FaultKind as K;
    let any = |ks: &[K]| ks.iter().any(|k| kinds.contains(k));
    match rung {
        Rung::SpoofchkOn | Rung::QuarantineVlan => {
            any(&[K::Spoof, K::MacOverride, K::VlanOverride])
        }
        Rung::TrustOff => any(&[K::Spoof, K::MacOverride, K::VlanOverride, K::Mailbox]),
        Rung::RateLimit => any(&[K::Spoof, K::Mailbox, K::TxHang]),
        Rung::Notify | Rung::VfReset | Rung::VfDisable | Rung::Detach | Rung::Pause => true,
    }
}

/// Moves `inc` by `cause` along the state machine ([`vfguard_model::incident`]) and says so;
/// a cause the table has no move for leaves the state as it is.
fn transition(inc: &mut Incident, cause: Cause, out: &mut Vec<Decision>) {
    if let Some(to) = inc.state.after(cause) {
        out.push(Decision::StateChanged {
            incident: inc.id,
            from: inc.state,
            to,
            cause,
        });
        inc.state = to;
    }
}

/// The cool-down before an incident's function is put back: doubled by each re-offence (up to
/// 16 times), so that a tenant that resumes at once spends ever longer contained.
fn cool_down(base: Millis, inc: &Incident) -> Millis {
    base.saturating_mul(1 << inc.reoffences.min(4))
}

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

    /// For a replay of a journal: the ids the journal gave to incidents and actions, in the
    /// order they were given; a replay that decides as the live run did then gives each the
    /// same id, even when retention deleted older incidents (whose ids the counters would
    /// otherwise reuse). Cleared with [`Engine::end_replay`].
    pub fn replay_ids(&mut self, incidents: Vec<IncidentId>, actions: Vec<ActionId>) {
        self.hints = IdHints {
            incidents: incidents.into(),
            actions: actions.into(),
        };
    }

    /// Ends a replay: ids left unused are dropped.
    pub fn end_replay(&mut self) {
        self.hints = IdHints::default();
    }

    /// Makes the next action and incident ids follow those already used (journalled), whatever
    /// a replay decided.
    pub fn reserve_ids(&mut self, max_action: Option<u64>, max_incident: Option<u64>) {
        if let Some(a) = max_action {
            self.next_action = self.next_action.max(a.saturating_add(1));
        }
        if let Some(i) = max_incident {
            self.next_incident = self.next_incident.max(i.saturating_add(1));
        }
    }

    /// Forgets the pending actions not in `journalled` (id, action name, function): decided by
    /// a replay only, they were never carried out, and must not be retried as interrupted ones.
    /// Returns how many.
    pub fn abandon_unjournalled(
        &mut self,
        journalled: &std::collections::HashSet<(ActionId, String, Bdf)>,
    ) -> usize {
        let gone: Vec<ActionId> = self
            .pending
            .iter()
            .filter(|(id, (iid, kind))| {
                let function = self.incidents.get(iid).and_then(|i| i.function);
                !function.is_some_and(|f| journalled.contains(&(**id, kind.name(), f)))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some((iid, _)) = self.pending.remove(id) {
                if let Some(a) = self
                    .incidents
                    .get_mut(&iid)
                    .and_then(|i| i.actions.iter_mut().find(|a| a.id == *id))
                {
                    a.result = Some(Err("decided by the replay only, never carried out".into()));
                }
            }
        }
        gone.len()
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
            Observation::VfStats { pf, vf, stats } => {
                let entry = self.stats.entry((*pf, *vf)).or_insert((*stats, None));
                let moved = stats.tx_dropped.saturating_sub(entry.0.tx_dropped);
                if moved > 0 {
                    entry.1 = Some((now, moved));
                }
                entry.0 = *stats;
            }
            Observation::Outcome(o) => {
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
        let id = self
            .hints
            .incidents
            .pop_front()
            .unwrap_or(IncidentId(self.next_incident));
        self.next_incident = self.next_incident.max(id.0.saturating_add(1));
        let mut inc = Incident::new(id, key, now);
        inc.function = match key {
            Key::Function(b) => Some(b),
            Key::PfLevel(b) => Some(b),
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
        // never opens one or counts.
        let counts = !(e.kind == FaultKind::VfReset && e.severity == Severity::Info);
        if !counts && !self.by_key.contains_key(&a.key) {
            return None;
        }
        let id = self.open(a.key, a, now, out);
        self.fault_in(id, a, counts, t, now, out);
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
        let pf_netdev = e.pf.and_then(|p| t.pf(p)).and_then(|p| p.netdev.clone());
        let correlated = self.correlation(a, now);
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
        if n > 1 {
            evidence.push_str(&format!("; {n} identical records"));
        }
        out.push(Decision::Attributed {
            incident: id,
            method: a.method.as_str().to_owned(),
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
        let mut crossed = Vec::new();
        for (ri, rule) in self.policy.rules.iter().enumerate() {
            if !rule.kinds.contains(&e.kind)
                || a.confidence < rule.min_confidence && a.method != Method::Unattributed
            {
                continue;
            }
            let w = inc.windows.entry(ri).or_default();
            let cap = usize::try_from(rule.threshold).unwrap_or(usize::MAX);
            // Every record of a burst is at `now`: more than `cap` of them would be trimmed.
            let pushes = usize::try_from(n).unwrap_or(usize::MAX).min(cap.max(1));
            w.extend(std::iter::repeat_n(now, pushes));
            while w
                .front()
                .is_some_and(|&t0| t0.saturating_add(rule.window) < now)
            {
                w.pop_front();
            }
            while w.len() > cap {
                w.pop_front();
            }
            if w.len() >= cap {
                crossed.push((
                    rule.name.clone(),
                    u32::try_from(w.len()).unwrap_or(u32::MAX),
                ));
            }
        }
        if let Some(rule) = again {
            self.escalate(id, &rule, t, now, out, true);
        }
        for (rule, count) in crossed {
            out.push(Decision::ThresholdCrossed {
                incident: id,
                rule: rule.clone(),
                count,
            });
            self.escalate(id, &rule, t, now, out, false);
        }
    }

    /// Whether this fault shows the function offending again: after its restore (a
    /// re-offence), or while a containment was supposed to hold (a VF reset lifted the
    /// driver's, or offences go on past the hold-down). Moves the incident back to
    /// `escalating` and returns the rule to climb with.
    fn offending_again(
        &mut self,
        id: IncidentId,
        e: &FaultEvent,
        driver_contains: bool,
        now: Millis,
        out: &mut Vec<Decision>,
    ) -> Option<String> {
        let hold = self.policy.hold_down;
        let inc = self.incidents.get_mut(&id)?;
        if inc.restoring {
            return None;
        }
        match inc.state {
            IncidentState::Restored if e.kind.is_offence() => {
                inc.reoffences = inc.reoffences.saturating_add(1);
                inc.contained_at = None;
                inc.restored_at = None;
                inc.driver_disabled = false;
                // Resume at the rung that contained it: the rungs below did not stop it before.
                if let Some(r) = inc.contain_rung {
                    inc.rung = r;
                }
                transition(inc, Cause::Reoffended, out);
                Some(format!(
                    "re-offence {} after the restore: {}",
                    inc.reoffences, e.kind
                ))
            }
            IncidentState::Contained => {
                let lifted = e.kind == FaultKind::VfReset && inc.driver_disabled;
                let broken = e.kind.is_offence()
                    && !driver_contains
                    && inc
                        .contained_at
                        .is_some_and(|c| now > c.saturating_add(hold));
                if !(lifted || broken) {
                    return None;
                }
                inc.contained_at = None;
                inc.driver_disabled = false;
                transition(inc, Cause::ContainmentUndone, out);
                Some(if lifted {
                    "containment undone: a VF reset lifted the driver's".to_owned()
                } else {
                    format!("containment undone: {} while contained", e.kind)
                })
            }
            _ => None,
        }
    }

    /// No rung is left that works for this function, and it is not contained: say so, notify
    /// now, and again every `renotify_every` while its faults go on ([`Engine::tick`]).
    fn exhausted(
        &mut self,
        id: IncidentId,
        rule: &str,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        if inc.state == IncidentState::Uncontained {
            return;
        }
        transition(inc, Cause::Exhausted, out);
        if inc.state != IncidentState::Uncontained {
            return;
        }
        let rule = format!(
            "uncontained: no rung of the ladder is left that works for {} (after {rule})",
            inc.owner_label()
        );
        self.decide(id, ActionKind::Notify, None, &rule, t, now, out);
    }

    /// For a PF-level spoof line: which VFs' dropped counters moved lately (evidence only).
    fn correlation(&self, a: &Attributed, now: Millis) -> Option<String> {
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

    fn guard_ok(&mut self, pf: Option<Bdf>, now: Millis) -> Result<(), String> {
        let w = self.policy.guard_window;
        while self
            .recent
            .front()
            .is_some_and(|(t0, _)| t0.saturating_add(w) <= now)
        {
            self.recent.pop_front();
        }
        let host = self.recent.len();
        let on_pf = self
            .recent
            .iter()
            .filter(|(_, p)| *p == pf && pf.is_some())
            .count();
        if host >= usize::try_from(self.policy.max_actions_per_host).unwrap_or(usize::MAX) {
            return Err(format!(
                "guard: {host} actions on the host in the last {} ms",
                w
            ));
        }
        if pf.is_some()
            && on_pf >= usize::try_from(self.policy.max_actions_per_pf).unwrap_or(usize::MAX)
        {
            return Err(format!(
                "guard: {on_pf} actions on PF {} in the last {} ms",
                pf.map(|p| p.to_string()).unwrap_or_default(),
                w
            ));
        }
        Ok(())
    }

    /// The next applicable rung at or above `from`, with its action.
    fn next_rung(
        &self,
        inc: &Incident,
        from: usize,
        t: &Topology,
    ) -> Option<(usize, Rung, ActionKind)> {
        let is_vf = inc.vf.is_some() && inc.pf_netdev.is_some();
        let vm = inc.owner.as_ref().is_some_and(|o| o.kind == OwnerKind::Vm);
        let pod = inc
            .owner
            .as_ref()
            .is_some_and(|o| o.kind == OwnerKind::Netns);
        let state = inc
            .pf
            .zip(inc.vf)
            .and_then(|(p, v)| t.vf(p, v))
            .and_then(|v| v.state.clone());
        for (i, rung) in self.policy.ladder.iter().enumerate().skip(from) {
            if !relevant(*rung, &inc.kinds) {
                continue;
            }
            let kind = match rung.vf_change(&self.policy) {
                Some(change) if is_vf => {
                    let already = match (&state, change) {
                        (Some(s), VfChange::SpoofChk(on)) => s.spoofchk == Some(on),
                        (Some(s), VfChange::Trust(on)) => s.trust == Some(on),
                        (Some(s), VfChange::LinkState(l)) => s.link_state == Some(l),
                        _ => false,
                    };
                    if already {
                        continue;
                    }
                    ActionKind::SetVf(change)
                }
                Some(_) => continue,
                None => match rung {
                    Rung::Notify => ActionKind::Notify,
                    Rung::VfReset if inc.vf.is_some() => ActionKind::ResetVf,
                    // A VM's function is unplugged, a pod's VF evicted from its namespace
                    // (docs/actions.md).
                    Rung::Detach if vm || pod => ActionKind::Detach,
                    Rung::Pause if vm => ActionKind::PauseVm,
                    _ => continue,
                },
            };
            return Some((i, *rung, kind));
        }
        None
    }

    fn escalate(
        &mut self,
        id: IncidentId,
        rule: &str,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
        fallback: bool,
    ) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        if inc.contained_at.is_some() || inc.restoring {
            return;
        }
        if !fallback {
            if let Some(last) = inc.last_action_at {
                if now < last.saturating_add(self.policy.hold_down) || inc.faults_since_action == 0
                {
                    return;
                }
            }
        }
        let tenant = inc.tenant() && inc.method != Method::Unattributed;
        let Some((ri, rung, kind)) = self.next_rung(inc, inc.rung, t) else {
            if tenant {
                self.exhausted(id, rule, t, now, out);
            }
            return;
        };
        let inc_rung_only_notify = !tenant;
        if inc_rung_only_notify && rung != Rung::Notify {
            // No tenant is known to be at fault: notify once, never punish anyone.
            if inc.actions.is_empty() {
                self.decide(id, ActionKind::Notify, None, rule, t, now, out);
            }
            return;
        }
        let label = inc.owner_label();
        if rung != Rung::Notify {
            if self.policy.excluded(&label) {
                out.push(Decision::Suppressed {
                    incident: id,
                    action: rung.name().into(),
                    reason: format!("{label} is on the exclusion list: notify only"),
                });
                self.bump(id, ri, now);
                if inc_notified(self, id) {
                    return;
                }
                self.decide(id, ActionKind::Notify, None, rule, t, now, out);
                return;
            }
            if self.policy.mode == Mode::Observe {
                out.push(Decision::Suppressed {
                    incident: id,
                    action: rung.name().into(),
                    reason: "observe mode".into(),
                });
                self.bump(id, ri, now);
                return;
            }
            let pf = self.incidents.get(&id).and_then(|i| i.pf);
            if let Err(reason) = self.guard_ok(pf, now) {
                out.push(Decision::Suppressed {
                    incident: id,
                    action: rung.name().into(),
                    reason,
                });
                return;
            }
        }
        self.decide(id, kind, Some(ri), rule, t, now, out);
    }

    fn bump(&mut self, id: IncidentId, ri: usize, now: Millis) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.rung = ri + 1;
            inc.last_action_at = Some(now);
            inc.faults_since_action = 0;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        id: IncidentId,
        kind: ActionKind,
        rung: Option<usize>,
        rule: &str,
        _t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        let dry_run = self.policy.mode == Mode::DryRun && kind != ActionKind::Notify;
        let aid = self
            .hints
            .actions
            .pop_front()
            .unwrap_or(ActionId(self.next_action));
        self.next_action = self.next_action.max(aid.0.saturating_add(1));
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let action = Action {
            id: aid,
            incident: id,
            function: inc.function.unwrap_or(zero()),
            pf: inc.pf,
            pf_netdev: inc.pf_netdev.clone(),
            vf: inc.vf,
            owner: inc.owner.clone(),
            kind: kind.clone(),
            rule: rule.to_owned(),
            dry_run,
            at: now,
        };
        let attempt = inc
            .actions
            .last()
            .filter(|a| a.rung == rung && rung.is_some())
            .map_or(1, |a| a.attempt + 1);
        inc.actions.push(ActionRecord {
            id: aid,
            name: kind.name(),
            rung,
            at: now,
            result: None,
            attempt,
        });
        if let Some(r) = rung {
            inc.rung = r + 1;
        }
        inc.last_action_at = Some(now);
        inc.faults_since_action = 0;
        if kind == ActionKind::Notify {
            inc.notified_at = Some(now);
            inc.faults_at_notice = inc.faults;
        } else if !inc.restoring {
            transition(inc, Cause::Escalated, out);
        }
        if kind != ActionKind::Notify {
            self.recent.push_back((now, inc.pf));
        }
        self.pending.insert(aid, (id, kind));
        out.push(Decision::Act(action));
    }

    fn outcome(&mut self, o: &ActionOutcome, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        let Some((id, kind)) = self.pending.remove(&o.id) else {
            return;
        };
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let mut retry = None;
        let mut rung = None;
        if let Some(rec) = inc.actions.iter_mut().find(|a| a.id == o.id) {
            rung = rec.rung;
            rec.result = Some(match &o.error {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            });
            if let Some(e) = &o.error {
                retry = Some((rec.rung, rec.attempt, e.clone()));
            }
        }
        if o.error.is_none() {
            if inc.pre_state.is_none() {
                inc.pre_state = o.before.clone();
            }
            match &kind {
                ActionKind::Restore(_) | ActionKind::ResetVf if inc.restoring => {
                    inc.restoring = false;
                    inc.restored_at = Some(now);
                    inc.contained_at = None;
                    transition(inc, Cause::Restored, out);
                    out.push(Decision::Restored { incident: id });
                }
                k if k.contains() && inc.contained_at.is_none() => {
                    inc.contained_at = Some(now);
                    inc.contain_rung = rung.or(inc.contain_rung);
                    transition(inc, Cause::Contained, out);
                    out.push(Decision::Contained {
                        incident: id,
                        by: k.name(),
                    });
                }
                _ => {}
            }
            return;
        }
        if inc.restoring {
            inc.restoring = false;
            return;
        }
        // A failed rung is never silent: retry a transient error once, else step up now.
        if let Some((Some(rung), attempt, err)) = retry {
            let transient = matches!(err.as_str(), "EBUSY" | "ETIMEDOUT" | "EAGAIN");
            if transient && attempt <= RETRIES {
                let pf = self.incidents.get(&id).and_then(|i| i.pf);
                match self.guard_ok(pf, now) {
                    Ok(()) => {
                        let rule = format!("retry after {err}");
                        self.decide(id, kind, Some(rung), &rule, t, now, out);
                    }
                    Err(reason) => out.push(Decision::Suppressed {
                        incident: id,
                        action: kind.name(),
                        reason,
                    }),
                }
            } else {
                let rule = format!("fallback after {} failed: {err}", kind.name());
                self.escalate(id, &rule, t, now, out, true);
            }
        }
    }

    fn operator(
        &mut self,
        req: &OperatorRequest,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        match req {
            OperatorRequest::Quarantine {
                function,
                reason,
                by,
            } => {
                let e = operator_event(*function, t);
                let a = Attributed {
                    evidence: format!("quarantine requested by {by}: {reason}"),
                    key: Key::Function(*function),
                    method: Method::Direct,
                    confidence: 1.0,
                    event: e,
                };
                let id = self.open(a.key, &a, now, out);
                if let Some(inc) = self.incidents.get_mut(&id) {
                    inc.pf = inc.pf.or(a.event.pf);
                    inc.vf = inc.vf.or(a.event.vf);
                    inc.pf_netdev = inc.pf_netdev.clone().or(a
                        .event
                        .pf
                        .and_then(|p| t.pf(p))
                        .and_then(|p| p.netdev.clone()));
                    inc.add_evidence(Evidence {
                        at: now,
                        kind: FaultKind::Admin,
                        method: Method::Direct,
                        confidence: 1.0,
                        text: a.evidence.clone(),
                    });
                }
                let Some(inc) = self.incidents.get(&id) else {
                    return;
                };
                let vm = inc.owner.as_ref().is_some_and(|o| o.kind == OwnerKind::Vm);
                let kind = if inc.vf.is_some() && inc.pf_netdev.is_some() {
                    ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable))
                } else if vm {
                    ActionKind::Detach
                } else {
                    out.push(Decision::Suppressed { incident: id, action: "quarantine".into(), reason: format!("{function} is neither a VF nor held by a VM: nothing to quarantine it with") });
                    return;
                };
                let rule = format!("operator {by}: {reason}");
                self.decide(id, kind, None, &rule, t, now, out);
            }
            OperatorRequest::Release { function, by } => {
                let Some(&id) = self.by_key.get(&Key::Function(*function)) else {
                    return;
                };
                // Put it back as it was, as the cool-down does.
                if let Some(kind) = self.incidents.get(&id).and_then(Incident::restore_kind) {
                    let rule = format!("operator {by}: release");
                    self.restore(id, kind, &rule, t, now, out);
                }
                self.close(id, &format!("released by {by}"), out);
            }
            OperatorRequest::SetMode { mode, by } => {
                let (from, to) = (self.policy.mode, *mode);
                self.policy.mode = to;
                out.push(Decision::ModeChanged {
                    from: from.as_str().to_owned(),
                    to: to.as_str().to_owned(),
                    by: by.clone(),
                });
            }
        }
    }

    /// Decides the action that puts an incident's function back as it was.
    fn restore(
        &mut self,
        id: IncidentId,
        kind: ActionKind,
        rule: &str,
        t: &Topology,
        now: Millis,
        out: &mut Vec<Decision>,
    ) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.restoring = true;
        }
        self.decide(id, kind, None, rule, t, now, out);
    }

    fn close(&mut self, id: IncidentId, reason: &str, out: &mut Vec<Decision>) {
        if let Some(mut inc) = self.incidents.remove(&id) {
            transition(&mut inc, Cause::Closed, out);
            self.by_key.remove(&inc.key);
            out.push(Decision::Closed {
                incident: id,
                reason: reason.to_owned(),
            });
        }
    }

    fn tick(&mut self, t: &Topology, now: Millis, out: &mut Vec<Decision>) {
        // An action no actuator reported on within the backstop timeout failed: never wait
        // forever (and never let an incident stay in memory for it).
        let mut stale: Vec<ActionId> = self
            .pending
            .iter()
            .filter(|(aid, (iid, _))| {
                self.incidents
                    .get(iid)
                    .and_then(|i| i.actions.iter().find(|a| a.id == **aid))
                    .is_none_or(|a| a.at + ACTION_BACKSTOP <= now)
            })
            .map(|(aid, _)| *aid)
            .collect();
        stale.sort();
        for id in stale {
            let o = ActionOutcome {
                id,
                error: Some("ETIMEDOUT".into()),
                before: None,
                at: now,
            };
            self.outcome(&o, t, now, out);
        }
        let w = self.policy.sequence_window;
        for a in self.attributor.expire(t, now, w) {
            self.fault(&a, t, now, out);
        }
        let (cool, close_after) = (self.policy.cool_down, self.policy.close_after);
        let ids: Vec<IncidentId> = self.incidents.keys().copied().collect();
        for id in ids {
            let Some(inc) = self.incidents.get(&id) else {
                continue;
            };
            let quiet = now.saturating_sub(inc.last_fault);
            let pending = inc.actions.iter().any(|a| a.result.is_none());
            if inc.state == IncidentState::Uncontained
                && inc.faults > inc.faults_at_notice
                && quiet < close_after
                && inc
                    .notified_at
                    .is_none_or(|n| now >= n.saturating_add(self.policy.renotify_every))
            {
                let rule = format!(
                    "still uncontained: {} faults since the last notice",
                    inc.faults - inc.faults_at_notice
                );
                self.decide(id, ActionKind::Notify, None, &rule, t, now, out);
                continue;
            }
            if inc.contained_at.is_some()
                && inc.restored_at.is_none()
                && !inc.restoring
                && !pending
                && quiet >= cool_down(cool, inc)
            {
                // Cool-down passed: put the function back as it was before we (or its driver) acted.
                if self.policy.mode == Mode::Observe {
                    continue;
                }
                match inc.restore_kind() {
                    Some(kind) => self.restore(id, kind, "cool_down", t, now, out),
                    None => self.close(id, "contained, nothing to restore", out),
                }
                continue;
            }
            let done = inc
                .restored_at
                .map_or(!pending && inc.contained_at.is_none(), |r| {
                    now >= r.saturating_add(close_after)
                });
            if done && quiet >= close_after && !inc.restoring {
                self.close(id, "quiet", out);
            }
        }
    }
}

/// Ids a replay takes from the journal.
#[derive(Debug, Default)]
struct IdHints {
    incidents: VecDeque<IncidentId>,
    actions: VecDeque<ActionId>,
}

fn inc_notified(e: &Engine, id: IncidentId) -> bool {
    e.incidents
        .get(&id)
        .is_some_and(|i| i.actions.iter().any(|a| a.name == "notify"))
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
    }
}

fn operator_event(function: Bdf, t: &Topology) -> FaultEvent {
    let mut e = aer_event(function, FaultKind::Admin, 0);
    e.catalog_id = "operator".into();
    e.message = "operator request".into();
    e.resolve(t);
    e
}
