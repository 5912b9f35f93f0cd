//! Readers on a read-only journal (issue 13 item 4): `Journal::open_read_only` must read a
//! journal whose directory the reader may not write. SQLite's read-only connection to a WAL
//! journal needs the `-shm` file beside it; with the daemon stopped (a clean close removes it)
//! and no right to create it, SQLite refuses ("attempt to write a readonly database",
//! `SQLITE_READONLY_DIRECTORY`) and the reader falls back to an immutable snapshot.
//!
//! Two ways to get there:
//!
//! - The real one: a directory of mode 0555. Permissions do not bind root, so when the tests run
//!   as root the reader is a copy of this test binary run as `nobody` (uid 65534; `reader_child`,
//!   selected with `--exact`, given the journal in `VFGUARD_JOURNAL_READER`; without it, as in a
//!   normal run, it returns at once). Run as another user, the test reads in-process. Either way
//!   the same assertions run.
//! - A simulation for any user: the `-shm` path replaced by a dangling symlink (SQLite opens it
//!   with `O_NOFOLLOW`), which fails the read-only open the same way ("unable to open database
//!   file") and shows what the snapshot does not see: transactions still in the `-wal` file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use vfguard_journal::{Batch, IncidentFilter, Journal};
use vfguard_model::{Decision, IncidentId};

const CHILD_JOURNAL: &str = "VFGUARD_JOURNAL_READER";
/// `nobody`.
const NOBODY: u32 = 65534;

/// A journal with one incident and the kmsg cursor at `cursor`, closed cleanly (no `-wal`, no
/// `-shm` left).
fn journal(dir: &Path, cursor: u64) -> PathBuf {
    let path = dir.join("journal.db");
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&Batch {
        at: 5,
        decisions: vec![Decision::IncidentOpened {
            incident: IncidentId(1),
            function: "0000:3b:02.1".parse().unwrap(),
            owner: None,
        }],
        cursor: Some(("kmsg".to_owned(), cursor)),
        ..Batch::default()
    })
    .unwrap();
    j.close().unwrap();
    path
}

/// What a reader sees: `access incidents cursor`.
fn read(path: &Path) -> String {
    match Journal::open_read_only(path) {
        Ok(j) => format!(
            "{:?} {} {:?}",
            j.access(),
            j.incidents(&IncidentFilter::default()).unwrap().len(),
            j.cursor("kmsg").unwrap()
        ),
        Err(e) => format!("error: {e}: {:?}", e.kind()),
    }
}

/// The reader run as `nobody` by a root test.
#[test]
fn reader_child() {
    let Some(path) = std::env::var_os(CHILD_JOURNAL) else {
        return;
    };
    println!("read: {}", read(Path::new(&path)));
}

/// `read(path)` as a user that may not write `path`'s directory.
fn read_as_unprivileged(scratch: &Path, path: &Path) -> String {
    // Files this process creates are its effective uid's.
    if std::fs::metadata(path).unwrap().uid() == 0 {
        // A copy of this binary where `nobody` may run it (the build directory may be closed).
        let exe = scratch.join("reader");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&exe)
            .args(["reader_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_JOURNAL, path)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            // After libtest's `test reader_child ... `, on the same line.
            .find_map(|l| l.split_once("read: ").map(|(_, r)| r))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                panic!(
                    "the reader said nothing: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    } else {
        read(path)
    }
}

#[test]
fn a_reader_reads_a_journal_in_a_directory_it_may_not_write() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = scratch.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let path = journal(&dir, 7);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();

    let seen = read_as_unprivileged(scratch.path(), &path);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(seen, "Immutable { wal_bytes: 0 } 1 Some(7)");
    assert!(
        !dir.join("journal.db-shm").exists(),
        "the reader created nothing"
    );
}

#[test]
fn a_reader_that_cannot_open_the_shm_file_reads_a_snapshot_without_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(dir.path(), 7);
    // A transaction left in the WAL, as after a crash: not yet in the main file.
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&Batch {
        cursor: Some(("kmsg".to_owned(), 8)),
        ..Batch::default()
    })
    .unwrap();
    j.close_without_checkpoint().unwrap();
    let shm = dir.path().join("journal.db-shm");
    let wal = dir.path().join("journal.db-wal");
    let wal_bytes = std::fs::metadata(&wal).unwrap().len();
    assert!(wal_bytes > 0);
    // Readers that may open the -shm file see the WAL's transaction...
    assert_eq!(read(&path), "ReadOnly 1 Some(8)");
    // ... a reader that may not reads the main file only, and is told so.
    let _ = std::fs::remove_file(&shm);
    std::os::unix::fs::symlink(dir.path().join("nowhere/shm"), &shm).unwrap();
    assert_eq!(
        read(&path),
        format!("Immutable {{ wal_bytes: {wal_bytes} }} 1 Some(7)")
    );
    // Once the daemon opens it again, the WAL is folded in and nothing was lost.
    std::fs::remove_file(&shm).unwrap();
    Journal::open(&path).unwrap().close().unwrap();
    assert_eq!(read(&path), "ReadOnly 1 Some(8)");
}

#[test]
fn a_missing_journal_is_still_an_error_not_an_empty_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let seen = read(&missing);
    assert!(seen.starts_with("error: journal "), "{seen}");
    assert!(!missing.exists());
}
