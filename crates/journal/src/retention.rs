//! Retention: keeps the journal's size bounded on a host that runs for years.
//!
//! Observations and decisions are the bulk (one row per fault line that mattered, and one or two
//! decisions each); they go once older than the configured age, and the oldest observations go
//! past a row cap. An incident that is not closed keeps its rows past the age limit, because the
//! engine rebuilds it from the replay after a restart and an operator investigating it needs its
//! evidence, but only the ends of them: of each kind of row that comes with every record of a
//! storm (evidence, ticks, and the `attributed`, `threshold_crossed` and `suppressed`
//! decisions), the first and the last [`Retention::open_incident_ends`] are kept, and the rows
//! between them that are older than the age limit go. The incident's row counts what went
//! (`evidence_dropped`, `decision_dropped`, kept by the tables' delete triggers), so a reader
//! can say "N observations not shown" and a storm that lasts a month costs a bounded size.
//!
//! # Design
//!
//! The decisions an open incident's story is made of (`incident_opened`, `state_changed`,
//! `act`, `contained`, `restored`, `closed`) are always kept whole, whatever their number: they
//! are few, and the restart and `vfguard explain` read them. Shared bodies no row references any
//! more (`bodies.refs` 0) go with the rows.
//!
//! # Limitations
//!
//! `incidents` and `actions` rows are never deleted: there is one per incident and one per
//! action, and they are the audit trail of what the agent did to tenants. The file does not
//! shrink (SQLite reuses the freed pages); `VACUUM` it offline if the disk must be given back.
//! Counting observations for the row cap reads the whole table once per call: retention is a
//! periodic chore, not on the commit path. A restart after the middle of an open incident's
//! evidence went replays its first and last records only: the engine's rule windows (far shorter
//! than the age limit) see what they saw, but what the engine decided in the dropped middle is
//! not decided again by the replay.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use vfguard_model::Millis;

use crate::codec::int;
use crate::error::JournalErrorKind;

/// What retention keeps (see [`crate::Journal::retain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Observations and decisions older than this (ms before `now`) go, but for the ends of the
    /// open incidents' rows.
    pub max_age_ms: u64,
    /// At most this many observations are kept, the oldest going first (an open incident's
    /// rows may exceed it: they are not counted out).
    pub max_rows: u64,
    /// Of each kind of an open incident's rows (evidence, ticks, per-record decisions), the
    /// first and the last this many are kept whatever their age.
    pub open_incident_ends: usize,
}

impl Retention {
    /// The ends of an open incident kept by default: [`crate::Journal::apply_retention`] keeps
    /// this many first and last rows of each kind.
    pub const DEFAULT_OPEN_INCIDENT_ENDS: usize = 1000;
}

/// Rows of the open incidents (anything not `closed`) are kept by the age and row limits.
const DELETABLE: &str =
    "(incident IS NULL OR incident NOT IN (SELECT id FROM incidents WHERE state != 'closed'))";

/// The kinds of an open incident's rows that come with every record of a storm, bounded to
/// their ends: (table, condition).
const BOUNDED: [(&str, &str); 3] = [
    ("observation_rows", "type != 'tick'"),
    ("observation_rows", "type = 'tick'"),
    (
        "decision_rows",
        "type IN ('attributed', 'threshold_crossed', 'suppressed')",
    ),
];

pub(crate) fn apply(
    conn: &mut Connection,
    now: Millis,
    r: &Retention,
) -> Result<u64, JournalErrorKind> {
    let cutoff = int(now.saturating_sub(r.max_age_ms), "retention cutoff")?;
    let max_rows = i64::try_from(r.max_rows).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = 0;
    for table in ["observation_rows", "decision_rows"] {
        deleted += tx.execute(
            &format!("DELETE FROM {table} WHERE at_ms < ?1 AND {DELETABLE}"),
            [cutoff],
        )?;
    }
    let open: Vec<i64> = tx
        .prepare("SELECT id FROM incidents WHERE state != 'closed' ORDER BY id")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for incident in open {
        for (table, kind) in BOUNDED {
            deleted += bound(&tx, table, kind, incident, cutoff, r.open_incident_ends)?;
        }
    }
    let total: i64 = tx.query_row("SELECT count(*) FROM observation_rows", [], |row| {
        row.get(0)
    })?;
    if total > max_rows {
        deleted += tx.execute(
            &format!(
                "DELETE FROM observation_rows WHERE id IN
                 (SELECT id FROM observation_rows WHERE {DELETABLE} ORDER BY id LIMIT ?1)"
            ),
            [total - max_rows],
        )?;
    }
    tx.execute("DELETE FROM bodies WHERE refs <= 0", [])?;
    tx.commit()?;
    Ok(deleted as u64)
}

/// Deletes an open incident's rows of one kind that are older than `cutoff`, but for its first
/// and last `ends` rows of that kind. Index range reads: the incident's rows, by id.
fn bound(
    conn: &Connection,
    table: &str,
    kind: &str,
    incident: i64,
    cutoff: i64,
    ends: usize,
) -> Result<usize, JournalErrorKind> {
    let (lo, hi) = if ends == 0 {
        (i64::MIN, i64::MAX)
    } else {
        let offset = i64::try_from(ends - 1).unwrap_or(i64::MAX);
        let nth = |order: &str| -> Result<Option<i64>, JournalErrorKind> {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT id FROM {table} WHERE incident = ?1 AND {kind}
                     ORDER BY id {order} LIMIT 1 OFFSET ?2"
                ))?
                .query_row(params![incident, offset], |row| row.get(0))
                .optional()?)
        };
        match (nth("ASC")?, nth("DESC")?) {
            (Some(lo), Some(hi)) if lo < hi => (lo, hi),
            _ => return Ok(0),
        }
    };
    Ok(conn
        .prepare_cached(&format!(
            "DELETE FROM {table} WHERE incident = ?1 AND {kind}
             AND id > ?2 AND id < ?3 AND at_ms < ?4"
        ))?
        .execute(params![incident, lo, hi, cutoff])?)
}
