//! The command line, in the style of `ip` and `devlink`: subcommands, `--json` everywhere.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use vfguard_api::reply::EvidencePage;

/// Detect, attribute and contain faults of SR-IOV VFs and passed-through NICs.
///
/// vfguard reads the kernel's own signals (the /dev/kmsg stream, PCIe AER, IOMMU faults, the PF
/// drivers' Malicious Driver Detection and mailbox messages), tells which PCI function (PF/VF)
/// and which tenant a fault belongs to, and acts on it by policy.
#[derive(Debug, Parser)]
#[command(
    name = "vfguard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch vfguard protect a simulated host: ten tenants, one malicious, one buggy, a VM
    /// holding a whole NIC, and a PCIe hiccup no tenant caused.
    ///
    /// The built-in scenario runs on the simulated host in accelerated virtual time: a live
    /// timeline of incidents, attributions, actions and containment, then a report per incident
    /// (the culprit, how it was attributed, the actions and their outcomes, the time from first
    /// fault to containment) and the tenants left untouched.
    ///
    /// Examples:
    ///   vfguard demo
    ///   vfguard demo --speed 0 --journal /tmp/demo.db && vfguard explain --journal /tmp/demo.db 1
    ///   vfguard demo --json | jq .incidents
    #[command(verbatim_doc_comment)]
    Demo(DemoArgs),
    /// Find NIC, PCIe and IOMMU faults in a saved kernel log (offline analysis).
    ///
    /// Reads dmesg output (plain, -T, -H, -x), syslog/kern.log, journalctl (short, short-iso),
    /// raw /dev/kmsg records, or lines with no prefix at all; the form is detected per line.
    /// Prints a table of events, a summary per PF/VF, and what to look at first.
    ///
    /// Exit status: 0 no fault found, 1 faults found, 2 error (as grep).
    ///
    /// Examples:
    ///   vfguard scan /var/log/kern.log
    ///   dmesg | vfguard scan
    ///   journalctl -k -o short-iso | vfguard scan --json | jq 'select(.kind=="mdd_tx")'
    #[command(verbatim_doc_comment)]
    Scan(ScanArgs),
    /// List the driver message catalog: every message form vfguard recognises.
    Catalog(CatalogArgs),
    /// Show the host map: PFs and whole NICs, their VFs, and who owns each function.
    ///
    /// For each PF: driver, netdev, numvfs/totalvfs and owner; for each VF: index, BDF, driver,
    /// netdev, owner (a VM through vfio/QEMU/libvirt, a network namespace, the host, or none) and
    /// its state as the PF reports it over rtnetlink (mac, vlan, spoofchk, trust, link state,
    /// rate). Owners carry their evidence in --json.
    ///
    /// Examples:
    ///   vfguard inventory
    ///   vfguard inventory --json | jq '.pfs[].vfs[] | select(.owner.kind == "vm")'
    ///   vfguard inventory --root /tmp/fixture-host
    #[command(verbatim_doc_comment)]
    Inventory(InventoryArgs),
    /// Run a scenario on the simulated host and report what happened.
    ///
    /// A scenario (TOML, see docs/scenarios.md) describes a host (PFs, VMs, containers), what
    /// tenants and hardware do over time, and the expected outcome. The simulated host prints
    /// the exact kernel lines real drivers print; they go through vfguard's parser and topology
    /// reader. Exit status: 0 expectations held, 1 an expectation failed, 2 a bad scenario file.
    ///
    /// Examples:
    ///   vfguard simulate testdata/scenarios/mdd-flood-i40e.toml
    ///   vfguard simulate --json testdata/scenarios/two-culprits.toml | jq .incidents
    ///   vfguard simulate --log /tmp/kmsg.txt SCENARIO && vfguard scan --format kmsg /tmp/kmsg.txt
    #[command(verbatim_doc_comment)]
    Simulate(SimulateArgs),
    /// Run the agent: read the kernel log, attribute faults, act by policy, journal everything.
    ///
    /// On a host: reads /dev/kmsg (resuming after the journal's cursor), samples VF and AER
    /// counters, watches the topology, and acts through rtnetlink, sysfs and libvirt. With --sim
    /// the same loop runs on the simulated host (`demo` for the built-in scenario). SIGTERM stops
    /// it cleanly, SIGHUP reloads --config (an invalid file is refused and the running
    /// configuration stays); systemd readiness and watchdog through NOTIFY_SOCKET.
    ///
    /// Examples:
    ///   vfguard run --config /etc/vfguard/vfguard.toml
    ///   vfguard run --sim demo --journal /tmp/demo.db
    ///   vfguard run --sim testdata/scenarios/two-culprits.toml --speed 0 --journal /tmp/t.db
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Show an incident's evidence chain from the journal: what the kernel said, how each line
    /// was attributed and with what confidence, each decision and the rule that made it, each
    /// action and its outcome. Asks the daemon; --journal FILE reads a journal file instead.
    ///
    /// Shows the first and last 50 entries of each list and counts the rest (an incident in a
    /// storm holds millions); --first/--last choose how many, --all (with --journal) streams
    /// every one.
    ///
    /// Examples:
    ///   vfguard explain 4
    ///   vfguard explain 4 --first 10 --last 500
    ///   vfguard explain --journal /var/lib/vfguard/journal.db 4 --all --json
    #[command(verbatim_doc_comment)]
    Explain(ExplainArgs),
    /// Ask the running daemon how it is: mode, records read and lost, the host map's version,
    /// incidents by state. Says so clearly when no daemon answers on the socket.
    Status(StatusArgs),
    /// List the incidents in the journal: id, function, PF, state, owner, when opened. Filter
    /// with --open, --owner, --pf; `vfguard explain ID` then shows one in full. Asks the
    /// daemon; --journal FILE reads a journal file instead.
    Incidents(IncidentsArgs),
    /// Show the fleet as its agents publish it to NATS JetStream: every host heard from, the
    /// open incidents of all of them, and what no single host can see: one VM faulting on
    /// several hosts (by its libvirt UUID, across migrations), and one (driver, firmware, fault
    /// class) on many hosts, a driver or firmware bug that no tenant is blamed for.
    ///
    /// Agents publish with `vfguard run --fleet nats://HOST:4222 --site SITE --fleet-host NAME`
    /// (docs/fleet.md).
    ///
    /// Examples:
    ///   vfguard fleet --url nats://127.0.0.1:4222
    ///   vfguard fleet --json | jq '.platform_suspects'
    #[command(verbatim_doc_comment)]
    Fleet(FleetArgs),
    /// Isolate a function now, by hand: a VF's link is disabled through its PF (a function a VM
    /// holds whole is detached from it). Journalled with the reason and who asked; `vfguard
    /// release` undoes it.
    ///
    /// Examples:
    ///   vfguard quarantine 0000:3c:00.4 --reason "tenant reported a compromised guest"
    #[command(verbatim_doc_comment)]
    Quarantine(QuarantineArgs),
    /// Restore what was done to a function (its VF state as it was before) and close its
    /// incident. Journalled with who asked.
    Release(ReleaseArgs),
    /// Switch the daemon's policy mode until it restarts or reloads its configuration:
    /// observe, dry-run or enforce. Journalled with who asked.
    Mode(ModeArgs),
    /// Check a configuration file without running anything: every key, the policy's rules and
    /// ladder, and what depends on this host; exit 0 when the daemon would start with it. (A
    /// SIGHUP reload applies the file's policy; the other keys take effect on a restart.)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script, e.g. `vfguard completions bash >
    /// /usr/share/bash-completion/completions/vfguard`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line: `vfguard man | man -l -`.
    Man,
    /// Developer tools: capture kernel data for test fixtures.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

/// `vfguard config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE as `vfguard run --config FILE` would; errors name the line or the key.
    Check {
        /// The configuration file (TOML; deploy/vfguard.toml lists every key).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// One JSON object: `{"file", "ok", "error"?, "mode"?, "rules"?, "journal"?}`.
        #[arg(short = 'j', long)]
        json: bool,
    },
}

/// `vfguard debug` subcommands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print, as hex, the RTM_NEWLINK message the kernel returns for a link with its VF table
    /// (for testdata/netlink), then the VF table vfguard decodes from it.
    NetlinkCapture {
        /// The PF's netdev.
        ifname: String,
    },
}

/// `vfguard run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file (TOML; see deploy/vfguard.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The journal (overrides the configuration).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Read sysfs, /proc and /run under DIR (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Run on the simulated host: a scenario file, or `demo`.
    #[arg(long, value_name = "SCENARIO")]
    pub sim: Option<String>,
    /// With --sim: virtual seconds per wall-clock second (1: real time; 0: as fast as possible).
    #[arg(long, default_value_t = 1.0, requires = "sim")]
    pub speed: f64,
    /// With --sim: keep running (and serving the API) after the scenario's end, until stopped;
    /// without it the daemon exits at the end.
    #[arg(long, requires = "sim")]
    pub linger: bool,
    /// Serve the API on this Unix socket (overrides the configuration; default
    /// /run/vfguard/vfguard.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Log lines as `text`, `json` (one object per line) or `journald`; `auto` (the default):
    /// journald when systemd connected stderr to the journal, else text. Overrides the
    /// configuration's `log_format`; RUST_LOG filters (default `info`).
    #[arg(long, value_name = "FORMAT", value_parser = ["auto", "text", "json", "journald"])]
    pub log_format: Option<String>,
    /// Publish incidents, actions, outcomes and heartbeats to this NATS JetStream server
    /// (docs/fleet.md; overrides the configuration's fleet.url); the journal is the outbox, so
    /// nothing is lost while it is down.
    #[arg(long, value_name = "URL")]
    pub fleet: Option<String>,
    /// This host's site in the fleet (a NATS subject token; overrides fleet.site; default
    /// `default`).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// This host's name in the fleet (overrides fleet.host; default: the kernel's hostname).
    #[arg(long = "fleet-host", value_name = "NAME")]
    pub fleet_host: Option<String>,
}

/// `vfguard fleet` options.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// The NATS server the agents publish to.
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// One JSON object: hosts, open, vms_on_several_hosts, platform_suspects (docs/fleet.md).
    #[arg(short = 'j', long)]
    pub json: bool,
    /// The fewest hosts on which one (driver, firmware, fault class) is a platform suspect.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub min_hosts: u32,
    /// A host whose last heartbeat is older than this many seconds is shown as silent.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub silent_after: u64,
}

/// `vfguard status` options.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The daemon's API socket.
    #[arg(long, value_name = "PATH", default_value = "/run/vfguard/vfguard.sock")]
    pub socket: PathBuf,
    /// The daemon's answer as JSON (`GET /v1/status`).
    #[arg(short = 'j', long)]
    pub json: bool,
}

/// `vfguard demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Print the final report as one JSON object (the shape of `vfguard simulate --json`).
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Virtual seconds per wall-clock second (0: as fast as possible).
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// Journal the run into FILE, for `vfguard explain --journal FILE INCIDENT`.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

/// `vfguard explain` options.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The incident's number.
    #[arg(value_name = "INCIDENT")]
    pub incident: u64,
    /// Ask the daemon on this socket.
    #[arg(long, value_name = "PATH", default_value = "/run/vfguard/vfguard.sock")]
    pub socket: PathBuf,
    /// Read this journal file instead of asking the daemon (offline; e.g. a copy).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// One JSON object (the shape of `GET /v1/incidents/{id}`).
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Show the first N entries of each list (observations, decisions, actions); what lies
    /// between the first and the last is counted, not shown.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(EvidencePage::MAX)))]
    pub first: u32,
    /// Show the last N entries of each list.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(EvidencePage::MAX)))]
    pub last: u32,
    /// Show every entry, streamed from the journal file (needs --journal): for an incident of
    /// millions of observations, in memory that does not grow with it. With --json, one object
    /// whose lists hold one entry per line.
    #[arg(long, conflicts_with_all = ["first", "last"])]
    pub all: bool,
}

/// `vfguard incidents` options.
#[derive(Debug, clap::Args)]
pub struct IncidentsArgs {
    /// Ask the daemon on this socket.
    #[arg(long, value_name = "PATH", default_value = "/run/vfguard/vfguard.sock")]
    pub socket: PathBuf,
    /// Read this journal file instead of asking the daemon (offline; e.g. a copy).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Only incidents not yet closed.
    #[arg(long)]
    pub open: bool,
    /// Only incidents of this owner: a label (`vm:web-7`), a name (`web-7`) or a UUID.
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Only incidents on this PF (e.g. 0000:3b:00.0).
    #[arg(long, value_name = "BDF")]
    pub pf: Option<vfguard_model::Bdf>,
    /// One JSON array (the shape of `GET /v1/incidents`).
    #[arg(short = 'j', long)]
    pub json: bool,
}

/// `vfguard quarantine` options.
#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    /// The function to isolate (a VF, or a function a VM holds whole), e.g. 0000:3c:00.4.
    #[arg(value_name = "BDF")]
    pub function: vfguard_model::Bdf,
    /// Why; required, journalled with who asked.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The daemon's API socket.
    #[arg(long, value_name = "PATH", default_value = "/run/vfguard/vfguard.sock")]
    pub socket: PathBuf,
    /// The daemon's answer as JSON (its decisions and the actions' outcomes).
    #[arg(short = 'j', long)]
    pub json: bool,
}

/// `vfguard release` options.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The function whose incident to close (its VF state is restored as it was).
    #[arg(value_name = "BDF")]
    pub function: vfguard_model::Bdf,
    /// The daemon's API socket.
    #[arg(long, value_name = "PATH", default_value = "/run/vfguard/vfguard.sock")]
    pub socket: PathBuf,
    /// The daemon's answer as JSON.
    #[arg(short = 'j', long)]
    pub json: bool,
}

/// `vfguard mode` options.
#[derive(Debug, clap::Args)]
pub struct ModeArgs {
    /// observe (record and notify only), dry-run (decide and journal, do nothing) or enforce.
    #[arg(value_name = "MODE", value_parser = ["observe", "dry-run", "dry_run", "enforce"])]
    pub mode: String,
    /// The daemon's API socket.
    #[arg(long, value_name = "PATH", default_value = "/run/vfguard/vfguard.sock")]
    pub socket: PathBuf,
    /// The daemon's answer as JSON.
    #[arg(short = 'j', long)]
    pub json: bool,
}

/// `vfguard simulate` options.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Print the final report as one JSON object.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Also write every kernel record the host printed to FILE (raw /dev/kmsg format).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Keep the simulated host's tree (sysfs, /proc, /run) in DIR, for `inventory --root DIR`.
    #[arg(long, value_name = "DIR")]
    pub keep_root: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The agent's policy (TOML, see docs/engine.md), instead of the scenario's `[policy]` (else
    /// the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Play the host alone: report what the log shows, with no agent acting.
    #[arg(long)]
    pub host_only: bool,
    /// Print the agent's timeline (incidents, actions, containment) as it happens.
    #[arg(long, conflicts_with = "json")]
    pub timeline: bool,
    /// Journal the agent's run into FILE (SQLite; read it with `vfguard explain --journal FILE`).
    #[arg(long, value_name = "FILE", conflicts_with = "host_only")]
    pub journal: Option<PathBuf>,
}

/// `vfguard inventory` options.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Read sysfs, /proc and /run under DIR instead of / (a fixture tree, a simulated host).
    /// Network namespaces are then read from files and VF state is not queried.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// One JSON document: {"pfs":[...], "version", "warnings"}.
    #[arg(short = 'j', long)]
    pub json: bool,
}

/// `vfguard scan` options.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Log files to read; `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// One JSON object per event (JSON Lines) instead of the table and summary.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// The log form; `auto` detects it per line.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Resolve events against this host's map (sysfs, /proc, /run under DIR; `/` for this host):
    /// a line naming PF + VF gets the VF's BDF in `function`, and every event its `owner`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect per line.
    Auto,
    /// Raw /dev/kmsg records (`prio,seq,ts,flags;text` + ` KEY=value` lines).
    Kmsg,
    /// dmesg output (`[  12.345]`, `-T`, `-H`, `-x`).
    Dmesg,
    /// syslog / kern.log (`Mon DD HH:MM:SS host kernel: ...`).
    Syslog,
    /// journalctl (`short`, `short-iso`, `short-precise`).
    Journal,
}

/// `vfguard catalog` options.
#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// One JSON object per entry.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Print only the prefilter anchors, one per line (the literals a line must contain).
    #[arg(long, conflicts_with = "json")]
    pub anchors: bool,
}
