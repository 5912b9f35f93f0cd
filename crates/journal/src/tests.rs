//! Unit tests of the journal's API, one group per method, and of its schema migrations.
//!
//! They run against real SQLite files (in a temporary directory) wherever durability or the
//! file itself matters, and in memory otherwise.

use std::collections::HashMap;

use rusqlite::Connection;
use vfguard_model::{ActionKind, Bdf, Cause, Decision, IncidentId, Observation, Owner, VfState};

use super::*;
use crate::schema::{Migration, MIGRATIONS};
use crate::testdata::{action, decisions, fault, observations, outcome, pf, vf, vm};

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    (dir, path)
}

fn batch(
    at: Millis,
    observations: Vec<(Observation, Option<IncidentId>)>,
    decisions: Vec<Decision>,
) -> Batch {
    Batch {
        at,
        observations,
        decisions,
        cursor: None,
    }
}

fn all() -> IncidentFilter {
    IncidentFilter::default()
}

fn state(j: &Journal, id: u64) -> IncidentState {
    j.incident(IncidentId(id)).unwrap().unwrap().incident.state
}

/// The `StateChanged` the engine emits when `cause` moves `incident` on from `from` (a move
/// the state machine has: the journal is fed only what the engine could decide).
fn moved(incident: IncidentId, from: IncidentState, cause: Cause) -> Decision {
    let to = from
        .after(cause)
        .unwrap_or_else(|| panic!("no move from {from} by {cause}"));
    Decision::StateChanged {
        incident,
        from,
        to,
        cause,
    }
}

/// `ds` with the `StateChanged` decisions the engine emits alongside, each right before the
/// decision it goes with: an action beyond notify and restore escalates, and `Contained`,
/// `Restored` and `Closed` follow their moves (where the state machine has one).
fn as_the_engine_emits(ds: Vec<Decision>) -> Vec<Decision> {
    with_state_changes(&mut HashMap::new(), ds)
}

/// [`as_the_engine_emits`] for one batch of several, `states` carrying where each incident
/// stands from one batch to the next.
fn with_state_changes(
    states: &mut HashMap<IncidentId, IncidentState>,
    ds: Vec<Decision>,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for d in ds {
        let cause = match &d {
            Decision::IncidentOpened { incident, .. } => {
                states.insert(*incident, IncidentState::Open);
                None
            }
            Decision::Act(a) if matches!(a.kind, ActionKind::Notify | ActionKind::Restore(_)) => {
                None
            }
            Decision::Act(a) => Some((a.incident, Cause::Escalated)),
            Decision::Contained { incident, .. } => Some((*incident, Cause::Contained)),
            Decision::Restored { incident } => Some((*incident, Cause::Restored)),
            Decision::Closed { incident, .. } => Some((*incident, Cause::Closed)),
            _ => None,
        };
        if let Some((id, cause)) = cause {
            if let Some(from) = states.get(&id).copied() {
                if let Some(to) = from.after(cause) {
                    out.push(moved(id, from, cause));
                    states.insert(id, to);
                }
            }
        }
        out.push(d);
    }
    out
}

// --- open, open_in_memory, schema_version ---

#[test]
fn open_creates_the_latest_schema_in_wal_mode_with_full_sync() {
    let (_dir, path) = temp();
    let j = Journal::open(&path).unwrap();
    assert_eq!(
        j.schema_version().unwrap(),
        Journal::latest_schema_version()
    );
    assert_eq!(Journal::latest_schema_version(), 4);
    let mode: String = j
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = j
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    assert_eq!(
        schema::tables(&j.conn).unwrap(),
        [
            "actions",
            "bodies",
            "counters",
            "cursors",
            "decision_rows",
            "incidents",
            "observation_rows",
            "schema_migrations"
        ]
    );
    assert_eq!(j.path(), path);
}

#[test]
fn open_in_memory_has_the_latest_schema() {
    let j = Journal::open_in_memory().unwrap();
    assert_eq!(
        j.schema_version().unwrap(),
        Journal::latest_schema_version()
    );
    assert_eq!(j.path(), Path::new(":memory:"));
    assert!(j.replay().unwrap().is_empty());
}

#[test]
fn reopening_keeps_data_and_applies_no_migration_twice() {
    let (_dir, path) = temp();
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&batch(1, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    j.close().unwrap();
    let j = Journal::open(&path).unwrap();
    let n: i64 = j
        .conn
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(j.replay().unwrap().len(), 1);
}

#[test]
fn a_second_writer_in_the_same_process_is_refused_at_once_and_a_reader_is_not() {
    let (_dir, path) = temp();
    let mut w = Journal::open(&path).unwrap();
    assert_eq!(w.access(), Access::Writer);
    w.record_batch(&Batch {
        cursor: Some(("kmsg".to_owned(), 3)),
        ..Batch::default()
    })
    .unwrap();
    // flock belongs to the open file description: a second open in this process conflicts.
    let err = Journal::open(&path).unwrap_err();
    assert!(
        matches!(err.kind(), JournalErrorKind::InUse { pid: Some(p) } if *p == std::process::id()),
        "{err:?}"
    );
    assert_eq!(err.operation(), "opening");
    assert_eq!(err.path(), path);
    assert_eq!(
        err.kind().to_string(),
        format!(
            "in use by another vfguard (pid {}); stop it first",
            std::process::id()
        )
    );
    let r = Journal::open_read_only(&path).unwrap();
    assert_eq!(r.access(), Access::ReadOnly);
    assert_eq!(r.cursor("kmsg").unwrap(), Some(3));
    // Closed (or dropped), the journal is free again.
    w.close().unwrap();
    drop(Journal::open(&path).unwrap());
    let again = Journal::open(&path).unwrap();
    assert_eq!(again.cursor("kmsg").unwrap(), Some(3));
    assert_eq!(r.cursor("kmsg").unwrap(), Some(3));
}

#[test]
fn a_newer_schema_is_refused_untouched() {
    let (_dir, path) = temp();
    let j = Journal::open(&path).unwrap();
    j.conn
        .execute("INSERT INTO schema_migrations VALUES (9, 'future', 0)", [])
        .unwrap();
    j.close().unwrap();
    let err = Journal::open(&path).unwrap_err();
    assert!(
        matches!(err.kind(), JournalErrorKind::TooNew { found: 9, known: 4 }),
        "{err:?}"
    );
    assert_eq!(err.operation(), "migrating the schema");
    assert_eq!(err.path(), path);
    assert_eq!(
        err.to_string(),
        format!("journal {}: migrating the schema", path.display())
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let (_dir, path) = temp();
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err.kind(), JournalErrorKind::Sqlite(_)), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(err.operation(), "opening");
}

#[test]
fn a_missing_directory_is_an_error_naming_the_path() {
    let (_dir, path) = temp();
    let path = path.join("no/such/dir/journal.db");
    let err = Journal::open(&path).unwrap_err();
    assert_eq!(err.path(), path);
}

// --- record_batch ---

#[test]
fn record_batch_stores_observations_then_decisions_in_commit_order() {
    let mut j = Journal::open_in_memory().unwrap();
    let obs: Vec<_> = observations()
        .into_iter()
        .map(|o| (o, Some(IncidentId(1))))
        .collect();
    let ds = decisions(IncidentId(1));
    j.record_batch(&Batch {
        at: 100,
        observations: obs.clone(),
        decisions: ds.clone(),
        cursor: Some(("kmsg".to_owned(), 41)),
    })
    .unwrap();
    let entries = j.replay().unwrap();
    assert_eq!(entries.len(), obs.len() + ds.len());
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq(), i as u64 + 1);
        assert_eq!(e.at(), 100);
    }
    for (e, (o, inc)) in entries.iter().zip(&obs) {
        assert_eq!(
            e,
            &Entry::Observation(ObservationRow {
                seq: e.seq(),
                at: 100,
                incident: *inc,
                observation: o.clone()
            })
        );
    }
    for (e, d) in entries.iter().skip(obs.len()).zip(&ds) {
        assert_eq!(
            e,
            &Entry::Decision(DecisionRow {
                seq: e.seq(),
                at: 100,
                decision: d.clone()
            })
        );
    }
    assert_eq!(j.cursor("kmsg").unwrap(), Some(41));
}

#[test]
fn record_batch_fills_the_columns_operators_query() {
    let mut j = Journal::open_in_memory().unwrap();
    j.record_batch(&batch(
        5,
        vec![
            (Observation::Fault(fault(3, 9)), Some(IncidentId(2))),
            (Observation::Tick, None),
        ],
        vec![Decision::Restored {
            incident: IncidentId(2),
        }],
    ))
    .unwrap();
    type Columns = (i64, String, Option<String>, Option<i64>, String);
    let rows: Vec<Columns> = j
        .conn
        .prepare("SELECT at_ms, type, function, incident, json_extract(body, '$.kind') FROM observations ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, Option<String>>(4)?.unwrap_or_default())))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                5,
                "fault".to_owned(),
                Some("0000:3b:02.3".to_owned()),
                Some(2),
                "mdd_tx".to_owned()
            ),
            (5, "tick".to_owned(), None, None, String::new()),
        ]
    );
    let (ty, inc): (String, i64) = j
        .conn
        .query_row("SELECT type, incident FROM decisions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((ty.as_str(), inc), ("restored", 2));
}

#[test]
fn a_batch_that_fails_part_way_stores_nothing() {
    let mut j = Journal::open_in_memory().unwrap();
    // The second decision's incident id does not fit in SQLite: the first observation and
    // decision are already inserted when it fails.
    let bad = Batch {
        at: 1,
        observations: vec![(Observation::Tick, None)],
        decisions: vec![
            Decision::Restored {
                incident: IncidentId(1),
            },
            Decision::Restored {
                incident: IncidentId(u64::MAX),
            },
        ],
        cursor: Some(("kmsg".to_owned(), 7)),
    };
    let err = j.record_batch(&bad).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            JournalErrorKind::OutOfRange {
                what: "incident id",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.operation(), "recording a batch");
    assert!(j.replay().unwrap().is_empty());
    assert_eq!(j.cursor("kmsg").unwrap(), None);
    // The sequence numbers it took are given back.
    j.record_batch(&batch(2, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    assert_eq!(j.replay().unwrap()[0].seq(), 1);
}

#[test]
fn non_finite_numbers_are_refused_before_anything_is_written() {
    let mut j = Journal::open_in_memory().unwrap();
    let mut ds = decisions(IncidentId(1));
    if let Decision::Attributed { confidence, .. } = &mut ds[1] {
        *confidence = f64::NAN;
    }
    let err = j.record_batch(&batch(1, vec![], ds)).unwrap_err();
    assert!(matches!(
        err.kind(),
        JournalErrorKind::NotFinite {
            field: "attribution confidence",
            ..
        }
    ));
    let mut ev = fault(1, 1);
    ev.timestamp = Some(f64::INFINITY);
    let err = j
        .record_batch(&batch(1, vec![(Observation::Fault(ev), None)], vec![]))
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        JournalErrorKind::NotFinite {
            field: "fault event timestamp",
            ..
        }
    ));
    assert!(j.replay().unwrap().is_empty());
    assert!(j.incidents(&all()).unwrap().is_empty());
}

#[test]
fn floats_read_back_bit_for_bit() {
    let mut j = Journal::open_in_memory().unwrap();
    let awkward = [
        0.1 + 0.2,
        1.0 / 3.0,
        f64::MIN_POSITIVE,
        1.0 - f64::EPSILON,
        2.0_f64.sqrt() * 1e5,
    ];
    let ds: Vec<_> = awkward
        .iter()
        .map(|c| Decision::Attributed {
            incident: IncidentId(1),
            method: vfguard_model::Method::Mac,
            confidence: *c,
            evidence: String::new(),
        })
        .collect();
    j.record_batch(&batch(1, vec![], ds.clone())).unwrap();
    let back: Vec<_> = j
        .replay()
        .unwrap()
        .into_iter()
        .map(|e| match e {
            Entry::Decision(d) => d.decision,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(back, ds);
}

#[test]
fn an_empty_batch_only_moves_the_cursor() {
    let mut j = Journal::open_in_memory().unwrap();
    j.record_batch(&Batch {
        cursor: Some(("kmsg".to_owned(), 3)),
        ..Batch::default()
    })
    .unwrap();
    assert!(j.replay().unwrap().is_empty());
    assert_eq!(j.cursor("kmsg").unwrap(), Some(3));
}

// --- cursor ---

#[test]
fn cursor_is_per_source_follows_the_last_batch_and_may_go_down_after_a_reboot() {
    let mut j = Journal::open_in_memory().unwrap();
    assert_eq!(j.cursor("kmsg").unwrap(), None);
    for (source, seq) in [("kmsg", 10), ("aer", 3), ("kmsg", 12), ("kmsg", 2)] {
        j.record_batch(&Batch {
            cursor: Some((source.to_owned(), seq)),
            ..Batch::default()
        })
        .unwrap();
    }
    assert_eq!(j.cursor("kmsg").unwrap(), Some(2));
    assert_eq!(j.cursor("aer").unwrap(), Some(3));
    assert_eq!(j.cursor("other").unwrap(), None);
    let err = j
        .record_batch(&Batch {
            cursor: Some(("kmsg".to_owned(), u64::MAX)),
            ..Batch::default()
        })
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        JournalErrorKind::OutOfRange { what: "cursor", .. }
    ));
    assert_eq!(j.cursor("kmsg").unwrap(), Some(2));
}

// --- record_intent, record_outcome, pending_intents ---

#[test]
fn intents_are_pending_until_their_outcome() {
    let mut j = Journal::open_in_memory().unwrap();
    let a1 = action(1, IncidentId(1), 10);
    let mut a2 = action(2, IncidentId(1), 11);
    a2.kind = ActionKind::Restore(Box::new(VfState {
        index: 1,
        ..VfState::default()
    }));
    a2.dry_run = true;
    j.record_intent(&a1).unwrap();
    j.record_intent(&a2).unwrap();
    assert_eq!(j.pending_intents().unwrap(), [a1.clone(), a2.clone()]);
    let o1 = outcome(&a1, 20, Some("EBUSY"));
    j.record_outcome(&o1).unwrap();
    assert_eq!(j.pending_intents().unwrap(), [a2.clone()]);
    assert_eq!(
        j.replay().unwrap(),
        [
            Entry::Intent {
                seq: 1,
                action: a1.clone()
            },
            Entry::Intent {
                seq: 2,
                action: a2.clone()
            },
            Entry::Outcome {
                seq: 3,
                outcome: o1
            },
        ]
    );
    let row: (String, String, bool, i64) = j
        .conn
        .query_row(
            "SELECT action, rule, dry_run, intent_ms FROM actions WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        ("restore".to_owned(), "mdd_tx>=3/60s".to_owned(), true, 11)
    );
}

#[test]
fn typed_values_are_stored_as_the_strings_journals_always_held() {
    use vfguard_model::{Errno, Method, Mode, RuleRef};
    let mut j = Journal::open_in_memory().unwrap();
    let mut a = action(1, IncidentId(1), 10);
    a.rule = RuleRef::Fallback {
        action: "set_vf:spoofchk".into(),
        error: Errno::EOPNOTSUPP,
    };
    j.record_intent(&a).unwrap();
    j.record_outcome(&outcome(&a, 20, Some("EBUSY"))).unwrap();
    let ds = vec![
        Decision::Attributed {
            incident: IncidentId(1),
            method: Method::WholeDevice,
            confidence: 1.0,
            evidence: String::new(),
        },
        Decision::ModeChanged {
            from: Mode::Enforce,
            to: Mode::DryRun,
            by: "alice".into(),
        },
    ];
    j.record_batch(&batch(30, vec![], ds)).unwrap();
    let text = "fallback after set_vf:spoofchk failed: EOPNOTSUPP";
    let row: (String, String, String) = j
        .conn
        .query_row(
            "SELECT rule, json_extract(intent, '$.rule'), error FROM actions WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, (text.into(), text.into(), "EBUSY".into()));
    let bodies: Vec<String> = j
        .conn
        .prepare("SELECT body FROM decisions ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        bodies,
        [
            r#"{"decision":"attributed","incident":1,"method":"whole_device","confidence":1.0,"evidence":""}"#,
            r#"{"decision":"mode_changed","from":"enforce","to":"dry_run","by":"alice"}"#,
        ]
    );
    // Whatever an older agent wrote in the error column reads back as it was.
    for old in [
        "E71",
        "virsh suspend web-1: error: domain is not running",
        "EBUSY",
    ] {
        j.conn
            .execute("UPDATE actions SET error = ?1 WHERE id = 1", [old])
            .unwrap();
        let outcome = j.replay().unwrap().into_iter().find_map(|e| match e {
            Entry::Outcome { outcome, .. } => Some(outcome),
            _ => None,
        });
        assert_eq!(
            outcome.and_then(|o| o.error).map(|e| e.name().into_owned()),
            Some(old.to_owned())
        );
    }
}

#[test]
fn an_intent_is_journalled_once() {
    let mut j = Journal::open_in_memory().unwrap();
    let a = action(5, IncidentId(1), 10);
    j.record_intent(&a).unwrap();
    let err = j.record_intent(&a).unwrap_err();
    assert!(
        matches!(err.kind(), JournalErrorKind::DuplicateIntent(5)),
        "{err:?}"
    );
    assert_eq!(err.operation(), "recording an intent");
    assert_eq!(j.replay().unwrap().len(), 1);
}

#[test]
fn an_outcome_needs_its_intent_and_comes_once() {
    let mut j = Journal::open_in_memory().unwrap();
    let a = action(5, IncidentId(1), 10);
    let err = j.record_outcome(&outcome(&a, 11, None)).unwrap_err();
    assert!(
        matches!(err.kind(), JournalErrorKind::OutcomeWithoutIntent(5)),
        "{err:?}"
    );
    j.record_intent(&a).unwrap();
    j.record_outcome(&outcome(&a, 11, None)).unwrap();
    let err = j.record_outcome(&outcome(&a, 12, Some("EIO"))).unwrap_err();
    assert!(
        matches!(err.kind(), JournalErrorKind::DuplicateOutcome(5)),
        "{err:?}"
    );
    let rows = j.actions(10).unwrap();
    assert_eq!(rows[0].outcome, Some(outcome(&a, 11, None)));
}

// --- incidents, incident ---

#[test]
fn incidents_follow_the_decisions() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(1);
    let ds = as_the_engine_emits(decisions(id));
    let expect = [
        IncidentState::Open,       // opened
        IncidentState::Open,       // attributed
        IncidentState::Open,       // threshold crossed
        IncidentState::Escalating, // state changed: escalated
        IncidentState::Escalating, // act
        IncidentState::Escalating, // suppressed
        IncidentState::Contained,  // state changed: contained
        IncidentState::Contained,  // contained
        IncidentState::Restored,   // state changed: restored
        IncidentState::Restored,   // restored
        IncidentState::Closed,     // state changed: closed
        IncidentState::Closed,     // closed
    ];
    assert_eq!(ds.len(), expect.len());
    for (at, (d, want)) in ds.into_iter().zip(expect).enumerate() {
        j.record_batch(&batch(at as u64 * 10, vec![], vec![d]))
            .unwrap();
        assert_eq!(state(&j, 1), want, "after decision {at}");
    }
    let row = j.incident(id).unwrap().unwrap().incident;
    assert_eq!(
        row,
        IncidentRow {
            id,
            function: vf(1),
            pf: Some(pf()), // from the action
            state: IncidentState::Closed,
            owner: Some(vm("web-1")),
            opened_at: 0,
            updated_at: 110,
        }
    );
    // Each move is journalled with where it came from, where it went and why.
    let moves: Vec<(String, String, String, String)> = j
        .conn
        .prepare(
            "SELECT type, json_extract(body, '$.from'), json_extract(body, '$.to'),
                    json_extract(body, '$.cause')
             FROM decisions WHERE incident = 1 AND json_extract(body, '$.to') IS NOT NULL
             ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let moves: Vec<_> = moves
        .iter()
        .map(|(t, f, to, c)| (t.as_str(), f.as_str(), to.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            ("state_changed", "open", "escalating", "escalated"),
            ("state_changed", "escalating", "contained", "contained"),
            ("state_changed", "contained", "restored", "restored"),
            ("state_changed", "restored", "closed", "closed"),
        ]
    );
}

#[test]
fn only_a_state_change_moves_the_state() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(6);
    let ds = decisions(id);
    j.record_batch(&batch(1, vec![], vec![ds[0].clone()]))
        .unwrap();
    // Every other decision alone (an action, a containment, a restore, even a close) touches
    // the row and leaves its state as decided.
    for (at, d) in (2..).zip(&ds[1..]) {
        j.record_batch(&batch(at, vec![], vec![d.clone()])).unwrap();
        let row = j.incident(id).unwrap().unwrap().incident;
        assert_eq!(
            (row.state, row.updated_at),
            (IncidentState::Open, at),
            "after {d:?}"
        );
    }
    // Likewise from another state: escalating stays escalating through a containment and a
    // close that came without their state changes.
    j.record_batch(&batch(
        20,
        vec![],
        vec![moved(id, IncidentState::Open, Cause::Escalated)],
    ))
    .unwrap();
    assert_eq!(state(&j, 6), IncidentState::Escalating);
    for d in [&ds[5], &ds[6], &ds[7]] {
        j.record_batch(&batch(21, vec![], vec![d.clone()])).unwrap();
        assert_eq!(state(&j, 6), IncidentState::Escalating, "after {d:?}");
    }
    // And the state change is what moves it.
    j.record_batch(&batch(
        22,
        vec![],
        vec![moved(id, IncidentState::Escalating, Cause::Contained)],
    ))
    .unwrap();
    assert_eq!(state(&j, 6), IncidentState::Contained);
}

#[test]
fn closed_is_final_until_the_incident_is_opened_again() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(3);
    let ds = decisions(id);
    j.record_batch(&batch(
        1,
        vec![],
        vec![
            ds[0].clone(),
            moved(id, IncidentState::Open, Cause::Closed),
            ds[7].clone(),
        ],
    ))
    .unwrap();
    assert_eq!(state(&j, 3), IncidentState::Closed);
    // Late news about it (an action, a notice, a containment, a restore) leaves it closed.
    let mut notify = action(31, id, 2);
    notify.kind = ActionKind::Notify;
    for d in [&ds[3], &Decision::Act(notify), &ds[5], &ds[6]] {
        j.record_batch(&batch(2, vec![], vec![d.clone()])).unwrap();
        assert_eq!(state(&j, 3), IncidentState::Closed, "after {d:?}");
    }
    j.record_batch(&batch(3, vec![], vec![ds[0].clone()]))
        .unwrap();
    let row = j.incident(id).unwrap().unwrap().incident;
    assert_eq!(
        (row.state, row.opened_at, row.updated_at),
        (IncidentState::Open, 1, 3)
    );
}

#[test]
fn a_restore_does_not_escalate_and_a_reoffence_after_restore_does() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(4);
    let ds = decisions(id);
    j.record_batch(&batch(
        1,
        vec![],
        vec![
            ds[0].clone(),
            moved(id, IncidentState::Open, Cause::Contained),
            ds[5].clone(),
        ],
    ))
    .unwrap();
    // The restore is decided (no state change: the engine does not escalate for it)...
    let mut restore = action(9, id, 2);
    restore.kind = ActionKind::Restore(Box::default());
    j.record_batch(&batch(2, vec![], vec![Decision::Act(restore)]))
        .unwrap();
    let row = j.incident(id).unwrap().unwrap().incident;
    assert_eq!((row.state, row.updated_at), (IncidentState::Contained, 2));
    // ... and works.
    j.record_batch(&batch(
        3,
        vec![],
        vec![
            moved(id, IncidentState::Contained, Cause::Restored),
            ds[6].clone(),
        ],
    ))
    .unwrap();
    assert_eq!(state(&j, 4), IncidentState::Restored);
    // The function faults again: the engine says it re-offended, then acts.
    j.record_batch(&batch(
        4,
        vec![(Observation::Fault(fault(1, 4)), Some(id))],
        vec![
            moved(id, IncidentState::Restored, Cause::Reoffended),
            ds[3].clone(),
        ],
    ))
    .unwrap();
    assert_eq!(state(&j, 4), IncidentState::Escalating);
}

#[test]
fn an_act_for_an_unknown_incident_creates_it_other_decisions_do_not() {
    let mut j = Journal::open_in_memory().unwrap();
    let unknown = IncidentId(8);
    let mut restore = action(1, unknown, 1);
    restore.kind = ActionKind::Restore(Box::default());
    for d in [
        Decision::Contained {
            incident: unknown,
            by: "driver".into(),
        },
        moved(unknown, IncidentState::Open, Cause::Contained),
        Decision::Restored { incident: unknown },
        Decision::Act(restore),
    ] {
        j.record_batch(&batch(1, vec![], vec![d.clone()])).unwrap();
        assert!(j.incident(unknown).unwrap().is_none(), "after {d:?}");
    }
    j.record_batch(&batch(
        2,
        vec![],
        vec![Decision::Act(action(2, unknown, 2))],
    ))
    .unwrap();
    let row = j.incident(unknown).unwrap().unwrap().incident;
    assert_eq!(
        (row.state, row.function, row.owner, row.pf, row.opened_at),
        (
            IncidentState::Escalating,
            vf(1),
            Some(vm("web-1")),
            Some(pf()),
            2
        )
    );
    // A notice does not escalate: the incident it creates is open.
    let mut notify = action(3, IncidentId(9), 3);
    notify.kind = ActionKind::Notify;
    j.record_batch(&batch(3, vec![], vec![Decision::Act(notify)]))
        .unwrap();
    assert_eq!(state(&j, 9), IncidentState::Open);
}

#[test]
fn an_uncontained_incident_is_stored_listed_as_open_and_kept_by_retention() {
    let mut j = Journal::open_in_memory().unwrap();
    let (stuck, done) = (IncidentId(1), IncidentId(2));
    let mut notify = action(10, stuck, 1);
    notify.kind = ActionKind::Notify;
    j.record_batch(&batch(
        1,
        vec![(Observation::Fault(fault(1, 1)), Some(stuck))],
        vec![
            decisions(stuck)[0].clone(),
            decisions(done)[0].clone(),
            moved(stuck, IncidentState::Open, Cause::Exhausted),
            Decision::Act(notify),
            moved(done, IncidentState::Open, Cause::Closed),
            decisions(done)[7].clone(),
        ],
    ))
    .unwrap();
    assert_eq!(state(&j, 1), IncidentState::Uncontained);
    let stored: String = j
        .conn
        .query_row("SELECT state FROM incidents WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "uncontained");
    let listed = |j: &Journal, open_only| -> Vec<(u64, IncidentState)> {
        j.incidents(&IncidentFilter { open_only, ..all() })
            .unwrap()
            .iter()
            .map(|r| (r.id.0, r.state))
            .collect()
    };
    assert_eq!(listed(&j, true), [(1, IncidentState::Uncontained)]);
    assert_eq!(
        listed(&j, false),
        [(2, IncidentState::Closed), (1, IncidentState::Uncontained)]
    );
    // Its fault and decisions outlive the age limit, like any open incident's; the closed
    // incident's three decisions go.
    assert_eq!(j.apply_retention(10_000, 1_000, 1_000).unwrap(), 3);
    let left: Vec<_> = j.replay().unwrap().iter().map(|e| e.seq()).collect();
    assert_eq!(left, [1, 2, 4, 5]);
    // Containment (by the driver, or an operator's quarantine) takes it out of uncontained.
    j.record_batch(&batch(
        20,
        vec![],
        vec![
            moved(stuck, IncidentState::Uncontained, Cause::Contained),
            Decision::Contained {
                incident: stuck,
                by: "driver: i40e_mdd_disable".into(),
            },
        ],
    ))
    .unwrap();
    assert_eq!(state(&j, 1), IncidentState::Contained);
}

#[test]
fn observations_move_updated_forward_and_name_the_pf() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(1);
    // Opened and fed in the same batch: the observation's PF still lands on the row.
    j.record_batch(&batch(
        10,
        vec![(Observation::Fault(fault(1, 1)), Some(id))],
        vec![decisions(id)[0].clone()],
    ))
    .unwrap();
    let row = j.incident(id).unwrap().unwrap().incident;
    assert_eq!((row.pf, row.updated_at), (Some(pf()), 10));
    j.record_batch(&batch(30, vec![(Observation::Tick, Some(id))], vec![]))
        .unwrap();
    j.record_batch(&batch(20, vec![(Observation::Tick, Some(id))], vec![]))
        .unwrap();
    assert_eq!(j.incident(id).unwrap().unwrap().incident.updated_at, 30);
}

#[test]
fn incidents_filter_by_state_owner_and_pf_newest_first() {
    let mut j = Journal::open_in_memory().unwrap();
    let other_pf = Bdf::new(0, 0x5e, 0, 0).unwrap();
    let open = |id: u64, function: Bdf, owner: Option<Owner>| Decision::IncidentOpened {
        incident: IncidentId(id),
        function,
        owner,
    };
    j.record_batch(&batch(
        1,
        vec![(Observation::Fault(fault(1, 1)), Some(IncidentId(1)))],
        vec![
            open(1, vf(1), Some(vm("web-1"))),
            open(2, vf(2), Some(vm("web-2"))),
            open(3, other_pf, Some(Owner::host("bound to i40e"))),
            open(4, vf(4), None),
            moved(IncidentId(2), IncidentState::Open, Cause::Closed),
            Decision::Closed {
                incident: IncidentId(2),
                reason: "done".into(),
            },
        ],
    ))
    .unwrap();
    let ids = |f: IncidentFilter| -> Vec<u64> {
        j.incidents(&f).unwrap().iter().map(|r| r.id.0).collect()
    };
    assert_eq!(ids(all()), [4, 3, 2, 1]);
    assert_eq!(
        ids(IncidentFilter {
            open_only: true,
            ..all()
        }),
        [4, 3, 1]
    );
    for owner in ["vm:web-2", "web-2", "uuid-web-2"] {
        assert_eq!(
            ids(IncidentFilter {
                owner: Some(owner.into()),
                ..all()
            }),
            [2],
            "{owner}"
        );
    }
    assert_eq!(
        ids(IncidentFilter {
            owner: Some("host".into()),
            ..all()
        }),
        [3]
    );
    assert_eq!(
        ids(IncidentFilter {
            owner: Some("nobody".into()),
            ..all()
        }),
        Vec::<u64>::new()
    );
    // Incident 1 learnt its PF from its fault; 3 is about the other PF itself.
    assert_eq!(
        ids(IncidentFilter {
            pf: Some(pf()),
            ..all()
        }),
        [1]
    );
    assert_eq!(
        ids(IncidentFilter {
            pf: Some(other_pf),
            ..all()
        }),
        [3]
    );
    assert_eq!(
        ids(IncidentFilter {
            open_only: true,
            owner: Some("web-1".into()),
            pf: Some(pf())
        }),
        [1]
    );
}

#[test]
fn incident_detail_holds_only_its_own_records_in_commit_order() {
    let mut j = Journal::open_in_memory().unwrap();
    let (one, two) = (IncidentId(1), IncidentId(2));
    let a = action(100, one, 7);
    j.record_batch(&batch(
        1,
        vec![
            (Observation::Fault(fault(1, 1)), Some(one)),
            (Observation::Fault(fault(2, 2)), Some(two)),
            (Observation::Tick, None),
        ],
        vec![
            decisions(one)[0].clone(),
            decisions(two)[0].clone(),
            Decision::Act(a.clone()),
        ],
    ))
    .unwrap();
    j.record_intent(&a).unwrap();
    j.record_intent(&action(200, two, 8)).unwrap();
    j.record_outcome(&outcome(&a, 9, None)).unwrap();
    j.record_batch(&batch(
        2,
        vec![
            (Observation::Tick, Some(one)),
            (Observation::Fault(fault(1, 3)), Some(one)),
        ],
        vec![
            moved(one, IncidentState::Open, Cause::Contained),
            decisions(one)[5].clone(),
        ],
    ))
    .unwrap();

    let d = j.incident(one).unwrap().unwrap();
    assert_eq!(d.incident.state, IncidentState::Contained);
    // The tick (seq 10) is linked to the incident, for retention, but is no evidence of it.
    assert!(matches!(
        &j.replay().unwrap()[9],
        Entry::Observation(ObservationRow {
            seq: 10,
            incident: Some(i),
            observation: Observation::Tick,
            ..
        }) if *i == one
    ));
    assert_eq!(
        d.observations.iter().map(|o| o.seq).collect::<Vec<_>>(),
        [1, 11]
    );
    assert!(d.observations.iter().all(|o| o.incident == Some(one)));
    assert_eq!(
        d.decisions.iter().map(|o| o.seq).collect::<Vec<_>>(),
        [4, 6, 12, 13]
    );
    assert_eq!(d.actions.len(), 1);
    assert_eq!(d.actions[0].action, a);
    assert_eq!(d.actions[0].outcome_seq, Some(9));
    assert_eq!(d.actions[0].outcome, Some(outcome(&a, 9, None)));
    assert!(j.incident(IncidentId(77)).unwrap().is_none());
}

// --- incident_page and the streams (bounded reads) ---

/// An incident (1) with `faults` faults, a tick after every fourth, the attribution of each
/// fault, an action every tenth (with its outcome), and another incident (2) beside it. Returns
/// the journal.
fn long_incident(faults: u64) -> Journal {
    let mut j = Journal::open_in_memory().unwrap();
    let (one, two) = (IncidentId(1), IncidentId(2));
    j.record_batch(&batch(
        1,
        vec![],
        vec![decisions(one)[0].clone(), decisions(two)[0].clone()],
    ))
    .unwrap();
    for i in 0..faults {
        let (o, d) = crate::testdata::storm_step(1, i, one);
        let mut obs = vec![(o, Some(one))];
        if i % 4 == 3 {
            obs.push((Observation::Tick, Some(one)));
        }
        obs.push((Observation::Fault(fault(2, i)), Some(two)));
        j.record_batch(&batch(10 + i, obs, vec![d])).unwrap();
        if i % 10 == 9 {
            let a = action(i, one, 10 + i);
            j.record_intent(&a).unwrap();
            j.record_outcome(&outcome(&a, 11 + i, None)).unwrap();
        }
    }
    j
}

#[test]
fn an_incident_page_holds_its_first_and_last_rows_and_how_many_there_are() {
    let j = long_incident(40);
    let one = IncidentId(1);
    let whole = j.incident(one).unwrap().unwrap();
    assert_eq!(whole.observations.len(), 40);
    let page = j.incident_page(one, 3, 2).unwrap().unwrap();
    assert_eq!(page.incident, whole.incident);
    let seqs = |rows: &[ObservationRow]| rows.iter().map(|o| o.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&page.observations.first),
        seqs(&whole.observations[..3])
    );
    assert_eq!(
        seqs(&page.observations.last),
        seqs(&whole.observations[38..])
    );
    assert_eq!(page.observations.first[..], whole.observations[..3]);
    assert_eq!(page.observations.last[..], whole.observations[38..]);
    assert_eq!(
        (
            page.observations.total,
            page.observations.dropped,
            page.observations.omitted()
        ),
        (40, 0, 35)
    );
    // Decisions: opened, then 40 attributions.
    assert_eq!(page.decisions.total, 41);
    assert_eq!(page.decisions.first[..], whole.decisions[..3]);
    assert_eq!(page.decisions.last[..], whole.decisions[39..]);
    assert_eq!(page.actions.total, 4);
    assert_eq!(page.actions.first[..], whole.actions[..3]);
    assert_eq!(page.actions.last[..], whole.actions[3..]);
    assert!(page.actions.is_complete());
    // A page larger than the incident holds it all, once.
    let all = j.incident_page(one, 100, 100).unwrap().unwrap();
    assert_eq!(
        all.observations.iter().cloned().collect::<Vec<_>>(),
        whole.observations
    );
    assert!(all.observations.last.is_empty() && all.observations.is_complete());
    // Only the last rows, or none.
    let tail = j.incident_page(one, 0, 1).unwrap().unwrap();
    assert!(tail.observations.first.is_empty());
    assert_eq!(tail.observations.last[..], whole.observations[39..]);
    let none = j.incident_page(one, 0, 0).unwrap().unwrap();
    assert_eq!(
        (none.observations.iter().count(), none.observations.total),
        (0, 40)
    );
    assert!(j.incident_page(IncidentId(77), 5, 5).unwrap().is_none());
}

#[test]
fn the_streams_read_in_chunks_what_the_unbounded_reads_return() {
    let faults = query::CHUNK as u64 * 2 + 7;
    let j = long_incident(faults);
    let one = IncidentId(1);
    let whole = j.incident(one).unwrap().unwrap();
    assert_eq!(whole.observations.len() as u64, faults);
    let streamed: Vec<_> = j.incident_observations(one).map(Result::unwrap).collect();
    assert_eq!(streamed, whole.observations);
    let streamed: Vec<_> = j.incident_decisions(one).map(Result::unwrap).collect();
    assert_eq!(streamed, whole.decisions);
    let streamed: Vec<_> = j.incident_actions(one).map(Result::unwrap).collect();
    assert_eq!(streamed, whole.actions);
    let replayed: Vec<_> = j.replay_stream().map(Result::unwrap).collect();
    assert_eq!(replayed, j.replay().unwrap());
    assert!(replayed.windows(2).all(|w| w[0].seq() < w[1].seq()));
    // An incident the journal does not have streams nothing.
    assert_eq!(j.incident_observations(IncidentId(77)).count(), 0);
    assert_eq!(j.incident_decisions(IncidentId(77)).count(), 0);
}

#[test]
fn a_stream_reads_one_snapshot_while_the_daemon_writes_on() {
    let (_dir, path) = temp();
    let one = IncidentId(1);
    let mut w = Journal::open(&path).unwrap();
    let write = |w: &mut Journal, from: u64, n: u64| {
        let mut b = batch(5, vec![], vec![]);
        for i in from..from + n {
            b.observations
                .push((crate::testdata::storm_step(1, i, one).0, Some(one)));
        }
        w.record_batch(&b).unwrap();
    };
    w.record_batch(&batch(1, vec![], vec![decisions(one)[0].clone()]))
        .unwrap();
    let n = query::CHUNK as u64 + 10;
    write(&mut w, 0, n);
    let r = Journal::open_read_only(&path).unwrap();
    let mut stream = r.incident_observations(one);
    assert!(stream.next().unwrap().is_ok());
    // The daemon goes on writing (and checkpoints) while the reader is in its first chunk.
    write(&mut w, n, n);
    let rest = stream.map(Result::unwrap).count() as u64;
    assert_eq!(
        rest,
        n - 1,
        "the stream's snapshot is the journal as of its first read"
    );
    // The reader's connection is free again: a new stream sees everything.
    assert_eq!(r.incident_observations(one).count() as u64, 2 * n);
    w.close().unwrap();
}

#[test]
fn a_corrupted_row_ends_a_stream_with_an_error_naming_it() {
    let j = long_incident(3);
    j.conn
        .execute(
            "UPDATE observation_rows SET body = '{\"nope\":1}' WHERE id = (SELECT min(id) FROM observation_rows WHERE incident = 1)",
            [],
        )
        .unwrap();
    let mut stream = j.incident_observations(IncidentId(1));
    let err = stream.next().unwrap().unwrap_err();
    assert_eq!(err.operation(), "reading an incident");
    assert!(matches!(
        err.kind(),
        JournalErrorKind::Decode {
            table: "observations",
            column: "body",
            ..
        }
    ));
    assert!(stream.next().is_none(), "a stream ends after an error");
    assert!(j.replay_stream().any(|e| e.is_err()));
}

#[test]
fn operators_read_whole_bodies_through_the_views() {
    let j = long_incident(3);
    let whole = j.incident(IncidentId(1)).unwrap().unwrap();
    let mut stmt = j
        .conn
        .prepare("SELECT body FROM observations WHERE incident = 1 AND type != 'tick' ORDER BY id")
        .unwrap();
    let bodies: Vec<serde_json::Value> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect();
    let want: Vec<serde_json::Value> = whole
        .observations
        .iter()
        .map(|o| serde_json::to_value(&o.observation).unwrap())
        .collect();
    assert_eq!(bodies, want);
    let attributed: String = j
        .conn
        .query_row(
            "SELECT body FROM decisions WHERE type = 'attributed' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Decision>(&attributed).unwrap(),
        whole.decisions[1].decision
    );
    // What a storm repeats is stored once.
    let shared: i64 = j
        .conn
        .query_row("SELECT count(*) FROM bodies", [], |r| r.get(0))
        .unwrap();
    assert!(shared <= 4, "{shared} shared bodies");
}

// --- actions ---

#[test]
fn actions_lists_the_newest_first_up_to_the_limit() {
    let mut j = Journal::open_in_memory().unwrap();
    for id in 1..=5 {
        j.record_intent(&action(id, IncidentId(1), id)).unwrap();
    }
    j.record_outcome(&outcome(&action(4, IncidentId(1), 4), 50, None))
        .unwrap();
    let rows = j.actions(3).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.action.id.0).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    assert_eq!(
        rows.iter().map(|r| r.outcome.is_some()).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(j.actions(usize::MAX).unwrap().len(), 5);
    assert!(j.actions(0).unwrap().is_empty());
}

// --- replay ---

#[test]
fn replay_interleaves_every_table_in_commit_order() {
    let mut j = Journal::open_in_memory().unwrap();
    let a = action(1, IncidentId(1), 5);
    j.record_batch(&batch(1, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    j.record_intent(&a).unwrap();
    j.record_batch(&batch(2, vec![], vec![decisions(IncidentId(1))[0].clone()]))
        .unwrap();
    j.record_outcome(&outcome(&a, 6, None)).unwrap();
    j.record_batch(&batch(3, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    let kinds: Vec<_> = j
        .replay()
        .unwrap()
        .iter()
        .map(|e| match e {
            Entry::Observation(_) => "observation",
            Entry::Decision(_) => "decision",
            Entry::Intent { .. } => "intent",
            Entry::Outcome { .. } => "outcome",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "observation",
            "intent",
            "decision",
            "outcome",
            "observation"
        ]
    );
}

#[test]
fn a_corrupted_body_is_an_error_naming_table_row_and_column() {
    let mut j = Journal::open_in_memory().unwrap();
    j.record_batch(&batch(1, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    j.conn
        .execute(
            "UPDATE observation_rows SET body = '{\"type\":\"nope\"}'",
            [],
        )
        .unwrap();
    let err = j.replay().unwrap_err();
    match err.kind() {
        JournalErrorKind::Decode {
            table, id, column, ..
        } => {
            assert_eq!((*table, *id, *column), ("observations", 1, "body"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.operation(), "replaying");
    j.conn
        .execute(
            "UPDATE observation_rows SET body = '{\"type\":\"tick\"}', at_ms = -5",
            [],
        )
        .unwrap();
    assert!(matches!(
        j.replay().unwrap_err().kind(),
        JournalErrorKind::Invalid {
            column: "at_ms",
            ..
        }
    ));
}

// --- apply_retention ---

#[test]
fn retention_by_age_keeps_what_open_incidents_hold() {
    let mut j = Journal::open_in_memory().unwrap();
    let (open, closed) = (IncidentId(1), IncidentId(2));
    j.record_batch(&batch(
        1_000,
        vec![
            (Observation::Tick, None),
            (Observation::Tick, Some(open)),
            (Observation::Tick, Some(closed)),
        ],
        vec![decisions(open)[0].clone(), decisions(closed)[0].clone()],
    ))
    .unwrap();
    j.record_batch(&batch(
        2_000,
        vec![],
        vec![
            moved(closed, IncidentState::Open, Cause::Closed),
            Decision::Closed {
                incident: closed,
                reason: "ok".into(),
            },
        ],
    ))
    .unwrap();
    j.record_batch(&batch(9_000, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    // Cutoff 10_000 - 5_000 = 5_000: the untied tick, the closed incident's tick and its three
    // decisions go; the open incident's tick and decision stay, as does the recent tick.
    assert_eq!(j.apply_retention(10_000, 5_000, 1_000).unwrap(), 5);
    let left: Vec<_> = j
        .replay()
        .unwrap()
        .iter()
        .map(|e| (e.seq(), e.at()))
        .collect();
    assert_eq!(left, [(2, 1_000), (4, 1_000), (8, 9_000)]);
    assert_eq!(j.apply_retention(10_000, 5_000, 1_000).unwrap(), 0);
    // The incident rows themselves are kept.
    assert_eq!(j.incidents(&all()).unwrap().len(), 2);
}

#[test]
fn retention_by_rows_drops_the_oldest_observations_first() {
    let mut j = Journal::open_in_memory().unwrap();
    j.record_batch(&batch(
        1,
        vec![(Observation::Tick, Some(IncidentId(1)))],
        vec![decisions(IncidentId(1))[0].clone()],
    ))
    .unwrap();
    for at in 2..=6 {
        j.record_batch(&batch(at, vec![(Observation::Tick, None)], vec![]))
            .unwrap();
    }
    // 6 observations, cap 3: the open incident's one is kept, the 3 oldest others go.
    assert_eq!(j.apply_retention(6, 1_000, 3).unwrap(), 3);
    let obs: Vec<_> = j
        .replay()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Entry::Observation(o) => Some(o.at),
            _ => None,
        })
        .collect();
    assert_eq!(obs, [1, 5, 6]);
}

#[test]
fn retention_keeps_the_ends_of_an_open_incidents_storm_and_counts_the_rest() {
    let j = long_incident(20);
    let mut j = j;
    let one = IncidentId(1);
    let before = j.incident(one).unwrap().unwrap();
    // Faults of incident 1 are at 10..30 (one per ms); the cutoff 25 makes those before 25
    // old. Kept: the first and last 3 of each kind, and whatever is younger than the cutoff.
    let r = Retention {
        max_age_ms: 5,
        max_rows: 1_000_000,
        open_incident_ends: 3,
    };
    let deleted = j.retain(30, &r).unwrap();
    let after = j.incident(one).unwrap().unwrap();
    let kept: Vec<u64> = after.observations.iter().map(|o| o.at).collect();
    assert_eq!(kept, [10, 11, 12, 25, 26, 27, 28, 29]);
    let page = j.incident_page(one, 100, 100).unwrap().unwrap();
    assert_eq!(
        (page.observations.total, page.observations.dropped),
        (8, 12)
    );
    // Attributions are bounded the same way; the opening decision is always kept.
    assert!(matches!(
        after.decisions[0].decision,
        Decision::IncidentOpened { .. }
    ));
    let attributed: Vec<u64> = after.decisions[1..].iter().map(|d| d.at).collect();
    assert_eq!(attributed, [10, 11, 12, 25, 26, 27, 28, 29]);
    assert_eq!((page.decisions.total, page.decisions.dropped), (9, 12));
    // Ticks too: 5 of them (at 13, 17, 21, 25, 29); the first 3 and last 3 cover them all.
    let ticks = j
        .replay()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Entry::Observation(o) if o.observation == Observation::Tick))
        .count();
    assert_eq!(ticks, 5);
    // Actions are never deleted.
    assert_eq!(after.actions, before.actions);
    // The other incident (open too) lost the same middle; nothing else went.
    let two = j.incident_page(IncidentId(2), 0, 0).unwrap().unwrap();
    assert_eq!((two.observations.total, two.observations.dropped), (8, 12));
    assert_eq!(deleted, 12 + 12 + 12);
    // Again: nothing more to drop.
    assert_eq!(j.retain(30, &r).unwrap(), 0);
}

#[test]
fn retention_deletes_shared_bodies_no_row_references() {
    let mut j = long_incident(5);
    let count = |j: &Journal| -> i64 {
        j.conn
            .query_row("SELECT count(*) FROM bodies", [], |r| r.get(0))
            .unwrap()
    };
    assert!(count(&j) > 0);
    // Close both incidents; everything goes by age, and the shared bodies with it.
    let mut close = Vec::new();
    for id in [IncidentId(1), IncidentId(2)] {
        close.push(moved(id, IncidentState::Open, Cause::Closed));
        close.push(Decision::Closed {
            incident: id,
            reason: "quiet".into(),
        });
    }
    j.record_batch(&batch(100, vec![], close)).unwrap();
    j.apply_retention(1_000, 10, 1_000).unwrap();
    assert_eq!(count(&j), 0);
    let refs: i64 = j
        .conn
        .query_row("SELECT count(*) FROM bodies WHERE refs != 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(refs, 0);
    // A new storm interns its bodies again.
    j.record_batch(&batch(
        2_000,
        vec![(Observation::Fault(fault(1, 1)), None)],
        vec![],
    ))
    .unwrap();
    assert_eq!(count(&j), 1);
    assert!(matches!(
        &j.replay().unwrap()[..],
        [Entry::Observation(ObservationRow {
            observation: Observation::Fault(_),
            ..
        })]
    ));
}

#[test]
fn sequence_numbers_are_never_reused_after_retention() {
    let (_dir, path) = temp();
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&batch(1, vec![(Observation::Tick, None); 3], vec![]))
        .unwrap();
    assert_eq!(j.apply_retention(100, 10, 0).unwrap(), 3);
    j.close().unwrap();
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&batch(100, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    assert_eq!(j.replay().unwrap()[0].seq(), 4);
}

// --- performance: the commit path never scans ---

fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
    stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn record_batch_never_scans() {
    let j = Journal::open_in_memory().unwrap();
    // The check sees a scan when there is one.
    assert!(plan(&j.conn, "SELECT id FROM observations WHERE body = ?1")[0].starts_with("SCAN"));
    let statements = [
        record::INSERT_OBSERVATION,
        record::INSERT_DECISION,
        record::UPSERT_CURSOR,
        record::RESERVE,
        record::INSERT_INTENT,
        record::FIND_ACTION,
        record::SET_OUTCOME,
    ]
    .into_iter()
    .chain(incident::STATEMENTS)
    .chain(body::STATEMENTS)
    .chain(TRIGGER_STATEMENTS);
    for sql in statements {
        let plan = plan(&j.conn, sql);
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{sql}\n{plan:#?}"
        );
    }
}

/// What the tables' triggers run on every insert and delete (`schema.rs`, version 4), with
/// parameters for `new.*` and `old.*`: EXPLAIN QUERY PLAN does not show trigger programs.
const TRIGGER_STATEMENTS: [&str; 4] = [
    "UPDATE bodies SET refs = refs + 1 WHERE id = ?1",
    "UPDATE incidents SET evidence_count = evidence_count + 1 WHERE id = ?1 AND ?2 != 'tick'",
    "UPDATE incidents SET evidence_count = max(evidence_count - 1, 0),
     evidence_dropped = evidence_dropped + 1 WHERE id = ?1 AND ?2 != 'tick'",
    "UPDATE incidents SET decision_count = max(decision_count - 1, 0),
     decision_dropped = decision_dropped + 1 WHERE id = ?1",
];

#[test]
fn paged_and_streamed_reads_are_index_ranges_without_a_sort() {
    let j = Journal::open_in_memory().unwrap();
    // The check sees a sort when there is one.
    assert!(plan(
        &j.conn,
        "SELECT id FROM observation_rows WHERE incident = ?1 ORDER BY type"
    )
    .iter()
    .any(|s| s.contains("TEMP B-TREE")));
    for sql in query::READS.into_iter().chain(query::STREAMS) {
        let plan = plan(&j.conn, sql);
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") && !step.contains("TEMP B-TREE")),
            "{sql}\n{plan:#?}"
        );
    }
}

// --- migrations ---

/// The inserts of schema versions 1 to 3 (whole bodies in `observations` and `decisions`).
const INSERT_OBSERVATION_V3: &str =
    "INSERT INTO observations (id, at_ms, type, function, incident, body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_DECISION_V3: &str =
    "INSERT INTO decisions (id, at_ms, type, incident, body) VALUES (?1, ?2, ?3, ?4, ?5)";

/// What a build with only migration 1 wrote: the rows and the cursor, no `incidents` table (the
/// rows as schema versions 1 to 3 held them).
fn write_v1(conn: &Connection, b: &Batch) {
    let n = (b.observations.len() + b.decisions.len()) as u64;
    let mut seq = record::reserve(conn, n).unwrap();
    for (o, inc) in &b.observations {
        conn.execute(
            INSERT_OBSERVATION_V3,
            rusqlite::params![
                seq as i64,
                b.at as i64,
                entry::observation_type(o),
                entry::observation_function(o).map(|f| f.to_string()),
                inc.map(|i| i.0 as i64),
                serde_json::to_string(o).unwrap()
            ],
        )
        .unwrap();
        seq += 1;
    }
    for d in &b.decisions {
        conn.execute(
            INSERT_DECISION_V3,
            rusqlite::params![
                seq as i64,
                b.at as i64,
                entry::decision_type(d),
                d.incident().map(|i| i.0 as i64),
                serde_json::to_string(d).unwrap()
            ],
        )
        .unwrap();
        seq += 1;
    }
    if let Some((source, s)) = &b.cursor {
        conn.execute(record::UPSERT_CURSOR, rusqlite::params![source, *s as i64])
            .unwrap();
    }
}

/// `record_batch` as a build of schema version 2 or 3 did it: the rows (whole bodies) and the
/// incidents maintained from them, in one transaction.
fn record_v3(conn: &mut Connection, b: &Batch) -> Result<(), JournalErrorKind> {
    let tx = conn.transaction()?;
    write_v1(&tx, b);
    for d in &b.decisions {
        incident::apply_decision(&tx, b.at, d)?;
    }
    for (o, inc) in &b.observations {
        if let Some(inc) = inc {
            incident::touch(&tx, *inc, b.at, entry::observation_pf(o))?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn history() -> Vec<Batch> {
    let (one, two) = (IncidentId(1), IncidentId(2));
    let d1 = decisions(one);
    let mut d2 = decisions(two);
    d2.truncate(6); // opened ... contained
    vec![
        Batch {
            at: 10,
            observations: vec![
                (Observation::Fault(fault(1, 1)), Some(one)),
                (Observation::Tick, None),
            ],
            decisions: d1[..3].to_vec(),
            cursor: Some(("kmsg".into(), 1)),
        },
        Batch {
            at: 20,
            observations: vec![(Observation::Fault(fault(2, 2)), Some(two))],
            decisions: d2,
            cursor: Some(("kmsg".into(), 2)),
        },
        Batch {
            at: 30,
            observations: vec![(Observation::Fault(fault(1, 3)), Some(one))],
            decisions: d1[3..].to_vec(),
            cursor: Some(("kmsg".into(), 3)),
        },
    ]
}

#[test]
fn a_version_1_journal_is_migrated_with_its_incidents_derived_from_its_decisions() {
    let (_dir, path) = temp();
    let j = Journal::open_with(&path, &MIGRATIONS[..1]).unwrap();
    assert_eq!(j.schema_version().unwrap(), 1);
    assert!(!schema::tables(&j.conn)
        .unwrap()
        .contains(&"incidents".to_owned()));
    for b in history() {
        write_v1(&j.conn, &b);
    }
    let v1_applied: i64 = j
        .conn
        .query_row(
            "SELECT applied_at FROM schema_migrations WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    j.close().unwrap();

    let migrated = Journal::open(&path).unwrap();
    assert_eq!(migrated.schema_version().unwrap(), 4);
    for v in 1..=4 {
        assert!(schema::applied(&migrated.conn, v).unwrap(), "version {v}");
    }
    let still: i64 = migrated
        .conn
        .query_row(
            "SELECT applied_at FROM schema_migrations WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(still, v1_applied, "migration 1 is not applied again");

    let mut fresh = Journal::open_in_memory().unwrap();
    for b in history() {
        fresh.record_batch(&b).unwrap();
    }
    assert_eq!(migrated.replay().unwrap(), fresh.replay().unwrap());
    assert_eq!(migrated.cursor("kmsg").unwrap(), Some(3));
    // A version-1 journal has no state changes: the migration derives the states its decisions
    // imply, which are the ones the engine decides alongside them today...
    let mut decided = Journal::open_in_memory().unwrap();
    let mut states = HashMap::new();
    for mut b in history() {
        b.decisions = with_state_changes(&mut states, b.decisions);
        decided.record_batch(&b).unwrap();
    }
    let incidents = migrated.incidents(&all()).unwrap();
    assert_eq!(incidents, decided.incidents(&all()).unwrap());
    let states =
        |rows: &[IncidentRow]| -> Vec<_> { rows.iter().map(|i| (i.id.0, i.state, i.pf)).collect() };
    assert_eq!(
        states(&incidents),
        [
            (2, IncidentState::Contained, Some(pf())),
            (1, IncidentState::Closed, Some(pf()))
        ]
    );
    // ... while the same decisions recorded now, without state changes, move no state: the
    // derivation is the migration's alone.
    assert_eq!(
        states(&fresh.incidents(&all()).unwrap()),
        [
            (2, IncidentState::Open, Some(pf())),
            (1, IncidentState::Open, Some(pf()))
        ]
    );
    // And the migrated journal takes new records where the old one stopped.
    let mut migrated = migrated;
    migrated
        .record_batch(&batch(40, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    let last = migrated.replay().unwrap().last().unwrap().seq();
    assert_eq!(last, fresh.replay().unwrap().len() as u64 + 1);
}

#[test]
fn a_version_1_journal_is_migrated_with_the_rules_of_its_time() {
    let (_dir, path) = temp();
    let j = Journal::open_with(&path, &MIGRATIONS[..1]).unwrap();
    let id = IncidentId;
    let opened = |n: u64| decisions(id(n))[0].clone();
    let contained = |n: u64| decisions(id(n))[5].clone();
    let closed = |n: u64| decisions(id(n))[7].clone();
    let act = |a: u64, n: u64, kind: Option<ActionKind>| {
        let mut a = action(a, id(n), 0);
        if let Some(kind) = kind {
            a.kind = kind;
        }
        Decision::Act(a)
    };
    let restore = || Some(ActionKind::Restore(Box::default()));
    write_v1(
        &j.conn,
        &batch(
            1,
            vec![],
            vec![
                opened(3),
                closed(3),
                opened(4),
                contained(4),
                opened(5),
                contained(5),
                opened(6),
                closed(6),
                opened(7),
                contained(8),
            ],
        ),
    );
    write_v1(
        &j.conn,
        &batch(
            2,
            vec![],
            vec![
                // 3: closed was final, whatever came after.
                act(31, 3, None),
                contained(3),
                Decision::Restored { incident: id(3) },
                // 4: a restore did not escalate a contained incident...
                act(41, 4, restore()),
                // 5: ... but an action after the restore did.
                Decision::Restored { incident: id(5) },
                act(51, 5, None),
                // 6: opening the same id again reopened it.
                opened(6),
                // 7: nor did a restore escalate an open one.
                act(71, 7, restore()),
                // 9: an action created an unknown incident escalating, even a notice.
                act(91, 9, Some(ActionKind::Notify)),
            ],
        ),
    );
    j.close().unwrap();

    let migrated = Journal::open(&path).unwrap();
    assert_eq!(migrated.schema_version().unwrap(), 4);
    let rows: Vec<_> = migrated
        .incidents(&all())
        .unwrap()
        .iter()
        .map(|r| (r.id.0, r.state, r.opened_at))
        .collect();
    assert_eq!(
        rows,
        [
            (9, IncidentState::Escalating, 2),
            (7, IncidentState::Open, 1),
            (6, IncidentState::Open, 1),
            (5, IncidentState::Escalating, 1),
            (4, IncidentState::Contained, 1),
            (3, IncidentState::Closed, 1),
        ]
    );
    // 8 was never opened: its containment stays in `decisions` only.
    assert!(migrated.incident(id(8)).unwrap().is_none());
}

/// The `incidents` table as stored: every column of every row, in id order.
fn incident_rows(conn: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
    conn.prepare(
        "SELECT id, function, opened_ms, updated_ms, state, owner, owner_label, pf
         FROM incidents ORDER BY id",
    )
    .unwrap()
    .query_map([], |r| (0..8).map(|i| r.get(i)).collect())
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Every table and index, with its SQL.
fn schema_objects(conn: &Connection, kind: &str) -> Vec<(String, String, Option<String>)> {
    conn.prepare(
        "SELECT name, tbl_name, sql FROM sqlite_master
         WHERE type = ?1 AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .unwrap()
    .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn a_version_2_journal_is_migrated_keeping_its_incidents_and_indices_and_takes_uncontained() {
    let (_dir, path) = temp();
    let mut j = Journal::open_with(&path, &MIGRATIONS[..2]).unwrap();
    assert_eq!(j.schema_version().unwrap(), 2);
    let id = IncidentId;
    let ds = |n: u64| decisions(id(n));
    // One incident in each state version 2 knows; one on an unowned function, PF unknown.
    record_v3(
        &mut j.conn,
        &batch(
            10,
            vec![(Observation::Fault(fault(1, 1)), Some(id(1)))],
            vec![
                ds(1)[0].clone(),
                ds(2)[0].clone(),
                ds(3)[0].clone(),
                ds(4)[0].clone(),
                ds(5)[0].clone(),
                Decision::IncidentOpened {
                    incident: id(6),
                    function: vf(4),
                    owner: None,
                },
                moved(id(2), IncidentState::Open, Cause::Escalated),
                ds(2)[3].clone(),
                moved(id(3), IncidentState::Open, Cause::Contained),
                ds(3)[5].clone(),
                moved(id(4), IncidentState::Open, Cause::Contained),
                ds(4)[5].clone(),
            ],
        ),
    )
    .unwrap();
    record_v3(
        &mut j.conn,
        &batch(
            20,
            vec![],
            vec![
                moved(id(4), IncidentState::Contained, Cause::Restored),
                ds(4)[6].clone(),
                moved(id(5), IncidentState::Open, Cause::Closed),
                ds(5)[7].clone(),
            ],
        ),
    )
    .unwrap();
    let before = incident_rows(&j.conn);
    let states: Vec<_> = before
        .iter()
        .map(|r| match &r[4] {
            rusqlite::types::Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [
            "open",
            "escalating",
            "contained",
            "restored",
            "closed",
            "open"
        ]
    );
    let indices = schema_objects(&j.conn, "index");
    assert_eq!(
        indices.iter().filter(|i| i.1 == "incidents").count(),
        4,
        "{indices:?}"
    );
    // Version 2 cannot store the new state: the batch saying so is refused whole.
    let exhausted = batch(
        30,
        vec![],
        vec![
            moved(id(2), IncidentState::Escalating, Cause::Exhausted),
            ds(2)[1].clone(),
        ],
    );
    let err = record_v3(&mut j.conn, &exhausted).unwrap_err();
    assert!(matches!(err, JournalErrorKind::Sqlite(_)), "{err:?}");
    assert_eq!(incident_rows(&j.conn), before);
    let seqs: i64 = j
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM observations) + (SELECT count(*) FROM decisions)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    j.close().unwrap();

    let mut migrated = Journal::open(&path).unwrap();
    assert_eq!(migrated.schema_version().unwrap(), 4);
    assert!(schema::applied(&migrated.conn, 3).unwrap());
    assert!(schema::applied(&migrated.conn, 4).unwrap());
    assert_eq!(incident_rows(&migrated.conn), before);
    let on_incidents = |objects: Vec<(String, String, Option<String>)>| -> Vec<_> {
        objects.into_iter().filter(|o| o.1 == "incidents").collect()
    };
    assert_eq!(
        on_incidents(schema_objects(&migrated.conn, "index")),
        on_incidents(indices)
    );
    assert_eq!(migrated.replay().unwrap().len() as i64, seqs);
    // The file now has the schema a new journal has.
    let (_dir2, new) = temp();
    let fresh = Journal::open(&new).unwrap();
    for kind in ["table", "index", "view", "trigger"] {
        assert_eq!(
            schema_objects(&migrated.conn, kind),
            schema_objects(&fresh.conn, kind),
            "{kind}"
        );
    }
    // The writes still never scan.
    for sql in incident::STATEMENTS {
        let plan = plan(&migrated.conn, sql);
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{sql}\n{plan:#?}"
        );
    }
    // And it takes the new state, still refusing one nobody knows.
    migrated.record_batch(&exhausted).unwrap();
    assert_eq!(state(&migrated, 2), IncidentState::Uncontained);
    let open: Vec<_> = migrated
        .incidents(&IncidentFilter {
            open_only: true,
            ..all()
        })
        .unwrap()
        .iter()
        .map(|r| (r.id.0, r.state))
        .collect();
    assert_eq!(
        open,
        [
            (6, IncidentState::Open),
            (4, IncidentState::Restored),
            (3, IncidentState::Contained),
            (2, IncidentState::Uncontained),
            (1, IncidentState::Open),
        ]
    );
    assert!(migrated
        .conn
        .execute("UPDATE incidents SET state = 'gone' WHERE id = 1", [])
        .is_err());
}

#[test]
fn a_version_3_journal_is_compacted_keeping_every_body_and_counting_rows() {
    let (_dir, path) = temp();
    let mut j = Journal::open_with(&path, &MIGRATIONS[..3]).unwrap();
    assert_eq!(j.schema_version().unwrap(), 3);
    let one = IncidentId(1);
    let mut steps = vec![];
    for i in 0..5 {
        steps.push(crate::testdata::storm_step(1, i, one));
    }
    record_v3(
        &mut j.conn,
        &batch(
            1,
            steps
                .iter()
                .map(|(o, _)| (o.clone(), Some(one)))
                .chain([(Observation::Tick, Some(one)), (Observation::Tick, None)])
                .collect(),
            std::iter::once(decisions(one)[0].clone())
                .chain(steps.iter().map(|(_, d)| d.clone()))
                .collect(),
        ),
    )
    .unwrap();
    // A row this build would not write so: an unknown field, kept as it is.
    let odd = r#"{"type":"tick","from":"an older build"}"#;
    j.conn
        .execute(
            "INSERT INTO observations (id, at_ms, type, function, incident, body)
             VALUES (100, 2, 'tick', NULL, 1, ?1)",
            [odd],
        )
        .unwrap();
    let rows = |conn: &Connection, table: &str| -> Vec<(i64, serde_json::Value)> {
        conn.prepare(&format!("SELECT id, body FROM {table} ORDER BY id"))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|r| {
                let (id, body) = r.unwrap();
                (id, serde_json::from_str(&body).unwrap())
            })
            .collect()
    };
    let observations = rows(&j.conn, "observations");
    let decisions_before = rows(&j.conn, "decisions");
    j.close().unwrap();

    let migrated = Journal::open(&path).unwrap();
    assert_eq!(migrated.schema_version().unwrap(), 4);
    // The views show every body as it was.
    assert_eq!(rows(&migrated.conn, "observations"), observations);
    assert_eq!(rows(&migrated.conn, "decisions"), decisions_before);
    let kept: String = migrated
        .conn
        .query_row(
            "SELECT body FROM observation_rows WHERE id = 100",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, odd);
    // The faults and attributions share their bodies.
    let shared: i64 = migrated
        .conn
        .query_row("SELECT count(*) FROM bodies", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shared, 2);
    // Counts: 5 faults (ticks are no evidence), 6 decisions.
    let page = migrated.incident_page(one, 1, 1).unwrap().unwrap();
    assert_eq!((page.observations.total, page.decisions.total), (5, 6));
    assert_eq!(page.observations.last[0].observation, steps[4].0);
}

#[test]
fn a_failing_migration_leaves_the_previous_version_intact() {
    let (_dir, path) = temp();
    Journal::open(&path).unwrap().close().unwrap();
    let real = |m: &Migration| Migration {
        version: m.version,
        name: m.name,
        sql: m.sql,
        backfill: m.backfill,
        finish: m.finish,
    };
    let mut broken: Vec<Migration> = MIGRATIONS.iter().map(real).collect();
    assert_eq!(broken.len(), 4);
    broken.push(Migration {
        version: 5,
        name: "broken",
        sql: "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);",
        backfill: None,
        finish: "",
    });
    let err = Journal::open_with(&path, &broken).unwrap_err();
    assert_eq!(err.operation(), "migrating the schema");
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.schema_version().unwrap(), 4);
    assert!(!schema::tables(&j.conn)
        .unwrap()
        .contains(&"half".to_owned()));
}

// --- read-only opening (the CLI and the API beside a running daemon) ---

#[test]
fn read_only_opening_reads_writes_nothing_and_refuses_other_schemas() {
    let (_dir, path) = temp();
    let mut w = Journal::open(&path).unwrap();
    w.record_batch(&Batch {
        cursor: Some(("kmsg".to_owned(), 5)),
        ..Batch::default()
    })
    .unwrap();
    // Read while the writer is open (WAL).
    let mut r = Journal::open_read_only(&path).unwrap();
    assert_eq!(r.cursor("kmsg").unwrap(), Some(5));
    assert!(r.incidents(&all()).unwrap().is_empty());
    let err = r
        .record_batch(&Batch {
            cursor: Some(("kmsg".to_owned(), 6)),
            ..Batch::default()
        })
        .unwrap_err();
    assert_eq!(err.operation(), "recording a batch", "{err}");
    assert_eq!(w.cursor("kmsg").unwrap(), Some(5), "nothing written");
    drop((w, r));

    // An older file is not migrated by a reader: the daemon does that.
    let (_dir2, old) = temp();
    drop(Journal::open_with(&old, &MIGRATIONS[..1]).unwrap());
    let err = Journal::open_read_only(&old).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            JournalErrorKind::SchemaMismatch { found: 1, .. }
        ),
        "{err}"
    );
    assert_eq!(Journal::open(&old).unwrap().schema_version().unwrap(), 4);
    // A missing file is an error naming it, not a new empty journal.
    let missing = old.with_file_name("missing.db");
    assert!(Journal::open_read_only(&missing).is_err());
    assert!(!missing.exists());
}

#[test]
fn a_round_of_intents_or_outcomes_is_recorded_whole_or_not_at_all() {
    let mut j = Journal::open_in_memory().unwrap();
    let a1 = action(1, IncidentId(1), 10);
    let a2 = action(2, IncidentId(1), 10);
    j.record_intents(&[a1.clone(), a2.clone()]).unwrap();
    assert_eq!(j.pending_intents().unwrap(), [a1.clone(), a2.clone()]);
    // A round holding a duplicate is refused, and its first, new intent is not kept.
    let a3 = action(3, IncidentId(1), 11);
    assert!(j.record_intents(&[a3, a1.clone()]).is_err());
    assert_eq!(j.pending_intents().unwrap(), [a1.clone(), a2.clone()]);
    // Likewise outcomes: one for an unknown action spoils the round.
    let stray = outcome(&action(9, IncidentId(1), 12), 20, None);
    assert!(j.record_outcomes(&[outcome(&a1, 20, None), stray]).is_err());
    assert_eq!(j.pending_intents().unwrap(), [a1.clone(), a2.clone()]);
    j.record_outcomes(&[outcome(&a1, 20, None), outcome(&a2, 20, None)])
        .unwrap();
    assert!(j.pending_intents().unwrap().is_empty());
}

/// The fleet's outbox: decisions, intents and outcomes after a sequence number, in commit order,
/// observations left out; its cursor only moves forward.
#[test]
fn the_outbox_reads_what_follows_its_cursor_and_the_cursor_never_goes_back() {
    let mut j = Journal::open_in_memory().unwrap();
    let (a, b) = (IncidentId(1), IncidentId(2));
    for (i, incident) in [(0u8, a), (1, b)] {
        j.record_batch(&Batch {
            at: 10 * (u64::from(i) + 1),
            observations: vec![(Observation::Tick, Some(incident))],
            decisions: vec![Decision::IncidentOpened {
                incident,
                function: vf(i),
                owner: None,
            }],
            cursor: None,
        })
        .unwrap();
        let act = action(u64::from(i) + 1, incident, 10);
        j.record_intent(&act).unwrap();
        j.record_outcome(&outcome(&act, 11, None)).unwrap();
    }
    let all: Vec<Entry> = j.outbox_after(0).collect::<Result<_, _>>().unwrap();
    let kinds: Vec<&str> = all
        .iter()
        .map(|e| match e {
            Entry::Observation(_) => "observation",
            Entry::Decision(_) => "decision",
            Entry::Intent { .. } => "intent",
            Entry::Outcome { .. } => "outcome",
        })
        .collect();
    assert_eq!(
        kinds,
        ["decision", "intent", "outcome", "decision", "intent", "outcome"]
    );
    let seqs: Vec<u64> = all.iter().map(Entry::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // After the first incident's outcome: the second's three.
    let rest: Vec<u64> = j.outbox_after(seqs[2]).map(|e| e.unwrap().seq()).collect();
    assert_eq!(rest, seqs[3..]);
    j.set_cursor("fleet", seqs[4]).unwrap();
    j.set_cursor("fleet", seqs[1]).unwrap();
    assert_eq!(j.cursor("fleet").unwrap(), Some(seqs[4]));
}
