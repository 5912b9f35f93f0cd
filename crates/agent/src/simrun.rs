//! Running a scenario with the agent acting on the simulated host, and its report (the shape of
//! `vfguard simulate --json` and `vfguard demo --json`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_engine::policy::RawPolicy;
use vfguard_engine::Policy;
use vfguard_model::{Decision, Errno, IncidentId, Millis, RuleRef};
use vfguard_sim::expect::{acts_on, check, Run};
use vfguard_sim::report::{ActionRow, Attribution, Incident, OwnerRef, Report};
use vfguard_sim::scenario::{Scenario, ScenarioError};
use vfguard_sim::SimHost;

use crate::agent::{Agent, AgentConfig, AgentHost};
use crate::pace::{self, Flow, VirtualClock};

/// One line of the live timeline; `owners` learns each incident's owner as it opens, so later
/// lines can name it.
pub fn describe(
    at: Millis,
    d: &Decision,
    owners: &mut BTreeMap<IncidentId, String>,
) -> Option<String> {
    if let Decision::IncidentOpened {
        incident, owner, ..
    } = d
    {
        let label = owner
            .as_ref()
            .map_or_else(|| "unknown".into(), vfguard_model::Owner::label);
        owners.insert(*incident, label);
    }
    let owners = &*owners;
    let who = |i: &IncidentId| owners.get(i).cloned().unwrap_or_else(|| "?".into());
    let text = match d {
        Decision::IncidentOpened {
            incident, function, ..
        } => format!(
            "incident {} opened on {function} ({})",
            incident.0,
            who(incident)
        ),
        Decision::Attributed {
            incident,
            method,
            confidence,
            evidence,
        } => {
            format!("  #{} {method} ({confidence:.2}): {evidence}", incident.0)
        }
        Decision::ThresholdCrossed {
            incident,
            rule,
            count,
        } => format!("  #{} rule {rule}: {count} in its window", incident.0),
        Decision::Act(a) => format!(
            "  #{} {}{} on {} ({})",
            a.incident.0,
            if a.dry_run { "WOULD " } else { "" },
            a.kind.name(),
            a.function,
            a.rule
        ),
        Decision::Suppressed {
            incident,
            action,
            reason,
        } => format!("  #{} {action} suppressed: {reason}", incident.0),
        Decision::Contained { incident, by } => format!(
            "incident {} CONTAINED by {by} ({})",
            incident.0,
            who(incident)
        ),
        Decision::Restored { incident } => format!("incident {} restored", incident.0),
        // The usual moves have lines of their own (acted, contained, restored, closed).
        Decision::StateChanged {
            incident,
            to,
            cause,
            ..
        } => match cause {
            vfguard_model::Cause::Reoffended
            | vfguard_model::Cause::ContainmentUndone
            | vfguard_model::Cause::Exhausted => format!(
                "incident {} {} ({}): now {to}",
                incident.0,
                cause.as_str().replace('_', " ").to_uppercase(),
                who(incident)
            ),
            _ => return None,
        },
        Decision::Closed { incident, reason } => {
            format!("incident {} closed: {reason}", incident.0)
        }
        Decision::ModeChanged { from, to, by } => format!("mode {from} -> {to} (asked by {by})"),
    };
    Some(format!("{} {text}", crate::timefmt::at(at)))
}

/// The policy a scenario asks for: its `[policy]` table (the configuration's `[policy]` keys),
/// read into the engine's `RawPolicy` and validated by the engine, else the defaults.
/// (`--policy FILE` wins over it: the caller decides.) An error names the scenario's file, the
/// table's line and the field: `f.toml:36: policy.cool_down (5x) must be a duration ...`,
/// `f.toml:36: policy.guard.max_actions_per_pf: invalid type: string "x", expected u32`.
pub fn scenario_policy(sc: &Scenario) -> Result<Policy, ScenarioError> {
    let Some(table) = &sc.policy else {
        return Ok(Policy::default());
    };
    let raw: RawPolicy = table
        .get_ref()
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| {
            // The value deserializer knows the key path; it only shows it in its text.
            let text = e.to_string();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
                .map_or_else(String::new, |k| format!(".{k}"));
            sc.policy_error(format!("policy{key}: {}", e.message()))
        })?;
    Policy::validate(&raw).map_err(|e| sc.policy_error(format!("policy.{e}")))
}

/// Plays the whole scenario with the agent under `policy` (the loop's other settings are the
/// defaults), in virtual time as fast as possible (`speed` 0) or `speed` times real time;
/// `on_line` sees every timeline line as it happens.
pub fn run(
    sim: &mut SimHost,
    policy: Policy,
    journal: Option<&std::path::Path>,
    speed: f64,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<Report> {
    let notifier = Arc::new(MemoryNotifier::default());
    let host = AgentHost::simulated(sim, notifier);
    let cfg = AgentConfig {
        policy,
        ..AgentConfig::default()
    };
    let step_ms = cfg.step_ms;
    let (mut agent, _) = Agent::start(cfg, host, journal, 0)?;
    let mut decisions: Vec<(Millis, Decision)> = Vec::new();
    let mut outcomes = BTreeMap::new();
    let mut kinds: BTreeMap<IncidentId, BTreeSet<vfguard_model::FaultKind>> = BTreeMap::new();
    let mut owners: BTreeMap<IncidentId, String> = BTreeMap::new();
    let mut sources: BTreeMap<IncidentId, BTreeSet<&'static str>> = BTreeMap::new();
    let mut clock = VirtualClock::scenario(sim, step_ms).paced(speed);
    let mut collect = pace::each_step(|_, _, r| {
        for (i, k) in r.kinds {
            kinds.entry(i).or_default().insert(k);
        }
        for (i, s) in r.sources {
            sources.entry(i).or_default().insert(s);
        }
        for o in r.outcomes {
            outcomes.insert(o.id, o);
        }
        for (at, d) in r.decisions {
            if !matches!(
                d,
                Decision::Attributed { .. } | Decision::ThresholdCrossed { .. }
            ) || decisions.len() < 4000
            {
                if let Some(line) = describe(at, &d, &mut owners) {
                    if !matches!(d, Decision::Attributed { .. }) {
                        on_line(&line);
                    }
                }
            }
            decisions.push((at, d));
        }
        Ok(Flow::Go)
    });
    pace::run_until(&mut agent, &mut clock, &mut collect)?;
    let mut report = build(sim, &agent, &decisions, &outcomes, &kinds);
    for i in &mut report.incidents {
        if let Some(s) = sources.get(&IncidentId(u64::from(i.id))) {
            i.sources = s.iter().map(|s| (*s).to_owned()).collect();
        }
    }
    Ok(report)
}

fn build(
    sim: &SimHost,
    agent: &Agent,
    decisions: &[(Millis, Decision)],
    outcomes: &BTreeMap<vfguard_model::ActionId, vfguard_model::ActionOutcome>,
    kinds: &BTreeMap<IncidentId, BTreeSet<vfguard_model::FaultKind>>,
) -> Report {
    let sc = sim.scenario();
    let t = agent.topology();
    let mut incidents: BTreeMap<IncidentId, Incident> = BTreeMap::new();
    let mut actions = Vec::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for (at, d) in decisions {
        match d {
            Decision::IncidentOpened {
                incident,
                function,
                owner,
            } => {
                let r = t.function(*function);
                incidents.entry(*incident).or_insert_with(|| Incident {
                    id: u32::try_from(incident.0).unwrap_or(u32::MAX),
                    function: Some(*function),
                    pf: r.map(|r| r.pf.bdf),
                    vf: r.and_then(|r| r.vf).map(|v| v.index.0),
                    owner: OwnerRef {
                        kind: owner
                            .as_ref()
                            .map_or("none", |o| o.kind.as_str())
                            .to_owned(),
                        name: owner.as_ref().and_then(|o| o.name.clone()),
                    },
                    kinds: Vec::new(),
                    attribution: Attribution {
                        method: "unattributed".into(),
                        confidence: 0.0,
                    },
                    first_fault_ms: *at,
                    contained_ms: None,
                    actions: Vec::new(),
                    events: 0,
                    sources: Vec::new(),
                });
            }
            Decision::Attributed {
                incident,
                method,
                confidence,
                ..
            } => {
                if let Some(i) = incidents.get_mut(incident) {
                    i.events += 1;
                    if *confidence > i.attribution.confidence || i.events == 1 {
                        i.attribution = Attribution {
                            method: method.to_string(),
                            confidence: *confidence,
                        };
                    }
                }
            }
            Decision::Contained { incident, .. } => {
                if let Some(i) = incidents.get_mut(incident) {
                    i.contained_ms.get_or_insert(*at);
                }
            }
            Decision::Act(a) => {
                let owner = a.owner.as_ref().and_then(|o| o.name.clone());
                if acts_on(a) {
                    // By the scenario's name (a pod is reported as namespace/pod/container).
                    if let Some(o) = &owner {
                        touched.insert(sc.tenant_name(o).to_owned());
                    }
                }
                let row = ActionRow {
                    at_ms: *at,
                    action: format!(
                        "{}{}{}",
                        if a.dry_run { "dry_run:" } else { "" },
                        match a.rule {
                            RuleRef::Probe { .. } => "probe:",
                            RuleRef::ProbeReverted { .. } => "probe_revert:",
                            _ => "",
                        },
                        a.kind.name()
                    ),
                    function: Some(a.function),
                    owner,
                    result: outcomes.get(&a.id).map_or_else(
                        || "pending".into(),
                        |o| {
                            o.error
                                .as_ref()
                                .map_or_else(|| "ok".into(), Errno::to_string)
                        },
                    ),
                };
                if let Some(i) = incidents.get_mut(&a.incident) {
                    i.actions.push(row.clone());
                }
                actions.push(row);
            }
            _ => {}
        }
    }
    for (id, k) in kinds {
        if let Some(i) = incidents.get_mut(id) {
            i.kinds = k.iter().copied().collect();
        }
    }
    let list: Vec<Incident> = incidents.into_values().collect();
    let owners: Vec<String> = sc
        .vm
        .iter()
        .map(|v| v.name.clone())
        .chain(sc.container.iter().map(|c| c.name.clone()))
        .collect();
    let expectations = check(sc, Run::Agent(decisions));
    // Innocent bystanders: never acted on, and no incident pinned on them (a culprit the driver
    // already contained, so that the agent only notified, is not "untouched").
    let untouched = owners
        .into_iter()
        .filter(|o| {
            !touched.contains(o)
                && !list.iter().any(|i| {
                    i.owner.name.as_deref().map(|n| sc.tenant_name(n)) == Some(o.as_str())
                        && !i.kinds.is_empty()
                })
        })
        .collect();
    Report {
        scenario: sc.scenario.name.clone(),
        seed: sc.scenario.seed,
        incidents: list,
        actions,
        untouched,
        expectations,
        records: agent.records,
        devlink_events: agent.devlink_events,
        duration_ms: sc.scenario.duration_ms,
    }
}
