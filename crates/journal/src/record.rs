//! The writes: a batch (observations, decisions, cursor), an action's intent, its outcome.
//!
//! Each is one `BEGIN IMMEDIATE` transaction, committed with `synchronous=FULL`: when the call
//! returns `Ok`, the records are on disk and survive `kill -9` and power loss; when it returns
//! an error (or the process dies first), none of them are there. A restart therefore never
//! sees half a batch, and the cursor it resumes from is exactly the one of the last batch that
//! survived.
//!
//! # Design
//!
//! Every statement is an insert or a primary-key/index lookup (interning a shared body is a
//! lookup of its hash, and an insert when it is new; the tables' triggers update rows by primary
//! key): the cost of a commit depends on the size of the batch, not on the size of the journal. Validation that can fail without
//! touching the database (non-finite numbers, out-of-range integers) happens before the
//! transaction starts or before anything is written in it.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use vfguard_model::{Action, ActionOutcome, Decision, Observation};

use crate::body;
use crate::codec::{finite, int, json};
use crate::entry::{decision_type, observation_function, observation_pf, observation_type, Batch};
use crate::error::JournalErrorKind;
use crate::incident;

pub(crate) const INSERT_OBSERVATION: &str =
    "INSERT INTO observation_rows (id, at_ms, type, function, incident, shared, body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(crate) const INSERT_DECISION: &str =
    "INSERT INTO decision_rows (id, at_ms, type, incident, shared, body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub(crate) const UPSERT_CURSOR: &str = "INSERT INTO cursors (source, seq) VALUES (?1, ?2)
     ON CONFLICT (source) DO UPDATE SET seq = excluded.seq";
pub(crate) const RESERVE: &str =
    "UPDATE counters SET value = value + ?1 WHERE name = 'last_seq' RETURNING value";
pub(crate) const INSERT_INTENT: &str = "INSERT INTO actions
     (id, incident, function, action, rule, dry_run, intent_seq, intent_ms, intent)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
pub(crate) const FIND_ACTION: &str = "SELECT outcome_seq IS NOT NULL FROM actions WHERE id = ?1";
pub(crate) const SET_OUTCOME: &str =
    "UPDATE actions SET outcome_seq = ?2, outcome_ms = ?3, error = ?4, before = ?5 WHERE id = ?1";

/// Takes `n` numbers from the commit-order sequence; returns the first.
pub(crate) fn reserve(conn: &Connection, n: u64) -> Result<u64, JournalErrorKind> {
    let last: i64 = conn
        .prepare_cached(RESERVE)?
        .query_row([int(n, "batch size")?], |row| row.get(0))?;
    let last = crate::codec::Cell::new("counters", 0, "value").uint(last)?;
    Ok(last + 1 - n)
}

/// Refuses what would store a `null` where a number must come back.
fn check_finite(batch: &Batch) -> Result<(), JournalErrorKind> {
    for (o, _) in &batch.observations {
        if let Observation::Fault(ev) = o {
            if let Some(ts) = ev.timestamp {
                finite(ts, "fault event timestamp")?;
            }
        }
    }
    for d in &batch.decisions {
        if let Decision::Attributed { confidence, .. } = d {
            finite(*confidence, "attribution confidence")?;
        }
    }
    Ok(())
}

pub(crate) fn batch(conn: &mut Connection, batch: &Batch) -> Result<(), JournalErrorKind> {
    check_finite(batch)?;
    let at = int(batch.at, "batch time")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = (batch.observations.len() + batch.decisions.len()) as u64;
    if n > 0 {
        // Decisions first: an observation may belong to an incident this very batch opens, and
        // the row must be there when the observation goes in (its insert trigger counts it).
        for d in &batch.decisions {
            incident::apply_decision(&tx, batch.at, d)?;
        }
        let mut seq = reserve(&tx, n)?;
        let mut insert = tx.prepare_cached(INSERT_OBSERVATION)?;
        for (o, incident) in &batch.observations {
            let stored = body::observation(o)?;
            let shared = stored.shared.map(|s| body::intern(&tx, &s)).transpose()?;
            insert.execute(params![
                int(seq, "sequence number")?,
                at,
                observation_type(o),
                observation_function(o).map(|b| b.to_string()),
                incident.map(|i| int(i.0, "incident id")).transpose()?,
                shared,
                stored.own
            ])?;
            seq += 1;
        }
        drop(insert);
        let mut insert = tx.prepare_cached(INSERT_DECISION)?;
        for d in &batch.decisions {
            let stored = body::decision(d)?;
            let shared = stored.shared.map(|s| body::intern(&tx, &s)).transpose()?;
            insert.execute(params![
                int(seq, "sequence number")?,
                at,
                decision_type(d),
                d.incident().map(|i| int(i.0, "incident id")).transpose()?,
                shared,
                stored.own
            ])?;
            seq += 1;
        }
        drop(insert);
        for (o, inc) in &batch.observations {
            if let Some(inc) = inc {
                incident::touch(&tx, *inc, batch.at, observation_pf(o))?;
            }
        }
    }
    if let Some((source, seq)) = &batch.cursor {
        tx.prepare_cached(UPSERT_CURSOR)?
            .execute(params![source, int(*seq, "cursor")?])?;
    }
    tx.commit()?;
    Ok(())
}

/// Moves a source's cursor forward to `seq` (never back), in a transaction of its own.
pub(crate) fn cursor(
    conn: &mut Connection,
    source: &str,
    seq: u64,
) -> Result<(), JournalErrorKind> {
    const FORWARD: &str = "INSERT INTO cursors (source, seq) VALUES (?1, ?2)
     ON CONFLICT (source) DO UPDATE SET seq = max(seq, excluded.seq)";
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(FORWARD)?
        .execute(params![source, int(seq, "cursor")?])?;
    tx.commit()?;
    Ok(())
}

/// Intents, in one transaction (one commit for a round of actions).
pub(crate) fn intents(conn: &mut Connection, actions: &[Action]) -> Result<(), JournalErrorKind> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for a in actions {
        intent(&tx, a)?;
    }
    tx.commit()?;
    Ok(())
}

fn intent(tx: &Transaction<'_>, action: &Action) -> Result<(), JournalErrorKind> {
    let id = int(action.id.0, "action id")?;
    let incident = int(action.incident.0, "incident id")?;
    let at = int(action.at, "action time")?;
    let body = json(action, "action")?;
    let exists = tx
        .prepare_cached(FIND_ACTION)?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        return Err(JournalErrorKind::DuplicateIntent(action.id.0));
    }
    let seq = reserve(tx, 1)?;
    tx.prepare_cached(INSERT_INTENT)?.execute(params![
        id,
        incident,
        action.function.to_string(),
        action.kind.name(),
        action.rule.to_string(),
        action.dry_run,
        int(seq, "sequence number")?,
        at,
        body
    ])?;
    Ok(())
}

/// Outcomes, in one transaction.
pub(crate) fn outcomes(
    conn: &mut Connection,
    outcomes: &[ActionOutcome],
) -> Result<(), JournalErrorKind> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for o in outcomes {
        outcome(&tx, o)?;
    }
    tx.commit()?;
    Ok(())
}

fn outcome(tx: &Transaction<'_>, outcome: &ActionOutcome) -> Result<(), JournalErrorKind> {
    let id = int(outcome.id.0, "action id")?;
    let at = int(outcome.at, "outcome time")?;
    let before = outcome
        .before
        .as_ref()
        .map(|b| json(b, "state before the action"))
        .transpose()?;
    let done: Option<bool> = tx
        .prepare_cached(FIND_ACTION)?
        .query_row([id], |row| row.get(0))
        .optional()?;
    match done {
        None => return Err(JournalErrorKind::OutcomeWithoutIntent(outcome.id.0)),
        Some(true) => return Err(JournalErrorKind::DuplicateOutcome(outcome.id.0)),
        Some(false) => {}
    }
    let seq = reserve(tx, 1)?;
    tx.prepare_cached(SET_OUTCOME)?.execute(params![
        id,
        int(seq, "sequence number")?,
        at,
        outcome.error.as_ref().map(|e| e.name()),
        before
    ])?;
    Ok(())
}
