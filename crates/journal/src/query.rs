//! The reads: cursors, pending intents, incidents (listed, paged, streamed), actions, and the
//! replay.
//!
//! Every stored value is decoded with its table, column and row named in the error, because
//! the file is outside input: a row edited by hand, or written by an incompatible build,
//! becomes an error the operator can find with `sqlite3`, not a panic and not a silent skip.
//!
//! # Design
//!
//! Nothing here holds more than a bounded number of rows: an incident's page reads its first
//! and last rows by index (and its counts from the `incidents` row), and the streams
//! ([`Chunks`]) read in keyset chunks of [`CHUNK`] rows (`WHERE id > last ORDER BY id LIMIT n`,
//! each a range of the primary key or an index), so the memory a reader holds is the same for
//! an incident of ten observations and one of two million. The replay merges four such streams
//! (observations, decisions, intents, outcomes: each in its own commit order) by sequence
//! number. `collect` remains for the lists that are small by nature (pending
//! intents, the last N actions, incidents) and for the unbounded methods kept for callers that
//! have not moved to the streams.

use std::collections::VecDeque;

use rusqlite::{params, Connection, OptionalExtension, Row};
use vfguard_model::{ActionId, ActionOutcome, Errno, IncidentId};

use crate::body::Decoder;
use crate::codec::{int, Cell};
use crate::entry::{ActionRow, DecisionRow, Entry, ObservationRow};
use crate::error::JournalErrorKind;
use crate::incident::{IncidentFilter, IncidentPage, IncidentRow, IncidentState, Page};

type Result<T> = std::result::Result<T, JournalErrorKind>;

/// Rows a stream reads per query.
pub(crate) const CHUNK: usize = 512;

/// Collects the rows of a query through a fallible decoder.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut decode: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// An `i64` count column as a `u64`.
fn count(cell: Cell, n: i64) -> Result<u64> {
    cell.uint(n)
}

/// Columns of `observation_rows`: id, at_ms, incident, shared, body.
fn observation_row(d: &mut Decoder<'_>, row: &Row<'_>) -> Result<ObservationRow> {
    let id: i64 = row.get(0)?;
    let cell = |column| Cell::new("observations", id, column);
    Ok(ObservationRow {
        seq: cell("id").uint(id)?,
        at: cell("at_ms").uint(row.get(1)?)?,
        incident: row
            .get::<_, Option<i64>>(2)?
            .map(|i| cell("incident").uint(i).map(IncidentId))
            .transpose()?,
        observation: d.observation(cell("body"), row.get(3)?, row.get(4)?)?,
    })
}

/// Columns of `decision_rows`: id, at_ms, shared, body.
fn decision_row(d: &mut Decoder<'_>, row: &Row<'_>) -> Result<DecisionRow> {
    let id: i64 = row.get(0)?;
    let cell = |column| Cell::new("decisions", id, column);
    Ok(DecisionRow {
        seq: cell("id").uint(id)?,
        at: cell("at_ms").uint(row.get(1)?)?,
        decision: d.decision(cell("body"), row.get(2)?, row.get(3)?)?,
    })
}

const ACTION_COLUMNS: &str =
    "id, intent_seq, intent, outcome_seq, outcome_ms, error, before FROM actions";

/// The outcome columns of an action row (`id`, then error, before, outcome_ms at the given
/// positions).
fn outcome_of(row: &Row<'_>, id: i64, at: usize, error: usize) -> Result<ActionOutcome> {
    let cell = |column| Cell::new("actions", id, column);
    Ok(ActionOutcome {
        id: ActionId(cell("id").uint(id)?),
        error: row
            .get::<_, Option<String>>(error)?
            .map(|e| Errno::from_name(&e)),
        before: row
            .get::<_, Option<String>>(error + 1)?
            .map(|b| cell("before").json(&b))
            .transpose()?,
        at: cell("outcome_ms").uint(row.get(at)?)?,
    })
}

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
        Some(_) => Some(outcome_of(row, id, 4, 5)?),
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

/// The incident's row, if any.
fn incident_header(conn: &Connection, key: i64) -> Result<Option<IncidentRow>> {
    let row = collect(
        conn,
        &format!("SELECT {INCIDENT_COLUMNS} WHERE id = ?1"),
        [key],
        incident_row,
    )?;
    Ok(row.into_iter().next())
}

// Ticks are linked to an incident they decided for (retention keeps them while it is open)
// but are no evidence of it: the incident's reads leave them out.
const EVIDENCE_FIRST: &str = "SELECT id, at_ms, incident, shared, body FROM observation_rows
     WHERE incident = ?1 AND type != 'tick' AND id > ?2 ORDER BY id LIMIT ?3";
const EVIDENCE_LAST: &str = "SELECT id, at_ms, incident, shared, body FROM observation_rows
     WHERE incident = ?1 AND type != 'tick' AND id > ?2 ORDER BY id DESC LIMIT ?3";
const DECISIONS_FIRST: &str = "SELECT id, at_ms, shared, body FROM decision_rows
     WHERE incident = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
const DECISIONS_LAST: &str = "SELECT id, at_ms, shared, body FROM decision_rows
     WHERE incident = ?1 AND id > ?2 ORDER BY id DESC LIMIT ?3";
const ACTIONS_FIRST: &str = "SELECT id, intent_seq, intent, outcome_seq, outcome_ms, error, before
     FROM actions WHERE incident = ?1 AND intent_seq > ?2 ORDER BY intent_seq LIMIT ?3";
const ACTIONS_LAST: &str = "SELECT id, intent_seq, intent, outcome_seq, outcome_ms, error, before
     FROM actions WHERE incident = ?1 AND intent_seq > ?2 ORDER BY intent_seq DESC LIMIT ?3";
const COUNTS: &str = "SELECT evidence_count, evidence_dropped, decision_count, decision_dropped,
     (SELECT count(*) FROM actions WHERE incident = ?1) FROM incidents WHERE id = ?1";

/// The statements of the paged and streamed reads (for the query-plan test).
#[cfg(test)]
pub(crate) const READS: [&str; 7] = [
    EVIDENCE_FIRST,
    EVIDENCE_LAST,
    DECISIONS_FIRST,
    DECISIONS_LAST,
    ACTIONS_FIRST,
    ACTIONS_LAST,
    COUNTS,
];

/// The first `first` and last `last` rows of a list ordered by a key (`first_sql` and
/// `last_sql` take the list's owner, a key to start after, and a limit).
fn ends<T>(
    conn: &Connection,
    (first_sql, last_sql): (&str, &str),
    owner: i64,
    (first, last): (i64, i64),
    mut decode: impl FnMut(&Row<'_>) -> Result<T>,
    key: impl Fn(&T) -> u64,
) -> Result<(Vec<T>, Vec<T>)> {
    let head = collect(
        conn,
        first_sql,
        params![owner, i64::MIN, first],
        &mut decode,
    )?;
    let after = match head.last() {
        Some(t) => int(key(t), "sequence number")?,
        None => i64::MIN,
    };
    let mut tail = collect(conn, last_sql, params![owner, after, last], &mut decode)?;
    tail.reverse();
    Ok((head, tail))
}

pub(crate) fn incident_page(
    conn: &Connection,
    id: IncidentId,
    first: usize,
    last: usize,
) -> Result<Option<IncidentPage>> {
    let key = int(id.0, "incident id")?;
    let Some(incident) = incident_header(conn, key)? else {
        return Ok(None);
    };
    let limits = (
        i64::try_from(first).unwrap_or(i64::MAX),
        i64::try_from(last).unwrap_or(i64::MAX),
    );
    let cell = |column| Cell::new("incidents", key, column);
    let counts: [i64; 5] = conn.prepare_cached(COUNTS)?.query_row([key], |row| {
        Ok([
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ])
    })?;
    let [evidence, evidence_dropped, decisions, decisions_dropped, actions] = counts;
    let mut d = Decoder::new(conn);
    let (o_first, o_last) = ends(
        conn,
        (EVIDENCE_FIRST, EVIDENCE_LAST),
        key,
        limits,
        |row| observation_row(&mut d, row),
        |o: &ObservationRow| o.seq,
    )?;
    let mut d = Decoder::new(conn);
    let (d_first, d_last) = ends(
        conn,
        (DECISIONS_FIRST, DECISIONS_LAST),
        key,
        limits,
        |row| decision_row(&mut d, row),
        |r: &DecisionRow| r.seq,
    )?;
    let (a_first, a_last) = ends(
        conn,
        (ACTIONS_FIRST, ACTIONS_LAST),
        key,
        limits,
        action_row,
        |a: &ActionRow| a.seq,
    )?;
    Ok(Some(IncidentPage {
        incident,
        observations: Page {
            first: o_first,
            last: o_last,
            total: count(cell("evidence_count"), evidence)?,
            dropped: count(cell("evidence_dropped"), evidence_dropped)?,
        },
        decisions: Page {
            first: d_first,
            last: d_last,
            total: count(cell("decision_count"), decisions)?,
            dropped: count(cell("decision_dropped"), decisions_dropped)?,
        },
        actions: Page {
            first: a_first,
            last: a_last,
            total: count(cell("id"), actions)?,
            dropped: 0,
        },
    }))
}

/// Whether the journal has an incident `id` (and its key).
pub(crate) fn incident_key(conn: &Connection, id: IncidentId) -> Result<Option<i64>> {
    let key = int(id.0, "incident id")?;
    let found = conn
        .prepare_cached("SELECT 1 FROM incidents WHERE id = ?1")?
        .query_row([key], |_| Ok(()))
        .optional()?;
    Ok(found.map(|()| key))
}

/// What a stream reads: one table in one order, by keyset chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// An incident's evidence (ticks left out), by id.
    Evidence(i64),
    /// An incident's decisions, by id.
    IncidentDecisions(i64),
    /// An incident's actions, by intent sequence number.
    IncidentActions(i64),
    /// Every observation, by id.
    Observations,
    /// Every decision, by id.
    Decisions,
    /// Every intent, by its sequence number.
    Intents,
    /// Every outcome, by its sequence number.
    Outcomes,
}

const ALL_OBSERVATIONS: &str = "SELECT id, at_ms, incident, shared, body FROM observation_rows
     WHERE id > ?1 ORDER BY id LIMIT ?2";
const ALL_DECISIONS: &str =
    "SELECT id, at_ms, shared, body FROM decision_rows WHERE id > ?1 ORDER BY id LIMIT ?2";
const ALL_INTENTS: &str = "SELECT id, intent_seq, intent, outcome_seq, outcome_ms, error, before
     FROM actions WHERE intent_seq > ?1 ORDER BY intent_seq LIMIT ?2";
const ALL_OUTCOMES: &str = "SELECT id, outcome_seq, outcome_ms, error, before
     FROM actions WHERE outcome_seq > ?1 ORDER BY outcome_seq LIMIT ?2";

/// The statements of the replay's streams (for the query-plan test).
#[cfg(test)]
pub(crate) const STREAMS: [&str; 4] = [ALL_OBSERVATIONS, ALL_DECISIONS, ALL_INTENTS, ALL_OUTCOMES];

/// One row of a stream, before it is given out: what the stream yields, keyed.
pub(crate) enum Item {
    Observation(ObservationRow),
    Decision(DecisionRow),
    Action(ActionRow),
    Outcome { seq: u64, outcome: ActionOutcome },
}

impl Item {
    /// Its key in the stream's order (a commit-order number).
    fn key(&self) -> u64 {
        match self {
            Item::Observation(o) => o.seq,
            Item::Decision(d) => d.seq,
            Item::Action(a) => a.seq,
            Item::Outcome { seq, .. } => *seq,
        }
    }

    /// As a replay entry.
    pub(crate) fn into_entry(self) -> Entry {
        match self {
            Item::Observation(o) => Entry::Observation(o),
            Item::Decision(d) => Entry::Decision(d),
            Item::Action(a) => Entry::Intent {
                seq: a.seq,
                action: a.action,
            },
            Item::Outcome { seq, outcome } => Entry::Outcome { seq, outcome },
        }
    }
}

/// A keyset-chunked stream over one [`Source`]: at most [`CHUNK`] decoded rows in memory.
pub(crate) struct Chunks<'c> {
    decoder: Decoder<'c>,
    source: Source,
    after: i64,
    buf: VecDeque<Item>,
    done: bool,
}

impl<'c> Chunks<'c> {
    pub(crate) fn new(conn: &'c Connection, source: Source) -> Chunks<'c> {
        Chunks::after(conn, source, i64::MIN)
    }

    /// A stream of the rows whose key is greater than `after`.
    pub(crate) fn after(conn: &'c Connection, source: Source, after: i64) -> Chunks<'c> {
        Chunks {
            decoder: Decoder::new(conn),
            source,
            after,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// Reads the next chunk.
    fn fill(&mut self) -> Result<()> {
        let limit = CHUNK as i64;
        let after = self.after;
        let conn = self.decoder.conn();
        let d = &mut self.decoder;
        let items: Vec<Item> = match self.source {
            Source::Evidence(key) => {
                collect(conn, EVIDENCE_FIRST, params![key, after, limit], |r| {
                    observation_row(d, r).map(Item::Observation)
                })?
            }
            Source::IncidentDecisions(key) => {
                collect(conn, DECISIONS_FIRST, params![key, after, limit], |r| {
                    decision_row(d, r).map(Item::Decision)
                })?
            }
            Source::IncidentActions(key) => {
                collect(conn, ACTIONS_FIRST, params![key, after, limit], |r| {
                    action_row(r).map(Item::Action)
                })?
            }
            Source::Observations => collect(conn, ALL_OBSERVATIONS, params![after, limit], |r| {
                observation_row(d, r).map(Item::Observation)
            })?,
            Source::Decisions => collect(conn, ALL_DECISIONS, params![after, limit], |r| {
                decision_row(d, r).map(Item::Decision)
            })?,
            Source::Intents => collect(conn, ALL_INTENTS, params![after, limit], |r| {
                action_row(r).map(Item::Action)
            })?,
            Source::Outcomes => collect(conn, ALL_OUTCOMES, params![after, limit], |r| {
                let id: i64 = r.get(0)?;
                let seq = Cell::new("actions", id, "outcome_seq").uint(r.get(1)?)?;
                Ok(Item::Outcome {
                    seq,
                    outcome: outcome_of(r, id, 2, 3)?,
                })
            })?,
        };
        self.done = items.len() < CHUNK;
        if let Some(last) = items.last() {
            self.after = int(last.key(), "sequence number")?;
        }
        self.buf.extend(items);
        Ok(())
    }

    /// The next row's key, reading a chunk if needed; `None` at the end.
    pub(crate) fn peek_key(&mut self) -> Result<Option<u64>> {
        if self.buf.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Err(e);
            }
        }
        Ok(self.buf.front().map(Item::key))
    }

    /// The next row.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>> {
        self.peek_key()?;
        Ok(self.buf.pop_front())
    }
}

/// Everything, collected (the unbounded `Journal::replay`).
pub(crate) fn replay(conn: &Connection) -> Result<Vec<Entry>> {
    let mut merge = Merge::new(conn);
    let mut out = Vec::new();
    while let Some(e) = merge.next_entry()? {
        out.push(e);
    }
    Ok(out)
}

/// The replay's merge of its streams by commit order.
pub(crate) struct Merge<'c> {
    streams: Vec<Chunks<'c>>,
}

impl<'c> Merge<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Merge<'c> {
        Merge {
            streams: vec![
                Chunks::new(conn, Source::Observations),
                Chunks::new(conn, Source::Decisions),
                Chunks::new(conn, Source::Intents),
                Chunks::new(conn, Source::Outcomes),
            ],
        }
    }

    /// Decisions, intents and outcomes committed after `after` (observations left out: a
    /// storm's millions are not read): what a fleet outbox publishes.
    pub(crate) fn outbox(conn: &'c Connection, after: i64) -> Merge<'c> {
        Merge {
            streams: vec![
                Chunks::after(conn, Source::Decisions, after),
                Chunks::after(conn, Source::Intents, after),
                Chunks::after(conn, Source::Outcomes, after),
            ],
        }
    }

    /// The entry with the smallest sequence number of the four streams' heads.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>> {
        let mut best: Option<(usize, u64)> = None;
        for (i, s) in self.streams.iter_mut().enumerate() {
            if let Some(k) = s.peek_key()? {
                if best.is_none_or(|(_, b)| k < b) {
                    best = Some((i, k));
                }
            }
        }
        let Some((i, _)) = best else {
            return Ok(None);
        };
        match self.streams.get_mut(i) {
            Some(s) => Ok(s.next_item()?.map(Item::into_entry)),
            None => Ok(None),
        }
    }
}
