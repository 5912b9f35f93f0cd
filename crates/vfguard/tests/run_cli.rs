//! `vfguard run` as a process: kill -9 mid-scenario and restart on the same journal (no event
//! lost, no action repeated), SIGHUP with a bad configuration keeps the old one, SIGTERM stops
//! cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_wrap)]

mod common;
use common::{kill, spawn, wait_for};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vfguard_journal::{Entry, Journal};
use vfguard_model::{Decision, Observation};

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn kill_9_mid_scenario_then_restart_loses_no_event_and_repeats_no_action() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let sc = scenario("two-culprits.toml");
    // The same socket for both runs: the restart must replace the one kill -9 left behind.
    let sock = dir.path().join("vfguard.sock");
    let mut child = spawn(&[
        "run",
        "--sim",
        &sc,
        "--speed",
        "10",
        "--journal",
        db.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
    ]);
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    // Wait until the agent has acted at least once, then kill it without warning.
    let seen = wait_for(&mut lines, "reset_vf", Duration::from_secs(20));
    assert!(seen.iter().any(|l| l.contains("reset_vf")), "{seen:?}");
    kill(child.id(), 9);
    let _ = child.wait();
    let before = Journal::open(&db).unwrap().replay().unwrap().len();
    assert!(before > 0);
    // Restart on the same journal and run to the end.
    let out = Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args([
            "run",
            "--sim",
            &sc,
            "--speed",
            "0",
            "--journal",
            db.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("API is not served"),
        "the stale socket was not replaced: {stderr}"
    );
    assert!(!sock.exists(), "the socket is removed on a clean stop");
    assert!(
        !stderr.contains("differently from the run that wrote it"),
        "the replay rebuilt another engine than the one killed: {stderr}"
    );
    let j = Journal::open(&db).unwrap();
    let entries = j.replay().unwrap();
    // No kernel record was taken twice, and none after the first run's cursor was skipped.
    let seqs: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Observation(o) => match &o.observation {
                Observation::Fault(f) => f.seq,
                _ => None,
            },
            _ => None,
        })
        .collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "a record was journalled twice");
    // No action id was carried out twice (the journal also refuses a duplicate intent).
    let intents: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Intent { action, .. } => Some(action.id.0),
            _ => None,
        })
        .collect();
    assert_eq!(intents.iter().collect::<BTreeSet<_>>().len(), intents.len());
    assert!(
        j.pending_intents().unwrap().is_empty(),
        "every intent has its outcome"
    );
    // Both culprits were contained, across the crash.
    let contained = entries
        .iter()
        .filter(
            |e| matches!(e, Entry::Decision(d) if matches!(d.decision, Decision::Contained { .. })),
        )
        .count();
    assert!(contained >= 2, "{contained} containments");
}

#[test]
fn sighup_with_a_bad_config_keeps_the_old_one_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let cfg = dir.path().join("vfguard.toml");
    let sock = dir.path().join("api.sock");
    std::fs::write(
        &cfg,
        format!(
            "socket = \"{}\"\n[policy]\nmode = \"dry_run\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let sc = scenario("mdd-flood-i40e.toml");
    let mut child = spawn(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--sim",
        &sc,
        "--speed",
        "1",
        "--journal",
        db.to_str().unwrap(),
    ]);
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let seen = wait_for(
        &mut lines,
        "running on the simulated host",
        Duration::from_secs(20),
    );
    assert!(seen.last().unwrap().contains("running"), "{seen:?}");
    // The API, on the socket the configuration names.
    let status = status_json(&sock);
    assert_eq!(status["mode"], "dry_run", "{status}");
    assert_eq!(status["pfs"], 1, "{status}");
    let (code, body) = http_get(&sock, "/v1/incidents?open=true");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with('['), "{body}");
    let (code, body) = http_get(&sock, "/v1/incidents/abc");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a number"), "{body}");
    let (code, body) = http_get(&sock, "/v1/topology");
    assert_eq!(code, 200);
    assert!(body.contains("\"pfs\""), "{body}");

    std::fs::write(&cfg, "[policy]\nquarantine_vlan = 9999\n").unwrap();
    kill(child.id(), 1);
    let seen = wait_for(&mut lines, "reload", Duration::from_secs(20));
    let last = seen.last().unwrap();
    assert!(
        last.contains("reload refused")
            && last.contains("quarantine_vlan (9999)")
            && last.contains("running configuration stays"),
        "{last}"
    );
    assert_eq!(
        status_json(&sock)["mode"],
        "dry_run",
        "a refused reload changes nothing"
    );
    std::fs::write(&cfg, "[policy]\nmode = \"observe\"\n").unwrap();
    kill(child.id(), 1);
    let seen = wait_for(&mut lines, "reloaded", Duration::from_secs(20));
    assert!(seen.last().unwrap().contains("reloaded"), "{seen:?}");
    // The loop publishes after its next step (100 ms).
    let start = Instant::now();
    while status_json(&sock)["mode"] != "observe" && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_json(&sock)["mode"], "observe");
    kill(child.id(), 15);
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("stopped; the journal is committed")),
        "{rest:?}"
    );
    // No daemon: the client says so, and how to start one.
    let out = Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args(["status", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no vfguard daemon answers on"), "{err}");
}

/// `vfguard status --json` against `sock`.
fn status_json(sock: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args(["status", "--json", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A raw HTTP/1.1 GET on the socket: the status code and the body.
fn http_get(sock: &Path, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}
