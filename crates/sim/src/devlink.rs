//! devlink health on the simulated host: the reporters each PF driver family registers, the
//! errors the drivers report to them, and the generic netlink socket the agent reads them
//! through ([`SimGenl`]), answering the same bytes a kernel would (`vfguard_sources::devlink`
//! writes them).
//!
//! - ice: `tx_hang` and `mdd` on the PF's devlink instance (v6.14); every Tx MDD event of a VF
//!   is reported to `mdd` with a dump (`src`, `pf_num`, `vf_num`, `event`, `queue`), whether or
//!   not the driver's msglvl prints the global line; only the first dump is held until cleared.
//! - mlx5 (switchdev): `tx`, `rx`, `fw`, `fw_fatal`, `vnic` on the PF, and `vnic` on each VF's
//!   representor port, whose diagnosis gives that VF's vNIC counters.
//! - i40e, ixgbe, igb register no reporters.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use vfguard_host::GenlLink;
use vfguard_sources::devlink::ctrl::{self, Family as GenlFamily, GENL_ID_CTRL};
use vfguard_sources::devlink::fmsg::FmsgBuilder;
use vfguard_sources::devlink::proto::{
    emit, Cmd, DevHandle, PortInfo, ReporterId, ReporterStatus, Request, FLAVOUR_PCI_VF,
};
use vfguard_sources::devlink::wire;

use crate::scenario::Family;
use crate::Shared;

/// The devlink family's id on the simulated host.
pub const FAMILY_ID: u16 = 0x15;
/// The `config` group's id.
pub const CONFIG_GROUP: u32 = 8;
/// `DEVLINK_PORT_FLAVOUR_PCI_PF`.
const FLAVOUR_PCI_PF: u16 = 3;
/// `EINVAL`: no such reporter, or no diagnose op.
const EINVAL: i32 = 22;

/// One reporter.
#[derive(Debug, Clone)]
pub struct SimReporter {
    /// Its name.
    pub name: &'static str,
    /// Its port (per-VF `vnic`), else the instance's.
    pub port: Option<u32>,
    /// Errors reported.
    pub errors: u64,
    /// In error (until a recovery or a PF reset).
    pub error: bool,
    /// The held dump (the first since the last clear) and when it was taken (ns).
    pub dump: Option<(FmsgBuilder, u64)>,
}

/// A VF's vNIC environment counters (mlx5 `QUERY_VNIC_ENV`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vnic {
    /// Send/receive queues moved to error by bad work requests.
    pub total_error_queues: u64,
    /// Commands the firmware rejected as invalid.
    pub invalid_command: u64,
    /// Commands over the function's quota.
    pub quota_exceeded_command: u64,
    /// Completion queue overruns.
    pub cq_overrun: u64,
    /// Received packets with no steering match (normal traffic to unknown MACs).
    pub nic_receive_steering_discard: u64,
}

/// A PF's reporters, and the notifications not yet read.
#[derive(Debug, Clone, Default)]
pub struct PfHealth {
    /// Its reporters.
    pub reporters: Vec<SimReporter>,
    /// `HEALTH_REPORTER_RECOVER` notifications for the `config` group.
    pub notify: Vec<ReporterStatus>,
}

/// The representor port index of VF `vf` of the PF at PCI function `pf_fn`, as mlx5 builds it
/// (the vport number in the low bits).
pub fn vf_port(pf_fn: u8, vf: u16) -> u32 {
    (u32::from(pf_fn) << 16) | (u32::from(vf) + 1)
}

fn reporter(name: &'static str, port: Option<u32>) -> SimReporter {
    SimReporter {
        name,
        port,
        errors: 0,
        error: false,
        dump: None,
    }
}

impl PfHealth {
    /// The reporters `family`'s driver registers on a PF at function `pf_fn` with `numvfs`.
    pub fn new(family: Family, pf_fn: u8, numvfs: u16) -> PfHealth {
        let reporters = match family {
            Family::Ice => vec![reporter("tx_hang", None), reporter("mdd", None)],
            Family::Mlx5 => ["tx", "rx", "fw", "fw_fatal", "vnic"]
                .into_iter()
                .map(|n| reporter(n, None))
                .chain((0..numvfs).map(|v| reporter("vnic", Some(vf_port(pf_fn, v)))))
                .collect(),
            Family::I40e | Family::Ixgbe | Family::Igb => Vec::new(),
        };
        PfHealth {
            reporters,
            notify: Vec::new(),
        }
    }

    /// `devlink_health_report`: one more error, state error, the dump taken if none is held,
    /// a notification sent.
    pub fn report(&mut self, dev: &DevHandle, name: &str, dump: FmsgBuilder, now_ms: u64) {
        let Some(r) = self
            .reporters
            .iter_mut()
            .find(|r| r.name == name && r.port.is_none())
        else {
            return;
        };
        r.errors += 1;
        r.error = true;
        if r.dump.is_none() {
            r.dump = Some((dump, 1_764_870_000_000_000_000 + now_ms * 1_000_000));
        }
        let s = status(dev, r);
        self.notify.push(s);
    }
}

fn status(dev: &DevHandle, r: &SimReporter) -> ReporterStatus {
    ReporterStatus {
        id: ReporterId {
            dev: dev.clone(),
            port: r.port,
            name: r.name.to_owned(),
        },
        error: r.error,
        errors: r.errors,
        recovers: 0,
        dump_ts: r.dump.as_ref().map(|d| d.1),
        notification: false,
    }
}

/// ice's MDD dump: devlink's object around `ice_mdd_reporter_dump`'s.
pub fn ice_mdd_dump(src: &str, pf_num: u8, vf_num: u16, event: u8, queue: u16) -> FmsgBuilder {
    FmsgBuilder::default()
        .obj_start()
        .obj_start()
        .str("src", src)
        .u8("pf_num", pf_num)
        .u32("vf_num", u32::from(vf_num))
        .u8("event", event)
        .u32("queue", u32::from(queue))
        .end()
        .end()
}

/// mlx5's vnic diagnosis of one VF (reporter_vnic.c, u32 counters since 6.8, u64 before).
fn vnic_diagnose(v: &Vnic) -> FmsgBuilder {
    let n = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    FmsgBuilder::default()
        .obj_start()
        .pair_start("vNIC env counters")
        .obj_start()
        .u32("total_error_queues", n(v.total_error_queues))
        .u32("send_queue_priority_update_flow", 0)
        .u32("comp_eq_overrun", 0)
        .u32("async_eq_overrun", 0)
        .u32("cq_overrun", n(v.cq_overrun))
        .u32("invalid_command", n(v.invalid_command))
        .u32("quota_exceeded_command", n(v.quota_exceeded_command))
        .u64(
            "nic_receive_steering_discard",
            v.nic_receive_steering_discard,
        )
        .u64("generated_pkt_steering_fail", 0)
        .u64("handled_pkt_steering_fail", 0)
        .end()
        .end()
        .end()
}

/// The generic netlink socket of the simulated host. Every request is recorded in the host's
/// control calls as `devlink <request>`.
pub struct SimGenl {
    shared: Arc<Mutex<Shared>>,
    joined: bool,
}

impl SimGenl {
    /// Over the host's state.
    pub fn new(shared: Arc<Mutex<Shared>>) -> SimGenl {
        SimGenl {
            shared,
            joined: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn answer(s: &mut Shared, req: &Request, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    match req {
        Request::Reporters => {
            for pf in &s.pfs {
                let dev = DevHandle::of(pf.spec.bdf);
                for r in &pf.health.reporters {
                    out.extend(emit::reporter(
                        FAMILY_ID,
                        Cmd::ReporterGet,
                        seq,
                        &status(&dev, r),
                    ));
                }
            }
            out.extend(wire::done(seq, 0));
        }
        Request::Ports => {
            for pf in s.pfs.iter().filter(|p| p.family() == Family::Mlx5) {
                let dev = DevHandle::of(pf.spec.bdf);
                let f = pf.spec.bdf.function();
                let port = |index, flavour, vf: Option<u16>, netdev: String| PortInfo {
                    dev: dev.clone(),
                    index,
                    flavour: Some(flavour),
                    pf: Some(u16::from(f)),
                    vf,
                    netdev: Some(netdev),
                };
                out.extend(emit::port(
                    FAMILY_ID,
                    seq,
                    &port(
                        u32::from(f) << 16,
                        FLAVOUR_PCI_PF,
                        None,
                        pf.spec.netdev.clone(),
                    ),
                ));
                for v in &pf.vfs {
                    let nd = format!("{}_{}", pf.spec.netdev, v.index.0);
                    out.extend(emit::port(
                        FAMILY_ID,
                        seq,
                        &port(vf_port(f, v.index.0), FLAVOUR_PCI_VF, Some(v.index.0), nd),
                    ));
                }
            }
            out.extend(wire::done(seq, 0));
        }
        Request::DumpGet(id) | Request::DumpClear(id) | Request::Diagnose(id) => {
            let Some(pf) = s
                .pfs
                .iter_mut()
                .find(|p| id.dev == DevHandle::of(p.spec.bdf))
            else {
                return wire::error(seq, 0, 19);
            };
            let vf_of_port = id.port.and_then(|port| {
                pf.vfs
                    .iter()
                    .find(|v| vf_port(pf.spec.bdf.function(), v.index.0) == port)
                    .map(|v| v.vnic.clone())
            });
            let Some(r) = pf
                .health
                .reporters
                .iter_mut()
                .find(|r| r.name == id.name && r.port == id.port)
            else {
                return wire::error(seq, 0, EINVAL);
            };
            match req {
                Request::DumpGet(_) => match &r.dump {
                    Some((f, _)) => out = emit::fmsg(FAMILY_ID, Cmd::DumpGet, seq, id, f, 32),
                    None => out = wire::done(seq, 0),
                },
                Request::DumpClear(_) => {
                    r.dump = None;
                    out = wire::error(seq, 0, 0);
                }
                _ => match vf_of_port {
                    Some(v) if r.name == "vnic" => {
                        out = emit::fmsg(FAMILY_ID, Cmd::Diagnose, seq, id, &vnic_diagnose(&v), 64);
                    }
                    _ => out = wire::error(seq, 0, EINVAL),
                },
            }
        }
    }
    out
}

impl GenlLink for SimGenl {
    fn request(&mut self, msg: &[u8]) -> io::Result<Vec<u8>> {
        let first = wire::messages(msg)
            .ok()
            .and_then(|m| m.first().map(|m| (m.kind, m.seq)));
        let Some((kind, seq)) = first else {
            return Err(io::Error::from_raw_os_error(EINVAL));
        };
        if kind == GENL_ID_CTRL {
            let f = GenlFamily {
                id: FAMILY_ID,
                groups: vec![("config".into(), CONFIG_GROUP)],
            };
            return Ok(ctrl::family_reply(seq, "devlink", &f));
        }
        let Ok((req, seq)) = Request::decode(msg, FAMILY_ID) else {
            return Ok(wire::error(seq, 0, EINVAL));
        };
        let mut s = self.lock();
        let out = answer(&mut s, &req, seq);
        // Reads are not recorded (they come every poll); a clear changes the host.
        if let Request::DumpClear(id) = &req {
            let now = s.now_ms;
            s.calls.push(crate::state::ControlCall {
                at_ms: now,
                op: format!("devlink dump clear {}", id),
                result: "ok".into(),
            });
        }
        Ok(out)
    }

    fn join(&mut self, group: u32) -> io::Result<()> {
        if group != CONFIG_GROUP {
            return Err(io::Error::from_raw_os_error(EINVAL));
        }
        self.joined = true;
        Ok(())
    }

    fn notifications(&mut self) -> io::Result<Vec<u8>> {
        let joined = self.joined;
        let mut s = self.lock();
        let mut out = Vec::new();
        for pf in &mut s.pfs {
            for n in std::mem::take(&mut pf.health.notify) {
                if joined {
                    out.extend(emit::reporter(FAMILY_ID, Cmd::ReporterRecover, 0, &n));
                }
            }
        }
        Ok(out)
    }
}

/// Counter names of [`Vnic`], for reports.
pub fn vnic_counters(v: &Vnic) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("total_error_queues", v.total_error_queues),
        ("invalid_command", v.invalid_command),
        ("quota_exceeded_command", v.quota_exceeded_command),
        ("cq_overrun", v.cq_overrun),
        (
            "nic_receive_steering_discard",
            v.nic_receive_steering_discard,
        ),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vfguard_model::{FaultKind, VfIndex};
    use vfguard_sources::devlink::DevlinkSource;

    use crate::scenario::Scenario;
    use crate::SimHost;

    const HOST: &str = r#"
[scenario]
name = "t"
duration_ms = 20000
[[pf]]
bdf = "0000:3b:00.0"
driver = "ice"
netdev = "ens2f0"
numvfs = 4
[[pf]]
bdf = "0000:5e:00.0"
driver = "mlx5_core"
netdev = "enp94s0f0np0"
numvfs = 2
[[vm]]
name = "a"
functions = ["0000:3b:00.0/vf1"]
[[vm]]
name = "b"
functions = ["0000:5e:00.0/vf1"]
[[behaviour]]
owner = "a"
kind = "mdd_flood"
start_ms = 2000
every_ms = 1000
[[behaviour]]
owner = "b"
kind = "mailbox_flood"
start_ms = 2000
every_ms = 1000
"#;

    #[test]
    fn the_agents_source_reads_the_simulated_reporters() {
        let mut sim = SimHost::new(Scenario::parse("t.toml", HOST).unwrap()).unwrap();
        let mut src = DevlinkSource::new(sim.devlink());
        assert!(src.start().unwrap());
        assert!(
            src.poll(true).unwrap().is_empty(),
            "the first look is a baseline"
        );
        sim.advance_to(5500);
        let ev = src.poll(true).unwrap();
        // Four errors since the baseline, one dump: the dumped one on its VF, the rest PF-level.
        let ice: Vec<_> = ev.iter().filter(|e| e.reporter.name == "mdd").collect();
        assert_eq!(ice.len(), 2, "{ev:?}");
        assert_eq!(
            (ice[0].kind, ice[0].vf, ice[0].count),
            (FaultKind::MddTx, Some(VfIndex(1)), 1)
        );
        assert_eq!(
            (ice[1].kind, ice[1].vf, ice[1].count),
            (FaultKind::Mdd, None, 3)
        );
        let mlx: Vec<_> = ev.iter().filter(|e| e.reporter.name == "vnic").collect();
        assert_eq!(mlx.len(), 1, "{ev:?}");
        assert_eq!(
            (mlx[0].kind, mlx[0].vf),
            (FaultKind::Mailbox, Some(VfIndex(1)))
        );
        // The dump was cleared: the next error is dumped again, and the clear was recorded.
        assert!(sim
            .control_calls()
            .iter()
            .any(|c| c.op.starts_with("devlink dump clear pci/0000:3b:00.0")));
        let held = sim.with_state(|s| {
            s.pfs
                .first()
                .and_then(|p| p.health.reporters.iter().find(|r| r.name == "mdd"))
                .map(|r| r.dump.is_some())
        });
        assert_eq!(held, Some(false));
        sim.advance_to(7500);
        let ev = src.poll(false).unwrap();
        assert!(
            ev.iter().any(|e| e.reporter.name == "mdd"),
            "notified: {ev:?}"
        );
    }
}
