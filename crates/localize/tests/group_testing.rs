//! The search against simulated PFs with known culprits: one among 64 in 7 rounds, two near
//! ⌈log2 C(64,2)⌉ + 2, cleared VFs never gated again, the cap and the exclusions honoured, an
//! ineffective throttle escalated to the link-state gate, and noise tolerated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use vfguard_localize::oracle::SimulatedPf;
use vfguard_localize::{Gate, Localizer, ProbeConfig, Verdict};

/// Runs a search to its end; returns the verdict and every probe it made.
fn search(
    culprits: &[(u16, f64)],
    n: u16,
    excluded: &[u16],
    cfg: ProbeConfig,
    throttle_stops: f64,
    seed: u64,
) -> (Verdict<u16>, Vec<vfguard_localize::Probe<u16>>) {
    let mut pf = SimulatedPf::new(
        culprits.iter().copied().collect::<BTreeMap<_, _>>(),
        throttle_stops,
        seed,
    );
    let mut l = Localizer::new((0..n).collect(), excluded.to_vec(), usize::from(n), cfg);
    let mut probes = Vec::new();
    loop {
        match l.step() {
            Verdict::Probe(p) => {
                let o = pf.run(&p);
                probes.push(p);
                l.observe(o);
            }
            v => return (v, probes),
        }
    }
}

fn found(v: &Verdict<u16>) -> Vec<u16> {
    match v {
        Verdict::Found { culprits, .. } => culprits.iter().map(|(k, _)| *k).collect(),
        other => panic!("not found: {other:?}"),
    }
}

#[test]
fn one_culprit_among_64_in_seven_rounds() {
    for culprit in 0..64 {
        let (v, probes) = search(&[(culprit, 20.0)], 64, &[], ProbeConfig::default(), 1.0, 0);
        assert_eq!(found(&v), [culprit]);
        assert_eq!(probes.len(), 7, "culprit {culprit}: {probes:?}");
        assert!(probes.last().unwrap().confirmation);
        assert!(probes.iter().all(|p| p.gated.len() <= 32));
        assert!(probes
            .iter()
            .all(|p| matches!(p.gate, Gate::Throttle { .. })));
    }
}

#[test]
fn two_culprits_among_64_near_the_bound() {
    // ⌈log2 C(64,2)⌉ + 2 = 13.
    let mut worst = 0;
    for a in (0..64).step_by(5) {
        for b in (a + 1..64).step_by(7) {
            let (v, probes) = search(
                &[(a, 20.0), (b, 30.0)],
                64,
                &[],
                ProbeConfig::default(),
                1.0,
                0,
            );
            assert_eq!(found(&v), [a, b], "{probes:?}");
            worst = worst.max(probes.len());
        }
    }
    assert!(worst <= 14, "worst {worst}");
}

#[test]
fn a_cleared_vf_is_never_gated_again() {
    let (v, probes) = search(
        &[(41, 20.0), (9, 25.0)],
        64,
        &[],
        ProbeConfig::default(),
        1.0,
        0,
    );
    assert_eq!(found(&v), [9, 41]);
    // Rebuild what each round cleared: a VF gated in a round whose rate did not fall, or left
    // out of a round whose rate fell entirely, never appears in a later round.
    let mut seen_after: BTreeSet<u16> = BTreeSet::new();
    for p in probes.iter().rev() {
        seen_after.extend(p.gated.iter().copied());
    }
    assert!(seen_after.contains(&9) && seen_after.contains(&41));
    // And the total disturbance is far below gating everyone each round.
    let gated: usize = probes.iter().map(|p| p.gated.len()).sum();
    assert!(gated < 64 * probes.len() / 3, "{gated}");
}

#[test]
fn the_cap_bounds_the_tenants_gated_at_once() {
    let cfg = ProbeConfig {
        max_share: 0.125,
        ..ProbeConfig::default()
    };
    let (v, probes) = search(&[(50, 20.0)], 64, &[], cfg, 1.0, 0);
    assert_eq!(found(&v), [50]);
    assert!(probes.iter().all(|p| p.gated.len() <= 8), "{probes:?}");
    // More rounds than with half at a time, still far fewer than one at a time.
    assert!(probes.len() > 7 && probes.len() < 20, "{}", probes.len());
}

#[test]
fn excluded_vfs_are_never_gated_and_stay_suspects() {
    let excluded = [3u16, 4];
    let (v, probes) = search(&[(4, 20.0)], 16, &excluded, ProbeConfig::default(), 1.0, 0);
    assert!(probes
        .iter()
        .all(|p| !p.gated.iter().any(|k| excluded.contains(k))));
    match v {
        Verdict::Inconclusive { suspects, .. } => {
            assert!(
                suspects.contains(&3) && suspects.contains(&4),
                "{suspects:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_throttle_that_does_not_stop_the_faults_gives_way_to_the_link_state_gate() {
    let (v, probes) = search(&[(17, 20.0)], 64, &[], ProbeConfig::default(), 0.0, 0);
    assert_eq!(found(&v), [17]);
    let first_link = probes
        .iter()
        .position(|p| p.gate == Gate::LinkDown)
        .expect("escalated");
    assert!(probes[..first_link]
        .iter()
        .all(|p| matches!(p.gate, Gate::Throttle { .. })));
    assert!(probes.len() <= 14, "{}", probes.len());
}

#[test]
fn faults_that_stop_on_their_own_end_the_search() {
    let mut l = Localizer::new((0..8u16).collect(), Vec::new(), 8, ProbeConfig::default());
    assert!(matches!(l.step(), Verdict::Probe(_)));
    l.observe(vfguard_localize::Outcome::poisson(0.0, 0.0));
    assert_eq!(l.step(), Verdict::Quiet { rounds: 1 });
}

/// Counts in bursts (a PF-wide counter read every 2 s) scatter more than Poisson counts: the
/// same fall that names a culprit when the counts are Poisson is measured again, longer, when
/// the baseline's windows scattered forty times as much.
#[test]
fn bursty_counts_need_a_larger_fall_to_name_anyone() {
    let run = |dispersion: f64| {
        let mut l = Localizer::new(vec![0u16, 1], Vec::new(), 2, ProbeConfig::default());
        let Verdict::Probe(p) = l.step() else {
            panic!("no probe")
        };
        assert_eq!(p.gated, [0]);
        // Gating VF 0 changes nothing: it is cleared, VF 1 is the candidate.
        l.observe(vfguard_localize::Outcome {
            before: 1000.0,
            during: 1000.0,
            dispersion,
        });
        let Verdict::Probe(c) = l.step() else {
            panic!("no confirmation")
        };
        assert!(c.confirmation && c.gated == [1]);
        l.observe(vfguard_localize::Outcome {
            before: 1000.0,
            during: 400.0,
            dispersion,
        });
        l.step()
    };
    assert!(matches!(run(1.0), Verdict::Found { ref culprits, .. } if culprits[0].0 == 1));
    match run(40.0) {
        Verdict::Probe(again) => assert!(again.confirmation && again.window_ms == 20_000),
        other => panic!("named on a bursty fall: {other:?}"),
    }
}

/// With Poisson noise and rates of 15 to 60 faults a 10 s window: 2000 searches for one or two
/// culprits among 64, each with its own noise seed (deterministic). One culprit is found in
/// (nearly) every search. Of two, at least one is found in (nearly) every search and both in
/// most: at these rates a culprit with a fifth of the faults can be cleared by noise; it is
/// then found by the next search, once the first is contained (the verdict's `unexplained`
/// share says that faults remain). An innocent tenant is named in (almost) none: the
/// confirmation round is what keeps it so. No search runs away. The bench's table has the same
/// figures.
#[test]
fn noisy_rates_still_find_the_culprits_and_almost_never_name_an_innocent() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Per number of culprits: searches, exact, at least one, an innocent named.
    let mut tally = [[0u32; 4]; 3];
    for seed in 1..=2000u64 {
        let a = u16::try_from(next() % 64).unwrap();
        let b = u16::try_from(next() % 64).unwrap();
        let ra = 15.0 + (next() % 46) as f64;
        let rb = 15.0 + (next() % 46) as f64;
        let mut culprits = vec![(a, ra)];
        if seed % 2 == 0 && b != a {
            culprits.push((b, rb));
        }
        let (v, probes) = search(&culprits, 64, &[], ProbeConfig::default(), 1.0, seed);
        assert!(probes.len() <= 40);
        let t = &mut tally[culprits.len()];
        t[0] += 1;
        let want: BTreeSet<u16> = culprits.iter().map(|(k, _)| *k).collect();
        if let Verdict::Found { culprits: got, .. } = &v {
            let got: BTreeSet<u16> = got.iter().map(|(k, _)| *k).collect();
            t[1] += u32::from(got == want);
            t[2] += u32::from(!got.is_disjoint(&want));
            t[3] += u32::from(!got.is_subset(&want));
        }
    }
    let [_, one, two] = tally;
    eprintln!("one culprit: {one:?}; two: {two:?} (searches, exact, at least one, innocent)");
    assert!(one[1] * 100 >= one[0] * 99, "{one:?}");
    assert!(two[2] * 100 >= two[0] * 99, "{two:?}");
    assert!(two[1] * 100 >= two[0] * 65, "{two:?}");
    assert!(
        (one[3] + two[3]) * 1000 <= one[0] + two[0],
        "innocents named: {tally:?}"
    );
}
