//! The fleet: each agent publishes what its journal records (incidents, actions, outcomes) and a
//! heartbeat to NATS JetStream, and `vfguard fleet` reads them back across hosts to show the
//! fleet's open incidents and what no single host can see: one VM faulting on several hosts, and
//! one (driver, firmware, fault class) on many hosts, which is a platform bug, not a tenant.
//!
//! # Design
//!
//! The journal is the outbox ([`outbox`]): the publisher reads what was committed after its
//! cursor (`Journal::outbox_after`), turns each decision, intent and outcome into a message
//! ([`event`]) on `vfguard.v1.<site>.<host>.<kind>` ([`subject`]) with `Nats-Msg-Id` =
//! `<host>:<seq>`, and moves the cursor only once JetStream acknowledged it ([`publish`]). A
//! restart re-reads from the cursor and JetStream's duplicate window drops what was already
//! stored, so nothing is lost while the server is down and nothing is stored twice. The
//! reading side ([`view`]) is sans-IO: messages in, a fleet view out; [`consume`] feeds it from
//! the stream.
//!
//! # Limitations
//!
//! The duplicate window (10 minutes) bounds how long after a publish a re-publish is recognised:
//! a cursor more than that behind what was acknowledged (a journal restored from an old copy)
//! republishes, and the view then counts an incident's state change twice (harmless: states are
//! set, not added).

pub mod consume;
pub mod error;
pub mod event;
pub mod local_server;
pub mod outbox;
pub mod publish;
pub mod subject;
pub mod view;

pub use error::FleetError;
pub use event::{Body, Envelope, Platform};
pub use subject::{Kind, Subjects};
