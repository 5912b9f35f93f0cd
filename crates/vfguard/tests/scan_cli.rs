//! `vfguard scan` end to end: the binary, its exit codes, its JSON fields, and bad input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn vfguard(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kmsg/sample/host.log")
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const FIELDS: &[&str] = &[
    "line",
    "end_line",
    "kind",
    "severity",
    "driver",
    "device",
    "netdev",
    "pf",
    "vf",
    "vf_abs",
    "function",
    "queue",
    "count",
    "mac",
    "catalog_id",
    "message",
    "trusted",
];

#[test]
fn json_lines_carry_every_scripted_field_and_faults_exit_1() {
    let out = vfguard(&["scan", "--json", sample().to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out);
    assert!(events.len() >= 10);
    for ev in &events {
        for f in FIELDS {
            assert!(ev.get(f).is_some(), "field {f} missing in {ev}");
        }
    }
    let vf_disabled = events.iter().find(|e| e["kind"] == "vf_disabled").unwrap();
    assert_eq!(vf_disabled["pf"], "0000:3b:00.0");
    assert_eq!(vf_disabled["vf"], 2);
    assert_eq!(vf_disabled["line"], 16);
    // The AER error and its detail lines are one event.
    let aer = events
        .iter()
        .find(|e| e["kind"] == "aer_correctable")
        .unwrap();
    assert_eq!(
        (aer["line"].as_u64(), aer["end_line"].as_u64()),
        (Some(21), Some(24))
    );
    assert_eq!(aer["function"], "0000:3b:02.5");
    // igb's two-line message is joined.
    let igb = events
        .iter()
        .find(|e| e["kind"] == "mac_override" && e["driver"] == "igb")
        .unwrap();
    assert_eq!(
        igb["end_line"].as_u64().unwrap(),
        igb["line"].as_u64().unwrap() + 1
    );
    // The line another program logged is reported, but as untrusted.
    let forged = events.iter().find(|e| e["vf"] == 5).unwrap();
    assert_eq!(forged["trusted"], false);
}

#[test]
fn the_table_names_the_culprit_first() {
    let out = vfguard(&["scan", sample().to_str().unwrap()], None);
    let text = String::from_utf8(out.stdout).unwrap();
    let verdict = text.lines().last().unwrap();
    assert!(
        verdict.starts_with("Look first at PF 0000:3b:00.0 VF 2:"),
        "{verdict}"
    );
    assert!(text.contains("UNTRUSTED:mdd_tx"));
}

#[test]
fn no_fault_exits_0_and_stdin_is_read() {
    let out = vfguard(
        &["scan"],
        Some(b"[    1.0] EXT4-fs (dm-0): mounted filesystem\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("No faults found."));
}

#[test]
fn an_unopenable_file_exits_2_and_names_it() {
    let out = vfguard(&["scan", "/nonexistent/kern.log"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/kern.log"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let out = vfguard(&["scan", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("is a directory"));
}

#[test]
fn bad_input_is_skipped_and_counted_never_a_panic() {
    let mut junk: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk.extend_from_slice(b"\nigb 0000:02:00.0: Spoof event(s) detected on VF \xff\xfe\n");
    junk.extend_from_slice(&vec![b'A'; 3 << 20]); // a 3 MiB line
    junk.extend_from_slice(b"\n6,12,345;truncated record with no flags\n6,13");
    junk.extend_from_slice(b"\nigb 0000:02:00.0: Spoof event(s) detected on VF 3\n");
    let out = vfguard(&["scan", "--json"], Some(&junk));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The one fault is a bare line: counted, but unverified (exit 3).
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let events = json_lines(&out);
    assert_eq!(events.len(), 1, "only the one good line is an event");
    assert_eq!(events[0]["vf"], 3);
    let table = vfguard(&["scan"], Some(&junk));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("unreadable lines skipped"), "{text}");
}

/// Issue 13: plain dmesg and bare lines were counted as faults without a word, and `dmesg -r`
/// (whose priority tells the kernel's lines apart) was not recognised.
#[test]
fn unverified_input_is_listed_apart_and_the_exit_status_says_so() {
    let raw = "<3>[   12.000000] ixgbe 0000:08:00.0: Malicious event on VF 2 tx:4 rx:0
<12>[   13.000000] ixgbe 0000:08:00.0: Malicious event on VF 1 tx:4 rx:0
";
    let out = vfguard(&["scan"], Some(raw.as_bytes()));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let form = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .map(|l| l.trim_start().trim_start_matches(name).trim().to_owned())
    };
    assert_eq!(
        form(&text, "dmesg_raw").as_deref(),
        Some("1 kernel_tag, 1 user_facility"),
        "{text}"
    );
    assert!(!text.contains("Unverified:"), "{text}");
    let plain = "[   12.000000] ixgbe 0000:08:00.0: Malicious event on VF 2 tx:4 rx:0
";
    let out = vfguard(&["scan"], Some(plain.as_bytes()));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(
        form(&text, "dmesg").as_deref(),
        Some("1 unverified"),
        "{text}"
    );
    assert!(text.contains("Unverified: 1 of the faults"), "{text}");
    let json = vfguard(&["scan", "--json"], Some(plain.as_bytes()));
    assert_eq!(json.status.code(), Some(3));
    assert_eq!(json_lines(&json)[0]["trust"], "unverified");
}

#[test]
fn kmsg_records_join_escaped_lines_and_refuse_userspace_writes() {
    let log = "\
4,1001,5000000,-;igb 0000:02:00.0: VF 0 attempted to override administratively set MAC address\\x0aReload the VF driver to resume operations
 SUBSYSTEM=pci
 DEVICE=+pci:0000:02:00.0
12,1002,5000100,-;igb 0000:02:00.0: Spoof event(s) detected on VF 3
";
    let out = vfguard(
        &["scan", "--json", "--format", "kmsg"],
        Some(log.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(1));
    let events = json_lines(&out);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "mac_override");
    assert_eq!(
        (events[0]["line"].as_u64(), events[0]["end_line"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(events[0]["seq"], 1001);
    assert_eq!(events[0]["trusted"], true);
    assert_eq!(events[1]["trusted"], false);
    assert_eq!(events[1]["trust"], "user_facility");
}

#[test]
fn several_files_are_named_in_the_table() {
    let s = sample();
    let p = s.to_str().unwrap();
    let out = vfguard(&["scan", p, p], None);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with(&format!("{p}:16"))),
        "{text}"
    );
}

#[test]
fn catalog_lists_entries_and_anchors() {
    let out = vfguard(&["catalog", "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let entries = json_lines(&out);
    assert!(entries.len() > 100);
    assert!(entries.iter().any(|e| e["id"] == "i40e.mdd.vf_tx_events"));
    let anchors = vfguard(&["catalog", "--anchors"], None);
    assert!(String::from_utf8(anchors.stdout)
        .unwrap()
        .lines()
        .any(|l| l.contains("Spoofed packets detected")));
}
