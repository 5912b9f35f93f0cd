//! Test support: a host map from a scenario, fault events from kernel lines, policies. The
//! engine's tests call `Engine::observe` directly; runs of the whole agent on the simulated host
//! (its actuators included) are the agent's tests (`crates/agent/tests/scenarios.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use vfguard_engine::Policy;
use vfguard_model::{Decision, FaultEvent, Method, Observation, Topology};
use vfguard_parse::{scan_text, FormatHint};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

pub const HOST: &str = r#"
[scenario]
name = "engine"
seed = 1
duration_ms = 600000

[[pf]]
bdf = "0000:3b:00.0"
driver = "i40e"
netdev = "enp59s0f0"
numvfs = 8
vf_base = 64

[[pf]]
bdf = "0000:08:00.0"
driver = "ixgbe"
netdev = "ens3f0"
numvfs = 4

[[pf]]
bdf = "0000:86:00.0"
driver = "ice"
netdev = "ens1f0"
numvfs = 4

[[pf]]
bdf = "0000:5e:00.1"
driver = "igb"
netdev = "eno2"

[[vm]]
name = "vm0"
functions = ["0000:3b:00.0/vf0"]

[[vm]]
name = "vm2"
functions = ["0000:3b:00.0/vf2"]

[[vm]]
name = "infra-dns"
functions = ["0000:3b:00.0/vf3"]

[[vm]]
name = "x1"
functions = ["0000:08:00.0/vf1"]

[[vm]]
name = "x2"
functions = ["0000:08:00.0/vf2"]

[[container]]
name = "pod-i"
functions = ["0000:86:00.0/vf3"]

[[vm]]
name = "whole"
functions = ["0000:5e:00.1"]
"#;

pub fn sim_host() -> SimHost {
    SimHost::new(Scenario::parse("host.toml", HOST).unwrap()).unwrap()
}

pub fn topology(sim: &SimHost) -> Topology {
    let mut t = sim.topology_reader().read();
    t.version = 1;
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    t
}

/// Fault events of kernel lines (bare text, as the kernel prints them).
pub fn faults(lines: &str) -> Vec<FaultEvent> {
    scan_text(lines.as_bytes(), FormatHint::Auto).0
}

pub fn fault(line: &str) -> Observation {
    let mut v = faults(line);
    assert_eq!(v.len(), 1, "{line}");
    Observation::Fault(v.remove(0))
}

/// Each attribution decided: its method and evidence.
pub fn attributed(d: &[Decision]) -> Vec<(Method, String)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Attributed {
                method, evidence, ..
            } => Some((*method, evidence.clone())),
            _ => None,
        })
        .collect()
}

pub fn acts(d: &[Decision]) -> Vec<(String, String)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Act(a) => Some((a.function.to_string(), a.kind.name())),
            _ => None,
        })
        .collect()
}

pub fn policy(extra: &str) -> Policy {
    Policy::from_toml(extra).unwrap()
}
