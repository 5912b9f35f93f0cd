//! Policy: rules (which faults count, over what window, how many, how sure), the escalation
//! ladder, hold-down and cool-down, the blast-radius guard, and the mode.
//!
//! Two types, as ripgrep splits its arguments: [`RawPolicy`] is what TOML says (every field
//! optional, defaults built in), [`Policy`] is validated; every error names the field and the
//! value (`rule[2].window (0s) must be > 0`).

use serde::Deserialize;
pub use vfguard_model::Mode;
use vfguard_model::{FaultKind, Millis, RuleRef, VfChange, VfLinkState};

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// Tell someone.
    Notify,
    /// Anti-spoof checking on.
    SpoofchkOn,
    /// Trusted mode off.
    TrustOff,
    /// Cap the VF's transmit rate (`rate_limit_mbps`).
    RateLimit,
    /// Move the VF into the quarantine VLAN (`quarantine_vlan`).
    QuarantineVlan,
    /// Function-level reset.
    VfReset,
    /// Force the VF's link down.
    VfDisable,
    /// Detach the function from its VM.
    Detach,
    /// Pause the VM.
    Pause,
}

impl Rung {
    /// The rung's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Rung::Notify => "notify",
            Rung::SpoofchkOn => "spoofchk_on",
            Rung::TrustOff => "trust_off",
            Rung::RateLimit => "rate_limit",
            Rung::QuarantineVlan => "quarantine_vlan",
            Rung::VfReset => "vf_reset",
            Rung::VfDisable => "vf_disable",
            Rung::Detach => "detach",
            Rung::Pause => "pause",
        }
    }

    /// The VF knob this rung turns, if it is one.
    pub fn vf_change(self, p: &Policy) -> Option<VfChange> {
        match self {
            Rung::SpoofchkOn => Some(VfChange::SpoofChk(true)),
            Rung::TrustOff => Some(VfChange::Trust(false)),
            Rung::RateLimit => Some(VfChange::Rate {
                min_mbps: 0,
                max_mbps: p.rate_limit_mbps,
            }),
            Rung::QuarantineVlan => Some(VfChange::Vlan {
                vlan: p.quarantine_vlan,
                qos: 0,
            }),
            Rung::VfDisable => Some(VfChange::LinkState(VfLinkState::Disable)),
            Rung::Notify | Rung::VfReset | Rung::Detach | Rung::Pause => None,
        }
    }
}

/// A rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Name (for journals and explanations).
    pub name: Option<String>,
    /// The fault kinds it counts.
    pub kinds: Option<Vec<String>>,
    /// Sliding window (`60s`, `500ms`, `5m`).
    pub window: Option<String>,
    /// Faults within the window that trigger it.
    pub threshold: Option<u32>,
    /// Attributions below this confidence do not count.
    pub min_confidence: Option<f64>,
}

/// The guard as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// At most this many actions per PF per `window`.
    pub max_actions_per_pf: Option<u32>,
    /// At most this many actions on the host per `window`.
    pub max_actions_per_host: Option<u32>,
    /// The guard's window.
    pub window: Option<String>,
    /// Allow automatic PF-wide actions (they hit every tenant of the PF).
    pub allow_pf_reset: Option<bool>,
    /// Owners (`vm:NAME`, `netns:NAME`, `*` wildcards at the end) that are only ever notified.
    pub exclude: Option<Vec<String>>,
}

/// The localization of faults that name no VF, as written (`[localize]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalize {
    /// Allow active group testing (gating suspects). Passive narrowing is always on.
    pub active: Option<bool>,
    /// Faults (records) a PF must show before a search starts.
    pub min_faults: Option<u32>,
    /// How long a probe's gate stays on.
    pub window: Option<String>,
    /// When a gate is reverted whatever happens.
    pub ttl: Option<String>,
    /// How late the driver reports what happened (ixgbe reads its spoof counter every 2 s).
    pub lag: Option<String>,
    /// After a search ends, how long before another on the same PF.
    pub rest: Option<String>,
    /// The throttle gate's rate, Mbit/s.
    pub throttle_mbps: Option<u32>,
    /// The largest share of a PF's tenants gated at once.
    pub max_share: Option<f64>,
    /// Windows the rate before a probe is averaged over.
    pub baseline_windows: Option<u32>,
    /// Standard deviations a fall must reach to count.
    pub z: Option<f64>,
    /// The same, to name a culprit.
    pub z_confirm: Option<f64>,
    /// Rounds before giving up.
    pub max_rounds: Option<u32>,
}

/// The localization of faults that name no VF (docs/localize.md), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Localize {
    /// Active group testing allowed (in `enforce` mode; `dry_run` journals the first probe it
    /// would make; `observe` never probes).
    pub active: bool,
    /// Faults a PF must show (within the baseline) before a search starts.
    pub min_faults: u32,
    /// How late the driver reports a fault (a counter polled every `lag`): a probe's faults
    /// are counted from `lag` after its gate went on to `lag` after it came off.
    pub lag: Millis,
    /// After a search ends, how long before another on the same PF.
    pub rest: Millis,
    /// How the search probes.
    pub probe: vfguard_localize::ProbeConfig,
}

impl Default for Localize {
    fn default() -> Localize {
        Localize {
            active: false,
            min_faults: 3,
            lag: 2_000,
            rest: 600_000,
            // Three deviations, not the search's two: a PF's fault counts are sums of bursts
            // read every few seconds, and at two deviations about one round in fifty reads
            // noise as a split (the search then chases a phantom culprit for several rounds;
            // the confirmation still never names it).
            probe: vfguard_localize::ProbeConfig {
                z: 3.0,
                ..vfguard_localize::ProbeConfig::default()
            },
        }
    }
}

/// A policy as written in TOML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// `observe`, `dry_run`, `enforce`.
    pub mode: Option<Mode>,
    /// The rules (replacing the built-in ones when given).
    pub rule: Option<Vec<RawRule>>,
    /// The ladder, lowest rung first.
    pub ladder: Option<Vec<Rung>>,
    /// Climb only if faults continue this long after an action.
    pub hold_down: Option<String>,
    /// Restore after this long without faults.
    pub cool_down: Option<String>,
    /// Close a quiet incident this long after its last fault (or its restore).
    pub close_after: Option<String>,
    /// Notify an uncontained incident again this often while its faults go on.
    pub renotify_every: Option<String>,
    /// How long a line naming no VF waits for the next line from its PF to name one.
    pub sequence_window: Option<String>,
    /// `rate_limit` cap, Mbps.
    pub rate_limit_mbps: Option<u32>,
    /// `quarantine_vlan` VLAN.
    pub quarantine_vlan: Option<u16>,
    /// The blast-radius guard.
    pub guard: Option<RawGuard>,
    /// Localizing faults that name no VF.
    pub localize: Option<RawLocalize>,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// Kinds counted.
    pub kinds: Vec<FaultKind>,
    /// Window.
    pub window: Millis,
    /// Threshold.
    pub threshold: u32,
    /// Minimum confidence.
    pub min_confidence: f64,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Mode.
    pub mode: Mode,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Ladder.
    pub ladder: Vec<Rung>,
    /// Hold-down.
    pub hold_down: Millis,
    /// Cool-down.
    pub cool_down: Millis,
    /// Close-after.
    pub close_after: Millis,
    /// How often an uncontained incident is notified again while faults go on.
    pub renotify_every: Millis,
    /// Sequence window.
    pub sequence_window: Millis,
    /// Rate limit, Mbps.
    pub rate_limit_mbps: u32,
    /// Quarantine VLAN.
    pub quarantine_vlan: u16,
    /// Guard caps per PF.
    pub max_actions_per_pf: u32,
    /// Guard caps per host.
    pub max_actions_per_host: u32,
    /// Guard window.
    pub guard_window: Millis,
    /// PF resets allowed automatically.
    pub allow_pf_reset: bool,
    /// Exclusion patterns.
    pub exclude: Vec<String>,
    /// Localizing faults that name no VF.
    pub localize: Localize,
}

/// A policy that does not validate: the field, the value, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} ({value}) {must}")]
pub struct PolicyError {
    /// The field's path (`rule[2].window`).
    pub field: String,
    /// The value given.
    pub value: String,
    /// What it must be.
    pub must: String,
}

/// Parses `60s`, `500ms`, `5m`, `1h`, or a bare number of milliseconds.
pub fn parse_duration(field: &str, text: &str) -> Result<Millis, PolicyError> {
    let err = || PolicyError {
        field: field.to_owned(),
        value: text.to_owned(),
        must: "must be a duration like 500ms, 60s, 5m or 1h".into(),
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

fn default_rules() -> Vec<Rule> {
    use FaultKind as K;
    let rule =
        |name: &str, kinds: &[K], window: Millis, threshold: u32, min_confidence: f64| Rule {
            name: name.into(),
            kinds: kinds.to_vec(),
            window,
            threshold,
            min_confidence,
        };
    vec![
        rule("mdd", &[K::MddTx, K::MddRx, K::Mdd], 60_000, 1, 0.8),
        rule("vf_disabled", &[K::VfDisabled], 60_000, 1, 0.8),
        rule("mailbox", &[K::Mailbox], 10_000, 5, 0.8),
        rule(
            "spoof",
            &[K::Spoof, K::MacOverride, K::VlanOverride],
            60_000,
            3,
            0.6,
        ),
        rule("iommu", &[K::IommuFault], 60_000, 3, 0.6),
        rule(
            "aer_uncorrectable",
            &[K::AerNonfatal, K::AerFatal, K::Dpc],
            60_000,
            1,
            0.6,
        ),
        rule("aer_correctable", &[K::AerCorrectable], 60_000, 50, 0.6),
        rule("tx_hang", &[K::TxHang], 300_000, 3, 0.8),
        // An adapter that keeps resetting hurts every tenant of the PF: someone must know.
        rule("pf_reset", &[K::PfReset], 600_000, 2, 0.0),
    ]
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            mode: Mode::Enforce,
            rules: default_rules(),
            ladder: vec![
                Rung::Notify,
                Rung::SpoofchkOn,
                Rung::TrustOff,
                Rung::RateLimit,
                Rung::VfReset,
                Rung::VfDisable,
                Rung::Detach,
                Rung::Pause,
            ],
            hold_down: 1_000,
            cool_down: 300_000,
            close_after: 600_000,
            renotify_every: 600_000,
            sequence_window: 1_000,
            rate_limit_mbps: 100,
            quarantine_vlan: 4094,
            max_actions_per_pf: 8,
            max_actions_per_host: 32,
            guard_window: 60_000,
            allow_pf_reset: false,
            exclude: Vec::new(),
            localize: Localize::default(),
        }
    }
}

impl Policy {
    /// Parses and validates TOML (`file` names it in errors).
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError {
            field: "policy".into(),
            value: e
                .span()
                .map(|s| format!("at byte {}", s.start))
                .unwrap_or_default(),
            must: e.message().to_owned(),
        })?;
        Policy::validate(&raw)
    }

    /// Validates a raw policy over the defaults.
    pub fn validate(raw: &RawPolicy) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        let bad = |field: String, value: String, must: &str| PolicyError {
            field,
            value,
            must: must.into(),
        };
        if let Some(m) = raw.mode {
            p.mode = m;
        }
        if let Some(rules) = &raw.rule {
            p.rules = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                let f = |k: &str| format!("rule[{i}].{k}");
                let kinds = r.kinds.clone().unwrap_or_default();
                if kinds.is_empty() {
                    return Err(bad(
                        f("kinds"),
                        "[]".into(),
                        "must list at least one fault kind",
                    ));
                }
                let mut ks = Vec::new();
                for k in &kinds {
                    ks.push(FaultKind::from_name(k).ok_or_else(|| {
                        bad(
                            f("kinds"),
                            k.clone(),
                            "is not a fault kind (mdd_tx, mailbox, spoof, iommu_fault, ...)",
                        )
                    })?);
                }
                if let Some(name) = r.name.as_deref().filter(|n| n.trim().is_empty()) {
                    return Err(bad(f("name"), format!("{name:?}"), "must not be empty"));
                }
                if let Some(name) = r.name.as_deref().filter(|n| !RuleRef::is_rule_name(n)) {
                    // A journal reads an action's rule back by its form: this name would read
                    // as something else (`cool_down`, `retry after ...`).
                    return Err(bad(
                        f("name"),
                        name.to_owned(),
                        "is the form of another reason to act (cool_down, retry after ..., \
                         operator ...: ...)",
                    ));
                }
                let window = parse_duration(&f("window"), r.window.as_deref().unwrap_or("60s"))?;
                if window == 0 {
                    return Err(bad(f("window"), "0s".into(), "must be > 0"));
                }
                let threshold = r.threshold.unwrap_or(1);
                if threshold == 0 {
                    return Err(bad(f("threshold"), "0".into(), "must be >= 1"));
                }
                let min_confidence = r.min_confidence.unwrap_or(0.8);
                if !(0.0..=1.0).contains(&min_confidence) {
                    return Err(bad(
                        f("min_confidence"),
                        min_confidence.to_string(),
                        "must be between 0 and 1",
                    ));
                }
                let name = r.name.clone().unwrap_or_else(|| format!("rule{i}"));
                if let Some(j) = p.rules.iter().position(|o| o.name == name) {
                    // Actions and explanations name their rule: two of one name are one to a
                    // reader.
                    return Err(bad(
                        f("name"),
                        name,
                        &format!("is rule[{j}]'s name too; give each rule its own"),
                    ));
                }
                p.rules.push(Rule {
                    name,
                    kinds: ks,
                    window,
                    threshold,
                    min_confidence,
                });
            }
        }
        if let Some(l) = &raw.ladder {
            if l.is_empty() {
                return Err(bad(
                    "ladder".into(),
                    "[]".into(),
                    "must have at least one rung",
                ));
            }
            for (i, r) in l.iter().enumerate() {
                if let Some(j) = l
                    .get(..i)
                    .and_then(|before| before.iter().position(|b| b == r))
                {
                    return Err(bad(
                        format!("ladder[{i}]"),
                        r.name().into(),
                        &format!("is ladder[{j}] already; a rung is climbed once"),
                    ));
                }
            }
            p.ladder = l.clone();
        }
        if let Some(d) = &raw.hold_down {
            p.hold_down = parse_duration("hold_down", d)?;
        }
        if let Some(d) = &raw.cool_down {
            p.cool_down = parse_duration("cool_down", d)?;
            if p.cool_down == 0 {
                return Err(bad("cool_down".into(), d.clone(), "must be > 0"));
            }
        }
        if let Some(d) = &raw.close_after {
            p.close_after = parse_duration("close_after", d)?;
        }
        if let Some(d) = &raw.renotify_every {
            p.renotify_every = parse_duration("renotify_every", d)?;
            if p.renotify_every == 0 {
                return Err(bad("renotify_every".into(), d.clone(), "must be > 0"));
            }
        }
        if let Some(d) = &raw.sequence_window {
            p.sequence_window = parse_duration("sequence_window", d)?;
        }
        if let Some(r) = raw.rate_limit_mbps {
            if r == 0 {
                return Err(bad(
                    "rate_limit_mbps".into(),
                    "0".into(),
                    "must be > 0 (0 means no limit to the kernel)",
                ));
            }
            p.rate_limit_mbps = r;
        }
        if let Some(v) = raw.quarantine_vlan {
            if v == 0 || v > 4094 {
                return Err(bad(
                    "quarantine_vlan".into(),
                    v.to_string(),
                    "must be 1..=4094",
                ));
            }
            p.quarantine_vlan = v;
        }
        if let Some(g) = &raw.guard {
            if let Some(n) = g.max_actions_per_pf {
                p.max_actions_per_pf = n;
            }
            if let Some(n) = g.max_actions_per_host {
                p.max_actions_per_host = n;
            }
            if p.max_actions_per_host < p.max_actions_per_pf {
                return Err(bad(
                    "guard.max_actions_per_host".into(),
                    p.max_actions_per_host.to_string(),
                    &format!(
                        "must be >= guard.max_actions_per_pf ({})",
                        p.max_actions_per_pf
                    ),
                ));
            }
            if let Some(w) = &g.window {
                p.guard_window = parse_duration("guard.window", w)?;
                if p.guard_window == 0 {
                    return Err(bad("guard.window".into(), w.clone(), "must be > 0"));
                }
            }
            if let Some(a) = g.allow_pf_reset {
                p.allow_pf_reset = a;
            }
            if let Some(e) = &g.exclude {
                p.exclude = e.clone();
            }
        }
        if let Some(l) = &raw.localize {
            p.localize = validate_localize(l)?;
        }
        Ok(p)
    }

    /// Whether an owner label (`vm:NAME`) is on the exclusion list.
    pub fn excluded(&self, label: &str) -> bool {
        self.exclude.iter().any(|pat| match pat.strip_suffix('*') {
            Some(prefix) => label.starts_with(prefix),
            None => label == pat,
        })
    }
}

fn validate_localize(l: &RawLocalize) -> Result<Localize, PolicyError> {
    let bad = |field: &str, value: String, must: &str| PolicyError {
        field: format!("localize.{field}"),
        value,
        must: must.into(),
    };
    let mut out = Localize::default();
    let c = &mut out.probe;
    out.active = l.active.unwrap_or(out.active);
    if let Some(n) = l.min_faults {
        if n == 0 {
            return Err(bad("min_faults", "0".into(), "must be >= 1"));
        }
        out.min_faults = n;
    }
    let duration = |field: &str, text: &Option<String>, default: Millis| {
        text.as_deref().map_or(Ok(default), |t| {
            parse_duration(&format!("localize.{field}"), t)
        })
    };
    c.window_ms = duration("window", &l.window, c.window_ms)?;
    if c.window_ms == 0 {
        return Err(bad("window", "0s".into(), "must be > 0"));
    }
    out.lag = duration("lag", &l.lag, out.lag)?;
    if out.lag < 500 {
        return Err(bad(
            "lag",
            format!("{} ms", out.lag),
            "must be at least 500ms: the driver reports late (ixgbe every 2 s), and a round's \
             measurement ends this long after its gates come off",
        ));
    }
    out.rest = duration("rest", &l.rest, out.rest)?;
    c.ttl_ms = duration("ttl", &l.ttl, c.ttl_ms)?;
    if c.ttl_ms <= c.window_ms + out.lag {
        return Err(bad(
            "ttl",
            format!("{} ms", c.ttl_ms),
            &format!(
                "must be longer than window + lag ({} ms): a gate is reverted when its window \
                 ends, the time to live is the backstop",
                c.window_ms + out.lag
            ),
        ));
    }
    if let Some(r) = l.throttle_mbps {
        if r == 0 {
            return Err(bad(
                "throttle_mbps",
                "0".into(),
                "must be > 0 (0 means no limit to the kernel)",
            ));
        }
        c.throttle_mbps = r;
    }
    if let Some(s) = l.max_share {
        if !(s > 0.0 && s <= 1.0) {
            return Err(bad("max_share", s.to_string(), "must be > 0 and <= 1"));
        }
        c.max_share = s;
    }
    if let Some(n) = l.baseline_windows {
        if n == 0 {
            return Err(bad("baseline_windows", "0".into(), "must be >= 1"));
        }
        c.baseline_windows = n;
    }
    if let Some(z) = l.z {
        if !(z > 0.0 && z.is_finite()) {
            return Err(bad("z", z.to_string(), "must be > 0"));
        }
        c.z = z;
    }
    if let Some(z) = l.z_confirm {
        if !(z.is_finite() && z >= c.z) {
            return Err(bad(
                "z_confirm",
                z.to_string(),
                &format!(
                    "must be >= localize.z ({}): naming a tenant needs more",
                    c.z
                ),
            ));
        }
        c.z_confirm = z;
    }
    if let Some(n) = l.max_rounds {
        if n == 0 {
            return Err(bad("max_rounds", "0".into(), "must be >= 1"));
        }
        c.max_rounds = n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localize_defaults_and_errors() {
        let p = Policy::from_toml("[localize]\nactive = true\nwindow = \"5s\"\n").unwrap();
        assert!(p.localize.active);
        assert_eq!(p.localize.probe.window_ms, 5_000);
        assert!(
            !Policy::default().localize.active,
            "active probing is opt-in"
        );
        let e = Policy::from_toml("[localize]\nwindow = \"20s\"\nttl = \"21s\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("localize.ttl (21000 ms) must be longer than window + lag (22000 ms)"),
            "{e}"
        );
        let e = Policy::from_toml("[localize]\nlag = \"0s\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("localize.lag (0 ms) must be at least 500ms"),
            "{e}"
        );
        let e = Policy::from_toml("[localize]\nmax_share = 1.5\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "localize.max_share (1.5) must be > 0 and <= 1"
        );
        let e = Policy::from_toml("[localize]\nz = 3.0\nz_confirm = 2.0\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("localize.z_confirm (2) must be >= localize.z (3)"),
            "{e}"
        );
        assert!(Policy::from_toml("[localize]\ngate = \"trust\"\n").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "500ms"), Ok(500));
        assert_eq!(parse_duration("x", "60s"), Ok(60_000));
        assert_eq!(parse_duration("x", "5m"), Ok(300_000));
        assert_eq!(parse_duration("x", "250"), Ok(250));
        assert!(parse_duration("x", "soon").is_err());
        assert!(parse_duration("x", "5 parsecs").is_err());
    }

    /// Issue 13: duplicate and empty rule names and duplicate rungs were accepted.
    #[test]
    fn rule_names_are_unique_and_not_empty_and_rungs_are_climbed_once() {
        let e = Policy::from_toml(
            "[[rule]]\nname = \"mdd\"\nkinds = [\"mdd\"]\n[[rule]]\nname = \"mdd\"\nkinds = [\"spoof\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "rule[1].name (mdd) is rule[0]'s name too; give each rule its own"
        );
        let e = Policy::from_toml("[[rule]]\nname = \" \"\nkinds = [\"mdd\"]\n").unwrap_err();
        assert_eq!(e.to_string(), "rule[0].name (\" \") must not be empty");
        let e = Policy::from_toml("ladder = [\"notify\", \"vf_reset\", \"notify\"]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ladder[2] (notify) is ladder[0] already; a rung is climbed once"
        );
    }

    #[test]
    fn defaults_validate_and_errors_name_the_field_and_value() {
        assert_eq!(Policy::from_toml("").unwrap(), Policy::default());
        let e = Policy::from_toml("[[rule]]\nkinds = [\"mdd_tx\"]\nwindow = \"0s\"\n").unwrap_err();
        assert_eq!(e.to_string(), "rule[0].window (0s) must be > 0");
        let e = Policy::from_toml("[[rule]]\nkinds = [\"bad_kind\"]\n").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("rule[0].kinds (bad_kind) is not a fault kind"));
        let e = Policy::from_toml("quarantine_vlan = 5000\n").unwrap_err();
        assert_eq!(e.to_string(), "quarantine_vlan (5000) must be 1..=4094");
        let e = Policy::from_toml("[guard]\nmax_actions_per_pf = 9\nmax_actions_per_host = 2\n")
            .unwrap_err();
        assert!(e.to_string().contains("guard.max_actions_per_host (2)"));
        assert!(Policy::from_toml("mode = \"yolo\"\n").is_err());
        let e =
            Policy::from_toml("[[rule]]\nname = \"cool_down\"\nkinds = [\"mdd\"]\n").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("rule[0].name (cool_down) is the form of"));
        assert!(
            Policy::from_toml("[[rule]]\nname = \"retry after lunch\"\nkinds = [\"mdd\"]\n")
                .is_err()
        );
        let p = Policy::from_toml("mode = \"dry_run\"\nladder = [\"notify\", \"vf_disable\"]\n[guard]\nexclude = [\"vm:infra-*\"]\n").unwrap();
        assert_eq!((p.mode, p.ladder.len()), (Mode::DryRun, 2));
        assert!(p.excluded("vm:infra-dns") && !p.excluded("vm:web"));
    }
}
