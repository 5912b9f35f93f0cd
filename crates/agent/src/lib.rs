//! The agent as a library, for the `vfguard` binary, its benchmarks and its tests: the loop
//! ([`agent`]) and the one driver that paces it in real or virtual time ([`pace`]), its
//! configuration ([`config`]), the choice of host ([`host`]), where notifications go
//! ([`notify`]), its metrics ([`metrics`]) and API views ([`views`]), the agent as a service
//! ([`daemon`]) and scenario runs on the simulated host ([`simrun`]).

pub mod agent;
pub mod config;
pub mod daemon;
pub mod fleet;
pub mod host;
pub mod metrics;
pub mod notify;
pub mod pace;
pub mod simrun;
pub mod timefmt;
pub mod views;
