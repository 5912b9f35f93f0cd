//! Issue 14 item 6: mlx5 (ConnectX) lines in the catalog, behind mlx5's
//! `function:line:(pid N): ` origin, and i40e's v6.19 MAC-limit lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use vfguard_model::{FaultEvent, FaultKind, KmsgFlag, KmsgRecord};
use vfguard_parse::catalog::Catalog;
use vfguard_parse::{scan_text, Classifier, FormatHint};

fn scan(text: &str) -> Vec<FaultEvent> {
    scan_text(text.as_bytes(), FormatHint::Auto).0
}

fn one(text: &str) -> FaultEvent {
    let evs = scan(text);
    assert_eq!(evs.len(), 1, "{text}: {evs:#?}");
    evs.into_iter().next().unwrap()
}

#[test]
fn command_and_page_lines_as_reported_in_the_field() {
    // Lines quoted in public reports (a netdev patch's oops, a linux-rdma thread, an NVD entry).
    let cases = [
        (
            "[ 748.005230] mlx5_core 0000:18:00.0: wait_func:1155:(pid 1967079): TEARDOWN_HCA(0x103) timeout. Will cause a leak of a command resource",
            "mlx5.cmd.timeout",
            "wait_func:1155",
        ),
        (
            "[  257.111349] mlx5_core 0000:56:00.0: wait_func_handle_exec_timeout:1159:(pid 72061): cmd[0]: ACCESS_REG(0x805) No done completion",
            "mlx5.cmd.no_done",
            "wait_func_handle_exec_timeout:1159",
        ),
        (
            "[  270.871521] mlx5_core 0000:56:00.0: mlx5_cmd_comp_handler:1709:(pid 0): Command completion arrived after timeout (entry idx = 0).",
            "mlx5.cmd.late_completion",
            "mlx5_cmd_comp_handler:1709",
        ),
        (
            "[ 748.005231] mlx5_core 0000:08:00.2: reclaim_pages:514:(pid 12985): failed reclaiming pages: err -110",
            "mlx5.pages.reclaim_failed",
            "reclaim_pages:514",
        ),
        (
            "[ 748.001835] mlx5_core 0000:08:00.2: mlx5_reclaim_root_pages:653:(pid 12985): failed reclaiming pages (-110) for func id 0x0",
            "mlx5.pages.reclaim_root_failed",
            "mlx5_reclaim_root_pages:653",
        ),
    ];
    for (line, id, origin) in cases {
        let e = one(line);
        assert_eq!(e.catalog_id, id, "{line}");
        assert_eq!(e.kind, FaultKind::FwFault, "{line}");
        assert_eq!(e.details.get("origin").map(String::as_str), Some(origin));
        let device = line
            .split_whitespace()
            .nth(3)
            .unwrap()
            .trim_end_matches(':');
        assert_eq!(e.function.map(|b| b.to_string()).as_deref(), Some(device));
        assert_eq!(e.vf, None, "{line}: names no VF");
        assert!(!e.message.contains("(pid"), "{}", e.message);
    }
    let e = one("mlx5_core 0000:18:00.0: wait_func:1155:(pid 1): TEARDOWN_HCA(0x103) timeout. Will cause a leak of a command resource");
    assert_eq!(
        (e.details["command"].as_str(), e.details["opcode"].as_str()),
        ("TEARDOWN_HCA", "103")
    );
}

#[test]
fn the_health_dump_is_one_fw_fault_with_its_syndrome() {
    // health.c poll_health() then print_health_info() (mlx5_log), as v6.x prints them.
    let log = "\
mlx5_core 0000:08:00.0: poll_health:801:(pid 0): Fatal error 1 detected
mlx5_core 0000:08:00.0: print_health_info:431:(pid 0): Health issue observed, firmware internal error, severity(3) ERROR:
mlx5_core 0000:08:00.0: print_health_info:435:(pid 0): assert_var[0] 0x00000001
mlx5_core 0000:08:00.0: print_health_info:435:(pid 0): assert_var[1] 0x00000000
mlx5_core 0000:08:00.0: print_health_info:438:(pid 0): assert_exit_ptr 0x0094a8b0
mlx5_core 0000:08:00.0: print_health_info:440:(pid 0): fw_ver 16.35.2000
mlx5_core 0000:08:00.0: print_health_info:447:(pid 0): synd 0x1: firmware internal error
mlx5_core 0000:08:00.0: print_health_info:449:(pid 0): ext_synd 0x8f3f
mlx5_core 0000:08:00.0: mlx5_health_try_recover:338:(pid 612): starting health recovery flow
";
    let evs = scan(log);
    let got: Vec<_> = evs
        .iter()
        .map(|e| (e.catalog_id.as_str(), e.kind, e.line, e.end_line))
        .collect();
    assert_eq!(
        got,
        [
            ("mlx5.health.fatal_error", FaultKind::FwFault, 1, 1),
            ("mlx5.health.issue", FaultKind::FwFault, 2, 8),
            ("mlx5.health.recovery_start", FaultKind::PfReset, 9, 9),
        ]
    );
    let dump = &evs[1];
    assert_eq!(dump.details["synd"], "1");
    assert_eq!(dump.details["synd_text"], "firmware internal error");
    assert_eq!(dump.details["ext_synd"], "8f3f");
    assert_eq!(dump.details["fw_severity_name"], "ERROR");
    assert_eq!(dump.details["fw_major"], "16");
}

#[test]
fn an_older_health_dump_opens_with_assert_var_zero() {
    // Before mlx5_log (about v5.18) the dump began with assert_var[0] (mlx5_core_err).
    let log = "\
mlx5_core 0000:08:00.0: print_health_info:383:(pid 0): assert_var[0] 0x00000001
mlx5_core 0000:08:00.0: print_health_info:383:(pid 0): assert_var[1] 0x00000000
mlx5_core 0000:08:00.0: print_health_info:390:(pid 0): fw_ver 16.26.1040
mlx5_core 0000:08:00.0: print_health_info:394:(pid 0): synd 0x1: firmware internal error
";
    let evs = scan(log);
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(
        (evs[0].catalog_id.as_str(), evs[0].kind, evs[0].end_line),
        ("mlx5.health.assert_var0", FaultKind::FwFault, 4)
    );
    assert_eq!(evs[0].details["fw_minor"], "26");
}

#[test]
fn en_reporter_lines_are_tx_hang_and_rx_error_on_the_netdev_function() {
    let cases = [
        ("TX timeout on queue: 3, SQ: 0x1a9, CQ: 0x5d1, SQ Cons: 0x38 SQ Prod: 0x3f, usecs since last trans: 10752000", FaultKind::TxHang, Some(3)),
        ("TX timeout on queue: 7, SQ: 0x1a9, CQ: 0x5d1, SQ Cons: 0x38 SQ Prod: 0x3f", FaultKind::TxHang, Some(7)),
        ("ERR CQE on SQ: 0x1a9", FaultKind::TxHang, None),
        ("RX timeout on channel: 5, RQ: 0x4c4, CQ: 0x4c3", FaultKind::RxError, None),
        ("RX timeout on channel: 5, ICOSQ: 0x4c2, RQ: 0x4c4, CQ: 0x4c3", FaultKind::RxError, None),
        ("ERR CQE on RQ: 0x4c4", FaultKind::RxError, None),
        ("Recovered 1 eqes on EQ 0x12", FaultKind::TxHang, None),
    ];
    for (msg, kind, queue) in cases {
        let line = format!("mlx5_core 0000:08:00.1 ens1f1np1: {msg}");
        let e = one(&line);
        assert_eq!((e.kind, e.queue), (kind, queue), "{line}");
        assert_eq!(e.netdev.as_deref(), Some("ens1f1np1"));
        assert_eq!(
            e.function.map(|b| b.to_string()).as_deref(),
            Some("0000:08:00.1")
        );
        assert!(!e.victim);
    }
    // The EQ state line before a recovery is context, not an event of its own.
    assert!(scan("mlx5_core 0000:08:00.1 ens1f1np1: EQ 0x12: Cons = 0x2a, irqn = 0x71").is_empty());
}

#[test]
fn a_rendered_mlx5_record_keeps_its_origin_and_classifies_back() {
    let cat = Catalog::get();
    let text = cat
        .render_line(
            "mlx5.cmd.timeout",
            Some(("mlx5_core", "0000:08:00.0", None)),
            &["ACCESS_REG", "805"],
        )
        .unwrap();
    assert_eq!(
        text,
        "mlx5_core 0000:08:00.0: wait_func:1155:(pid 1967079): ACCESS_REG(0x805) timeout. Will cause a leak of a command resource"
    );
    let rec = KmsgRecord {
        seq: 9,
        ts_usec: 1,
        facility: 0,
        level: 4,
        flag: KmsgFlag::Whole,
        caller: None,
        text,
        subsystem: Some("pci".into()),
        device: Some("+pci:0000:08:00.0".into()),
    };
    let mut c = Classifier::new();
    let mut out = Vec::new();
    c.push(&vfguard_parse::kmsg_line(&rec), &mut out);
    c.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].trusted);
    assert_eq!(out[0].kind, FaultKind::FwFault);
}

#[test]
fn i40e_mac_limit_lines_name_no_vf_and_stay_on_the_pf() {
    for (msg, id) in [
        (
            "Cannot add more MAC addresses: VF reached its maximum allowed limit (16)",
            "i40e.vc.mac_limit",
        ),
        (
            "Cannot add more MAC addresses: trusted VF reached its maximum allowed limit (122)",
            "i40e.vc.mac_limit_trusted",
        ),
        (
            "Cannot add more MAC addresses, trusted VF exhausted it's resources",
            "i40e.vc.mac_exhausted_trusted",
        ),
    ] {
        let e = one(&format!("i40e 0000:3b:00.0: {msg}"));
        assert_eq!(e.catalog_id, id);
        assert_eq!(e.kind, FaultKind::Mailbox);
        assert_eq!(e.pf.map(|b| b.to_string()).as_deref(), Some("0000:3b:00.0"));
        assert_eq!((e.vf, e.vf_abs, e.function), (None, None, None));
    }
}

#[test]
fn an_error_cqe_is_tx_or_rx_by_its_opcode() {
    let line = |op: &str| {
        format!("mlx5_core 0000:08:00.0 enp8s0f0np0: Error cqe on cqn 0x5d1, ci 0x2a, qn 0x1a9, opcode {op}, syndrome 0x2, vendor syndrome 0x68")
    };
    assert_eq!(
        one(&line("0xd")).kind,
        FaultKind::TxHang,
        "MLX5_CQE_REQ_ERR"
    );
    assert_eq!(
        one(&line("0xe")).kind,
        FaultKind::RxError,
        "MLX5_CQE_RESP_ERR"
    );
    let e = one(&line("0xe"));
    assert_eq!(e.catalog_id, "mlx5e.error_cqe");
    assert_eq!(e.details["syndrome"], "2");
    assert_eq!(e.details["vendor_syndrome"], "68");
}
