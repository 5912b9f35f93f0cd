//! The agent's Prometheus metrics (`GET /metrics`, OpenMetrics text, prometheus-client).
//!
//! The loop feeds them after each step ([`Metrics::record_step`] from the step's report,
//! [`Metrics::publish_counts`] and [`Metrics::publish_vfs`] from the agent's state); a scrape encodes them. Every label is
//! bounded: fault kinds and action names are fixed sets, PFs, VFs and owners are the host's,
//! results are `ok`, `dry_run`, an errno name or `other`. The list, with alert rules and a dashboard over
//! it, is in `docs/metrics.md`.
//!
//! # Design
//! Label values come from outside (a VM's or a namespace's name can hold almost anything), and
//! prometheus-client 0.24 writes them as given (client_rust issue #151): each is a
//! `LabelValue`, which writes itself escaped as both text formats ask (`\\`, `\"`, `\n`), so
//! a name cannot end its series early, forge another one or a `# EOF`. The classic text format
//! the API converts to (`vfguard_api::exposition`) escapes label values the same way: its
//! sample lines are copied unchanged.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use vfguard_model::{ActionId, Bdf, Decision, Topology};

use crate::agent::{Agent, StepReport};

/// A label value, written escaped: a backslash as `\\`, a double quote as `\"`, a line feed as
/// `\n`, everything else as it is (the exposition formats' rule, the same in OpenMetrics and
/// the classic text format 0.0.4; Prometheus reads any other character verbatim).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LabelValue(String);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut rest = self.0.as_str();
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            let (clean, tail) = rest.split_at(i);
            encoder.write_str(clean)?;
            let mut chars = tail.chars();
            encoder.write_str(match chars.next() {
                Some('\\') => "\\\\",
                Some('"') => "\\\"",
                _ => "\\n",
            })?;
            rest = chars.as_str();
        }
        encoder.write_str(rest)
    }
}

type Labels = Vec<(&'static str, LabelValue)>;

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (*k, LabelValue((*v).to_owned())))
        .collect()
}

fn seconds_histogram() -> Histogram {
    // 100 µs .. ~3.3 s: from an in-process actuator to a virsh detach.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// The metrics, shared between the loop (writes) and the API (scrapes).
pub struct Metrics {
    registry: Registry,
    faults: Family<Labels, Counter>,
    attributions: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    action_duration: Family<Labels, Histogram, fn() -> Histogram>,
    detect_to_action: Histogram,
    records: Counter,
    lost: Counter,
    incidents_open: Family<Labels, Gauge>,
    topology_version: Gauge,
    topology_stale: Gauge,
    topology_read_failures: Counter,
    fd_exhausted: Counter,
    vf_link_enabled: Family<Labels, Gauge>,
    vf_spoof_check: Family<Labels, Gauge>,
    vf_in_incident: Family<Labels, Gauge>,
    vf_pod_info: Family<Labels, Gauge>,
    fleet_published: Counter,
    fleet_dropped: Counter,
    fleet_backlog: Gauge,
    fleet_connected: Gauge,
    /// Held while the gauges are rebuilt and while they are encoded, so a scrape never sees a
    /// half-published state; also the last totals the counters were advanced to.
    state: Mutex<Totals>,
}

#[derive(Default)]
struct Totals {
    records: u64,
    lost: u64,
    topology_read_failures: u64,
    fd_exhausted: u64,
    fleet_published: u64,
    fleet_dropped: u64,
    /// Actions decided and not yet answered: their name and whether they were a dry run.
    pending: HashMap<ActionId, (String, bool)>,
    /// The fingerprint of what the VF families show.
    vfs: Option<u64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The metrics, registered under the `vfguard_` prefix.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("vfguard");
        let faults = Family::<Labels, Counter>::default();
        r.register(
            "fault_events",
            "Fault events classified from the kernel log, by kind, PF and driver (records folded into one event all count)",
            faults.clone(),
        );
        let attributions = Family::<Labels, Counter>::default();
        r.register(
            "attributions",
            "Fault events attributed to an incident, by method",
            attributions.clone(),
        );
        let actions = Family::<Labels, Counter>::default();
        r.register(
            "actions",
            "Actions carried out, by action and result (ok, dry_run, the errno name, or other)",
            actions.clone(),
        );
        let action_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        r.register_with_unit(
            "action_duration",
            "Time the actuator took, by action",
            Unit::Seconds,
            action_duration.clone(),
        );
        let detect_to_action = seconds_histogram();
        r.register_with_unit(
            "detect_to_action",
            "From the start of the step that read the fault to the actuator's return",
            Unit::Seconds,
            detect_to_action.clone(),
        );
        let records = Counter::default();
        r.register(
            "kmsg_records_read",
            "Kernel log records read",
            records.clone(),
        );
        let lost = Counter::default();
        r.register(
            "kmsg_records_lost",
            "Kernel log records overwritten before they were read",
            lost.clone(),
        );
        let incidents_open = Family::<Labels, Gauge>::default();
        r.register(
            "incidents_open",
            "Incidents not closed, by state",
            incidents_open.clone(),
        );
        let topology_version = Gauge::default();
        r.register(
            "topology_version",
            "Version of the host map in use (moves when PFs, VFs or owners change)",
            topology_version.clone(),
        );
        let topology_stale = Gauge::default();
        r.register(
            "topology_stale",
            "1 while the host map in use is the last good one because reading the host failed",
            topology_stale.clone(),
        );
        let topology_read_failures = Counter::default();
        r.register(
            "topology_read_failures",
            "Reads of the host map that failed as a whole (the last good map stays in use)",
            topology_read_failures.clone(),
        );
        let fd_exhausted = Counter::default();
        r.register(
            "fd_exhausted",
            "Reads of the host map that failed because file descriptors ran out (EMFILE, ENFILE)",
            fd_exhausted.clone(),
        );
        let vf_link_enabled = Family::<Labels, Gauge>::default();
        r.register(
            "vf_link_enabled",
            "Whether the VF's administrative link state lets traffic through (0 when disabled)",
            vf_link_enabled.clone(),
        );
        let vf_spoof_check = Family::<Labels, Gauge>::default();
        r.register(
            "vf_spoof_check",
            "Whether the VF's MAC/VLAN anti-spoof check is on",
            vf_spoof_check.clone(),
        );
        let vf_in_incident = Family::<Labels, Gauge>::default();
        r.register(
            "vf_in_incident",
            "Whether the VF has an open incident",
            vf_in_incident.clone(),
        );
        // One series per VF a pod holds (the VF gauges' own bound): join them on (pf, vf) to
        // group by Kubernetes namespace or pod.
        let vf_pod_info = Family::<Labels, Gauge>::default();
        r.register(
            "vf_pod_info",
            "The Kubernetes pod holding the VF, as its runtime's files name it (always 1)",
            vf_pod_info.clone(),
        );
        let fleet_published = Counter::default();
        r.register(
            "fleet_published",
            "Messages the fleet's JetStream acknowledged (docs/fleet.md; 0 without a fleet)",
            fleet_published.clone(),
        );
        let fleet_dropped = Counter::default();
        r.register(
            "fleet_dropped",
            "Messages not published because the backlog passed its bound while the bus was away (the journal keeps them)",
            fleet_dropped.clone(),
        );
        let fleet_backlog = Gauge::default();
        r.register(
            "fleet_backlog",
            "Messages waiting to be published, when last counted",
            fleet_backlog.clone(),
        );
        let fleet_connected = Gauge::default();
        r.register(
            "fleet_connected",
            "1 while the last publish to the fleet succeeded (0 without a fleet)",
            fleet_connected.clone(),
        );
        // A gauge at 1 rather than an OpenMetrics `info`: the classic text format's tools
        // (promtool 2.x) know no `info` type.
        let build = Family::<Labels, Gauge>::default();
        build
            .get_or_create(&labels([("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        r.register("build_info", "The running build (always 1)", build);
        Metrics {
            registry: r,
            faults,
            attributions,
            actions,
            action_duration,
            detect_to_action,
            records,
            lost,
            incidents_open,
            topology_version,
            topology_stale,
            topology_read_failures,
            fd_exhausted,
            vf_link_enabled,
            vf_spoof_check,
            vf_in_incident,
            vf_pod_info,
            fleet_published,
            fleet_dropped,
            fleet_backlog,
            fleet_connected,
            state: Mutex::new(Totals::default()),
        }
    }

    /// Counts what one step (or one operator request) did.
    pub fn record_step(&self, r: &StepReport) {
        let mut totals = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in &r.faults {
            let pf = f.pf.map(|b| b.to_string()).unwrap_or_default();
            self.faults
                .get_or_create(&labels([
                    ("kind", f.kind.as_str()),
                    ("pf", &pf),
                    ("driver", f.driver.as_deref().unwrap_or("")),
                ]))
                .inc_by(f.records);
        }
        for (id, name, dry) in &r.reconciled {
            totals.pending.insert(*id, (name.clone(), *dry));
        }
        for (_, d) in &r.decisions {
            match d {
                Decision::Attributed { method, .. } => {
                    self.attributions
                        .get_or_create(&labels([("method", method.as_str())]))
                        .inc();
                }
                Decision::Act(a) => {
                    totals.pending.insert(a.id, (a.kind.name(), a.dry_run));
                }
                _ => {}
            }
        }
        for o in &r.outcomes {
            let (name, dry) = totals
                .pending
                .remove(&o.id)
                .unwrap_or_else(|| ("unknown".to_owned(), false));
            let result = match (&o.error, dry) {
                // An error without a number carries free text (a helper's stderr): `other`, so
                // the label's values stay few.
                (Some(e), _) if e.code().is_none() => "other".into(),
                (Some(e), _) => e.name(),
                (None, true) => "dry_run".into(),
                (None, false) => "ok".into(),
            };
            self.actions
                .get_or_create(&labels([("action", &name), ("result", &result)]))
                .inc();
        }
        for (name, d) in &r.action_durations {
            self.action_duration
                .get_or_create(&labels([("action", name)]))
                .observe(d.as_secs_f64());
        }
        for d in &r.acted_after {
            self.detect_to_action.observe(d.as_secs_f64());
        }
    }

    /// Advances the record counters and sets the incident gauges (every step).
    pub fn publish_counts(
        &self,
        agent: &Agent,
        incidents: &std::collections::BTreeMap<&'static str, u64>,
    ) {
        let mut totals = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.records
            .inc_by(agent.records.saturating_sub(totals.records));
        self.lost.inc_by(agent.lost.saturating_sub(totals.lost));
        totals.records = totals.records.max(agent.records);
        totals.lost = totals.lost.max(agent.lost);
        self.topology_read_failures.inc_by(
            agent
                .topology_read_failures
                .saturating_sub(totals.topology_read_failures),
        );
        self.fd_exhausted
            .inc_by(agent.fd_exhausted.saturating_sub(totals.fd_exhausted));
        totals.topology_read_failures = totals
            .topology_read_failures
            .max(agent.topology_read_failures);
        totals.fd_exhausted = totals.fd_exhausted.max(agent.fd_exhausted);
        self.topology_stale
            .set(i64::from(agent.topology().stale.is_some()));
        self.incidents_open.clear();
        for (state, n) in incidents {
            self.incidents_open
                .get_or_create(&labels([("state", state)]))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Advances the fleet's counters and sets its gauges from the publisher's progress.
    pub fn publish_fleet(&self, p: &vfguard_fleet::publish::Progress) {
        use std::sync::atomic::Ordering;
        let mut totals = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let published = p.published.load(Ordering::Acquire);
        let dropped = p.dropped.load(Ordering::Acquire);
        self.fleet_published
            .inc_by(published.saturating_sub(totals.fleet_published));
        self.fleet_dropped
            .inc_by(dropped.saturating_sub(totals.fleet_dropped));
        totals.fleet_published = totals.fleet_published.max(published);
        totals.fleet_dropped = totals.fleet_dropped.max(dropped);
        self.fleet_backlog
            .set(i64::try_from(p.backlog.load(Ordering::Acquire)).unwrap_or(i64::MAX));
        self.fleet_connected
            .set(i64::from(p.connected.load(Ordering::Acquire)));
    }

    /// Sets the host map's gauges: its version and each VF's state; the VF families are rebuilt
    /// only when what they show changed (a fingerprint of it), not at every sample.
    pub fn publish_vfs(&self, agent: &Agent) {
        let in_incident: HashSet<Bdf> = agent.open_functions().collect();
        self.publish_map(agent.topology(), &in_incident);
    }

    /// [`Metrics::publish_vfs`] for a host map and the functions with an open incident.
    pub fn publish_map(&self, t: &Topology, in_incident: &HashSet<Bdf>) {
        use std::hash::{Hash as _, Hasher as _};
        let mut totals = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.topology_version
            .set(i64::try_from(t.version).unwrap_or(i64::MAX));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for pf in &t.pfs {
            for vf in &pf.vfs {
                (pf.bdf, vf.index.0, &vf.owner.kind, &vf.owner.name).hash(&mut h);
                vf.owner.metadata.hash(&mut h);
                let s = vf.state.as_ref();
                (s.and_then(|s| s.link_state), s.and_then(|s| s.spoofchk)).hash(&mut h);
                in_incident.contains(&vf.bdf).hash(&mut h);
            }
        }
        let fingerprint = h.finish();
        if totals.vfs == Some(fingerprint) {
            return;
        }
        totals.vfs = Some(fingerprint);
        self.vf_link_enabled.clear();
        self.vf_spoof_check.clear();
        self.vf_in_incident.clear();
        self.vf_pod_info.clear();
        for pf in &t.pfs {
            for vf in &pf.vfs {
                let l = labels([
                    ("pf", &pf.bdf.to_string()),
                    ("vf", &vf.index.0.to_string()),
                    ("owner", &vf.owner.label()),
                ]);
                if let Some(s) = &vf.state {
                    if let Some(link) = s.link_state {
                        let on = link != vfguard_model::VfLinkState::Disable;
                        self.vf_link_enabled.get_or_create(&l).set(i64::from(on));
                    }
                    if let Some(on) = s.spoofchk {
                        self.vf_spoof_check.get_or_create(&l).set(i64::from(on));
                    }
                }
                self.vf_in_incident
                    .get_or_create(&l)
                    .set(i64::from(in_incident.contains(&vf.bdf)));
                let meta = |k: &str| vf.owner.metadata.get(k).map(String::as_str);
                if let (Some(ns), Some(pod)) = (meta("k8s.namespace"), meta("k8s.pod")) {
                    self.vf_pod_info
                        .get_or_create(&labels([
                            ("pf", &pf.bdf.to_string()),
                            ("vf", &vf.index.0.to_string()),
                            ("namespace", ns),
                            ("pod", pod),
                            ("container", meta("k8s.container").unwrap_or("")),
                        ]))
                        .set(1);
                }
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let _consistent = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            return format!("# encoding the metrics failed: {e}\n# EOF\n");
        }
        out
    }
}
