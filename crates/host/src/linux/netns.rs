//! The live namespace probe: enter each network namespace in a short-lived thread and list its
//! links over rtnetlink; and the live eviction of a VF's netdev from a namespace back into the
//! host's, from such a thread too.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use vfguard_model::{Bdf, Owner, OwnerKind};

use crate::linux::netlink::Rtnl;
use crate::netns::{netns_inode, NetnsLink, NetnsProbe, NetnsView};
use crate::netnsctl::NetnsControl;

/// Enters `/run/netns/*` and every process namespace other than the agent's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveNetns;

/// Lists the links of the namespace `path` names, from a thread that entered it.
fn links_in(path: &Path) -> io::Result<Vec<NetnsLink>> {
    let file = File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Rtnl::open()?.links()
        })
        .join()
        .map_err(|_| io::Error::other("namespace probe thread panicked"))?
    })
}

impl NetnsProbe for LiveNetns {
    fn views(&self) -> io::Result<Vec<NetnsView>> {
        let own = std::fs::metadata("/proc/self/ns/net")?.ino();
        let mut views: Vec<NetnsView> = Vec::new();
        let mut seen = vec![own];
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            let mut names: Vec<String> = dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let path = PathBuf::from("/run/netns").join(&name);
                let Ok(ino) = std::fs::metadata(&path).map(|m| m.ino()) else {
                    continue;
                };
                if seen.contains(&ino) {
                    continue;
                }
                seen.push(ino);
                views.push(NetnsView {
                    name: Some(name.clone()),
                    pid: None,
                    inode: Some(ino),
                    source: path.display().to_string(),
                    links: links_in(&path).unwrap_or_default(),
                });
            }
        }
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            let Some(ino) = std::fs::read_link(&path).ok().and_then(|l| netns_inode(&l)) else {
                continue;
            };
            if let Some(v) = views.iter_mut().find(|v| v.inode == Some(ino)) {
                v.pid.get_or_insert(pid);
                continue;
            }
            if seen.contains(&ino) {
                continue;
            }
            seen.push(ino);
            views.push(NetnsView {
                name: None,
                pid: Some(pid),
                inode: Some(ino),
                source: path.display().to_string(),
                links: links_in(&path).unwrap_or_default(),
            });
        }
        Ok(views)
    }
}

/// [`NetnsControl`] on the live host: enters the owner's namespace in a short-lived thread, finds
/// the link whose parent device is the function, and moves it into the agent's own namespace
/// (the one its topology reader takes for the host's) with `IFF_UP` cleared, in one
/// `RTM_NEWLINK`, as `ip -n <ns> link set <if> netns <host> down` does.
///
/// # Limitations
/// - The link keeps its name when the host namespace has no link of that name; else (two pods
///   each calling their VF `net1`) it is renamed after the function, [`evicted_name`].
/// - Needs `CAP_SYS_ADMIN` (to enter the namespace) and `CAP_NET_ADMIN` in both namespaces:
///   `EPERM` otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveNetnsControl;

/// The name an evicted link takes when its own is taken in the host namespace:
/// `vf<segment>-<bus>-<device>.<function>` (`vf0000-3b-02.1`: 14 characters, within
/// `IFNAMSIZ`, and without the `:` a link name cannot hold).
pub fn evicted_name(function: Bdf) -> String {
    format!("vf{}", function).replace(':', "-")
}

/// Opens the namespace of a netns owner: its process's (`/proc/<pid>/ns/net`), else its name's
/// (`/run/netns/<name>`). When the owner recorded its namespace inode (`net:[N]` as its id), a
/// namespace with another inode is not it (the pid was reused): `ESRCH`. The host's own
/// namespace (`host_ino`) is never an owner's: `ENOENT`.
fn open_owner_ns(owner: &Owner, host_ino: u64) -> io::Result<File> {
    if owner.kind != OwnerKind::Netns {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let want = owner
        .id
        .as_deref()
        .and_then(|id| netns_inode(Path::new(id)));
    let mut candidates = Vec::new();
    if let Some(pid) = owner.pid {
        candidates.push(PathBuf::from(format!("/proc/{pid}/ns/net")));
    }
    if let Some(name) = owner.name.as_deref() {
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
        if plain {
            candidates.push(PathBuf::from("/run/netns").join(name));
        }
    }
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for path in candidates {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let ino = file.metadata()?.ino();
        if want.is_some_and(|w| w != ino) {
            last = io::Error::from_raw_os_error(libc::ESRCH);
            continue;
        }
        if ino == host_ino {
            last = io::Error::from_raw_os_error(libc::ENOENT);
            continue;
        }
        return Ok(file);
    }
    Err(last)
}

/// From a thread that entered `ns`: moves the link `find` picks there into the namespace `dest`,
/// down, under its own name, else (`EEXIST`: `dest` has a link of that name) as `rename`.
/// `ENOENT` when `find` picks none.
fn move_out<F>(ns: &File, dest: &File, find: F, rename: &str) -> io::Result<()>
where
    F: FnOnce(&mut Rtnl) -> io::Result<Option<(u32, String)>> + Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            let mut rtnl = Rtnl::open()?;
            let (index, _) =
                find(&mut rtnl)?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            match rtnl.move_down(index, dest, None) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    rtnl.move_down(index, dest, Some(rename))
                }
                r => r,
            }
        })
        .join()
        .map_err(|_| io::Error::other("namespace eviction thread panicked"))?
    })
}

impl NetnsControl for LiveNetnsControl {
    fn evict(&self, owner: &Owner, function: Bdf) -> io::Result<()> {
        // The destination first, from this thread (in the agent's namespace), before any
        // thread enters another one.
        let host = File::open("/proc/self/ns/net")?;
        let host_ino = host.metadata()?.ino();
        let ns = open_owner_ns(owner, host_ino)?;
        move_out(
            &ns,
            &host,
            |rtnl| rtnl.link_of(function),
            &evicted_name(function),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netns_owner(pid: Option<u32>, name: Option<&str>, id: Option<&str>) -> Owner {
        Owner {
            kind: OwnerKind::Netns,
            name: name.map(str::to_owned),
            id: id.map(str::to_owned),
            pid,
            evidence: vec![],
            metadata: Default::default(),
        }
    }

    #[test]
    fn evicted_names_fit_a_link_name() {
        let f: Bdf = "0000:3b:02.1".parse().unwrap();
        let n = evicted_name(f);
        assert_eq!(n, "vf0000-3b-02.1");
        assert!(n.len() < 16 && !n.contains(':') && !n.contains('/'));
    }

    #[test]
    fn only_netns_owners_and_never_the_host_namespace() {
        let host = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let f: Bdf = "0000:3b:02.1".parse().unwrap();
        // Not a namespace owner.
        let vm = Owner {
            kind: OwnerKind::Vm,
            ..netns_owner(Some(1), Some("web"), None)
        };
        let e = LiveNetnsControl.evict(&vm, f).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        // Our own process is in the host namespace: not an owner's namespace.
        let own = netns_owner(Some(std::process::id()), None, None);
        assert_eq!(
            open_owner_ns(&own, host).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        // A recorded inode that is not the pid's namespace: the pid was reused.
        let stale = netns_owner(Some(std::process::id()), None, Some("net:[1]"));
        assert_eq!(
            open_owner_ns(&stale, host).unwrap_err().raw_os_error(),
            Some(libc::ESRCH)
        );
        // Nothing to find it by, or a name that is a path.
        for o in [
            netns_owner(None, None, None),
            netns_owner(None, Some("../../proc/1/ns/net"), None),
            netns_owner(None, Some("no-such-netns-vfguard"), None),
        ] {
            assert_eq!(
                LiveNetnsControl.evict(&o, f).unwrap_err().raw_os_error(),
                Some(libc::ENOENT),
                "{o:?}"
            );
        }
    }

    /// `ip ARGS`, which must succeed.
    fn ip(args: &str) {
        let out = std::process::Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args}: {out:?}");
    }

    /// `ip -j [-n NS] link show DEV` flags, or `None` when NS has no such link.
    fn flags(ns: &str, dev: &str) -> Option<Vec<String>> {
        let out = std::process::Command::new("ip")
            .args(["-j", "-n", ns, "link", "show", "dev", dev])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(
            v[0]["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect(),
        )
    }

    #[test]
    #[ignore = "needs root: creates network namespaces and veth links (cargo test -- --ignored)"]
    fn moves_a_link_out_of_a_namespace_down_and_renames_it_on_a_clash() {
        let (a, b) = (
            format!("vfgt-a-{}", std::process::id()),
            format!("vfgt-b-{}", std::process::id()),
        );
        struct Cleanup(Vec<String>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for ns in &self.0 {
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "del", ns])
                        .status();
                }
            }
        }
        let _cleanup = Cleanup(vec![a.clone(), b.clone()]);
        ip(&format!("netns add {a}"));
        ip(&format!("netns add {b}"));
        ip(&format!("-n {a} link add vfgt0 type veth peer name vfgt1"));
        ip(&format!("-n {a} link set vfgt0 up"));
        ip(&format!("-n {a} link set vfgt1 up"));
        // The destination already has a link called vfgt0.
        ip(&format!("-n {b} link add vfgt0 type bridge"));
        let ns_a = File::open(format!("/run/netns/{a}")).unwrap();
        let ns_b = File::open(format!("/run/netns/{b}")).unwrap();
        let by_name = |name: &'static str| {
            move |r: &mut Rtnl| -> io::Result<Option<(u32, String)>> {
                Ok(r.indexed_links()?
                    .into_iter()
                    .find(|(_, l)| l.ifname == name)
                    .map(|(i, l)| (i, l.ifname)))
            }
        };
        move_out(&ns_a, &ns_b, by_name("vfgt1"), "vfgt-renamed").unwrap();
        let f = flags(&b, "vfgt1").expect("vfgt1 moved to b under its name");
        assert!(!f.iter().any(|x| x == "UP"), "{f:?}");
        assert_eq!(flags(&a, "vfgt1"), None);
        move_out(&ns_a, &ns_b, by_name("vfgt0"), "vfgt-renamed").unwrap();
        let f = flags(&b, "vfgt-renamed").expect("vfgt0 renamed in b");
        assert!(!f.iter().any(|x| x == "UP"), "{f:?}");
        assert!(flags(&b, "vfgt0").is_some(), "b's own vfgt0 untouched");
        assert_eq!(flags(&a, "vfgt0"), None);
        // Nothing left to move: ENOENT, and the kernel's errno otherwise.
        let e = move_out(&ns_a, &ns_b, by_name("vfgt0"), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
        let e = move_out(&ns_a, &ns_b, |_| Ok(Some((999_999, String::new()))), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
    }
}
