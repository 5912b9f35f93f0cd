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
}

impl Family {
    /// The PF driver's name.
    pub fn pf_driver(self) -> &'static str {
        match self {
            Family::I40e => "i40e",
            Family::Ice => "ice",
            Family::Ixgbe => "ixgbe",
            Family::Igb => "igb",
        }
    }

    /// The host VF driver's name.
    pub fn vf_driver(self) -> &'static str {
        match self {
            Family::I40e | Family::Ice => "iavf",
            Family::Ixgbe => "ixgbevf",
            Family::Igb => "igbvf",
        }
    }

    /// (vendor, PF device, VF device) IDs.
    pub fn ids(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::I40e => ("0x8086", "0x1572", "0x154c"),
            Family::Ice => ("0x8086", "0x159b", "0x1889"),
            Family::Ixgbe => ("0x8086", "0x10fb", "0x10ed"),
            Family::Igb => ("0x8086", "0x10c9", "0x10ca"),
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
    /// DMA to addresses the IOMMU does not map (the VF is the requester).
    DmaFault,
    /// Hardware: correctable AER errors on the PF (no VM caused them).
    AerStorm,
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
#[error("{file}:{line}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// What is wrong, naming the field.
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.matches('\n').count() + 1)
}

impl Scenario {
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
        let mut sc: Scenario =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().to_owned()))?;
        file.clone_into(&mut sc.file);
        sc.policy_line = sc
            .policy
            .as_ref()
            .map_or(0, |p| line_of(text, p.span().start));
        if sc.scenario.duration_ms == 0 {
            return Err(err(None, "scenario.duration_ms (0) must be > 0".into()));
        }
        let mut pfs = BTreeSet::new();
        for p in &sc.pf {
            if !pfs.insert(p.bdf) {
                return Err(err(None, format!("pf.bdf {} is listed twice", p.bdf)));
            }
            if p.numvfs > p.totalvfs {
                return Err(err(
                    None,
                    format!(
                        "pf {}: numvfs ({}) must be <= totalvfs ({})",
                        p.bdf, p.numvfs, p.totalvfs
                    ),
                ));
            }
            if p.numvfs > 248 {
                return Err(err(
                    None,
                    format!("pf {}: numvfs ({}) must be <= 248", p.bdf, p.numvfs),
                ));
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
                return Err(err(None, format!("owner name {name:?} is used twice")));
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
        for b in &sc.behaviour {
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
                    return Err(err(
                        None,
                        format!("behaviour {:?}: needs owner or function", b.kind),
                    ))
                }
                _ => {}
            }
            if b.every_ms == 0 {
                return Err(err(None, "behaviour.every_ms (0) must be > 0".into()));
            }
        }
        for e in &sc.event {
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
                    return Err(err(
                        None,
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
