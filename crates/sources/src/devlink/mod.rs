//! devlink health over generic netlink: the reporters' error counts, notifications, dumps and
//! diagnoses, as health events on PFs and VFs (docs/devlink.md).
//!
//! - [`wire`]: netlink, generic netlink and attribute framing (read and written).
//! - [`ctrl`]: the generic netlink controller (family id, multicast groups).
//! - [`proto`]: the devlink health messages.
//! - [`fmsg`]: the formatted messages of dumps and diagnoses.
//! - [`health`]: what changed between looks, and dumps and counters → [`HealthEvent`]s (pure).
//! - [`source`]: the poller over a [`vfguard_host::GenlLink`].

pub mod ctrl;
pub mod fmsg;
pub mod health;
pub mod proto;
pub mod source;
pub mod wire;

pub use health::HealthEvent;
pub use source::{DevlinkError, DevlinkSource, DevlinkStats};
