//! Model check of the journal against a `Vec` of committed transactions (vector's disk_v2
//! habit): random sequences of appends, intents, outcomes, clean reopens and torn WAL tails.
//!
//! After every step the journal must replay exactly the model. A clean reopen must lose
//! nothing. A torn tail (the journal closed as a crash leaves it, its `-wal` file cut short by
//! n bytes) must open without a corruption error and replay a prefix of the model that ends
//! on a transaction boundary, never part of a batch, with the cursor, the pending intents and
//! the incidents of exactly that prefix; the model is then cut to what survived.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/entries.rs"]
mod entries;

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use vfguard_journal::{
    Batch, DecisionRow, Entry, IncidentFilter, IncidentRow, IncidentState, Journal,
    JournalErrorKind, ObservationRow,
};
use vfguard_model::{
    Action, ActionId, ActionKind, ActionOutcome, Bdf, Cause, Decision, Errno, IncidentId, Method,
    Millis, Observation, OperatorRequest, Owner, RuleRef, VfChange, VfIndex, VfLinkState, VfState,
    VfStats,
};

// ---------------------------------------------------------------- generators

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 \"\\\\é\n{}]{0,10}"
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::NORMAL,
        proptest::num::f64::SUBNORMAL,
        proptest::num::f64::ZERO,
    ]
}

fn incident() -> impl Strategy<Value = IncidentId> {
    (1u64..=4).prop_map(IncidentId)
}

fn function() -> impl Strategy<Value = Bdf> {
    (0u8..8).prop_map(common::vf)
}

fn owner() -> impl Strategy<Value = Option<Owner>> {
    prop_oneof![
        Just(None),
        (0u8..4).prop_map(|n| Some(common::vm(&format!("web-{n}")))),
        Just(Some(Owner::host("bound to i40e"))),
    ]
}

fn observation() -> impl Strategy<Value = Observation> {
    prop_oneof![
        Just(Observation::Tick),
        (
            0u8..8,
            any::<u64>(),
            prop::option::of(float()),
            text(),
            any::<bool>()
        )
            .prop_map(|(n, seq, ts, message, with_pf)| {
                let mut ev = common::fault(n, seq);
                ev.timestamp = ts;
                ev.message = message;
                if !with_pf {
                    ev.pf = None;
                }
                Observation::Fault(ev)
            }),
        (function(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(function, correctable, nonfatal, fatal)| Observation::Aer {
                function,
                correctable,
                nonfatal,
                fatal,
            }
        ),
        (0u16..8, any::<u64>(), any::<u64>()).prop_map(|(vf, rx, drop)| Observation::VfStats {
            pf: common::pf(),
            vf: VfIndex(vf),
            stats: VfStats {
                rx_packets: rx,
                tx_dropped: drop,
                ..VfStats::default()
            },
        }),
        (function(), text(), text()).prop_map(|(function, reason, by)| Observation::Operator(
            OperatorRequest::Quarantine {
                function,
                reason,
                by
            }
        )),
    ]
}

fn action_kind() -> impl Strategy<Value = ActionKind> {
    prop_oneof![
        Just(ActionKind::Notify),
        Just(ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable))),
        (any::<u32>(), any::<u32>()).prop_map(|(min_mbps, max_mbps)| ActionKind::SetVf(
            VfChange::Rate { min_mbps, max_mbps }
        )),
        Just(ActionKind::Detach),
        Just(ActionKind::Restore(Box::new(VfState {
            index: 1,
            trust: Some(false),
            ..VfState::default()
        }))),
    ]
}

fn action(id: u64) -> impl Strategy<Value = Action> {
    (
        incident(),
        function(),
        any::<bool>(),
        owner(),
        action_kind(),
        text(),
        any::<bool>(),
        0u64..1 << 40,
    )
        .prop_map(
            move |(incident, function, with_pf, owner, kind, rule, dry_run, at)| {
                let mut a = common::action(id, incident, at);
                a.function = function;
                a.pf = with_pf.then(common::pf);
                a.owner = owner;
                a.kind = kind;
                // Any text: what a journal holds reads back as it was written.
                a.rule = RuleRef::parse(&rule);
                a.dry_run = dry_run;
                a
            },
        )
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        3 => (incident(), function(), owner()).prop_map(|(incident, function, owner)| {
            Decision::IncidentOpened { incident, function, owner }
        }),
        1 => (incident(), prop::sample::select(Method::ALL.to_vec()), float(), text()).prop_map(
            |(incident, method, confidence, evidence)| Decision::Attributed {
                incident,
                method,
                confidence,
                evidence,
            }
        ),
        1 => (incident(), text(), any::<u32>()).prop_map(|(incident, rule, count)| {
            Decision::ThresholdCrossed { incident, rule, count }
        }),
        2 => (0u64..1000).prop_flat_map(action).prop_map(Decision::Act),
        1 => (incident(), text(), text()).prop_map(|(incident, action, reason)| {
            Decision::Suppressed { incident, action, reason }
        }),
        1 => (incident(), text()).prop_map(|(incident, by)| Decision::Contained { incident, by }),
        1 => incident().prop_map(|incident| Decision::Restored { incident }),
        1 => (incident(), text()).prop_map(|(incident, reason)| Decision::Closed { incident, reason }),
        2 => (incident(), 0usize..6, 0usize..6).prop_map(|(incident, from, to)| {
            let s = |i: usize| IncidentState::ALL.get(i).copied().unwrap_or_default();
            Decision::StateChanged { incident, from: s(from), to: s(to), cause: Cause::Escalated }
        }),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        0u64..1 << 40,
        prop::collection::vec((observation(), prop::option::of(incident())), 0..4),
        prop::collection::vec(decision(), 0..4),
        prop::option::of(0u64..1 << 40),
    )
        .prop_map(|(at, observations, decisions, cursor)| Batch {
            at,
            observations,
            decisions,
            cursor: cursor.map(|c| ("kmsg".to_owned(), c)),
        })
}

#[derive(Debug, Clone)]
enum Op {
    Append(Batch),
    /// A fresh action, or (`reuse`) one already journalled: refused as a duplicate.
    Intent {
        reuse: Option<Index>,
        template: Action,
    },
    /// An outcome for one of the actions ever generated, or for one never journalled.
    Outcome {
        pick: Index,
        at: Millis,
        error: Option<Errno>,
        before: bool,
    },
    Reopen,
    TruncateTail(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => batch().prop_map(Op::Append),
        3 => (prop::option::weighted(0.2, any::<Index>()), action(0))
            .prop_map(|(reuse, template)| Op::Intent { reuse, template }),
        3 => (any::<Index>(), 0u64..1 << 40, prop::option::of("E[A-Z0-9]{0,8}|[a-z :]{0,12}"), any::<bool>())
            .prop_map(|(pick, at, error, before)| Op::Outcome {
                pick,
                at,
                error: error.as_deref().map(Errno::from_name),
                before,
            }),
        1 => Just(Op::Reopen),
        // WAL frames are 4 KiB pages plus a 24-byte header; a batch writes a few of them.
        2 => prop_oneof![0u64..100, 0u64..60_000, Just(u64::MAX)].prop_map(Op::TruncateTail),
    ]
}

// ---------------------------------------------------------------- the model

/// One committed transaction.
#[derive(Debug, Clone)]
struct Txn {
    entries: Vec<Entry>,
    /// The batch's cursor, for batches that carry one.
    cursor: Option<u64>,
    /// For batches: its time, observations and decisions (the incidents are derived from them).
    batch: Option<Batch>,
}

#[derive(Debug, Default)]
struct Model {
    txns: Vec<Txn>,
    /// Every action id generated so far (journalled or not; surviving or not).
    generated: Vec<u64>,
}

impl Model {
    fn entries(&self) -> Vec<Entry> {
        self.txns.iter().flat_map(|t| t.entries.clone()).collect()
    }

    fn next_seq(&self) -> u64 {
        self.txns
            .iter()
            .map(|t| t.entries.len() as u64)
            .sum::<u64>()
            + 1
    }

    fn cursor(&self) -> Option<u64> {
        self.txns.iter().rev().find_map(|t| t.cursor)
    }

    fn intent(&self, id: u64) -> Option<&Action> {
        self.txns
            .iter()
            .flat_map(|t| &t.entries)
            .find_map(|e| match e {
                Entry::Intent { action, .. } if action.id.0 == id => Some(action),
                _ => None,
            })
    }

    fn has_outcome(&self, id: u64) -> bool {
        self.txns
            .iter()
            .flat_map(|t| &t.entries)
            .any(|e| matches!(e, Entry::Outcome { outcome, .. } if outcome.id.0 == id))
    }

    fn pending(&self) -> Vec<Action> {
        self.txns
            .iter()
            .flat_map(|t| &t.entries)
            .filter_map(|e| match e {
                Entry::Intent { action, .. } if !self.has_outcome(action.id.0) => {
                    Some(action.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn append(&mut self, b: &Batch) {
        let entries = entries::of_batch(b, self.next_seq());
        self.txns.push(Txn {
            entries,
            cursor: b.cursor.as_ref().map(|c| c.1),
            batch: Some(b.clone()),
        });
    }

    fn single(&mut self, entry: Entry) {
        self.txns.push(Txn {
            entries: vec![entry],
            cursor: None,
            batch: None,
        });
    }

    /// The incidents table as the rules of `crates/journal/src/incident.rs` describe it,
    /// newest id first.
    fn incidents(&self) -> Vec<IncidentRow> {
        let mut rows: BTreeMap<u64, IncidentRow> = BTreeMap::new();
        let touch = |rows: &mut BTreeMap<u64, IncidentRow>, id: IncidentId, at, pf: Option<Bdf>| {
            if let Some(r) = rows.get_mut(&id.0) {
                r.updated_at = r.updated_at.max(at);
                r.pf = r.pf.or(pf);
            }
        };
        for b in self.txns.iter().filter_map(|t| t.batch.as_ref()) {
            let at = b.at;
            for d in &b.decisions {
                match d {
                    Decision::IncidentOpened {
                        incident,
                        function,
                        owner,
                    } => {
                        let r = rows.entry(incident.0).or_insert_with(|| IncidentRow {
                            id: *incident,
                            function: *function,
                            pf: None,
                            state: IncidentState::Open,
                            owner: None,
                            opened_at: at,
                            updated_at: at,
                        });
                        r.function = *function;
                        r.owner = owner.clone();
                        r.state = IncidentState::Open;
                        r.updated_at = r.updated_at.max(at);
                    }
                    Decision::Act(a) if matches!(a.kind, ActionKind::Restore(_)) => {
                        touch(&mut rows, a.incident, at, a.pf);
                    }
                    Decision::Act(a) => match rows.get_mut(&a.incident.0) {
                        Some(r) => {
                            r.updated_at = r.updated_at.max(at);
                            r.pf = r.pf.or(a.pf);
                        }
                        None => {
                            rows.insert(
                                a.incident.0,
                                IncidentRow {
                                    id: a.incident,
                                    function: a.function,
                                    pf: a.pf,
                                    state: if a.kind == ActionKind::Notify {
                                        IncidentState::Open
                                    } else {
                                        IncidentState::Escalating
                                    },
                                    owner: a.owner.clone(),
                                    opened_at: at,
                                    updated_at: at,
                                },
                            );
                        }
                    },
                    // The state is what the engine decided, nothing else.
                    Decision::StateChanged { incident, to, .. } => {
                        if let Some(r) = rows.get_mut(&incident.0) {
                            r.state = *to;
                            r.updated_at = r.updated_at.max(at);
                        }
                    }
                    Decision::Contained { incident, .. }
                    | Decision::Restored { incident }
                    | Decision::Closed { incident, .. }
                    | Decision::Attributed { incident, .. }
                    | Decision::ThresholdCrossed { incident, .. }
                    | Decision::Suppressed { incident, .. } => {
                        touch(&mut rows, *incident, at, None)
                    }
                    Decision::ModeChanged { .. } => {}
                }
            }
            for (o, inc) in &b.observations {
                if let Some(inc) = inc {
                    let pf = match o {
                        Observation::Fault(ev) => ev.pf,
                        Observation::VfStats { pf, .. } => Some(*pf),
                        _ => None,
                    };
                    touch(&mut rows, *inc, at, pf);
                }
            }
        }
        rows.into_values().rev().collect()
    }
}

// ---------------------------------------------------------------- the check

fn check_same(j: &Journal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(j.replay().unwrap(), model.entries());
    prop_assert_eq!(j.cursor("kmsg").unwrap(), model.cursor());
    prop_assert_eq!(j.pending_intents().unwrap(), model.pending());
    prop_assert_eq!(
        j.incidents(&IncidentFilter::default()).unwrap(),
        model.incidents()
    );
    Ok(())
}

fn integrity_ok(path: &Path) -> Result<(), TestCaseError> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    prop_assert_eq!(verdict, "ok");
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let wal = dir.path().join("journal.db-wal");
    let mut j = Journal::open(&path).unwrap();
    let mut model = Model::default();
    let mut next_action = 1u64;
    for op in ops {
        match op {
            Op::Append(b) => {
                j.record_batch(&b).unwrap();
                model.append(&b);
            }
            Op::Intent { reuse, template } => {
                let journalled: Vec<Action> = model
                    .txns
                    .iter()
                    .flat_map(|t| &t.entries)
                    .filter_map(|e| match e {
                        Entry::Intent { action, .. } => Some(action.clone()),
                        _ => None,
                    })
                    .collect();
                match reuse {
                    Some(i) if !journalled.is_empty() => {
                        let again = i.get(&journalled);
                        let err = j.record_intent(again).unwrap_err();
                        prop_assert!(
                            matches!(err.kind(), JournalErrorKind::DuplicateIntent(id) if *id == again.id.0),
                            "{err:?}"
                        );
                    }
                    _ => {
                        let mut a = template;
                        a.id = ActionId(next_action);
                        model.generated.push(next_action);
                        next_action += 1;
                        j.record_intent(&a).unwrap();
                        let seq = model.next_seq();
                        model.single(Entry::Intent { seq, action: a });
                    }
                }
            }
            Op::Outcome {
                pick,
                at,
                error,
                before,
            } => {
                let mut candidates = model.generated.clone();
                candidates.push(next_action + 1_000); // never journalled
                let id = *pick.get(&candidates);
                let outcome = ActionOutcome {
                    id: ActionId(id),
                    error,
                    before: before.then(|| VfState {
                        index: 3,
                        spoofchk: Some(true),
                        ..VfState::default()
                    }),
                    at,
                };
                let result = j.record_outcome(&outcome);
                if model.intent(id).is_none() {
                    let err = result.unwrap_err();
                    prop_assert!(
                        matches!(err.kind(), JournalErrorKind::OutcomeWithoutIntent(x) if *x == id)
                    );
                } else if model.has_outcome(id) {
                    let err = result.unwrap_err();
                    prop_assert!(
                        matches!(err.kind(), JournalErrorKind::DuplicateOutcome(x) if *x == id)
                    );
                } else {
                    result.unwrap();
                    let seq = model.next_seq();
                    model.single(Entry::Outcome { seq, outcome });
                }
            }
            Op::Reopen => {
                j.close().unwrap();
                j = Journal::open(&path).unwrap();
                // A clean close loses nothing: checked below.
            }
            Op::TruncateTail(n) => {
                j.close_without_checkpoint().unwrap();
                if let Ok(meta) = std::fs::metadata(&wal) {
                    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
                    file.set_len(meta.len().saturating_sub(n)).unwrap();
                }
                j = Journal::open(&path).expect("a torn WAL tail must not be a corruption error");
                integrity_ok(&path)?;
                let replayed = j.replay().unwrap();
                let cursor = j.cursor("kmsg").unwrap();
                // The longest prefix of whole transactions that the journal still holds.
                let mut survived = None;
                let mut entries = Vec::new();
                for k in 0..=model.txns.len() {
                    if k > 0 {
                        entries.extend(model.txns[k - 1].entries.iter().cloned());
                    }
                    let prefix_cursor = model.txns[..k].iter().rev().find_map(|t| t.cursor);
                    if entries == replayed && prefix_cursor == cursor {
                        survived = Some(k);
                    }
                    if entries.len() > replayed.len() {
                        break;
                    }
                }
                let Some(k) = survived else {
                    return Err(TestCaseError::fail(format!(
                        "after cutting {n} bytes the journal holds {} entries (cursor {cursor:?}), \
                         not a transaction prefix of the model's {}",
                        replayed.len(),
                        model.entries().len()
                    )));
                };
                if n == 0 {
                    prop_assert_eq!(k, model.txns.len(), "nothing cut, nothing lost");
                }
                model.txns.truncate(k);
            }
        }
        check_same(&j, &model)?;
    }
    j.close().unwrap();
    let j = Journal::open(&path).unwrap();
    check_same(&j, &model)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn journal_matches_its_model_through_reopens_and_torn_tails(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        run(ops)?;
    }
}

/// The torn-tail path really tears: cutting ever more off a WAL that holds 20 batches loses
/// whole batches, newest first, down to none (cutting into its header loses everything since
/// the last checkpoint), and the journal opens every time with the cursor of what is left.
#[test]
fn a_torn_wal_loses_whole_batches_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let wal = dir.path().join("journal.db-wal");
    let batches: Vec<Batch> = (0..20u64)
        .map(|i| Batch {
            at: i,
            observations: vec![(Observation::Tick, Some(IncidentId(i)))],
            decisions: common::decisions(IncidentId(i))[..2].to_vec(),
            cursor: Some(("kmsg".to_owned(), i)),
        })
        .collect();
    Journal::open(&path).unwrap().close().unwrap(); // the schema goes into the main file
    let mut j = Journal::open(&path).unwrap();
    for b in &batches {
        j.record_batch(b).unwrap();
    }
    j.close_without_checkpoint().unwrap();
    let full = std::fs::metadata(&wal).unwrap().len();
    let mut kept_after = Vec::new();
    let mut cut = 0;
    while cut < full {
        cut = (cut + 1 + full / 8).min(full);
        let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
        file.set_len(full - cut).unwrap();
        drop(file);
        let j = Journal::open(&path).unwrap();
        let replayed = j.replay().unwrap();
        assert_eq!(replayed.len() % 3, 0, "whole batches only");
        let kept = replayed.len() / 3;
        let expected: Vec<Entry> = {
            let mut e = Vec::new();
            for (i, b) in batches[..kept].iter().enumerate() {
                let seq = i as u64 * 3;
                e.push(Entry::Observation(ObservationRow {
                    seq: seq + 1,
                    at: b.at,
                    incident: b.observations[0].1,
                    observation: Observation::Tick,
                }));
                for (k, d) in b.decisions.iter().enumerate() {
                    e.push(Entry::Decision(DecisionRow {
                        seq: seq + 2 + k as u64,
                        at: b.at,
                        decision: d.clone(),
                    }));
                }
            }
            e
        };
        assert_eq!(replayed, expected);
        assert_eq!(
            j.cursor("kmsg").unwrap(),
            kept.checked_sub(1).map(|k| k as u64)
        );
        assert_eq!(j.incidents(&IncidentFilter::default()).unwrap().len(), kept);
        kept_after.push(kept);
        j.close_without_checkpoint().unwrap();
    }
    assert!(
        kept_after.windows(2).all(|w| w[1] <= w[0]),
        "{kept_after:?}"
    );
    assert!(kept_after[0] < batches.len(), "{kept_after:?}");
    assert_eq!(kept_after.last(), Some(&0), "{kept_after:?}");
    let distinct = kept_after
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(
        distinct >= 4,
        "the tail goes a few batches at a time: {kept_after:?}"
    );
    let j = Journal::open(&path).unwrap();
    assert_eq!(
        j.schema_version().unwrap(),
        Journal::latest_schema_version()
    );
}
