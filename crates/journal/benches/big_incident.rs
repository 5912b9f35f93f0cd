//! An incident of 2,000,000 observations (issue 13 item 2): the journal's size per observation,
//! and the peak memory of reading the incident's page, streaming its evidence (`--all`) and
//! replaying the journal (a restart), each measured on its own (`VmHWM` of /proc/self/status,
//! reset between phases through /proc/self/clear_refs).
//!
//! ```sh
//! cargo bench -p vfguard-journal --bench big_incident
//! VFGUARD_BENCH_OBSERVATIONS=200000 VFGUARD_BENCH_UNBOUNDED=incident cargo bench -p vfguard-journal --bench big_incident
//! ```
//!
//! `VFGUARD_BENCH_OBSERVATIONS` sets the incident's length (default 2,000,000);
//! `VFGUARD_BENCH_UNBOUNDED=incident` (or `replay`) also measures one of the unbounded reads
//! kept for old callers (`Journal::incident`, `Journal::replay`), which hold everything in
//! memory: one per run, since the allocator keeps what the first one freed.
//!
//! The storm is one culprit VF: each kernel record is an i40e MDD fault (~1 KB of JSON, owner
//! and evidence included) attached to the incident, with the engine's attribution beside it, as
//! the agent journals them; 1000 records per transaction (the size does not depend on it).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use vfguard_journal::{Batch, Journal};
use vfguard_model::{Decision, IncidentId};

const PER_BATCH: u64 = 1_000;
const SIZE_OBSERVATIONS: u64 = 100_000;
const PAGE: usize = 50;

/// A `kB` field of /proc/self/status.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak RSS to the current RSS (Linux 4.0+); false if the kernel refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Runs `phase`, printing its time and the peak RSS it reached over the RSS before it.
fn measure<T>(name: &str, phase: impl FnOnce() -> T) -> T {
    let reset = reset_peak();
    let before = status_kib("VmRSS:");
    let t0 = Instant::now();
    let out = phase();
    let took = t0.elapsed();
    let peak = status_kib("VmHWM:");
    println!(
        "| {name} | {:.3} s | {} | {} | **{}**{} |",
        took.as_secs_f64(),
        mib(before),
        mib(peak),
        mib(peak.saturating_sub(before)),
        if reset { "" } else { " (peak not reset)" }
    );
    out
}

fn opened(incident: IncidentId) -> Batch {
    Batch {
        at: 1,
        decisions: vec![Decision::IncidentOpened {
            incident,
            function: common::vf(1),
            owner: Some(common::vm("web-1")),
        }],
        ..Batch::default()
    }
}

/// Writes `n` storm steps for `incident`; with `attributions`, each fault with its decision.
fn storm(j: &mut Journal, incident: IncidentId, n: u64, attributions: bool) {
    let mut seq = 0;
    while seq < n {
        let end = (seq + PER_BATCH).min(n);
        let mut b = Batch {
            at: 1_000 + seq,
            cursor: Some(("kmsg".to_owned(), end - 1)),
            ..Batch::default()
        };
        for s in seq..end {
            let (o, d) = common::storm_step(1, s, incident);
            b.observations.push((o, Some(incident)));
            if attributions {
                b.decisions.push(d);
            }
        }
        j.record_batch(&b).unwrap();
        seq = end;
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Bytes of file per observation for `n` storm steps.
fn bytes_per_observation(dir: &Path, n: u64, attributions: bool) -> u64 {
    let path = dir.join(format!("size-{attributions}.db"));
    let incident = IncidentId(1);
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&opened(incident)).unwrap();
    j.close().unwrap();
    let empty = file_size(&path);
    let mut j = Journal::open(&path).unwrap();
    storm(&mut j, incident, n, attributions);
    j.close().unwrap();
    (file_size(&path) - empty) / n
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs benches as tests: do little.
    let testing = std::env::args().any(|a| a == "--test" || a.starts_with("--format"));
    let n: u64 = std::env::var("VFGUARD_BENCH_OBSERVATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 2_000 } else { 2_000_000 });
    let unbounded = std::env::var("VFGUARD_BENCH_UNBOUNDED").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();

    let size_n = SIZE_OBSERVATIONS.min(n);
    println!("## size: {size_n} storm observations (~1 KB fault JSON each)\n");
    println!("| what is journalled per kernel record | bytes of file per observation |");
    println!("|---|---|");
    println!(
        "| the fault and its attribution (what the agent writes) | **{}** |",
        bytes_per_observation(dir.path(), size_n, true)
    );
    println!(
        "| the fault alone | {} |",
        bytes_per_observation(dir.path(), size_n, false)
    );

    println!("\n## an incident of {n} observations\n");
    let path = dir.path().join("journal.db");
    let incident = IncidentId(1);
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&opened(incident)).unwrap();
    let t0 = Instant::now();
    storm(&mut j, incident, n, true);
    let wrote = t0.elapsed();
    j.close().unwrap();
    println!(
        "written in {:.1} s ({:.1} µs per observation with its attribution); file {} ({} bytes per observation)\n",
        wrote.as_secs_f64(),
        wrote.as_secs_f64() * 1e6 / n as f64,
        mib(file_size(&path) / 1024),
        file_size(&path) / n
    );

    // A reader beside the daemon, as `vfguard explain` and the API open it.
    let j = Journal::open_read_only(&path).unwrap();
    println!("| read | time | RSS before | peak RSS | peak over before |");
    println!("|---|---|---|---|---|");
    let page = measure(
        &format!("`incident_page(id, {PAGE}, {PAGE})` (explain, the API)"),
        || j.incident_page(incident, PAGE, PAGE).unwrap().unwrap(),
    );
    assert_eq!(page.observations.total, n);
    assert_eq!(
        page.observations.first.len() + page.observations.last.len(),
        (2 * PAGE).min(usize::try_from(n).unwrap_or(usize::MAX))
    );
    let streamed = measure("`incident_observations(id)`, every row (`--all`)", || {
        j.incident_observations(incident)
            .map(|o| o.unwrap().seq)
            .fold(0u64, |n, _| n + 1)
    });
    assert_eq!(streamed, n);
    let replayed = measure("`replay_stream()`, every entry (a restart)", || {
        j.replay_stream()
            .map(|e| e.unwrap().seq())
            .fold(0u64, |n, _| n + 1)
    });
    assert_eq!(replayed, 2 * n + 1);
    match unbounded.as_str() {
        "incident" => {
            let detail = measure("`incident(id)` (unbounded, kept for old callers)", || {
                j.incident(incident).unwrap().unwrap().observations.len()
            });
            assert_eq!(detail as u64, n);
        }
        "replay" => {
            let all = measure("`replay()` (unbounded, kept for old callers)", || {
                j.replay().unwrap().len()
            });
            assert_eq!(all as u64, 2 * n + 1);
        }
        _ => {}
    }
}
