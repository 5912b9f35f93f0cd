//! Issue 15, items 1 and 2: agents on simulated hosts publish to one nats-server with JetStream
//! (`vfguard run --fleet`), and `vfguard fleet` shows every host's open incidents, the VM that
//! faulted on two hosts (by its libvirt UUID) and the (driver, class) that three tenants hit on
//! three hosts (a platform suspect).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{text, vfguard};
use std::path::Path;
use vfguard_fleet::local_server::LocalServer;

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn four_simulated_hosts_make_one_fleet_view() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalServer::start(&dir.path().join("nats"), None).unwrap_or_else(|e| panic!("{e}"));
    let url = nats.url();
    // hv-1 and hv-2: the same VM (evil-2, one UUID) floods MDD on each, as after a migration
    // (hv-2 is an OpenStack host: its domains carry Nova's metadata); hv-3 and hv-4: other
    // tenants hit i40e MDD too.
    for (host, s) in [
        ("hv-1", "mdd-flood-i40e.toml"),
        ("hv-2", "openstack-mdd-i40e.toml"),
        ("hv-3", "actuator-failure.toml"),
        ("hv-4", "demo.toml"),
    ] {
        let db = dir.path().join(format!("{host}.db"));
        let sock = dir.path().join(format!("{host}.sock"));
        let out = vfguard(&[
            "run",
            "--sim",
            &scenario(s),
            "--speed",
            "0",
            "--journal",
            db.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--log-format",
            "json",
            "--fleet",
            &url,
            "--site",
            "lab",
            "--fleet-host",
            host,
        ]);
        assert_eq!(out.status.code(), Some(0), "{host}: {}", text(&out));
    }
    let out = vfguard(&["fleet", "--url", &url, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<&str> = r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["hv-1", "hv-2", "hv-3", "hv-4"]);
    assert!(
        r["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["version"].is_string()),
        "{r}"
    );
    // Every host's open incidents, each with its owner and class.
    let open = r["open"].as_array().unwrap();
    for host in hosts {
        assert!(
            open.iter().any(|i| i["host"] == host),
            "{host} has no open incident: {r}"
        );
    }
    let evil: Vec<&serde_json::Value> = open
        .iter()
        .filter(|i| i["owner"]["name"] == "evil-2")
        .collect();
    assert_eq!(evil.len(), 2, "{r}");
    // The platform as each host's map has it: the PF's driver and the firmware it reports.
    assert!(evil.iter().all(|i| i["class"] == "mdd"
        && i["platform"]["driver"] == "i40e"
        && i["platform"]["firmware"] == "9.20 0x8000d8c5 1.3353.0"));
    // Nova's metadata where the domain XML has it: the instance's name and project.
    let on_hv2 = evil.iter().find(|i| i["host"] == "hv-2").unwrap();
    assert_eq!(on_hv2["vm"]["nova_name"], "shop-backend", "{on_hv2}");
    assert_eq!(on_hv2["vm"]["project"], "retail", "{on_hv2}");
    let on_hv1 = evil.iter().find(|i| i["host"] == "hv-1").unwrap();
    assert_eq!(on_hv1["vm"]["project"], serde_json::Value::Null, "{on_hv1}");
    // One VM on two hosts, by UUID.
    let vms = r["vms_on_several_hosts"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{r}");
    assert_eq!(vms[0]["names"], serde_json::json!(["evil-2"]));
    assert_eq!(vms[0]["hosts"], serde_json::json!(["lab/hv-1", "lab/hv-2"]));
    // i40e MDD from three tenants on four hosts: a platform suspect.
    let suspects = r["platform_suspects"].as_array().unwrap();
    assert!(
        suspects.iter().any(|s| s["driver"] == "i40e"
            && s["firmware"] == "9.20 0x8000d8c5 1.3353.0"
            && s["class"] == "mdd"
            && s["tenants"] == 3),
        "{r}"
    );
    // As text.
    let out = vfguard(&["fleet", "--url", &url]);
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(t.starts_with("4 host(s)"), "{t}");
    assert!(t.contains("faulted on lab/hv-1, lab/hv-2"), "{t}");
    assert!(
        t.contains("a driver or firmware bug is suspected; no tenant is blamed"),
        "{t}"
    );
    // Nobody there: says so, exit 2.
    drop(nats);
    let out = vfguard(&["fleet", "--url", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("scripts/nats.sh start"),
        "{}",
        text(&out)
    );
}

/// The daemon writes what the fleet acknowledged into its journal (cursor `fleet`), so that a
/// restart resumes there; and the metrics show the publisher's progress.
#[test]
fn the_daemon_keeps_the_acknowledged_cursor_in_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let nats = LocalServer::start(&dir.path().join("nats"), None).unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("j.db");
    let sock = dir.path().join("s.sock");
    let mut child = common::spawn(&[
        "run",
        "--sim",
        &scenario("mdd-flood-i40e.toml"),
        "--speed",
        "0",
        "--linger",
        "--journal",
        db.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
        "--fleet",
        &nats.url(),
        "--fleet-host",
        "hv-9",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let cursor = loop {
        let c = vfguard_journal::Journal::open_read_only(&db)
            .ok()
            .and_then(|j| j.cursor("fleet").ok().flatten());
        if let Some(c) = c.filter(|c| *c > 0) {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fleet cursor in the journal"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Everything up to the cursor is on the bus: the incident the journal holds.
    let j = vfguard_journal::Journal::open_read_only(&db).unwrap();
    let last = j.outbox_after(0).map(|e| e.unwrap().seq()).max().unwrap();
    assert!(cursor <= last, "{cursor} > {last}");
    drop(j);
    let metrics = vfguard(&["status", "--socket", sock.to_str().unwrap(), "--json"]);
    assert_eq!(metrics.status.code(), Some(0), "{}", text(&metrics));
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--unix-socket",
            sock.to_str().unwrap(),
            "http://vfguard/metrics",
        ])
        .output()
        .expect("curl (Debian's curl package) reads the metrics");
    let m = String::from_utf8_lossy(&out.stdout);
    assert!(m.contains("vfguard_fleet_connected 1"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("vfguard_fleet_published_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    common::kill(child.id(), 15);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
