//! Every scenario in testdata/scenarios runs on the simulated host and meets its expectations;
//! every line the simulator prints is a line of the driver catalog; runs are deterministic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};

use vfguard_parse::catalog::Catalog;
use vfguard_sim::report::host_only;
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn scenarios() -> Vec<PathBuf> {
    vfguard_sim::scenario::files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/scenarios"),
    )
    .unwrap()
}

#[test]
fn every_scenario_meets_its_expectations_on_the_host_alone() {
    let files = scenarios();
    assert!(files.len() >= 10, "the suite covers every behaviour");
    for f in files {
        let sc = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let mut sim = SimHost::new(sc).unwrap();
        let report = host_only(&mut sim);
        assert!(
            report.expectations.passed,
            "{}: {:?}\n{:#?}",
            f.display(),
            report.expectations.failures,
            report.incidents
        );
        assert!(report.records > 0, "{}: printed nothing", f.display());
    }
}

#[test]
fn every_record_the_simulator_prints_is_a_catalog_line() {
    let cat = Catalog::get();
    for f in scenarios() {
        let mut sim = SimHost::new(Scenario::load(&f).unwrap()).unwrap();
        sim.run_to_end();
        let records = sim.records();
        assert!(!records.is_empty(), "{}: printed nothing", f.display());
        for r in records {
            assert_eq!(r.facility, 0);
            let known = cat.entries.iter().any(|c| c.captures(&r.text).is_some());
            assert!(known, "{}: not a catalog line: {:?}", f.display(), r.text);
            if let Some(dev) = r.pci_device() {
                assert!(
                    r.text.contains(dev),
                    "DEVICE= must name the prefix device: {r:?}"
                );
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_records_byte_for_byte() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/scenarios/buggy-driver-ice.toml");
    let run = |seed: u64| {
        let mut sc = Scenario::load(&f).unwrap();
        sc.scenario.seed = seed;
        let mut sim = SimHost::new(sc).unwrap();
        sim.run_to_end();
        sim.records().iter().map(|r| r.encode()).collect::<String>()
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12), "the seed matters");
}
