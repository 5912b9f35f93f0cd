//! `vfguard simulate` end to end: exit codes, the JSON report's shape, the log it writes (which
//! `vfguard scan` reads), and the tree it keeps (which `vfguard inventory --root` reads).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::vfguard;
use std::path::{Path, PathBuf};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios")
        .join(name)
}

#[test]
fn json_report_has_the_scripted_shape() {
    let out = vfguard(&[
        "simulate",
        "--json",
        scenario("two-culprits.toml").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "scenario",
        "seed",
        "incidents",
        "actions",
        "untouched",
        "expectations",
    ] {
        assert!(r.get(k).is_some(), "report field {k}");
    }
    assert_eq!(
        (r["scenario"].as_str(), r["seed"].as_u64()),
        (Some("two-culprits"), Some(29))
    );
    let inc = &r["incidents"][0];
    for k in [
        "id",
        "function",
        "pf",
        "vf",
        "owner",
        "kinds",
        "attribution",
        "first_fault_ms",
        "contained_ms",
        "actions",
    ] {
        assert!(inc.get(k).is_some(), "incident field {k}");
    }
    for k in ["kind", "name"] {
        assert!(inc["owner"].get(k).is_some());
    }
    for k in ["method", "confidence"] {
        assert!(inc["attribution"].get(k).is_some());
    }
    assert_eq!(r["expectations"]["passed"], true);
    assert!(r["expectations"]["failures"].as_array().unwrap().is_empty());
    let culprits: Vec<&str> = r["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["owner"]["name"].as_str())
        .collect();
    assert!(
        culprits.contains(&"vm-b") && culprits.contains(&"pod-e"),
        "{culprits:?}"
    );
}

#[test]
fn a_failed_expectation_exits_1_and_a_bad_file_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario("mdd-flood-i40e.toml")).unwrap();
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        text.replace("culprits = [\"evil-2\"]", "culprits = [\"web-1\"]"),
    )
    .unwrap();
    let out = vfguard(&["simulate", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("FAILED: culprit web-1"), "{stdout}");
    assert!(stdout.contains("evil-2 is not a culprit"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("kind = \"mdd_flood\"", "kind = \"mdd_floood\""),
    )
    .unwrap();
    let out = vfguard(&["simulate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let line = text.lines().position(|l| l.contains("mdd_flood")).unwrap() + 1;
    assert!(
        err.contains(&format!("bad.toml:{line}: unknown variant `mdd_floood`")),
        "{err}"
    );
}

#[test]
fn the_scenario_policy_applies_unless_policy_replaces_it_and_a_bad_one_is_a_bad_file() {
    let file = scenario("reoffence-ixgbe.toml");
    let restores = |args: &[&str]| {
        let out = vfguard(&[&["simulate", "--json"], args, &[file.to_str().unwrap()]].concat());
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] == "restore")
            .map(|a| a["at_ms"].as_u64().unwrap())
            .collect::<Vec<u64>>()
    };
    // Its [policy] cool_down = "5s": contained at 3 s, restored at 8 s.
    assert_eq!(restores(&[]).first(), Some(&8000));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "cool_down = \"5m\"\n").unwrap();
    assert_eq!(
        restores(&["--policy", policy.to_str().unwrap()]),
        Vec::<u64>::new()
    );

    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().position(|l| l == "[policy]").unwrap() + 1;
    let bad = dir.path().join("bad.toml");
    for (from, to, says) in [
        (
            "cool_down = \"5s\"",
            "cool_down = \"5x\"",
            "policy.cool_down (5x) must be a duration",
        ),
        (
            "hold_down = \"1s\"",
            "hold_down = 1",
            "policy.hold_down: invalid type: integer `1`",
        ),
        (
            "hold_down",
            "hold_dawn",
            "policy: unknown field `hold_dawn`",
        ),
    ] {
        std::fs::write(&bad, text.replace(from, to)).unwrap();
        let out = vfguard(&["simulate", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&format!("bad.toml:{line}: {says}")), "{err}");
    }
}

#[test]
fn the_log_it_writes_is_scanned_to_the_same_culprit_and_the_tree_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kmsg.txt");
    let root = dir.path().join("host");
    let out = vfguard(&[
        "simulate",
        "--log",
        log.to_str().unwrap(),
        "--keep-root",
        root.to_str().unwrap(),
        scenario("dma-fault.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let scan = vfguard(&[
        "scan",
        "--json",
        "--format",
        "kmsg",
        "--root",
        root.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert_eq!(scan.status.code(), Some(1), "faults found");
    let events: Vec<serde_json::Value> = String::from_utf8(scan.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["kind"], "iommu_fault");
        assert_eq!(e["owner"]["name"], "dma-rogue");
        assert_eq!(e["trusted"], true);
    }
    let inv = vfguard(&["inventory", "--json", "--root", root.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&inv.stdout).unwrap();
    assert_eq!(v["pfs"][0]["vfs"][3]["owner"]["name"], "dma-rogue");
}

/// Issue 14: the JSON report of the scenarios whose evidence is not (only) the kernel log:
/// devlink health (ice `mdd` dumps, mlx5 `vnic` counters) and an mlx5 VF's silent
/// `tx_dropped`. Each names its culprits with where the evidence came from.
#[test]
fn devlink_and_counter_scenarios_report_where_their_evidence_came_from() {
    for (file, culprit, source) in [
        ("devlink-ice-mdd.toml", "rogue-b", "devlink"),
        ("mlx5-vnic.toml", "rogue-2", "devlink"),
        ("mlx5-spoof.toml", "spoofer", "vf_counters"),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/scenarios")
            .join(file);
        let out = common::vfguard(&["simulate", "--json", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", common::text(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            r["expectations"]["passed"], true,
            "{file}: {}",
            r["expectations"]
        );
        let i = r["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["owner"]["name"] == culprit)
            .unwrap_or_else(|| panic!("{file}: no incident of {culprit}: {r}"));
        assert!(
            i["sources"].as_array().unwrap().iter().any(|s| s == source),
            "{file}: {i}"
        );
        assert!(i["contained_ms"].is_u64(), "{file}: {i}");
        if source == "devlink" {
            assert!(r["devlink_events"].as_u64().unwrap() > 0, "{file}: {r}");
        }
    }
}
