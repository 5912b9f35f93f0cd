//! The daemon's configuration file: `RawConfig` as written (TOML, every key optional), validated
//! into `Config`; errors name the field and the value.
//!
//! The loop's settings are an [`AgentConfig`] inside the `Config`, and their defaults are
//! `AgentConfig`'s own: one set of defaults for the daemon, the scenario runs, the tests and the
//! benchmarks (and `deploy/vfguard.toml`, which a test holds equal to them).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use vfguard_engine::policy::RawPolicy;
use vfguard_engine::Policy;

use crate::agent::AgentConfig;

/// The daemon's effective uid (the owner of its `/proc/self`; 0 where that cannot be read).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// The longest step allowed: a fault waits up to a step for its action.
const MAX_STEP_MS: u64 = 5_000;

/// The 1-based line that sets `field` (`step`, `api.listen`, `policy.guard.window`,
/// `policy.rule[1].name`): the key's line in its table, else the table's header line.
fn line_of_field(text: &str, field: &str) -> Option<usize> {
    let (table, index, key) = match field.rsplit_once('.') {
        None => (String::new(), 0, field),
        Some((table, key)) => match table.split_once('[') {
            Some((t, rest)) => (
                format!("[[{t}]]"),
                rest.trim_end_matches(']').parse().unwrap_or(0),
                key,
            ),
            None => (format!("[{table}]"), 0, key),
        },
    };
    let key = key.split('[').next().unwrap_or(key);
    let mut in_table = table.is_empty();
    let mut seen = 0;
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_table && (header.is_some() || table.is_empty()) {
                break;
            }
            if t == table {
                if seen == index {
                    in_table = true;
                    header = Some(n + 1);
                }
                seen += 1;
            }
            continue;
        }
        if in_table && t.split('=').next().map(str::trim) == Some(key) {
            return Some(n + 1);
        }
    }
    header
}

/// The longest token file read (a token is 16 to a few hundred bytes).
const TOKEN_FILE_MAX: u64 = 4096;

/// Reads a token file: a regular file, private to its owner, owned by root or the daemon's user,
/// long enough. It is opened without blocking and checked on the open descriptor, so a FIFO or a
/// device named there is refused at once (a FIFO used to hang `config check` and every SIGHUP
/// reload, SIGTERM then unanswered) and cannot be swapped in between the check and the read.
fn read_token(key: &str, f: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(f)
        .with_context(|| format!("{key} {}", f.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("{key} {}", f.display()))?;
    if !meta.file_type().is_file() {
        anyhow::bail!(
            "{key} {} is not a regular file (a FIFO, a device or a directory); put the token in \
             a file of its own",
            f.display()
        );
    }
    if meta.len() > TOKEN_FILE_MAX {
        anyhow::bail!(
            "{key} {} is {} bytes; a token file holds one token (at most {TOKEN_FILE_MAX} bytes)",
            f.display(),
            meta.len()
        );
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{key} {} is readable by others (mode {:o}); chmod 600 it",
            f.display(),
            mode & 0o777
        );
    }
    let own = own_uid();
    if meta.uid() != 0 && meta.uid() != own {
        anyhow::bail!(
            "{key} {} belongs to uid {}, who could read it and act as the daemon's operators; \
             chown it to root (or uid {own})",
            f.display(),
            meta.uid()
        );
    }
    let mut text = String::new();
    file.take(TOKEN_FILE_MAX)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {key} {}", f.display()))?;
    let token = text.trim();
    if token.len() < 16 {
        anyhow::bail!(
            "{key} {} holds {} bytes; a token is at least 16 (e.g. `openssl rand -hex 32 > {}`)",
            f.display(),
            token.len(),
            f.display()
        );
    }
    Ok(token.as_bytes().to_vec())
}

/// As written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The journal (SQLite).
    pub journal: Option<PathBuf>,
    /// The API's Unix socket.
    pub socket: Option<PathBuf>,
    /// The kernel log device (or a record file/FIFO).
    pub kmsg: Option<PathBuf>,
    /// Read sysfs, /proc and /run under this root.
    pub root: Option<PathBuf>,
    /// On a first start (no journal cursor): read the kernel log from its start, else tail it.
    pub replay_history: Option<bool>,
    /// With `replay_history`: only the records the kernel stamped within this window before the
    /// start ("1h"); unset, the whole ring.
    pub replay_window: Option<String>,
    /// The loop's period.
    pub step: Option<String>,
    /// Topology signature check period.
    pub topology_every: Option<String>,
    /// Full topology read period.
    pub full_topology_every: Option<String>,
    /// VF and AER counter sampling period.
    pub stats_every: Option<String>,
    /// The most kernel records one step reads (the rest waits for the next step).
    pub max_records_per_step: Option<usize>,
    /// Journal rows older than this are deleted (open incidents' rows stay).
    pub retention_age: Option<String>,
    /// At most this many observations are kept in the journal.
    pub retention_rows: Option<u64>,
    /// The policy (docs/engine.md).
    pub policy: Option<RawPolicy>,
    /// Where notifications go beside the log.
    pub notify: Option<RawNotify>,
    /// The HTTP API beyond its Unix socket.
    pub api: Option<RawApi>,
    /// devlink health (docs/devlink.md).
    pub devlink: Option<RawDevlink>,
    /// Publishing to the fleet's NATS JetStream (docs/fleet.md).
    pub fleet: Option<RawFleet>,
    /// Log lines: `auto` (journald under systemd, else text), `text`, `json`, `journald`.
    pub log_format: Option<String>,
}

/// `[api]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Users (names or numeric uids) who may change things over the socket, beside root and
    /// the daemon's own user.
    pub users: Option<Vec<String>>,
    /// Serve the API on TCP too (`127.0.0.1:9477`); needs `token_file`.
    pub listen: Option<String>,
    /// The bearer token TCP clients must present (a file readable by the daemon only).
    pub token_file: Option<PathBuf>,
    /// A second token that may only read (for Prometheus), in its own private file.
    pub read_token_file: Option<PathBuf>,
    /// The group that owns the socket: its members may connect (read; change only if listed
    /// in `users`).
    pub socket_group: Option<String>,
    /// Connections served at once per listener; more wait in the kernel's backlog.
    pub max_connections: Option<usize>,
    /// A request's headers must arrive within this ("10s") of the connection or of its first
    /// byte.
    pub header_read_timeout: Option<String>,
    /// A keep-alive connection idle this long ("60s") is closed.
    pub idle_timeout: Option<String>,
    /// Requests per connection; the last answer closes it.
    pub max_requests_per_connection: Option<u32>,
}

/// `[devlink]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevlink {
    /// Read devlink health reporters (default on; a host without devlink is told once).
    pub enable: Option<bool>,
    /// Dump every reporter and diagnose every VF port's `vnic` this often ("5s"); the
    /// notifications are read every step.
    pub period: Option<String>,
}

/// `[fleet]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// The NATS server (`nats://nats.example:4222`); unset, nothing is published.
    pub url: Option<String>,
    /// This host's site (a NATS subject token; default `default`).
    pub site: Option<String>,
    /// This host's name in the fleet (default: the kernel's hostname).
    pub host: Option<String>,
    /// A heartbeat this often ("10s").
    pub heartbeat: Option<String>,
    /// The most messages published after an outage; older ones are dropped and counted.
    pub max_backlog: Option<u64>,
}

/// Where and how the agent publishes to the fleet (`[fleet]`, or `run --fleet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The NATS server.
    pub url: String,
    /// This host's site.
    pub site: String,
    /// This host's name; `None`: the kernel's hostname, read at start.
    pub host: Option<String>,
    /// Heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// The backlog's bound after an outage, in messages.
    pub max_backlog: u64,
}

impl FleetConfig {
    /// Publishing to `url` with the defaults: site `default`, the hostname, a heartbeat every
    /// 10 s, at most 100 000 messages caught up after an outage.
    pub fn new(url: &str) -> FleetConfig {
        FleetConfig {
            url: url.to_owned(),
            site: "default".to_owned(),
            host: None,
            heartbeat_ms: 10_000,
            max_backlog: 100_000,
        }
    }

    /// Checks what the file gave: a `nats://` URL, subject-safe site and host names.
    fn check(&self) -> anyhow::Result<()> {
        if !(self.url.starts_with("nats://") || self.url.starts_with("tls://")) {
            anyhow::bail!("fleet.url ({}) must be a nats:// (or tls://) URL", self.url);
        }
        vfguard_fleet::Subjects::new(&self.site, self.host.as_deref().unwrap_or("placeholder"))
            .map_err(|e| anyhow::anyhow!("fleet: {e}"))?;
        Ok(())
    }
}

/// `[notify]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// A webhook URL (`http://` or `https://`): a JSON POST per notification.
    pub webhook: Option<String>,
    /// Per attempt.
    pub timeout: Option<String>,
    /// Attempts after the first (backoff doubling from 500 ms).
    pub retries: Option<u32>,
}

/// Validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The journal.
    pub journal: PathBuf,
    /// The API's Unix socket.
    pub socket: PathBuf,
    /// The kernel log.
    pub kmsg: PathBuf,
    /// The host root.
    pub root: PathBuf,
    /// The loop: its period, what it samples how often, how much it reads per step, journal
    /// retention, whether a first start replays the kernel log's history, and the policy.
    pub agent: AgentConfig,
    /// The replay window, ms (`None`: the whole ring).
    pub replay_window_ms: Option<u64>,
    /// The webhook, when configured.
    pub webhook: Option<vfguard_act::webhook::WebhookConfig>,
    /// Users allowed to change things over the socket (names or uids; root and the daemon's
    /// user always are).
    pub api_users: Vec<String>,
    /// The TCP listener, when configured.
    pub api_listen: Option<std::net::SocketAddr>,
    /// The bearer token's file (required with `api_listen`).
    pub api_token_file: Option<PathBuf>,
    /// The read-only token's file.
    pub api_read_token_file: Option<PathBuf>,
    /// The socket's group, when not the daemon's.
    pub api_socket_group: Option<String>,
    /// What each API listener grants its clients (`[api]` max_connections, header_read_timeout,
    /// idle_timeout, max_requests_per_connection).
    pub api_limits: vfguard_api::Limits,
    /// Log format: `auto`, `text`, `json`, `journald`.
    pub log_format: String,
    /// Publishing to the fleet, when configured.
    pub fleet: Option<FleetConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            journal: PathBuf::from("/var/lib/vfguard/journal.db"),
            socket: PathBuf::from("/run/vfguard/vfguard.sock"),
            kmsg: PathBuf::from("/dev/kmsg"),
            root: PathBuf::from("/"),
            agent: AgentConfig::default(),
            replay_window_ms: None,
            webhook: None,
            api_users: Vec::new(),
            api_listen: None,
            api_token_file: None,
            api_read_token_file: None,
            api_socket_group: None,
            api_limits: vfguard_api::Limits::default(),
            log_format: "auto".to_owned(),
            fleet: None,
        }
    }
}

impl Config {
    /// The checks that depend on this host, not on the file alone (run on start and by
    /// `vfguard config check`): `replay_window` needs the live kernel log device, whose
    /// timestamps are this host's `CLOCK_MONOTONIC`; the API's token file must be private and
    /// hold a token; `api.users` must exist.
    pub fn check_host(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::FileTypeExt as _;
        if self.agent.replay_history && self.replay_window_ms.is_some() {
            let is_device =
                std::fs::metadata(&self.kmsg).is_ok_and(|m| m.file_type().is_char_device());
            if !is_device {
                anyhow::bail!(
                    "replay_window applies to the kernel's own log device, and {} is not one (a record file has no clock of this host); remove replay_window",
                    self.kmsg.display()
                );
            }
        }
        for (key, path) in [("journal", &self.journal), ("socket", &self.socket)] {
            if path.is_dir() {
                anyhow::bail!(
                    "{key} ({}) is a directory; give the path of a file in it (e.g. {})",
                    path.display(),
                    path.join(if key == "journal" {
                        "journal.db"
                    } else {
                        "vfguard.sock"
                    })
                    .display()
                );
            }
        }
        self.api_token()?;
        self.api_uids()?;
        self.api_gid()?;
        Ok(())
    }

    /// The bearer tokens for TCP: `api.token_file` (may change things) and, when set,
    /// `api.read_token_file` (may only read: Prometheus's). Each file must exist, hold at least
    /// 16 bytes, belong to root or the daemon's user, and be readable by its owner only.
    pub fn api_token(&self) -> anyhow::Result<Option<vfguard_api::Tokens>> {
        let Some(f) = &self.api_token_file else {
            return Ok(None);
        };
        let read = match &self.api_read_token_file {
            Some(r) => Some(read_token("api.read_token_file", r)?),
            None => None,
        };
        Ok(Some(vfguard_api::Tokens {
            change: read_token("api.token_file", f)?,
            read,
        }))
    }

    /// The gid of `api.socket_group` (looked up in `/etc/group`; a number is taken as is).
    pub fn api_gid(&self) -> anyhow::Result<Option<u32>> {
        let Some(g) = &self.api_socket_group else {
            return Ok(None);
        };
        if let Ok(n) = g.parse::<u32>() {
            return Ok(Some(n));
        }
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        vfguard_api::auth::group_id(&groups, g)
            .map(Some)
            .with_context(|| format!("api.socket_group: no group `{g}` in /etc/group"))
    }

    /// The uids of `api.users` (names looked up in `/etc/passwd`).
    pub fn api_uids(&self) -> anyhow::Result<Vec<u32>> {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        self.api_users
            .iter()
            .map(|u| match u.parse::<u32>() {
                Ok(n) => Ok(n),
                Err(_) => vfguard_api::auth::user_id(&passwd, u)
                    .with_context(|| format!("api.users: no user `{u}` in /etc/passwd")),
            })
            .collect()
    }

    /// The API settings that only a restart applies (a SIGHUP reload applies the policy,
    /// `api.users` and the tokens' contents).
    pub fn api_listeners(&self) -> impl PartialEq + std::fmt::Debug + '_ {
        (
            &self.socket,
            self.api_listen,
            self.api_token_file.is_some(),
            &self.api_socket_group,
            self.api_limits,
        )
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and validates TOML; an error names the line of the field it is about (`line 12:
    /// step (1h) must be ...`).
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse_fields(text).map_err(|e| {
            let msg = format!("{e:#}");
            if msg.starts_with("line ") {
                return e;
            }
            let field = msg
                .split([' ', ':', '('])
                .next()
                .unwrap_or_default()
                .trim_start_matches("policy.");
            let table_key = if msg.starts_with("policy.") {
                format!("policy.{field}")
            } else {
                field.to_owned()
            };
            match line_of_field(text, &table_key) {
                Some(n) => anyhow::anyhow!("line {n}: {msg}"),
                None => e,
            }
        })
    }

    fn parse_fields(text: &str) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                text.get(..s.start)
                    .map_or(0, |t| t.matches('\n').count() + 1)
            });
            anyhow::anyhow!("line {}: {}", line.unwrap_or(0), e.message())
        })?;
        let mut c = Config::default();
        let agent = &mut c.agent;
        let dur = |field: &str, v: &Option<String>, min: u64| -> anyhow::Result<Option<u64>> {
            match v {
                None => Ok(None),
                Some(t) => {
                    let ms = vfguard_engine::policy::parse_duration(field, t)?;
                    if ms < min {
                        anyhow::bail!("{field} ({t}) must be at least {min} ms");
                    }
                    Ok(Some(ms))
                }
            }
        };
        if let Some(j) = raw.journal {
            c.journal = j;
        }
        if let Some(p) = raw.socket {
            c.socket = p;
        }
        if let Some(k) = raw.kmsg {
            c.kmsg = k;
        }
        if let Some(r) = raw.root {
            c.root = r;
        }
        if let Some(r) = raw.replay_history {
            agent.replay_history = r;
        }
        c.replay_window_ms = dur("replay_window", &raw.replay_window, 1000)?;
        if let Some(ms) = dur("step", &raw.step, 1)? {
            if ms > MAX_STEP_MS {
                anyhow::bail!(
                    "step ({}) must be at most {MAX_STEP_MS} ms: the agent acts once a step",
                    raw.step.as_deref().unwrap_or_default()
                );
            }
            agent.step_ms = ms;
        }
        if let Some(ms) = dur("topology_every", &raw.topology_every, 100)? {
            agent.topology_every_ms = ms;
        }
        if let Some(ms) = dur("full_topology_every", &raw.full_topology_every, 1000)? {
            agent.full_topology_every_ms = ms;
        }
        if agent.full_topology_every_ms < agent.topology_every_ms {
            anyhow::bail!(
                "full_topology_every ({} ms) must be at least topology_every ({} ms)",
                agent.full_topology_every_ms,
                agent.topology_every_ms
            );
        }
        if let Some(ms) = dur("stats_every", &raw.stats_every, 100)? {
            agent.stats_every_ms = ms;
        }
        if let Some(n) = raw.max_records_per_step {
            if n == 0 {
                anyhow::bail!("max_records_per_step (0) must be > 0");
            }
            agent.max_records_per_step = n;
        }
        if let Some(ms) = dur("retention_age", &raw.retention_age, 60_000)? {
            agent.retention_age_ms = ms;
        }
        if let Some(n) = raw.retention_rows {
            if n == 0 {
                anyhow::bail!("retention_rows (0) must be > 0");
            }
            agent.retention_rows = n;
        }
        if let Some(d) = &raw.devlink {
            if let Some(on) = d.enable {
                agent.devlink = on;
            }
            if let Some(ms) = dur("devlink.period", &d.period, 1000)? {
                agent.devlink_every_ms = ms;
            }
        }
        if let Some(f) = &raw.fleet {
            if let Some(url) = &f.url {
                let mut fleet = FleetConfig::new(url);
                if let Some(site) = &f.site {
                    fleet.site.clone_from(site);
                }
                fleet.host.clone_from(&f.host);
                if let Some(ms) = dur("fleet.heartbeat", &f.heartbeat, 1000)? {
                    fleet.heartbeat_ms = ms;
                }
                if let Some(n) = f.max_backlog {
                    if n == 0 {
                        anyhow::bail!("fleet.max_backlog (0) must be > 0");
                    }
                    fleet.max_backlog = n;
                }
                fleet.check()?;
                c.fleet = Some(fleet);
            } else if f.site.is_some() || f.host.is_some() {
                anyhow::bail!("fleet.url is missing: [fleet] names a site or host but no server to publish to");
            }
        }
        if let Some(n) = &raw.notify {
            if let Some(url) = &n.webhook {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    anyhow::bail!("notify.webhook ({url}) must be an http:// or https:// URL");
                }
                let timeout = dur("notify.timeout", &n.timeout, 100)?.unwrap_or(5_000);
                c.webhook = Some(vfguard_act::webhook::WebhookConfig {
                    url: url.clone(),
                    timeout: std::time::Duration::from_millis(timeout),
                    retries: n.retries.unwrap_or(3),
                    backoff: std::time::Duration::from_millis(500),
                    queue: 1024,
                });
            }
        }
        if let Some(p) = &raw.policy {
            c.agent.policy = Policy::validate(p).map_err(|e| anyhow::anyhow!("policy.{e}"))?;
        }
        if let Some(a) = raw.api {
            c.api_users = a.users.unwrap_or_default();
            if let Some(l) = &a.listen {
                c.api_listen = Some(l.parse().map_err(|e| {
                    anyhow::anyhow!("api.listen ({l}): {e}; write it as 127.0.0.1:9477")
                })?);
            }
            c.api_token_file = a.token_file;
            c.api_read_token_file = a.read_token_file;
            if c.api_read_token_file.is_some() && c.api_token_file.is_none() {
                anyhow::bail!("api.read_token_file needs api.token_file (and api.listen)");
            }
            c.api_socket_group = a.socket_group;
            let l = &mut c.api_limits;
            if let Some(n) = a.max_connections {
                l.max_connections = n;
            }
            if let Some(ms) = dur("api.header_read_timeout", &a.header_read_timeout, 1)? {
                l.header_read_timeout = std::time::Duration::from_millis(ms);
            }
            if let Some(ms) = dur("api.idle_timeout", &a.idle_timeout, 1)? {
                l.idle_timeout = std::time::Duration::from_millis(ms);
            }
            if let Some(n) = a.max_requests_per_connection {
                l.max_requests_per_connection = n;
            }
            if let Some(zero) = l.zeros().first() {
                anyhow::bail!("api.{zero} (0) must be > 0");
            }
            if c.api_listen.is_some() && c.api_token_file.is_none() {
                anyhow::bail!(
                    "api.listen needs api.token_file: the API is served on TCP only behind a bearer token"
                );
            }
        }
        if let Some(f) = raw.log_format {
            if !matches!(f.as_str(), "auto" | "text" | "json" | "journald") {
                anyhow::bail!("log_format ({f}): expected auto, text, json or journald");
            }
            c.log_format = f;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_file_is_the_defaults() {
        let text = include_str!("../../../deploy/vfguard.toml");
        let c = Config::parse(text).unwrap();
        let d = Config::default();
        // Every setting of the loop, the policy included, and nothing but AgentConfig's own.
        assert_eq!(c.agent, AgentConfig::default());
        assert_eq!(d.agent, AgentConfig::default());
        assert_eq!(c.replay_window_ms, d.replay_window_ms);
        assert_eq!(
            (&c.journal, &c.socket, &c.kmsg),
            (&d.journal, &d.socket, &d.kmsg)
        );
        assert_eq!(c.api_limits, d.api_limits);
    }

    /// Issue 13: the API's limits are configurable under [api]; a zero is refused by name.
    #[test]
    fn api_limits_come_from_the_api_table_and_a_zero_is_refused() {
        let c = Config::parse(
            "[api]\nmax_connections = 8\nheader_read_timeout = \"2s\"\nidle_timeout = \"30s\"\n\
             max_requests_per_connection = 10\n",
        )
        .unwrap();
        assert_eq!(
            c.api_limits,
            vfguard_api::Limits {
                max_connections: 8,
                header_read_timeout: std::time::Duration::from_secs(2),
                idle_timeout: std::time::Duration::from_secs(30),
                max_requests_per_connection: 10,
            }
        );
        assert_eq!(Config::default().api_limits, vfguard_api::Limits::default());
        let e = Config::parse("[api]\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.max_connections (0) must be > 0"), "{e}");
        let e = Config::parse("[api]\nidle_timeout = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.idle_timeout"), "{e}");
    }

    /// The unit file and the defaults agree: the journal in the unit's state directory, the
    /// socket in its runtime directory; and the unit keeps its hardening.
    #[test]
    fn the_systemd_unit_matches_the_defaults_and_stays_hardened() {
        let unit = include_str!("../../../deploy/vfguard.service");
        let value = |key: &str| -> Option<&str> {
            unit.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        };
        let d = Config::default();
        let state = value("StateDirectory").unwrap();
        assert!(d.journal.starts_with(format!("/var/lib/{state}")));
        let runtime = value("RuntimeDirectory").unwrap();
        assert!(d.socket.starts_with(format!("/run/{runtime}")));
        assert_eq!(value("Type"), Some("notify"));
        assert!(value("WatchdogSec").is_some());
        // Room for both API listeners full and the host's reads besides (issue 13).
        let nofile: usize = value("LimitNOFILE").unwrap().parse().unwrap();
        assert!(nofile >= 65536, "LimitNOFILE={nofile}");
        assert!(nofile >= 2 * d.api_limits.max_connections + 4096);
        assert_eq!(value("ProtectSystem"), Some("strict"));
        assert_eq!(value("NoNewPrivileges"), Some("yes"));
        let caps: Vec<&str> = value("CapabilityBoundingSet")
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            caps,
            [
                "CAP_NET_ADMIN",
                "CAP_SYSLOG",
                "CAP_SYS_ADMIN",
                "CAP_DAC_READ_SEARCH"
            ]
        );
        let families = value("RestrictAddressFamilies").unwrap();
        for f in ["AF_UNIX", "AF_NETLINK", "AF_INET"] {
            assert!(families.contains(f), "{f}: the API, rtnetlink, the webhook");
        }
        assert!(value("ExecStart")
            .unwrap()
            .contains("run --config /etc/vfguard/vfguard.toml"));
    }

    #[test]
    fn tcp_needs_a_token_file_and_users_must_exist() {
        let e = Config::parse("[api]\nlisten = \"127.0.0.1:9477\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.listen needs api.token_file"), "{e}");
        let e = Config::parse("[api]\nlisten = \"localhost\"\ntoken_file = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.listen (localhost)"), "{e}");
        let c =
            Config::parse("[api]\nusers = [\"root\", \"1234\", \"no-such-user-here\"]\n").unwrap();
        let e = c.api_uids().unwrap_err().to_string();
        assert!(e.contains("no user `no-such-user-here`"), "{e}");
        let c = Config::parse("[api]\nusers = [\"root\", \"1234\"]\n").unwrap();
        assert_eq!(c.api_uids().unwrap(), [0, 1234]);
        let e = Config::parse("[api]\nread_token_file = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("api.read_token_file needs api.token_file"),
            "{e}"
        );
        let e = Config::parse("log_format = \"xml\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected auto, text, json or journald"), "{e}");
    }

    /// Issue 13: a FIFO as token_file hung `config check` and every SIGHUP reload.
    #[test]
    fn a_token_file_that_is_not_a_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let e = read_token("api.token_file", &fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_token("api.token_file", dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 10_000]).unwrap();
        let e = read_token("api.token_file", &big).unwrap_err().to_string();
        assert!(e.contains("10000 bytes"), "{e}");
    }

    /// Issue 13: directories as journal or socket and an absurd step were accepted; errors after
    /// the TOML was read named no line.
    #[test]
    fn errors_name_their_line_and_absurd_values_are_refused() {
        let e = format!("{:#}", Config::parse("\n\nstep = \"1h\"\n").unwrap_err());
        assert!(
            e.starts_with("line 3: step (1h) must be at most 5000 ms"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            Config::parse("[api]\nusers = []\nmax_connections = 0\n").unwrap_err()
        );
        assert!(e.starts_with("line 3: api.max_connections (0)"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[policy]\nmode = \"enforce\"\n[[policy.rule]]\nname = \"a\"\nkinds = [\"mdd\"]\n[[policy.rule]]\nname = \"a\"\nkinds = [\"mdd\"]\n")
                .unwrap_err()
        );
        assert!(e.starts_with("line 7: policy.rule[1].name (a)"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let c = Config::parse(&format!("journal = {:?}\n", dir.path())).unwrap();
        let e = c.check_host().unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn fleet_is_off_by_default_and_its_keys_are_checked() {
        assert_eq!(Config::parse("").unwrap().fleet, None);
        let c = Config::parse(
            "[fleet]\nurl = \"nats://10.0.0.1:4222\"\nsite = \"fra1\"\nhost = \"hv-7\"\nheartbeat = \"30s\"\nmax_backlog = 500\n",
        )
        .unwrap();
        assert_eq!(
            c.fleet,
            Some(FleetConfig {
                url: "nats://10.0.0.1:4222".into(),
                site: "fra1".into(),
                host: Some("hv-7".into()),
                heartbeat_ms: 30_000,
                max_backlog: 500,
            })
        );
        for (text, says) in [
            (
                "[fleet]\nurl = \"http://x\"\n",
                "line 2: fleet.url (http://x) must be a nats://",
            ),
            (
                "[fleet]\nurl = \"nats://x\"\nsite = \"a.b\"\n",
                "cannot be part of a NATS subject",
            ),
            (
                "[fleet]\nurl = \"nats://x\"\nheartbeat = \"10ms\"\n",
                "line 3: fleet.heartbeat (10ms) must be at least 1000 ms",
            ),
            ("[fleet]\nsite = \"fra1\"\n", "fleet.url is missing"),
            (
                "[fleet]\nurl = \"nats://x\"\nmax_backlog = 0\n",
                "fleet.max_backlog (0) must be > 0",
            ),
        ] {
            let e = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn devlink_is_on_by_default_and_its_period_is_checked() {
        let c = Config::parse("").unwrap();
        assert!(c.agent.devlink);
        assert_eq!(c.agent.devlink_every_ms, 5000);
        let c = Config::parse("[devlink]\nenable = false\nperiod = \"10s\"\n").unwrap();
        assert_eq!((c.agent.devlink, c.agent.devlink_every_ms), (false, 10_000));
        let e = format!(
            "{:#}",
            Config::parse("[devlink]\nperiod = \"10ms\"\n").unwrap_err()
        );
        assert!(
            e.starts_with("line 2: devlink.period (10ms) must be at least 1000 ms"),
            "{e}"
        );
    }

    #[test]
    fn defaults_and_errors_that_name_the_field() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.agent.step_ms, 100);
        let c = Config::parse("step = \"50ms\"\n[policy]\nmode = \"dry_run\"\n").unwrap();
        assert_eq!(
            (c.agent.step_ms, c.agent.policy.mode),
            (50, vfguard_engine::Mode::DryRun)
        );
        let e = Config::parse("stats_every = \"5ms\"")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 1: stats_every (5ms) must be at least 100 ms");
        let e = Config::parse("[policy]\nquarantine_vlan = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 2: policy.quarantine_vlan (0) must be 1..=4094");
        let e = Config::parse("[notify]\nwebhook = \"ftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "line 2: notify.webhook (ftp://x) must be an http:// or https:// URL"
        );
        let c =
            Config::parse("[notify]\nwebhook = \"http://127.0.0.1:9/h\"\nretries = 1\n").unwrap();
        assert_eq!(c.webhook.unwrap().retries, 1);
        assert_eq!(c.replay_window_ms, None);
        let c = Config::parse("replay_window = \"1h\"").unwrap();
        assert_eq!(c.replay_window_ms, Some(3_600_000));
        let e = Config::parse("replay_window = \"10ms\"")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 1: replay_window (10ms) must be at least 1000 ms");
        let e = Config::parse("topology_every = \"10s\"\nfull_topology_every = \"5s\"")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "line 2: full_topology_every (5000 ms) must be at least topology_every (10000 ms)"
        );
        let e = format!("{:#}", Config::parse("jornal = \"x\"").unwrap_err());
        assert!(e.starts_with("line 1: unknown field `jornal`"), "{e}");
    }
}
