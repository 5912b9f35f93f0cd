//! Finding the VF a PF-level fault came from (issue 15 item 3), sans-IO.
//!
//! Some faults name no VF: ixgbe's PF-wide count of spoofed packets, igb's "Unhandled Msg",
//! a PF Tx hang, i40e's MAC-limit lines. vfguard localizes them in two steps:
//!
//! 1. **Passive** ([`passive`]): around each fault, the VFs whose counters moved were active;
//!    a VF that sent nothing did not send the bad frame. The suspects are the VFs active around
//!    (nearly) every fault, and the confidence grows with the faults seen. Nothing is touched.
//! 2. **Active** ([`group`]), only when the policy allows it: group testing. A round gates some
//!    suspects with the least harmful gate (a `max_tx_rate` throttle; a link-state disable only
//!    when throttling proves ineffective) for a probe window, and compares the fault rate with
//!    the rate before: a rate that falls to nothing puts every culprit inside the gated set, a
//!    rate that does not move clears it (cleared VFs are never touched again), a rate that falls
//!    part way splits the search in two. One culprit among 64 VFs takes 6 halving rounds and a
//!    confirmation round; `d` culprits take about ⌈log2 C(n, d)⌉ + d.
//!
//! The engine carries out a round's gate as journalled intents with a time to live and reverts
//! them when the round ends (and, after a crash, when their time is up); this crate only
//! decides. Trust and MAC changes are never gates: they reset the VF and wipe the PF's MDD
//! counters.

pub mod group;
pub mod oracle;
pub mod passive;

pub use group::{Gate, Localizer, Outcome, Probe, ProbeConfig, Verdict};
pub use passive::Passive;
