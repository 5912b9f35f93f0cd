//! The live namespace probe: enter each network namespace in a short-lived thread and list its
//! links over rtnetlink.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::linux::netlink::Rtnl;
use crate::netns::{netns_inode, NetnsLink, NetnsProbe, NetnsView};

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
