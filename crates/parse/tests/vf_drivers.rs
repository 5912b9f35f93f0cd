//! Issue 14 item 2: lines a VF's own driver (iavf, ixgbevf, igbvf) prints on the host, about
//! what befell the VF: events on the VF's own function, marked `victim`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use vfguard_model::FaultKind;
use vfguard_parse::catalog::{Catalog, Source};
use vfguard_parse::{scan_text, FormatHint};

/// VF drivers (the VF's own driver, bound on the host or in a container's netns).
const VF_DRIVERS: &[&str] = &["iavf", "i40evf", "ixgbevf", "igbvf"];

/// One line rendered from the catalog's kernel format, classified on its own.
fn classify(id: &str, driver: &str, device: &str, values: &[&str]) -> vfguard_model::FaultEvent {
    let line = Catalog::get()
        .render_line(id, Some((driver, device, Some("eth1"))), values)
        .unwrap();
    let (events, _) = scan_text(line.as_bytes(), FormatHint::Auto);
    assert_eq!(events.len(), 1, "{line}: {events:#?}");
    let e = events.into_iter().next().unwrap();
    assert_eq!(e.catalog_id, id, "{line}");
    e
}

#[test]
fn vf_side_lines_are_events_on_the_vf_itself_and_marked_victim() {
    let vf = "0000:82:01.0";
    let cases: &[(&str, &str, &[&str], FaultKind)] = &[
        (
            "iavf.mbx.adminq_reinit_failed",
            "iavf",
            &["-53"],
            FaultKind::Mailbox,
        ),
        (
            "iavf.mbx.adminq_init_failed",
            "iavf",
            &["-53"],
            FaultKind::Mailbox,
        ),
        ("iavf.mbx.send_failed", "iavf", &["-53"], FaultKind::Mailbox),
        ("iavf.mbx.never_completed", "iavf", &[], FaultKind::Mailbox),
        (
            "iavf.mbx.api_version",
            "iavf",
            &["0", "0", "1", "1"],
            FaultKind::Mailbox,
        ),
        (
            "iavf.mbx.config_request_failed",
            "iavf",
            &["-53"],
            FaultKind::Mailbox,
        ),
        (
            "iavf.mbx.get_config_failed",
            "iavf",
            &["-5"],
            FaultKind::Mailbox,
        ),
        (
            "iavf.mbx.parse_resources_failed",
            "iavf",
            &["-19"],
            FaultKind::Mailbox,
        ),
        ("iavf.mbx.comm_failed", "iavf", &[], FaultKind::Mailbox),
        ("iavf.reset.came_out", "iavf", &[], FaultKind::VfReset),
        ("iavf.reset.reinit_failed", "iavf", &[], FaultKind::VfReset),
        ("iavf.disabled", "iavf", &[], FaultKind::VfDisabled),
        (
            "iavf.disabled.pf_error",
            "i40evf",
            &[],
            FaultKind::VfDisabled,
        ),
        (
            "iavf.reset.never_finished",
            "iavf",
            &["0"],
            FaultKind::VfReset,
        ),
        (
            "ixgbevf.mbx.vlan_failed",
            "ixgbevf",
            &["100"],
            FaultKind::Mailbox,
        ),
        ("vf.reset.pf_resetting", "igbvf", &[], FaultKind::VfReset),
    ];
    for &(id, driver, values, kind) in cases {
        let e = classify(id, driver, vf, values);
        assert_eq!(e.kind, kind, "{id}");
        assert_eq!(
            e.function.map(|b| b.to_string()).as_deref(),
            Some(vf),
            "{id}"
        );
        assert_eq!(
            (e.pf, e.vf),
            (None, None),
            "{id}: a VF's own line names no PF"
        );
        assert!(e.victim, "{id} is the victim's side");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["victim"], true, "{id}");
    }
}

#[test]
fn the_issue_lines_as_the_kernel_prints_them() {
    // Formats from iavf_main.c (v6.x): iavf_reset_task(), iavf_init_get_resources(),
    // iavf_watchdog_task(), iavf_disable_vf().
    let log = "\
[ 5218.999087] iavf 0000:82:01.0: Failed to init adminq: -53
[ 5219.100000] iavf 0000:82:01.0: Unable to get VF config (-5)
[ 5219.200000] iavf 0000:82:01.0: Failed to communicate with PF; waiting before retry
[ 5224.300000] iavf 0000:82:01.0: Hardware came out of reset. Attempting reinit.
[ 5230.400000] iavf 0000:82:01.0: Reset task did not complete, VF disabled
";
    let (events, _) = scan_text(log.as_bytes(), FormatHint::Auto);
    let got: Vec<_> = events.iter().map(|e| (e.kind, e.victim)).collect();
    assert_eq!(
        got,
        [
            (FaultKind::Mailbox, true),
            (FaultKind::Mailbox, true),
            (FaultKind::Mailbox, true),
            (FaultKind::VfReset, true),
            (FaultKind::VfDisabled, true),
        ]
    );
}

#[test]
fn every_vf_driver_entry_is_the_victims_side_and_no_pf_entry_is() {
    for e in Catalog::table() {
        let Source::Driver(drivers) = e.source else {
            assert!(
                !e.victim,
                "{}: only a VF's own driver prints a victim line",
                e.id
            );
            continue;
        };
        let vf_side = drivers.iter().all(|d| VF_DRIVERS.contains(d));
        assert_eq!(e.victim, vf_side, "{}", e.id);
    }
}

#[test]
fn a_pf_line_is_never_marked_victim() {
    let (events, _) = scan_text(
        b"ixgbe 0000:01:00.0: Malicious event on VF 2 tx:4 rx:0",
        FormatHint::Auto,
    );
    assert!(!events[0].victim);
    let json = serde_json::to_value(&events[0]).unwrap();
    assert!(json.get("victim").is_none(), "omitted when false: {json}");
}
