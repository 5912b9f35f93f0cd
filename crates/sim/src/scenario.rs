//! Scenario files: a host (PFs, VMs, containers), what happens on it over time, and what the
//! agent must achieve. The same file is a demo, a test and a benchmark (docs/scenarios.md).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;
use vfguard_model::{Bdf, VfIndex};

/// A NIC driver family the simulator models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Intel X710/XL710 (i40e).
    I40e,
    /// Intel E810 (ice).
    Ice,
    /// Intel 82599/X550 (ixgbe).
    Ixgbe,
    /// Intel 82576/I350 (igb).
    Igb,
    /// NVIDIA ConnectX-5/6 (mlx5_core), eswitch in switchdev mode: a representor port per VF,
    /// whose devlink `vnic` reporter counts the VF's errors (docs/devlink.md).
    #[serde(alias = "mlx5_core")]
    Mlx5,
}

impl Family {
    /// The firmware version its driver reports (`ethtool -i`'s `firmware-version`) on a
    /// simulated PF that does not set one, in each driver's own format.
    pub fn default_firmware(self) -> &'static str {
        match self {
            Family::I40e => "9.20 0x8000d8c5 1.3353.0",
            Family::Ice => "4.40 0x8001c7d3 1.3534.0",
            Family::Ixgbe => "0x800007f8",
            Family::Igb => "3.25, 0x800005cc",
            Family::Mlx5 => "22.36.1010 (MT_0000000436)",
        }
    }

    /// The PF driver's name.
    pub fn pf_driver(self) -> &'static str {
        match self {
            Family::I40e => "i40e",
            Family::Ice => "ice",
            Family::Ixgbe => "ixgbe",
            Family::Igb => "igb",
            Family::Mlx5 => "mlx5_core",
        }
    }

    /// The host VF driver's name.
    pub fn vf_driver(self) -> &'static str {
        match self {
            Family::I40e | Family::Ice => "iavf",
            Family::Ixgbe => "ixgbevf",
            Family::Igb => "igbvf",
            Family::Mlx5 => "mlx5_core",
        }
    }

    /// (vendor, PF device, VF device) IDs.
    pub fn ids(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::I40e => ("0x8086", "0x1572", "0x154c"),
            Family::Ice => ("0x8086", "0x159b", "0x1889"),
            Family::Ixgbe => ("0x8086", "0x10fb", "0x10ed"),
            Family::Igb => ("0x8086", "0x10c9", "0x10ca"),
            Family::Mlx5 => ("0x15b3", "0x101d", "0x101e"),
        }
    }
}

/// A function named in a scenario: `PF_BDF/vfN` or a plain BDF (a PF or whole NIC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FnRef {
    /// The PF (or the whole function).
    pub pf: Bdf,
    /// The VF index, for a VF.
    pub vf: Option<VfIndex>,
}

impl FromStr for FnRef {
    type Err = String;
    fn from_str(s: &str) -> Result<FnRef, String> {
        let (pf, vf) = match s.split_once("/vf") {
            Some((pf, n)) => (
                pf,
                Some(
                    n.parse::<u16>()
                        .map_err(|_| format!("bad VF index in {s:?}"))?,
                ),
            ),
            None => (s, None),
        };
        Ok(FnRef {
            pf: pf.parse().map_err(|e| format!("{e}"))?,
            vf: vf.map(VfIndex),
        })
    }
}

impl fmt::Display for FnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vf {
            Some(v) => write!(f, "{}/vf{}", self.pf, v.0),
            None => write!(f, "{}", self.pf),
        }
    }
}

impl<'de> Deserialize<'de> for FnRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FnRef, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The `[scenario]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// A short name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// RNG seed: the same seed gives the same records, byte for byte.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Virtual run time.
    pub duration_ms: u64,
}

fn default_seed() -> u64 {
    1
}

/// A `[[pf]]`: an SR-IOV PF, or a NIC without VFs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PfSpec {
    /// Address.
    pub bdf: Bdf,
    /// Driver family.
    pub driver: Family,
    /// Netdev name.
    pub netdev: String,
    /// VFs to create (0: a NIC without VFs).
    #[serde(default)]
    pub numvfs: u16,
    /// `sriov_totalvfs`.
    #[serde(default = "default_totalvfs")]
    pub totalvfs: u16,
    /// Device-absolute number of VF 0 (what the global MDD lines print).
    #[serde(default)]
    pub vf_base: u32,
    /// The `mdd-auto-reset-vf` private flag (i40e, ice).
    #[serde(default)]
    pub mdd_auto_reset: bool,
    /// `msglvl tx_err rx_err` on: print the gated global MDD lines.
    #[serde(default)]
    pub msglvl_tx_err: bool,
    /// VF control knobs this driver does not implement (netlink answers EOPNOTSUPP), e.g.
    /// `["link_state"]` for igb.
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// The IOMMU unit translating the DMA of the PF and its VFs (`dmar1`): sysfs links each
    /// function to it, and with it set the DMAR fault lines are followed by CONFIG_DMAR_DEBUG's
    /// `Dump dmarN table entries` line naming it. A multi-segment host has one unit per segment
    /// at least.
    #[serde(default)]
    pub iommu_unit: Option<String>,
    /// The firmware version its driver reports (`ethtool -i`); the driver family's usual one
    /// when absent, none when empty.
    #[serde(default)]
    pub firmware: Option<String>,
}

fn default_totalvfs() -> u16 {
    64
}

/// A `[[vm]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    /// Domain name.
    pub name: String,
    /// VFs and whole functions assigned to it.
    #[serde(default)]
    pub functions: Vec<Spanned<FnRef>>,
    /// Described by libvirt (live XML) as well as by its QEMU command line.
    #[serde(default = "yes")]
    pub libvirt: bool,
    /// Its libvirt UUID (= OpenStack's instance UUID); default one derived from its place in
    /// the scenario. A VM that "migrates" between two simulated hosts keeps it.
    #[serde(default)]
    pub uuid: Option<String>,
    /// An OpenStack instance: Nova's metadata in its domain XML, `{name, project,
    /// project_uuid}`.
    #[serde(default)]
    pub nova: Option<NovaMeta>,
}

/// `[[vm]] nova`: what Nova writes into a domain's metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NovaMeta {
    /// The instance's name in OpenStack.
    pub name: String,
    /// Its project.
    pub project: String,
    /// The project's UUID.
    #[serde(default)]
    pub project_uuid: String,
}

fn yes() -> bool {
    true
}

/// A `[[container]]`: a pod or container holding VF netdevs in its namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Name.
    pub name: String,
    /// VFs whose netdevs live in its namespace.
    pub functions: Vec<Spanned<FnRef>>,
    /// A Kubernetes pod: its runtime's bundles are written (`config.json` with the pod's
    /// annotations, the pid file), so the host map names it `namespace/pod/container`.
    #[serde(default)]
    pub k8s: Option<K8sMeta>,
}

impl ContainerSpec {
    /// The owner name the host map gives it: `namespace/pod/container` (`namespace/pod`
    /// without a container) for a pod, else its name.
    pub fn owner_name(&self) -> String {
        match &self.k8s {
            Some(k) => match &k.container {
                Some(c) => format!("{}/{}/{c}", k.namespace, k.pod),
                None => format!("{}/{}", k.namespace, k.pod),
            },
            None => self.name.clone(),
        }
    }
}

/// `[[container]] k8s`: the pod a container is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sMeta {
    /// The pod's Kubernetes namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The one container in it besides its sandbox, when any.
    #[serde(default)]
    pub container: Option<String>,
    /// The container runtime whose files to write.
    #[serde(default)]
    pub runtime: K8sRuntime,
    /// The pod's UID; default one derived from its place in the scenario.
    #[serde(default)]
    pub uid: Option<String>,
}

/// `[[container]] k8s.runtime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum K8sRuntime {
    /// containerd's CRI plugin.
    #[default]
    Containerd,
    /// CRI-O.
    Crio,
}

/// What a tenant, or the hardware, does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BehaviourKind {
    /// Ordinary traffic: counters move, nothing is logged.
    Benign,
    /// A buggy VF driver: a rare burst of Tx MDD events.
    BuggyDriver,
    /// A malicious VF driver: a flood of malformed Tx descriptors (MDD).
    MddFlood,
    /// A flood of mailbox (virtchnl) requests.
    MailboxFlood,
    /// Tries to change its administratively set MAC / sends spoofed frames.
    MacSpoof,
    /// Tries to change its administratively set VLAN.
    VlanSpoof,
    /// Sends frames with a forged source MAC without asking the PF for it (no mailbox
    /// request, so no line names the VF): the anti-spoof filter drops them, and only a
    /// PF-wide counter sees them (ixgbe's SSVPC, printed every 2 s). 1 to 8 frames per event,
    /// fewer when the VF's `max_tx_rate` caps it. What `crates/localize` exists for.
    SpoofFrames,
    /// DMA to addresses the IOMMU does not map (the VF is the requester).
    DmaFault,
    /// Hardware: correctable AER errors on the PF (no VM caused them).
    AerStorm,
    /// A function sends malformed TLPs upstream (a DMA write whose length disagrees with its
    /// payload): the root port above its PF reports an uncorrectable (non-fatal) Malformed TLP
    /// with the header of the TLP, whose requester ID is the sender's.
    MalformedTlp,
    /// Hardware: the PF's transmit queue hangs and the adapter resets.
    PfTxHang,
}

/// A `[[behaviour]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourSpec {
    /// The VM or container behaving (each of its functions), or...
    #[serde(default)]
    pub owner: Option<Spanned<String>>,
    /// ...one function (for hardware behaviours: the PF).
    #[serde(default)]
    pub function: Option<Spanned<FnRef>>,
    /// What it does.
    pub kind: BehaviourKind,
    /// From when.
    #[serde(default)]
    pub start_ms: u64,
    /// Until when (default: the end).
    #[serde(default)]
    pub end_ms: Option<u64>,
    /// One event every this often.
    #[serde(default = "default_every")]
    pub every_ms: u64,
}

fn default_every() -> u64 {
    500
}

/// A `[[event]]`: something that happens to the host at one moment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When.
    pub at_ms: u64,
    /// A VM migrates away: its functions leave it (they become unowned).
    #[serde(default)]
    pub migrate_away: Option<Spanned<String>>,
    /// The next VF-control calls on a PF fail with this errno (`EBUSY`, `EOPNOTSUPP`).
    #[serde(default)]
    pub fail_vf_control: Option<FailSpec>,
    /// The next evictions of a VF from a container's namespace fail with this errno.
    #[serde(default)]
    pub fail_netns_control: Option<NetnsFailSpec>,
}

/// Injected eviction failures (`Detach` of a container's VF).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsFailSpec {
    /// The `[[container]]` whose evictions fail.
    pub container: Spanned<String>,
    /// One of [`NETNS_ERRNOS`].
    pub errno: Spanned<String>,
    /// How many calls fail.
    #[serde(default = "one")]
    pub count: u32,
}

/// The errnos an eviction can be made to fail with.
pub const NETNS_ERRNOS: [&str; 5] = ["EPERM", "EACCES", "EBUSY", "ENOENT", "EOPNOTSUPP"];

/// Injected actuator failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    /// The PF.
    pub pf: Bdf,
    /// `EBUSY` or `EOPNOTSUPP`.
    pub errno: String,
    /// How many calls fail.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// The `[expect]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Owners (VM or container names) whose functions must be found at fault (and, once the
    /// agent acts, isolated). Every other owner must be left untouched.
    #[serde(default)]
    pub culprits: Vec<Spanned<String>>,
    /// PFs with faults no tenant caused: they must stay unattributed to any tenant.
    #[serde(default)]
    pub hardware_faults: Vec<Bdf>,
    /// The agent must contain each culprit within this long of its first fault (when it acts),
    /// and again within this long of any fault after its containment ended (re-offence).
    #[serde(default)]
    pub contained_within_ms: Option<u64>,
    /// Culprits that cannot be contained (every rung fails or none applies): their incident
    /// must reach state `uncontained` and they must be notified again (at least twice).
    /// Each must also be listed in `culprits`.
    #[serde(default)]
    pub uncontained: Vec<Spanned<String>>,
    /// The culprits' faults name no VF (a PF-wide count): only the agent's localization
    /// (docs/localize.md) finds them. The host alone must show the PF-level incident and blame
    /// no tenant; the culprits are looked for only when the agent runs.
    #[serde(default)]
    pub localized: bool,
}

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `[scenario]`.
    pub scenario: Meta,
    /// `[[pf]]`.
    #[serde(default)]
    pub pf: Vec<PfSpec>,
    /// `[[vm]]`.
    #[serde(default)]
    pub vm: Vec<VmSpec>,
    /// `[[container]]`.
    #[serde(default)]
    pub container: Vec<ContainerSpec>,
    /// `[[behaviour]]`.
    #[serde(default)]
    pub behaviour: Vec<BehaviourSpec>,
    /// `[[event]]`.
    #[serde(default)]
    pub event: Vec<EventSpec>,
    /// `[expect]`.
    #[serde(default)]
    pub expect: ExpectSpec,
    /// `[policy]`: the agent's policy for this scenario, with the keys of the configuration's
    /// `[policy]` (docs/engine.md). Kept raw: the runner validates it with the engine's own
    /// parser (this crate does not depend on the engine); see [`Scenario::policy_toml`].
    #[serde(default)]
    pub policy: Option<Spanned<toml::Table>>,
    /// The file name given to [`Scenario::parse`], for errors found later (in `[policy]`).
    #[serde(skip)]
    pub file: String,
    /// The line of the `[policy]` table (0 when there is none).
    #[serde(skip)]
    policy_line: usize,
}

/// A scenario file that cannot be used: where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.located())]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// What is wrong, naming the field.
    pub message: String,
}

impl ScenarioError {
    /// `file:line: message`, or `file: message` for the file as a whole (it cannot be read).
    fn located(&self) -> String {
        match self.line {
            0 => format!("{}: {}", self.file, self.message),
            n => format!("{}:{n}: {}", self.file, self.message),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.matches('\n').count() + 1)
}

/// The longest virtual run a scenario may ask for: a day (a test, a demo or a benchmark; one
/// step per 100 ms of it).
pub const MAX_DURATION_MS: u64 = 86_400_000;

/// The 1-based line of `key` in the `index`-th table headed `header` (`[scenario]`, `[[pf]]`),
/// else of that header, else 1: every error names a line a person can go to.
fn line_of_key(text: &str, header: &str, index: usize, key: &str) -> usize {
    let mut seen = 0;
    let mut header_line = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            if header_line.is_some() {
                break;
            }
            if t == header {
                if seen == index {
                    header_line = Some(n + 1);
                }
                seen += 1;
            }
            continue;
        }
        if header_line.is_some() {
            let k = t.split('=').next().unwrap_or("").trim();
            if k == key {
                return n + 1;
            }
        }
    }
    header_line.unwrap_or(1)
}

/// serde's type names (`u64`, `struct Pf`) in words a scenario's author uses.
fn plain(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, words) in [
        ("expected u64", "expected a whole number >= 0"),
        ("expected u32", "expected a whole number >= 0"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected usize", "expected a whole number >= 0"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected an array"),
    ] {
        m = m.replace(rust, words);
    }
    if let Some(i) = m.find("expected struct ") {
        m.truncate(i);
        m.push_str("expected a table");
    }
    m
}

/// The scenario files (`*.toml`) in `dir`, sorted: a suite such as `testdata/scenarios`.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl Scenario {
    /// The scenario's name of the tenant the host map calls `owner_name`: a pod's container is
    /// reported as `namespace/pod/container` ([`ContainerSpec::owner_name`]) and referred to by
    /// its `name` in behaviours and expectations.
    pub fn tenant_name<'a>(&'a self, owner_name: &'a str) -> &'a str {
        self.container
            .iter()
            .find(|c| c.k8s.is_some() && c.owner_name() == owner_name)
            .map_or(owner_name, |c| c.name.as_str())
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates scenario text (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| ScenarioError {
            file: file.to_owned(),
            line: span.map_or(0, |s| line_of(text, s.start)),
            message,
        };
        let at = |header: &str, index: usize, key: &str, message: String| ScenarioError {
            file: file.to_owned(),
            line: line_of_key(text, header, index, key),
            message,
        };
        let mut sc: Scenario = toml::from_str(text).map_err(|e| {
            let mut x = err(e.span(), plain(e.message()));
            x.line = x.line.max(1);
            x
        })?;
        file.clone_into(&mut sc.file);
        sc.policy_line = sc
            .policy
            .as_ref()
            .map_or(0, |p| line_of(text, p.span().start));
        let d = sc.scenario.duration_ms;
        if d == 0 || d > MAX_DURATION_MS {
            return Err(at(
                "[scenario]",
                0,
                "duration_ms",
                format!("scenario.duration_ms ({d}) must be 1..={MAX_DURATION_MS} (a day)"),
            ));
        }
        let mut pfs = BTreeSet::new();
        // Every PCI address the host will have: a PF, or a VF where its PF puts it.
        let mut addresses: std::collections::BTreeMap<Bdf, String> = Default::default();
        for (i, p) in sc.pf.iter().enumerate() {
            if !pfs.insert(p.bdf) {
                return Err(at(
                    "[[pf]]",
                    i,
                    "bdf",
                    format!("pf.bdf {} is listed twice", p.bdf),
                ));
            }
            if p.numvfs > p.totalvfs {
                return Err(at(
                    "[[pf]]",
                    i,
                    "numvfs",
                    format!(
                        "pf {}: numvfs ({}) must be <= totalvfs ({})",
                        p.bdf, p.numvfs, p.totalvfs
                    ),
                ));
            }
            if p.numvfs > 248 {
                return Err(at(
                    "[[pf]]",
                    i,
                    "numvfs",
                    format!("pf {}: numvfs ({}) must be <= 248", p.bdf, p.numvfs),
                ));
            }
            let own =
                std::iter::once((p.bdf, format!("PF {}", p.bdf))).chain((0..p.numvfs).map(|v| {
                    (
                        crate::state::vf_bdf(p.bdf, v),
                        format!("VF {v} of PF {}", p.bdf),
                    )
                }));
            for (bdf, what) in own {
                if let Some(other) = addresses.insert(bdf, what.clone()) {
                    return Err(at(
                        "[[pf]]",
                        i,
                        "bdf",
                        format!(
                            "{what} would be at {bdf}, which is {other}'s address (a PF's VFs \
                             live at bus+1: give the PFs buses further apart)"
                        ),
                    ));
                }
            }
        }
        let valid = |f: &FnRef| {
            sc.pf
                .iter()
                .any(|p| p.bdf == f.pf && f.vf.is_none_or(|v| v.0 < p.numvfs))
        };
        let mut owners = BTreeSet::new();
        let mut held = BTreeSet::new();
        let functions = sc
            .vm
            .iter()
            .map(|v| (&v.name, &v.functions))
            .chain(sc.container.iter().map(|c| (&c.name, &c.functions)));
        for (name, fns) in functions {
            if !owners.insert(name.clone()) {
                let line = text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| {
                        l.trim().starts_with("name") && l.contains(&format!("\"{name}\""))
                    })
                    .nth(1)
                    .map_or(1, |(n, _)| n + 1);
                return Err(ScenarioError {
                    file: file.to_owned(),
                    line,
                    message: format!("owner name {name:?} is used twice"),
                });
            }
            for f in fns {
                if !valid(f.get_ref()) {
                    return Err(err(
                        Some(f.span()),
                        format!(
                            "functions: {} is not a PF or VF of this scenario",
                            f.get_ref()
                        ),
                    ));
                }
                if !held.insert(*f.get_ref()) {
                    return Err(err(
                        Some(f.span()),
                        format!("functions: {} is given to two owners", f.get_ref()),
                    ));
                }
            }
        }
        for (bi, b) in sc.behaviour.iter().enumerate() {
            match (&b.owner, &b.function) {
                (Some(o), None) if !owners.contains(o.get_ref()) => {
                    return Err(err(
                        Some(o.span()),
                        format!(
                            "behaviour.owner: no VM or container named {:?}",
                            o.get_ref()
                        ),
                    ));
                }
                (None, Some(f)) if !valid(f.get_ref()) => {
                    return Err(err(
                        Some(f.span()),
                        format!(
                            "behaviour.function: {} is not a PF or VF of this scenario",
                            f.get_ref()
                        ),
                    ));
                }
                (Some(_), Some(f)) => {
                    return Err(err(
                        Some(f.span()),
                        "behaviour: give owner or function, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(at(
                        "[[behaviour]]",
                        bi,
                        "kind",
                        format!("behaviour {:?}: needs owner or function", b.kind),
                    ))
                }
                _ => {}
            }
            if b.every_ms == 0 {
                return Err(at(
                    "[[behaviour]]",
                    bi,
                    "every_ms",
                    "behaviour.every_ms (0) must be > 0".into(),
                ));
            }
        }
        for (ei, e) in sc.event.iter().enumerate() {
            if let Some(m) = &e.migrate_away {
                if !sc.vm.iter().any(|v| &v.name == m.get_ref()) {
                    return Err(err(
                        Some(m.span()),
                        format!("event.migrate_away: no VM named {:?}", m.get_ref()),
                    ));
                }
            }
            if let Some(f) = &e.fail_vf_control {
                if !matches!(f.errno.as_str(), "EBUSY" | "EOPNOTSUPP") {
                    return Err(at(
                        "[[event]]",
                        ei,
                        "fail_vf_control",
                        format!(
                            "event.fail_vf_control.errno {:?} must be EBUSY or EOPNOTSUPP",
                            f.errno
                        ),
                    ));
                }
            }
            if let Some(f) = &e.fail_netns_control {
                if !sc
                    .container
                    .iter()
                    .any(|c| &c.name == f.container.get_ref())
                {
                    return Err(err(
                        Some(f.container.span()),
                        format!(
                            "event.fail_netns_control.container: no container named {:?}",
                            f.container.get_ref()
                        ),
                    ));
                }
                if !NETNS_ERRNOS.contains(&f.errno.get_ref().as_str()) {
                    return Err(err(
                        Some(f.errno.span()),
                        format!(
                            "event.fail_netns_control.errno {:?} must be one of {}",
                            f.errno.get_ref(),
                            NETNS_ERRNOS.join(", ")
                        ),
                    ));
                }
            }
        }
        for c in &sc.expect.culprits {
            if !owners.contains(c.get_ref()) {
                return Err(err(
                    Some(c.span()),
                    format!(
                        "expect.culprits: no VM or container named {:?}",
                        c.get_ref()
                    ),
                ));
            }
        }
        for u in &sc.expect.uncontained {
            if !sc
                .expect
                .culprits
                .iter()
                .any(|c| c.get_ref() == u.get_ref())
            {
                return Err(err(
                    Some(u.span()),
                    format!(
                        "expect.uncontained: {:?} must also be listed in expect.culprits",
                        u.get_ref()
                    ),
                ));
            }
        }
        Ok(sc)
    }

    /// The `[policy]` table as TOML text, for the engine's `Policy::from_toml`; `None` when the
    /// scenario has none (the runner then uses the defaults, or `--policy FILE`).
    pub fn policy_toml(&self) -> Result<Option<String>, ScenarioError> {
        let Some(p) = &self.policy else {
            return Ok(None);
        };
        toml::to_string(p.get_ref())
            .map(Some)
            .map_err(|e| self.policy_error(format!("policy: {e}")))
    }

    /// An error found in the `[policy]` table (by the runner's validation): `message` (which
    /// names the field) located at the table, in this scenario's file.
    pub fn policy_error(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            line: self.policy_line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[scenario]
name = "t"
duration_ms = 1000

[[pf]]
bdf = "0000:3b:00.0"
driver = "i40e"
netdev = "enp59s0f0"
numvfs = 2

[[vm]]
name = "a"
functions = ["0000:3b:00.0/vf0"]

[[behaviour]]
owner = "a"
kind = "mdd_flood"
"#;

    #[test]
    fn a_good_file_parses() {
        let s = Scenario::parse("t.toml", OK).unwrap();
        assert_eq!(
            s.vm[0].functions[0].get_ref().to_string(),
            "0000:3b:00.0/vf0"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let bad = OK.replace("owner = \"a\"", "owner = \"nobody\"");
        let e = Scenario::parse("t.toml", &bad).unwrap_err();
        assert_eq!(e.line, 17);
        assert!(e.message.contains("behaviour.owner"), "{e}");
        let bad = OK.replace("0000:3b:00.0/vf0", "0000:3b:00.0/vf7");
        let e = Scenario::parse("t.toml", &bad).unwrap_err();
        assert_eq!(
            (e.line, e.to_string().starts_with("t.toml:14:")),
            (14, true),
            "{e}"
        );
        let bad = OK.replace("kind = \"mdd_flood\"", "kind = \"explode\"");
        let e = Scenario::parse("t.toml", &bad).unwrap_err();
        assert_eq!(e.line, 18, "{e}");
        assert!(e.message.contains("unknown variant"), "{e}");
        let bad = OK.replace("numvfs = 2", "numvfs = 2\ncolour = \"red\"");
        assert!(Scenario::parse("t.toml", &bad)
            .unwrap_err()
            .message
            .contains("colour"));
    }

    /// Issue 13: errors at line 0, serde's type names in messages, PF/VF address collisions and
    /// a duration of 2^64-1 ms (a run that never ends) were accepted or unhelpful.
    #[test]
    fn every_error_names_a_line_in_words_and_absurd_hosts_are_refused() {
        let cases = [
            (
                OK.replace("duration_ms = 1000", "duration_ms = 0"),
                4,
                "duration_ms",
            ),
            (
                OK.replace("duration_ms = 1000", "duration_ms = 18446744073709551615"),
                4,
                "a day",
            ),
            (
                OK.replace("duration_ms = 1000", "duration_ms = \"x\""),
                4,
                "whole number",
            ),
            (
                OK.replace("numvfs = 2", "numvfs = 300\ntotalvfs = 300"),
                10,
                "<= 248",
            ),
            (
                OK.replace("kind = \"mdd_flood\"", "kind = \"mdd_flood\"\nevery_ms = 0"),
                19,
                "every_ms",
            ),
            (
                format!("{OK}\n[[vm]]\nname = \"a\"\nfunctions = []\n"),
                21,
                "used twice",
            ),
            (
                // VF 0 of 0000:3b:00.0 lives at 0000:3c:00.0: a PF there collides with it.
                format!("{OK}\n[[pf]]\nbdf = \"0000:3c:00.0\"\ndriver = \"igb\"\nnetdev = \"x\"\n"),
                21,
                "address",
            ),
        ];
        for (text, line, words) in cases {
            let e = Scenario::parse("t.toml", &text).unwrap_err();
            assert!(e.line >= 1, "{e}");
            assert_eq!(e.line, line, "{e}");
            assert!(e.message.contains(words), "{e}");
            for rust in ["u64", "u32", "u16", "struct "] {
                assert!(!e.message.contains(rust), "{e}");
            }
        }
    }

    #[test]
    fn an_uncontained_owner_must_be_a_culprit() {
        let text = format!("{OK}\n[expect]\nculprits = [\"a\"]\nuncontained = [\"a\"]\n");
        let s = Scenario::parse("t.toml", &text).unwrap();
        assert_eq!(s.expect.uncontained[0].get_ref(), "a");
        let text = format!("{OK}\n[expect]\nuncontained = [\"a\"]\n");
        let e = Scenario::parse("t.toml", &text).unwrap_err();
        assert_eq!(e.line, 21, "{e}");
        assert!(e.message.contains("expect.uncontained"), "{e}");
    }

    #[test]
    fn the_policy_table_is_kept_raw_and_its_errors_point_at_it() {
        let s = Scenario::parse("t.toml", OK).unwrap();
        assert_eq!(s.policy_toml().unwrap(), None);
        let text = format!(
            "{OK}\n[policy]\ncool_down = \"5s\"\n\n[policy.guard]\nmax_actions_per_pf = 2\n"
        );
        let s = Scenario::parse("t.toml", &text).unwrap();
        let p: toml::Table = s.policy_toml().unwrap().unwrap().parse().unwrap();
        assert_eq!(p["cool_down"].as_str(), Some("5s"));
        assert_eq!(p["guard"]["max_actions_per_pf"].as_integer(), Some(2));
        let e = s.policy_error("policy.cool_down (5x) must be a duration");
        assert_eq!(
            e.to_string(),
            "t.toml:20: policy.cool_down (5x) must be a duration"
        );
    }
}
