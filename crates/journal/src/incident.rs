//! Incidents as the journal keeps them: one row per incident, maintained from the engine's
//! decisions inside the transaction that records them, so `vfguard incidents` (and the API)
//! answer from an index instead of replaying history.
//!
//! # Design
//!
//! The row is a summary; the decisions stay the truth (`replay` rebuilds the engine from
//! them, and schema version 2 derived the table from them). The state follows the decisions:
//!
//! | decision | state becomes |
//! |---|---|
//! | `IncidentOpened` | `open` (a repeated id reopens the incident, keeping `opened_ms`) |
//! | `Act` (other than `restore`) | `escalating`, from `open` or `restored` |
//! | `Contained` | `contained` |
//! | `Restored` | `restored` |
//! | `Closed` | `closed` |
//!
//! `closed` is final until an `IncidentOpened` with the same id. An `Act` for an incident the
//! journal has no row for (opened before retention removed it, or an operator's request)
//! creates the row from the action; other decisions for an unknown incident only stay in
//! `decisions`. Every decision, and every observation attached to the incident, moves
//! `updated_ms` forward (never back) and fills `pf` when it is still unknown.
//!
//! # Limitations
//!
//! An incident about a PF itself has `pf` null unless an observation or action names the PF;
//! [`IncidentFilter::pf`] therefore also matches the incident's own function.

use std::fmt;

use rusqlite::{params, Connection};
use vfguard_model::{ActionKind, Bdf, Decision, IncidentId, Millis, Owner};

use crate::codec::{int, json};
use crate::entry::{ActionRow, DecisionRow, ObservationRow};
use crate::error::JournalErrorKind;

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentState {
    /// Opened; nothing done yet.
    Open,
    /// Actions decided, not yet contained.
    Escalating,
    /// The function can harm no one.
    Contained,
    /// The function was put back after its cool-down.
    Restored,
    /// Done.
    Closed,
}

impl IncidentState {
    /// Every state, in the order an incident usually goes through them.
    pub const ALL: [IncidentState; 5] = [
        IncidentState::Open,
        IncidentState::Escalating,
        IncidentState::Contained,
        IncidentState::Restored,
        IncidentState::Closed,
    ];

    /// The stored name (`incidents.state`).
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Escalating => "escalating",
            IncidentState::Contained => "contained",
            IncidentState::Restored => "restored",
            IncidentState::Closed => "closed",
        }
    }

    /// Looks a state up by its stored name.
    pub fn from_name(name: &str) -> Option<IncidentState> {
        IncidentState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Everything but `closed`: the incident is live, and retention keeps its data.
    pub fn is_open(self) -> bool {
        self != IncidentState::Closed
    }
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One incident, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    /// Its id.
    pub id: IncidentId,
    /// The function it is about.
    pub function: Bdf,
    /// The PF of that function, once an observation or action named it.
    pub pf: Option<Bdf>,
    /// Where it stands.
    pub state: IncidentState,
    /// The owner of the function when it was opened.
    pub owner: Option<Owner>,
    /// When it was opened.
    pub opened_at: Millis,
    /// When a decision or observation last concerned it.
    pub updated_at: Millis,
}

/// Which incidents to list. The default lists them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Only those not closed.
    pub open_only: bool,
    /// Only those whose owner has this label (`vm:web-7`), name (`web-7`) or id (a UUID).
    pub owner: Option<String>,
    /// Only those on this PF (or about the PF itself).
    pub pf: Option<Bdf>,
}

/// One incident with everything journalled about it, each list in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: IncidentRow,
    /// The observations attached to it.
    pub observations: Vec<ObservationRow>,
    /// The decisions about it.
    pub decisions: Vec<DecisionRow>,
    /// Its actions, with their outcomes.
    pub actions: Vec<ActionRow>,
}

const OPEN: &str = "
INSERT INTO incidents (id, function, opened_ms, updated_ms, state, owner, owner_label, pf)
VALUES (?1, ?2, ?3, ?3, 'open', ?4, ?5, NULL)
ON CONFLICT (id) DO UPDATE SET
    function = excluded.function,
    owner = excluded.owner,
    owner_label = excluded.owner_label,
    state = 'open',
    updated_ms = max(updated_ms, excluded.updated_ms)";

const ACT: &str = "
INSERT INTO incidents (id, function, opened_ms, updated_ms, state, owner, owner_label, pf)
VALUES (?1, ?2, ?3, ?3, 'escalating', ?4, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET
    state = CASE WHEN state IN ('open', 'restored') THEN 'escalating' ELSE state END,
    updated_ms = max(updated_ms, excluded.updated_ms),
    pf = coalesce(pf, excluded.pf)";

const STATE: &str = "
UPDATE incidents SET
    state = CASE WHEN state = 'closed' THEN state ELSE ?2 END,
    updated_ms = max(updated_ms, ?3)
WHERE id = ?1";

const TOUCH: &str = "
UPDATE incidents SET
    updated_ms = max(updated_ms, ?2),
    pf = coalesce(pf, ?3)
WHERE id = ?1";

/// The statements `record_batch` runs on `incidents` (for the query-plan test).
#[cfg(test)]
pub(crate) const STATEMENTS: [&str; 4] = [OPEN, ACT, STATE, TOUCH];

fn owner_columns(
    owner: Option<&Owner>,
) -> Result<(Option<String>, Option<String>), JournalErrorKind> {
    match owner {
        Some(o) => Ok((Some(json(o, "incident owner")?), Some(o.label()))),
        None => Ok((None, None)),
    }
}

/// Applies one decision to its incident's row.
pub(crate) fn apply_decision(
    conn: &Connection,
    at: Millis,
    decision: &Decision,
) -> Result<(), JournalErrorKind> {
    let at_ms = int(at, "batch time")?;
    match decision {
        Decision::IncidentOpened {
            incident,
            function,
            owner,
        } => {
            let (owner, label) = owner_columns(owner.as_ref())?;
            conn.prepare_cached(OPEN)?.execute(params![
                int(incident.0, "incident id")?,
                function.to_string(),
                at_ms,
                owner,
                label
            ])?;
        }
        Decision::Act(action) if matches!(action.kind, ActionKind::Restore(_)) => {
            touch(conn, action.incident, at, action.pf)?;
        }
        Decision::Act(action) => {
            let (owner, label) = owner_columns(action.owner.as_ref())?;
            conn.prepare_cached(ACT)?.execute(params![
                int(action.incident.0, "incident id")?,
                action.function.to_string(),
                at_ms,
                owner,
                label,
                action.pf.map(|b| b.to_string())
            ])?;
        }
        Decision::Contained { incident, .. } => {
            set_state(conn, *incident, IncidentState::Contained, at_ms)?;
        }
        Decision::Restored { incident } => {
            set_state(conn, *incident, IncidentState::Restored, at_ms)?;
        }
        Decision::Closed { incident, .. } => {
            set_state(conn, *incident, IncidentState::Closed, at_ms)?;
        }
        Decision::Attributed { incident, .. }
        | Decision::ThresholdCrossed { incident, .. }
        | Decision::Suppressed { incident, .. } => touch(conn, *incident, at, None)?,
        Decision::ModeChanged { .. } => {}
    }
    Ok(())
}

fn set_state(
    conn: &Connection,
    incident: IncidentId,
    state: IncidentState,
    at_ms: i64,
) -> Result<(), JournalErrorKind> {
    conn.prepare_cached(STATE)?.execute(params![
        int(incident.0, "incident id")?,
        state.as_str(),
        at_ms
    ])?;
    Ok(())
}

/// Something concerned the incident at `at` (and may name its PF).
pub(crate) fn touch(
    conn: &Connection,
    incident: IncidentId,
    at: Millis,
    pf: Option<Bdf>,
) -> Result<(), JournalErrorKind> {
    conn.prepare_cached(TOUCH)?.execute(params![
        int(incident.0, "incident id")?,
        int(at, "batch time")?,
        pf.map(|b| b.to_string())
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::from_name(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(IncidentState::from_name("gone"), None);
        assert!(!IncidentState::Closed.is_open());
        assert!(IncidentState::Restored.is_open());
    }
}
