//! The journal's schema and its migrations.
//!
//! The schema is an ordered list of migrations. `schema_migrations` records each one applied,
//! and opening a journal applies the missing ones in order, each in its own `BEGIN IMMEDIATE`
//! transaction: a crash or a power cut part-way leaves the file at the last complete version,
//! and the next open carries on from there. A file written by a newer build (a version this
//! build does not know) is refused untouched rather than half understood.
//!
//! # Design
//!
//! Observations, decisions and action intents and outcomes share one commit-order sequence
//! (`counters.last_seq`): `observations.id`, `decisions.id`, `actions.intent_seq` and
//! `actions.outcome_seq` are drawn from it, so `replay` can interleave the tables exactly as
//! they were committed. The counter lives in the database, updated in the same transaction as
//! the rows, so a lost tail transaction gives its numbers back and retention never makes them
//! repeat.
//!
//! Version 2 derives the `incidents` table from the decisions of version 1 (a backfill in the
//! same transaction), and adds the indices incident lookups, retention and `pending_intents`
//! need. Every statement `record_batch` runs is a primary-key or index lookup (checked by
//! `record_batch_never_scans` in the tests), so a commit costs the same on the first day and
//! after a year.
//!
//! Version 3 admits the `uncontained` state (a table rebuild: SQLite cannot alter a CHECK).
//! From version 3 on, the state is stored as the engine decided it (`state_changed`); only the
//! version-2 backfill of a version-1 file derives it from that file's decisions.
//!
//! Version 4 stores bodies compactly (`body.rs`): the rows move to `observation_rows` and
//! `decision_rows`, which reference what a storm repeats in `bodies`, and `observations` and
//! `decisions` become views with the version-3 columns and whole bodies. The rows are copied in
//! chunks (bounded memory, one transaction); triggers keep `bodies.refs` and the incidents'
//! row counts that pages read.
//!
//! The full reference, with queries an operator would run, is `docs/journal.md`.

use rusqlite::{params, Connection, TransactionBehavior};
use vfguard_model::{Decision, IncidentId, Observation};

use crate::body;
use crate::codec::Cell;
use crate::entry::observation_pf;
use crate::error::JournalErrorKind;
use crate::incident;

/// Derives data for a new schema from the rows already there.
pub(crate) type Backfill = fn(&Connection) -> Result<(), JournalErrorKind>;

/// One step of the schema.
pub(crate) struct Migration {
    /// Its version (1, 2, ...: consecutive).
    pub version: u32,
    /// A short name, stored beside the version.
    pub name: &'static str,
    /// DDL (and data changes) to run.
    pub sql: &'static str,
    /// Data to derive after the DDL, in the same transaction.
    pub backfill: Option<Backfill>,
    /// DDL to run after the backfill, in the same transaction (indices built once the rows
    /// are in, views over tables the backfill filled).
    pub finish: &'static str,
}

const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);";

const V1_JOURNAL: &str = "
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('last_seq', 0);

CREATE TABLE observations (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    type     TEXT NOT NULL,
    function TEXT,
    incident INTEGER,
    body     TEXT NOT NULL
);

CREATE TABLE decisions (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    type     TEXT NOT NULL,
    incident INTEGER,
    body     TEXT NOT NULL
);

CREATE TABLE actions (
    id          INTEGER PRIMARY KEY,
    incident    INTEGER NOT NULL,
    function    TEXT NOT NULL,
    action      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    dry_run     INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    intent_seq  INTEGER NOT NULL UNIQUE,
    intent_ms   INTEGER NOT NULL,
    intent      TEXT NOT NULL,
    outcome_seq INTEGER UNIQUE,
    outcome_ms  INTEGER,
    error       TEXT,
    before      TEXT
);

CREATE TABLE cursors (
    source TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL
);
";

const V2_INCIDENTS: &str = "
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY,
    function    TEXT NOT NULL,
    opened_ms   INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    state       TEXT NOT NULL
                CHECK (state IN ('open', 'escalating', 'contained', 'restored', 'closed')),
    owner       TEXT,
    owner_label TEXT,
    pf          TEXT
);
CREATE INDEX incidents_state ON incidents (state);
CREATE INDEX incidents_function ON incidents (function);
CREATE INDEX incidents_pf ON incidents (pf);
CREATE INDEX incidents_owner_label ON incidents (owner_label);

CREATE INDEX observations_incident ON observations (incident);
CREATE INDEX observations_at ON observations (at_ms);
CREATE INDEX decisions_incident ON decisions (incident);
CREATE INDEX decisions_at ON decisions (at_ms);
CREATE INDEX actions_incident ON actions (incident);
CREATE INDEX actions_pending ON actions (intent_seq) WHERE outcome_seq IS NULL;
";

/// Version 3: `uncontained` joins the states (SQLite cannot alter a CHECK: the table is
/// rebuilt, rows and indices as they were).
const V3_UNCONTAINED: &str = "
CREATE TABLE incidents_v3 (
    id          INTEGER PRIMARY KEY,
    function    TEXT NOT NULL,
    opened_ms   INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN
                ('open', 'escalating', 'contained', 'restored', 'uncontained', 'closed')),
    owner       TEXT,
    owner_label TEXT,
    pf          TEXT
);
INSERT INTO incidents_v3 (id, function, opened_ms, updated_ms, state, owner, owner_label, pf)
    SELECT id, function, opened_ms, updated_ms, state, owner, owner_label, pf FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v3 RENAME TO incidents;
CREATE INDEX incidents_state ON incidents (state);
CREATE INDEX incidents_function ON incidents (function);
CREATE INDEX incidents_pf ON incidents (pf);
CREATE INDEX incidents_owner_label ON incidents (owner_label);
";

/// Version 4: compact bodies (see `body.rs`). The rows move to `observation_rows` and
/// `decision_rows` with a reference to a shared body in `bodies`; the views `observations`
/// and `decisions` show them as the tables of version 3 were (same columns, whole bodies), so
/// operators' queries keep working. Incidents count their rows and what retention dropped of
/// them, kept by triggers so that a page reads its totals instead of counting millions of rows
/// (a row attached before the journal had its incident's row is not counted; the counts never
/// go below 0).
const V4_COMPACT: &str = "
ALTER TABLE incidents ADD COLUMN evidence_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN evidence_dropped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN decision_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN decision_dropped INTEGER NOT NULL DEFAULT 0;

CREATE TABLE bodies (
    id   INTEGER PRIMARY KEY,
    hash INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE INDEX bodies_hash ON bodies (hash);

CREATE TABLE observation_rows (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    type     TEXT NOT NULL,
    function TEXT,
    incident INTEGER,
    shared   INTEGER,
    body     TEXT,
    CHECK (body IS NOT NULL OR shared IS NOT NULL)
);

CREATE TABLE decision_rows (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    type     TEXT NOT NULL,
    incident INTEGER,
    shared   INTEGER,
    body     TEXT,
    CHECK (body IS NOT NULL OR shared IS NOT NULL)
);

CREATE TRIGGER observation_rows_insert AFTER INSERT ON observation_rows
BEGIN
    UPDATE bodies SET refs = refs + 1 WHERE id = new.shared;
    UPDATE incidents SET evidence_count = evidence_count + 1
        WHERE id = new.incident AND new.type != 'tick';
END;
CREATE TRIGGER observation_rows_delete AFTER DELETE ON observation_rows
BEGIN
    UPDATE bodies SET refs = refs - 1 WHERE id = old.shared;
    UPDATE incidents SET evidence_count = max(evidence_count - 1, 0),
                         evidence_dropped = evidence_dropped + 1
        WHERE id = old.incident AND old.type != 'tick';
END;
CREATE TRIGGER decision_rows_insert AFTER INSERT ON decision_rows
BEGIN
    UPDATE bodies SET refs = refs + 1 WHERE id = new.shared;
    UPDATE incidents SET decision_count = decision_count + 1 WHERE id = new.incident;
END;
CREATE TRIGGER decision_rows_delete AFTER DELETE ON decision_rows
BEGIN
    UPDATE bodies SET refs = refs - 1 WHERE id = old.shared;
    UPDATE incidents SET decision_count = max(decision_count - 1, 0),
                         decision_dropped = decision_dropped + 1
        WHERE id = old.incident;
END;
";

/// Version 4, after the rows are copied: the version-3 tables go, the indices are built over
/// the new ones (same names), and the views take the old tables' names.
const V4_FINISH: &str = "
DROP TABLE observations;
DROP TABLE decisions;
CREATE INDEX observations_incident ON observation_rows (incident);
CREATE INDEX observations_at ON observation_rows (at_ms);
CREATE INDEX decisions_incident ON decision_rows (incident);
CREATE INDEX decisions_at ON decision_rows (at_ms);
DROP INDEX actions_incident;
CREATE INDEX actions_incident ON actions (incident, intent_seq);

CREATE VIEW observations (id, at_ms, type, function, incident, body) AS
SELECT r.id, r.at_ms, r.type, r.function, r.incident,
       CASE WHEN r.shared IS NULL THEN r.body
            WHEN r.body IS NULL THEN b.body
            ELSE json_patch(b.body, r.body) END
FROM observation_rows r LEFT JOIN bodies b ON b.id = r.shared;

CREATE VIEW decisions (id, at_ms, type, incident, body) AS
SELECT r.id, r.at_ms, r.type, r.incident,
       CASE WHEN r.shared IS NULL THEN r.body
            WHEN r.body IS NULL THEN b.body
            ELSE json_patch(b.body, r.body) END
FROM decision_rows r LEFT JOIN bodies b ON b.id = r.shared;
";

/// Every migration, in order. The last one's version is the schema version of this build.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "journal",
        sql: V1_JOURNAL,
        backfill: None,
        finish: "",
    },
    Migration {
        version: 2,
        name: "incidents",
        sql: V2_INCIDENTS,
        backfill: Some(backfill_incidents),
        finish: "",
    },
    Migration {
        version: 3,
        name: "uncontained",
        sql: V3_UNCONTAINED,
        backfill: None,
        finish: "",
    },
    Migration {
        version: 4,
        name: "compact",
        sql: V4_COMPACT,
        backfill: Some(backfill_compact),
        finish: V4_FINISH,
    },
];

/// The version recorded in `schema_migrations` (0 for a new, empty file).
pub(crate) fn version(conn: &Connection) -> Result<u32, JournalErrorKind> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let v: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    u32::try_from(v).map_err(|_| JournalErrorKind::Invalid {
        table: "schema_migrations",
        id: v,
        column: "version",
        value: v.to_string(),
    })
}

/// Brings the file up to the last of `migrations`, one transaction per migration.
pub(crate) fn migrate(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<(), JournalErrorKind> {
    let known = migrations.last().map_or(0, |m| m.version);
    let current = version(conn)?;
    if current > known {
        return Err(JournalErrorKind::TooNew {
            found: current,
            known,
        });
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(BOOTSTRAP)?;
        // Another process may have migrated between our read and our lock.
        if version(&tx)? >= m.version {
            continue;
        }
        tx.execute_batch(m.sql)?;
        if let Some(backfill) = m.backfill {
            backfill(&tx)?;
        }
        tx.execute_batch(m.finish)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
            params![m.version, m.name],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Version 2: derives each incident's row from the decisions already journalled, then fills
/// in PFs and update times from the observations attached to them.
fn backfill_incidents(conn: &Connection) -> Result<(), JournalErrorKind> {
    let mut stmt = conn.prepare("SELECT id, at_ms, body FROM decisions ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let at = Cell::new("decisions", id, "at_ms").uint(row.get(1)?)?;
        let decision: Decision =
            Cell::new("decisions", id, "body").json(&row.get::<_, String>(2)?)?;
        incident::apply_legacy_decision(conn, at, &decision)?;
    }
    let mut stmt = conn.prepare(
        "SELECT id, at_ms, incident, body FROM observations WHERE incident IS NOT NULL ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let at = Cell::new("observations", id, "at_ms").uint(row.get(1)?)?;
        let inc = IncidentId(Cell::new("observations", id, "incident").uint(row.get(2)?)?);
        let obs: Observation =
            Cell::new("observations", id, "body").json(&row.get::<_, String>(3)?)?;
        incident::touch(conn, inc, at, observation_pf(&obs))?;
    }
    Ok(())
}

/// How many rows the version-4 backfill copies per read (its memory does not grow with the
/// journal).
const BACKFILL_CHUNK: i64 = 1024;

/// Version 4: copies the version-3 rows into the compact tables, in chunks. A body is split
/// only when it decodes and encodes back to the very text stored (anything else, an edited
/// row or a field this build does not know, is copied whole and unchanged); the incidents'
/// counts come from the triggers as the rows go in.
fn backfill_compact(conn: &Connection) -> Result<(), JournalErrorKind> {
    copy_rows(
        conn,
        "SELECT id, at_ms, type, function, incident, body FROM observations
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        "INSERT INTO observation_rows (id, at_ms, type, function, incident, shared, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        |text| {
            let o: Observation = serde_json::from_str(text).ok()?;
            let stored = body::observation(&o).ok()?;
            (crate::codec::json(&o, "observation").ok()? == text).then_some(stored)
        },
    )?;
    copy_rows(
        conn,
        "SELECT id, at_ms, type, NULL, incident, body FROM decisions
         WHERE id > ?1 ORDER BY id LIMIT ?2",
        // ?4 (the function, null) is bound but unused: decisions have no such column.
        "INSERT INTO decision_rows (id, at_ms, type, incident, shared, body)
         VALUES (?1, ?2, ?3, ?5, ?6, ?7)",
        |text| {
            let d: Decision = serde_json::from_str(text).ok()?;
            let stored = body::decision(&d).ok()?;
            (crate::codec::json(&d, "decision").ok()? == text).then_some(stored)
        },
    )
}

/// One row of a version-3 table.
type V3Row = (i64, i64, String, Option<String>, Option<i64>, String);

fn copy_rows(
    conn: &Connection,
    select: &str,
    insert: &str,
    split: impl Fn(&str) -> Option<body::Stored>,
) -> Result<(), JournalErrorKind> {
    let mut after = i64::MIN;
    loop {
        let chunk: Vec<V3Row> = conn
            .prepare(select)?
            .query_map(params![after, BACKFILL_CHUNK], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let Some(last) = chunk.last() else {
            return Ok(());
        };
        after = last.0;
        let mut stmt = conn.prepare(insert)?;
        for (id, at, kind, function, incident, text) in chunk {
            let (shared, own) = match split(&text) {
                Some(stored) => (
                    stored.shared.map(|s| body::intern(conn, &s)).transpose()?,
                    stored.own,
                ),
                None => (None, Some(text)),
            };
            stmt.execute(params![id, at, kind, function, incident, shared, own])?;
        }
    }
}

/// The names of the tables, for tests and `docs/journal.md`.
#[cfg(test)]
pub(crate) fn tables(conn: &Connection) -> Result<Vec<String>, JournalErrorKind> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

/// Whether a row for this migration version exists (used by tests).
#[cfg(test)]
pub(crate) fn applied(conn: &Connection, v: u32) -> Result<bool, JournalErrorKind> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row(
            "SELECT 1 FROM schema_migrations WHERE version = ?1",
            [v],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
