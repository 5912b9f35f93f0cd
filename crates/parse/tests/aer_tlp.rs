//! Issue 14 item 4 (parse): the AER TLP header log decoded into the TLP's type and the IDs of
//! its requester and completer, and correctable errors marked as link errors or not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use vfguard_model::{FaultEvent, FaultKind};
use vfguard_parse::{scan_text, FormatHint};

fn scan(text: &str) -> Vec<FaultEvent> {
    scan_text(text.as_bytes(), FormatHint::Auto).0
}

fn detail<'a>(e: &'a FaultEvent, key: &str) -> Option<&'a str> {
    e.details.get(key).map(String::as_str)
}

#[test]
fn a_write_a_vf_sent_names_the_vf_as_requester_at_the_root_port() {
    // Rendered from the v6.16 formats (aer.c aer_print_source()/aer_print_error(), tlp.c
    // pcie_print_tlp_log() "%#010x %#010x %#010x %#010x"): the root port logged an MWr64 from
    // VF 3b:02.1 that it rejected as an Unsupported Request.
    let log = "\
pcieport 0000:3a:00.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:3a:00.0
pcieport 0000:3a:00.0: AER: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Requester ID)
pcieport 0000:3a:00.0: AER:   device [8086:2030] error status/mask=00100000/00000000
pcieport 0000:3a:00.0: AER:    [20] UnsupReq               (First)
pcieport 0000:3a:00.0: AER:   TLP Header: 0x60000001 0x3b11000f 0x00000001 0x7ff3c000
";
    let evs = scan(log);
    assert_eq!(evs.len(), 1, "{evs:#?}");
    let e = &evs[0];
    assert_eq!(e.kind, FaultKind::AerNonfatal);
    assert_eq!(detail(e, "tlp_type"), Some("MWr64"));
    assert_eq!(detail(e, "tlp_requester"), Some("3b:02.1"));
    assert_eq!(detail(e, "tlp_completer"), None);
    assert_eq!(detail(e, "aer_layer"), Some("Transaction Layer"));
    assert_eq!(
        detail(e, "aer_link"),
        None,
        "only correctable errors are judged"
    );
}

#[test]
fn headers_quoted_in_public_reports_decode() {
    // linux-pci, PTM enablement thread (v6.x): Fmt 001 Type 10100 is a message from 00:00.0.
    let ptm = "\
pcieport 0000:00:07.1: AER: Multiple Uncorrectable (Non-Fatal) error message received from 0000:00:07.1
pcieport 0000:00:07.1: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Receiver ID)
pcieport 0000:00:07.1:   device [8086:d44f] error status/mask=00200000/00000000
pcieport 0000:00:07.1:    [21] ACSViol                (First)
pcieport 0000:00:07.1: AER:   TLP Header: 0x34000000 0x00000052 0x00000000 0x00000000
";
    let e = &scan(ptm)[0];
    assert_eq!(
        (detail(e, "tlp_type"), detail(e, "tlp_requester")),
        (Some("Msg"), Some("00:00.0"))
    );
    assert_eq!(detail(e, "bits"), Some("ACSViol"));
    // linux-pci, DPC/EDR series on segment 0015: a completion with data from 00:00.0 to 01:00.0.
    let cpl = "\
pcieport 0015:00:00.0: AER: Uncorrectable (Fatal) error message received from 0015:01:00.0
vfio-pci 0015:01:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Transaction Layer, (Receiver ID)
vfio-pci 0015:01:00.0:   device [144d:a80a] error status/mask=00001000/00400000
vfio-pci 0015:01:00.0:    [12] TLP                    (First)
vfio-pci 0015:01:00.0: AER:   TLP Header: 0x4a004010 0x00000040 0x01000000 0xffffffff
";
    let e = &scan(cpl)[0];
    assert_eq!(e.kind, FaultKind::AerFatal);
    assert_eq!(detail(e, "tlp_type"), Some("CplD"));
    assert_eq!(detail(e, "tlp_completer"), Some("00:00.0"));
    assert_eq!(detail(e, "tlp_requester"), Some("01:00.0"));
    // The segment is the reporter's: the event's device and function are in 0015.
    assert_eq!(e.function.unwrap().segment(), 0x15);
}

#[test]
fn older_header_renderings_decode_alike() {
    // aer.c before v6.15: pci_err "  TLP Header: %08x %08x %08x %08x\n" (dev_fmt "AER: ").
    let v5 = "\
pcieport 0000:00:1d.0: AER: Uncorrected (Non-Fatal) error received: 0000:3b:00.0
ixgbe 0000:3b:00.0: AER: PCIe Bus Error: severity=Uncorrected (Non-Fatal), type=Transaction Layer, (Completer ID)
ixgbe 0000:3b:00.0: AER:   device [8086:1563] error status/mask=00008000/00000000
ixgbe 0000:3b:00.0: AER:    [15] CmpltAbrt              (First)
ixgbe 0000:3b:00.0: AER:   TLP Header: 04000001 0000000f 3b100000 00000000
";
    let e = &scan(v5)[0];
    assert_eq!(detail(e, "tlp_type"), Some("CfgRd0"));
    assert_eq!(detail(e, "tlp_requester"), Some("00:00.0"));
    assert_eq!(detail(e, "tlp_target"), Some("3b:02.0"));
    // aerdrv_errprint.c (v4.x and before): "  TLP Header: %02x%02x%02x%02x ..." byte by byte,
    // most significant first, after the "id=" source line.
    let v4 = "\
pcieport 0000:00:03.0: AER: Uncorrected (Non-Fatal) error received: id=0018
pcieport 0000:00:03.0: PCIe Bus Error: severity=Uncorrected (Non-Fatal), type=Transaction Layer, id=0018(Requester ID)
pcieport 0000:00:03.0:   device [8086:6f08] error status/mask=00100000/00000000
pcieport 0000:00:03.0:    [20] Unsupported Request    (First)
pcieport 0000:00:03.0:   TLP Header: 40000001 3b11000f 90000000 00000000
";
    let e = &scan(v4)[0];
    assert_eq!(
        (detail(e, "tlp_type"), detail(e, "tlp_requester")),
        (Some("MWr32"), Some("3b:02.1"))
    );
}

#[test]
fn a_flit_mode_header_is_kept_but_not_decoded() {
    let log = "\
pcieport 0000:3a:00.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:3b:00.0
ixgbe 0000:3b:00.0: AER: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Requester ID)
ixgbe 0000:3b:00.0: AER:   TLP Header (Flit): 0x00000001 0x3b110000 0x00000000 0x00000000 0x00000000
";
    let e = &scan(log)[0];
    assert!(detail(e, "tlp_header").is_some());
    assert_eq!(detail(e, "tlp_flit"), Some("(Flit)"));
    assert_eq!(detail(e, "tlp_type"), None);
}

#[test]
fn correctable_physical_and_data_link_errors_are_marked_link_errors() {
    let head = "pcieport 0000:3a:00.0: AER: Correctable error message received from 0000:3b:00.0";
    let cases = [
        ("Physical Layer", "00000001", "[ 0] RxErr", Some("true")),
        ("Data Link Layer", "00000040", "[ 6] BadTLP", Some("true")),
        ("Data Link Layer", "00001000", "[12] Timeout", Some("true")),
        (
            "Transaction Layer",
            "00002000",
            "[13] NonFatalErr",
            Some("false"),
        ),
    ];
    for (layer, status, bit, want) in cases {
        let log = format!(
            "{head}
vfio-pci 0000:3b:00.0: AER: PCIe Bus Error: severity=Correctable, type={layer}, (Receiver ID)
vfio-pci 0000:3b:00.0: AER:   device [8086:1563] error status/mask={status}/0000e000
vfio-pci 0000:3b:00.0: AER:    {bit}                  (First)
"
        );
        let e = &scan(&log)[0];
        assert_eq!(e.kind, FaultKind::AerCorrectable);
        assert_eq!(detail(e, "aer_layer"), Some(layer));
        assert_eq!(detail(e, "aer_link"), want, "{log}");
    }
    // Only the layer printed (no status, no bits): the layer decides.
    let e = &scan(&format!(
        "{head}\nvfio-pci 0000:3b:00.0: AER: PCIe Bus Error: severity=Correctable, type=Physical Layer, (Receiver ID)"
    ))[0];
    assert_eq!(detail(e, "aer_link"), Some("true"));
}
