//! The scenario's `[expect]` checker: one judge for every run of a scenario, whether the agent
//! acted (`vfguard simulate`, `vfguard demo`, the agent's scenario test) or the host ran alone
//! (`vfguard simulate --host-only`). Its verdict is the report's `expectations` object.
//!
//! # What it checks
//! Of every run:
//! - each culprit had a fault attributed to it;
//! - no other tenant (VM or container) was blamed for anything (a VM holding a PF of
//!   `hardware_faults` whole is that PF's owner of record: its incident may name the VM);
//! - each PF in `hardware_faults` had something reported, and was not blamed on a tenant.
//!
//! What a VF's own driver said befell it (evidence beginning
//! [`vfguard_model::VICTIM_CONTEXT`]) is never taken for a fault of its owner.
//!
//! Of an agent's run, from its decisions alone (the timeline of `(Millis, Decision)`), also:
//! - each culprit was contained, within `contained_within_ms` of its incident's first fault;
//! - no one but a culprit was acted on (anything beyond notify, restore and the cool-down);
//! - **re-offence**: with `contained_within_ms`, every fault of a culprit while none of its
//!   incidents is contained starts a clock, and one of its incidents must be contained by the
//!   fault's time plus `contained_within_ms` (unless the run ends first). One failure is
//!   reported per such uncontained stretch, with its times. A containment that faults outlive
//!   by more than `contained_within_ms` did not hold (the driver lifted its own, say, while the
//!   decisions still say "contained"): such a fault starts a clock too, which only a new
//!   containment stops;
//! - each culprit listed in `uncontained` (nothing can contain it) instead had an incident reach
//!   state `uncontained`, and was notified at least twice from then on (the notice that says so,
//!   and a re-notification while it lasts).
//!
//! An incident's state is read from its `StateChanged` decisions; for an incident that has
//! none (an engine that does not emit them), from its `Contained`, `Restored` and `Closed`
//! decisions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vfguard_model::{
    ActionKind, Bdf, Decision, IncidentId, IncidentState, Millis, OwnerKind, RuleRef,
    VICTIM_CONTEXT,
};

use crate::report::Incident;
use crate::scenario::Scenario;
use crate::state::vf_bdf;

/// Whether the scenario's expectations held (the report's `expectations` object; the field
/// names are a scripted interface).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expectations {
    /// All checked expectations held.
    pub passed: bool,
    /// What did not hold.
    pub failures: Vec<String>,
    /// What could not be checked in this run, and why.
    pub skipped: Vec<String>,
}

/// What happened in a run, as the checker sees it.
#[derive(Debug, Clone, Copy)]
pub enum Run<'a> {
    /// The agent acted: every decision it made, in order, with the virtual time it made it.
    Agent(&'a [(Millis, Decision)]),
    /// The host ran alone: the incidents [`crate::report::host_only`] found in its log.
    HostOnly(&'a [Incident]),
}

/// Checks a run of `scenario` against its `[expect]` table.
pub fn check(scenario: &Scenario, run: Run<'_>) -> Expectations {
    let mut x = Expectations::default();
    match run {
        Run::Agent(decisions) => agent(scenario, decisions, &mut x),
        Run::HostOnly(incidents) => host_only(scenario, incidents, &mut x),
    }
    x.passed = x.failures.is_empty();
    x
}

fn culprits(sc: &Scenario) -> BTreeSet<&str> {
    sc.expect
        .culprits
        .iter()
        .map(|c| c.get_ref().as_str())
        .collect()
}

/// `12.3 s`.
fn secs(ms: Millis) -> String {
    format!("{}.{} s", ms / 1000, ms % 1000 / 100)
}

fn host_only(sc: &Scenario, list: &[Incident], x: &mut Expectations) {
    let culprits = culprits(sc);
    if sc.expect.localized {
        let names: Vec<&str> = culprits.iter().copied().collect();
        x.skipped.push(format!(
            "culprits ({}): not looked for, their faults name no VF and only the agent's localization finds them",
            names.join(", ")
        ));
        if !list
            .iter()
            .any(|i| i.vf.is_none() && i.owner.kind == "host")
        {
            x.failures.push(
                "the faults naming no VF must stay on their PF (no PF-level incident)".into(),
            );
        }
    }
    for c in culprits.iter().filter(|_| !sc.expect.localized) {
        if !list
            .iter()
            .any(|i| i.owner.name.as_deref().map(|n| sc.tenant_name(n)) == Some(c))
        {
            x.failures
                .push(format!("culprit {c}: no fault was attributed to it"));
        }
    }
    for i in list {
        let tenant = matches!(i.owner.kind.as_str(), "vm" | "netns");
        let name = i.owner.name.as_deref().map(|n| sc.tenant_name(n));
        if let (true, Some(n)) = (tenant, name) {
            if !culprits.contains(n) && !whole_nic_hardware(sc, i.function) {
                x.failures.push(format!(
                    "{n} is not a culprit but incident {} ({:?}) was attributed to it",
                    i.id, i.kinds
                ));
            }
        }
    }
    for pf in &sc.expect.hardware_faults {
        let on_pf: Vec<&Incident> = list
            .iter()
            .filter(|i| i.pf == Some(*pf) || i.function == Some(*pf))
            .collect();
        if on_pf.is_empty() {
            x.failures
                .push(format!("hardware fault on {pf}: nothing was reported"));
        }
        // The PF's own incidents (its function, or lines naming none of its functions) must not
        // be pinned on a tenant; its VFs' incidents are their tenants' business.
        for i in on_pf
            .iter()
            .filter(|i| i.function == Some(*pf) || i.function.is_none())
        {
            // A VM holding the PF whole is its owner of record (it may be told), not its cause.
            let blamed = match i.owner.kind.as_str() {
                "netns" => true,
                "vm" => i.function != Some(*pf),
                _ => false,
            };
            if blamed {
                x.failures.push(format!(
                    "hardware fault on {pf} was blamed on {:?}",
                    i.owner.name
                ));
            }
        }
    }
    if let Some(ms) = sc.expect.contained_within_ms {
        x.skipped.push(format!(
            "contained_within_ms ({ms}): not checked, the host ran alone (no agent acted)"
        ));
    }
    if !sc.expect.uncontained.is_empty() {
        let names: Vec<&str> = sc
            .expect
            .uncontained
            .iter()
            .map(|u| u.get_ref().as_str())
            .collect();
        x.skipped.push(format!(
            "uncontained ({}): not checked, the host ran alone (no agent acted)",
            names.join(", ")
        ));
    }
}

/// Whether `function` is a PF in `hardware_faults` (its faults are the link's or the
/// hardware's): an incident of it names its owner of record (a VM holding the NIC whole, which
/// may be notified) without blaming it; acting on that VM is still a failure.
fn whole_nic_hardware(sc: &Scenario, function: Option<Bdf>) -> bool {
    function.is_some_and(|f| sc.expect.hardware_faults.contains(&f))
}

/// One incident of an agent's run, as its decisions tell it.
struct Inc {
    function: Bdf,
    owner_kind: Option<OwnerKind>,
    owner: Option<String>,
    opened_ms: Millis,
    first_contained_ms: Option<Millis>,
    /// The evidence of its first attributed fault (none: no fault was attributed to it).
    first_evidence: Option<String>,
    state: IncidentState,
    /// Its state comes from `StateChanged` decisions (else from Contained/Restored/Closed).
    by_state_changes: bool,
    /// When it first reached state `uncontained`.
    uncontained_at: Option<Millis>,
    /// When it was notified.
    notified: Vec<Millis>,
}

/// How a culprit's last containment ended.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Restored,
    Undone,
    Closed(IncidentId),
    Other(IncidentState),
    /// Faults went on well after the containment that began then: it did not hold.
    NotHolding(Millis),
}

/// A stretch of a culprit's faults with none of its incidents contained.
struct Stretch {
    first_fault: Millis,
    last_fault: Millis,
    faults: u64,
    /// How and when the culprit's previous containment ended (none: it never was contained).
    after: Option<(Millis, Ended)>,
}

/// The containment clock of one culprit.
#[derive(Default)]
struct Clock {
    /// Its contained incidents, and since when.
    contained: BTreeMap<IncidentId, Millis>,
    ended: Option<(Millis, Ended)>,
    stretch: Option<Stretch>,
    /// Stretches that missed their deadline: the stretch and when it was contained (if ever).
    missed: Vec<(Stretch, Option<Millis>)>,
}

impl Clock {
    fn fault(&mut self, at: Millis, limit: Option<Millis>) {
        if let Some(&since) = self.contained.values().max() {
            // Lines printed before a containment took hold are read a little later: only
            // faults well after it (beyond the deadline) show that it does not hold.
            if limit.is_none_or(|l| at <= since.saturating_add(l)) {
                return;
            }
            self.contained.clear();
            self.ended = Some((at, Ended::NotHolding(since)));
        }
        match &mut self.stretch {
            Some(s) => {
                s.faults += 1;
                s.last_fault = at;
            }
            None => {
                self.stretch = Some(Stretch {
                    first_fault: at,
                    last_fault: at,
                    faults: 1,
                    after: self.ended,
                });
            }
        }
    }

    fn contained(&mut self, i: IncidentId, at: Millis, limit: Option<Millis>) {
        self.contained.insert(i, at);
        if let Some(s) = self.stretch.take() {
            if limit.is_some_and(|l| at > s.first_fault.saturating_add(l)) {
                self.missed.push((s, Some(at)));
            }
        }
    }

    fn released(&mut self, i: IncidentId, at: Millis, how: Ended) {
        if self.contained.remove(&i).is_some() && self.contained.is_empty() {
            self.ended = Some((at, how));
        }
    }

    /// The run ended at `end`: a stretch whose deadline fell within the run missed it.
    fn finish(&mut self, end: Millis, limit: Option<Millis>) {
        if let (Some(s), Some(l)) = (self.stretch.take(), limit) {
            if s.first_fault.saturating_add(l) <= end {
                self.missed.push((s, None));
            }
        }
    }
}

fn missed_text(c: &str, s: &Stretch, contained: Option<Millis>, limit: Millis) -> String {
    let head = match s.after {
        None => format!(
            "culprit {c}: faulted at {} and was not contained within {limit} ms",
            secs(s.first_fault)
        ),
        Some((_, Ended::NotHolding(since))) => format!(
            "culprit {c}: faulted at {} although contained since {} (so the containment no \
             longer held) and was not contained again within {limit} ms",
            secs(s.first_fault),
            secs(since)
        ),
        Some((t, how)) => {
            let after = match how {
                Ended::Restored => format!("its restore at {}", secs(t)),
                Ended::Undone => format!("its containment was undone at {}", secs(t)),
                Ended::Closed(i) => format!("its incident {} closed at {}", i.0, secs(t)),
                Ended::Other(state) => format!("its containment ended ({state}) at {}", secs(t)),
                Ended::NotHolding(since) => format!("its containment at {}", secs(since)),
            };
            format!(
                "culprit {c}: faulted at {} after {after} and was not contained again within \
                 {limit} ms",
                secs(s.first_fault)
            )
        }
    };
    match contained {
        Some(t) => format!(
            "{head} (contained at {}, {} ms after that fault)",
            secs(t),
            t.saturating_sub(s.first_fault)
        ),
        None => format!(
            "{head} ({} faults until {}, never contained again)",
            s.faults,
            secs(s.last_fault)
        ),
    }
}

/// The PF of a function of this scenario (a PF's own BDF, or one of its VFs').
fn pf_of(sc: &Scenario, f: Bdf) -> Option<Bdf> {
    sc.pf
        .iter()
        .find(|p| p.bdf == f || (0..p.numvfs).any(|i| vf_bdf(p.bdf, i) == f))
        .map(|p| p.bdf)
}

/// Whether an action acts on its function's owner: anything beyond telling someone and putting
/// things back (a notify, a restore, the cool-down) or a localization probe's gate (a reverted
/// test, never a punishment; every gate must come off: [`agent`] checks). Only culprits may be
/// acted on.
pub fn acts_on(a: &vfguard_model::Action) -> bool {
    !matches!(a.kind, ActionKind::Notify | ActionKind::Restore(_))
        && !matches!(
            a.rule,
            RuleRef::CoolDown | RuleRef::Probe { .. } | RuleRef::ProbeReverted { .. }
        )
}

fn agent(sc: &Scenario, decisions: &[(Millis, Decision)], x: &mut Expectations) {
    let culprits = culprits(sc);
    let uncontained: BTreeSet<&str> = sc
        .expect
        .uncontained
        .iter()
        .map(|u| u.get_ref().as_str())
        .collect();
    let limit = sc.expect.contained_within_ms;
    let mut incs: BTreeMap<IncidentId, Inc> = BTreeMap::new();
    let mut clocks: BTreeMap<&str, Clock> = culprits
        .iter()
        .filter(|c| !uncontained.contains(*c))
        .map(|c| (*c, Clock::default()))
        .collect();
    // Innocents acted on: name (or function and owner kind) -> what was done, first time.
    let mut acted_on: BTreeMap<String, (Millis, String)> = BTreeMap::new();
    // Localization gates on and not yet taken off: function -> (when, round).
    let mut gated: BTreeMap<Bdf, (Millis, u32)> = BTreeMap::new();
    let set_state = |incs: &mut BTreeMap<IncidentId, Inc>,
                     clocks: &mut BTreeMap<&str, Clock>,
                     i: IncidentId,
                     to: IncidentState,
                     at: Millis| {
        let Some(inc) = incs.get_mut(&i) else { return };
        let from = std::mem::replace(&mut inc.state, to);
        if to == IncidentState::Uncontained {
            inc.uncontained_at.get_or_insert(at);
        }
        if to == IncidentState::Contained {
            inc.first_contained_ms.get_or_insert(at);
        }
        let Some(clock) = inc.owner.as_deref().and_then(|o| clocks.get_mut(o)) else {
            return;
        };
        if to == IncidentState::Contained {
            clock.contained(i, at, limit);
        } else if from == IncidentState::Contained {
            let how = match to {
                IncidentState::Restored => Ended::Restored,
                IncidentState::Escalating => Ended::Undone,
                IncidentState::Closed => Ended::Closed(i),
                other => Ended::Other(other),
            };
            clock.released(i, at, how);
        }
    };
    for (at, d) in decisions {
        let at = *at;
        match d {
            Decision::IncidentOpened {
                incident,
                function,
                owner,
            } => {
                incs.entry(*incident).or_insert_with(|| Inc {
                    function: *function,
                    owner_kind: owner.as_ref().map(|o| o.kind),
                    owner: owner
                        .as_ref()
                        .and_then(|o| o.name.as_deref())
                        .map(|n| sc.tenant_name(n).to_owned()),
                    opened_ms: at,
                    first_contained_ms: None,
                    first_evidence: None,
                    state: IncidentState::Open,
                    by_state_changes: false,
                    uncontained_at: None,
                    notified: Vec::new(),
                });
            }
            Decision::Attributed {
                incident,
                method,
                evidence,
                ..
            } => {
                // What a VF's own driver said befell it is context, not a fault of its owner.
                if evidence.starts_with(VICTIM_CONTEXT) {
                    continue;
                }
                if let Some(inc) = incs.get_mut(incident) {
                    inc.first_evidence
                        .get_or_insert_with(|| format!("{method}: {evidence}"));
                    if let Some(clock) = inc.owner.as_deref().and_then(|o| clocks.get_mut(o)) {
                        clock.fault(at, limit);
                    }
                }
            }
            Decision::StateChanged { incident, to, .. } => {
                if let Some(inc) = incs.get_mut(incident) {
                    inc.by_state_changes = true;
                }
                set_state(&mut incs, &mut clocks, *incident, *to, at);
            }
            Decision::Contained { incident, .. }
            | Decision::Restored { incident }
            | Decision::Closed { incident, .. } => {
                // Only where the engine does not say the state itself.
                if incs.get(incident).is_some_and(|i| !i.by_state_changes) {
                    let to = match d {
                        Decision::Contained { .. } => IncidentState::Contained,
                        Decision::Restored { .. } => IncidentState::Restored,
                        _ => IncidentState::Closed,
                    };
                    set_state(&mut incs, &mut clocks, *incident, to, at);
                }
            }
            Decision::Act(a) => {
                match a.rule {
                    RuleRef::Probe { round, .. } if !a.dry_run => {
                        gated.insert(a.function, (at, round));
                    }
                    RuleRef::ProbeReverted { .. } => {
                        gated.remove(&a.function);
                    }
                    _ => {}
                }
                if matches!(a.kind, ActionKind::Notify) {
                    if let Some(inc) = incs.get_mut(&a.incident) {
                        inc.notified.push(at);
                    }
                }
                if acts_on(a) {
                    let name = a
                        .owner
                        .as_ref()
                        .and_then(|o| o.name.as_deref())
                        .map(|n| sc.tenant_name(n).to_owned());
                    let innocent = name.as_deref().is_none_or(|n| !culprits.contains(n));
                    if innocent {
                        let who = name.unwrap_or_else(|| {
                            let kind = a.owner.as_ref().map_or("none", |o| o.kind.as_str());
                            format!("{} (owner {kind})", a.function)
                        });
                        acted_on.entry(who).or_insert_with(|| (at, a.kind.name()));
                    }
                }
            }
            Decision::ThresholdCrossed { .. }
            | Decision::Suppressed { .. }
            | Decision::ModeChanged { .. } => {}
        }
    }
    for (f, (at, round)) in &gated {
        x.failures.push(format!(
            "localization gate of round {round} on {f} at {} was never taken off",
            secs(*at)
        ));
    }
    let end = sc.scenario.duration_ms;
    for clock in clocks.values_mut() {
        clock.finish(end, limit);
    }

    // Each culprit found and contained (in time), or, if nothing can contain it, said so.
    let mut late_first: BTreeSet<&str> = BTreeSet::new();
    for c in &culprits {
        let mine: Vec<&Inc> = incs
            .values()
            .filter(|i| i.owner.as_deref() == Some(*c))
            .collect();
        if mine.is_empty() {
            x.failures
                .push(format!("culprit {c}: no fault was attributed to it"));
            late_first.insert(c);
            continue;
        }
        if uncontained.contains(c) {
            // Notified once it said so (at that moment included), and again later.
            match mine.iter().filter_map(|i| i.uncontained_at).min() {
                None => x.failures.push(format!(
                    "culprit {c}: nothing can contain it, but no incident of it reached state \
                     uncontained"
                )),
                Some(since) => {
                    let notified = mine
                        .iter()
                        .flat_map(|i| &i.notified)
                        .filter(|t| **t >= since)
                        .count();
                    if notified < 2 {
                        x.failures.push(format!(
                            "culprit {c}: uncontained since {} but notified {notified} time(s) \
                             since; it must be notified again while uncontained (at least twice)",
                            secs(since)
                        ));
                    }
                }
            }
            continue;
        }
        match mine
            .iter()
            .filter_map(|i| i.first_contained_ms.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
        {
            None => {
                x.failures.push(format!("culprit {c}: never contained"));
                late_first.insert(c);
            }
            Some((i, t)) => {
                if let Some(limit) = limit {
                    let took = t.saturating_sub(i.opened_ms);
                    if took > limit {
                        x.failures.push(format!(
                            "culprit {c}: contained {took} ms after its first fault (limit {limit})"
                        ));
                        late_first.insert(c);
                    }
                }
            }
        }
    }
    for (who, (at, what)) in &acted_on {
        x.failures.push(format!(
            "{who} is not a culprit but was acted on ({what} at {})",
            secs(*at)
        ));
    }
    for (id, i) in &incs {
        let tenant = matches!(i.owner_kind, Some(OwnerKind::Vm | OwnerKind::Netns));
        if let (true, Some(n), Some(ev)) = (tenant, i.owner.as_deref(), &i.first_evidence) {
            if !culprits.contains(n) && !whole_nic_hardware(sc, Some(i.function)) {
                x.failures.push(format!(
                    "{n} is not a culprit but incident {} was attributed to it ({ev})",
                    id.0
                ));
            }
        }
    }
    for pf in &sc.expect.hardware_faults {
        let own: Vec<&Inc> = incs.values().filter(|i| i.function == *pf).collect();
        if own.is_empty() && !incs.values().any(|i| pf_of(sc, i.function) == Some(*pf)) {
            x.failures
                .push(format!("hardware fault on {pf}: nothing was reported"));
        }
        // The PF's own incidents must not be pinned on a tenant (unless a VM holds it whole).
        for i in own {
            if i.owner_kind == Some(OwnerKind::Netns) {
                x.failures.push(format!(
                    "hardware fault on {pf} was blamed on {:?}",
                    i.owner
                ));
            }
        }
    }
    // Re-offence: every stretch of faults with nothing contained must end in a containment in
    // time. A culprit's first stretch is already judged above (never contained, or late).
    if let Some(limit) = limit {
        for (c, clock) in &clocks {
            for (s, contained) in &clock.missed {
                if s.after.is_none() && late_first.contains(c) {
                    continue;
                }
                x.failures.push(missed_text(c, s, *contained, limit));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vfguard_model::{Action, Cause, Owner};

    use super::*;

    const SC: &str = r#"
[scenario]
name = "t"
duration_ms = 60000

[[pf]]
bdf = "0000:08:00.0"
driver = "ixgbe"
netdev = "ens3f0"
numvfs = 4

[[vm]]
name = "evil-2"
functions = ["0000:08:00.0/vf2"]

[[vm]]
name = "web-1"
functions = ["0000:08:00.0/vf1"]

[expect]
culprits = ["evil-2"]
contained_within_ms = 2000
"#;

    fn sc(extra: &str) -> Scenario {
        Scenario::parse("t.toml", &format!("{SC}{extra}")).unwrap()
    }

    fn vf(n: u8) -> Bdf {
        Bdf::new(0, 9, 0, n).unwrap()
    }

    fn owner(name: &str) -> Option<Owner> {
        let mut o = Owner::none("test");
        o.kind = OwnerKind::Vm;
        o.name = Some(name.into());
        Some(o)
    }

    fn opened(i: u64, f: u8, name: &str) -> Decision {
        Decision::IncidentOpened {
            incident: IncidentId(i),
            function: vf(f),
            owner: owner(name),
        }
    }

    fn fault(i: u64) -> Decision {
        Decision::Attributed {
            incident: IncidentId(i),
            method: vfguard_model::Method::Direct,
            confidence: 1.0,
            evidence: "Malicious event on VF 2".into(),
        }
    }

    fn act(i: u64, kind: ActionKind, name: &str, rule: &str) -> Decision {
        Decision::Act(Action {
            id: vfguard_model::ActionId(1),
            incident: IncidentId(i),
            function: vf(2),
            pf: None,
            pf_netdev: None,
            vf: None,
            owner: owner(name),
            kind,
            rule: RuleRef::parse(rule),
            dry_run: false,
            at: 0,
        })
    }

    fn contained(i: u64) -> Decision {
        Decision::Contained {
            incident: IncidentId(i),
            by: "set_vf:link_state".into(),
        }
    }

    fn state(i: u64, from: IncidentState, to: IncidentState, cause: Cause) -> Decision {
        Decision::StateChanged {
            incident: IncidentId(i),
            from,
            to,
            cause,
        }
    }

    /// Contained at 5.5 s, restored at 8.0 s.
    fn contained_then_restored() -> Vec<(Millis, Decision)> {
        vec![
            (5000, opened(1, 2, "evil-2")),
            (5000, fault(1)),
            (5500, contained(1)),
            (
                8000,
                Decision::Restored {
                    incident: IncidentId(1),
                },
            ),
        ]
    }

    #[test]
    fn a_culprit_contained_in_time_passes() {
        let x = check(&sc(""), Run::Agent(&contained_then_restored()));
        assert_eq!(x.failures, Vec::<String>::new());
        assert!(x.passed);
    }

    #[test]
    fn a_reoffence_not_contained_again_fails_with_its_times() {
        let mut d = contained_then_restored();
        d.extend((0..5).map(|k| (13_100 + k * 100, fault(1))));
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "culprit evil-2: faulted at 13.1 s after its restore at 8.0 s and was not \
              contained again within 2000 ms (5 faults until 13.5 s, never contained again)"
            ]
        );
        assert!(!x.passed);
    }

    #[test]
    fn a_reoffence_contained_again_in_time_passes_and_a_late_one_fails() {
        let mut d = contained_then_restored();
        d.push((13_100, fault(1)));
        d.push((14_000, contained(1)));
        assert!(check(&sc(""), Run::Agent(&d)).passed);
        let mut d = contained_then_restored();
        d.push((13_100, fault(1)));
        d.push((16_000, contained(1)));
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "culprit evil-2: faulted at 13.1 s after its restore at 8.0 s and was not \
              contained again within 2000 ms (contained at 16.0 s, 2900 ms after that fault)"
            ]
        );
    }

    #[test]
    fn a_fault_too_close_to_the_end_to_judge_is_not_a_failure() {
        let mut d = contained_then_restored();
        d.push((58_500, fault(1)));
        assert!(check(&sc(""), Run::Agent(&d)).passed);
    }

    #[test]
    fn state_changes_win_over_the_old_decisions_and_an_undone_containment_counts() {
        use IncidentState as S;
        let d = vec![
            (5000, opened(1, 2, "evil-2")),
            (5000, fault(1)),
            (5500, contained(1)),
            (5500, state(1, S::Open, S::Contained, Cause::Contained)),
            // The driver lifted its containment: no Restored decision, only the state.
            (
                9000,
                state(1, S::Contained, S::Escalating, Cause::ContainmentUndone),
            ),
            (9100, fault(1)),
            // A stale Contained decision does not count once the state is reported.
            (9200, contained(1)),
        ];
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "culprit evil-2: faulted at 9.1 s after its containment was undone at 9.0 s and \
              was not contained again within 2000 ms (1 faults until 9.1 s, never contained \
              again)"
            ]
        );
    }

    #[test]
    fn faults_long_after_a_containment_show_it_does_not_hold() {
        let d = vec![
            (2000, opened(1, 2, "evil-2")),
            (2000, fault(1)),
            (2100, contained(1)),
            // Read late, printed before the containment took hold: fine.
            (3000, fault(1)),
            (6000, fault(1)),
            (6100, fault(1)),
        ];
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "culprit evil-2: faulted at 6.0 s although contained since 2.1 s (so the \
              containment no longer held) and was not contained again within 2000 ms (2 faults \
              until 6.1 s, never contained again)"
            ]
        );
    }

    #[test]
    fn the_first_containment_checks_stay_and_are_not_repeated_by_the_clock() {
        let d = vec![(5000, opened(1, 2, "evil-2")), (5000, fault(1))];
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(x.failures, ["culprit evil-2: never contained"]);
        let d = vec![
            (5000, opened(1, 2, "evil-2")),
            (5000, fault(1)),
            (9000, contained(1)),
        ];
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(
            x.failures,
            ["culprit evil-2: contained 4000 ms after its first fault (limit 2000)"]
        );
    }

    #[test]
    fn innocents_acted_on_or_blamed_fail() {
        let mut d = contained_then_restored();
        d.push((6000, opened(2, 1, "web-1")));
        d.push((6000, fault(2)));
        d.push((6100, act(2, ActionKind::ResetVf, "web-1", "mdd")));
        // Notifying and the cool-down's restore are not "acting on" anyone.
        d.push((6100, act(2, ActionKind::Notify, "web-1", "mdd")));
        let x = check(&sc(""), Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "web-1 is not a culprit but was acted on (reset_vf at 6.1 s)",
                "web-1 is not a culprit but incident 2 was attributed to it (direct: Malicious \
                 event on VF 2)"
            ]
        );
    }

    #[test]
    fn an_uncontained_culprit_must_reach_the_state_and_be_notified_again() {
        use IncidentState as S;
        let s = sc("uncontained = [\"evil-2\"]\n");
        let mut d = vec![
            (5000, opened(1, 2, "evil-2")),
            (5000, fault(1)),
            (5000, act(1, ActionKind::Notify, "evil-2", "mdd")),
        ];
        let x = check(&s, Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "culprit evil-2: nothing can contain it, but no incident of it reached state \
              uncontained"
            ]
        );
        d.push((
            7000,
            state(1, S::Escalating, S::Uncontained, Cause::Exhausted),
        ));
        // The notice that says so counts, the first rung's notify before it does not.
        d.push((7000, act(1, ActionKind::Notify, "evil-2", "uncontained")));
        let x = check(&s, Run::Agent(&d));
        assert_eq!(
            x.failures,
            [
                "culprit evil-2: uncontained since 7.0 s but notified 1 time(s) since; it must be \
              notified again while uncontained (at least twice)"
            ]
        );
        d.push((37_000, act(1, ActionKind::Notify, "evil-2", "uncontained")));
        let x = check(&s, Run::Agent(&d));
        assert_eq!(x.failures, Vec::<String>::new());
    }

    #[test]
    fn the_host_alone_skips_what_only_an_agent_can_do() {
        let x = check(&sc("uncontained = [\"evil-2\"]\n"), Run::HostOnly(&[]));
        assert_eq!(
            x.failures,
            ["culprit evil-2: no fault was attributed to it"]
        );
        assert_eq!(x.skipped.len(), 2, "{:?}", x.skipped);
    }
}
