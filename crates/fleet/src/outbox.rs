//! The journal as the outbox, sans-IO: each journal entry the publisher reads after its cursor
//! becomes at most one message ([`Outbox::message`]); the publisher sends it and moves the
//! cursor once JetStream acknowledged it.
//!
//! An incident message carries the incident as it stands (state, owner, class, platform), so a
//! consumer that missed earlier messages (retention, a late start) still sees it whole. The
//! outbox keeps what it needs for that for open incidents only: memory grows with open
//! incidents, never with the journal.

use std::collections::HashMap;

use vfguard_journal::{Entry, IncidentRow};
use vfguard_model::{Bdf, Decision, IncidentId, IncidentState, Millis, Topology};

use crate::error::FleetError;
use crate::event::{
    ActionEvent, Body, Envelope, Heartbeat, IncidentEvent, OutcomeEvent, Platform, PodIdentity,
    VmIdentity, VERSION,
};
use crate::subject::{Kind, Subjects};

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its subject.
    pub subject: String,
    /// `Nats-Msg-Id` (`<host>:<seq>`); none for heartbeats, which are never deduplicated.
    pub msg_id: Option<String>,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// The journal's commit-order number it reports (0 for a heartbeat).
    pub seq: u64,
}

/// Turns journal entries into messages for one agent.
#[derive(Debug)]
pub struct Outbox {
    subjects: Subjects,
    kernel: Option<String>,
    /// Each PF's platform, and each function's PF, from the host map.
    platforms: HashMap<Bdf, Platform>,
    pf_of: HashMap<Bdf, Bdf>,
    /// Open incidents as last published.
    incidents: HashMap<IncidentId, IncidentEvent>,
}

impl Outbox {
    /// An outbox for `subjects`' host, running `kernel`.
    pub fn new(subjects: Subjects, kernel: Option<String>) -> Outbox {
        Outbox {
            subjects,
            kernel,
            platforms: HashMap::new(),
            pf_of: HashMap::new(),
            incidents: HashMap::new(),
        }
    }

    /// The subjects it publishes on.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Takes each PF's driver (and firmware) and each function's PF from the host map.
    pub fn set_topology(&mut self, t: &Topology) {
        self.platforms.clear();
        self.pf_of.clear();
        for pf in &t.pfs {
            self.platforms.insert(
                pf.bdf,
                Platform {
                    driver: pf.driver.clone(),
                    firmware: pf.firmware.clone(),
                    kernel: self.kernel.clone(),
                },
            );
            self.pf_of.insert(pf.bdf, pf.bdf);
            for vf in &pf.vfs {
                self.pf_of.insert(vf.bdf, pf.bdf);
            }
        }
    }

    /// Knows the incidents open when publishing starts from a cursor past their opening.
    pub fn seed(&mut self, open: &[IncidentRow]) {
        for i in open.iter().filter(|i| i.state != IncidentState::Closed) {
            let pf = i.pf.or_else(|| self.pf_of.get(&i.function).copied());
            let event = IncidentEvent {
                incident: i.id,
                change: "opened".into(),
                function: i.function,
                pf,
                state: i.state,
                owner: i.owner.clone(),
                vm: i.owner.as_ref().and_then(VmIdentity::of),
                pod: i.owner.as_ref().and_then(PodIdentity::of),
                class: None,
                platform: self.platform(pf),
            };
            self.incidents.insert(i.id, event);
        }
    }

    fn platform(&self, pf: Option<Bdf>) -> Platform {
        pf.and_then(|pf| self.platforms.get(&pf).cloned())
            .unwrap_or_else(|| Platform {
                kernel: self.kernel.clone(),
                ..Platform::default()
            })
    }

    /// The message for a journal entry, if it is one the fleet wants; `at` is when the entry
    /// was recorded (decisions and intents carry it; an outcome its own time).
    pub fn message(&mut self, e: &Entry) -> Result<Option<Message>, FleetError> {
        let (seq, at, body, kind) = match e {
            Entry::Observation(_) => return Ok(None),
            Entry::Decision(d) => match self.incident(&d.decision) {
                Some(ev) => (d.seq, d.at, Body::Incident(ev), Kind::Incident),
                None => return Ok(None),
            },
            Entry::Intent { seq, action } => {
                let vm = action.owner.as_ref().and_then(VmIdentity::of);
                let pod = action.owner.as_ref().and_then(PodIdentity::of);
                let body = Body::Action(ActionEvent {
                    action: action.clone(),
                    vm,
                    pod,
                });
                (*seq, action.at, body, Kind::Action)
            }
            Entry::Outcome { seq, outcome } => (
                *seq,
                outcome.at,
                Body::Outcome(OutcomeEvent {
                    outcome: outcome.clone(),
                }),
                Kind::Outcome,
            ),
        };
        let envelope = self.envelope(seq, at, body);
        Ok(Some(Message {
            subject: self.subjects.of(kind),
            msg_id: Some(self.subjects.msg_id(seq)),
            payload: serde_json::to_vec(&envelope)?,
            seq,
        }))
    }

    /// A heartbeat at `now`.
    pub fn heartbeat(&self, now: Millis, hb: Heartbeat) -> Result<Message, FleetError> {
        let envelope = self.envelope(0, now, Body::Heartbeat(hb));
        Ok(Message {
            subject: self.subjects.of(Kind::Heartbeat),
            msg_id: None,
            payload: serde_json::to_vec(&envelope)?,
            seq: 0,
        })
    }

    fn envelope(&self, seq: u64, at_ms: Millis, body: Body) -> Envelope {
        Envelope {
            v: VERSION,
            site: self.subjects.site().to_owned(),
            host: self.subjects.host().to_owned(),
            seq,
            at_ms,
            body,
        }
    }

    /// The incident after `d`, when `d` changes what the fleet sees of it.
    fn incident(&mut self, d: &Decision) -> Option<IncidentEvent> {
        match d {
            Decision::IncidentOpened {
                incident,
                function,
                owner,
            } => {
                let pf = self.pf_of.get(function).copied();
                let ev = IncidentEvent {
                    incident: *incident,
                    change: "opened".into(),
                    function: *function,
                    pf,
                    state: IncidentState::Open,
                    owner: owner.clone(),
                    vm: owner.as_ref().and_then(VmIdentity::of),
                    pod: owner.as_ref().and_then(PodIdentity::of),
                    class: None,
                    platform: self.platform(pf),
                };
                self.incidents.insert(*incident, ev.clone());
                Some(ev)
            }
            Decision::ThresholdCrossed { incident, rule, .. } => {
                // The first rule names the class; a storm crosses a rule at every fault, and
                // only the first says something new.
                let ev = self.incidents.get_mut(incident)?;
                if ev.class.is_some() {
                    return None;
                }
                ev.class = Some(rule.clone());
                ev.change = "rule".into();
                Some(ev.clone())
            }
            Decision::StateChanged { incident, to, .. } => {
                let ev = self.incidents.get_mut(incident)?;
                ev.state = *to;
                ev.change = "state".into();
                Some(ev.clone())
            }
            Decision::Closed { incident, .. } => {
                let mut ev = self.incidents.remove(incident)?;
                ev.state = IncidentState::Closed;
                ev.change = "closed".into();
                Some(ev)
            }
            _ => None,
        }
    }
}
