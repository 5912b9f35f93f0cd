//! The simulated host behind the host traits. Each handle shares the host's state, so what the
//! agent does through them lands on the model.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use vfguard_host::{
    FsRoot, HostFs, KmsgDevice, KmsgRead, KmsgSeek, NetnsControl, VfControl, VfNet,
};
use vfguard_model::{Bdf, Owner, OwnerKind, VfChange, VfIndex, VfState};

use crate::state::ControlCall;
use crate::Shared;

fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tree, read as it is; a write to a VF's `reset` resets the VF in the model.
pub struct SimFs {
    inner: FsRoot,
    shared: Arc<Mutex<Shared>>,
}

impl SimFs {
    /// Over the tree at `root`.
    pub fn new(root: &Path, shared: Arc<Mutex<Shared>>) -> SimFs {
        SimFs {
            inner: FsRoot::new(root),
            shared,
        }
    }
}

impl HostFs for SimFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.inner.read(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }
    fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list(path)
    }
    fn inode(&self, path: &Path) -> io::Result<u64> {
        self.inner.inode(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut s = lock(&self.shared);
        let now = s.now_ms;
        let target = path
            .strip_prefix("/sys/bus/pci/devices")
            .ok()
            .and_then(|rest| {
                let mut parts = rest.iter();
                let bdf: Bdf = parts.next()?.to_str()?.parse().ok()?;
                let attr = parts.next()?.to_str()?.to_owned();
                Some((bdf, attr))
            });
        match target {
            Some((bdf, attr)) if attr == "reset" && value.trim() == "1" => {
                let ok = match s.vf_by_bdf(bdf) {
                    Some(vf) => {
                        vf.reset();
                        true
                    }
                    None => false,
                };
                s.calls.push(ControlCall {
                    at_ms: now,
                    op: format!("reset {bdf}"),
                    result: if ok { "ok" } else { "ENODEV" }.into(),
                });
                if ok {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(19))
                }
            }
            _ => {
                drop(s);
                self.inner.write(path, value)
            }
        }
    }
}

/// The kernel log, with `/dev/kmsg` semantics: one record per read, an overrun when the ring
/// wrapped past the reader, `WouldBlock` when caught up.
pub struct SimKmsg {
    shared: Arc<Mutex<Shared>>,
    next: u64,
}

impl SimKmsg {
    /// At the oldest record.
    pub fn new(shared: Arc<Mutex<Shared>>) -> SimKmsg {
        let next = lock(&shared).log.first_seq();
        SimKmsg { shared, next }
    }
}

impl KmsgDevice for SimKmsg {
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead> {
        let s = lock(&self.shared);
        let first = s.log.first_seq();
        if self.next < first {
            self.next = first;
            return Ok(KmsgRead::Overrun);
        }
        let Some(rec) = s.log.get(self.next) else {
            return Ok(KmsgRead::WouldBlock);
        };
        let text = rec.encode();
        let n = text.len();
        let dst = buf
            .get_mut(..n)
            .ok_or_else(|| io::Error::from_raw_os_error(22))?;
        dst.copy_from_slice(text.as_bytes());
        self.next += 1;
        Ok(KmsgRead::Record(n))
    }

    fn seek(&mut self, to: KmsgSeek) -> io::Result<()> {
        let s = lock(&self.shared);
        self.next = match to {
            KmsgSeek::Start => s.log.first_seq(),
            KmsgSeek::End => s.log.next_seq(),
        };
        Ok(())
    }
}

/// The PFs' VF tables as rtnetlink would report them.
pub struct SimVfNet {
    shared: Arc<Mutex<Shared>>,
}

impl SimVfNet {
    /// Over the host's state.
    pub fn new(shared: Arc<Mutex<Shared>>) -> SimVfNet {
        SimVfNet { shared }
    }
}

impl VfNet for SimVfNet {
    fn vf_states(&self, pf_netdev: &str) -> io::Result<Vec<VfState>> {
        let mut s = lock(&self.shared);
        let pf = s
            .pf_by_netdev(pf_netdev)
            .ok_or_else(|| io::Error::from_raw_os_error(19))?;
        Ok(pf.vfs.iter().map(|v| v.netlink()).collect())
    }

    fn firmware(&self, pf_netdev: &str) -> io::Result<Option<String>> {
        let mut s = lock(&self.shared);
        let pf = s
            .pf_by_netdev(pf_netdev)
            .ok_or_else(|| io::Error::from_raw_os_error(19))?;
        let v = pf
            .spec
            .firmware
            .clone()
            .unwrap_or_else(|| pf.spec.driver.default_firmware().to_owned());
        Ok((!v.is_empty()).then_some(v))
    }
}

/// The VF knobs: changes land on the model; unsupported knobs answer `EOPNOTSUPP`; injected
/// failures answer their errno. Every call is recorded.
pub struct SimVfControl {
    shared: Arc<Mutex<Shared>>,
}

impl SimVfControl {
    /// Over the host's state.
    pub fn new(shared: Arc<Mutex<Shared>>) -> SimVfControl {
        SimVfControl { shared }
    }
}

fn knob(change: &VfChange) -> &'static str {
    match change {
        VfChange::LinkState(_) => "link_state",
        VfChange::SpoofChk(_) => "spoofchk",
        VfChange::Trust(_) => "trust",
        VfChange::Rate { .. } => "rate",
        VfChange::Vlan { .. } => "vlan",
        VfChange::Mac(_) => "mac",
    }
}

fn errno_of(name: &str) -> i32 {
    match name {
        "EPERM" => 1,
        "ENOENT" => 2,
        "EIO" => 5,
        "EACCES" => 13,
        "EBUSY" => 16,
        "ENODEV" => 19,
        "EOPNOTSUPP" => 95,
        _ => 22,
    }
}

impl VfControl for SimVfControl {
    fn set_vf(&self, pf_netdev: &str, vf: VfIndex, change: &VfChange) -> io::Result<()> {
        let mut s = lock(&self.shared);
        let now = s.now_ms;
        let op = format!(
            "set_vf {pf_netdev} vf {} {}",
            vf.0,
            serde_json::to_string(change).unwrap_or_default()
        );
        let result = (|| -> Result<(), &'static str> {
            let Some(pf_bdf) = s
                .pfs
                .iter()
                .find(|p| p.spec.netdev == pf_netdev)
                .map(|p| p.spec.bdf)
            else {
                return Err("ENODEV");
            };
            if let Some((errno, left)) = s.failures.get_mut(&pf_bdf) {
                if *left > 0 {
                    *left -= 1;
                    return Err(if errno == "EBUSY" {
                        "EBUSY"
                    } else {
                        "EOPNOTSUPP"
                    });
                }
            }
            let pf = s.pf_by_netdev(pf_netdev).ok_or("ENODEV")?;
            if pf.spec.unsupported.iter().any(|k| k == knob(change)) {
                return Err("EOPNOTSUPP");
            }
            let family = pf.family();
            let v = pf.vfs.iter_mut().find(|x| x.index == vf).ok_or("EINVAL")?;
            match *change {
                VfChange::LinkState(l) => v.link_state = l,
                VfChange::SpoofChk(on) => v.spoofchk = on,
                VfChange::Trust(on) => v.trust = on,
                VfChange::Rate { min_mbps, max_mbps } => {
                    v.min_tx_rate = min_mbps;
                    v.max_tx_rate = max_mbps;
                }
                VfChange::Vlan { vlan, qos } => {
                    v.vlan = vlan;
                    v.qos = qos;
                    // i40e and ice reset the VF when its port VLAN changes.
                    if matches!(
                        family,
                        crate::scenario::Family::I40e | crate::scenario::Family::Ice
                    ) {
                        v.reset();
                    }
                }
                VfChange::Mac(m) => {
                    v.mac = m;
                    if matches!(
                        family,
                        crate::scenario::Family::I40e | crate::scenario::Family::Ice
                    ) {
                        v.reset();
                    }
                }
            }
            Ok(())
        })();
        s.calls.push(ControlCall {
            at_ms: now,
            op,
            result: result.err().unwrap_or("ok").into(),
        });
        result.map_err(|e| io::Error::from_raw_os_error(errno_of(e)))
    }
}

/// VM control on the simulated tenants: a detached function leaves its VM (the VM's QEMU no
/// longer holds it, libvirt no longer lists it, and the tenant can no longer act through it); a
/// paused VM does nothing.
pub struct SimVmControl {
    shared: Arc<Mutex<Shared>>,
}

impl SimVmControl {
    /// Over the host's state.
    pub fn new(shared: Arc<Mutex<Shared>>) -> SimVmControl {
        SimVmControl { shared }
    }
}

impl vfguard_host::VmControl for SimVmControl {
    fn detach(&self, domain: &str, bdf: Bdf) -> io::Result<()> {
        let mut s = lock(&self.shared);
        let now = s.now_ms;
        let found = s
            .owners
            .iter()
            .position(|o| o.vm && o.present && o.name == domain);
        let result = (|| -> Result<(), &'static str> {
            let k = found.ok_or("ENOENT")?;
            let func = s
                .owners
                .get(k)
                .and_then(|o| {
                    o.functions.iter().position(|&(pi, vi)| {
                        let pf = s.pfs.get(pi);
                        match vi {
                            Some(v) => pf.and_then(|p| p.vfs.get(v)).is_some_and(|x| x.bdf == bdf),
                            None => pf.is_some_and(|p| p.spec.bdf == bdf),
                        }
                    })
                })
                .ok_or("ENODEV")?;
            let owner = s.owners.get_mut(k).ok_or("ENOENT")?;
            owner.functions.remove(func);
            let (pid, name) = (owner.pid, owner.name.clone());
            // The tree follows: the VM's QEMU and libvirt describe what it still holds.
            let remaining: Vec<(Bdf, u32)> = owner
                .functions
                .clone()
                .into_iter()
                .filter_map(|(pi, vi)| {
                    let pf = s.pfs.get(pi)?;
                    let base = u32::try_from(pi).ok()? * 1000;
                    match vi {
                        Some(v) => Some((pf.vfs.get(v)?.bdf, base + u32::try_from(v).ok()?)),
                        None => Some((pf.spec.bdf, base + 999)),
                    }
                })
                .collect();
            let _ = s.fixture.remove_process(pid);
            let _ = s.fixture.add_qemu(&vfguard_topology::fixture::QemuSpec {
                pid,
                name: name.clone(),
                uuid: None,
                hostdevs: remaining.iter().map(|(b, _)| *b).collect(),
                json: false,
                vfio_groups: remaining.iter().map(|(_, g)| *g).collect(),
            });
            let _ = s.fixture.remove_domain(&name);
            s.topology_changes += 1;
            Ok(())
        })();
        s.calls.push(ControlCall {
            at_ms: now,
            op: format!("detach {bdf} from {domain}"),
            result: result.err().unwrap_or("ok").into(),
        });
        result.map_err(|e| io::Error::from_raw_os_error(errno_of(e)))
    }

    fn pause(&self, domain: &str) -> io::Result<()> {
        let mut s = lock(&self.shared);
        let now = s.now_ms;
        let ok = match s
            .owners
            .iter_mut()
            .find(|o| o.vm && o.present && o.name == domain)
        {
            Some(o) => {
                o.paused = true;
                true
            }
            None => false,
        };
        s.calls.push(ControlCall {
            at_ms: now,
            op: format!("pause {domain}"),
            result: if ok { "ok" } else { "ENOENT" }.into(),
        });
        if ok {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(2))
        }
    }
}

/// Namespace control on the simulated containers: an evicted VF's netdev leaves the container's
/// namespace and comes back to the host's, down (under its name in the container, or
/// [`vfguard_host::linux::evicted_name`] when the host has a link of that name, as the live
/// implementation does), so the topology reader sees the host holding it and the container's
/// behaviours on it stop. Injected failures (`fail_netns_control`) answer their errno and move
/// nothing. Every call is recorded.
pub struct SimNetnsControl {
    shared: Arc<Mutex<Shared>>,
}

impl SimNetnsControl {
    /// Over the host's state.
    pub fn new(shared: Arc<Mutex<Shared>>) -> SimNetnsControl {
        SimNetnsControl { shared }
    }
}

/// The links of a namespace's sysfs view (`.../class/net`): (name, function).
fn links_under(class_net: &Path) -> Vec<(String, Bdf)> {
    let Ok(dir) = std::fs::read_dir(class_net) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let target = std::fs::read_link(e.path().join("device")).ok()?;
            let bdf = target.file_name()?.to_str()?.parse().ok()?;
            Some((name, bdf))
        })
        .collect()
}

impl NetnsControl for SimNetnsControl {
    fn evict(&self, owner: &Owner, function: Bdf) -> io::Result<()> {
        let mut s = lock(&self.shared);
        let now = s.now_ms;
        let result = (|| -> Result<(), String> {
            if owner.kind != OwnerKind::Netns {
                return Err("EINVAL".into());
            }
            // The container: by its pid (what the topology reader found), else its name.
            let k = s
                .owners
                .iter()
                .position(|o| {
                    !o.vm
                        && o.present
                        && match owner.pid {
                            Some(pid) => o.pid == pid,
                            None => owner.name.as_deref() == Some(o.name.as_str()),
                        }
                })
                .ok_or("ENOENT")?;
            let (pid, name) = s
                .owners
                .get(k)
                .map(|o| (o.pid, o.name.clone()))
                .ok_or("ENOENT")?;
            if let Some((errno, left)) = s.netns_failures.get_mut(&name) {
                if *left > 0 {
                    *left -= 1;
                    return Err(errno.clone());
                }
            }
            let func = s
                .owners
                .get(k)
                .and_then(|o| {
                    o.functions.iter().position(|&(pi, vi)| {
                        vi.and_then(|v| s.pfs.get(pi)?.vfs.get(v))
                            .is_some_and(|x| x.bdf == function)
                    })
                })
                .ok_or("ENOENT")?;
            // The tree follows: the link leaves the container's view and appears in the
            // host's, down (sysfs `flags` without IFF_UP).
            let class_net = s.fixture.path(&format!("/proc/{pid}/root/sys/class/net"));
            let (ifname, _) = links_under(&class_net)
                .into_iter()
                .find(|(_, b)| *b == function)
                .ok_or("ENOENT")?;
            let taken = s
                .fixture
                .path(&format!("/sys/class/net/{ifname}"))
                .symlink_metadata()
                .is_ok();
            let host_name = if taken {
                vfguard_host::linux::evicted_name(function)
            } else {
                ifname.clone()
            };
            let io = |_: io::Error| String::from("EIO");
            std::fs::remove_dir_all(class_net.join(&ifname)).map_err(io)?;
            s.fixture.add_netdev(function, &host_name).map_err(io)?;
            std::fs::write(
                s.fixture.path(&format!(
                    "/sys/bus/pci/devices/{function}/net/{host_name}/flags"
                )),
                "0x1002\n",
            )
            .map_err(io)?;
            if let Some(o) = s.owners.get_mut(k) {
                o.functions.remove(func);
            }
            s.topology_changes += 1;
            Ok(())
        })();
        s.calls.push(ControlCall {
            at_ms: now,
            op: format!("evict {function} from {}", owner.label()),
            result: result.as_ref().err().map_or("ok", String::as_str).into(),
        });
        result.map_err(|e| io::Error::from_raw_os_error(errno_of(&e)))
    }
}
