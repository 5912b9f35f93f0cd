//! Incident and action ids: taken from the journal while a replay rebuilds the engine (so the
//! rebuilt engine gives the ids the live one gave), then from counters that never go back.

use std::collections::VecDeque;

use vfguard_model::{ActionId, Bdf, Errno, IncidentId};

use super::Engine;

/// Ids a replay takes from the journal.
#[derive(Debug, Default)]
pub(super) struct IdHints {
    incidents: VecDeque<IncidentId>,
    actions: VecDeque<ActionId>,
}

impl Engine {
    /// For a replay of a journal: the ids the journal gave to incidents and actions, in the
    /// order they were given; a replay that decides as the live run did then gives each the
    /// same id, even when retention deleted older incidents (whose ids the counters would
    /// otherwise reuse). Cleared with [`Engine::end_replay`].
    pub fn replay_ids(&mut self, incidents: Vec<IncidentId>, actions: Vec<ActionId>) {
        self.hints = IdHints {
            incidents: incidents.into(),
            actions: actions.into(),
        };
    }

    /// Ends a replay: ids left unused are dropped.
    pub fn end_replay(&mut self) {
        self.hints = IdHints::default();
    }

    /// Makes the next action and incident ids follow those already used (journalled), whatever
    /// a replay decided.
    pub fn reserve_ids(&mut self, max_action: Option<u64>, max_incident: Option<u64>) {
        if let Some(a) = max_action {
            self.next_action = self.next_action.max(a.saturating_add(1));
        }
        if let Some(i) = max_incident {
            self.next_incident = self.next_incident.max(i.saturating_add(1));
        }
    }

    /// Forgets the pending actions not in `journalled` (id, action name, function): decided by
    /// a replay only, they were never carried out, and must not be retried as interrupted ones.
    /// Returns how many.
    pub fn abandon_unjournalled(
        &mut self,
        journalled: &std::collections::HashSet<(ActionId, String, Bdf)>,
    ) -> usize {
        let ids: std::collections::HashSet<ActionId> = journalled.iter().map(|k| k.0).collect();
        self.abandon_probes(&ids);
        let gone: Vec<ActionId> = self
            .pending
            .iter()
            .filter(|(id, (iid, kind))| {
                let function = self.incidents.get(iid).and_then(|i| i.function);
                !function.is_some_and(|f| journalled.contains(&(**id, kind.name(), f)))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some((iid, _)) = self.pending.remove(id) {
                if let Some(a) = self
                    .incidents
                    .get_mut(&iid)
                    .and_then(|i| i.actions.iter_mut().find(|a| a.id == *id))
                {
                    a.result = Some(Err(Errno::from_name(
                        "decided by the replay only, never carried out",
                    )));
                }
            }
        }
        gone.len()
    }

    /// The next incident id: the journal's while replaying, else the counter's.
    pub(super) fn take_incident_id(&mut self) -> IncidentId {
        let id = self
            .hints
            .incidents
            .pop_front()
            .unwrap_or(IncidentId(self.next_incident));
        self.next_incident = self.next_incident.max(id.0.saturating_add(1));
        id
    }

    /// The next action id: the journal's while replaying, else the counter's.
    pub(super) fn take_action_id(&mut self) -> ActionId {
        let id = self
            .hints
            .actions
            .pop_front()
            .unwrap_or(ActionId(self.next_action));
        self.next_action = self.next_action.max(id.0.saturating_add(1));
        id
    }
}
