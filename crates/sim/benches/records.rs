//! How fast the simulated host prints kernel records (it is the load generator for storm tests):
//! 64 VFs of an ixgbe PF, each owned by a VM flooding MDD events every millisecond. Target: at
//! least 1 M records per second of wall time (docs/performance.md).

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn storm() -> Scenario {
    let mut text = String::from(
        "[scenario]\nname = \"storm\"\nseed = 1\nduration_ms = 1000\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 64\n",
    );
    for i in 0..64 {
        text.push_str(&format!(
            "\n[[vm]]\nname = \"vm{i}\"\nfunctions = [\"0000:08:00.0/vf{i}\"]\n\n[[behaviour]]\nowner = \"vm{i}\"\nkind = \"mdd_flood\"\nevery_ms = 1\n"
        ));
    }
    Scenario::parse("storm.toml", &text).unwrap()
}

fn records(c: &mut Criterion) {
    let sc = storm();
    let dir = tempfile::tempdir().unwrap();
    // Count once: every VF floods every ms with up to 10% jitter.
    let mut probe = SimHost::build(sc.clone(), dir.path(), 1 << 16, true).unwrap();
    probe.run_to_end();
    let n = probe.records().len() as u64;
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("mdd_storm_64_vfs_1s", |b| {
        b.iter_batched(
            || {
                let d = tempfile::tempdir().unwrap();
                let h = SimHost::build(sc.clone(), d.path(), 1 << 16, false).unwrap();
                (d, h)
            },
            // Return the host so that tearing its tree down is not timed.
            |(d, mut h)| {
                h.run_to_end();
                (d, h)
            },
            criterion::BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
