//! Running a scenario and reporting what happened, in the stable shape `vfguard simulate --json`
//! prints. The expectations are judged by [`crate::expect`], for this and for the agent's runs.
//!
//! # Limitations
//! [`host_only`] (`vfguard simulate --host-only`) plays the host alone: the records it printed
//! go through the real classifier and are resolved against the real topology reader over the
//! simulated tree (re-read whenever owners change), but nobody acts, so `actions` is empty,
//! `contained_ms` is null and the expectations only an agent can meet are reported as skipped.

use std::collections::BTreeMap;

use serde::Serialize;
use vfguard_model::{Bdf, FaultEvent, FaultKind, Topology};
use vfguard_parse::{kmsg_line, Classifier};

pub use crate::expect::Expectations;
use crate::expect::{check, Run};
use crate::SimHost;

/// An owner as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerRef {
    /// `vm`, `netns`, `host`, `none`.
    pub kind: String,
    /// Its name.
    pub name: Option<String>,
}

/// How an incident was attributed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribution {
    /// `direct` (the line names PF + VF), `requester` (AER source, IOMMU requester, a VF
    /// driver's own prefix), `ambiguous` (a requester printed without its segment that several
    /// functions answer to), `none` (a PF-level line naming no function).
    pub method: String,
    /// 0..=1.
    pub confidence: f64,
}

/// One incident: the faults of one function (or one PF, for lines naming no function).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// 1-based, in order of first fault.
    pub id: u32,
    /// The function, when known.
    pub function: Option<Bdf>,
    /// Its PF.
    pub pf: Option<Bdf>,
    /// Its VF index.
    pub vf: Option<u16>,
    /// Its owner at the first fault.
    pub owner: OwnerRef,
    /// Fault kinds seen.
    pub kinds: Vec<FaultKind>,
    /// How it was attributed.
    pub attribution: Attribution,
    /// Virtual time of the first fault.
    pub first_fault_ms: u64,
    /// When it was contained (null: not contained).
    pub contained_ms: Option<u64>,
    /// Actions taken for it.
    pub actions: Vec<ActionRow>,
    /// Fault events in it.
    pub events: u64,
    /// Where its fault events came from: `kmsg` (the kernel log), `devlink` (devlink health),
    /// `aer_counters` (sysfs AER counters beyond the log).
    pub sources: Vec<String>,
}

/// One action the agent took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    /// Virtual time.
    pub at_ms: u64,
    /// What.
    pub action: String,
    /// On which function.
    pub function: Option<Bdf>,
    /// Whose.
    pub owner: Option<String>,
    /// `ok` or the errno.
    pub result: String,
}

/// The final report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Incidents.
    pub incidents: Vec<Incident>,
    /// Every action, in order.
    pub actions: Vec<ActionRow>,
    /// Owners neither acted on nor blamed for an incident (the innocent bystanders).
    pub untouched: Vec<String>,
    /// Expectations.
    pub expectations: Expectations,
    /// Kernel records the host printed.
    pub records: u64,
    /// Fault events read from devlink health (docs/devlink.md).
    pub devlink_events: u64,
    /// Virtual run time.
    pub duration_ms: u64,
}

fn owner_ref(e: &FaultEvent) -> OwnerRef {
    match &e.owner {
        Some(o) => OwnerRef {
            kind: o.kind.as_str().to_owned(),
            name: o.name.clone(),
        },
        None => OwnerRef {
            kind: "none".into(),
            name: None,
        },
    }
}

/// An AER error a root port or PF logged, moved to the function its TLP header names as the
/// sender, as the engine attributes it (`tlp_header`).
fn place_tlp_sender(e: &mut FaultEvent, t: &Topology) {
    if let Some((to, _)) = t.tlp_sender(e) {
        e.details.insert("tlp_sender".to_owned(), to.to_string());
        e.function = Some(to);
        e.pf = None;
        e.vf = None;
        e.owner = None;
        e.resolve(t);
    }
}

fn attribution(e: &FaultEvent, t: &Topology) -> Attribution {
    if e.details.contains_key("tlp_sender") {
        return Attribution {
            method: "tlp_header".into(),
            confidence: 0.9,
        };
    }
    if e.function.is_none() && e.details.contains_key("candidates") {
        return Attribution {
            method: "ambiguous".into(),
            confidence: 0.0,
        };
    }
    if e.details.get("resolved_by").map(String::as_str) == Some("mac") {
        // A MAC is unique per PF in practice, but an administrator can set two VFs alike.
        return Attribution {
            method: "mac".into(),
            confidence: 0.95,
        };
    }
    let line_named_vf = e.pf.is_some() && e.vf.is_some() && e.device == e.pf;
    if line_named_vf {
        return Attribution {
            method: "direct".into(),
            confidence: 1.0,
        };
    }
    match e.function {
        Some(f) => {
            let shared_group = t
                .function(f)
                .and_then(|r| r.vf)
                .is_some_and(|v| !v.group_peers.is_empty());
            Attribution {
                method: "requester".into(),
                confidence: if shared_group { 0.6 } else { 0.9 },
            }
        }
        None => Attribution {
            method: "none".into(),
            confidence: 0.0,
        },
    }
}

/// Where a fault event came from, as [`Incident::sources`] names it.
pub fn source_of(e: &FaultEvent) -> &'static str {
    if e.details.get("source").map(String::as_str) == Some("devlink") {
        "devlink"
    } else if e.details.get("source").map(String::as_str) == Some("vf_counters") {
        "vf_counters"
    } else if e.catalog_id == "aer.counters" {
        "aer_counters"
    } else {
        "kmsg"
    }
}

/// Plays the scenario on the host alone and reports (see the module docs).
pub fn host_only(sim: &mut SimHost) -> Report {
    let mut boundaries: Vec<u64> = sim.scenario().event.iter().map(|e| e.at_ms).collect();
    boundaries.sort_unstable();
    boundaries.push(sim.scenario().scenario.duration_ms);
    let reader = sim.topology_reader();
    let mut topology = reader.read();
    let mut classifier = Classifier::new();
    let mut events: Vec<(FaultEvent, Attribution)> = Vec::new();
    let mut seen = 0usize;
    let mut out = Vec::new();
    // devlink health as the agent reads it, polled at each boundary (its first look a baseline).
    let mut devlink = vfguard_sources::devlink::DevlinkSource::new(sim.devlink());
    let devlink_on = devlink.start().unwrap_or(false) && devlink.poll(true).is_ok();
    let mut devlink_events = 0u64;
    // VF counters as the agent samples them: an mlx5 VF's tx_dropped growth is its spoof signal.
    let vfnet = sim.vfnet();
    let mut drops = vfguard_sources::vf_drops::DropWatch::new();
    // The baseline: every VF's counters at the start.
    for pf in &topology.pfs {
        for st in pf
            .netdev
            .as_deref()
            .map(|nd| vfnet.vf_states(nd).unwrap_or_default())
            .unwrap_or_default()
        {
            if let Some(s) = st.stats {
                drops.observe(
                    pf.bdf,
                    pf.driver.as_deref(),
                    vfguard_model::VfIndex(st.index),
                    &s,
                );
            }
        }
    }
    // Each segment's lines are attributed against the map as it stood then; after the last
    // boundary, whatever the final step printed.
    for b in boundaries.into_iter().map(Some).chain([None]) {
        if let Some(b) = b {
            sim.advance_to(b.saturating_sub(1));
        }
        let records = sim.records_since(seen);
        for rec in &records {
            classifier.push(&kmsg_line(rec), &mut out);
        }
        classifier.finish(&mut out);
        seen += records.len();
        if devlink_on {
            let now_s = sim.now_ms() as f64 / 1000.0;
            for h in devlink.poll(true).unwrap_or_default() {
                let driver =
                    h.pf.or(h.device)
                        .and_then(|b| topology.pf(b))
                        .and_then(|p| p.driver.clone());
                let mut e = h.into_fault(driver.as_deref());
                e.timestamp = Some(now_s);
                devlink_events += 1;
                out.push(e);
            }
        }
        for pf in &topology.pfs {
            let Some(nd) = pf.netdev.as_deref() else {
                continue;
            };
            for st in vfnet.vf_states(nd).unwrap_or_default() {
                let vf = vfguard_model::VfIndex(st.index);
                if let Some(mut e) = st
                    .stats
                    .and_then(|s| drops.observe(pf.bdf, pf.driver.as_deref(), vf, &s))
                {
                    e.timestamp = Some(sim.now_ms() as f64 / 1000.0);
                    out.push(e);
                }
            }
        }
        for mut e in out.drain(..) {
            e.resolve(&topology);
            // A requester printed without its segment, placed as the engine does; an AER
            // error by the sender its TLP header names.
            topology.place_segmentless(&mut e);
            place_tlp_sender(&mut e, &topology);
            let a = attribution(&e, &topology);
            events.push((e, a));
        }
        if let Some(b) = b {
            sim.advance_to(b);
            topology = reader.read();
        }
    }
    let mut r = build_report(sim, &events, seen as u64);
    r.devlink_events = devlink_events;
    r
}

fn build_report(sim: &SimHost, events: &[(FaultEvent, Attribution)], records: u64) -> Report {
    let sc = sim.scenario();
    let mut incidents: BTreeMap<String, Incident> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (e, a) in events.iter().filter(|(e, _)| e.is_fault()) {
        let key = match (e.function, e.pf) {
            (Some(f), _) => f.to_string(),
            (None, Some(pf)) => format!("{pf} (PF-level)"),
            (None, None) => "host".to_owned(),
        };
        // What a VF's own driver says befell it joins its function's incident, never opens one
        // (the victim side blames no one: docs/engine.md).
        if e.victim && !incidents.contains_key(&key) {
            continue;
        }
        let ms = e.timestamp.map_or(0, |t| {
            u64::try_from(std::time::Duration::from_secs_f64(t.max(0.0)).as_millis())
                .unwrap_or(u64::MAX)
        });
        let inc = incidents.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Incident {
                id: 0,
                function: e.function,
                pf: e.pf,
                vf: e.vf.map(|v| v.0),
                owner: owner_ref(e),
                kinds: Vec::new(),
                attribution: a.clone(),
                first_fault_ms: ms,
                contained_ms: None,
                actions: Vec::new(),
                events: 0,
                sources: Vec::new(),
            }
        });
        let source = crate::report::source_of(e).to_owned();
        if !inc.sources.contains(&source) {
            inc.sources.push(source);
            inc.sources.sort();
        }
        if !inc.kinds.contains(&e.kind) {
            inc.kinds.push(e.kind);
            inc.kinds.sort();
        }
        inc.events += 1;
        inc.first_fault_ms = inc.first_fault_ms.min(ms);
    }
    let mut list: Vec<Incident> = order.iter().filter_map(|k| incidents.remove(k)).collect();
    list.sort_by_key(|i| i.first_fault_ms);
    for (n, i) in list.iter_mut().enumerate() {
        i.id = u32::try_from(n + 1).unwrap_or(u32::MAX);
    }
    let owners: Vec<String> = sc
        .vm
        .iter()
        .map(|v| v.name.clone())
        .chain(sc.container.iter().map(|c| c.name.clone()))
        .collect();
    let expectations = check(sc, Run::HostOnly(&list));
    Report {
        scenario: sc.scenario.name.clone(),
        seed: sc.scenario.seed,
        incidents: list,
        actions: Vec::new(),
        untouched: owners,
        expectations,
        records,
        devlink_events: 0,
        duration_ms: sc.scenario.duration_ms,
    }
}
