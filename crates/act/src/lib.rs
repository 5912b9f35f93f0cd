//! Actuators: an engine [`Action`] carried out on the host, its result reported back as an
//! [`ActionOutcome`] (the *act* stage of the pipeline).
//!
//! # Design
//! - Everything goes through the host traits (`VfControl`, `HostFs`, `VmControl`,
//!   `NetnsControl`, `VfNet`), so the same actuator drives the real host and the simulated one.
//! - `Detach` takes the function from its tenant, by the kind of owner the action names: a VM's
//!   is hot-unplugged (`VmControl::detach`), a network namespace's (a container, a pod) is
//!   evicted (`NetnsControl::evict`: its netdev goes back to the host's namespace, down).
//! - The VF's state is read before acting and returned with the outcome: the engine keeps the
//!   first one to restore later.
//! - Dry-run actions are reported as done without touching anything.
//! - Errors keep the kernel's errno ([`Errno::from_io`]: `EOPNOTSUPP`, `EBUSY`...) so the
//!   policy can retry a transient one or step to another rung; nothing is silent.

pub mod webhook;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vfguard_host::{HostFs, NetnsControl, VfControl, VfNet, VmControl};
use vfguard_model::{
    Action, ActionKind, ActionOutcome, Errno, Millis, OwnerKind, VfChange, VfLinkState, VfState,
};

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
    /// Network namespace control (evicting a VF from a container's namespace).
    pub netns: Arc<dyn NetnsControl>,
    /// Notifications.
    pub notifier: Arc<dyn Notifier>,
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

    /// Takes the function from its tenant, by the kind of owner the action names: a VM's is
    /// detached through VM control, a network namespace's evicted through namespace control.
    /// No owner, or a VM without a name: `ENOENT`; the host or nobody: `EOPNOTSUPP` (there is no
    /// tenant to take it from).
    fn detach(&self, a: &Action) -> io::Result<()> {
        let Some(owner) = a.owner.as_ref() else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        match owner.kind {
            OwnerKind::Vm => match owner.name.as_deref() {
                Some(domain) => self.vm.detach(domain, a.function),
                None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            },
            OwnerKind::Netns => self.netns.evict(owner, a.function),
            OwnerKind::Host | OwnerKind::None => {
                Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
            }
        }
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
                ActionKind::Detach => self.detach(a),
                ActionKind::PauseVm => match a.owner.as_ref() {
                    Some(o) if o.kind == OwnerKind::Vm => match o.name.as_deref() {
                        Some(domain) => self.vm.pause(domain),
                        None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
                    },
                    // Only a VM can be paused; never look a container's name up as a domain.
                    Some(_) => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
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
            error: result.err().map(|e| Errno::from_io(&e)),
            before,
            at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfguard_host::{NoNetnsControl, NoVmControl};
    use vfguard_model::{ActionId, Bdf, IncidentId, Owner};

    /// Records every call; answers `ok` or the errno it was given.
    #[derive(Default)]
    struct Calls {
        log: Mutex<Vec<String>>,
        errno: Option<i32>,
    }

    impl Calls {
        fn failing(errno: i32) -> Calls {
            Calls {
                errno: Some(errno),
                ..Calls::default()
            }
        }
        fn push(&self, call: String) -> io::Result<()> {
            self.log.lock().unwrap().push(call);
            self.errno
                .map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
        }
        fn taken(&self) -> Vec<String> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }
    }

    impl VmControl for Calls {
        fn detach(&self, domain: &str, bdf: Bdf) -> io::Result<()> {
            self.push(format!("vm detach {bdf} from {domain}"))
        }
        fn pause(&self, domain: &str) -> io::Result<()> {
            self.push(format!("vm pause {domain}"))
        }
    }

    impl NetnsControl for Calls {
        fn evict(&self, owner: &Owner, function: Bdf) -> io::Result<()> {
            self.push(format!("evict {function} from {}", owner.label()))
        }
    }

    /// Nothing else may be touched by these actions.
    struct Untouchable;

    impl VfControl for Untouchable {
        fn set_vf(&self, _: &str, _: vfguard_model::VfIndex, _: &VfChange) -> io::Result<()> {
            panic!("set_vf called")
        }
    }

    impl VfNet for Untouchable {
        fn vf_states(&self, _: &str) -> io::Result<Vec<VfState>> {
            Ok(vec![])
        }
    }

    impl HostFs for Untouchable {
        fn read(&self, _: &std::path::Path) -> io::Result<String> {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn read_link(&self, _: &std::path::Path) -> io::Result<PathBuf> {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn list(&self, _: &std::path::Path) -> io::Result<Vec<String>> {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn inode(&self, _: &std::path::Path) -> io::Result<u64> {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn write(&self, _: &std::path::Path, _: &str) -> io::Result<()> {
            panic!("write called")
        }
    }

    fn actuator(vm: Arc<dyn VmControl>, netns: Arc<dyn NetnsControl>) -> Actuator {
        Actuator {
            vfctl: Arc::new(Untouchable),
            vfnet: Arc::new(Untouchable),
            fs: Arc::new(Untouchable),
            vm,
            netns,
            notifier: Arc::new(MemoryNotifier::default()),
        }
    }

    fn owner(kind: OwnerKind, name: Option<&str>) -> Owner {
        Owner {
            kind,
            name: name.map(str::to_owned),
            id: None,
            pid: Some(6000),
            evidence: vec![],
            metadata: Default::default(),
        }
    }

    fn action(kind: ActionKind, owner: Option<Owner>) -> Action {
        Action {
            id: ActionId(1),
            incident: IncidentId(1),
            function: "0000:3b:02.1".parse().unwrap(),
            pf: Some("0000:3b:00.0".parse().unwrap()),
            pf_netdev: Some("enp59s0f0".into()),
            vf: Some(vfguard_model::VfIndex(1)),
            owner,
            kind,
            rule: vfguard_model::RuleRef::Rule("test".into()),
            dry_run: false,
            at: 0,
        }
    }

    #[test]
    fn detach_goes_to_the_vm_or_evicts_from_the_namespace_by_owner_kind() {
        let vm = Arc::new(Calls::default());
        let ns = Arc::new(Calls::default());
        let act = actuator(vm.clone(), ns.clone());
        let o = act.execute(
            &action(
                ActionKind::Detach,
                Some(owner(OwnerKind::Vm, Some("web-7"))),
            ),
            1,
        );
        assert_eq!(o.error, None);
        assert_eq!(vm.taken(), ["vm detach 0000:3b:02.1 from web-7"]);
        assert!(ns.taken().is_empty());
        let o = act.execute(
            &action(
                ActionKind::Detach,
                Some(owner(OwnerKind::Netns, Some("pod-a"))),
            ),
            2,
        );
        assert_eq!(o.error, None);
        assert_eq!(ns.taken(), ["evict 0000:3b:02.1 from netns:pod-a"]);
        assert!(vm.taken().is_empty(), "a pod's name is never a domain's");
        // A namespace owner is found by its pid too: no name needed.
        let o = act.execute(
            &action(ActionKind::Detach, Some(owner(OwnerKind::Netns, None))),
            3,
        );
        assert_eq!(o.error, None);
        assert_eq!(ns.taken().len(), 1);
    }

    #[test]
    fn detach_without_a_tenant_fails_with_an_errno_and_calls_nothing() {
        let vm = Arc::new(Calls::default());
        let ns = Arc::new(Calls::default());
        let act = actuator(vm.clone(), ns.clone());
        for (owner, errno) in [
            (None, Errno::ENOENT),
            (Some(owner(OwnerKind::Vm, None)), Errno::ENOENT),
            (
                Some(owner(OwnerKind::Host, Some("host"))),
                Errno::EOPNOTSUPP,
            ),
            (Some(owner(OwnerKind::None, None)), Errno::EOPNOTSUPP),
        ] {
            let o = act.execute(&action(ActionKind::Detach, owner.clone()), 1);
            assert_eq!(o.error, Some(errno), "{owner:?}");
        }
        assert!(vm.taken().is_empty() && ns.taken().is_empty());
    }

    #[test]
    fn an_eviction_failure_keeps_its_errno_and_no_control_means_eopnotsupp() {
        let act = actuator(Arc::new(NoVmControl), Arc::new(Calls::failing(libc::EPERM)));
        let pod = Some(owner(OwnerKind::Netns, Some("pod-a")));
        let o = act.execute(&action(ActionKind::Detach, pod.clone()), 1);
        assert_eq!(o.error, Some(Errno::EPERM));
        let act = actuator(Arc::new(NoVmControl), Arc::new(NoNetnsControl));
        let o = act.execute(&action(ActionKind::Detach, pod.clone()), 2);
        assert_eq!(o.error, Some(Errno::EOPNOTSUPP));
        // Dry run: decided, not carried out.
        let ns = Arc::new(Calls::default());
        let act = actuator(Arc::new(NoVmControl), ns.clone());
        let mut a = action(ActionKind::Detach, pod);
        a.dry_run = true;
        assert_eq!(act.execute(&a, 3).error, None);
        assert!(ns.taken().is_empty());
    }

    #[test]
    fn only_a_vm_is_paused() {
        let vm = Arc::new(Calls::default());
        let act = actuator(vm.clone(), Arc::new(NoNetnsControl));
        let o = act.execute(
            &action(
                ActionKind::PauseVm,
                Some(owner(OwnerKind::Netns, Some("web-7"))),
            ),
            1,
        );
        assert_eq!(o.error, Some(Errno::EOPNOTSUPP));
        assert!(vm.taken().is_empty());
        let o = act.execute(
            &action(
                ActionKind::PauseVm,
                Some(owner(OwnerKind::Vm, Some("web-7"))),
            ),
            2,
        );
        assert_eq!(o.error, None);
        assert_eq!(vm.taken(), ["vm pause web-7"]);
    }

    #[test]
    fn errors_are_named_as_this_kernel_numbers_them() {
        for (code, name) in [
            (libc::EPERM, "EPERM"),
            (libc::ENOENT, "ENOENT"),
            (libc::ESRCH, "ESRCH"),
            (libc::EINTR, "EINTR"),
            (libc::EIO, "EIO"),
            (libc::ENXIO, "ENXIO"),
            (libc::EAGAIN, "EAGAIN"),
            (libc::ENOMEM, "ENOMEM"),
            (libc::EACCES, "EACCES"),
            (libc::EBUSY, "EBUSY"),
            (libc::EEXIST, "EEXIST"),
            (libc::ENODEV, "ENODEV"),
            (libc::EINVAL, "EINVAL"),
            (libc::ENOSPC, "ENOSPC"),
            (libc::EPIPE, "EPIPE"),
            (libc::ENOSYS, "ENOSYS"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::ETIMEDOUT, "ETIMEDOUT"),
        ] {
            let e = Errno::from_io(&io::Error::from_raw_os_error(code));
            assert_eq!((e.name(), e.code()), (name.into(), Some(code)));
        }
        // A number without a name, and an error without a number, keep what they have.
        let e = Errno::from_io(&io::Error::from_raw_os_error(libc::EPROTO));
        assert_eq!(e.name(), format!("E{}", libc::EPROTO));
        let e = Errno::from_io(&io::Error::other("virsh suspend web-7: error"));
        assert_eq!(e.name(), "virsh suspend web-7: error");
        assert!(Errno::from_io(&io::Error::from_raw_os_error(libc::EBUSY)).is_transient());
        assert!(!Errno::from_io(&io::Error::from_raw_os_error(libc::EOPNOTSUPP)).is_transient());
    }
}
