//! Test support: a host map from a scenario, fault events from kernel lines, and a small agent
//! loop that runs the engine against the simulated host (the daemon's loop, minus I/O plumbing).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use vfguard_engine::{Engine, Policy};
use vfguard_model::{
    ActionKind, ActionOutcome, Decision, FaultEvent, Observation, OwnerKind, Topology, VfChange,
    VfLinkState,
};
use vfguard_parse::{kmsg_line, scan_text, Classifier, FormatHint};
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

pub fn acts(d: &[Decision]) -> Vec<(String, String)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Act(a) => Some((a.function.to_string(), a.kind.name())),
            _ => None,
        })
        .collect()
}

/// The agent loop on the simulated host: advance time, read records, classify, decide, act,
/// report outcomes, tick. Returns every decision with its time.
pub fn run_agent(
    sim: &mut SimHost,
    engine: &mut Engine,
    until_ms: u64,
    step_ms: u64,
) -> Vec<(u64, Decision)> {
    let mut log = Vec::new();
    let mut classifier = Classifier::new();
    let mut seen = 0usize;
    let reader = sim.topology_reader();
    let mut t = topology(sim);
    let mut changes = sim.topology_changes();
    let ctl = sim.vfctl();
    let fs = sim.fs();
    let mut now = sim.now_ms();
    while now < until_ms {
        now += step_ms;
        sim.advance_to(now);
        if sim.topology_changes() != changes {
            changes = sim.topology_changes();
            t = reader.read();
        }
        let recs = sim.records_since(seen);
        seen += recs.len();
        let mut events = Vec::new();
        for r in &recs {
            classifier.push(&kmsg_line(r), &mut events);
        }
        classifier.finish(&mut events);
        let mut queue: Vec<Observation> = events.into_iter().map(Observation::Fault).collect();
        queue.push(Observation::Tick);
        while let Some(obs) = queue.first().cloned() {
            queue.remove(0);
            for d in engine.observe(&obs, &t, now) {
                if let Decision::Act(a) = &d {
                    let before = a.pf_netdev.as_ref().zip(a.vf).and_then(|(nd, vf)| {
                        sim.vfnet()
                            .vf_states(nd)
                            .ok()?
                            .into_iter()
                            .find(|s| s.index == vf.0)
                    });
                    let result = if a.dry_run {
                        Ok(())
                    } else {
                        match &a.kind {
                            ActionKind::Notify => Ok(()),
                            ActionKind::SetVf(c) => {
                                ctl.set_vf(a.pf_netdev.as_deref().unwrap_or(""), a.vf.unwrap(), c)
                            }
                            ActionKind::ResetVf => fs.write(
                                Path::new(&format!("/sys/bus/pci/devices/{}/reset", a.function)),
                                "1",
                            ),
                            ActionKind::Restore(s) => {
                                let nd = a.pf_netdev.as_deref().unwrap_or("");
                                let vf = a.vf.unwrap();
                                ctl.set_vf(
                                    nd,
                                    vf,
                                    &VfChange::LinkState(s.link_state.unwrap_or(VfLinkState::Auto)),
                                )
                                .and_then(|()| {
                                    ctl.set_vf(
                                        nd,
                                        vf,
                                        &VfChange::SpoofChk(s.spoofchk.unwrap_or(true)),
                                    )
                                })
                            }
                            // As vfguard-act carries them out: by owner kind (a VF that stays
                            // with its tenant would go on faulting, and the checker sees it).
                            ActionKind::Detach => match a.owner.as_ref() {
                                Some(o) if o.kind == OwnerKind::Vm => sim
                                    .vmctl()
                                    .detach(o.name.as_deref().unwrap_or(""), a.function),
                                Some(o) if o.kind == OwnerKind::Netns => {
                                    sim.netnsctl().evict(o, a.function)
                                }
                                _ => Err(std::io::Error::from_raw_os_error(95)),
                            },
                            ActionKind::PauseVm => match a.owner.as_ref() {
                                Some(o) if o.kind == OwnerKind::Vm => {
                                    sim.vmctl().pause(o.name.as_deref().unwrap_or(""))
                                }
                                _ => Err(std::io::Error::from_raw_os_error(95)),
                            },
                            ActionKind::ResetPf => Ok(()),
                        }
                    };
                    let error = result.err().map(|e| vfguard_model::Errno::from_io(&e));
                    queue.push(Observation::Outcome(ActionOutcome {
                        id: a.id,
                        error,
                        before,
                        at: now,
                    }));
                }
                log.push((now, d));
            }
        }
    }
    log
}

pub fn policy(extra: &str) -> Policy {
    Policy::from_toml(extra).unwrap()
}
