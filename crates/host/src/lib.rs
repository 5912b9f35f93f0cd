//! The host behind small traits.
//!
//! Everything that touches the machine sits behind a trait named after the domain, with a Linux
//! implementation here (module [`linux`]) and a simulated one in `vfguard-sim`. The traits use
//! only `vfguard-model` types and `std::io`.
//!
//! - [`kmsg::KmsgDevice`]: a source of `/dev/kmsg`-format records.

pub mod kmsg;
pub mod linux;

pub use kmsg::{KmsgDevice, KmsgRead, KmsgSeek};
