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
//! - One writer: [`Journal::open`] takes an exclusive lock on `<journal>.lock` for the
//!   journal's lifetime (`lock.rs` says why a file of its own), so a second daemon is refused at
//!   once ([`JournalErrorKind::InUse`], naming the holder's pid). Readers
//!   ([`Journal::open_read_only`], `sqlite3 -readonly`) never wait for it.
//! - Bodies are stored compactly (`body.rs`): what a storm repeats is stored once and
//!   referenced; the views `observations` and `decisions` show whole bodies to `sqlite3`.
//! - Reads are bounded: an incident is read as a page ([`Journal::incident_page`]: its first
//!   and last rows and their counts), and everything longer is a stream read in chunks
//!   ([`Journal::incident_observations`], [`Journal::replay_stream`]).
//!
//! # Limitations
//!
//! [`Journal::incident`] and [`Journal::replay`] still return everything at once, for callers
//! that have not moved to the page and the streams: their memory grows with the incident and
//! the journal. A read-only open of a journal whose directory the reader cannot write falls back
//! to an immutable snapshot of the main file ([`Access::Immutable`]), which does not see what is
//! still in the `-wal` file. `Journal` methods are blocking; call them from a blocking task in
//! async code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use vfguard_model::{Action, ActionOutcome, IncidentId, Millis};

mod body;
mod codec;
mod entry;
mod error;
mod incident;
mod lock;
mod query;
mod record;
mod retention;
mod schema;
mod stream;

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod testdata;

pub use entry::{ActionRow, Batch, DecisionRow, Entry, ObservationRow};
pub use error::{JournalError, JournalErrorKind};
pub use incident::{
    IncidentDetail, IncidentFilter, IncidentPage, IncidentRow, IncidentState, Page,
};
pub use retention::Retention;
pub use stream::{Replay, Rows};

use lock::WriterLock;
use query::{Chunks, Item, Source};

/// How long a statement waits for a lock SQLite holds elsewhere (a checkpoint, an operator's
/// `sqlite3` writing by hand) before failing. Another vfguard writer is refused at once by the
/// writer lock instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a journal was opened: what a reader may expect of what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// The daemon's open ([`Journal::open`]): reads and writes, holding the writer lock; or an
    /// in-memory journal.
    Writer,
    /// A read-only connection beside the writer ([`Journal::open_read_only`]): every committed
    /// transaction is seen, the writer's included.
    ReadOnly,
    /// A read-only snapshot of the main file (SQLite's `immutable=1`), because a read-only
    /// connection could not be opened: WAL mode needs the `-shm` file, and this user may not
    /// create it (the journal's directory is not writable, the daemon is stopped so the file is
    /// gone). What is still in the `-wal` file (after a crash; or written by a daemon started
    /// meanwhile) is not seen, and a writer changing the file under the snapshot may make reads
    /// fail.
    Immutable {
        /// The size of the `-wal` file beside the journal when it was opened (0: none, so the
        /// snapshot holds every committed transaction).
        wal_bytes: u64,
    },
}

/// The journal: one SQLite connection, used by one writer.
#[derive(Debug)]
pub struct Journal {
    // Dropped first: the connection closes (and checkpoints) before the writer lock goes.
    conn: Connection,
    path: PathBuf,
    access: Access,
    lock: Option<WriterLock>,
}

impl Journal {
    /// Opens the journal at `path` to write it, as the daemon does: takes the writer lock
    /// (`<path>.lock`, held until the journal is dropped), then creates the file or migrates it
    /// to this build's schema, in WAL mode with `synchronous=FULL` (a committed transaction
    /// survives `kill -9` and power loss).
    ///
    /// A journal another writer holds (another daemon, or another `Journal` of this process)
    /// is refused at once with [`JournalErrorKind::InUse`]:
    /// `journal /var/lib/vfguard/journal.db: opening: in use by another vfguard (pid 1234); stop
    /// it first`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_with(path, schema::MIGRATIONS)
    }

    /// Opens with a given migration list (tests open files at older versions).
    pub(crate) fn open_with(
        path: &Path,
        migrations: &[schema::Migration],
    ) -> Result<Journal, JournalError> {
        let err = |op| move |kind| JournalError::new(path, op, kind);
        let lock = WriterLock::acquire(path).map_err(err("opening"))?;
        let mut conn = Connection::open(path)
            .map_err(JournalErrorKind::from)
            .map_err(err("opening"))?;
        configure(&conn, true).map_err(err("opening"))?;
        schema::migrate(&mut conn, migrations).map_err(err("migrating the schema"))?;
        Ok(Journal {
            conn,
            path: path.to_owned(),
            access: Access::Writer,
            lock: Some(lock),
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
            access: Access::Writer,
            lock: None,
        })
    }

    /// Opens an existing journal to read it, as the CLI and the API do beside a running daemon:
    /// read-only (no migration, no change of journal mode, no writer lock: a user who may read
    /// the file but not write it can, and a daemon never blocks it), and refused when its schema
    /// is not the one this build reads (older: let the daemon migrate it; newer: use the
    /// daemon's build).
    ///
    /// When SQLite cannot open a read-only connection because it may not create the `-shm` file
    /// WAL mode needs (the directory is not writable for this user and the daemon, stopped, left
    /// none), the journal is opened as an immutable snapshot of the main file instead:
    /// [`Access::Immutable`], whose limits [`Journal::access`] lets the caller tell the user.
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        let first = match Journal::open_reader(path, false) {
            Ok(j) => return Ok(j),
            Err(e) if e.kind().lacks_write_access() => e,
            Err(e) => return Err(e),
        };
        // The error of the normal open is the one to report if the snapshot fails too (a
        // missing file fails both ways).
        Journal::open_reader(path, true).map_err(|_| first)
    }

    /// A read-only connection, checked for this build's schema; `immutable`: a snapshot of the
    /// main file (no locks, no `-shm`, the `-wal` unread).
    fn open_reader(path: &Path, immutable: bool) -> Result<Journal, JournalError> {
        let err = |op| move |kind| JournalError::new(path, op, kind);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let (conn, access) = if immutable {
            let wal_bytes = std::fs::metadata(wal_path(path)).map_or(0, |m| m.len());
            let conn = Connection::open_with_flags(
                immutable_uri(path),
                flags | OpenFlags::SQLITE_OPEN_URI,
            );
            (conn, Access::Immutable { wal_bytes })
        } else {
            (Connection::open_with_flags(path, flags), Access::ReadOnly)
        };
        let conn = conn
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
            access,
            lock: None,
        })
    }

    /// How the journal was opened (a reader on a read-only directory gets an immutable
    /// snapshot: see [`Access::Immutable`]).
    pub fn access(&self) -> Access {
        self.access
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

    /// One incident with its first `first` and last `last` observations (its evidence: ticks
    /// left out), decisions and actions (with outcomes), each in commit order, and how many of
    /// each the journal holds and retention dropped; `None` if the journal has no such
    /// incident. Memory and time are bounded by `first + last`, whatever the incident's length.
    pub fn incident_page(
        &self,
        id: IncidentId,
        first: usize,
        last: usize,
    ) -> Result<Option<IncidentPage>, JournalError> {
        query::incident_page(&self.conn, id, first, last).map_err(self.err("reading an incident"))
    }

    /// The incident's evidence (its observations, ticks left out) in commit order, streamed in
    /// chunks: for `--all` readers. Empty if the journal has no such incident.
    pub fn incident_observations(&self, id: IncidentId) -> Rows<'_, ObservationRow> {
        self.incident_rows(id, Source::Evidence, |item| match item {
            Item::Observation(o) => Some(o),
            _ => None,
        })
    }

    /// The decisions about the incident in commit order, streamed in chunks.
    pub fn incident_decisions(&self, id: IncidentId) -> Rows<'_, DecisionRow> {
        self.incident_rows(id, Source::IncidentDecisions, |item| match item {
            Item::Decision(d) => Some(d),
            _ => None,
        })
    }

    /// The incident's actions (with their outcomes) in commit order, streamed in chunks.
    pub fn incident_actions(&self, id: IncidentId) -> Rows<'_, ActionRow> {
        self.incident_rows(id, Source::IncidentActions, |item| match item {
            Item::Action(a) => Some(a),
            _ => None,
        })
    }

    fn incident_rows<T>(
        &self,
        id: IncidentId,
        source: fn(i64) -> Source,
        convert: fn(Item) -> Option<T>,
    ) -> Rows<'_, T> {
        const OP: &str = "reading an incident";
        match query::incident_key(&self.conn, id) {
            Ok(Some(key)) => Rows::new(
                &self.conn,
                Chunks::new(&self.conn, source(key)),
                &self.path,
                OP,
                convert,
            ),
            Ok(None) => Rows::ended(&self.conn, &self.path, OP, convert, None),
            Err(kind) => Rows::ended(&self.conn, &self.path, OP, convert, Some(kind)),
        }
    }

    /// One incident with all its observations, decisions and actions (with outcomes), each in
    /// commit order; `None` if the journal has no such incident.
    ///
    /// Unbounded: an incident in a storm holds millions of observations, all read into memory.
    /// The daemon and the CLI use [`Journal::incident_page`] and the `incident_*` streams; this
    /// is for tests and small journals.
    pub fn incident(&self, id: IncidentId) -> Result<Option<IncidentDetail>, JournalError> {
        let Some(page) = self.incident_page(id, 0, 0)? else {
            return Ok(None);
        };
        Ok(Some(IncidentDetail {
            incident: page.incident,
            observations: self.incident_observations(id).collect::<Result<_, _>>()?,
            decisions: self.incident_decisions(id).collect::<Result<_, _>>()?,
            actions: self.incident_actions(id).collect::<Result<_, _>>()?,
        }))
    }

    /// The last `limit` actions, newest first, with their outcomes.
    pub fn actions(&self, limit: usize) -> Result<Vec<ActionRow>, JournalError> {
        query::actions(&self.conn, limit).map_err(self.err("listing actions"))
    }

    /// Everything in commit order, streamed in chunks, to rebuild the engine's state after a
    /// restart without holding the journal in memory. What retention deleted is no longer
    /// there. The stream reads one snapshot of the journal (see [`Replay`]).
    pub fn replay_stream(&self) -> Replay<'_> {
        Replay::new(&self.conn, &self.path)
    }

    /// The decisions, intents and outcomes committed after sequence number `after`, in commit
    /// order, streamed in chunks (observations left out): a fleet outbox reads what it has not
    /// yet published, from the cursor it keeps with [`Journal::set_cursor`].
    pub fn outbox_after(&self, after: u64) -> Replay<'_> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        Replay::of(
            &self.conn,
            &self.path,
            query::Merge::outbox(&self.conn, after),
        )
    }

    /// Sets a source's cursor (`fleet`: the last sequence number the fleet acknowledged) in a
    /// transaction of its own; never moves it back.
    pub fn set_cursor(&mut self, source: &str, seq: u64) -> Result<(), JournalError> {
        let path = &self.path;
        record::cursor(&mut self.conn, source, seq)
            .map_err(|kind| JournalError::new(path, "setting a cursor", kind))
    }

    /// Everything in commit order, collected.
    ///
    /// Unbounded: the whole journal in memory. A restart uses [`Journal::replay_stream`]; this
    /// is for tests and small journals.
    pub fn replay(&self) -> Result<Vec<Entry>, JournalError> {
        query::replay(&self.conn).map_err(self.err("replaying"))
    }

    /// Retention with [`Retention::DEFAULT_OPEN_INCIDENT_ENDS`]: see [`Journal::retain`].
    pub fn apply_retention(
        &mut self,
        now: Millis,
        max_age_ms: u64,
        max_rows: u64,
    ) -> Result<u64, JournalError> {
        self.retain(
            now,
            &Retention {
                max_age_ms,
                max_rows,
                open_incident_ends: Retention::DEFAULT_OPEN_INCIDENT_ENDS,
            },
        )
    }

    /// Retention: deletes observations and decisions older than `max_age_ms` before `now`, then
    /// the oldest observations past `max_rows`. What is attached to an incident that is not
    /// closed is kept, whatever its age, but for each kind of row a storm repeats (evidence,
    /// ticks, attributions) only its first and last `open_incident_ends` and what is younger
    /// than the age limit: the rows between go and are counted in the incident's page
    /// ([`Page::dropped`]). Open incidents' rows may exceed `max_rows`. Returns the number of
    /// rows deleted.
    pub fn retain(&mut self, now: Millis, retention: &Retention) -> Result<u64, JournalError> {
        let path = &self.path;
        retention::apply(&mut self.conn, now, retention)
            .map_err(|kind| JournalError::new(path, "applying retention", kind))
    }

    /// Closes the journal, reporting what dropping it would ignore (a failed checkpoint). The
    /// writer lock goes after the connection is closed.
    pub fn close(self) -> Result<(), JournalError> {
        let Journal {
            conn, path, lock, ..
        } = self;
        let closed = conn
            .close()
            .map_err(|(_, e)| JournalError::new(&path, "closing", e.into()));
        drop(lock);
        closed
    }

    /// Closes the journal the way a crash leaves it: without folding the WAL into the main
    /// file, so the `-wal` file stays behind. For tests of recovery (torn writes at the tail
    /// of the WAL); committed data is as safe as after [`Journal::close`].
    pub fn close_without_checkpoint(self) -> Result<(), JournalError> {
        let Journal {
            conn, path, lock, ..
        } = self;
        let err = |e: rusqlite::Error| JournalError::new(&path, "closing", e.into());
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(err)?;
        let closed = conn.close().map_err(|(_, e)| err(e));
        drop(lock);
        closed
    }
}

/// The `-wal` file of the journal at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The SQLite URI of an immutable read of `path`: `file:` and the path, percent-encoded but
/// for unreserved characters and `/` (a path may hold `?`, `#`, `%` or any byte).
fn immutable_uri(path: &Path) -> String {
    use std::fmt::Write as _;
    use std::os::unix::ffi::OsStrExt as _;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri.push_str("?immutable=1");
    uri
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
