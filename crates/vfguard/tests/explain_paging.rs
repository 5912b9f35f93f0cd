//! Issue 13, item 2: `vfguard explain` shows the ends of an incident's lists with counts of what
//! lies between (`--first`, `--last`), and `--all` streams every entry from a journal file; the
//! two agree. A reader that can only see a snapshot of the journal is told what it misses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{text, vfguard};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A journal of `pod-exhausted-igb`: its incident 1 holds 162 observations, 333 decisions and
/// 8 actions.
fn journal(dir: &Path) -> PathBuf {
    let db = dir.join("j.db");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios/pod-exhausted-igb.toml");
    let out = vfguard(&[
        "simulate",
        "--journal",
        db.to_str().unwrap(),
        scenario.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    db
}

fn explain(db: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["explain", "--journal", db.to_str().unwrap(), "1"];
    args.extend_from_slice(extra);
    vfguard(&args)
}

fn json(db: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = explain(db, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn len(v: &Value, list: &str) -> u64 {
    v[list].as_array().map_or(0, |a| a.len() as u64)
}

#[test]
fn explain_pages_the_evidence_and_all_streams_the_same_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = journal(dir.path());

    // The whole incident, as one page wide enough, and as `--all` streams it.
    let whole = json(&db, &["--first", "10000", "--last", "0"]);
    let all = json(&db, &["--all"]);
    assert!(
        whole["observations_total"].as_u64().unwrap() > 100,
        "{whole}"
    );
    for list in ["observations", "decisions", "actions"] {
        assert_eq!(all[list], whole[list], "{list}");
        assert_eq!(all[format!("{list}_total")], whole[format!("{list}_total")]);
        assert_eq!(len(&all, list), all[format!("{list}_total")]);
        assert_eq!(all[format!("{list}_omitted")], 0);
    }
    assert_eq!(all["page"], Value::Null);
    assert_eq!(
        whole["page"],
        serde_json::json!({"first": 10000, "last": 0})
    );
    for field in ["id", "function", "pf", "state", "owner", "opened_ms"] {
        assert_eq!(all[field], whole[field], "{field}");
    }

    // A page of 5 + 3: the ends of each list, in order, and the count of the rest.
    let page = json(&db, &["--first", "5", "--last", "3"]);
    for list in ["observations", "decisions", "actions"] {
        let total = whole[format!("{list}_total")].as_u64().unwrap();
        let rows = whole[list].as_array().unwrap();
        let shown = page[list].as_array().unwrap();
        let n = rows.len();
        let want: Vec<&Value> = if n <= 8 {
            rows.iter().collect()
        } else {
            rows[..5].iter().chain(&rows[n - 3..]).collect()
        };
        assert_eq!(shown.iter().collect::<Vec<_>>(), want, "{list}");
        assert_eq!(page[format!("{list}_total")], total, "{list}");
        assert_eq!(
            page[format!("{list}_omitted")],
            total - shown.len() as u64,
            "{list}"
        );
    }
    assert_eq!(page["observations_dropped"], 0);

    // As text: the gap says how many, and how to see them.
    let out = explain(&db, &["--first", "5", "--last", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let paged = String::from_utf8(out.stdout).unwrap();
    let omitted = page["observations_omitted"].as_u64().unwrap();
    assert!(
        paged.contains(&format!("  ... {omitted} more observations not shown")),
        "{paged}"
    );
    assert!(paged.contains("more decisions not shown"), "{paged}");
    // Every action decided in the decisions shown has its outcome found.
    assert!(!paged.contains("no outcome"), "{paged}");

    // `--all` as text is the whole page, line for line: every action's outcome found while
    // streaming.
    let all_text = explain(&db, &["--all"]);
    let whole_text = explain(&db, &["--first", "10000", "--last", "0"]);
    assert_eq!(all_text.status.code(), Some(0), "{}", text(&all_text));
    let all_text = String::from_utf8(all_text.stdout).unwrap();
    assert_eq!(all_text, String::from_utf8(whole_text.stdout).unwrap());
    assert!(all_text.contains("by rule") && !all_text.contains("no outcome"));
    assert!(!all_text.contains("not shown"));
}

#[test]
fn explain_refuses_what_it_cannot_do_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // `--all` streams from a file: through the daemon it is refused before any connection.
    let out = vfguard(&["explain", "1", "--all", "--socket", "/nonexistent.sock"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("add --journal FILE"), "{}", text(&out));
    // A page past the limit, and a page with --all.
    let db = dir.path().join("none.db");
    let db = db.to_str().unwrap();
    for args in [
        vec!["explain", "1", "--first", "10001", "--journal", db],
        vec!["explain", "1", "--all", "--last", "3", "--journal", db],
    ] {
        let out = vfguard(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    let out = vfguard(&["explain", "1", "--first", "10001"]);
    assert!(text(&out).contains("0..=10000"), "{}", text(&out));
}

/// A reader that may not open the journal's `-shm` file reads a snapshot of the main file: what
/// is still in the `-wal` (after a crash) is not shown, and explain says so.
#[test]
fn a_snapshot_reader_is_warned_of_what_the_wal_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = journal(dir.path());
    // A transaction left in the WAL, as after a crash.
    let mut j = vfguard_journal::Journal::open(&db).unwrap();
    j.record_batch(&vfguard_journal::Batch {
        cursor: Some(("kmsg".to_owned(), 1_000_000)),
        ..vfguard_journal::Batch::default()
    })
    .unwrap();
    j.close_without_checkpoint().unwrap();
    let shm = dir.path().join("j.db-shm");
    let _ = std::fs::remove_file(&shm);
    std::os::unix::fs::symlink(dir.path().join("nowhere/shm"), &shm).unwrap();

    let out = explain(&db, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("j.db-wal") && err.contains("not shown"),
        "{err}"
    );
    // The snapshot still holds the incident.
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("incident 1 on"));
    // With the -shm file openable again, nothing to warn about.
    std::fs::remove_file(&shm).unwrap();
    let out = explain(&db, &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}
