//! Records captured from a real kernel (testdata/kmsg/*/, each with its provenance README).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use vfguard_model::{FaultKind, TrustBasis};
use vfguard_parse::{scan_text, FormatHint};

#[test]
fn igb_on_linux_6_1_mac_override_records() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/kmsg/igb/6.1.0-82576-qemu.kmsg"
    );
    let text = std::fs::read(path).unwrap();
    let (events, stats) = scan_text(&text, FormatHint::Kmsg);
    assert_eq!(stats.lines, 18);
    type Row = (u64, u64, FaultKind, Option<u16>, Option<u64>);
    let got: Vec<Row> = events
        .iter()
        .map(|e| (e.line, e.end_line, e.kind, e.vf.map(|v| v.0), e.seq))
        .collect();
    assert_eq!(
        got,
        [
            (1, 3, FaultKind::Admin, Some(0), Some(394)),
            (7, 9, FaultKind::MacOverride, Some(0), Some(396)),
            (10, 12, FaultKind::Mailbox, Some(0), Some(397)),
            (16, 18, FaultKind::MacOverride, Some(0), Some(403)),
        ]
    );
    for e in &events {
        assert_eq!(e.trust, TrustBasis::KernelRecord);
        assert_eq!(e.pf.unwrap().to_string(), "0000:01:00.0");
    }
    assert!(events[1]
        .message
        .ends_with("\nReload the VF driver to resume operations"));
}

/// The record igbvf logged in the QEMU guest (tests/qemu, seq 383) as each VF's driver loaded:
/// a VF reset that is the PF's doing, so it must not count against the tenant (Info).
#[test]
fn igbvf_pf_still_resetting_is_an_info_vf_reset() {
    let text = b"3,383,3976431,-;igbvf 0000:01:10.0: PF still resetting\n SUBSYSTEM=pci\n DEVICE=+pci:0000:01:10.0\n";
    let (events, _) = scan_text(text, FormatHint::Kmsg);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, FaultKind::VfReset);
    assert_eq!(e.severity, vfguard_model::Severity::Info);
    assert_eq!(
        e.function.map(|f| f.to_string()).as_deref(),
        Some("0000:01:10.0")
    );
    assert_eq!(e.seq, Some(383));
}
