//! Actuators: an engine [`Action`] carried out on the host, its result reported back as an
//! [`ActionOutcome`] (the *act* stage of the pipeline).
//!
//! # Design
//! - Everything goes through the host traits (`VfControl`, `HostFs`, `VmControl`, `VfNet`), so
//!   the same actuator drives the real host and the simulated one.
//! - The VF's state is read before acting and returned with the outcome: the engine keeps the
//!   first one to restore later.
//! - Dry-run actions are reported as done without touching anything.
//! - Errors keep the kernel's errno name (`EOPNOTSUPP`, `EBUSY`...) so the policy can step to
//!   another rung; nothing is silent.

pub mod webhook;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vfguard_host::{HostFs, VfControl, VfNet, VmControl};
use vfguard_model::{Action, ActionKind, ActionOutcome, Millis, VfChange, VfLinkState, VfState};

/// Receives notifications (a webhook, the log, a test).
pub trait Notifier: Send + Sync {
    /// Delivers one notification.
    fn notify(&self, action: &Action) -> io::Result<()>;
}

/// Notifications kept in memory (and readable), for the simulator and tests.
#[derive(Debug, Default)]
pub struct MemoryNotifier(pub Mutex<Vec<String>>);

impl Notifier for MemoryNotifier {
    fn notify(&self, a: &Action) -> io::Result<()> {
        let owner = a
            .owner
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label);
        let line = format!(
            "incident {} on {} ({owner}): {}",
            a.incident.0, a.function, a.rule
        );
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
        Ok(())
    }
}

/// The host handles an actuator needs.
#[derive(Clone)]
pub struct Actuator {
    /// VF knobs.
    pub vfctl: Arc<dyn VfControl>,
    /// VF tables (state before acting).
    pub vfnet: Arc<dyn VfNet>,
    /// sysfs (function reset).
    pub fs: Arc<dyn HostFs>,
    /// VM control.
    pub vm: Arc<dyn VmControl>,
    /// Notifications.
    pub notifier: Arc<dyn Notifier>,
}

/// The errno name of an I/O error (`EOPNOTSUPP`), or its text.
pub fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(n) => return format!("E{n}"),
        None => return e.to_string(),
    };
    name.to_owned()
}

impl Actuator {
    fn before(&self, a: &Action) -> Option<VfState> {
        let (nd, vf) = a.pf_netdev.as_ref().zip(a.vf)?;
        self.vfnet
            .vf_states(nd)
            .ok()?
            .into_iter()
            .find(|s| s.index == vf.0)
    }

    fn set(&self, a: &Action, change: &VfChange) -> io::Result<()> {
        match (&a.pf_netdev, a.vf) {
            (Some(nd), Some(vf)) => self.vfctl.set_vf(nd, vf, change),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }

    /// Puts back every knob of a captured state that differs from now.
    fn restore(&self, a: &Action, to: &VfState, now: Option<&VfState>) -> io::Result<()> {
        let mut changes = Vec::new();
        let differs = |f: fn(&VfState) -> bool| now.is_none_or(|n| f(n) != f(to));
        if let Some(l) = to.link_state {
            if now.is_none_or(|n| n.link_state != Some(l)) {
                changes.push(VfChange::LinkState(l));
            }
        }
        if let Some(on) = to.spoofchk {
            if differs(|s| s.spoofchk == Some(true)) {
                changes.push(VfChange::SpoofChk(on));
            }
        }
        if let Some(on) = to.trust {
            if differs(|s| s.trust == Some(true)) {
                changes.push(VfChange::Trust(on));
            }
        }
        if let (Some(min), Some(max)) = (to.min_tx_rate, to.max_tx_rate) {
            if now.is_none_or(|n| n.min_tx_rate != Some(min) || n.max_tx_rate != Some(max)) {
                changes.push(VfChange::Rate {
                    min_mbps: min,
                    max_mbps: max,
                });
            }
        }
        if let Some(vlan) = to.vlan {
            if now.is_none_or(|n| n.vlan != Some(vlan)) {
                changes.push(VfChange::Vlan {
                    vlan: u16::try_from(vlan).unwrap_or(0),
                    qos: u8::try_from(to.qos.unwrap_or(0)).unwrap_or(0),
                });
            }
        }
        // Put the link back last: the VF comes up only once its knobs are as they were.
        changes.sort_by_key(|c| {
            matches!(
                c,
                VfChange::LinkState(VfLinkState::Auto | VfLinkState::Enable)
            )
        });
        for c in changes {
            self.set(a, &c)?;
        }
        Ok(())
    }

    /// Carries out one action (journal the intent before calling this, the outcome after).
    pub fn execute(&self, a: &Action, now: Millis) -> ActionOutcome {
        let before = self.before(a);
        let result = if a.dry_run {
            Ok(())
        } else {
            match &a.kind {
                ActionKind::Notify => self.notifier.notify(a),
                ActionKind::SetVf(c) => self.set(a, c),
                ActionKind::ResetVf => {
                    let path = PathBuf::from(format!("/sys/bus/pci/devices/{}/reset", a.function));
                    self.fs.write(&path, "1")
                }
                ActionKind::Detach => match a.owner.as_ref().and_then(|o| o.name.as_deref()) {
                    Some(domain) => self.vm.detach(domain, a.function),
                    None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
                },
                ActionKind::PauseVm => match a.owner.as_ref().and_then(|o| o.name.as_deref()) {
                    Some(domain) => self.vm.pause(domain),
                    None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
                },
                // PF resets hit every tenant of the PF; the engine never decides one unless an
                // operator enabled it, and no actuator here carries it out automatically.
                ActionKind::ResetPf => Err(io::Error::from_raw_os_error(libc::EPERM)),
                ActionKind::Restore(to) => self.restore(a, to, before.as_ref()),
            }
        };
        ActionOutcome {
            id: a.id,
            error: result.err().map(|e| errno_name(&e)),
            before,
            at: now,
        }
    }
}
