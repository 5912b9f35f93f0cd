//! `vfguard inventory` and `vfguard scan --root` against fixture hosts and this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::vfguard;
use std::path::Path;

use vfguard_model::Bdf;
use vfguard_topology::fixture::{FunctionSpec, HostFixture, QemuSpec};

fn b(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn host(root: &Path) {
    let f = HostFixture::new(root).unwrap();
    f.add_function(&FunctionSpec {
        driver: Some("i40e".into()),
        netdevs: vec!["enp59s0f0".into()],
        totalvfs: Some(64),
        ..FunctionSpec::new(b("0000:3b:00.0"))
    })
    .unwrap();
    f.set_vfs(
        b("0000:3b:00.0"),
        4,
        |i| Bdf::new(0, 0x3b, 2, u8::try_from(i).unwrap()).unwrap(),
        |i, bdf| FunctionSpec {
            driver: Some(if i == 2 { "vfio-pci" } else { "iavf" }.into()),
            iommu_group: Some(100 + u32::from(i)),
            netdevs: if i == 2 {
                vec![]
            } else {
                vec![format!("enp59s0f0v{i}")]
            },
            ..FunctionSpec::new(bdf)
        },
    )
    .unwrap();
    f.add_qemu(&QemuSpec {
        pid: 777,
        name: "tenant-vm".into(),
        uuid: Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
        hostdevs: vec![b("0000:3b:02.2")],
        json: true,
        vfio_groups: vec![102],
    })
    .unwrap();
}

#[test]
fn inventory_json_has_the_scripted_shape() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let out = vfguard(&[
        "inventory",
        "--json",
        "--root",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pf = &v["pfs"][0];
    for k in [
        "bdf", "driver", "netdev", "vendor", "device", "numvfs", "totalvfs", "owner", "vfs",
    ] {
        assert!(pf.get(k).is_some(), "pf field {k}");
    }
    assert_eq!(pf["bdf"], "0000:3b:00.0");
    assert_eq!(
        (pf["numvfs"].as_u64(), pf["totalvfs"].as_u64()),
        (Some(4), Some(64))
    );
    let vf = &pf["vfs"][2];
    for k in ["index", "bdf", "driver", "netdev", "owner", "state"] {
        assert!(vf.get(k).is_some(), "vf field {k}");
    }
    assert_eq!(vf["index"], 2);
    assert_eq!(vf["bdf"], "0000:3b:02.2");
    let owner = &vf["owner"];
    for k in ["kind", "name", "id", "pid", "evidence"] {
        assert!(owner.get(k).is_some(), "owner field {k}");
    }
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("vm"), Some("tenant-vm"))
    );
    assert!(owner["evidence"].as_array().unwrap().len() >= 2);
    assert!(vf["state"].is_null(), "no netlink under --root");
    assert_eq!(pf["vfs"][0]["owner"]["kind"], "host");

    let table = vfguard(&["inventory", "--root", dir.path().to_str().unwrap()]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("pf 0000:3b:00.0 i40e [8086:1572] netdev enp59s0f0 vfs 4/64"),
        "{text}"
    );
    assert!(text.contains("vm:tenant-vm (pid 777)"), "{text}");
}

#[test]
fn scan_with_a_root_names_the_vf_and_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path());
    let log = dir.path().join("kern.log");
    std::fs::write(
        &log,
        "[ 10.0] i40e 0000:3b:00.0: 3 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 001b21aabbcc. mdd-auto-reset-vfs=off\n\
         [ 11.0] iavf 0000:3b:02.1: Reset indication received from the PF\n\
         [ 12.0] ixgbe 0000:08:00.1 ens3f1: 12 Spoofed packets detected\n",
    )
    .unwrap();
    let out = vfguard(&[
        "scan",
        "--json",
        "--root",
        dir.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["function"], "0000:3b:02.2");
    assert_eq!(events[0]["owner"]["name"], "tenant-vm");
    // A VF driver's line gets its PF and index from the map.
    assert_eq!(
        (events[1]["pf"].as_str(), events[1]["vf"].as_u64()),
        (Some("0000:3b:00.0"), Some(1))
    );
    assert_eq!(events[1]["owner"]["kind"], "host");
    // A PF the map does not know stays unresolved.
    assert!(events[2]["owner"].is_null());
    // Without --root nothing is resolved.
    let plain = vfguard(&["scan", "--json", log.to_str().unwrap()]);
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(plain.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(first["function"].is_null() && first["owner"].is_null());
}

#[test]
fn inventory_of_this_machine_finds_no_sriov_and_no_error() {
    // This host has no SR-IOV device: whatever network functions it has are whole NICs.
    let out = vfguard(&["inventory", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for pf in v["pfs"].as_array().unwrap() {
        assert_eq!(pf["totalvfs"], 0, "{pf}");
        assert!(pf["vfs"].as_array().unwrap().is_empty());
    }
}

#[test]
fn a_bad_root_is_a_clear_error() {
    let out = vfguard(&["inventory", "--root", "/nonexistent/host"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--root /nonexistent/host: not a directory")
    );
}
