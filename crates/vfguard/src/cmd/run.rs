//! `vfguard run`: the agent as a service.
//!
//! The loop runs on its own thread (it blocks on the journal and the host); the main thread
//! waits on signals: SIGTERM/SIGINT stop it after the step in flight (journal committed), SIGHUP
//! reloads the configuration file (an invalid one is refused with the reason, and the running
//! configuration stays). systemd is told READY=1 once the loop runs, WATCHDOG=1 from every step
//! when a watchdog is set, STOPPING=1 on the way out. The API (Unix socket, and TCP behind a
//! bearer token when configured) runs on the main thread's runtime; its operator requests reach
//! the loop on the same channel as the signals and are carried out between steps. Logs go
//! through `tracing` (text, JSON lines or journald).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use vfguard_act::{Actuator, MemoryNotifier};
use vfguard_host::linux::{open_kmsg, NetlinkVfControl, NetlinkVfNet, Virsh};
use vfguard_host::FsRoot;
use vfguard_model::{Decision, IncidentId, Millis};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

use crate::cli::RunArgs;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::config::Config;
use vfguard_agent::metrics::Metrics;
use vfguard_agent::views::{Control, LiveView};
use vfguard_api::Access;

const DEMO: &str = include_str!("../../../../testdata/scenarios/demo.toml");

/// Tells systemd something, when it asked to be told (`NOTIFY_SOCKET`).
fn sd_notify(msg: &str) {
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

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(j) = &args.journal {
        cfg.journal = j.clone();
    }
    if let Some(r) = &args.root {
        cfg.root = r.clone();
    }
    if let Some(s) = &args.socket {
        cfg.socket = s.clone();
    }
    if let Some(f) = &args.log_format {
        cfg.log_format = f.clone();
    }
    init_logging(&cfg.log_format)?;
    if let Some(parent) = cfg.journal.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(cfg, args))
}

async fn serve(cfg: Config, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::channel::<Control>();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    let sim = args.sim.clone();
    let speed = args.speed;
    let linger = args.linger;
    let token = cfg.api_token()?;
    let socket_group = cfg.api_gid()?;
    let access = vfguard_api::Reloadable::new(access_of(&cfg)?);
    let worker_cfg = cfg.clone();
    let metrics = Arc::new(Metrics::new());
    let view = Arc::new(LiveView::new(
        cfg.journal.clone(),
        metrics.clone(),
        tx.clone(),
    ));
    let worker_view = view.clone();
    std::thread::Builder::new()
        .name("vfguard-agent".into())
        .spawn(move || {
            let r = agent_thread(
                &worker_cfg,
                sim.as_deref(),
                (speed, linger),
                &rx,
                &worker_view,
                &metrics,
            );
            let _ = done_tx.send(r);
        })
        .context("starting the agent thread")?;
    // The API: losing it never stops the protection, so a failure to serve is logged, not fatal.
    let (api_stop, api_stop_rx) = tokio::sync::watch::channel(false);
    let router = vfguard_api::router(view, access.clone());
    let tokens = token.map(vfguard_api::Reloadable::new);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let sock = cfg.socket.clone();
    let unix_router = router.clone();
    let unix_stop = stopped(api_stop_rx.clone());
    let mut apis = vec![tokio::spawn(async move {
        match vfguard_api::serve_unix(&sock, socket_group, unix_router, unix_stop).await {
            Ok(()) => {}
            Err(e) => tracing::error!("the API is not served: {e}; the agent runs without it"),
        }
    })];
    if let (Some(addr), Some(token)) = (cfg.api_listen, tokens.clone()) {
        let tcp_stop = stopped(api_stop_rx.clone());
        apis.push(tokio::spawn(async move {
            tracing::info!("the API is served on TCP {addr} (bearer token)");
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "the API on TCP {addr} is plain HTTP off this host: the token crosses the network \
                     in clear; put it behind a TLS proxy or listen on 127.0.0.1"
                );
            }
            if let Err(e) = vfguard_api::serve_tcp(addr, router, token, tcp_stop).await {
                tracing::error!("the API is not served on TCP: {e}; the agent runs without it");
            }
        }));
    }
    let live = LiveApi {
        running: &cfg,
        access,
        tokens,
    };
    let result = serve_signals(&mut done_rx, &tx, args, &live).await;
    let _ = api_stop.send(true);
    for api in apis {
        let _ = tokio::time::timeout(Duration::from_secs(2), api).await;
    }
    result
}

/// Who may change things over the socket: root, the daemon's user, `api.users`.
fn access_of(cfg: &Config) -> anyhow::Result<Access> {
    let mut access = Access::root_and(vfguard_agent::config::own_uid());
    access.mutators.extend(cfg.api_uids()?);
    Ok(access)
}

/// The running API's settings a reload may replace.
struct LiveApi<'a> {
    running: &'a Config,
    access: vfguard_api::Reloadable<Access>,
    tokens: Option<vfguard_api::Reloadable<vfguard_api::Tokens>>,
}

impl LiveApi<'_> {
    /// Applies `c`'s users and tokens (re-read: a rotated token takes effect), or refuses the
    /// whole reload with the reason.
    fn reload(&self, c: &Config) -> anyhow::Result<()> {
        let access = access_of(c)?;
        let tokens = c.api_token()?;
        if let (Some(live), Some(t)) = (&self.tokens, tokens) {
            live.set(t);
        }
        self.access.set(access);
        Ok(())
    }
}

/// Logs through `tracing`: `auto` is journald when systemd connected stderr to the journal
/// (`JOURNAL_STREAM`), else text on stderr; `json` is one object per line. RUST_LOG filters.
fn init_logging(format: &str) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = match format {
        "auto" if std::env::var_os("JOURNAL_STREAM").is_some() => "journald",
        "auto" => "text",
        f => f,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let r = match format {
        "journald" => {
            let layer = tracing_journald::layer()
                .context("log_format journald: the journal's socket is not there")?;
            registry.with(layer).try_init()
        }
        "json" => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        _ => {
            use std::io::IsTerminal as _;
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::stderr().is_terminal()),
                )
                .try_init()
        }
    };
    r.context("setting up the log")
}

async fn serve_signals(
    done_rx: &mut tokio::sync::oneshot::Receiver<anyhow::Result<()>>,
    tx: &mpsc::Sender<Control>,
    args: &RunArgs,
    live: &LiveApi<'_>,
) -> anyhow::Result<ExitCode> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            r = &mut *done_rx => {
                return match r {
                    Ok(Ok(())) => Ok(ExitCode::SUCCESS),
                    Ok(Err(e)) => Err(e),
                    Err(_) => anyhow::bail!("the agent thread died"),
                };
            }
            _ = term.recv() => { let _ = tx.send(Control::Stop); }
            _ = int.recv() => { let _ = tx.send(Control::Stop); }
            _ = hup.recv() => {
                match &args.config {
                    None => tracing::warn!("SIGHUP: no --config file to reload"),
                    Some(p) => match Config::load(p).and_then(|c| live.reload(&c).map(|()| c)) {
                        Ok(c) => {
                            tracing::info!(
                                "reloaded {}: the policy, api.users and the token files apply now",
                                p.display()
                            );
                            if c.api_listeners() != live.running.api_listeners() {
                                tracing::warn!(
                                    "{}: socket, socket_group, api.listen or a token file's presence changed; \
                                     they apply on a restart (systemctl restart vfguard)",
                                    p.display()
                                );
                            }
                            let _ = tx.send(Control::Reload(Box::new(c.policy)));
                        }
                        Err(e) => tracing::error!("reload refused: {e:#}; the running configuration stays"),
                    },
                }
            }
        }
    }
}

fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn log(at: Millis, d: &Decision, owners: &mut std::collections::BTreeMap<IncidentId, String>) {
    if matches!(
        d,
        Decision::Attributed { .. } | Decision::ThresholdCrossed { .. }
    ) {
        return;
    }
    if let Some(line) = vfguard_agent::simrun::describe(at, d, owners) {
        tracing::info!("{}", line.trim_start());
    }
}

fn agent_thread(
    cfg: &Config,
    sim: Option<&str>,
    (speed, linger): (f64, bool),
    rx: &mpsc::Receiver<Control>,
    view: &LiveView,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let mut published_topology = Published::default();
    let mut agent_cfg = AgentConfig {
        policy: cfg.policy.clone(),
        topology_every_ms: cfg.topology_every_ms,
        full_topology_every_ms: cfg.full_topology_every_ms,
        stats_every_ms: cfg.stats_every_ms,
        replay_history: cfg.replay_history,
        replay_since_us: None,
        max_records_per_step: cfg.max_records_per_step,
        retention_age_ms: cfg.retention_age_ms,
        fold_repeats: true,
        retention_rows: cfg.retention_rows,
    };
    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| Duration::from_micros(us / 2));
    let mut owners = std::collections::BTreeMap::new();
    let mut last_ping = Instant::now();
    let mut ping = || {
        if let Some(every) = watchdog {
            if last_ping.elapsed() >= every {
                sd_notify("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
    };
    match sim {
        Some(name) => {
            let scenario = if name == "demo" {
                Scenario::parse("demo.toml (built in)", DEMO)
            } else {
                Scenario::load(std::path::Path::new(name))
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut host = SimHost::new(scenario).context("building the simulated host")?;
            let notes: Arc<dyn vfguard_act::Notifier> = match &cfg.webhook {
                Some(_) => notifier(cfg)?,
                None => Arc::new(MemoryNotifier::default()),
            };
            let handles = AgentHost::simulated(&host, notes);
            let (mut agent, first) = Agent::start(agent_cfg, handles, Some(&cfg.journal), 0)?;
            warn_diverged(&agent);
            for (at, d) in &first.decisions {
                log(*at, d, &mut owners);
            }
            metrics.record_step(&first);
            publish(view, metrics, &agent, 0, &mut published_topology);
            sd_notify("READY=1");
            tracing::info!(
                "running on the simulated host {:?} ({}x)",
                host.scenario().scenario.name,
                speed
            );
            let started = Instant::now();
            let duration = host.scenario().scenario.duration_ms;
            let mut now = 0;
            'sim: while now < duration {
                while let Ok(c) = rx.try_recv() {
                    if control(c, &mut agent, now, metrics, &mut owners)? == Flow::Stop {
                        break 'sim;
                    }
                }
                now = (now + cfg.step_ms).min(duration);
                if speed > 0.0 {
                    let due = Duration::from_secs_f64(now as f64 / 1000.0 / speed);
                    if let Some(w) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(w);
                    }
                }
                host.advance_to(now);
                let report = agent.step(now)?;
                metrics.record_step(&report);
                for (at, d) in &report.decisions {
                    log(*at, d, &mut owners);
                }
                publish(view, metrics, &agent, now, &mut published_topology);
                ping();
            }
            if linger && now >= duration {
                tracing::info!("the scenario has ended; serving until stopped (--linger)");
                loop {
                    match rx.recv_timeout(Duration::from_millis(cfg.step_ms)) {
                        Ok(c) => {
                            if control(c, &mut agent, now, metrics, &mut owners)? == Flow::Stop {
                                break;
                            }
                            publish(view, metrics, &agent, now, &mut published_topology);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => ping(),
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        None => {
            let kmsg = open_kmsg(&cfg.kmsg, true)
                .with_context(|| format!("opening {}", cfg.kmsg.display()))?;
            agent_cfg.replay_since_us = replay_since_us(cfg)?;
            let fs: Arc<dyn vfguard_host::HostFs> = Arc::new(FsRoot::new(&cfg.root));
            let vfnet: Arc<dyn vfguard_host::VfNet> = Arc::new(NetlinkVfNet);
            let handles = AgentHost {
                kmsg,
                topology: vfguard_agent::host::topology_reader(&cfg.root),
                vfnet: vfnet.clone(),
                fs: fs.clone(),
                actuator: Actuator {
                    vfctl: Arc::new(NetlinkVfControl),
                    vfnet,
                    fs,
                    vm: Arc::new(Virsh::default()),
                    netns: vfguard_agent::host::netns_control(&cfg.root),
                    notifier: notifier(cfg)?,
                },
            };
            let (mut agent, first) =
                Agent::start(agent_cfg, handles, Some(&cfg.journal), wall_ms())?;
            warn_diverged(&agent);
            for (at, d) in &first.decisions {
                log(*at, d, &mut owners);
            }
            metrics.record_step(&first);
            publish(view, metrics, &agent, wall_ms(), &mut published_topology);
            sd_notify("READY=1");
            tracing::info!("running; journal {}", cfg.journal.display());
            let step = Duration::from_millis(cfg.step_ms);
            let mut next = Instant::now() + step;
            'live: loop {
                // Requests are answered as they come; steps keep their period. When a step
                // overran (a storm), a few waiting requests are still taken before the next
                // one, so neither a stream of requests nor a stream of steps starves the other
                // (or the signals).
                let mut late = 0;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    let c = if wait.is_zero() {
                        late += 1;
                        if late > MAX_REQUESTS_WHEN_LATE {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(c) => c,
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => break 'live,
                        }
                    } else {
                        match rx.recv_timeout(wait) {
                            Ok(c) => c,
                            Err(mpsc::RecvTimeoutError::Disconnected) => break 'live,
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                        }
                    };
                    if control(c, &mut agent, wall_ms(), metrics, &mut owners)? == Flow::Stop {
                        break 'live;
                    }
                    publish(view, metrics, &agent, wall_ms(), &mut published_topology);
                }
                next = Instant::now() + step;
                let now = wall_ms();
                let report = agent.step(now)?;
                metrics.record_step(&report);
                for (at, d) in &report.decisions {
                    log(*at, d, &mut owners);
                }
                publish(view, metrics, &agent, now, &mut published_topology);
                ping();
            }
        }
    }
    sd_notify("STOPPING=1");
    tracing::info!("stopped; the journal is committed");
    Ok(())
}

/// Requests taken between two steps when the loop is behind its period.
const MAX_REQUESTS_WHEN_LATE: usize = 8;

/// Says so when the journal's replay did not rebuild the engine that ran.
fn warn_diverged(agent: &Agent) {
    if agent.replay_diverged > 0 {
        tracing::warn!(
            "the journal's replay decided {} action(s) differently from the run that wrote it; \
             incidents may sit on another rung than before the restart (no action id is reused)",
            agent.replay_diverged
        );
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// Carries out one request from a signal or the API, between steps.
fn control(
    c: Control,
    agent: &mut Agent,
    now: Millis,
    metrics: &Metrics,
    owners: &mut std::collections::BTreeMap<IncidentId, String>,
) -> anyhow::Result<Flow> {
    match c {
        Control::Stop => return Ok(Flow::Stop),
        Control::Reload(p) => agent.set_policy(*p),
        Control::Operator(req, reply) => {
            tracing::info!(request = ?req, "operator request");
            match agent.operator(req, now) {
                Ok(Ok(report)) => {
                    metrics.record_step(&report);
                    for (at, d) in &report.decisions {
                        log(*at, d, owners);
                    }
                    let decisions: Vec<serde_json::Value> = report
                        .decisions
                        .iter()
                        .map(|(_, d)| serde_json::to_value(d).unwrap_or_default())
                        .collect();
                    let _ = reply.send(Ok(serde_json::json!({
                        "at_ms": now,
                        "decisions": decisions,
                        "outcomes": report.outcomes,
                    })));
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

/// The log, and the webhook when one is configured.
fn notifier(cfg: &Config) -> anyhow::Result<Arc<dyn vfguard_act::Notifier>> {
    Ok(match &cfg.webhook {
        None => Arc::new(LogNotifier),
        Some(w) => Arc::new(Both(vfguard_act::webhook::WebhookNotifier::start(
            w.clone(),
        )?)),
    })
}

struct Both(vfguard_act::webhook::WebhookNotifier);

impl vfguard_act::Notifier for Both {
    fn notify(&self, a: &vfguard_model::Action) -> std::io::Result<()> {
        vfguard_act::Notifier::notify(&LogNotifier, a)?;
        self.0.notify(a)
    }
}

/// Notifications to the log (stderr; journald under systemd).
pub struct LogNotifier;

impl vfguard_act::Notifier for LogNotifier {
    fn notify(&self, a: &vfguard_model::Action) -> std::io::Result<()> {
        let owner = a
            .owner
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label);
        tracing::warn!(
            incident = a.incident.0,
            function = %a.function,
            owner = %owner,
            rule = %a.rule,
            "NOTIFY incident={} function={} owner={owner} rule={:?}",
            a.incident.0,
            a.function,
            a.rule.to_string()
        );
        Ok(())
    }
}

/// The timestamp cut-off of `replay_window` on the live kernel log: its clock is this host's
/// `CLOCK_MONOTONIC` (see [`Config::check_host`]).
fn replay_since_us(cfg: &Config) -> anyhow::Result<Option<u64>> {
    let Some(window) = cfg.replay_window_ms.filter(|_| cfg.replay_history) else {
        return Ok(None);
    };
    cfg.check_host()?;
    let now = vfguard_host::linux::monotonic_us().context("reading CLOCK_MONOTONIC")?;
    Ok(Some(now.saturating_sub(window.saturating_mul(1000))))
}

/// What `publish` last published: (map version, VF samples, incident changes).
#[derive(Default)]
struct Published {
    vfs: Option<(u64, u64, u64)>,
    topology: Option<(u64, u64, u64)>,
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
    let mode = agent.policy().mode.as_str();
    let incidents = agent.incidents_by_state();
    view.publish_status(serde_json::json!({
        "state": "running",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": mode,
        "now_ms": now,
        "records": agent.records,
        "lost": agent.lost,
        "history_skipped": agent.history_skipped,
        "topology_version": t.version,
        "pfs": t.pfs.len(),
        "vfs": t.pfs.iter().map(|p| p.vfs.len()).sum::<usize>(),
        "incidents": incidents,
    }));
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
    let stale = published.topology.is_none_or(|(v, s, e)| {
        v != t.version || e != agent.incident_epoch || agent.samples >= s + 10
    });
    if stale {
        published.topology = Some(key);
        view.publish_topology(Arc::new(t.clone()));
    }
}
