//! The journal's size in a storm (issue 13 item 2): one culprit VF faulting over and over, each
//! kernel record journalled as the agent does (the fault attached to the incident, and the
//! engine's attribution beside it), must cost at most 300 bytes of file per observation.
//! Before schema version 4 (whole JSON bodies in every row) it cost ~1.25 KB.
//!
//! The figure is the growth of the file, checkpointed and closed, over an empty journal, divided
//! by the number of observations; `cargo bench -p vfguard-journal --bench big_incident` prints the
//! same for 100 k observations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use vfguard_journal::{Batch, Journal, Retention};
use vfguard_model::{Decision, IncidentId};

/// Observations written.
const STEPS: u64 = 20_000;
/// Observations per transaction (the size does not depend on it; the test's time does).
const PER_BATCH: u64 = 500;
/// The target.
const MAX_BYTES_PER_OBSERVATION: u64 = 300;

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

/// Writes the storm's steps `from..to`, `PER_BATCH` to a transaction, one step per ms.
fn storm(j: &mut Journal, incident: IncidentId, from: u64, to: u64) {
    let mut seq = from;
    while seq < to {
        let end = (seq + PER_BATCH).min(to);
        let mut b = Batch {
            at: 1_000 + seq,
            cursor: Some(("kmsg".to_owned(), end - 1)),
            ..Batch::default()
        };
        for s in seq..end {
            let (o, d) = common::storm_step(1, s, incident);
            b.observations.push((o, Some(incident)));
            b.decisions.push(d);
        }
        j.record_batch(&b).unwrap();
        seq = end;
    }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn a_storm_costs_at_most_300_bytes_per_observation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let incident = IncidentId(1);
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&opened(incident)).unwrap();
    j.close().unwrap();
    let empty = file_size(&path);

    let mut j = Journal::open(&path).unwrap();
    storm(&mut j, incident, 0, STEPS);
    j.close().unwrap();
    let per_observation = (file_size(&path) - empty) / STEPS;
    eprintln!(
        "{STEPS} storm observations (each with its attribution): {per_observation} bytes each"
    );
    assert!(
        per_observation <= MAX_BYTES_PER_OBSERVATION,
        "{per_observation} bytes per observation, more than {MAX_BYTES_PER_OBSERVATION}"
    );

    // Everything reads back as written.
    let j = Journal::open_read_only(&path).unwrap();
    let page = j.incident_page(incident, 1, 1).unwrap().unwrap();
    assert_eq!(page.observations.total, STEPS);
    let last = &page.observations.last[0].observation;
    let (want, _) = common::storm_step(1, STEPS - 1, incident);
    assert_eq!(last, &want);
}

#[test]
fn retention_bounds_a_long_open_incident_and_the_file_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let incident = IncidentId(1);
    let mut j = Journal::open(&path).unwrap();
    j.record_batch(&opened(incident)).unwrap();
    let retention = Retention {
        max_age_ms: 1_000,
        max_rows: 1_000_000,
        open_incident_ends: 100,
    };
    // The storm goes on for ten rounds of 2000 records; retention runs after each, keeping
    // the incident's first and last 100 records and those of the last second.
    let mut sizes = Vec::new();
    for round in 0..10 {
        let from = round * 2_000;
        storm(&mut j, incident, from, from + 2_000);
        j.retain(1_000 + from + 2_000, &retention).unwrap();
        j.close().unwrap();
        sizes.push(file_size(&path));
        j = Journal::open(&path).unwrap();
    }
    let page = j.incident_page(incident, 100, 100).unwrap().unwrap();
    assert_eq!(
        page.observations.first.first().map(|o| o.at),
        Some(1_000),
        "the first record is kept"
    );
    assert_eq!(
        page.observations.total + page.observations.dropped,
        20_000,
        "every record is kept or counted"
    );
    assert!(
        page.observations.total <= 100 + 1_000 + 100,
        "{} kept",
        page.observations.total
    );
    assert_eq!(page.decisions.dropped, page.observations.dropped);
    // Freed pages are reused: after the first rounds the file holds (within a few pages).
    assert!(sizes[9] <= sizes[4] + sizes[4] / 20, "{sizes:?}");
}
