//! Network namespaces and the PCI functions whose netdevs live in them.
//!
//! A VF whose netdev was moved into a container's namespace disappears from the host's sysfs
//! view (`net/` is namespace-tagged). To find its owner we look at each namespace's links and
//! their parent device. The live implementation enters each namespace
//! ([`crate::linux::LiveNetns`]); [`FsNetns`] reads the same facts from files, for fixture trees
//! and the simulator.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vfguard_model::Bdf;

use crate::fs::HostFs;

/// One link inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsLink {
    /// Interface name inside the namespace.
    pub ifname: String,
    /// The PCI function under it, when it has one.
    pub parent: Option<Bdf>,
}

/// A network namespace other than the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsView {
    /// Its name under `/run/netns`, when it has one.
    pub name: Option<String>,
    /// A process living in it (the first found), when any.
    pub pid: Option<u32>,
    /// The namespace inode (`net:[N]`), when known.
    pub inode: Option<u64>,
    /// Where it was found (for evidence).
    pub source: String,
    /// Its links.
    pub links: Vec<NetnsLink>,
}

/// Lists the namespaces other than the host's, with their links.
pub trait NetnsProbe: Send + Sync {
    /// Every namespace found, with what could be read of each.
    fn views(&self) -> io::Result<Vec<NetnsView>>;
}

/// Parses a `/proc/<pid>/ns/net` link target, `net:[4026531993]`.
pub fn netns_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Namespaces read from files: `/proc/<pid>/ns/net` (the `net:[N]` link) with the process's
/// sysfs view `/proc/<pid>/root/sys/class/net/<if>/device`, and named namespaces under
/// `/run/netns/<name>` whose sysfs view a fixture keeps in `/run/netns/<name>.sys/class/net`.
#[derive(Clone)]
pub struct FsNetns {
    fs: Arc<dyn HostFs>,
}

impl FsNetns {
    /// Reads namespaces through `fs`.
    pub fn new(fs: Arc<dyn HostFs>) -> FsNetns {
        FsNetns { fs }
    }

    fn links_under(&self, class_net: &Path) -> Vec<NetnsLink> {
        self.fs
            .list(class_net)
            .unwrap_or_default()
            .into_iter()
            .map(|ifname| {
                let parent = self
                    .fs
                    .read_link(&class_net.join(&ifname).join("device"))
                    .ok()
                    .and_then(|t| t.file_name()?.to_str()?.parse().ok());
                NetnsLink { ifname, parent }
            })
            .collect()
    }
}

impl NetnsProbe for FsNetns {
    fn views(&self) -> io::Result<Vec<NetnsView>> {
        let host = self
            .fs
            .read_link(Path::new("/proc/1/ns/net"))
            .ok()
            .and_then(|l| netns_inode(&l));
        let mut views: Vec<NetnsView> = Vec::new();
        for name in self.fs.list(Path::new("/run/netns")).unwrap_or_default() {
            if let Some(ns) = name.strip_suffix(".sys") {
                let links =
                    self.links_under(&PathBuf::from(format!("/run/netns/{name}/class/net")));
                views.push(NetnsView {
                    name: Some(ns.to_owned()),
                    pid: None,
                    inode: None,
                    source: format!("/run/netns/{ns}"),
                    links,
                });
            }
        }
        for pid in self.fs.list(Path::new("/proc")).unwrap_or_default() {
            let Ok(pid_n) = pid.parse::<u32>() else {
                continue;
            };
            let Some(inode) = self
                .fs
                .read_link(&PathBuf::from(format!("/proc/{pid}/ns/net")))
                .ok()
                .and_then(|l| netns_inode(&l))
            else {
                continue;
            };
            if Some(inode) == host || views.iter().any(|v| v.inode == Some(inode)) {
                continue;
            }
            let links = self.links_under(&PathBuf::from(format!("/proc/{pid}/root/sys/class/net")));
            views.push(NetnsView {
                name: None,
                pid: Some(pid_n),
                inode: Some(inode),
                source: format!("/proc/{pid}/ns/net"),
                links,
            });
        }
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ns_links() {
        assert_eq!(
            netns_inode(Path::new("net:[4026531993]")),
            Some(4_026_531_993)
        );
        assert_eq!(netns_inode(Path::new("mnt:[1]")), None);
        assert_eq!(netns_inode(Path::new("net:[x]")), None);
    }
}
