//! Retention: keeps the journal's size bounded on a host that runs for years.
//!
//! Observations and decisions are the bulk (one row per fault line that mattered, and per
//! decision); they go once older than the configured age, and the oldest observations go past
//! a row cap. Incidents that are not closed keep everything attached to them, whatever its
//! age, because the engine rebuilds them from `replay` after a restart and an operator
//! investigating them needs their evidence.
//!
//! # Limitations
//!
//! `incidents` and `actions` rows are never deleted: there is one per incident and one per
//! action, and they are the audit trail of what the agent did to tenants. The file does not
//! shrink (SQLite reuses the freed pages); `VACUUM` it offline if the disk must be given back.
//! Counting observations for the row cap reads the whole table once per call: retention is a
//! periodic chore, not on the commit path.

use rusqlite::{Connection, TransactionBehavior};
use vfguard_model::Millis;

use crate::codec::int;
use crate::error::JournalErrorKind;

/// Rows of the open incidents (anything not `closed`) are never deleted.
const DELETABLE: &str =
    "(incident IS NULL OR incident NOT IN (SELECT id FROM incidents WHERE state != 'closed'))";

pub(crate) fn apply(
    conn: &mut Connection,
    now: Millis,
    max_age_ms: u64,
    max_rows: u64,
) -> Result<u64, JournalErrorKind> {
    let cutoff = int(now.saturating_sub(max_age_ms), "retention cutoff")?;
    let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = 0;
    for table in ["observations", "decisions"] {
        deleted += tx.execute(
            &format!("DELETE FROM {table} WHERE at_ms < ?1 AND {DELETABLE}"),
            [cutoff],
        )?;
    }
    let total: i64 = tx.query_row("SELECT count(*) FROM observations", [], |row| row.get(0))?;
    if total > max_rows {
        deleted += tx.execute(
            &format!(
                "DELETE FROM observations WHERE id IN
                 (SELECT id FROM observations WHERE {DELETABLE} ORDER BY id LIMIT ?1)"
            ),
            [total - max_rows],
        )?;
    }
    tx.commit()?;
    Ok(deleted as u64)
}
