//! The Linux implementations of the host traits. Thin: translation only, no policy.

pub mod kmsg;

pub use kmsg::{open_kmsg, DevKmsg, KmsgStream};
