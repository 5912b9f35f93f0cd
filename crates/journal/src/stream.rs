//! Streams over the journal: an incident's evidence, decisions and actions, and the replay,
//! read in keyset chunks so that the memory a reader holds does not grow with what it reads.
//!
//! # Design
//!
//! Each stream is an [`Iterator`] of `Result`s borrowing the [`crate::Journal`]. It reads
//! [`crate::query::CHUNK`] rows at a time by the table's primary key or an index, never a
//! statement held open across calls (which would pin the connection) and never a sort of the
//! whole table. So that the chunks are one consistent view while a daemon writes beside a
//! reader, the stream opens a read transaction on its first read (when the connection is not
//! already in one) and ends it when dropped: it sees the journal as of its first chunk.
//!
//! # Limitations
//!
//! A stream held open for long keeps its snapshot, and SQLite cannot recycle the WAL past it
//! meanwhile (the `-wal` file grows until the stream is dropped). After an error the stream
//! ends.

use std::path::Path;

use rusqlite::Connection;

use crate::entry::Entry;
use crate::error::{JournalError, JournalErrorKind};
use crate::query::{Chunks, Item, Merge};

/// A read transaction for the lifetime of a stream, when the connection had none.
struct Snapshot<'c> {
    conn: &'c Connection,
    began: bool,
}

impl<'c> Snapshot<'c> {
    fn new(conn: &'c Connection) -> Snapshot<'c> {
        Snapshot { conn, began: false }
    }

    /// Opens the read transaction before the first read, if none is open.
    fn begin(&mut self) -> Result<(), JournalErrorKind> {
        if !self.began && self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN DEFERRED")?;
            self.began = true;
        }
        Ok(())
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if self.began {
            // A read transaction: ending it cannot lose anything; a failure leaves it to the
            // connection's close.
            let _ = self.conn.execute_batch("COMMIT");
        }
    }
}

/// A stream of rows of one kind (an incident's observations, decisions or actions), in
/// commit order. Returned by [`crate::Journal::incident_observations`],
/// [`crate::Journal::incident_decisions`] and [`crate::Journal::incident_actions`].
pub struct Rows<'j, T> {
    chunks: Option<Chunks<'j>>,
    snapshot: Snapshot<'j>,
    path: &'j Path,
    op: &'static str,
    convert: fn(Item) -> Option<T>,
    /// An error found before the first read (looking the incident up), given out first.
    pending: Option<JournalErrorKind>,
}

impl<'j, T> Rows<'j, T> {
    pub(crate) fn new(
        conn: &'j Connection,
        chunks: Chunks<'j>,
        path: &'j Path,
        op: &'static str,
        convert: fn(Item) -> Option<T>,
    ) -> Rows<'j, T> {
        Rows {
            chunks: Some(chunks),
            snapshot: Snapshot::new(conn),
            path,
            op,
            convert,
            pending: None,
        }
    }

    /// A stream that yields `error` if any, then nothing (an incident the journal does not
    /// have, or whose lookup failed).
    pub(crate) fn ended(
        conn: &'j Connection,
        path: &'j Path,
        op: &'static str,
        convert: fn(Item) -> Option<T>,
        error: Option<JournalErrorKind>,
    ) -> Rows<'j, T> {
        Rows {
            chunks: None,
            snapshot: Snapshot::new(conn),
            path,
            op,
            convert,
            pending: error,
        }
    }

    fn step(&mut self) -> Result<Option<T>, JournalErrorKind> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let Some(chunks) = self.chunks.as_mut() else {
            return Ok(None);
        };
        self.snapshot.begin()?;
        loop {
            match chunks.next_item()? {
                None => return Ok(None),
                Some(item) => {
                    if let Some(t) = (self.convert)(item) {
                        return Ok(Some(t));
                    }
                }
            }
        }
    }
}

impl<T> Iterator for Rows<'_, T> {
    type Item = Result<T, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => {
                self.chunks = None;
                None
            }
            Err(kind) => {
                self.chunks = None;
                Some(Err(JournalError::new(self.path, self.op, kind)))
            }
        }
    }
}

impl<T> std::fmt::Debug for Rows<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("path", &self.path)
            .field("op", &self.op)
            .field("ended", &self.chunks.is_none())
            .finish_non_exhaustive()
    }
}

/// The whole journal in commit order, one [`Entry`] at a time: what
/// [`crate::Journal::replay_stream`] returns, for a restart to rebuild the engine without
/// holding the journal in memory.
pub struct Replay<'j> {
    merge: Merge<'j>,
    snapshot: Snapshot<'j>,
    path: &'j Path,
    ended: bool,
}

impl<'j> Replay<'j> {
    pub(crate) fn new(conn: &'j Connection, path: &'j Path) -> Replay<'j> {
        Replay::of(conn, path, Merge::new(conn))
    }

    pub(crate) fn of(conn: &'j Connection, path: &'j Path, merge: Merge<'j>) -> Replay<'j> {
        Replay {
            merge,
            snapshot: Snapshot::new(conn),
            path,
            ended: false,
        }
    }
}

impl Iterator for Replay<'_> {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let step = self.snapshot.begin().and_then(|()| self.merge.next_entry());
        match step {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(kind) => {
                self.ended = true;
                Some(Err(JournalError::new(self.path, "replaying", kind)))
            }
        }
    }
}

impl std::fmt::Debug for Replay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("path", &self.path)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
