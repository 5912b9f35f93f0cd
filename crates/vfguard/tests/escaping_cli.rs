//! Issue 13, item 3: `scan`, `explain`, `incidents`, `inventory` and `simulate` printed kernel
//! text and owner names raw: an ESC sequence in a kernel line recoloured (or cleared) the
//! operator's terminal, a U+202E reordered what it showed, a newline in a VM's name forged a
//! line of the report. Their text output now escapes control characters and bidirectional
//! controls (`\x1b`, `\u{202e}`, `\n`: `vfguard_model::printable`); `--json` is left to the
//! JSON encoder, which escapes control characters itself, and reads back exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use vfguard_model::printable::is_escaped;

/// Runs `vfguard ARGS` with `stdin`; fails the test unless it exits with one of `codes`.
fn vfguard(args: &[&str], stdin: &[u8], codes: &[i32]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        codes.contains(&out.status.code().unwrap_or(-1)),
        "vfguard {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Standard output and error, checked clean: no control character but line feeds, no bidi
/// control.
fn clean(out: &Output) -> String {
    let mut all = String::new();
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8(stream.clone()).unwrap();
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| c != '\n' && is_escaped(c))
            .collect();
        assert!(bad.is_empty(), "raw {bad:?} in:\n{text}");
        all.push_str(&text);
    }
    all
}

/// Fault lines whose free text (an error name, a netdev) carries an ESC sequence and a
/// right-to-left override: raw in a plain line, and as the kernel escapes them in a record.
const PLAIN: &str =
    "iavf 0000:ec:01.1: Failed to add MAC filter, error \u{1b}[31mIAVF\u{202e}LIVE\n\
    NETDEV WATCHDOG: enp59s0f0\u{1b}[2J\u{202e}1f0 (i40e): transmit queue 2 timed out 5316 ms\n";
const RECORD: &str =
    "3,1001,5000000,-;iavf 0000:ec:01.1: Failed to add MAC filter, error \\x1b[31mIAVF\\xe2\\x80\\xaeLIVE\n";

#[test]
fn scan_tables_escape_kernel_text_and_json_keeps_it_exact() {
    let out = vfguard(&["scan"], PLAIN.as_bytes(), &[3]);
    let text = clean(&out);
    assert!(
        text.contains("Failed to add MAC filter, error \\x1b[31mIAVF\\u{202e}LIVE"),
        "{text}"
    );
    assert!(
        text.contains("NETDEV WATCHDOG: enp59s0f0\\x1b[2J\\u{202e}1f0 (i40e)"),
        "{text}"
    );
    // The summary names the netdev from the same text.
    assert!(
        text.contains("netdev enp59s0f0\\x1b[2J\\u{202e}1f0"),
        "{text}"
    );

    let out = vfguard(&["scan", "--format", "kmsg"], RECORD.as_bytes(), &[1]);
    let text = clean(&out);
    assert!(text.contains("error \\x1b[31mIAVF\\u{202e}LIVE"), "{text}");

    // JSON: escaped by the encoder, the message read back as the kernel wrote it.
    let out = vfguard(&["scan", "--json"], PLAIN.as_bytes(), &[3]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.chars().any(|c| c < ' ' && c != '\n'), "{text:?}");
    let messages: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        messages,
        [
            "Failed to add MAC filter, error \u{1b}[31mIAVF\u{202e}LIVE",
            "NETDEV WATCHDOG: enp59s0f0\u{1b}[2J\u{202e}1f0 (i40e): transmit queue 2 timed out 5316 ms",
        ]
    );
}

/// A VM whose name holds an ESC sequence, a right-to-left override and a newline that would
/// forge a report line; it floods MDD, so incidents, explain and the report all name it.
const EVIL: &str = "web\u{1b}[31m\u{202e}7\nincident 9: forged";

fn scenario(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "[scenario]\nname = \"escaping\"\nseed = 3\nduration_ms = 12000\n\n\
         [[pf]]\nbdf = \"0000:3b:00.0\"\ndriver = \"i40e\"\nnetdev = \"ens1f0\"\nnumvfs = 4\n\n\
         [[vm]]\nname = {evil}\nlibvirt = false\nfunctions = [\"0000:3b:00.0/vf2\"]\n\n\
         [[behaviour]]\nowner = {evil}\nkind = \"mdd_flood\"\nstart_ms = 2000\nevery_ms = 500\n\n\
         [expect]\nculprits = [{evil}]\n",
        evil = "\"web\\u001B[31m\\u202E7\\nincident 9: forged\"",
    );
    let path = dir.join("escaping.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn owner_names_are_escaped_in_simulate_incidents_explain_and_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let root = dir.path().join("root");
    let sc = scenario(dir.path());
    let escaped = "web\\x1b[31m\\u{202e}7\\nincident 9: forged";

    let out = vfguard(
        &[
            "simulate",
            "--timeline",
            "--journal",
            db.to_str().unwrap(),
            "--keep-root",
            root.to_str().unwrap(),
            sc.to_str().unwrap(),
        ],
        b"",
        &[0],
    );
    let text = clean(&out);
    assert!(
        text.contains(&format!("owner vm:{escaped}:")),
        "the report: {text}"
    );
    assert!(
        text.contains(&format!("opened on 0000:3c:00.2 (vm:{escaped})")),
        "the timeline: {text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("incident 9")), "{text}");

    let out = vfguard(&["incidents", "--journal", db.to_str().unwrap()], b"", &[0]);
    let text = clean(&out);
    assert!(text.contains(&format!("vm:{escaped}")), "{text}");

    let out = vfguard(
        &["explain", "--journal", db.to_str().unwrap(), "1"],
        b"",
        &[0],
    );
    let text = clean(&out);
    assert!(
        text.starts_with(&format!(
            "incident 1 on 0000:3c:00.2 (PF 0000:3b:00.0): owner vm:{escaped}, "
        )),
        "{text}"
    );

    // --json: the name read back exactly.
    let out = vfguard(
        &["explain", "--json", "--journal", db.to_str().unwrap(), "1"],
        b"",
        &[0],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["owner"]["name"], EVIL);

    let out = vfguard(&["inventory", "--root", root.to_str().unwrap()], b"", &[0]);
    let text = clean(&out);
    assert!(text.contains(&format!("owner vm:{escaped}")), "{text}");
    let out = vfguard(
        &["inventory", "--json", "--root", root.to_str().unwrap()],
        b"",
        &[0],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let owners: Vec<&str> = v["pfs"][0]["vfs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|vf| vf["owner"]["name"].as_str())
        .collect();
    assert!(owners.contains(&EVIL), "{owners:?}");
}

/// The daemon's own log (`run --log-format text`): the timeline naming the VM is one line per
/// decision, escaped; in JSON the name reads back exactly.
#[test]
fn the_daemons_text_log_escapes_owner_names_and_its_json_log_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path());
    let run = |format: &str| {
        let db = dir.path().join(format!("{format}.db"));
        let sock = dir.path().join(format!("{format}.sock"));
        vfguard(
            &[
                "run",
                "--sim",
                sc.to_str().unwrap(),
                "--speed",
                "0",
                "--journal",
                db.to_str().unwrap(),
                "--socket",
                sock.to_str().unwrap(),
                "--log-format",
                format,
            ],
            b"",
            &[0],
        )
    };
    let out = run("text");
    let log = clean(&out);
    let escaped = "web\\x1b[31m\\u{202e}7\\nincident 9: forged";
    assert!(
        log.lines()
            .any(|l| l.ends_with(&format!("incident 1 opened on 0000:3c:00.2 (vm:{escaped})"))),
        "{log}"
    );
    // Every line is one of the log's (a timestamp first): none was forged by the name's line
    // feed.
    assert!(log.lines().all(|l| l.starts_with("20")), "{log}");

    let out = run("json");
    let messages: Vec<String> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.ends_with(&format!("incident 1 opened on 0000:3c:00.2 (vm:{EVIL})"))),
        "{messages:?}"
    );
}
