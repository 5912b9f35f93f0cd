//! The journal's one error type.
//!
//! Every failure names the journal file and the operation that was under way, so a daemon log
//! line (`{:#}`) reads `journal /var/lib/vfguard/journal.db: recording a batch: database or disk
//! is full` without the caller adding context. What went wrong is a [`JournalErrorKind`], public
//! so that the actuator can tell "this intent is already journalled" (a restart replaying its
//! own work) from an I/O failure.

use std::path::{Path, PathBuf};

/// A journal operation failed.
#[derive(Debug, thiserror::Error)]
#[error("journal {}: {op}", path.display())]
pub struct JournalError {
    path: PathBuf,
    op: &'static str,
    #[source]
    kind: JournalErrorKind,
}

impl JournalError {
    pub(crate) fn new(path: &Path, op: &'static str, kind: JournalErrorKind) -> JournalError {
        JournalError {
            path: path.to_owned(),
            op,
            kind,
        }
    }

    /// The journal file (`:memory:` for an in-memory journal).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operation that failed (`recording a batch`, `opening`...).
    pub fn operation(&self) -> &'static str {
        self.op
    }

    /// What went wrong.
    pub fn kind(&self) -> &JournalErrorKind {
        &self.kind
    }
}

/// What went wrong in a journal operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalErrorKind {
    /// SQLite refused (I/O error, disk full, not a database, locked past the busy timeout).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON body no longer decodes into the model type (edited by hand, or written by
    /// an incompatible build).
    #[error("cannot decode {table}.{column} of row {id}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The row's `id`.
        id: i64,
        /// The column.
        column: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored column holds a value that cannot be what this build wrote (a negative time, a
    /// PCI address that does not parse, an unknown incident state).
    #[error("invalid {table}.{column} {value:?} in row {id}")]
    Invalid {
        /// The table.
        table: &'static str,
        /// The row's `id`.
        id: i64,
        /// The column.
        column: &'static str,
        /// The stored value, as text.
        value: String,
    },
    /// A model value could not be turned into JSON.
    #[error("cannot encode {what} as JSON")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A number is larger than the largest integer SQLite stores (`i64::MAX`).
    #[error("{what} {value} does not fit in a SQLite integer")]
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// The number.
        value: u64,
    },
    /// A floating-point field is NaN or infinite: JSON would store `null`, which no longer
    /// decodes, so one such record would make the whole journal unreplayable.
    #[error("{field} is {value}, not a finite number")]
    NotFinite {
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// Opened read-only at a schema version this build does not read.
    #[error("schema version {found}, this build reads {known}; open it once with the daemon of the same build (it migrates older files)")]
    SchemaMismatch {
        /// In the file.
        found: u32,
        /// This build's.
        known: u32,
    },
    /// The file was written by a newer build, with migrations this one does not know.
    #[error("schema version {found} is newer than this build knows ({known})")]
    TooNew {
        /// The version in the file.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// SQLite would not put the file in WAL mode (a filesystem without shared memory support),
    /// so commits would not have the durability the journal promises.
    #[error("journal mode is {mode:?}, not wal")]
    NotWal {
        /// The mode SQLite reported.
        mode: String,
    },
    /// Another writer (a vfguard daemon) holds the journal: there is one writer per journal.
    #[error("in use by another vfguard{}; stop it first", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The holder's pid, when its lock file says it.
        pid: Option<u32>,
    },
    /// The writer lock (`<journal>.lock`) could not be opened or taken.
    #[error("cannot take the writer lock {}", lock.display())]
    Lock {
        /// The lock file.
        lock: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An intent with this action id is already in the journal.
    #[error("action {0} already has an intent")]
    DuplicateIntent(u64),
    /// An outcome names an action whose intent was never journalled.
    #[error("action {0} has no intent")]
    OutcomeWithoutIntent(u64),
    /// The action already has an outcome.
    #[error("action {0} already has an outcome")]
    DuplicateOutcome(u64),
}

impl JournalErrorKind {
    /// Whether SQLite refused for lack of write access where a reader needs some: a read-only
    /// connection to a WAL journal must open (or create) the `-shm` file beside it, and says
    /// "attempt to write a readonly database" (`SQLITE_READONLY_DIRECTORY`) or "unable to open
    /// database file" when it may not.
    pub(crate) fn lacks_write_access(&self) -> bool {
        matches!(
            self,
            JournalErrorKind::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen
                )
        )
    }
}
