//! Issue 13, item 3: label values went into `/metrics` as they were: a VM named with a quote,
//! a backslash or a line feed broke the scrape (Prometheus refuses the whole exposition), and a
//! name holding `"} 1\n# EOF\n...` forged series and ended the OpenMetrics exposition early.
//! prometheus-client 0.24 writes label values unescaped (client_rust issue #151); the agent's
//! label values now escape `\`, `"` and line feed as both text formats ask.
//!
//! Each exposition, OpenMetrics and the classic text format the API converts it to, is read
//! back by a strict parser (and by `promtool check metrics` where it is installed, as in CI):
//! exactly the expected series, every label value as it was, nothing injected, `# EOF` last.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::metrics::Metrics;
use vfguard_agent::pace::{self, VirtualClock};
use vfguard_api::exposition::to_classic;
use vfguard_model::{Bdf, Owner, OwnerKind, Pf, Topology, Vf, VfIndex, VfLinkState, VfState};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

/// One sample: its name and its labels, unescaped.
type Sample = (String, BTreeMap<String, String>);

/// What an exposition holds.
#[derive(Debug, Default)]
struct Exposition {
    /// Family name → type, from the `# TYPE` lines.
    families: BTreeMap<String, String>,
    samples: Vec<Sample>,
    /// Whether it ended with `# EOF` (and had it nowhere else).
    eof: bool,
}

/// Reads an exposition as Prometheus's text parsers do, refusing what they refuse: a line that
/// is not a comment, a sample or (last) `# EOF`, an unterminated or badly escaped label value,
/// a sample of no declared family, anything after `# EOF`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let Some(body) = text.strip_suffix('\n') else {
        return Err("no final line feed".into());
    };
    for (n, line) in body.split('\n').enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if out.eof {
            return Err(err("after # EOF"));
        }
        if line == "# EOF" {
            out.eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| err("bad TYPE"))?;
            out.families.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .ok_or_else(|| err("no value"))?;
        let (name, mut rest) = line.split_at(name_end);
        if name.is_empty() {
            return Err(err("not a sample"));
        }
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let (key, r) = rest.split_once("=\"").ok_or_else(|| err("bad label"))?;
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(err("bad label name"));
                }
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(err("unterminated label value")),
                        Some((i, '"')) => break i + 1,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(err("bad escape")),
                        },
                        Some((_, c)) => value.push(c),
                    }
                };
                if labels.insert(key.to_owned(), value).is_some() {
                    return Err(err("label twice"));
                }
                rest = r.get(end..).unwrap_or_default();
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let value = rest.strip_prefix(' ').ok_or_else(|| err("no value"))?;
        if value.parse::<f64>().is_err() {
            return Err(err("bad value"));
        }
        let family = ["_total", "_bucket", "_sum", "_count", "_created", ""]
            .iter()
            .find_map(|s| {
                let f = name.strip_suffix(s)?;
                out.families.contains_key(f).then(|| f.to_owned())
            });
        if family.is_none() && !out.families.contains_key(name) {
            return Err(err("a sample of no declared family"));
        }
        out.samples.push((name.to_owned(), labels));
    }
    Ok(out)
}

/// The VF families' series, as `(family, pf, vf, owner)`.
fn vf_series(e: &Exposition) -> BTreeSet<(String, String, String, String)> {
    e.samples
        .iter()
        .filter(|(n, _)| n.starts_with("vfguard_vf_"))
        .map(|(n, l)| {
            assert_eq!(l.len(), 3, "{n} {l:?}");
            (
                n.clone(),
                l["pf"].clone(),
                l["vf"].clone(),
                l["owner"].clone(),
            )
        })
        .collect()
}

/// What the VF families must show for a map: a series per VF in each, the owner's label as is.
fn expected(t: &Topology) -> BTreeSet<(String, String, String, String)> {
    let mut want = BTreeSet::new();
    for pf in &t.pfs {
        for vf in &pf.vfs {
            let key = |f: &str| {
                (
                    f.to_owned(),
                    pf.bdf.to_string(),
                    vf.index.0.to_string(),
                    vf.owner.label(),
                )
            };
            let s = vf.state.as_ref();
            if s.and_then(|s| s.link_state).is_some() {
                want.insert(key("vfguard_vf_link_enabled"));
            }
            if s.and_then(|s| s.spoofchk).is_some() {
                want.insert(key("vfguard_vf_spoof_check"));
            }
            want.insert(key("vfguard_vf_in_incident"));
        }
    }
    want
}

/// Both expositions of `metrics`, read back; the OpenMetrics one ends with `# EOF`, the classic
/// one has none; both hold the same samples; promtool accepts the classic one where installed.
fn both(metrics: &Metrics) -> Exposition {
    let om = metrics.encode();
    let classic = to_classic(&om);
    let e = parse(&om).map_err(|e| format!("{e}\n{om}")).unwrap();
    assert!(e.eof, "{om}");
    assert_eq!(om.lines().filter(|l| *l == "# EOF").count(), 1, "{om}");
    let c = parse(&classic)
        .map_err(|e| format!("{e}\n{classic}"))
        .unwrap();
    assert!(!c.eof, "{classic}");
    assert_eq!(c.samples, e.samples);
    promtool_check(&classic);
    e
}

/// `promtool check metrics` on a classic exposition, when promtool is installed (CI's
/// tests/prometheus/run.sh installs it; elsewhere the parser above stands alone).
fn promtool_check(classic: &str) {
    use std::io::Write as _;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(classic.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // Lint findings (exit 3) are about names and help texts, not parsing; a parse error is 1.
    assert_ne!(
        out.status.code(),
        Some(1),
        "promtool: {}{}\n{classic}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// VM names libvirt and QEMU accept (anything but a comma on QEMU's `-name guest=`).
const NAMES: [&str; 4] = [
    "quote\"and\\backslash",
    "x\"} 1\n# EOF\nvfguard_forged_total{owner=\"y\"} 99\nz",
    "brace}{owner=\"a\\\\\"\n",
    "租户-\u{202e}lave\u{1b}[31m 🦀",
];

#[test]
fn owner_names_with_quotes_backslashes_and_newlines_round_trip_in_both_formats() {
    let text = format!(
        "[scenario]\nname = \"escaping\"\nseed = 1\nduration_ms = 8000\n\n\
         [[pf]]\nbdf = \"0000:08:00.1\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f1\"\nnumvfs = 4\n\n{}\
         [[behaviour]]\nowner = {:?}\nkind = \"mac_spoof\"\nstart_ms = 2000\nevery_ms = 700\n",
        NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| format!(
                "[[vm]]\nname = {}\nlibvirt = false\nfunctions = [\"0000:08:00.1/vf{i}\"]\n\n",
                toml_string(n)
            ))
            .collect::<String>(),
        NAMES[1],
    );
    let mut sim = SimHost::new(Scenario::parse("escaping.toml", &text).unwrap()).unwrap();
    let host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    let (mut agent, _) = Agent::start(AgentConfig::default(), host, None, 0).unwrap();
    let metrics = Metrics::new();
    let mut clock = VirtualClock::scenario(&mut sim, 100);
    let mut duties = pace::each_step(|agent: &mut Agent, _, report| {
        metrics.record_step(&report);
        metrics.publish_counts(agent, &agent.incidents_by_state());
        metrics.publish_vfs(agent);
        Ok(pace::Flow::Go)
    });
    pace::run_until(&mut agent, &mut clock, &mut duties).unwrap();

    let t = agent.topology();
    let owners: BTreeSet<String> = t.pfs[0]
        .vfs
        .iter()
        .filter_map(|v| v.owner.name.clone())
        .collect();
    assert_eq!(
        owners,
        NAMES.iter().map(|&n| n.to_owned()).collect(),
        "the host map reads the names as they are"
    );
    let e = both(&metrics);
    assert_eq!(vf_series(&e), expected(t));
    assert!(
        vf_series(&e)
            .iter()
            .any(|(f, _, _, o)| f == "vfguard_vf_in_incident" && o == &format!("vm:{}", NAMES[1])),
        "the culprit's VF is in the exposition"
    );
    // Nothing forged: every sample is one of the agent's families.
    assert!(
        e.samples.iter().all(|(n, _)| !n.contains("forged")),
        "{:?}",
        e.samples
    );
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A PF with one VF per name, each owned by a VM or a namespace of that name.
fn map(names: &[(bool, String)]) -> Topology {
    let pf_bdf = Bdf::new(0, 0x3b, 0, 0).unwrap();
    let vfs = names
        .iter()
        .enumerate()
        .map(|(i, (vm, name))| {
            let i = u8::try_from(i).unwrap();
            Vf {
                index: VfIndex(u16::from(i)),
                bdf: Bdf::new(0, 0x3b, 2, i).unwrap(),
                driver: None,
                netdev: None,
                iommu_group: None,
                group_peers: Vec::new(),
                iommu_unit: None,
                owner: Owner {
                    kind: if *vm { OwnerKind::Vm } else { OwnerKind::Netns },
                    name: Some(name.clone()),
                    ..Owner::default()
                },
                state: Some(VfState {
                    index: u16::from(i),
                    spoofchk: Some(true),
                    link_state: Some(VfLinkState::Auto),
                    ..VfState::default()
                }),
            }
        })
        .collect();
    Topology {
        version: 1,
        pfs: vec![Pf {
            bdf: pf_bdf,
            vendor: None,
            device: None,
            driver: Some("ice".into()),
            netdevs: Vec::new(),
            netdev: None,
            numvfs: 8,
            totalvfs: 8,
            numa_node: None,
            reset_method: None,
            aer: false,
            iommu_group: None,
            iommu_unit: None,
            firmware: None,
            owner: Owner::host("test"),
            vfs,
        }],
        ..Topology::default()
    }
}

/// Any text, and text made mostly of what the formats treat specially.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\\n\r{}=,# EOFa\u{0}\u{1b}\u{202e}\u{85}]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the owners are called, both expositions parse and each VF's series carries its
    /// owner's label exactly, and nothing else is there.
    #[test]
    fn any_owner_name_round_trips_through_both_expositions(
        names in proptest::collection::vec((any::<bool>(), name()), 1..8)
    ) {
        let t = map(&names);
        let metrics = Metrics::new();
        let open: HashSet<Bdf> = t.pfs[0].vfs.iter().step_by(2).map(|v| v.bdf).collect();
        metrics.publish_map(&t, &open);
        let e = both(&metrics);
        prop_assert_eq!(vf_series(&e), expected(&t));
        let families: BTreeSet<&str> = e.samples.iter().map(|(n, _)| n.as_str()).collect();
        prop_assert!(families.iter().all(|n| n.starts_with("vfguard_")), "{:?}", families);
    }
}

/// An action's error without a number carries free text (a helper's stderr, a webhook's
/// reply): as a `result` label it would make a series per message. It counts as `other`; an
/// errno keeps its name.
#[test]
fn an_error_without_a_number_is_counted_as_other() {
    use vfguard_agent::agent::StepReport;
    use vfguard_model::{
        Action, ActionId, ActionKind, ActionOutcome, Decision, Errno, IncidentId, RuleRef,
    };
    let metrics = Metrics::new();
    let mut report = StepReport::default();
    let texts = [
        "virsh: error: failed to get domain 'web \"7\"'\nsecond line",
        "webhook answered 502",
    ];
    for (i, error) in [
        Errno::EBUSY,
        Errno::from_name(texts[0]),
        Errno::from_name(texts[1]),
    ]
    .into_iter()
    .enumerate()
    {
        let id = ActionId(i as u64 + 1);
        report.decisions.push((
            1000,
            Decision::Act(Action {
                id,
                incident: IncidentId(1),
                kind: ActionKind::Detach,
                function: "0000:08:00.1".parse().unwrap(),
                pf: None,
                pf_netdev: None,
                vf: None,
                owner: None,
                rule: RuleRef::Rule("detach_rule".into()),
                dry_run: false,
                at: 1000,
            }),
        ));
        report.outcomes.push(ActionOutcome {
            id,
            error: Some(error),
            before: None,
            at: 1000,
        });
    }
    metrics.record_step(&report);
    let e = both(&metrics);
    let results: BTreeMap<String, usize> = e
        .samples
        .iter()
        .filter(|(name, _)| name == "vfguard_actions_total")
        .filter_map(|(_, labels)| labels.get("result").cloned())
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r).or_default() += 1;
            m
        });
    assert_eq!(
        results.keys().map(String::as_str).collect::<Vec<_>>(),
        ["EBUSY", "other"],
        "{results:?}"
    );
}
