//! The agent's core loop, one step at a time: read the kernel log, classify, let the engine
//! decide, journal, act, report outcomes back, tick. Time is given to each step, so the same
//! loop runs in virtual time on the simulated host and in real time on a live one.
//!
//! # Design
//! - Every action's intent is journalled before the actuator is called and its outcome after;
//!   the observations that decided something, the decisions and the kmsg cursor go in one
//!   transaction per step, so a restart resumes after the last committed record and never
//!   repeats an action.
//! - On start with a journal: the engine is rebuilt by replaying the journal, reading resumes
//!   after the journalled cursor, and interrupted actions are reconciled against the state read
//!   back from the host.
//! - The topology is re-read every `topology_every_ms` and after a detach; VF counters and AER
//!   counters are sampled every `stats_every_ms`. AER counter deltas beyond what the log already
//!   reported are fed as observations: counters are complete where the log is rate-limited.
//! - devlink health (docs/devlink.md): its notifications are read every step, every reporter
//!   and every VF port's `vnic` counters every `devlink_every_ms`; what the reporters say
//!   becomes fault events fed to the engine like classified kernel lines. A host without
//!   devlink (or that forbids it) is told once at start, and the source stays off.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use vfguard_act::Actuator;
use vfguard_engine::restart::{self, reconcile, Journalled, UsedIds};
use vfguard_engine::{Engine, Policy};
use vfguard_host::{GenlLink, HostFs, KmsgDevice, VfNet};
use vfguard_journal::{Batch, Entry, Journal};
use vfguard_model::{
    ActionKind, Bdf, Decision, FaultKind, IncidentId, Millis, Observation, Topology,
};
use vfguard_parse::FoldingClassifier;
use vfguard_sources::devlink::DevlinkSource;
use vfguard_sources::{KmsgEvent, KmsgReader};
use vfguard_topology::TopologyWatcher;

/// The journal's key for the kmsg cursor: `kmsg:<boot_id>`, so that after a reboot (sequence
/// numbers start again at 0) the old boot's cursor is not applied to the new log, which is then
/// a first start. `kmsg` where the boot id cannot be read (a fixture tree).
pub fn kmsg_cursor_key(fs: &dyn HostFs) -> String {
    match fs.read(Path::new("/proc/sys/kernel/random/boot_id")) {
        Ok(id) if !id.trim().is_empty() => format!("kmsg:{}", id.trim()),
        _ => "kmsg".to_owned(),
    }
}

/// A journal entry as the engine's restart reads it.
fn journalled(e: Entry) -> Journalled {
    match e {
        Entry::Observation(o) => Journalled::Observation(o.at, o.observation),
        Entry::Decision(d) => Journalled::Decision(d.decision),
        Entry::Intent { action, .. } => Journalled::Intent(action),
        Entry::Outcome { outcome, .. } => Journalled::Outcome(outcome),
    }
}

/// How the loop samples the host. Its `Default` is the one set of defaults: the configuration
/// file's ([`crate::config::Config`]), the scenario runs', the tests' and the benchmarks'.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The policy.
    pub policy: Policy,
    /// The loop's period: a step this often (the clocks of [`crate::pace`] step by it).
    pub step_ms: Millis,
    /// Check the topology's signature this often (re-read when it moved).
    pub topology_every_ms: Millis,
    /// Read the topology in full at least this often, whatever its signature says.
    pub full_topology_every_ms: Millis,
    /// Sample VF and AER counters this often.
    pub stats_every_ms: Millis,
    /// Without a journal cursor: replay the kernel log from the start (else tail from the end).
    pub replay_history: bool,
    /// When replaying without a cursor: records the kernel stamped before this (µs since boot)
    /// are read past (the cursor moves) but not observed; `None` observes the whole ring.
    pub replay_since_us: Option<u64>,
    /// The most records one step reads; the rest wait for the next step, so that a storm never
    /// delays the actions it calls for by more than one step.
    pub max_records_per_step: usize,
    /// Fold a step's identical kernel records into one event with a repeat count (a storm costs
    /// a lookup per record); off classifies every record on its own (the baseline the storm
    /// benchmark compares with).
    pub fold_repeats: bool,
    /// Journal retention: rows older than this go (open incidents' rows stay).
    pub retention_age_ms: Millis,
    /// Journal retention: at most this many observations are kept.
    pub retention_rows: u64,
    /// Read devlink health (when the host has it).
    pub devlink: bool,
    /// Dump every devlink reporter and diagnose every VF port's `vnic` this often (the
    /// notifications are read every step).
    pub devlink_every_ms: Millis,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            policy: Policy::default(),
            step_ms: 100,
            topology_every_ms: 5000,
            full_topology_every_ms: 60_000,
            stats_every_ms: 1000,
            replay_history: true,
            replay_since_us: None,
            max_records_per_step: 20_000,
            fold_repeats: true,
            retention_age_ms: 30 * 24 * 3_600_000,
            retention_rows: 10_000_000,
            devlink: true,
            devlink_every_ms: 5000,
        }
    }
}

pub use crate::host::AgentHost;

/// What the loop did in one step, for reports.
#[derive(Debug, Default)]
pub struct StepReport {
    /// How long the step took (reading, deciding, journalling, acting).
    pub took: std::time::Duration,
    /// Decisions, with their time.
    pub decisions: Vec<(Millis, Decision)>,
    /// Outcomes of the actions carried out.
    pub outcomes: Vec<vfguard_model::ActionOutcome>,
    /// Fault kinds attributed per incident.
    pub kinds: Vec<(IncidentId, FaultKind)>,
    /// Where each incident's attributed fault events came from (`kmsg`, `devlink`,
    /// `aer_counters`: `vfguard_sim::report::source_of`).
    pub sources: Vec<(IncidentId, &'static str)>,
    /// For each action carried out: how long after the step began (its records were read) the
    /// actuator returned.
    pub acted_after: Vec<std::time::Duration>,
    /// Each action carried out: its kind's name and how long the actuator took.
    pub action_durations: Vec<(String, std::time::Duration)>,
    /// Fault events classified from the kernel log: kind, PF, driver, records it stood for.
    pub faults: Vec<FaultTally>,
    /// Actions journalled before a crash without an outcome, judged on start: id, name, dry run
    /// (their outcomes are in `outcomes`).
    pub reconciled: Vec<(vfguard_model::ActionId, String, bool)>,
}

/// One classified fault event, for the metrics (labels are bounded: kind, PF, driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultTally {
    /// What happened.
    pub kind: FaultKind,
    /// The PF, when known.
    pub pf: Option<Bdf>,
    /// The driver that printed it, when known.
    pub driver: Option<String>,
    /// Records it stands for (folded repeats included).
    pub records: u64,
}

/// The loop's state.
pub struct Agent {
    cfg: AgentConfig,
    /// The journal's name for the kmsg cursor: per boot, since sequence numbers restart at 0.
    cursor_key: String,
    engine: Engine,
    /// Folds a storm's identical records within a step (`FaultEvent::repeats`).
    classifier: FoldingClassifier,
    reader: KmsgReader<Box<dyn KmsgDevice>>,
    watcher: TopologyWatcher,
    topo: Topology,
    vfnet: Arc<dyn VfNet>,
    fs: Arc<dyn HostFs>,
    actuator: Actuator,
    journal: Option<Journal>,
    last_topology: Millis,
    last_full_topology: Millis,
    last_stats: Millis,
    last_retention: Millis,
    step_started: Option<std::time::Instant>,
    aer_last: HashMap<Bdf, vfguard_model::AerCounters>,
    aer_logged: HashMap<Bdf, u64>,
    aer_absent: HashSet<Bdf>,
    /// Each mlx5 VF's last tx_dropped: its growth is the VF's spoof signal.
    drops: vfguard_sources::vf_drops::DropWatch,
    /// devlink health, when on and this host has it.
    devlink: Option<DevlinkSource<Box<dyn GenlLink>>>,
    last_devlink: Millis,
    /// When a failed devlink poll was last logged.
    devlink_warned: Option<Millis>,
    /// Whether the kernel's refusal of dumps and diagnoses (no `CAP_NET_ADMIN`) was told.
    devlink_refusal_told: bool,
    /// Fault events devlink health gave.
    pub devlink_events: u64,
    /// devlink polls that failed (the socket, or an answer that could not be read).
    pub devlink_errors: u64,
    /// Records read, gaps seen.
    pub records: u64,
    /// Records known lost to overruns.
    pub lost: u64,
    /// History records read past, older than the replay window.
    pub history_skipped: u64,
    /// VF state samples taken, and VF knobs set by actions (the map's VF states change with
    /// each).
    pub samples: u64,
    /// Moves when an incident opens, is contained, restored or closed.
    pub incident_epoch: u64,
    /// Actions the start's replay of the journal decided differently from the live run (0 when
    /// the rebuilt engine is the one that ran).
    pub replay_diverged: usize,
    /// Reads of the host map that failed as a whole (the last good map kept, marked stale).
    pub topology_read_failures: u64,
    /// Of those, the ones that failed for want of file descriptors (`EMFILE`, `ENFILE`).
    pub fd_exhausted: u64,
    /// When a failed read was last logged, and how many failed since without a line.
    stale_logged: Option<(Millis, u64)>,
}

/// Starts the devlink health source on `link`: its first look at every reporter is a
/// baseline. `None` (told once, never retried) when this host has no devlink, forbids it, or
/// the first look fails.
fn start_devlink(link: Box<dyn GenlLink>) -> Option<DevlinkSource<Box<dyn GenlLink>>> {
    let mut src = DevlinkSource::new(link);
    match src.start() {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                reason = src.unavailable().unwrap_or_default(),
                "devlink health unavailable on this host; its source is off"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "devlink health not started; its source is off");
            return None;
        }
    }
    match src.poll(true) {
        Ok(_) => Some(src),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "devlink health reporters not read; its source is off");
            None
        }
    }
}

/// A failed read of the host map is logged at most this often (the others are counted in the
/// next line, and in the metrics).
const STALE_WARN_EVERY_MS: Millis = 60_000;

impl Agent {
    /// Starts the loop: with a journal, rebuilds the engine from it and resumes after its
    /// cursor; interrupted actions are reconciled.
    pub fn start(
        cfg: AgentConfig,
        host: AgentHost,
        journal: Option<&Path>,
        now: Millis,
    ) -> anyhow::Result<(Agent, StepReport)> {
        let mut watcher = TopologyWatcher::new(host.topology);
        let (topo, _) = watcher.refresh();
        let mut engine = Engine::new(cfg.policy.clone());
        let mut reader = KmsgReader::new(host.kmsg);
        let mut report = StepReport::default();
        let journal = match journal {
            Some(p) => Some(
                Journal::open(p).with_context(|| format!("opening the journal {}", p.display()))?,
            ),
            None => None,
        };
        let cursor_key = kmsg_cursor_key(host.fs.as_ref());
        let mut cursor = None;
        let mut replay_diverged = 0;
        if let Some(j) = &journal {
            cursor = j.cursor(&cursor_key)?;
            let used = UsedIds {
                action: j.max_action_id()?,
                incident: j.max_incident_id()?,
            };
            // Streamed, twice: a journal of millions of observations is never held in memory.
            let history = || j.replay_stream().map(|e| e.map(journalled));
            replay_diverged =
                restart::rebuild(&mut engine, history, &topo, &cfg.policy, used)?.diverged;
        }
        let mut cfg = cfg;
        match cursor {
            Some(seq) => reader.resume_after(seq)?,
            None if cfg.replay_history => reader.replay()?,
            None => reader.tail()?,
        }
        if cursor.is_some() || !cfg.replay_history {
            // The window is about a first start's history only.
            cfg.replay_since_us = None;
        }
        let devlink = match host.devlink {
            Some(link) if cfg.devlink => start_devlink(link),
            _ => None,
        };
        let classifier = if cfg.fold_repeats {
            FoldingClassifier::new()
        } else {
            FoldingClassifier::unfolded()
        };
        let mut agent = Agent {
            cfg,
            cursor_key,
            engine,
            classifier,
            reader,
            watcher,
            topo,
            vfnet: host.vfnet,
            fs: host.fs,
            actuator: host.actuator,
            journal,
            last_topology: now,
            last_full_topology: now,
            last_stats: now,
            last_retention: now,
            step_started: None,
            aer_last: HashMap::new(),
            aer_logged: HashMap::new(),
            aer_absent: HashSet::new(),
            drops: vfguard_sources::vf_drops::DropWatch::new(),
            devlink,
            last_devlink: now,
            devlink_warned: None,
            devlink_refusal_told: false,
            devlink_events: 0,
            devlink_errors: 0,
            records: 0,
            lost: 0,
            history_skipped: 0,
            samples: 0,
            incident_epoch: 0,
            replay_diverged,
            topology_read_failures: 0,
            fd_exhausted: 0,
            stale_logged: None,
        };
        let first = std::mem::take(&mut agent.topo);
        agent.take_map(first, now);
        // Actions journalled without an outcome: judge them from the state read back.
        let pending = agent
            .journal
            .as_ref()
            .map(Journal::pending_intents)
            .transpose()?
            .unwrap_or_default();
        let mut queue = Vec::new();
        for a in pending {
            let state = a.pf_netdev.as_ref().zip(a.vf).and_then(|(nd, vf)| {
                agent
                    .vfnet
                    .vf_states(nd)
                    .ok()?
                    .into_iter()
                    .find(|s| s.index == vf.0)
            });
            let o = reconcile(&a, state.as_ref(), now);
            report.reconciled.push((a.id, a.kind.name(), a.dry_run));
            if let Some(j) = agent.journal.as_mut() {
                j.record_outcome(&o)?;
            }
            queue.push(Observation::Outcome(o));
        }
        agent.process_with_cursor(queue, now, &mut report, None)?;
        Ok((agent, report))
    }

    /// Moves a journal cursor forward (`fleet`: what the fleet acknowledged), so that a
    /// restart resumes there; nothing without a journal.
    pub fn advance_cursor(&mut self, source: &str, seq: u64) -> anyhow::Result<()> {
        if let Some(j) = &mut self.journal {
            j.set_cursor(source, seq)
                .with_context(|| format!("moving the journal's {source} cursor"))?;
        }
        Ok(())
    }

    /// The topology in use.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        self.engine.policy()
    }

    /// Incidents not closed, by state name.
    pub fn incidents_by_state(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut m = std::collections::BTreeMap::new();
        for i in self.engine.incidents() {
            if i.state != vfguard_model::IncidentState::Closed {
                *m.entry(i.state.as_str()).or_default() += 1;
            }
        }
        m
    }

    /// Shows a VF knob an action just set in the map at once, rather than at the next sample
    /// (the API, the metrics and the operator's checks read it).
    fn apply_to_map(&mut self, a: &vfguard_model::Action) {
        let (Some(pf), Some(vf)) = (a.pf, a.vf) else {
            return;
        };
        let Some(s) = self
            .topo
            .pfs
            .iter_mut()
            .find(|p| p.bdf == pf)
            .and_then(|p| p.vfs.iter_mut().find(|v| v.index == vf))
            .and_then(|v| v.state.as_mut())
        else {
            return;
        };
        match &a.kind {
            ActionKind::SetVf(vfguard_model::VfChange::LinkState(l)) => s.link_state = Some(*l),
            ActionKind::SetVf(vfguard_model::VfChange::SpoofChk(on)) => s.spoofchk = Some(*on),
            ActionKind::SetVf(vfguard_model::VfChange::Trust(on)) => s.trust = Some(*on),
            ActionKind::SetVf(vfguard_model::VfChange::Rate { min_mbps, max_mbps }) => {
                s.min_tx_rate = Some(*min_mbps);
                s.max_tx_rate = Some(*max_mbps);
            }
            ActionKind::Restore(before) => {
                s.link_state = before.link_state;
                s.spoofchk = before.spoofchk;
                s.trust = before.trust;
            }
            _ => return,
        }
        self.samples += 1;
    }

    /// Every incident in memory (none closed: those leave it) with its state, as the engine
    /// decided it.
    pub fn incident_states(
        &self,
    ) -> impl Iterator<Item = (IncidentId, vfguard_model::IncidentState)> + '_ {
        self.engine.incidents().map(|i| (i.id, i.state))
    }

    /// The functions with an incident not closed.
    pub fn open_functions(&self) -> impl Iterator<Item = Bdf> + '_ {
        self.engine
            .incidents()
            .filter(|i| i.state != vfguard_model::IncidentState::Closed)
            .filter_map(|i| i.function)
    }

    /// Replaces the policy (a reload); incidents carry on.
    pub fn set_policy(&mut self, p: Policy) {
        self.engine.set_policy(p);
    }

    /// Carries out an operator's request now (API or CLI): checked against the host map and the
    /// open incidents, then decided, journalled (with who asked) and acted on like the engine's
    /// own decisions. `Ok(Err(..))` is a refusal for the operator, with what to do.
    pub fn operator(
        &mut self,
        req: vfguard_model::OperatorRequest,
        now: Millis,
    ) -> anyhow::Result<Result<StepReport, vfguard_api::Refusal>> {
        use vfguard_api::Refusal;
        use vfguard_model::OperatorRequest as Op;
        if let Err(refusal) = self.check_operator(&req) {
            return Ok(Err(refusal));
        }
        let mut report = StepReport::default();
        // An operator's action is not a detection: it stays out of detect-to-action.
        self.step_started = None;
        let quarantine = matches!(req, Op::Quarantine { .. });
        self.process_with_cursor(vec![Observation::Operator(req)], now, &mut report, None)?;
        if quarantine {
            let suppressed = report.decisions.iter().find_map(|(_, d)| match d {
                Decision::Suppressed { reason, .. } => Some(reason.clone()),
                _ => None,
            });
            if let Some(reason) = suppressed {
                return Ok(Err(Refusal::Unprocessable(reason)));
            }
        }
        Ok(Ok(report))
    }

    /// What makes an operator's request pointless or impossible, before the engine sees it (so
    /// that a refused request opens nothing and acts on nothing).
    fn check_operator(
        &self,
        req: &vfguard_model::OperatorRequest,
    ) -> Result<(), vfguard_api::Refusal> {
        use vfguard_api::Refusal;
        use vfguard_model::OperatorRequest as Op;
        let function = match req {
            Op::Quarantine { function, .. } | Op::Release { function, .. } => *function,
            Op::SetMode { .. } => return Ok(()),
        };
        let Some(f) = self.topo.function(function) else {
            return Err(Refusal::NotFound(format!(
                "no function {function} on this host (see `vfguard inventory`)"
            )));
        };
        let incident = self.engine.function_incident(function);
        match req {
            Op::Release { .. } if incident.is_none() => Err(Refusal::Conflict(format!(
                "nothing to release: no open incident on {function} (a PF-level incident closes \
                 by itself once quiet)"
            ))),
            Op::Quarantine { .. } => {
                let vf = f.vf.is_some() && f.pf.netdev.is_some();
                let vm = f.owner().kind == vfguard_model::OwnerKind::Vm;
                if !vf && !vm {
                    return Err(Refusal::Unprocessable(format!(
                        "{function} is neither a VF (with its PF's netdev) nor held by a VM: \
                         nothing to quarantine it with"
                    )));
                }
                // Contained, not restored since, and the containment is in effect (a dry run's
                // is not; a detached function is no longer the VM's).
                let in_effect = match f.vf.and_then(|v| v.state.as_ref()) {
                    Some(s) => s.link_state == Some(vfguard_model::VfLinkState::Disable),
                    None => !vm,
                };
                match incident {
                    Some(i) if i.contained_at.is_some() && i.restored_at.is_none() && in_effect => {
                        Err(Refusal::Conflict(format!(
                            "{function} is already contained (incident {}); see `vfguard explain {}`",
                            i.id.0, i.id.0
                        )))
                    }
                    Some(i) if i.actions.iter().any(|a| a.result.is_none()) => {
                        Err(Refusal::Conflict(format!(
                            "an action on {function} is in flight (incident {}); try again",
                            i.id.0
                        )))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// One step at `now`.
    pub fn step(&mut self, now: Millis) -> anyhow::Result<StepReport> {
        let mut report = StepReport::default();
        let started = std::time::Instant::now();
        self.step_started = Some(started);
        let mut last_seq = None;
        let mut budget = self.cfg.max_records_per_step;
        while budget > 0 {
            budget -= 1;
            let Some(ev) = self.reader.next_event()? else {
                // Caught up: the history is behind us, and the kernel's clock (not NTP-adjusted)
                // must never hide a record logged after the start.
                self.cfg.replay_since_us = None;
                break;
            };
            match ev {
                KmsgEvent::Record(r) => {
                    self.records += 1;
                    last_seq = Some(r.seq);
                    if self
                        .cfg
                        .replay_since_us
                        .is_some_and(|since| r.ts_usec < since)
                    {
                        self.history_skipped += 1;
                        continue;
                    }
                    self.classifier.push(&r);
                }
                KmsgEvent::Gap { first, last } => self.lost += last - first + 1,
                KmsgEvent::Malformed { .. } => {}
            }
        }
        let mut queue: Vec<Observation> = Vec::with_capacity(64);
        for e in self.classifier.finish() {
            if matches!(
                e.kind,
                FaultKind::AerCorrectable | FaultKind::AerNonfatal | FaultKind::AerFatal
            ) {
                if let Some(f) = e.function {
                    let n = self.aer_logged.entry(f).or_default();
                    *n = n.saturating_add(e.records());
                }
            }
            report.faults.push(FaultTally {
                kind: e.kind,
                pf: e.pf,
                driver: e.driver.clone(),
                records: e.records(),
            });
            queue.push(Observation::Fault(e));
        }
        queue.extend(self.poll_devlink(now, &mut report));
        if now >= self.last_stats + self.cfg.stats_every_ms {
            self.last_stats = now;
            let sampled = self.sample();
            for o in &sampled {
                if let Observation::Fault(e) = o {
                    report.faults.push(FaultTally {
                        kind: e.kind,
                        pf: e.pf,
                        driver: e.driver.clone(),
                        records: e.records(),
                    });
                }
            }
            queue.extend(sampled);
        }
        queue.push(Observation::Tick);
        // The records read this step are covered by the first batch of the step.
        self.process_with_cursor(queue, now, &mut report, last_seq)?;
        // Housekeeping after the actions, never before them.
        if now >= self.last_topology + self.cfg.topology_every_ms {
            self.watch_topology(now);
        }
        if now >= self.last_retention + 3_600_000 {
            self.last_retention = now;
            if let Some(j) = self.journal.as_mut() {
                j.apply_retention(now, self.cfg.retention_age_ms, self.cfg.retention_rows)?;
            }
        }
        report.took = started.elapsed();
        Ok(report)
    }

    /// Puts a map from the watcher in use. A stale one (the read failed as a whole, and the
    /// watcher gave the last good map back) is counted and logged, at most once a minute, and
    /// the map in use, that same last good one with its VF states as sampled since, stays,
    /// marked stale.
    fn take_map(&mut self, t: Topology, now: Millis) {
        match t.stale {
            Some(s) => {
                self.topology_read_failures += 1;
                if s.fd_exhausted {
                    self.fd_exhausted += 1;
                }
                match self.stale_logged {
                    Some((at, ref mut quiet)) if now < at + STALE_WARN_EVERY_MS => *quiet += 1,
                    _ => {
                        let not_logged = self.stale_logged.map_or(0, |(_, q)| q);
                        tracing::warn!(
                            error = %s.error,
                            fd_exhausted = s.fd_exhausted,
                            failed_reads = s.failed_reads,
                            not_logged,
                            pfs = self.topo.pfs.len(),
                            "host map not read; the last good map stays in use, marked stale"
                        );
                        self.stale_logged = Some((now, 0));
                    }
                }
                self.topo.stale = Some(s);
            }
            None => {
                if let Some(s) = &self.topo.stale {
                    tracing::info!(failed_reads = s.failed_reads, "host map read again");
                    self.stale_logged = None;
                }
                self.topo = t;
            }
        }
    }

    fn refresh_topology(&mut self, now: Millis) {
        let (t, _) = self.watcher.refresh();
        // Ask again, at each full read, functions that had no AER files (one may have been
        // caught mid-reset).
        self.aer_absent.clear();
        self.take_map(t, now);
        self.last_topology = now;
        self.last_full_topology = now;
    }

    /// Every `topology_every_ms`: re-read the map if its cheap signature moved, and in full at
    /// least every `full_topology_every_ms` (changes the signature cannot see: a netdev moving
    /// namespace, a new QEMU holding a group).
    fn watch_topology(&mut self, now: Millis) {
        if now >= self.last_full_topology + self.cfg.full_topology_every_ms {
            self.refresh_topology(now);
            return;
        }
        self.last_topology = now;
        if let Some((t, changed)) = self.watcher.probe(&self.topo) {
            if changed {
                self.aer_absent.clear();
            }
            self.take_map(t, now);
        }
    }

    /// What devlink health says since the last step: notifications, and every reporter and
    /// VF port each `devlink_every_ms`. A failed poll is logged at most once a minute and
    /// counted; the next poll tries again.
    fn poll_devlink(&mut self, now: Millis, report: &mut StepReport) -> Vec<Observation> {
        let Some(src) = self.devlink.as_mut() else {
            return Vec::new();
        };
        let full = now >= self.last_devlink + self.cfg.devlink_every_ms;
        if full {
            self.last_devlink = now;
        }
        let events = match src.poll(full) {
            Ok(e) => e,
            Err(e) => {
                self.devlink_errors += 1;
                if self
                    .devlink_warned
                    .is_none_or(|at| now >= at + STALE_WARN_EVERY_MS)
                {
                    self.devlink_warned = Some(now);
                    tracing::warn!(error = %format!("{e:#}"), failed = self.devlink_errors, "devlink health not read; trying again");
                }
                return Vec::new();
            }
        };
        let refused = src.stats.refused + src.stats.clears_refused;
        if refused > 0 && !self.devlink_refusal_told {
            self.devlink_refusal_told = true;
            tracing::warn!(
                refused,
                "devlink health dumps or diagnoses refused (they need CAP_NET_ADMIN): errors are \
                 counted without their details, and no vnic counters are read"
            );
        }
        let mut out = Vec::with_capacity(events.len());
        for h in events {
            let driver =
                h.pf.or(h.device)
                    .and_then(|b| self.topo.pf(b))
                    .and_then(|p| p.driver.clone());
            let e = h.into_fault(driver.as_deref());
            report.faults.push(FaultTally {
                kind: e.kind,
                pf: e.pf,
                driver: e.driver.clone(),
                records: e.records(),
            });
            self.devlink_events += 1;
            out.push(Observation::Fault(e));
        }
        out
    }

    /// The devlink health source's counts, when it is on.
    pub fn devlink_stats(&self) -> Option<vfguard_sources::devlink::DevlinkStats> {
        self.devlink.as_ref().map(|d| d.stats.clone())
    }

    /// VF counters of every PF with VFs, and AER counter deltas the log did not account for.
    fn sample(&mut self) -> Vec<Observation> {
        self.samples += 1;
        let mut out = Vec::new();
        for pf in &mut self.topo.pfs {
            let Some(nd) = pf.netdev.as_deref() else {
                continue;
            };
            if pf.vfs.is_empty() {
                continue;
            }
            if let Ok(states) = self.vfnet.vf_states(nd) {
                for s in states {
                    if let Some(stats) = s.stats {
                        let vf = vfguard_model::VfIndex(s.index);
                        // mlx5 drops a VF's spoofed frames without a line: its tx_dropped.
                        if let Some(mut e) =
                            self.drops.observe(pf.bdf, pf.driver.as_deref(), vf, &stats)
                        {
                            e.function = pf.vfs.iter().find(|v| v.index == vf).map(|v| v.bdf);
                            out.push(Observation::Fault(e));
                        }
                        out.push(Observation::VfStats {
                            pf: pf.bdf,
                            vf,
                            stats,
                        });
                    }
                    // The map shows the VF's state as last read (the API, the metrics).
                    if let Some(v) = pf.vfs.iter_mut().find(|v| v.index.0 == s.index) {
                        v.state = Some(s);
                    }
                }
            }
        }
        let functions: Vec<Bdf> = self
            .topo
            .pfs
            .iter()
            .filter(|p| p.aer)
            .map(|p| p.bdf)
            .chain(
                self.topo
                    .pfs
                    .iter()
                    .flat_map(|p| p.vfs.iter().map(|v| v.bdf)),
            )
            .collect();
        for f in functions {
            // A function without AER files (no capability, or no OS control) stays without them
            // until the map changes; do not ask again every second.
            if self.aer_absent.contains(&f) {
                continue;
            }
            let now = match vfguard_sources::aer::read_counters(self.fs.as_ref(), f) {
                Ok(Some(now)) => now,
                Ok(None) => {
                    self.aer_absent.insert(f);
                    continue;
                }
                // Out of descriptors, or a file not in the kernel's format: asked again at
                // the next sample (the counters are cumulative, so nothing is lost meanwhile).
                Err(_) => continue,
            };
            let logged = self.aer_logged.remove(&f).unwrap_or(0);
            if let Some(prev) = self.aer_last.insert(f, now.clone()) {
                let d = vfguard_sources::aer::delta(&prev, &now);
                let correctable = d.correctable.saturating_sub(logged);
                if correctable + d.nonfatal + d.fatal > 0 {
                    out.push(Observation::Aer {
                        function: f,
                        correctable,
                        nonfatal: d.nonfatal,
                        fatal: d.fatal,
                    });
                }
            }
        }
        out
    }

    /// Observes a round of observations, commits what mattered (with the kmsg cursor, when
    /// given) in one transaction, then carries out the actions: intent journalled, actuator
    /// called, outcome journalled and observed in the next round.
    fn process_with_cursor(
        &mut self,
        first: Vec<Observation>,
        now: Millis,
        report: &mut StepReport,
        mut cursor: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut round = first;
        while !round.is_empty() || cursor.is_some() {
            let mut batch = Batch {
                at: now,
                observations: Vec::new(),
                decisions: Vec::new(),
                cursor: cursor.take().map(|s| (self.cursor_key.clone(), s)),
            };
            let mut acts = Vec::new();
            for obs in round.drain(..) {
                // Counters a localization reads are journalled though they decide nothing: a
                // replay must see them to decide as the live run did.
                let matters = match self.journal {
                    Some(_) => self.engine.matters(&obs),
                    None => None,
                };
                let (decisions, incident) = self.engine.observe_linked(&obs, &self.topo, now);
                if decisions.is_empty() {
                    if let Some(i) = matters {
                        batch.observations.push((obs, Some(i)));
                    }
                    continue;
                }
                if let (Observation::Fault(e), Some(i)) = (&obs, incident) {
                    report.kinds.push((i, e.kind));
                    report.sources.push((i, vfguard_sim::report::source_of(e)));
                }
                // Outcomes are journalled on their own, right after the actuator returns.
                if self.journal.is_some() && !matches!(obs, Observation::Outcome(_)) {
                    batch.observations.push((obs, incident));
                }
                for d in decisions {
                    if let Decision::Act(a) = &d {
                        acts.push(a.clone());
                    }
                    if matches!(
                        d,
                        Decision::IncidentOpened { .. } | Decision::StateChanged { .. }
                    ) {
                        self.incident_epoch += 1;
                    }
                    batch.decisions.push(d);
                }
            }
            if let Some(j) = self.journal.as_mut() {
                if !batch.observations.is_empty()
                    || !batch.decisions.is_empty()
                    || batch.cursor.is_some()
                {
                    j.record_batch(&batch)?;
                }
            }
            report
                .decisions
                .extend(batch.decisions.drain(..).map(|d| (now, d)));
            // The round's intents in one commit before any is carried out, its outcomes in one
            // after: a crash in between leaves pending intents, reconciled on restart.
            if let Some(j) = self.journal.as_mut() {
                if !acts.is_empty() {
                    j.record_intents(&acts)?;
                }
            }
            let mut detached = false;
            let mut outcomes = Vec::with_capacity(acts.len());
            for a in acts {
                let t0 = std::time::Instant::now();
                let o = self.actuator.execute(&a, now);
                if o.error.is_none() && !a.dry_run {
                    self.apply_to_map(&a);
                }
                report.action_durations.push((a.kind.name(), t0.elapsed()));
                detached |= a.kind == ActionKind::Detach && o.error.is_none();
                if let Some(t0) = self.step_started {
                    report.acted_after.push(t0.elapsed());
                }
                outcomes.push(o);
            }
            if let Some(j) = self.journal.as_mut() {
                if !outcomes.is_empty() {
                    j.record_outcomes(&outcomes)?;
                }
            }
            for o in outcomes {
                report.outcomes.push(o.clone());
                round.push(Observation::Outcome(o));
            }
            if detached {
                self.refresh_topology(now);
            }
        }
        Ok(())
    }
}
