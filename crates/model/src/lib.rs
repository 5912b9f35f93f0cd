//! The shared vocabulary of vfguard.
//!
//! Every crate of the pipeline (signals → attribution → policy → actions) speaks in these types,
//! so no bare strings or integers cross a crate boundary. This crate does no I/O.

pub mod attribution;
pub mod decision;
pub mod errno;
pub mod fault;
pub mod incident;
pub mod kmsg;
pub mod mac;
pub mod pci;
pub mod printable;
pub mod rule;
pub mod topology;

pub use attribution::{Method, VICTIM_CONTEXT};
pub use decision::{
    Action, ActionId, ActionKind, ActionOutcome, Decision, IncidentId, Millis, Mode, Observation,
    OperatorRequest,
};
pub use errno::Errno;
pub use fault::{FaultEvent, FaultKind, LogFormat, Severity, TrustBasis};
pub use incident::{Cause, IncidentState};
pub use kmsg::{KmsgDecodeError, KmsgFlag, KmsgRecord};
pub use mac::{MacAddr, MacParseError};
pub use pci::{segment_unprinted, Bdf, BdfParseError, VfIndex};
pub use printable::{printable, Printable};
pub use rule::RuleRef;
pub use topology::{
    AerCounters, FunctionRef, Owner, OwnerKind, Pf, Placement, StaleMap, Topology, Vf, VfChange,
    VfLinkState, VfState, VfStats,
};
