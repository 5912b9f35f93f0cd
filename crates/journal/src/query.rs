//! The reads: cursors, pending intents, incidents, actions, and the full replay.
//!
//! Every stored value is decoded with its table, column and row named in the error, because
//! the file is outside input: a row edited by hand, or written by an incompatible build,
//! becomes an error the operator can find with `sqlite3`, not a panic and not a silent skip.

use rusqlite::{params, Connection, OptionalExtension, Row};
use vfguard_model::{ActionId, ActionOutcome, Errno, IncidentId};

use crate::codec::{int, Cell};
use crate::entry::{ActionRow, DecisionRow, Entry, ObservationRow};
use crate::error::JournalErrorKind;
use crate::incident::{IncidentDetail, IncidentFilter, IncidentRow, IncidentState};

type Result<T> = std::result::Result<T, JournalErrorKind>;

/// Collects the rows of a query through a fallible decoder.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Columns: id, at_ms, incident, body.
fn observation_row(row: &Row<'_>) -> Result<ObservationRow> {
    let id: i64 = row.get(0)?;
    let cell = |column| Cell::new("observations", id, column);
    Ok(ObservationRow {
        seq: cell("id").uint(id)?,
        at: cell("at_ms").uint(row.get(1)?)?,
        incident: row
            .get::<_, Option<i64>>(2)?
            .map(|i| cell("incident").uint(i).map(IncidentId))
            .transpose()?,
        observation: cell("body").json(&row.get::<_, String>(3)?)?,
    })
}

/// Columns: id, at_ms, body.
fn decision_row(row: &Row<'_>) -> Result<DecisionRow> {
    let id: i64 = row.get(0)?;
    let cell = |column| Cell::new("decisions", id, column);
    Ok(DecisionRow {
        seq: cell("id").uint(id)?,
        at: cell("at_ms").uint(row.get(1)?)?,
        decision: cell("body").json(&row.get::<_, String>(2)?)?,
    })
}

const ACTION_COLUMNS: &str =
    "id, intent_seq, intent, outcome_seq, outcome_ms, error, before FROM actions";

/// Columns: [`ACTION_COLUMNS`].
fn action_row(row: &Row<'_>) -> Result<ActionRow> {
    let id: i64 = row.get(0)?;
    let cell = |column| Cell::new("actions", id, column);
    let outcome_seq = row
        .get::<_, Option<i64>>(3)?
        .map(|s| cell("outcome_seq").uint(s))
        .transpose()?;
    let outcome = match outcome_seq {
        None => None,
        Some(_) => Some(ActionOutcome {
            id: ActionId(cell("id").uint(id)?),
            error: row
                .get::<_, Option<String>>(5)?
                .map(|e| Errno::from_name(&e)),
            before: row
                .get::<_, Option<String>>(6)?
                .map(|b| cell("before").json(&b))
                .transpose()?,
            at: cell("outcome_ms").uint(row.get(4)?)?,
        }),
    };
    Ok(ActionRow {
        seq: cell("intent_seq").uint(row.get(1)?)?,
        action: cell("intent").json(&row.get::<_, String>(2)?)?,
        outcome_seq,
        outcome,
    })
}

const INCIDENT_COLUMNS: &str =
    "id, function, pf, state, owner, opened_ms, updated_ms FROM incidents";

/// Columns: [`INCIDENT_COLUMNS`].
fn incident_row(row: &Row<'_>) -> Result<IncidentRow> {
    let id: i64 = row.get(0)?;
    let cell = |column| Cell::new("incidents", id, column);
    Ok(IncidentRow {
        id: IncidentId(cell("id").uint(id)?),
        function: cell("function").bdf(&row.get::<_, String>(1)?)?,
        pf: row
            .get::<_, Option<String>>(2)?
            .map(|p| cell("pf").bdf(&p))
            .transpose()?,
        state: cell("state").parsed(&row.get::<_, String>(3)?, IncidentState::from_name)?,
        owner: row
            .get::<_, Option<String>>(4)?
            .map(|o| cell("owner").json(&o))
            .transpose()?,
        opened_at: cell("opened_ms").uint(row.get(5)?)?,
        updated_at: cell("updated_ms").uint(row.get(6)?)?,
    })
}

/// The largest id in `table` (`actions` or `incidents`), if any row.
/// The largest action id (`MAX_ACTION_ID`) or incident id (`MAX_INCIDENT_ID`), if any row.
pub(crate) fn max_id(conn: &Connection, (table, sql): (&'static str, &str)) -> Result<Option<u64>> {
    let id: Option<i64> = conn.prepare_cached(sql)?.query_row([], |row| row.get(0))?;
    id.map(|i| Cell::new(table, i, "id").uint(i)).transpose()
}

pub(crate) const MAX_ACTION_ID: (&str, &str) = ("actions", "SELECT MAX(id) FROM actions");
pub(crate) const MAX_INCIDENT_ID: (&str, &str) = ("incidents", "SELECT MAX(id) FROM incidents");

pub(crate) fn cursor(conn: &Connection, source: &str) -> Result<Option<u64>> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM cursors WHERE source = ?1")?
        .query_row([source], |row| row.get(0))
        .optional()?;
    seq.map(|s| Cell::new("cursors", 0, "seq").uint(s))
        .transpose()
}

pub(crate) fn pending_intents(conn: &Connection) -> Result<Vec<ActionRow>> {
    collect(
        conn,
        &format!("SELECT {ACTION_COLUMNS} WHERE outcome_seq IS NULL ORDER BY intent_seq"),
        [],
        action_row,
    )
}

pub(crate) fn actions(conn: &Connection, limit: usize) -> Result<Vec<ActionRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    collect(
        conn,
        &format!("SELECT {ACTION_COLUMNS} ORDER BY intent_seq DESC LIMIT ?1"),
        [limit],
        action_row,
    )
}

pub(crate) fn incidents(conn: &Connection, filter: &IncidentFilter) -> Result<Vec<IncidentRow>> {
    collect(
        conn,
        &format!(
            "SELECT {INCIDENT_COLUMNS}
             WHERE (?1 = 0 OR state != 'closed')
               AND (?2 IS NULL OR owner_label = ?2
                    OR json_extract(owner, '$.name') = ?2 OR json_extract(owner, '$.id') = ?2)
               AND (?3 IS NULL OR pf = ?3 OR function = ?3)
             ORDER BY id DESC"
        ),
        params![
            filter.open_only,
            filter.owner,
            filter.pf.map(|b| b.to_string())
        ],
        incident_row,
    )
}

pub(crate) fn incident(conn: &Connection, id: IncidentId) -> Result<Option<IncidentDetail>> {
    let key = int(id.0, "incident id")?;
    let row = collect(
        conn,
        &format!("SELECT {INCIDENT_COLUMNS} WHERE id = ?1"),
        [key],
        incident_row,
    )?;
    let Some(incident) = row.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(IncidentDetail {
        incident,
        observations: collect(
            conn,
            // Ticks are linked to an incident they decided for (retention keeps them while it
            // is open) but are no evidence of it.
            "SELECT id, at_ms, incident, body FROM observations
             WHERE incident = ?1 AND type != 'tick' ORDER BY id",
            [key],
            observation_row,
        )?,
        decisions: collect(
            conn,
            "SELECT id, at_ms, body FROM decisions WHERE incident = ?1 ORDER BY id",
            [key],
            decision_row,
        )?,
        actions: collect(
            conn,
            &format!("SELECT {ACTION_COLUMNS} WHERE incident = ?1 ORDER BY intent_seq"),
            [key],
            action_row,
        )?,
    }))
}

/// Every record, interleaved by commit order. Outcomes are stored on their action's row and
/// come back as their own entries, at their own place in the order.
const REPLAY: &str = "
SELECT 0, id, at_ms, incident, body, NULL FROM observations
UNION ALL SELECT 1, id, at_ms, incident, body, NULL FROM decisions
UNION ALL SELECT 2, intent_seq, intent_ms, id, intent, NULL FROM actions
UNION ALL SELECT 3, outcome_seq, outcome_ms, id, error, before FROM actions
    WHERE outcome_seq IS NOT NULL
ORDER BY 2";

pub(crate) fn replay(conn: &Connection) -> Result<Vec<Entry>> {
    collect(conn, REPLAY, [], |row| {
        let seq: i64 = row.get(1)?;
        let kind: i64 = row.get(0)?;
        Ok(match kind {
            0 => Entry::Observation(ObservationRow {
                seq: Cell::new("observations", seq, "id").uint(seq)?,
                at: Cell::new("observations", seq, "at_ms").uint(row.get(2)?)?,
                incident: row
                    .get::<_, Option<i64>>(3)?
                    .map(|i| {
                        Cell::new("observations", seq, "incident")
                            .uint(i)
                            .map(IncidentId)
                    })
                    .transpose()?,
                observation: Cell::new("observations", seq, "body")
                    .json(&row.get::<_, String>(4)?)?,
            }),
            1 => Entry::Decision(DecisionRow {
                seq: Cell::new("decisions", seq, "id").uint(seq)?,
                at: Cell::new("decisions", seq, "at_ms").uint(row.get(2)?)?,
                decision: Cell::new("decisions", seq, "body").json(&row.get::<_, String>(4)?)?,
            }),
            2 => {
                let id: i64 = row.get(3)?;
                Entry::Intent {
                    seq: Cell::new("actions", id, "intent_seq").uint(seq)?,
                    action: Cell::new("actions", id, "intent").json(&row.get::<_, String>(4)?)?,
                }
            }
            _ => {
                let id: i64 = row.get(3)?;
                let cell = |column| Cell::new("actions", id, column);
                Entry::Outcome {
                    seq: cell("outcome_seq").uint(seq)?,
                    outcome: ActionOutcome {
                        id: ActionId(cell("id").uint(id)?),
                        error: row
                            .get::<_, Option<String>>(4)?
                            .map(|e| Errno::from_name(&e)),
                        before: row
                            .get::<_, Option<String>>(5)?
                            .map(|b| cell("before").json(&b))
                            .transpose()?,
                        at: cell("outcome_ms").uint(row.get(2)?)?,
                    },
                }
            }
        })
    })
}
