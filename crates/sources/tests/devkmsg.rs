//! Against this machine's real `/dev/kmsg` (CI runs as root): every record reads and decodes,
//! and a driver line forged from userspace is refused as a fault.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use vfguard_host::linux::DevKmsg;
use vfguard_model::{FaultKind, KmsgRecord, TrustBasis};
use vfguard_parse::Classifier;
use vfguard_sources::{KmsgEvent, KmsgReader};

const DEV: &str = "/dev/kmsg";

fn open() -> KmsgReader<DevKmsg> {
    let dev = DevKmsg::open(Path::new(DEV), true)
        .unwrap_or_else(|e| panic!("{DEV} must be readable for this test (run as root): {e}"));
    KmsgReader::new(dev)
}

#[test]
fn every_record_of_the_real_log_decodes_and_classifies() {
    let mut reader = open();
    reader.replay().unwrap();
    let mut classifier = Classifier::new();
    let mut events = Vec::new();
    let mut records = 0u64;
    while let Some(ev) = reader.next_event().unwrap() {
        match ev {
            KmsgEvent::Record(rec) => {
                records += 1;
                classifier.push(&vfguard_parse::kmsg_line(&rec), &mut events);
            }
            KmsgEvent::Gap { .. } => {}
            KmsgEvent::Malformed { error, raw } => panic!("malformed record {raw:?}: {error}"),
        }
    }
    classifier.finish(&mut events);
    assert!(records > 0, "read no record from {DEV}");
    // Whatever this host logged, nothing it printed may be taken as a forged fault.
    assert!(events.iter().all(|e| e.trust != TrustBasis::DeviceMismatch));
}

#[test]
fn a_forged_mdd_line_from_userspace_is_never_a_fault() {
    let mut reader = open();
    reader.tail().unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mac = format!(
        "{:012x}",
        (u128::from(std::process::id()) << 24 ^ stamp) & 0xffff_ffff_ffff
    );
    let text = format!(
        "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC {mac}. mdd-auto-reset-vfs=off"
    );
    // The highest priority userspace can ask for; the kernel still gives it facility LOG_USER.
    let mut w = OpenOptions::new().write(true).open(DEV).unwrap();
    writeln!(w, "<0>{text}")
        .unwrap_or_else(|e| panic!("writing to {DEV} failed (printk_devkmsg=off?): {e}"));
    drop(w);

    let mut forged: Option<KmsgRecord> = None;
    for _ in 0..10_000 {
        match reader.next_event().unwrap() {
            Some(KmsgEvent::Record(rec)) if rec.text.contains(&mac) => {
                forged = Some(rec);
                break;
            }
            Some(_) => {}
            None => std::thread::yield_now(),
        }
    }
    let forged = forged.expect("the forged record was not read back");
    assert_ne!(
        forged.facility, 0,
        "userspace wrote a kernel-facility record?"
    );
    assert!(forged.device.is_none());

    let ev = vfguard_parse::kmsg(&forged).expect("the text is still recognised");
    assert_eq!(ev.kind, FaultKind::MddTx);
    assert!(!ev.trusted);
    assert_eq!(ev.trust, TrustBasis::UserFacility);
    assert!(!ev.is_fault());

    // The same text from the kernel (facility 0, with its device dictionary) is a fault...
    let kernel = KmsgRecord {
        facility: 0,
        level: 3,
        subsystem: Some("pci".into()),
        device: Some("+pci:0000:3b:00.0".into()),
        ..forged.clone()
    };
    let ev = vfguard_parse::kmsg(&kernel).unwrap();
    assert!(ev.is_fault());
    assert_eq!(ev.trust, TrustBasis::KernelRecord);
    assert_eq!(ev.vf.map(|v| v.0), Some(2));

    // ...unless its dictionary names another device than its text.
    let mismatch = KmsgRecord {
        device: Some("+pci:0000:3b:00.1".into()),
        ..kernel
    };
    let ev = vfguard_parse::kmsg(&mismatch).unwrap();
    assert!(!ev.is_fault());
    assert_eq!(ev.trust, TrustBasis::DeviceMismatch);
}
