//! `vfguard run`: the agent as a service.
//!
//! The loop runs on its own thread (it blocks on the journal and the host): the agent library's
//! [`vfguard_agent::daemon`], which paces it, carries out requests between steps, publishes its
//! state and speaks to systemd (READY=1, WATCHDOG=1, STOPPING=1). The main thread waits on
//! signals: SIGTERM/SIGINT stop the loop after the step in flight (journal committed), SIGHUP
//! reloads the configuration file (an invalid one is refused with the reason, and the running
//! configuration stays). The API (Unix socket, and TCP behind a bearer token when configured)
//! runs on the main thread's runtime; its operator requests reach the loop on the same channel
//! as the signals. Logs go through `tracing` (text, JSON lines or journald).

use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use vfguard_sim::scenario::Scenario;

use crate::cli::RunArgs;
use vfguard_agent::config::Config;
use vfguard_agent::daemon::{self, Simulated};
use vfguard_agent::metrics::Metrics;
use vfguard_agent::views::{Control, LiveView};
use vfguard_api::Access;

const DEMO: &str = include_str!("../../../../testdata/scenarios/demo.toml");

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
    fleet_overrides(&mut cfg, args)?;
    init_logging(&cfg.log_format)?;
    // Every read of the host, API client and journal holds a descriptor: 1024, the usual soft
    // limit, is not much (issue 13).
    match vfguard_host::linux::raise_fd_limit() {
        Ok(l) if l.before < l.after => {
            tracing::info!(from = l.before, to = l.after, "raised the open-file limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "the open-file limit could not be raised"),
    }
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
    let fleet = match &cfg.fleet {
        Some(f) => {
            let topology_view = view.clone();
            Some(vfguard_agent::fleet::Fleet::start(
                f,
                cfg.journal.clone(),
                move || {
                    use vfguard_api::AgentView as _;
                    topology_view.topology()
                },
            )?)
        }
        None => None,
    };
    let fleet_progress = fleet.as_ref().map(|f| f.progress.clone());
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
                fleet_progress,
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
    let limits = cfg.api_limits;
    let unix_router = router.clone();
    let unix_stop = stopped(api_stop_rx.clone());
    let mut apis = vec![tokio::spawn(async move {
        match vfguard_api::serve_unix(&sock, socket_group, unix_router, limits, unix_stop).await {
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
            if let Err(e) = vfguard_api::serve_tcp(addr, router, token, limits, tcp_stop).await {
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
    if let Some(f) = fleet {
        // What the agent committed before it stopped is published (one last pass, bounded).
        let _ = tokio::task::spawn_blocking(move || f.stop()).await;
    }
    result
}

/// `--fleet`, `--site`, `--fleet-host` over the configuration's `[fleet]`.
fn fleet_overrides(cfg: &mut Config, args: &RunArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.fleet {
        let mut f = cfg
            .fleet
            .take()
            .unwrap_or_else(|| vfguard_agent::config::FleetConfig::new(url));
        f.url.clone_from(url);
        cfg.fleet = Some(f);
    }
    let given = args.site.is_some() || args.fleet_host.is_some();
    match &mut cfg.fleet {
        Some(f) => {
            if let Some(site) = &args.site {
                f.site.clone_from(site);
            }
            if let Some(host) = &args.fleet_host {
                f.host = Some(host.clone());
            }
            vfguard_fleet::Subjects::new(&f.site, f.host.as_deref().unwrap_or("host"))?;
        }
        None if given => anyhow::bail!(
            "--site and --fleet-host name this host in a fleet: give --fleet URL too (or fleet.url in the configuration)"
        ),
        None => {}
    }
    Ok(())
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
            // Values escaped: owner names and kernel text cannot forge lines (crate::textlog).
            registry
                .with(crate::textlog::layer(
                    std::io::stderr,
                    std::io::stderr().is_terminal(),
                ))
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
                                    "{}: socket, socket_group, api.listen, the API's limits or a token file's presence changed; \
                                     they apply on a restart (systemctl restart vfguard)",
                                    p.display()
                                );
                            }
                            let _ = tx.send(Control::Reload(Box::new(c.agent.policy)));
                        }
                        Err(e) => tracing::error!("reload refused: {e:#}; the running configuration stays"),
                    },
                }
            }
        }
    }
}

/// The loop's thread: the scenario `--sim` names (`demo`: the built-in one) read, then the
/// agent as a service until stopped.
fn agent_thread(
    cfg: &Config,
    sim: Option<&str>,
    (speed, linger): (f64, bool),
    rx: &mpsc::Receiver<Control>,
    view: &LiveView,
    metrics: &Metrics,
    fleet: Option<Arc<vfguard_fleet::publish::Progress>>,
) -> anyhow::Result<()> {
    let sim = match sim {
        Some(name) => {
            let scenario = if name == "demo" {
                Scenario::parse("demo.toml (built in)", DEMO)
            } else {
                Scenario::load(std::path::Path::new(name))
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(Simulated {
                scenario,
                speed,
                linger,
            })
        }
        None => None,
    };
    daemon::run(cfg, sim, rx, view, metrics, fleet)
}
