//! The sans-IO engine: observations in, decisions out.
//!
//! It is the *attribute → policy* stage of the pipeline. It never touches the host: it is given
//! the topology of the moment and `now`, and returns [`vfguard_model::Decision`]s that actuators
//! carry out and the journal records. Same inputs, same decisions: a restart rebuilds its state
//! by replaying the journal.
//!
//! - [`attribute`]: which function a fault belongs to, how, how sure.
//! - [`incident`]: incidents, evidence, actions.
//! - [`policy`]: rules, ladder, guard, modes (TOML, validated).
//! - [`engine`]: the state machine.

pub mod attribute;
pub mod engine;
pub mod incident;
pub mod policy;
pub mod restart;
mod segment;
mod tlp;

pub use attribute::{Key, Method};
pub use engine::Engine;
pub use incident::Incident;
pub use policy::{Mode, Policy, PolicyError, Rung};
pub use vfguard_model::IncidentState;
