//! How bodies are stored compactly (schema version 4) and read back.
//!
//! A storm writes the same fault over and over: an i40e MDD line for one VF is ~1 KB of JSON
//! (driver, PF, netdev, catalog id, message, details, the owner with its evidence) of which only
//! the kmsg sequence number and timestamp change, and each comes with an `attributed` decision
//! whose text is the same every time. Storing each whole made the journal ~1.3 KB per fault.
//!
//! # Design
//!
//! A body is split in two: a **shared** part, interned once in `bodies` (content-addressed by a
//! 64-bit FNV-1a hash of its text, collisions compared in full) and referenced by id, and the
//! row's own part in the row's `body` column. Both are the model types' serde JSON, so what
//! `sqlite3` shows stays readable, and the views `observations` and `decisions` put the two back
//! together (`json_patch(shared, body)`) for operators' queries.
//!
//! - A fault (`Observation::Fault`): the row keeps what changes from one record to the next,
//!   [`FaultTail`] (`seq`, `timestamp`, and `line`, `end_line`, `repeats` when not 0); the shared
//!   part is the whole event with those fields at their defaults (so it decodes on its own).
//! - An `attributed` decision: entirely shared (the row's `body` is null).
//! - Everything else: stored whole in the row, as before (they are few, or small).
//!
//! Reading back is [`Decoder`]: the shared part of a row is fetched and decoded once per query
//! (a small cache by id), then each row's tail is applied to a copy. `bodies.refs` counts the
//! rows that reference each shared body (kept by triggers on insert and delete); retention
//! deletes the bodies no row references any more.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use vfguard_model::{Decision, FaultEvent, Observation};

use crate::codec::{json, Cell};
use crate::error::JournalErrorKind;

type Result<T> = std::result::Result<T, JournalErrorKind>;

/// How a body is stored: a reference to a shared part and the row's own part (at least one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// The shared part's JSON, to intern.
    pub shared: Option<String>,
    /// The row's own JSON.
    pub own: Option<String>,
}

/// What of a fault changes from one kernel record to the next: kept in the row. A field at its
/// default (0, null) is left out and read from the shared part, where it is at its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultTail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repeats: Option<u64>,
}

impl FaultTail {
    /// Takes the changing fields out of `ev`, leaving their defaults in it.
    fn take(ev: &mut FaultEvent) -> FaultTail {
        let nonzero = |n: u64| (n != 0).then_some(n);
        let tail = FaultTail {
            line: nonzero(ev.line),
            end_line: nonzero(ev.end_line),
            timestamp: ev.timestamp.take(),
            seq: ev.seq.take(),
            repeats: nonzero(ev.repeats),
        };
        ev.line = 0;
        ev.end_line = 0;
        ev.repeats = 0;
        tail
    }

    /// Puts the fields it holds into `ev` (a field it leaves out keeps the shared part's value).
    fn apply(self, ev: &mut FaultEvent) {
        if let Some(v) = self.line {
            ev.line = v;
        }
        if let Some(v) = self.end_line {
            ev.end_line = v;
        }
        if self.timestamp.is_some() {
            ev.timestamp = self.timestamp;
        }
        if self.seq.is_some() {
            ev.seq = self.seq;
        }
        if let Some(v) = self.repeats {
            ev.repeats = v;
        }
    }

    fn is_empty(&self) -> bool {
        *self == FaultTail::default()
    }
}

/// How an observation is stored.
pub(crate) fn observation(o: &Observation) -> Result<Stored> {
    match o {
        Observation::Fault(ev) => {
            let mut shared = ev.clone();
            let tail = FaultTail::take(&mut shared);
            Ok(Stored {
                shared: Some(json(&Observation::Fault(shared), "observation")?),
                own: if tail.is_empty() {
                    None
                } else {
                    Some(json(&tail, "observation")?)
                },
            })
        }
        _ => Ok(Stored {
            shared: None,
            own: Some(json(o, "observation")?),
        }),
    }
}

/// How a decision is stored.
pub(crate) fn decision(d: &Decision) -> Result<Stored> {
    let text = json(d, "decision")?;
    Ok(match d {
        Decision::Attributed { .. } => Stored {
            shared: Some(text),
            own: None,
        },
        _ => Stored {
            shared: None,
            own: Some(text),
        },
    })
}

/// 64-bit FNV-1a: stable across builds and platforms (the hash is stored), unlike std's.
fn fnv1a(text: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

const FIND_BODY: &str = "SELECT id FROM bodies WHERE hash = ?1 AND body = ?2";
const INSERT_BODY: &str = "INSERT INTO bodies (hash, body) VALUES (?1, ?2)";
const BODY: &str = "SELECT body FROM bodies WHERE id = ?1";

/// The statements interning runs (for the query-plan test).
#[cfg(test)]
pub(crate) const STATEMENTS: [&str; 2] = [FIND_BODY, BODY];

/// The id of the shared body `text`, stored now if it is new. An index lookup and, for a new
/// body, an insert: the cost of a write does not grow with the journal.
pub(crate) fn intern(conn: &Connection, text: &str) -> Result<i64> {
    let hash = fnv1a(text);
    let found: Option<i64> = conn
        .prepare_cached(FIND_BODY)?
        .query_row(rusqlite::params![hash, text], |row| row.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.prepare_cached(INSERT_BODY)?
        .execute(rusqlite::params![hash, text])?;
    Ok(conn.last_insert_rowid())
}

/// The most shared bodies a [`Decoder`] keeps decoded (a storm has a handful; a replay of a
/// year a few thousand, read in turn).
const CACHE_MAX: usize = 256;

/// Decodes stored rows, fetching and decoding each shared body once.
pub(crate) struct Decoder<'c> {
    conn: &'c Connection,
    observations: HashMap<i64, Observation>,
    decisions: HashMap<i64, Decision>,
}

impl<'c> Decoder<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Decoder<'c> {
        Decoder {
            conn,
            observations: HashMap::new(),
            decisions: HashMap::new(),
        }
    }

    /// The connection it reads shared bodies with.
    pub(crate) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The text of shared body `id`, referenced from `cell` (an error naming the row when it
    /// is missing).
    fn shared_text(&self, cell: Cell, id: i64) -> Result<String> {
        self.conn
            .prepare_cached(BODY)?
            .query_row([id], |row| row.get::<_, String>(0))
            .optional()?
            .ok_or_else(|| JournalErrorKind::Invalid {
                table: cell.table,
                id: cell.id,
                column: "shared",
                value: id.to_string(),
            })
    }

    /// An observation row: `body` is the row's own part, `shared` the id of its shared part.
    pub(crate) fn observation(
        &mut self,
        cell: Cell,
        shared: Option<i64>,
        body: Option<String>,
    ) -> Result<Observation> {
        let Some(sid) = shared else {
            let body = body.ok_or_else(|| missing(cell))?;
            return cell.json(&body);
        };
        let base = match self.observations.get(&sid) {
            Some(o) => o.clone(),
            None => {
                let text = self.shared_text(cell, sid)?;
                let o: Observation = Cell::new("bodies", sid, "body").json(&text)?;
                if self.observations.len() >= CACHE_MAX {
                    self.observations.clear();
                }
                self.observations.insert(sid, o.clone());
                o
            }
        };
        let Some(body) = body else {
            return Ok(base);
        };
        let tail: FaultTail = cell.json(&body)?;
        match base {
            Observation::Fault(mut ev) => {
                tail.apply(&mut ev);
                Ok(Observation::Fault(ev))
            }
            // Only a fault has a tail: anything else is not what this build wrote.
            _ => Err(JournalErrorKind::Invalid {
                table: cell.table,
                id: cell.id,
                column: "shared",
                value: sid.to_string(),
            }),
        }
    }

    /// A decision row.
    pub(crate) fn decision(
        &mut self,
        cell: Cell,
        shared: Option<i64>,
        body: Option<String>,
    ) -> Result<Decision> {
        match (shared, body) {
            (None, Some(body)) => cell.json(&body),
            (Some(sid), None) => {
                if let Some(d) = self.decisions.get(&sid) {
                    return Ok(d.clone());
                }
                let text = self.shared_text(cell, sid)?;
                let d: Decision = Cell::new("bodies", sid, "body").json(&text)?;
                if self.decisions.len() >= CACHE_MAX {
                    self.decisions.clear();
                }
                self.decisions.insert(sid, d.clone());
                Ok(d)
            }
            // A decision is shared whole or not at all.
            (Some(sid), Some(_)) => Err(JournalErrorKind::Invalid {
                table: cell.table,
                id: cell.id,
                column: "shared",
                value: sid.to_string(),
            }),
            (None, None) => Err(missing(cell)),
        }
    }
}

/// A row with neither a body nor a shared part.
fn missing(cell: Cell) -> JournalErrorKind {
    JournalErrorKind::Invalid {
        table: cell.table,
        id: cell.id,
        column: "body",
        value: "null".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use vfguard_model::IncidentId;

    #[test]
    fn a_fault_keeps_only_what_changes_in_its_row() {
        let ev = testdata::fault(1, 123_456);
        let stored = observation(&Observation::Fault(ev.clone())).unwrap();
        assert_eq!(
            stored.own.as_deref(),
            Some(r#"{"timestamp":1234.567891,"seq":123456}"#)
        );
        let shared = stored.shared.unwrap();
        assert!(shared.contains(r#""seq":null"#), "{shared}");
        assert!(shared.contains(r#""owner":{"#), "{shared}");
        // The shared part of the same fault with another sequence number is the same text.
        let again = observation(&Observation::Fault(testdata::fault(1, 9))).unwrap();
        assert_eq!(again.shared.unwrap(), shared);
    }

    #[test]
    fn nonzero_lines_and_repeats_go_in_the_row() {
        let mut ev = testdata::fault(2, 5);
        ev.line = 7;
        ev.end_line = 9;
        ev.repeats = 3;
        let stored = observation(&Observation::Fault(ev)).unwrap();
        assert_eq!(
            stored.own.as_deref(),
            Some(r#"{"line":7,"end_line":9,"timestamp":1234.567891,"seq":5,"repeats":3}"#)
        );
    }

    #[test]
    fn attributions_are_shared_whole_other_decisions_stay_in_the_row() {
        for d in testdata::decisions(IncidentId(1)) {
            let stored = decision(&d).unwrap();
            let attributed = matches!(d, Decision::Attributed { .. });
            assert_eq!(stored.shared.is_some(), attributed, "{d:?}");
            assert_eq!(stored.own.is_some(), !attributed, "{d:?}");
        }
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(
            fnv1a(""),
            i64::from_ne_bytes(0xcbf2_9ce4_8422_2325u64.to_ne_bytes())
        );
        assert_eq!(
            fnv1a("a"),
            i64::from_ne_bytes(0xaf63_dc4c_8601_ec8cu64.to_ne_bytes())
        );
    }
}
