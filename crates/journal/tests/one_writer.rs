//! One writer per journal (issue 13 item 4): a second daemon on the same journal is refused at
//! once, naming the journal and the pid of the one holding it, while readers go on reading.
//!
//! The test re-executes its own binary as the first daemon (`writer_child`, selected with
//! `--exact` and given the journal in `VFGUARD_JOURNAL_WRITER`; without it, as in a normal
//! `cargo test` run, `writer_child` returns at once). The child opens the journal for writing,
//! records a batch, prints `locked` (after libtest's `test writer_child ... `, on the same
//! line), and holds the journal until its stdin closes. No sleeps: each side waits for the
//! other's line or end of file (a child that dies early ends the parent's read too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use vfguard_journal::{Batch, Journal, JournalErrorKind};

const CHILD_JOURNAL: &str = "VFGUARD_JOURNAL_WRITER";

/// The first daemon: holds the journal until told to go (its stdin closes).
#[test]
fn writer_child() {
    let Some(path) = std::env::var_os(CHILD_JOURNAL) else {
        return;
    };
    let mut j = Journal::open(Path::new(&path)).unwrap();
    j.record_batch(&Batch {
        cursor: Some(("kmsg".to_owned(), 41)),
        ..Batch::default()
    })
    .unwrap();
    println!("locked");
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    j.close().unwrap();
}

/// The child's standard output, kept open for as long as it runs (libtest still writes to it).
type ChildOut = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `writer_child` holding the journal at `path`; returns once it says it holds it.
fn spawn_writer(path: &std::path::Path) -> (std::process::Child, ChildOut) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["writer_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_JOURNAL, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest prints `test writer_child ... ` before the test's own output, on the same line.
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.ends_with("locked")),
        "the child never took the journal"
    );
    (child, lines)
}

#[test]
fn a_second_daemon_is_refused_at_once_naming_the_holder_and_readers_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (mut child, _out) = spawn_writer(&path);

    // The second writer: refused at once, with the holder's pid.
    let started = std::time::Instant::now();
    let err = Journal::open(&path).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "refused at once, not after a busy timeout: {:?}",
        started.elapsed()
    );
    match err.kind() {
        JournalErrorKind::InUse { pid } => assert_eq!(*pid, Some(child.id())),
        other => panic!("{other:?}"),
    }
    let message = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert_eq!(
        message,
        format!(
            "journal {}: opening: in use by another vfguard (pid {}); stop it first",
            path.display(),
            child.id()
        )
    );

    // A reader is not blocked by the writer lock.
    let reader = Journal::open_read_only(&path).unwrap();
    assert_eq!(reader.cursor("kmsg").unwrap(), Some(41));
    drop(reader);

    // Once the first daemon is gone, the journal is free (it committed everything it said).
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.cursor("kmsg").unwrap(), Some(41));
}

#[test]
fn a_killed_daemon_leaves_no_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (mut child, _out) = spawn_writer(&path);
    assert!(Journal::open(&path).is_err());
    child.kill().unwrap(); // SIGKILL: the kernel releases the lock with the process
    child.wait().unwrap();
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.cursor("kmsg").unwrap(), Some(41));
}
