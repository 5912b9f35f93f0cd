//! What changed between two looks at the reporters, and what a dump or a diagnosis says, as
//! health events: pure, no I/O.
//!
//! - A reporter whose error count rose since it was last seen reported that many errors
//!   (`devlink_health_report` counts every one, even when it dumps only the first).
//! - ice `mdd` (v6.14+, ice/devlink/health.c `ice_mdd_reporter_dump`): `src` (`tx_pqm`,
//!   `tx_tclan`, `tx_tdpu`, `rx`), `pf_num`, `vf_num`, `event`, `queue` → an MDD event on that
//!   VF, Tx or Rx by `src`.
//! - ice `tx_hang`, mlx5 `tx` → a Tx hang of the PF; mlx5 `rx` → an Rx error of the PF; `fw`,
//!   `fw_fatal` → a firmware fault of the adapter: no tenant's doing.
//! - mlx5 `vnic` on a VF's representor port (diagnose only): counter deltas between polls
//!   (diag/reporter_vnic.c), by class: error queues (the VF posted work the device refused) →
//!   MDD; invalid or over-quota commands → mailbox abuse; EQ/CQ overruns → an Rx error the VF
//!   suffered; steering failures → a firmware fault. `nic_receive_steering_discard` and
//!   `send_queue_priority_update_flow` move in normal operation and are details only.

use std::collections::{BTreeMap, HashMap};

use vfguard_model::{Bdf, FaultEvent, FaultKind, LogFormat, Severity, TrustBasis, VfIndex};

use super::fmsg::Fmsg;
use super::proto::{ReporterId, ReporterStatus};

/// One thing a reporter said, for a PF or one of its VFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// The reporter.
    pub reporter: ReporterId,
    /// The PCI device of the devlink instance.
    pub device: Option<Bdf>,
    /// The PF the event concerns (the instance's PF, or the PF the dump names).
    pub pf: Option<Bdf>,
    /// The VF, PF-relative, when the dump or the port names one.
    pub vf: Option<VfIndex>,
    /// What happened.
    pub kind: FaultKind,
    /// Errors (or counter increments) it stands for.
    pub count: u64,
    /// The queue, when named.
    pub queue: Option<u32>,
    /// `reporter`, `src`, `pf_num`, `vf_num`, `event`, counters...
    pub details: BTreeMap<String, String>,
}

/// A short name for a driver in catalog ids (`mlx5_core` → `mlx5`).
fn short_driver(driver: Option<&str>) -> &str {
    match driver {
        Some(d) => d.strip_suffix("_core").unwrap_or(d),
        None => "unknown",
    }
}

impl HealthEvent {
    /// The catalog id: `devlink.<driver>.<reporter>` (`devlink.ice.mdd`, `devlink.mlx5.tx`),
    /// with the counter class for `vnic` (`devlink.mlx5.vnic.error_queues`).
    pub fn catalog_id(&self, driver: Option<&str>) -> String {
        let mut id = format!("devlink.{}.{}", short_driver(driver), self.reporter.name);
        if let Some(c) = self.details.get("class") {
            id.push('.');
            id.push_str(c);
        }
        id
    }

    /// As a fault event the engine takes like a classified kernel line: trusted (netlink from
    /// the kernel, port 0, cannot be written by a tenant), PF and VF named, standing for
    /// `count` records, the rest in `details` (`source` = `devlink`).
    pub fn into_fault(self, driver: Option<&str>) -> FaultEvent {
        let catalog_id = self.catalog_id(driver);
        let severity = match self.kind {
            FaultKind::FwFault => Severity::Critical,
            FaultKind::RxError | FaultKind::Mailbox => Severity::Warning,
            _ => Severity::Error,
        };
        let message = format!(
            "devlink health: {} reported {} error(s){}",
            self.reporter,
            self.count,
            self.vf
                .map_or_else(String::new, |v| format!(" on VF {}", v.0))
        );
        let mut details = self.details;
        details.insert("source".into(), "devlink".into());
        details.insert("reporter".into(), self.reporter.name.clone());
        details.insert("devlink_dev".into(), self.reporter.dev.to_string());
        if let Some(p) = self.reporter.port {
            details.insert("port_index".into(), p.to_string());
        }
        FaultEvent {
            line: 0,
            end_line: 0,
            kind: self.kind,
            severity,
            driver: driver.map(str::to_owned),
            device: self.device,
            netdev: None,
            pf: self.pf,
            vf: self.vf,
            vf_abs: None,
            // A PF-level report of the adapter's own trouble (a Tx hang, firmware) is the PF
            // function's (its devlink instance: the PF driver is bound on the host); an offence
            // that names no VF names no function, and so never punishes anyone; a VF's is
            // resolved from PF + VF with the host map.
            function: if self.vf.is_none() && !self.kind.is_offence() {
                self.pf
            } else {
                None
            },
            queue: self.queue,
            count: Some(self.count),
            mac: None,
            catalog_id,
            message,
            trusted: true,
            trust: TrustBasis::KernelRecord,
            format: LogFormat::Bare,
            timestamp: None,
            seq: None,
            details,
            owner: None,
            // The reporter counted `count` errors: the event stands for them all, as a folded
            // storm of identical lines does (policy thresholds count records).
            repeats: self.count.saturating_sub(1),
            victim: false,
        }
    }
}

/// Reporters that dump what each error was (the dump is worth reading, then clearing).
pub fn dumps_events(name: &str) -> bool {
    matches!(name, "mdd" | "tx_hang" | "tx" | "rx" | "fw" | "fw_fatal")
}

/// The fault kind a reporter's error is, without its dump.
fn reporter_kind(name: &str) -> Option<FaultKind> {
    Some(match name {
        "mdd" => FaultKind::Mdd,
        "tx_hang" | "tx" => FaultKind::TxHang,
        "rx" => FaultKind::RxError,
        "fw" | "fw_fatal" => FaultKind::FwFault,
        _ => return None,
    })
}

/// The VF a per-port reporter stands for: the port's PCI VF number.
pub type PortVf = Option<VfIndex>;

/// What a reporter's port stands for: the PF (by the port's PF number) and the VF; for a
/// reporter of the instance, `(None, None)` (the instance's own PF).
pub type PortFunction = (Option<Bdf>, PortVf);

/// Error counts and vnic counters last seen, per reporter.
#[derive(Debug, Default)]
pub struct HealthState {
    errors: HashMap<ReporterId, u64>,
    vnic: HashMap<ReporterId, BTreeMap<String, u64>>,
}

/// The first look at a reporter is a baseline: errors counted before the agent started (or
/// before a reporter reappeared) are history, not news.
impl HealthState {
    /// How many errors `s` reported since the reporter was last seen (0 on first sight; a
    /// count that went down, a reporter recreated by a driver reload, restarts the baseline).
    pub fn new_errors(&mut self, s: &ReporterStatus) -> u64 {
        match self.errors.insert(s.id.clone(), s.errors) {
            Some(prev) if s.errors > prev => s.errors - prev,
            _ => 0,
        }
    }

    /// Forgets reporters not in `seen` (a driver unloaded, a VF port gone).
    pub fn retain(&mut self, seen: &[ReporterId]) {
        let seen: std::collections::HashSet<&ReporterId> = seen.iter().collect();
        self.errors.retain(|k, _| seen.contains(k));
        self.vnic.retain(|k, _| seen.contains(k));
    }

    /// The events of a vnic diagnosis of `id` (for VF `vf` of PF `pf`): counter deltas since
    /// the last one (none on first sight; a counter that went down, the vport reset, counts
    /// from 0).
    pub fn vnic_events(
        &mut self,
        id: &ReporterId,
        pf: Option<Bdf>,
        vf: PortVf,
        diag: &Fmsg,
    ) -> Vec<HealthEvent> {
        let now = diag.numbers();
        let Some(prev) = self.vnic.insert(id.clone(), now.clone()) else {
            return Vec::new();
        };
        let mut by_class: BTreeMap<&'static str, (FaultKind, u64, BTreeMap<String, String>)> =
            BTreeMap::new();
        for (name, &v) in &now {
            let before = prev.get(name).copied().unwrap_or(0);
            let delta = if v >= before { v - before } else { v };
            if delta == 0 {
                continue;
            }
            let Some((class, kind)) = vnic_class(name) else {
                continue;
            };
            let e = by_class
                .entry(class)
                .or_insert_with(|| (kind, 0, BTreeMap::new()));
            e.1 = e.1.saturating_add(delta);
            e.2.insert(name.clone(), format!("+{delta} (now {v})"));
        }
        by_class
            .into_iter()
            .map(|(class, (kind, count, mut details))| {
                details.insert("class".into(), class.into());
                HealthEvent {
                    reporter: id.clone(),
                    device: id.dev.pci(),
                    pf,
                    vf,
                    kind,
                    count,
                    queue: None,
                    details,
                }
            })
            .collect()
    }
}

/// A vnic counter's class and kind; `None` for counters that move in normal operation.
fn vnic_class(counter: &str) -> Option<(&'static str, FaultKind)> {
    Some(match counter {
        "total_error_queues" => ("error_queues", FaultKind::Mdd),
        "invalid_command" | "quota_exceeded_command" => ("commands", FaultKind::Mailbox),
        "comp_eq_overrun" | "async_eq_overrun" | "cq_overrun" => ("overrun", FaultKind::RxError),
        "generated_pkt_steering_fail" | "handled_pkt_steering_fail" => {
            ("steering", FaultKind::FwFault)
        }
        _ => return None,
    })
}

/// The events of `new_errors` errors of reporter `id` (on `port`'s function), with its held dump when
/// there is one. A dump says what the first error since the last clear was: for `mdd` that one
/// error is pinned on the VF it names, and the others (which may be other VFs') make a second,
/// PF-level event that names no VF; for the adapter's own reporters one event counts them all.
pub fn error_events(
    id: &ReporterId,
    port: PortFunction,
    new_errors: u64,
    dump: Option<&Fmsg>,
) -> Vec<HealthEvent> {
    let Some(mut kind) = reporter_kind(&id.name) else {
        return Vec::new();
    };
    let (port_pf, vf) = port;
    let device = id.dev.pci();
    let mut ev = HealthEvent {
        reporter: id.clone(),
        device,
        pf: port_pf.or(device),
        vf,
        kind,
        count: new_errors.max(1),
        queue: None,
        details: BTreeMap::new(),
    };
    if let Some(d) = dump {
        for (k, v) in d.pairs().into_iter().take(24) {
            if !matches!(v, super::fmsg::Value::Bytes(_)) {
                ev.details
                    .entry(k.to_owned())
                    .or_insert_with(|| v.to_string());
            }
        }
        if let Some(q) = d.get("queue").and_then(|v| v.as_u64()) {
            ev.queue = u32::try_from(q).ok();
        }
        if id.name == "mdd" {
            kind = match d.get("src") {
                Some(super::fmsg::Value::Str(s)) if s.starts_with("tx") => FaultKind::MddTx,
                Some(super::fmsg::Value::Str(s)) if s == "rx" => FaultKind::MddRx,
                _ => FaultKind::Mdd,
            };
            ev.kind = kind;
            // pf_num is the adapter's PF number: the PF at that function of the instance's
            // device (an E810's PFs are the functions of one device). vf_num is taken as
            // PF-relative (the per-VF lines print the same number; signals.md §1.2).
            let pf_num = d.get("pf_num").and_then(|v| v.as_u64());
            if let (Some(dev), Some(n)) = (device, pf_num) {
                ev.pf = u8::try_from(n)
                    .ok()
                    .and_then(|f| Bdf::new(dev.segment(), dev.bus(), dev.device(), f))
                    .or(Some(dev));
            }
            ev.vf = d
                .get("vf_num")
                .or_else(|| d.get("mdd_vf_num"))
                .and_then(|v| v.as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .map(VfIndex);
            if ev.vf.is_some() && new_errors > 1 {
                let mut rest = HealthEvent {
                    vf,
                    kind: FaultKind::Mdd,
                    count: new_errors - 1,
                    queue: None,
                    details: BTreeMap::new(),
                    ..ev.clone()
                };
                rest.pf = device;
                rest.details.insert(
                    "undetailed".into(),
                    "errors after the dumped one (one dump is held until cleared)".into(),
                );
                ev.count = 1;
                return vec![ev, rest];
            }
        }
    }
    vec![ev]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devlink::proto::DevHandle;

    fn id(name: &str) -> ReporterId {
        ReporterId {
            dev: DevHandle {
                bus: "pci".into(),
                dev: "0000:3b:00.0".into(),
            },
            port: None,
            name: name.into(),
        }
    }

    fn status(name: &str, errors: u64) -> ReporterStatus {
        ReporterStatus {
            id: id(name),
            error: errors > 0,
            errors,
            recovers: 0,
            dump_ts: None,
            notification: false,
        }
    }

    #[test]
    fn the_first_look_is_a_baseline_and_rises_are_news() {
        let mut s = HealthState::default();
        assert_eq!(s.new_errors(&status("mdd", 5)), 0);
        assert_eq!(s.new_errors(&status("mdd", 5)), 0);
        assert_eq!(s.new_errors(&status("mdd", 8)), 3);
        // The driver reloaded: the count starts again, and is a baseline again.
        assert_eq!(s.new_errors(&status("mdd", 1)), 0);
        assert_eq!(s.new_errors(&status("mdd", 2)), 1);
    }

    #[test]
    fn unknown_reporters_say_nothing_and_fw_is_the_adapters() {
        assert!(error_events(&id("something"), (None, None), 1, None).is_empty());
        let e = error_events(&id("fw_fatal"), (None, None), 2, None);
        assert_eq!(
            (e[0].kind, e[0].count, e[0].vf),
            (FaultKind::FwFault, 2, None)
        );
        let f = e[0].clone().into_fault(Some("mlx5_core"));
        assert_eq!(f.catalog_id, "devlink.mlx5.fw_fatal");
        assert!(f.trusted);
    }
}
