//! The topology of fixture hosts: every owner kind with its evidence, whole-device passthrough,
//! changes, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsProbe};
use vfguard_model::{Bdf, OwnerKind, Topology, VfIndex};
use vfguard_topology::fixture::{FunctionSpec, HostFixture};
use vfguard_topology::{TopologyReader, TopologyWatcher};

fn b(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn reader(root: &Path) -> TopologyReader {
    let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(root));
    let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
    TopologyReader::new(fs, netns, None)
}

const PF: &str = "0000:3b:00.0";

fn vf_bdf(i: u16) -> Bdf {
    Bdf::new(0, 0x3b, 2, u8::try_from(i).unwrap()).unwrap()
}

fn build(root: &Path) -> HostFixture {
    vfguard_topology::fixture::sample_host(root).unwrap()
}

fn owner(t: &Topology, i: u16) -> &vfguard_model::Owner {
    &t.vf(b(PF), VfIndex(i)).unwrap().owner
}

#[test]
fn maps_pfs_vfs_and_every_kind_of_owner() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let t = reader(dir.path()).read();
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let bdfs: Vec<String> = t.pfs.iter().map(|p| p.bdf.to_string()).collect();
    assert_eq!(
        bdfs,
        [PF, "0000:5e:00.0", "0000:5e:00.1"],
        "nvme is not a NIC"
    );
    let pf = t.pf(b(PF)).unwrap();
    assert_eq!(
        (pf.numvfs, pf.totalvfs, pf.driver.as_deref()),
        (8, 64, Some("i40e"))
    );
    assert_eq!(pf.netdev.as_deref(), Some("enp59s0f0"));
    assert_eq!(pf.owner.kind, OwnerKind::Host);
    let indices: Vec<u16> = pf.vfs.iter().map(|v| v.index.0).collect();
    assert_eq!(indices, (0..8).collect::<Vec<_>>());
    assert_eq!(pf.vfs[5].bdf, vf_bdf(5));

    let o = owner(&t, 0);
    assert_eq!(
        (o.kind, o.name.as_deref(), o.pid),
        (OwnerKind::Vm, Some("web-7"), Some(4100))
    );
    assert_eq!(
        o.id.as_deref(),
        Some("5b2c6f1e-0d1a-4b8e-9d1e-2b7f3c1d9a01")
    );
    assert!(
        o.evidence.iter().any(|e| e.contains("holds /dev/vfio/100")),
        "{:?}",
        o.evidence
    );

    let o = owner(&t, 1);
    assert_eq!(
        (o.kind, o.name.as_deref(), o.pid),
        (OwnerKind::Vm, Some("db-2"), Some(4200))
    );
    assert!(o.evidence.iter().any(|e| e.contains("libvirt live XML")));
    assert!(
        o.evidence.iter().any(|e| e.contains("command line")),
        "JSON -device parsed"
    );

    let o = owner(&t, 2);
    assert_eq!(o.kind, OwnerKind::Netns);
    assert_eq!(o.pid, Some(5000));
    assert_eq!(
        o.id.as_deref(),
        Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );

    let o = owner(&t, 3);
    assert_eq!(
        (o.kind, o.name.as_deref()),
        (OwnerKind::Netns, Some("tenant-a"))
    );

    let o = owner(&t, 4);
    assert_eq!(o.kind, OwnerKind::Host);
    assert_eq!(
        t.vf(b(PF), VfIndex(4)).unwrap().netdev.as_deref(),
        Some("enp59s0f0v4")
    );

    assert_eq!(owner(&t, 5).kind, OwnerKind::None, "unbound");
    assert_eq!(
        owner(&t, 6).kind,
        OwnerKind::None,
        "vfio-bound, nobody holds it"
    );

    let o = owner(&t, 7);
    assert_eq!(
        (o.kind, o.name.as_deref()),
        (OwnerKind::Vm, Some("batch-9")),
        "libvirt preferred"
    );
    assert!(
        o.evidence.iter().any(|e| e.starts_with("disagreement")),
        "{:?}",
        o.evidence
    );

    let whole = t.pf(b("0000:5e:00.1")).unwrap();
    assert_eq!(
        (whole.owner.kind, whole.owner.name.as_deref()),
        (OwnerKind::Vm, Some("fw-1"))
    );
    assert_eq!(t.pf(b("0000:5e:00.0")).unwrap().owner.kind, OwnerKind::Host);
    // Lookup by function address finds PFs and VFs alike.
    assert_eq!(
        t.function(vf_bdf(3)).unwrap().owner().name.as_deref(),
        Some("tenant-a")
    );
    assert_eq!(
        t.function(b("0000:5e:00.1"))
            .unwrap()
            .owner()
            .name
            .as_deref(),
        Some("fw-1")
    );
}

#[test]
fn numvfs_change_bumps_the_version_and_remaps_indices() {
    let dir = tempfile::tempdir().unwrap();
    let f = build(dir.path());
    let mut w = TopologyWatcher::new(reader(dir.path()));
    let (t1, changed) = w.refresh();
    assert!(changed);
    assert_eq!(t1.version, 1);
    let (t2, changed) = w.refresh();
    assert!(!changed);
    assert_eq!(t2.version, 1);
    // Recreate 2 VFs at other addresses: VF 0 must now map to the new BDF.
    let new = |i: u16| Bdf::new(0, 0x3b, 0x0a, u8::try_from(i).unwrap()).unwrap();
    f.set_vfs(b(PF), 2, new, |_, bdf| FunctionSpec {
        driver: Some("iavf".into()),
        ..FunctionSpec::new(bdf)
    })
    .unwrap();
    let (t3, changed) = w.refresh();
    assert!(changed);
    assert_eq!(t3.version, 2);
    assert_eq!(t3.vf(b(PF), VfIndex(0)).unwrap().bdf, new(0));
    assert!(t3.vf(b(PF), VfIndex(5)).is_none());
    // A VM stopping is a change too.
    f.remove_process(4300).unwrap();
    let (t4, changed) = w.refresh();
    assert!(changed);
    assert_eq!(
        t4.pf(b("0000:5e:00.1")).unwrap().owner.kind,
        OwnerKind::None
    );
}

/// Probes until nothing moves (a read after a change may take one more, as the signature then
/// covers the functions found); returns the map and how many reads that took.
fn settle(w: &mut TopologyWatcher, mut t: Topology) -> (Topology, usize) {
    let mut reads = 0;
    while let Some((n, _)) = w.probe(&t) {
        t = n;
        reads += 1;
        assert!(reads <= 2, "the probe keeps re-reading a quiet host");
    }
    (t, reads)
}

#[test]
fn probe_rereads_only_when_the_signature_moves() {
    let dir = tempfile::tempdir().unwrap();
    let f = build(dir.path());
    let mut w = TopologyWatcher::new(reader(dir.path()));
    let (t1, reads) = settle(&mut w, Topology::default());
    assert!(reads >= 1, "the first probe always reads");
    assert!(w.probe(&t1).is_none(), "nothing moved");
    // Fewer VFs: sriov_numvfs and the PCI device list change.
    let new = |i: u16| Bdf::new(0, 0x3b, 0x0a, u8::try_from(i).unwrap()).unwrap();
    f.set_vfs(b(PF), 2, new, |_, bdf| FunctionSpec::new(bdf))
        .unwrap();
    let (t2, reads) = settle(&mut w, t1.clone());
    assert!(reads >= 1 && t2.version > t1.version);
    assert_eq!(t2.pf(b(PF)).unwrap().vfs.len(), 2);
    // A VM process exiting is seen without a full read.
    f.remove_process(4300).unwrap();
    let (t3, reads) = settle(&mut w, t2.clone());
    assert!(reads >= 1 && t3.version > t2.version);
    assert_eq!(
        t3.pf(b("0000:5e:00.1")).unwrap().owner.kind,
        OwnerKind::None
    );
    // A VF's netdev appearing in (or leaving) the host namespace changes its listing.
    f.add_netdev(new(1), "eth9").unwrap();
    let (t4, reads) = settle(&mut w, t3);
    assert!(reads >= 1, "a netdev move was not seen");
    f.remove_netdev(new(1), "eth9").unwrap();
    let (_, reads) = settle(&mut w, t4);
    assert!(reads >= 1, "a netdev leaving was not seen");
}

#[test]
fn bad_input_gives_partial_results_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let f = build(dir.path());
    // Garbage values, a dangling virtfn (a VF that vanished mid-scan), an unreadable attribute.
    std::fs::write(
        f.path("/sys/devices/pci0000:00/0000:3b:00.0/sriov_numvfs"),
        "banana\n",
    )
    .unwrap();
    std::fs::remove_dir_all(f.path("/sys/devices/pci0000:00/0000:3b:02.6")).unwrap();
    std::fs::remove_file(f.path("/sys/bus/pci/devices/0000:3b:02.6")).unwrap();
    std::fs::remove_file(f.path("/sys/devices/pci0000:00/0000:5e:00.0/class")).unwrap();
    std::fs::create_dir(f.path("/sys/devices/pci0000:00/0000:5e:00.0/class")).unwrap();
    std::fs::write(f.path("/run/libvirt/qemu/broken.xml"), "<domstatus><oops").unwrap();
    std::os::unix::fs::symlink("nowhere", f.path("/sys/bus/pci/devices/not-a-bdf")).unwrap();
    let t = reader(dir.path()).read();
    let w = t.warnings.join("\n");
    assert!(
        w.contains("sriov_numvfs: unreadable value \"banana\""),
        "{w}"
    );
    assert!(w.contains("virtfn6 points to 0000:3b:02.6"), "{w}");
    assert!(w.contains("broken.xml"), "{w}");
    assert!(w.contains("not-a-bdf"), "{w}");
    let pf = t.pf(b(PF)).unwrap();
    assert_eq!(pf.vfs.len(), 7, "the other VFs are still mapped");
    assert_eq!(owner(&t, 0).name.as_deref(), Some("web-7"));
}

#[test]
fn an_empty_or_missing_root_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = reader(dir.path()).read();
    assert!(t.pfs.is_empty());
    assert!(t
        .warnings
        .iter()
        .any(|w| w.contains("/sys/bus/pci/devices")));
}

/// Issue 14: a DMAR line prints its requester without the PCI segment; the unit that
/// translates each function's DMA (its `iommu` link) is what tells two segments apart.
#[test]
fn each_function_s_iommu_unit_is_read_from_its_iommu_link_and_shown_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let f = HostFixture::new(dir.path()).unwrap();
    for (pf, unit) in [("0000:3b:00.0", Some("dmar1")), ("0001:3b:00.0", None)] {
        f.add_function(&FunctionSpec {
            driver: Some("i40e".into()),
            netdevs: vec![format!("eth{}", &pf[3..4])],
            iommu_unit: unit.map(str::to_owned),
            ..FunctionSpec::new(b(pf))
        })
        .unwrap();
    }
    let t = reader(dir.path()).read();
    let units: Vec<(String, Option<String>)> = t
        .pfs
        .iter()
        .map(|p| (p.bdf.to_string(), p.iommu_unit.clone()))
        .collect();
    assert_eq!(
        units,
        [
            ("0000:3b:00.0".to_owned(), Some("dmar1".to_owned())),
            ("0001:3b:00.0".to_owned(), None)
        ]
    );
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["pfs"][0]["iommu_unit"], "dmar1");
    assert!(
        json["pfs"][1].get("iommu_unit").is_none(),
        "absent, not null"
    );
}
