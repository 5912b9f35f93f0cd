//! Incidents as the journal keeps them: one row per incident, maintained from the engine's
//! decisions inside the transaction that records them, so `vfguard incidents` (and the API)
//! answer from an index instead of replaying history.
//!
//! # Design
//!
//! The row is a summary; the decisions stay the truth (`replay` rebuilds the engine from
//! them). The state is stored as the engine decided it, never derived here: an
//! `IncidentOpened` stores `open` (a repeated id reopens the incident, keeping `opened_ms`),
//! and each `StateChanged` stores its `to` (the state machine is `vfguard_model::incident`).
//!
//! An `Act` for an incident the journal has no row for (opened before retention removed it, or
//! an operator's request) creates the row from the action, `escalating` unless the action only
//! notifies; other decisions for an unknown incident only stay in `decisions`. A journal of
//! schema version 1 (before `StateChanged` existed) is migrated with the states its decisions
//! imply ([`apply_legacy_decision`]). Every decision, and every observation attached to the incident, moves
//! `updated_ms` forward (never back) and fills `pf` when it is still unknown.
//!
//! # Limitations
//!
//! An incident about a PF itself has `pf` null unless an observation or action names the PF;
//! [`IncidentFilter::pf`] therefore also matches the incident's own function.

use rusqlite::{params, Connection};
pub use vfguard_model::IncidentState;
use vfguard_model::{ActionKind, Bdf, Decision, IncidentId, Millis, Owner};

use crate::codec::{int, json};
use crate::entry::{ActionRow, DecisionRow, ObservationRow};
use crate::error::JournalErrorKind;

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
///
/// Unbounded: an incident in a storm has millions of observations. Readers that show an
/// incident use [`IncidentPage`] (and the streams of [`crate::Journal`] for everything).
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

/// The first and last rows of a list that may be long (an incident's evidence in a storm),
/// with how many there are: what a reader shows without holding the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The first rows, in commit order.
    pub first: Vec<T>,
    /// The last rows, in commit order; none of them is also in `first`.
    pub last: Vec<T>,
    /// How many rows the journal holds (`first`, `last` and those between).
    pub total: u64,
    /// How many rows retention deleted (counted from schema version 4 on).
    pub dropped: u64,
}

impl<T> Page<T> {
    /// How many stored rows lie between `first` and `last` and are not in the page.
    pub fn omitted(&self) -> u64 {
        let shown = (self.first.len() + self.last.len()) as u64;
        self.total.saturating_sub(shown)
    }

    /// Whether the page holds every stored row (nothing omitted).
    pub fn is_complete(&self) -> bool {
        self.omitted() == 0
    }

    /// The rows of the page in commit order (`first`, then `last`).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.first.iter().chain(self.last.iter())
    }
}

/// One incident with the ends of everything journalled about it: what
/// [`crate::Journal::incident_page`] returns, in memory bounded by the page size whatever the
/// incident's length.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentPage {
    /// The incident.
    pub incident: IncidentRow,
    /// Its evidence (observations attached to it, ticks left out).
    pub observations: Page<ObservationRow>,
    /// The decisions about it.
    pub decisions: Page<DecisionRow>,
    /// Its actions, with their outcomes (never deleted: `dropped` is 0).
    pub actions: Page<ActionRow>,
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
VALUES (?1, ?2, ?3, ?3, ?7, ?4, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET
    updated_ms = max(updated_ms, excluded.updated_ms),
    pf = coalesce(pf, excluded.pf)";

const STATE: &str = "
UPDATE incidents SET
    state = ?2,
    updated_ms = max(updated_ms, ?3)
WHERE id = ?1";

/// Schema version 1 only: the states its decisions imply (before `StateChanged` existed).
const LEGACY_ACT: &str = "
UPDATE incidents SET
    state = CASE WHEN state IN ('open', 'restored') THEN 'escalating' ELSE state END
WHERE id = ?1";

/// Schema version 1 only: `closed` was final until the incident was opened again.
const LEGACY_STATE: &str = "
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
            let created = if action.kind == ActionKind::Notify {
                IncidentState::Open
            } else {
                IncidentState::Escalating
            };
            conn.prepare_cached(ACT)?.execute(params![
                int(action.incident.0, "incident id")?,
                action.function.to_string(),
                at_ms,
                owner,
                label,
                action.pf.map(|b| b.to_string()),
                created.as_str()
            ])?;
        }
        Decision::StateChanged { incident, to, .. } => {
            set_state(conn, *incident, *to, at_ms)?;
        }
        Decision::Contained { incident, .. }
        | Decision::Restored { incident }
        | Decision::Closed { incident, .. }
        | Decision::Attributed { incident, .. }
        | Decision::ThresholdCrossed { incident, .. }
        | Decision::Suppressed { incident, .. } => touch(conn, *incident, at, None)?,
        Decision::ModeChanged { .. } => {}
    }
    Ok(())
}

/// Applies one decision of a schema-version-1 journal, which has no `StateChanged`: the
/// states its decisions imply, as that version's readers showed them.
pub(crate) fn apply_legacy_decision(
    conn: &Connection,
    at: Millis,
    decision: &Decision,
) -> Result<(), JournalErrorKind> {
    apply_decision(conn, at, decision)?;
    let at_ms = int(at, "batch time")?;
    let (incident, state) = match decision {
        Decision::Act(action) if !matches!(action.kind, ActionKind::Restore(_)) => {
            conn.prepare_cached(LEGACY_ACT)?
                .execute(params![int(action.incident.0, "incident id")?])?;
            return Ok(());
        }
        Decision::Contained { incident, .. } => (*incident, IncidentState::Contained),
        Decision::Restored { incident } => (*incident, IncidentState::Restored),
        Decision::Closed { incident, .. } => (*incident, IncidentState::Closed),
        _ => return Ok(()),
    };
    set_state_with(conn, LEGACY_STATE, incident, state, at_ms)
}

fn set_state(
    conn: &Connection,
    incident: IncidentId,
    state: IncidentState,
    at_ms: i64,
) -> Result<(), JournalErrorKind> {
    set_state_with(conn, STATE, incident, state, at_ms)
}

fn set_state_with(
    conn: &Connection,
    sql: &str,
    incident: IncidentId,
    state: IncidentState,
    at_ms: i64,
) -> Result<(), JournalErrorKind> {
    conn.prepare_cached(sql)?.execute(params![
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
