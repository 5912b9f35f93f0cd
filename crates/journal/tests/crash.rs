//! Crash test: a writer killed with SIGKILL loses nothing it reported committed.
//!
//! The test re-executes its own binary as a child (`crash_child`, selected with `--exact` and
//! given its directory in `VFGUARD_JOURNAL_CRASH_DIR`; without that variable, as in a normal
//! `cargo test` run, `crash_child` returns at once). The child opens the journal, resumes after
//! its cursor, and loops: one batch per step, an intent every third step, an outcome for every
//! other intent, printing a line to stdout after each commit. The parent reads some lines,
//! kills the child mid-stride with SIGKILL, reads what the child printed before dying, and
//! reopens the journal: every batch, intent and outcome the child reported is there; every
//! batch is complete and the batches are contiguous; the cursor is the last batch's; no intent
//! appears twice; `pending_intents` lists exactly the intents without an outcome. Eight rounds,
//! each killing a little later after a line (so the kill lands anywhere in a step), and the
//! child also resumes from journals that were themselves killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/entries.rs"]
mod entries;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vfguard_journal::{Batch, Entry, Journal};
use vfguard_model::{Action, ActionOutcome, IncidentId, Observation};

const CHILD_DIR: &str = "VFGUARD_JOURNAL_CRASH_DIR";
const SIGKILL: i32 = 9;

/// Step `i`'s batch: a fault and a tick, the incident it opens and two decisions about it.
fn batch(i: u64) -> Batch {
    let incident = IncidentId(i);
    Batch {
        at: 1_000 + i,
        observations: vec![
            (
                Observation::Fault(common::fault((i % 8) as u8, i)),
                Some(incident),
            ),
            (Observation::Tick, None),
        ],
        decisions: common::decisions(incident)[..3].to_vec(),
        cursor: Some(("kmsg".to_owned(), i)),
    }
}

/// Step `i`'s action, every third step.
fn intent(i: u64) -> Option<Action> {
    i.is_multiple_of(3)
        .then(|| common::action(i, IncidentId(i), 1_000 + i))
}

/// Step `i`'s outcome, for every other action.
fn outcome(i: u64) -> Option<ActionOutcome> {
    let action = intent(i)?;
    i.is_multiple_of(2)
        .then(|| common::outcome(&action, 1_001 + i, None))
}

/// The child: writes until killed (or until the parent stops reading: the write fails).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut j = Journal::open(&Path::new(&dir).join("journal.db")).unwrap();
    let start = j.cursor("kmsg").unwrap().map_or(0, |c| c + 1);
    let mut out = std::io::stdout().lock();
    for i in start..start + 100_000 {
        j.record_batch(&batch(i)).unwrap();
        writeln!(out, "batch {i}").unwrap();
        out.flush().unwrap();
        if let Some(a) = intent(i) {
            j.record_intent(&a).unwrap();
            writeln!(out, "intent {i}").unwrap();
            out.flush().unwrap();
        }
        if let Some(o) = outcome(i) {
            j.record_outcome(&o).unwrap();
            writeln!(out, "outcome {i}").unwrap();
            out.flush().unwrap();
        }
    }
}

/// What the children reported committed.
#[derive(Debug, Default)]
struct Reported {
    batches: BTreeSet<u64>,
    intents: BTreeSet<u64>,
    outcomes: BTreeSet<u64>,
}

impl Reported {
    /// Takes one line of the child's stdout (libtest's own lines are ignored); true for a batch.
    fn take(&mut self, line: &str) -> bool {
        let Some((what, n)) = line.split_once(' ') else {
            return false;
        };
        let Ok(n) = n.parse::<u64>() else {
            return false;
        };
        match what {
            "batch" => self.batches.insert(n),
            "intent" => self.intents.insert(n),
            "outcome" => self.outcomes.insert(n),
            _ => return false,
        };
        what == "batch"
    }
}

/// Runs a child until it has reported `batches` more batches, lets it run `jitter` longer,
/// then kills it.
fn run_child_and_kill(dir: &Path, batches: usize, jitter: Duration, reported: &mut Reported) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    for line in lines.by_ref() {
        if reported.take(&line.unwrap()) {
            seen += 1;
            if seen == batches {
                break;
            }
        }
    }
    // Not a wait for a condition: where the kill lands. Killed right after a line, the child
    // is always at the start of its next transaction; a few hundred microseconds later it is
    // anywhere in it, or between the transactions of one step.
    std::thread::sleep(jitter);
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "the child ended on its own ({status}) after {seen} batches"
    );
    // What it printed before it died was committed too.
    for line in lines {
        reported.take(&line.unwrap());
    }
}

fn check(path: &Path, reported: &Reported) {
    let j = Journal::open(path).unwrap();
    let entries = j.replay().unwrap();
    assert!(
        entries.windows(2).all(|w| w[0].seq() < w[1].seq()),
        "commit order"
    );
    let mut batches = Vec::new(); // step numbers, in commit order
    let mut intents = Vec::new();
    let mut outcomes = BTreeSet::new();
    let mut rest = entries.as_slice();
    while let Some(first) = rest.first() {
        match first {
            Entry::Observation(o) => {
                let i = o.at - 1_000;
                let b = batch(i);
                let n = b.observations.len() + b.decisions.len();
                assert!(
                    rest.len() >= n,
                    "batch {i} is cut short: {} of {n} records",
                    rest.len()
                );
                let (got, tail) = rest.split_at(n);
                let want = entries::of_batch(&b, o.seq);
                assert_eq!(got, want.as_slice(), "batch {i} is not complete");
                batches.push(i);
                rest = tail;
            }
            Entry::Intent { action, .. } => {
                assert_eq!(Some(action), intent(action.id.0).as_ref());
                intents.push(action.id.0);
                rest = &rest[1..];
            }
            Entry::Outcome { outcome: o, .. } => {
                assert_eq!(Some(o), outcome(o.id.0).as_ref());
                assert!(outcomes.insert(o.id.0), "outcome {} twice", o.id.0);
                rest = &rest[1..];
            }
            Entry::Decision(d) => panic!("a decision outside its batch: {d:?}"),
        }
    }
    let expected: Vec<u64> = (0..batches.len() as u64).collect();
    assert_eq!(batches, expected, "batches are contiguous from 0");
    for i in &reported.batches {
        assert!(batches.contains(i), "reported batch {i} was lost");
    }
    let unique: BTreeSet<u64> = intents.iter().copied().collect();
    assert_eq!(
        unique.len(),
        intents.len(),
        "an intent appears twice: {intents:?}"
    );
    assert!(
        reported.intents.is_subset(&unique),
        "a reported intent was lost"
    );
    assert!(
        reported.outcomes.is_subset(&outcomes),
        "a reported outcome was lost"
    );
    assert!(outcomes.is_subset(&unique), "an outcome without its intent");
    assert_eq!(j.cursor("kmsg").unwrap(), batches.last().copied());
    let pending: Vec<u64> = j
        .pending_intents()
        .unwrap()
        .iter()
        .map(|a| a.id.0)
        .collect();
    let expected: Vec<u64> = intents
        .iter()
        .copied()
        .filter(|i| !outcomes.contains(i))
        .collect();
    assert_eq!(pending, expected);
    let incidents = j.incidents(&Default::default()).unwrap();
    assert_eq!(incidents.len(), batches.len(), "one incident per batch");
}

#[test]
fn committed_records_survive_kill_9() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return; // in a child: only crash_child runs
    }
    let dir = tempfile::tempdir().unwrap();
    let mut reported = Reported::default();
    for round in 0..8 {
        let jitter = Duration::from_micros(250 * round as u64);
        run_child_and_kill(dir.path(), 10 + 5 * round, jitter, &mut reported);
        check(&dir.path().join("journal.db"), &reported);
    }
    assert!(reported.batches.len() >= (0..8).map(|r| 10 + 5 * r).sum());
    assert!(!reported.outcomes.is_empty());
}
