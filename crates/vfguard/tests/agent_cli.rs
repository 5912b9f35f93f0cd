//! The agent acting on the simulated host: `vfguard demo`, `vfguard simulate` (agent mode) with
//! a journal, and `vfguard explain` reading it back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::vfguard;
use std::path::Path;

#[test]
fn the_demo_contains_every_culprit_and_touches_no_one_else() {
    let out = vfguard(&["demo", "--speed", "0", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scenario"], "demo");
    assert_eq!(r["expectations"]["passed"], true, "{}", r["expectations"]);
    let incidents = r["incidents"].as_array().unwrap();
    for culprit in ["mallory", "legacy-app", "firewall"] {
        let i = incidents
            .iter()
            .find(|i| i["owner"]["name"] == culprit)
            .unwrap_or_else(|| panic!("{culprit}"));
        assert!(i["contained_ms"].is_u64(), "{culprit} contained");
    }
    let untouched: Vec<&str> = r["untouched"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for innocent in [
        "web-1",
        "web-2",
        "db-1",
        "cache-1",
        "batch-1",
        "batch-2",
        "ci-runner",
        "pod-metrics",
    ] {
        assert!(
            untouched.contains(&innocent),
            "{innocent} must be untouched"
        );
    }
    for culprit in ["mallory", "legacy-app", "firewall"] {
        assert!(
            !untouched.contains(&culprit),
            "{culprit} is a culprit, not untouched: {untouched:?}"
        );
    }
    // The PCIe hiccup is reported on the PF, owned by the host, and nobody is acted on for it.
    let aer = incidents
        .iter()
        .find(|i| {
            i["kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "aer_correctable")
        })
        .unwrap();
    assert_eq!(aer["owner"]["kind"], "host");
    assert!(aer["actions"].as_array().unwrap().is_empty());
    let human = vfguard(&["demo", "--speed", "0"]);
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(
        text.contains("timeline:")
            && text.contains("CONTAINED")
            && text.contains("expectations: passed"),
        "{text}"
    );
}

#[test]
fn a_journalled_run_is_explained_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios/vlan-spoof-igb.toml");
    let out = vfguard(&[
        "simulate",
        "--journal",
        db.to_str().unwrap(),
        scenario.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vfguard(&["explain", "--journal", db.to_str().unwrap(), "1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "incident 1 on 0000:03:00.1 (PF 0000:02:00.0): owner vm:vlan-hopper, contained"
        ),
        "{text}"
    );
    assert!(text.contains("attributed direct (1.00)"), "{text}");
    assert!(
        text.contains("set_vf:link_state by rule") && text.contains("failed: EOPNOTSUPP"),
        "{text}"
    );
    assert!(
        text.contains("detach by rule") && text.contains("fallback after set_vf:link_state failed"),
        "{text}"
    );
    let json = vfguard(&["explain", "--json", "--journal", db.to_str().unwrap(), "1"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["state"], "contained");
    assert!(v["actions"].as_array().unwrap().len() >= 4);
    let missing = vfguard(&["explain", "--journal", db.to_str().unwrap(), "99"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`vfguard incidents`"));
    // The list the error points to.
    let list = vfguard(&["incidents", "--journal", db.to_str().unwrap()]);
    assert_eq!(list.status.code(), Some(0));
    let text = String::from_utf8(list.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no row for incident 1:\n{text}"));
    for want in [
        "0000:03:00.1",
        "0000:02:00.0",
        "contained",
        "vm:vlan-hopper",
    ] {
        assert!(row.contains(want), "{want} missing from {row}");
    }
    let json = vfguard(&["incidents", "--json", "--journal", db.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["id"], 1);
    assert_eq!(v[0]["state"], "contained");
    assert_eq!(v[0]["function"], "0000:03:00.1");
    // Filters: nobody else owns anything here, and a contained incident is still open.
    let other = vfguard(&[
        "incidents",
        "--owner",
        "vm:nobody",
        "--journal",
        db.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&other.stdout).contains("no incidents"));
    let open = vfguard(&[
        "incidents",
        "--open",
        "--json",
        "--journal",
        db.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&open.stdout).unwrap();
    assert_eq!(v[0]["id"], 1);
    let bad = vfguard(&[
        "incidents",
        "--pf",
        "3b:00",
        "--journal",
        db.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let nojournal = vfguard(&["explain", "--journal", "/nonexistent/j.db", "1"]);
    assert_eq!(nojournal.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nojournal.stderr).contains("no journal at /nonexistent/j.db"));
}

#[test]
fn every_scenario_passes_with_the_agent_acting() {
    let files = vfguard_sim::scenario::files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios"),
    )
    .unwrap();
    let mut n = 0;
    let mut failed = Vec::new();
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let out = vfguard(&["simulate", "--json", f.to_str().unwrap()]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if out.status.code() != Some(0) {
            failed.push(format!("{}: {}", f.display(), r["expectations"]));
        }
        n += 1;
    }
    assert!(n >= 12);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
