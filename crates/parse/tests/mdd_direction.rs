//! Issue 14 item 1: ixgbe's `"Malicious event on VF %d tx:%x rx:%x\n"` (ixgbe_sriov.c
//! ixgbe_check_mdd_event(), v6.17) says the direction in its two cause registers: mdd_tx when
//! Tx is non-zero, mdd_rx when Rx is, one event of each when both are, mdd when neither is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use vfguard_model::{FaultEvent, FaultKind, KmsgFlag, KmsgRecord};
use vfguard_parse::catalog::Catalog;
use vfguard_parse::{scan_text, Classifier, FormatHint};

/// The line as the kernel prints it, rendered from the catalog's format.
fn line(vf: &str, tx: &str, rx: &str) -> String {
    Catalog::get()
        .render_line(
            "ixgbe.mdd.event",
            Some(("ixgbe", "0000:08:00.0", None)),
            &[vf, tx, rx],
        )
        .unwrap()
}

fn scan(text: &str) -> Vec<FaultEvent> {
    scan_text(text.as_bytes(), FormatHint::Auto).0
}

fn summary(evs: &[FaultEvent]) -> Vec<(FaultKind, Option<u16>, Option<&str>)> {
    evs.iter()
        .map(|e| {
            (
                e.kind,
                e.vf.map(|v| v.0),
                e.details.get("direction").map(String::as_str),
            )
        })
        .collect()
}

#[test]
fn tx_cause_alone_is_mdd_tx() {
    let l = line("2", "4", "0");
    assert_eq!(l, "ixgbe 0000:08:00.0: Malicious event on VF 2 tx:4 rx:0");
    assert_eq!(
        summary(&scan(&l)),
        [(FaultKind::MddTx, Some(2), Some("tx"))]
    );
}

#[test]
fn rx_cause_alone_is_mdd_rx() {
    assert_eq!(
        summary(&scan(&line("5", "0", "1a"))),
        [(FaultKind::MddRx, Some(5), Some("rx"))]
    );
}

#[test]
fn both_causes_are_two_events_of_one_line() {
    let evs = scan(&format!("[  12.5] {}", line("3", "4", "2")));
    assert_eq!(
        summary(&evs),
        [
            (FaultKind::MddTx, Some(3), Some("tx")),
            (FaultKind::MddRx, Some(3), Some("rx")),
        ]
    );
    let (a, b) = (&evs[0], &evs[1]);
    assert_eq!((a.line, a.end_line), (b.line, b.end_line));
    assert_eq!(
        (a.timestamp, &a.message, a.pf),
        (b.timestamp, &b.message, b.pf)
    );
    assert_eq!(a.details.get("tx_mask").map(String::as_str), Some("4"));
    assert_eq!(b.details.get("rx_mask").map(String::as_str), Some("2"));
}

#[test]
fn no_cause_is_generic_mdd() {
    let evs = scan(&line("1", "0", "0"));
    assert_eq!(summary(&evs), [(FaultKind::Mdd, Some(1), None)]);
}

#[test]
fn a_kmsg_record_of_both_causes_gives_two_events_with_its_seq() {
    let rec = KmsgRecord {
        seq: 77,
        ts_usec: 5_000_000,
        facility: 0,
        level: 4,
        flag: KmsgFlag::Whole,
        caller: None,
        text: line("3", "ffff", "1"),
        subsystem: Some("pci".into()),
        device: Some("+pci:0000:08:00.0".into()),
    };
    let mut c = Classifier::new();
    let mut out = Vec::new();
    c.push(&vfguard_parse::kmsg_line(&rec), &mut out);
    c.finish(&mut out);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(out.iter().all(|e| e.seq == Some(77) && e.trusted));
    assert_eq!(
        out.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [FaultKind::MddTx, FaultKind::MddRx]
    );
}
