//! The agent as a library, for the `vfguard` binary, its benchmarks and its tests: the loop
//! ([`agent`]), its configuration ([`config`]), the choice of host ([`host`]), its metrics
//! ([`metrics`]) and API views ([`views`]), and scenario runs on the simulated host
//! ([`simrun`]).

pub mod agent;
pub mod config;
pub mod host;
pub mod metrics;
pub mod simrun;
pub mod timefmt;
pub mod views;
