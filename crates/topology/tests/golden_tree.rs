//! `testdata/sysfs/sample-host` is the tree `fixture::sample_host` writes, committed so that
//! people and other tools (`vfguard inventory --root testdata/sysfs/sample-host`) can use it.
//! This test keeps it in step with the builder; regenerate with `UPDATE_GOLDEN=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsProbe};
use vfguard_topology::TopologyReader;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sysfs/sample-host")
}

/// Files and links (directories are implied, and git keeps no empty ones).
fn walk(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if ft.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, what) in walk(from) {
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        match what.strip_prefix("-> ") {
            Some(target) => std::os::unix::fs::symlink(target, &dst).unwrap(),
            None => std::fs::write(&dst, what).unwrap(),
        }
    }
}

fn read(root: &Path) -> vfguard_model::Topology {
    let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(root));
    let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
    TopologyReader::new(fs, netns, None).read()
}

#[test]
fn the_committed_sample_host_is_what_the_builder_writes() {
    let dir = tempfile::tempdir().unwrap();
    vfguard_topology::fixture::sample_host(dir.path()).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(committed());
        copy_tree(dir.path(), &committed());
    }
    let fresh = walk(dir.path());
    let golden = walk(&committed());
    let missing: Vec<&String> = fresh.keys().filter(|k| !golden.contains_key(*k)).collect();
    let extra: Vec<&String> = golden.keys().filter(|k| !fresh.contains_key(*k)).collect();
    let differ: Vec<&String> = fresh
        .iter()
        .filter(|(k, v)| golden.get(*k).is_some_and(|g| g != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "testdata/sysfs/sample-host is stale (run UPDATE_GOLDEN=1 cargo test -p vfguard-topology --test golden_tree):\n missing {missing:?}\n extra {extra:?}\n differ {differ:?}"
    );
    // And it reads back to the same map as the builder's tree.
    assert_eq!(read(&committed()), read(dir.path()));
}
