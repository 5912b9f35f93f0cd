//! The agent as a service (`vfguard run`): the loop on this host or on the simulated one, paced
//! by [`crate::pace`], with the service's duties around each step.
//!
//! Between steps, requests from the signal handlers and the API ([`Control`], one channel) are
//! carried out as they come: a stop ends the loop after the step in flight (its journal
//! transaction committed), a reload replaces the policy, an operator's request is checked,
//! decided, journalled and acted on, and answered. After each step its report is counted
//! ([`Metrics`]), its decisions logged, the loop's state published for the API ([`LiveView`]),
//! and systemd's watchdog pinged when it asked for it (`WATCHDOG_USEC`). systemd is told
//! READY=1 once the loop runs and STOPPING=1 on the way out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use vfguard_act::{MemoryNotifier, Notifier};
use vfguard_model::{Decision, IncidentId, Millis};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

use crate::agent::{Agent, StepReport};
use crate::config::Config;
use crate::host::AgentHost;
use crate::metrics::Metrics;
use crate::pace::{self, Clock, Duties, Ended, Flow, VirtualClock, WallClock};
use crate::views::{Control, LiveView};

/// Tells systemd something, when it asked to be told (`NOTIFY_SOCKET`).
pub fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let _ = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
        }
        None => sock.send_to(msg.as_bytes(), PathBuf::from(path)),
    };
}

/// The simulated host instead of this one (`vfguard run --sim`).
pub struct Simulated {
    /// The scenario it plays.
    pub scenario: Scenario,
    /// Virtual seconds per real second (0: as fast as possible).
    pub speed: f64,
    /// After the scenario's end, serve requests until stopped (else stop).
    pub linger: bool,
}

/// Runs the agent as a service until a [`Control::Stop`] (or, on the simulated host, the
/// scenario's end without `linger`): on this host as `cfg` names it, or on `sim`. Requests come
/// on `control`; the state goes to `view` and `metrics`.
pub fn run(
    cfg: &Config,
    sim: Option<Simulated>,
    control: &mpsc::Receiver<Control>,
    view: &LiveView,
    metrics: &Metrics,
    fleet: Option<Arc<vfguard_fleet::publish::Progress>>,
) -> anyhow::Result<()> {
    let mut duties = Daemon::new(control, view, metrics);
    if let Some(p) = fleet {
        duties = duties.with_fleet(p);
    }
    match sim {
        Some(s) => {
            let mut host = SimHost::new(s.scenario).context("building the simulated host")?;
            let notes: Arc<dyn Notifier> = match &cfg.webhook {
                Some(w) => crate::notify::notifier(Some(w))?,
                None => Arc::new(MemoryNotifier::default()),
            };
            let handles = AgentHost::simulated(&host, notes);
            let (mut agent, first) =
                Agent::start(cfg.agent.clone(), handles, Some(&cfg.journal), 0)?;
            duties.started(&agent, 0, &first);
            tracing::info!(
                "running on the simulated host {:?} ({}x)",
                host.scenario().scenario.name,
                s.speed
            );
            let mut clock = VirtualClock::scenario(&mut host, cfg.agent.step_ms).paced(s.speed);
            let ended = pace::run_until(&mut agent, &mut clock, &mut duties)?;
            if s.linger && ended == Ended::ClockEnded {
                tracing::info!("the scenario has ended; serving until stopped (--linger)");
                duties.linger(&mut agent, &clock, cfg.agent.step_ms)?;
            }
        }
        None => {
            let mut agent_cfg = cfg.agent.clone();
            agent_cfg.replay_since_us = replay_since_us(cfg)?;
            let handles = AgentHost::live(cfg)?;
            let now = pace::wall_ms();
            let (mut agent, first) = Agent::start(agent_cfg, handles, Some(&cfg.journal), now)?;
            duties.started(&agent, now, &first);
            tracing::info!("running; journal {}", cfg.journal.display());
            let mut clock = WallClock::new(cfg.agent.step_ms);
            pace::run_until(&mut agent, &mut clock, &mut duties)?;
        }
    }
    sd_notify("STOPPING=1");
    tracing::info!("stopped; the journal is committed");
    Ok(())
}

/// The timestamp cut-off of `replay_window` on the live kernel log: its clock is this host's
/// `CLOCK_MONOTONIC` (see [`Config::check_host`]).
fn replay_since_us(cfg: &Config) -> anyhow::Result<Option<u64>> {
    let Some(window) = cfg.replay_window_ms.filter(|_| cfg.agent.replay_history) else {
        return Ok(None);
    };
    cfg.check_host()?;
    let now = vfguard_host::linux::monotonic_us().context("reading CLOCK_MONOTONIC")?;
    Ok(Some(now.saturating_sub(window.saturating_mul(1000))))
}

/// Requests taken between two steps when the loop is behind its period.
const MAX_REQUESTS_WHEN_LATE: usize = 8;

/// The service's duties around the steps.
pub struct Daemon<'a> {
    control: &'a mpsc::Receiver<Control>,
    view: &'a LiveView,
    metrics: &'a Metrics,
    /// Each incident's owner, for the log's lines.
    owners: BTreeMap<IncidentId, String>,
    published: Published,
    /// Half systemd's watchdog period, when it set one.
    watchdog: Option<Duration>,
    last_ping: Instant,
    /// The fleet publisher's progress, when it runs, and the cursor last written.
    fleet: Option<(Arc<vfguard_fleet::publish::Progress>, u64)>,
}

impl<'a> Daemon<'a> {
    /// Duties answering `control`, publishing to `view` and `metrics`.
    pub fn new(
        control: &'a mpsc::Receiver<Control>,
        view: &'a LiveView,
        metrics: &'a Metrics,
    ) -> Daemon<'a> {
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|us| Duration::from_micros(us / 2));
        Daemon {
            control,
            view,
            metrics,
            owners: BTreeMap::new(),
            published: Published::default(),
            watchdog,
            last_ping: Instant::now(),
            fleet: None,
        }
    }

    /// Writes the fleet publisher's acknowledged cursor into the journal as it moves, and
    /// shows its progress in the metrics.
    pub fn with_fleet(mut self, progress: Arc<vfguard_fleet::publish::Progress>) -> Daemon<'a> {
        self.fleet = Some((progress, 0));
        self
    }

    /// The fleet's acknowledged cursor into the journal (when it moved) and its metrics.
    fn fleet(&mut self, agent: &mut Agent) -> anyhow::Result<()> {
        let Some((progress, written)) = &mut self.fleet else {
            return Ok(());
        };
        self.metrics.publish_fleet(progress);
        let acked = progress.acked.load(std::sync::atomic::Ordering::Acquire);
        if acked > *written {
            agent.advance_cursor(vfguard_fleet::publish::CURSOR, acked)?;
            *written = acked;
        }
        Ok(())
    }

    /// The agent has started (at `now`; `first`: what its start did): said, counted, published,
    /// and systemd told it is ready.
    pub fn started(&mut self, agent: &Agent, now: Millis, first: &StepReport) {
        if agent.replay_diverged > 0 {
            tracing::warn!(
                "the journal's replay decided {} action(s) differently from the run that wrote it; \
                 incidents may sit on another rung than before the restart (no action id is reused)",
                agent.replay_diverged
            );
        }
        self.record(first);
        self.publish(agent, now);
        sd_notify("READY=1");
    }

    /// With no more steps to take: answers requests (and pings the watchdog) until stopped.
    pub fn linger(
        &mut self,
        agent: &mut Agent,
        clock: &dyn Clock,
        period_ms: Millis,
    ) -> anyhow::Result<()> {
        let period = Duration::from_millis(period_ms);
        while self.between(agent, clock, Some(Instant::now() + period))? == Flow::Go {
            self.fleet(agent)?;
            self.ping();
        }
        Ok(())
    }

    /// Counts and logs what a step (or a request) did.
    fn record(&mut self, report: &StepReport) {
        self.metrics.record_step(report);
        for (at, d) in &report.decisions {
            log(*at, d, &mut self.owners);
        }
    }

    fn ping(&mut self) {
        if let Some(every) = self.watchdog {
            if self.last_ping.elapsed() >= every {
                sd_notify("WATCHDOG=1");
                self.last_ping = Instant::now();
            }
        }
    }

    fn publish(&mut self, agent: &Agent, now: Millis) {
        publish(self.view, self.metrics, agent, now, &mut self.published);
    }

    /// Carries out one request from a signal or the API, between steps.
    fn control(&mut self, c: Control, agent: &mut Agent, now: Millis) -> anyhow::Result<Flow> {
        match c {
            Control::Stop => return Ok(Flow::Stop),
            Control::Reload(p) => agent.set_policy(*p),
            Control::Operator(req, reply) => {
                tracing::info!(request = ?req, "operator request");
                match agent.operator(req, now) {
                    Ok(Ok(report)) => {
                        self.record(&report);
                        let _ = reply.send(Ok(crate::views::operator_accepted(&report, now)));
                    }
                    Ok(Err(refusal)) => {
                        tracing::warn!("operator request refused: {refusal}");
                        let _ = reply.send(Err(refusal));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(vfguard_api::Refusal::Unprocessable(format!(
                            "the agent failed carrying it out: {e:#}"
                        ))));
                        return Err(e);
                    }
                }
            }
        }
        Ok(Flow::Go)
    }
}

impl Duties for Daemon<'_> {
    /// Requests are answered as they come; steps keep their period. When a step overran (a
    /// storm), a few waiting requests are still taken before the next one, so that neither a
    /// stream of requests nor a stream of steps starves the other (or the signals).
    fn between(
        &mut self,
        agent: &mut Agent,
        clock: &dyn Clock,
        due: Option<Instant>,
    ) -> anyhow::Result<Flow> {
        let mut late = 0;
        loop {
            let wait = due.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            let c = if wait.is_zero() {
                late += 1;
                if late > MAX_REQUESTS_WHEN_LATE {
                    return Ok(Flow::Go);
                }
                match self.control.try_recv() {
                    Ok(c) => c,
                    Err(mpsc::TryRecvError::Empty) => return Ok(Flow::Go),
                    Err(mpsc::TryRecvError::Disconnected) => return Ok(Flow::Stop),
                }
            } else {
                match self.control.recv_timeout(wait) {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => return Ok(Flow::Go),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(Flow::Stop),
                }
            };
            let now = clock.now();
            if self.control(c, agent, now)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            self.publish(agent, now);
        }
    }

    fn stepped(
        &mut self,
        agent: &mut Agent,
        at: Millis,
        report: StepReport,
    ) -> anyhow::Result<Flow> {
        self.record(&report);
        self.publish(agent, at);
        self.fleet(agent)?;
        self.ping();
        Ok(Flow::Go)
    }
}

/// A decision in the service's log (attributions and thresholds crossed are left to the
/// journal: a storm has one per record).
fn log(at: Millis, d: &Decision, owners: &mut BTreeMap<IncidentId, String>) {
    if matches!(
        d,
        Decision::Attributed { .. } | Decision::ThresholdCrossed { .. }
    ) {
        return;
    }
    if let Some(line) = crate::simrun::describe(at, d, owners) {
        tracing::info!("{}", line.trim_start());
    }
}

/// What `publish` last published: (map version, VF samples, incident changes).
#[derive(Default)]
struct Published {
    vfs: Option<(u64, u64, u64)>,
    topology: Option<(u64, u64, u64)>,
    /// The published map's failed reads, when it was stale.
    failed_reads: Option<u64>,
}

/// The loop's state for the API and the metrics, after each step; the host map only when it
/// changed (its version, or the VF states read since).
fn publish(
    view: &LiveView,
    metrics: &Metrics,
    agent: &Agent,
    now: Millis,
    published: &mut Published,
) {
    let t = agent.topology();
    let incidents = agent.incidents_by_state();
    view.publish_status(crate::views::running_status(agent, now, &incidents));
    metrics.publish_counts(agent, &incidents);
    // The VF gauges follow every sample (they are rebuilt only when what they show changed);
    // the API's copy of the map follows changes of the map and of incidents, and VF states
    // (counters included) every 10th sample: a copy of 1024 VFs each second would be most of
    // the idle cost.
    let key = (t.version, agent.samples, agent.incident_epoch);
    if published.vfs != Some(key) {
        published.vfs = Some(key);
        metrics.publish_vfs(agent);
    }
    let failed_reads = t.stale.as_ref().map(|s| s.failed_reads);
    let stale = published.topology.is_none_or(|(v, s, e)| {
        v != t.version || e != agent.incident_epoch || agent.samples >= s + 10
    }) || published.failed_reads != failed_reads;
    if stale {
        published.topology = Some(key);
        published.failed_reads = failed_reads;
        view.publish_topology(Arc::new(t.clone()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vfguard_api::AgentView as _;
    use vfguard_engine::{Mode, Policy};
    use vfguard_sim::scenario::Scenario;

    use super::*;
    use crate::agent::AgentConfig;

    fn sim() -> SimHost {
        let text = "[scenario]\nname = \"daemon\"\nseed = 1\nduration_ms = 1000\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 2\n";
        SimHost::new(Scenario::parse("daemon.toml", text).unwrap()).unwrap()
    }

    fn observe() -> Box<Policy> {
        Box::new(Policy::from_toml("mode = \"observe\"").unwrap())
    }

    /// Between steps, requests are carried out as they come, each published at once; a stop
    /// ends the loop; when the loop is late, a few are taken and the rest wait for the next
    /// pause.
    #[test]
    fn requests_are_answered_between_steps_and_a_late_loop_still_takes_a_few() {
        let mut sim = sim();
        let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
        let (mut agent, _) = Agent::start(AgentConfig::default(), host, None, 0).unwrap();
        let (tx, rx) = mpsc::channel();
        let metrics = Arc::new(Metrics::new());
        let view = LiveView::new(PathBuf::from("/nonexistent"), metrics.clone(), tx.clone());
        let mut d = Daemon::new(&rx, &view, &metrics);
        let clock = VirtualClock::scenario(&mut sim, 100);
        tx.send(Control::Reload(observe())).unwrap();
        tx.send(Control::Stop).unwrap();
        let soon = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(d.between(&mut agent, &clock, soon).unwrap(), Flow::Stop);
        assert_eq!(agent.policy().mode, Mode::Observe);
        let vfguard_api::reply::Status::Running(status) = view.status() else {
            panic!("not published: {:?}", view.status())
        };
        assert_eq!(status.mode, Mode::Observe, "published after the request");
        // Nothing comes: the wait ends when the next step is due.
        let due = Instant::now() + Duration::from_millis(20);
        assert_eq!(d.between(&mut agent, &clock, Some(due)).unwrap(), Flow::Go);
        assert!(Instant::now() >= due);
        // Late (or unpaced): at most MAX_REQUESTS_WHEN_LATE, then the step.
        for _ in 0..MAX_REQUESTS_WHEN_LATE + 2 {
            tx.send(Control::Reload(observe())).unwrap();
        }
        assert_eq!(d.between(&mut agent, &clock, None).unwrap(), Flow::Go);
        assert_eq!(rx.try_iter().count(), 2);
    }
}
