//! Issue 13, item 1: with the daemon's file descriptors exhausted, every read of the host failed
//! with `EMFILE`, the host map became empty, and a culprit (here a VM spoofing MACs through its
//! ixgbe VF) was only notified.
//! Now the last good map stays in use, marked stale, the failed reads are counted, and the
//! culprit is contained as on a healthy host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vfguard_act::MemoryNotifier;
use vfguard_agent::agent::{Agent, AgentConfig, AgentHost};
use vfguard_agent::metrics::Metrics;
use vfguard_agent::pace::{self, Flow, VirtualClock};
use vfguard_host::HostFs;
use vfguard_model::{Bdf, Decision, Topology};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;
use vfguard_topology::TopologyReader;

/// `EMFILE` (asm-generic).
const EMFILE: i32 = 24;

/// The simulated host's files, until `exhausted`: then every call fails with `EMFILE`.
struct Exhaustible {
    fs: Arc<dyn HostFs>,
    exhausted: AtomicBool,
}

impl Exhaustible {
    fn check(&self) -> io::Result<()> {
        if self.exhausted.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(EMFILE));
        }
        Ok(())
    }
}

impl HostFs for Exhaustible {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.check()?;
        self.fs.read(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.check()?;
        self.fs.read_link(path)
    }
    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        self.check()?;
        self.fs.list(path)
    }
    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.check()?;
        self.fs.inode(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        self.check()?;
        self.fs.write(path, value)
    }
}

#[test]
fn fd_exhaustion_after_the_first_read_keeps_the_map_stale_and_the_culprit_is_contained() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios/mac-spoof-ixgbe.toml");
    let mut sim = SimHost::new(Scenario::load(&file).unwrap()).unwrap();
    let fs = Arc::new(Exhaustible {
        fs: sim.fs(),
        exhausted: AtomicBool::new(false),
    });
    let mut host = AgentHost::simulated(&sim, Arc::new(MemoryNotifier::default()));
    host.topology = TopologyReader::new(fs.clone(), sim.netns(), Some(sim.vfnet()));
    // The map is checked every second and read in full every 5 s: reads fail before the
    // spoofing starts and all the while it goes on.
    let cfg = AgentConfig {
        topology_every_ms: 1_000,
        full_topology_every_ms: 5_000,
        ..AgentConfig::default()
    };
    let (mut agent, _) = Agent::start(cfg, host, None, 0).unwrap();
    let good = agent.topology().clone();
    assert!(good.stale.is_none());
    assert!(!good.pfs[0].vfs.is_empty());
    // From here on, the daemon has no file descriptor left for sysfs and /proc.
    fs.exhausted.store(true, Ordering::SeqCst);

    let mut contained = Vec::new();
    let mut outcomes = HashMap::new();
    let mut stale_steps = 0;
    let mut clock = VirtualClock::scenario(&mut sim, 100);
    let mut duties = pace::each_step(|agent: &mut Agent, at, report| {
        let t = agent.topology();
        assert_eq!(shape(t), shape(&good), "at {at} ms: the map changed");
        if at > 1_000 {
            let stale = t.stale.as_ref().expect("marked stale once a read failed");
            assert!(stale.fd_exhausted, "{stale:?}");
            stale_steps += 1;
        }
        for (_, d) in &report.decisions {
            if let Decision::Act(a) = d {
                let owner = a.owner.as_ref().and_then(|o| o.name.clone());
                if a.kind.contains() && owner.as_deref() == Some("spoofer") {
                    contained.push(a.id);
                }
            }
        }
        for o in &report.outcomes {
            outcomes.insert(o.id, o.error.clone());
        }
        Ok(Flow::Go)
    });
    pace::run_until(&mut agent, &mut clock, &mut duties).unwrap();
    assert!(stale_steps > 100, "{stale_steps}");
    assert!(
        contained.iter().any(|id| outcomes.get(id) == Some(&None)),
        "the culprit was not contained: {contained:?} {outcomes:?}"
    );
    // Counted: a failed read at every probe (each second).
    assert!(
        agent.topology_read_failures >= 15,
        "{}",
        agent.topology_read_failures
    );
    assert_eq!(agent.fd_exhausted, agent.topology_read_failures);
    let metrics = Metrics::new();
    metrics.publish_counts(&agent, &agent.incidents_by_state());
    let text = metrics.encode();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(str::to_owned)
    };
    assert_eq!(
        line("vfguard_fd_exhausted_total "),
        Some(format!("vfguard_fd_exhausted_total {}", agent.fd_exhausted)),
        "{text}"
    );
    assert_eq!(
        line("vfguard_topology_stale "),
        Some("vfguard_topology_stale 1".into())
    );
    // And the map comes back fresh once descriptors do.
    fs.exhausted.store(false, Ordering::SeqCst);
    let until = sim.scenario().scenario.duration_ms + 2_000;
    let from = sim.scenario().scenario.duration_ms;
    let mut clock = VirtualClock::new(&mut sim, from, until, 100);
    pace::run_until(&mut agent, &mut clock, &mut pace::NoDuties).unwrap();
    assert!(agent.topology().stale.is_none());
    assert_eq!(shape(agent.topology()), shape(&good));
}

/// Each PF with its VFs and their owners' names.
type Shape = Vec<(Bdf, Vec<(Bdf, Option<String>)>)>;

/// The functions of a map and their owners (VF states left out: they are sampled all along).
fn shape(t: &Topology) -> Shape {
    t.pfs
        .iter()
        .map(|p| {
            let vfs = p
                .vfs
                .iter()
                .map(|v| (v.bdf, v.owner.name.clone()))
                .collect();
            (p.bdf, vfs)
        })
        .collect()
}
