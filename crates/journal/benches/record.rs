//! The cost of `record_batch` (one engine step: two observations, a decision, the cursor) on a
//! fresh journal and on one already holding 100 k steps (500 k rows), in memory (the CPU and
//! B-tree cost: it must not grow with history) and on disk (what `synchronous=FULL` adds: one
//! WAL sync per commit, dominated by the device).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vfguard_journal::{Batch, Journal};
use vfguard_model::{IncidentId, Observation};

const HISTORY: u64 = 100_000;

fn step(i: u64) -> Batch {
    let incident = IncidentId(i / 10);
    let decision = if i.is_multiple_of(10) {
        common::decisions(incident).swap_remove(0) // opened
    } else {
        common::decisions(incident).swap_remove(1) // attributed
    };
    Batch {
        at: i,
        observations: vec![
            (
                Observation::Fault(common::fault((i % 8) as u8, i)),
                Some(incident),
            ),
            (Observation::Tick, None),
        ],
        decisions: vec![decision],
        cursor: Some(("kmsg".to_owned(), i)),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_batch");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let mut j = Journal::open_in_memory().unwrap();
    let mut i = 0;
    group.bench_function("memory/from_empty", |b| {
        b.iter(|| {
            j.record_batch(&step(i)).unwrap();
            i += 1;
        })
    });

    let mut j = Journal::open_in_memory().unwrap();
    for i in 0..HISTORY {
        j.record_batch(&step(i)).unwrap();
    }
    let mut i = HISTORY;
    group.bench_function("memory/after_100k_steps", |b| {
        b.iter(|| {
            j.record_batch(&step(i)).unwrap();
            i += 1;
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("journal.db")).unwrap();
    let mut i = 0;
    group.bench_function("file_synchronous_full", |b| {
        b.iter(|| {
            j.record_batch(&step(i)).unwrap();
            i += 1;
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
