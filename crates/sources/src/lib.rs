//! Host signals → raw records: the first stage of the pipeline.
//!
//! - [`kmsg`]: the kernel log record reader (gaps, resume, continuation fragments).
//! - [`aer`]: PCIe AER counters from sysfs and their deltas.
//! - [`devlink`]: devlink health reporters over generic netlink.

pub mod aer;
pub mod devlink;
pub mod kmsg;
pub mod vf_drops;

pub use kmsg::{KmsgEvent, KmsgReader, ReaderStats};
