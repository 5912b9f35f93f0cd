//! Inventory cost: a fixture host with P PFs × V VFs and N processes (a QEMU per 4 VFs holding
//! their vfio groups, the rest noise). Target: 8 × 64 with 200 processes under 50 ms, linear in
//! VFs + processes (docs/performance.md).

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vfguard_host::{FsNetns, FsRoot, HostFs, NetnsProbe};
use vfguard_model::Bdf;
use vfguard_topology::fixture::{FunctionSpec, HostFixture, QemuSpec};
use vfguard_topology::TopologyReader;

fn build(root: &std::path::Path, pfs: u8, vfs: u16, procs: u32) {
    let f = HostFixture::new(root).unwrap();
    let mut pid = 1000;
    for p in 0..pfs {
        let pf = Bdf::new(0, 0x10 + p * 2, 0, 0).unwrap();
        f.add_function(&FunctionSpec {
            driver: Some("i40e".into()),
            netdevs: vec![format!("pf{p}")],
            totalvfs: Some(128),
            ..FunctionSpec::new(pf)
        })
        .unwrap();
        let bus = 0x11 + p * 2;
        let group_base = u32::from(p) * 1000;
        f.set_vfs(
            pf,
            vfs,
            |i| {
                Bdf::new(
                    0,
                    bus,
                    u8::try_from(i / 8).unwrap(),
                    u8::try_from(i % 8).unwrap(),
                )
                .unwrap()
            },
            |i, bdf| FunctionSpec {
                driver: Some("vfio-pci".into()),
                iommu_group: Some(group_base + u32::from(i)),
                ..FunctionSpec::new(bdf)
            },
        )
        .unwrap();
        for chunk in 0..vfs / 4 {
            let hostdevs: Vec<Bdf> = (0..4)
                .map(|k| {
                    let i = chunk * 4 + k;
                    Bdf::new(
                        0,
                        bus,
                        u8::try_from(i / 8).unwrap(),
                        u8::try_from(i % 8).unwrap(),
                    )
                    .unwrap()
                })
                .collect();
            f.add_qemu(&QemuSpec {
                pid,
                name: format!("vm-{pid}"),
                uuid: None,
                hostdevs,
                json: pid % 2 == 0,
                vfio_groups: (0..4)
                    .map(|k| group_base + u32::from(chunk * 4 + k))
                    .collect(),
            })
            .unwrap();
            pid += 1;
        }
    }
    let used = pid - 1000;
    for n in used..procs {
        f.add_process(5000 + n, "worker", &["/usr/bin/worker", "--serve"])
            .unwrap();
    }
}

fn inventory(c: &mut Criterion) {
    let mut g = c.benchmark_group("inventory");
    g.sample_size(20);
    for (pfs, vfs, procs) in [(8u8, 16u16, 50u32), (8, 64, 200)] {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), pfs, vfs, procs);
        let fs: Arc<dyn HostFs> = Arc::new(FsRoot::new(dir.path()));
        let netns: Arc<dyn NetnsProbe> = Arc::new(FsNetns::new(fs.clone()));
        let reader = TopologyReader::new(fs, netns, None);
        let t = reader.read();
        assert_eq!(
            t.pfs.iter().map(|p| p.vfs.len()).sum::<usize>(),
            usize::from(pfs) * usize::from(vfs)
        );
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        let id = format!("{pfs}x{vfs}_vfs_{procs}_procs");
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| reader.read())
        });
    }
    g.finish();
}

criterion_group!(benches, inventory);
criterion_main!(benches);
