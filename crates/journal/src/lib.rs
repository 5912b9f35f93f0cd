//! The durable journal of the agent, in SQLite.
//!
//! Beside the pipeline (signals → engine → actions), the journal keeps what the engine was
//! told (observations), what it decided (decisions), what was about to be done to a tenant
//! (intents, written *before* acting) and what came of it (outcomes), with the kmsg cursor that
//! covers them. After a restart the agent resumes reading `/dev/kmsg` exactly after the last
//! committed record, rebuilds the engine from [`Journal::replay`], and reconciles (never
//! blindly repeats) the actions in [`Journal::pending_intents`]. Operators read the same file
//! with `sqlite3`: `docs/journal.md` documents every table and column.
//!
//! # Design
//!
//! - One [`Batch`] is one transaction: a restart never sees half of an engine step, and the
//!   cursor stored with a batch always matches the records stored with it.
//! - WAL mode with `synchronous=FULL`: a call that returned `Ok` survives `kill -9` and power
//!   loss; a torn write at the tail of the WAL loses whole transactions, newest first.
//! - Bodies are the model types' serde JSON; a few columns beside them (`type`, `function`,
//!   `incident`, `state`) are for indices and for humans.
//! - Every write is a handful of indexed inserts and updates: its cost does not grow with the
//!   journal.
//! - The journal never reads a clock: times come with the records (`Batch::at`,
//!   `Action::at`, `ActionOutcome::at`), and retention is given `now`.
//!
//! # Limitations
//!
//! One writer: the daemon. Readers (the CLI, an operator's `sqlite3`) may read concurrently
//! thanks to WAL mode; a second writer waits up to five seconds for the lock, then fails.
//! `Journal` methods are blocking; call them from a blocking task in async code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::Connection;
use vfguard_model::{Action, ActionOutcome, IncidentId, Millis};

mod codec;
mod entry;
mod error;
mod incident;
mod query;
mod record;
mod retention;
mod schema;

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod testdata;

pub use entry::{ActionRow, Batch, DecisionRow, Entry, ObservationRow};
pub use error::{JournalError, JournalErrorKind};
pub use incident::{IncidentDetail, IncidentFilter, IncidentRow, IncidentState};

/// How long a write waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal: one SQLite connection, used by one writer.
#[derive(Debug)]
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

impl Journal {
    /// Opens the journal at `path`, creating it or migrating it to this build's schema, in WAL
    /// mode with `synchronous=FULL` (a committed transaction survives `kill -9` and power
    /// loss).
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_with(path, schema::MIGRATIONS)
    }

    /// Opens with a given migration list (tests open files at older versions).
    pub(crate) fn open_with(
        path: &Path,
        migrations: &[schema::Migration],
    ) -> Result<Journal, JournalError> {
        let err = |op| move |kind| JournalError::new(path, op, kind);
        let mut conn = Connection::open(path)
            .map_err(JournalErrorKind::from)
            .map_err(err("opening"))?;
        configure(&conn, true).map_err(err("opening"))?;
        schema::migrate(&mut conn, migrations).map_err(err("migrating the schema"))?;
        Ok(Journal {
            conn,
            path: path.to_owned(),
        })
    }

    /// A journal that lives in memory only (tests, `--dry-run` without a state directory).
    pub fn open_in_memory() -> Result<Journal, JournalError> {
        let path = Path::new(":memory:");
        let err = |op| move |kind| JournalError::new(path, op, kind);
        let mut conn = Connection::open_in_memory()
            .map_err(JournalErrorKind::from)
            .map_err(err("opening"))?;
        configure(&conn, false).map_err(err("opening"))?;
        schema::migrate(&mut conn, schema::MIGRATIONS).map_err(err("migrating the schema"))?;
        Ok(Journal {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens an existing journal to read it, as the CLI and the API do beside a running daemon:
    /// read-only (no migration, no change of journal mode; a user who may read the file but not
    /// write it can), and refused when its schema is not the one this build reads (older: let
    /// the daemon migrate it; newer: use the daemon's build).
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        let err = |op| move |kind| JournalError::new(path, op, kind);
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(JournalErrorKind::from)
        .map_err(err("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(JournalErrorKind::from)
            .map_err(err("opening"))?;
        let found = schema::version(&conn).map_err(err("reading the schema version"))?;
        let known = Journal::latest_schema_version();
        if found != known {
            return Err(JournalError::new(
                path,
                "opening",
                JournalErrorKind::SchemaMismatch { found, known },
            ));
        }
        Ok(Journal {
            conn,
            path: path.to_owned(),
        })
    }

    /// The file (`:memory:` for an in-memory journal).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, op: &'static str) -> impl FnOnce(JournalErrorKind) -> JournalError + '_ {
        move |kind| JournalError::new(&self.path, op, kind)
    }

    /// The schema version of the file (the last migration applied).
    pub fn schema_version(&self) -> Result<u32, JournalError> {
        schema::version(&self.conn).map_err(self.err("reading the schema version"))
    }

    /// The schema version this build writes.
    pub fn latest_schema_version() -> u32 {
        schema::MIGRATIONS.last().map_or(0, |m| m.version)
    }

    /// Records one engine step in one transaction: the observations that mattered, the
    /// decisions they produced (maintaining the `incidents` table from them), and the source
    /// cursor covering them, so a restart resumes exactly after the last committed record.
    ///
    /// On error nothing of the batch is stored. NaN or infinite numbers (an attribution's
    /// confidence, an event's timestamp) are refused: JSON cannot store them.
    pub fn record_batch(&mut self, batch: &Batch) -> Result<(), JournalError> {
        let path = &self.path;
        record::batch(&mut self.conn, batch)
            .map_err(|kind| JournalError::new(path, "recording a batch", kind))
    }

    /// Records an action's intent; written BEFORE the action is carried out, so that a crash
    /// in between leaves a pending intent to reconcile. A second intent with the same id is
    /// refused ([`JournalErrorKind::DuplicateIntent`]).
    pub fn record_intent(&mut self, action: &Action) -> Result<(), JournalError> {
        let path = &self.path;
        record::intents(&mut self.conn, std::slice::from_ref(action))
            .map_err(|kind| JournalError::new(path, "recording an intent", kind))
    }

    /// Records the intents of several actions in one transaction (a round of actions decided
    /// together: one commit instead of one each). None is recorded if one is refused.
    pub fn record_intents(&mut self, actions: &[Action]) -> Result<(), JournalError> {
        let path = &self.path;
        record::intents(&mut self.conn, actions)
            .map_err(|kind| JournalError::new(path, "recording intents", kind))
    }

    /// Records an action's outcome; written AFTER it was carried out. The intent must be in
    /// the journal ([`JournalErrorKind::OutcomeWithoutIntent`]) and have no outcome yet
    /// ([`JournalErrorKind::DuplicateOutcome`]).
    pub fn record_outcome(&mut self, outcome: &ActionOutcome) -> Result<(), JournalError> {
        let path = &self.path;
        record::outcomes(&mut self.conn, std::slice::from_ref(outcome))
            .map_err(|kind| JournalError::new(path, "recording an outcome", kind))
    }

    /// Records several outcomes in one transaction. None is recorded if one is refused.
    pub fn record_outcomes(&mut self, outcomes: &[ActionOutcome]) -> Result<(), JournalError> {
        let path = &self.path;
        record::outcomes(&mut self.conn, outcomes)
            .map_err(|kind| JournalError::new(path, "recording outcomes", kind))
    }

    /// The largest action id journalled, if any: a restarted engine never reuses one.
    pub fn max_action_id(&self) -> Result<Option<u64>, JournalError> {
        query::max_id(&self.conn, query::MAX_ACTION_ID)
            .map_err(self.err("reading the last action id"))
    }

    /// The largest incident id journalled, if any.
    pub fn max_incident_id(&self) -> Result<Option<u64>, JournalError> {
        query::max_id(&self.conn, query::MAX_INCIDENT_ID)
            .map_err(self.err("reading the last incident id"))
    }

    /// The last sequence number recorded for a source (`kmsg`), if any. It may go down: the
    /// kernel numbers records from 0 again after a reboot.
    pub fn cursor(&self, source: &str) -> Result<Option<u64>, JournalError> {
        query::cursor(&self.conn, source).map_err(self.err("reading a cursor"))
    }

    /// Intents without an outcome, oldest first: actions that may or may not have happened
    /// before a crash. Reconcile them against the host on restart; never repeat them blindly.
    pub fn pending_intents(&self) -> Result<Vec<Action>, JournalError> {
        let rows =
            query::pending_intents(&self.conn).map_err(self.err("listing pending intents"))?;
        Ok(rows.into_iter().map(|r| r.action).collect())
    }

    /// Incidents matching the filter, newest first.
    pub fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<IncidentRow>, JournalError> {
        query::incidents(&self.conn, filter).map_err(self.err("listing incidents"))
    }

    /// One incident with its observations, decisions and actions (with outcomes), each in
    /// commit order; `None` if the journal has no such incident.
    pub fn incident(&self, id: IncidentId) -> Result<Option<IncidentDetail>, JournalError> {
        query::incident(&self.conn, id).map_err(self.err("reading an incident"))
    }

    /// The last `limit` actions, newest first, with their outcomes.
    pub fn actions(&self, limit: usize) -> Result<Vec<ActionRow>, JournalError> {
        query::actions(&self.conn, limit).map_err(self.err("listing actions"))
    }

    /// Everything in commit order, to rebuild the engine's state after a restart. What
    /// retention deleted is no longer there.
    pub fn replay(&self) -> Result<Vec<Entry>, JournalError> {
        query::replay(&self.conn).map_err(self.err("replaying"))
    }

    /// Retention: deletes observations and decisions older than `max_age_ms` before `now`,
    /// then the oldest observations past `max_rows`. What is attached to an incident that is
    /// not closed is kept, whatever its age (so the cap may be exceeded by it). Returns the
    /// number of rows deleted.
    pub fn apply_retention(
        &mut self,
        now: Millis,
        max_age_ms: u64,
        max_rows: u64,
    ) -> Result<u64, JournalError> {
        let path = &self.path;
        retention::apply(&mut self.conn, now, max_age_ms, max_rows)
            .map_err(|kind| JournalError::new(path, "applying retention", kind))
    }

    /// Closes the journal, reporting what dropping it would ignore (a failed checkpoint).
    pub fn close(self) -> Result<(), JournalError> {
        let path = self.path;
        self.conn
            .close()
            .map_err(|(_, e)| JournalError::new(&path, "closing", e.into()))
    }

    /// Closes the journal the way a crash leaves it: without folding the WAL into the main
    /// file, so the `-wal` file stays behind. For tests of recovery (torn writes at the tail
    /// of the WAL); committed data is as safe as after [`Journal::close`].
    pub fn close_without_checkpoint(self) -> Result<(), JournalError> {
        let path = self.path;
        let err = |e: rusqlite::Error| JournalError::new(&path, "closing", e.into());
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(err)?;
        self.conn.close().map_err(|(_, e)| err(e))
    }
}

/// Connection settings. `file`: a file on disk (WAL needs one).
fn configure(conn: &Connection, file: bool) -> Result<(), JournalErrorKind> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if file {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalErrorKind::NotWal { mode });
        }
    }
    // FULL: the WAL is synced at every commit (NORMAL would survive kill -9, not power loss).
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

#[cfg(test)]
mod tests;
