//! The incident state machine: the one definition of where an incident stands and how it moves.
//!
//! The engine drives it (every change is a [`crate::Decision::StateChanged`]), the journal
//! stores the state as decided, and every front end shows that stored state: nothing derives
//! it a second time.
//!
//! | from | cause | to |
//! |---|---|---|
//! | `open` | [`Cause::Escalated`] (an action beyond notify) | `escalating` |
//! | `open`, `escalating`, `uncontained` | [`Cause::Contained`] (by the agent, the driver or an operator) | `contained` |
//! | `contained` | [`Cause::Restored`] (cool-down or release put the function back) | `restored` |
//! | `restored` | [`Cause::Reoffended`] (a fault after the restore) | `escalating` |
//! | `contained` | [`Cause::ContainmentUndone`] (the driver's containment was lifted, or faults show it no longer holds) | `escalating` |
//! | `open`, `escalating` | [`Cause::Exhausted`] (no rung left, or none works for this function) | `uncontained` |
//! | `uncontained` | [`Cause::Escalated`] (an operator's quarantine) | `escalating` |
//! | any but `closed` | [`Cause::Closed`] | `closed` |
//!
//! `closed` is final: a later fault of the same function opens a new incident.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an incident stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Faults seen; nothing done beyond notifying.
    #[default]
    Open,
    /// Actions under way, not yet contained.
    Escalating,
    /// The function can harm no one (by the agent, by its driver, or by an operator).
    Contained,
    /// Put back after its cool-down (or released); on probation until closed.
    Restored,
    /// Faults go on and nothing left on the ladder can contain them: notified, again and again.
    Uncontained,
    /// Done.
    Closed,
}

/// Why an incident changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// An action beyond notify was decided.
    Escalated,
    /// The function was contained.
    Contained,
    /// The function was put back as it was.
    Restored,
    /// It faulted again after being put back.
    Reoffended,
    /// A containment no longer holds (the driver lifted its own, or faults continue).
    ContainmentUndone,
    /// The ladder has nothing left that works for this function.
    Exhausted,
    /// Quiet long enough, released, or nothing left to do.
    Closed,
}

impl IncidentState {
    /// Every state, in the order an incident usually goes through them.
    pub const ALL: [IncidentState; 6] = [
        IncidentState::Open,
        IncidentState::Escalating,
        IncidentState::Contained,
        IncidentState::Restored,
        IncidentState::Uncontained,
        IncidentState::Closed,
    ];

    /// The stable name (journal, API, metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Escalating => "escalating",
            IncidentState::Contained => "contained",
            IncidentState::Restored => "restored",
            IncidentState::Uncontained => "uncontained",
            IncidentState::Closed => "closed",
        }
    }

    /// Looks a state up by its stable name.
    pub fn from_name(name: &str) -> Option<IncidentState> {
        IncidentState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Everything but `closed`: the incident is live, and retention keeps its data.
    pub fn is_open(self) -> bool {
        self != IncidentState::Closed
    }

    /// The state `cause` moves this one to, or `None` where the table above has no such move
    /// (the caller keeps the state it had).
    pub fn after(self, cause: Cause) -> Option<IncidentState> {
        use Cause as C;
        use IncidentState as S;
        match (self, cause) {
            (S::Closed, _) => None,
            (_, C::Closed) => Some(S::Closed),
            (S::Open | S::Uncontained, C::Escalated) => Some(S::Escalating),
            (S::Open | S::Escalating | S::Uncontained, C::Contained) => Some(S::Contained),
            (S::Contained, C::Restored) => Some(S::Restored),
            (S::Restored, C::Reoffended) => Some(S::Escalating),
            (S::Contained, C::ContainmentUndone) => Some(S::Escalating),
            (S::Open | S::Escalating, C::Exhausted) => Some(S::Uncontained),
            _ => None,
        }
    }
}

impl Cause {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Escalated => "escalated",
            Cause::Contained => "contained",
            Cause::Restored => "restored",
            Cause::Reoffended => "reoffended",
            Cause::ContainmentUndone => "containment_undone",
            Cause::Exhausted => "exhausted",
            Cause::Closed => "closed",
        }
    }
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAUSES: [Cause; 7] = [
        Cause::Escalated,
        Cause::Contained,
        Cause::Restored,
        Cause::Reoffended,
        Cause::ContainmentUndone,
        Cause::Exhausted,
        Cause::Closed,
    ];

    #[test]
    fn names_round_trip() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::from_name(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{s}\""));
        }
        assert_eq!(IncidentState::from_name("gone"), None);
    }

    #[test]
    fn closed_is_final_and_reachable_from_every_other_state() {
        for c in CAUSES {
            assert_eq!(IncidentState::Closed.after(c), None);
        }
        for s in IncidentState::ALL.into_iter().filter(|s| s.is_open()) {
            assert_eq!(s.after(Cause::Closed), Some(IncidentState::Closed));
        }
    }

    #[test]
    fn a_reoffence_and_an_undone_containment_escalate_again() {
        use IncidentState as S;
        assert_eq!(S::Restored.after(Cause::Reoffended), Some(S::Escalating));
        assert_eq!(
            S::Contained.after(Cause::ContainmentUndone),
            Some(S::Escalating)
        );
        // A restored incident is not contained: nothing to undo.
        assert_eq!(S::Restored.after(Cause::ContainmentUndone), None);
        assert_eq!(S::Contained.after(Cause::Reoffended), None);
    }

    #[test]
    fn only_an_uncontained_incident_is_left_by_containment_or_an_operator() {
        use IncidentState as S;
        assert_eq!(S::Escalating.after(Cause::Exhausted), Some(S::Uncontained));
        assert_eq!(S::Uncontained.after(Cause::Contained), Some(S::Contained));
        assert_eq!(S::Uncontained.after(Cause::Escalated), Some(S::Escalating));
        assert_eq!(S::Contained.after(Cause::Exhausted), None);
        assert_eq!(S::Restored.after(Cause::Exhausted), None);
    }

    #[test]
    fn every_move_leads_somewhere_else() {
        for s in IncidentState::ALL {
            for c in CAUSES {
                if let Some(t) = s.after(c) {
                    assert_ne!(s, t, "{s} --{c}--> {t}");
                }
            }
        }
    }
}
