//! observe → decisions latency with 4096 functions and 100 k events inside their windows.
//! Target: p99 under 10 µs; memory bounded by the windows (docs/performance.md). Prints the
//! latency percentiles, then runs criterion for the mean.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::disallowed_methods
)]

use std::time::Instant;

use criterion::{criterion_group, Criterion};
use vfguard_engine::{Engine, Policy};
use vfguard_model::{Bdf, FaultEvent, Observation, Owner, OwnerKind, Pf, Topology, Vf, VfIndex};

const PFS: u8 = 16;
const VFS: u16 = 256;

fn topology() -> Topology {
    let mut pfs = Vec::new();
    for p in 0..PFS {
        let pf = Bdf::new(0, p * 2 + 0x10, 0, 0).unwrap();
        let vfs = (0..VFS)
            .map(|i| Vf {
                index: VfIndex(i),
                bdf: Bdf::new(0, p * 2 + 0x11, (i / 8) as u8, (i % 8) as u8).unwrap(),
                driver: Some("vfio-pci".into()),
                netdev: None,
                iommu_group: Some(u32::from(p) * 1000 + u32::from(i)),
                group_peers: vec![],
                iommu_unit: None,
                owner: Owner {
                    kind: OwnerKind::Vm,
                    name: Some(format!("vm-{p}-{i}")),
                    id: None,
                    pid: Some(10_000 + u32::from(p) * 1000 + u32::from(i)),
                    evidence: vec![],
                    metadata: Default::default(),
                },
                state: None,
            })
            .collect();
        pfs.push(Pf {
            bdf: pf,
            vendor: None,
            device: None,
            driver: Some("i40e".into()),
            netdevs: vec![format!("pf{p}")],
            netdev: Some(format!("pf{p}")),
            numvfs: u32::from(VFS),
            totalvfs: u32::from(VFS),
            numa_node: None,
            reset_method: None,
            aer: false,
            iommu_group: None,
            iommu_unit: None,
            firmware: None,
            owner: Owner::host("bench"),
            vfs,
        });
    }
    Topology {
        version: 1,
        pfs,
        warnings: vec![],
        stale: None,
        index: Default::default(),
    }
}

fn events(n: usize) -> Vec<Observation> {
    let line = "i40e 0000:10:00.0: 3 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 001b21aabbcc. mdd-auto-reset-vfs=off";
    let template: FaultEvent =
        vfguard_parse::scan_text(line.as_bytes(), vfguard_parse::FormatHint::Auto)
            .0
            .remove(0);
    let mut x = 12345u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = (x % u64::from(PFS)) as u8;
            let v = ((x >> 8) % u64::from(VFS)) as u16;
            let mut e = template.clone();
            e.pf = Some(Bdf::new(0, p * 2 + 0x10, 0, 0).unwrap());
            e.device = e.pf;
            e.vf = Some(VfIndex(v));
            Observation::Fault(e)
        })
        .collect()
}

fn policy() -> Policy {
    // Observe mode and a high threshold: every event is attributed and counted in its window,
    // none is acted on, so what is measured is the steady state of a busy host.
    Policy::from_toml("mode = \"observe\"\n[[rule]]\nname = \"mdd\"\nkinds = [\"mdd_tx\"]\nwindow = \"1h\"\nthreshold = 100\n").unwrap()
}

fn percentiles() {
    let t = topology();
    let mut e = Engine::new(policy());
    let warm = events(100_000);
    let mut now = 1_000u64;
    for o in &warm {
        now += 1;
        e.observe(o, &t, now);
    }
    let measured = events(200_000);
    let mut lat: Vec<u128> = Vec::with_capacity(measured.len());
    for o in &measured {
        now += 1;
        let t0 = Instant::now();
        let d = e.observe(o, &t, now);
        lat.push(t0.elapsed().as_nanos());
        std::hint::black_box(d);
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    let incidents = e.incidents().count();
    let in_windows: usize = e
        .incidents()
        .map(|i| i.windows.values().map(|w| w.len()).sum::<usize>())
        .sum();
    println!(
        "observe latency with {} functions, {incidents} incidents, {in_windows} events in windows: p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        u32::from(PFS) * u32::from(VFS),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        lat.last().unwrap()
    );
}

fn mean(c: &mut Criterion) {
    let t = topology();
    let mut e = Engine::new(policy());
    let mut now = 1_000u64;
    for o in &events(100_000) {
        now += 1;
        e.observe(o, &t, now);
    }
    let evs = events(10_000);
    let mut i = 0usize;
    c.bench_function("observe_fault_4096_functions_100k_in_windows", |b| {
        b.iter(|| {
            now += 1;
            i = (i + 1) % evs.len();
            e.observe(&evs[i], &t, now)
        });
    });
}

criterion_group!(benches, mean);

fn main() {
    percentiles();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
