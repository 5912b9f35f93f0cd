//! Unit tests of the journal's API, one group per method, and of its schema migrations.
//!
//! They run against real SQLite files (in a temporary directory) wherever durability or the
//! file itself matters, and in memory otherwise.

use rusqlite::Connection;
use vfguard_model::{ActionKind, Bdf, Decision, IncidentId, Observation, Owner, VfState};

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

// --- open, open_in_memory, schema_version ---

#[test]
fn open_creates_the_latest_schema_in_wal_mode_with_full_sync() {
    let (_dir, path) = temp();
    let j = Journal::open(&path).unwrap();
    assert_eq!(
        j.schema_version().unwrap(),
        Journal::latest_schema_version()
    );
    assert_eq!(Journal::latest_schema_version(), 2);
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
            "counters",
            "cursors",
            "decisions",
            "incidents",
            "observations",
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
    assert_eq!(n, 2);
    assert_eq!(j.replay().unwrap().len(), 1);
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
        matches!(err.kind(), JournalErrorKind::TooNew { found: 9, known: 2 }),
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
            method: "mac".to_owned(),
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
    let ds = decisions(id);
    let expect = [
        IncidentState::Open,       // opened
        IncidentState::Open,       // attributed
        IncidentState::Open,       // threshold crossed
        IncidentState::Escalating, // act
        IncidentState::Escalating, // suppressed
        IncidentState::Contained,  // contained
        IncidentState::Restored,   // restored
        IncidentState::Closed,     // closed
    ];
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
            updated_at: 70,
        }
    );
}

#[test]
fn closed_is_final_until_the_incident_is_opened_again() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(3);
    let ds = decisions(id);
    j.record_batch(&batch(1, vec![], vec![ds[0].clone(), ds[7].clone()]))
        .unwrap();
    for d in [&ds[3], &ds[5], &ds[6]] {
        j.record_batch(&batch(2, vec![], vec![d.clone()])).unwrap();
        assert_eq!(state(&j, 3), IncidentState::Closed);
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
fn a_restore_does_not_escalate_and_a_new_act_after_restore_does() {
    let mut j = Journal::open_in_memory().unwrap();
    let id = IncidentId(4);
    let ds = decisions(id);
    j.record_batch(&batch(1, vec![], vec![ds[0].clone(), ds[5].clone()]))
        .unwrap();
    let mut restore = action(9, id, 2);
    restore.kind = ActionKind::Restore(Box::default());
    j.record_batch(&batch(2, vec![], vec![Decision::Act(restore)]))
        .unwrap();
    assert_eq!(state(&j, 4), IncidentState::Contained);
    j.record_batch(&batch(3, vec![], vec![ds[6].clone(), ds[3].clone()]))
        .unwrap();
    assert_eq!(state(&j, 4), IncidentState::Escalating);
}

#[test]
fn an_act_for_an_unknown_incident_creates_it_other_decisions_do_not() {
    let mut j = Journal::open_in_memory().unwrap();
    j.record_batch(&batch(
        1,
        vec![],
        vec![Decision::Contained {
            incident: IncidentId(8),
            by: "driver".into(),
        }],
    ))
    .unwrap();
    assert!(j.incident(IncidentId(8)).unwrap().is_none());
    j.record_batch(&batch(
        2,
        vec![],
        vec![Decision::Act(action(1, IncidentId(8), 2))],
    ))
    .unwrap();
    let row = j.incident(IncidentId(8)).unwrap().unwrap().incident;
    assert_eq!(
        (row.state, row.function, row.owner),
        (IncidentState::Escalating, vf(1), Some(vm("web-1")))
    );
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
        vec![(Observation::Tick, Some(one))],
        vec![decisions(one)[5].clone()],
    ))
    .unwrap();

    let d = j.incident(one).unwrap().unwrap();
    assert_eq!(d.incident.state, IncidentState::Contained);
    assert_eq!(
        d.observations.iter().map(|o| o.seq).collect::<Vec<_>>(),
        [1, 10]
    );
    assert!(d.observations.iter().all(|o| o.incident == Some(one)));
    assert_eq!(
        d.decisions.iter().map(|o| o.seq).collect::<Vec<_>>(),
        [4, 6, 11]
    );
    assert_eq!(d.actions.len(), 1);
    assert_eq!(d.actions[0].action, a);
    assert_eq!(d.actions[0].outcome_seq, Some(9));
    assert_eq!(d.actions[0].outcome, Some(outcome(&a, 9, None)));
    assert!(j.incident(IncidentId(77)).unwrap().is_none());
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
        .execute("UPDATE observations SET body = '{\"type\":\"nope\"}'", [])
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
            "UPDATE observations SET body = '{\"type\":\"tick\"}', at_ms = -5",
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
        vec![Decision::Closed {
            incident: closed,
            reason: "ok".into(),
        }],
    ))
    .unwrap();
    j.record_batch(&batch(9_000, vec![(Observation::Tick, None)], vec![]))
        .unwrap();
    // Cutoff 10_000 - 5_000 = 5_000: the untied tick, the closed incident's tick and its two
    // decisions go; the open incident's tick and decision stay, as does the recent tick.
    assert_eq!(j.apply_retention(10_000, 5_000, 1_000).unwrap(), 4);
    let left: Vec<_> = j
        .replay()
        .unwrap()
        .iter()
        .map(|e| (e.seq(), e.at()))
        .collect();
    assert_eq!(left, [(2, 1_000), (4, 1_000), (7, 9_000)]);
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
    .chain(incident::STATEMENTS);
    for sql in statements {
        let plan = plan(&j.conn, sql);
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{sql}\n{plan:#?}"
        );
    }
}

// --- migrations ---

/// What a build with only migration 1 wrote: the rows and the cursor, no `incidents` table.
fn write_v1(conn: &Connection, b: &Batch) {
    let n = (b.observations.len() + b.decisions.len()) as u64;
    let mut seq = record::reserve(conn, n).unwrap();
    for (o, inc) in &b.observations {
        conn.execute(
            record::INSERT_OBSERVATION,
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
            record::INSERT_DECISION,
            rusqlite::params![
                seq as i64,
                b.at as i64,
                entry::decision_type(d),
                entry::decision_incident(d).map(|i| i.0 as i64),
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
    assert_eq!(migrated.schema_version().unwrap(), 2);
    assert!(
        schema::applied(&migrated.conn, 1).unwrap() && schema::applied(&migrated.conn, 2).unwrap()
    );
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
    let incidents = migrated.incidents(&all()).unwrap();
    assert_eq!(incidents, fresh.incidents(&all()).unwrap());
    assert_eq!(
        incidents
            .iter()
            .map(|i| (i.id.0, i.state, i.pf))
            .collect::<Vec<_>>(),
        [
            (2, IncidentState::Contained, Some(pf())),
            (1, IncidentState::Closed, Some(pf()))
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
fn a_failing_migration_leaves_the_previous_version_intact() {
    let (_dir, path) = temp();
    Journal::open(&path).unwrap().close().unwrap();
    let broken = [
        Migration {
            version: 1,
            name: "journal",
            sql: MIGRATIONS[0].sql,
            backfill: None,
        },
        Migration {
            version: 2,
            name: "incidents",
            sql: MIGRATIONS[1].sql,
            backfill: MIGRATIONS[1].backfill,
        },
        Migration {
            version: 3,
            name: "broken",
            sql: "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);",
            backfill: None,
        },
    ];
    let err = Journal::open_with(&path, &broken).unwrap_err();
    assert_eq!(err.operation(), "migrating the schema");
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.schema_version().unwrap(), 2);
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
    assert_eq!(Journal::open(&old).unwrap().schema_version().unwrap(), 2);
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
