//! devlink health: the decoder against recorded netlink bytes (testdata/netlink/devlink, see
//! its README), the source against a scripted socket, and the decoder fuzzed.
//!
//! `UPDATE_FIXTURES=1 cargo test -p vfguard-sources --test devlink` rewrites the fixtures from
//! the generator below (the kernel's attribute layout); without it the stored bytes must be
//! exactly what the generator writes, and decode as asserted.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;

use proptest::prelude::*;
use vfguard_host::GenlLink;
use vfguard_model::{FaultKind, VfIndex};
use vfguard_sources::devlink::ctrl::{self, Family};
use vfguard_sources::devlink::fmsg::FmsgBuilder;
use vfguard_sources::devlink::proto::{
    emit, parse_fmsg, parse_ports, parse_reporters, Cmd, DevHandle, PortInfo, ReporterId,
    ReporterStatus, Request,
};
use vfguard_sources::devlink::{wire, DevlinkSource};

const FAMILY: u16 = 0x15;
const CONFIG_GROUP: u32 = 8;
const ICE: &str = "0000:3b:00.0";
const MLX5: &str = "0000:5e:00.0";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/netlink/devlink")
}

fn rid(dev: &str, port: Option<u32>, name: &str) -> ReporterId {
    ReporterId {
        dev: DevHandle {
            bus: "pci".into(),
            dev: dev.into(),
        },
        port,
        name: name.into(),
    }
}

fn st(id: ReporterId, errors: u64, dump: bool) -> ReporterStatus {
    ReporterStatus {
        id,
        error: errors > 0,
        errors,
        recovers: 0,
        dump_ts: dump.then_some(1_764_870_000_000_000_000),
        notification: false,
    }
}

fn reporters(seq: u32, mdd_errors: u64) -> Vec<u8> {
    let list = [
        st(rid(ICE, None, "tx_hang"), 0, false),
        st(rid(ICE, None, "mdd"), mdd_errors, mdd_errors > 0),
        st(rid(MLX5, None, "fw"), 0, false),
        st(rid(MLX5, None, "fw_fatal"), 0, false),
        st(rid(MLX5, None, "vnic"), 0, false),
        st(rid(MLX5, Some(2), "vnic"), 0, false),
        st(rid(MLX5, Some(3), "vnic"), 0, false),
    ];
    let mut out: Vec<u8> = list
        .iter()
        .flat_map(|s| emit::reporter(FAMILY, Cmd::ReporterGet, seq, s))
        .collect();
    out.extend(wire::done(seq, 0));
    out
}

fn ports(seq: u32) -> Vec<u8> {
    let dev = DevHandle {
        bus: "pci".into(),
        dev: MLX5.into(),
    };
    let port = |index, flavour, vf: Option<u16>, netdev: &str| PortInfo {
        dev: dev.clone(),
        index,
        flavour: Some(flavour),
        pf: Some(0),
        vf,
        netdev: Some(netdev.into()),
    };
    let mut out = Vec::new();
    for p in [
        port(1, 3, None, "enp94s0f0np0"),
        port(2, 4, Some(0), "enp94s0f0npf0vf0"),
        port(3, 4, Some(1), "enp94s0f0npf0vf1"),
    ] {
        out.extend(emit::port(FAMILY, seq, &p));
    }
    out.extend(wire::done(seq, 0));
    out
}

fn ice_mdd_dump(seq: u32) -> Vec<u8> {
    // devlink_health_do_dump's object around ice_mdd_reporter_dump's object.
    let f = FmsgBuilder::default()
        .obj_start()
        .obj_start()
        .str("src", "tx_tclan")
        .u8("pf_num", 0)
        .u32("vf_num", 2)
        .u8("event", 7)
        .u32("queue", 130)
        .end()
        .end();
    // Split in messages of 9 items, as the kernel splits a long fmsg.
    emit::fmsg(FAMILY, Cmd::DumpGet, seq, &rid(ICE, None, "mdd"), &f, 9)
}

fn vnic_diagnose(seq: u32, error_queues: u32, invalid: u64) -> Vec<u8> {
    let f = FmsgBuilder::default()
        .obj_start()
        .pair_start("vNIC env counters")
        .obj_start()
        .u32("total_error_queues", error_queues)
        .u32("send_queue_priority_update_flow", 0)
        .u32("comp_eq_overrun", 0)
        .u32("async_eq_overrun", 0)
        .u32("cq_overrun", 0)
        .u32("invalid_command", 0)
        .u64("quota_exceeded_command", invalid)
        .u64("nic_receive_steering_discard", 12)
        .u64("generated_pkt_steering_fail", 0)
        .u64("handled_pkt_steering_fail", 0)
        .end()
        .end()
        .end();
    emit::fmsg(
        FAMILY,
        Cmd::Diagnose,
        seq,
        &rid(MLX5, Some(3), "vnic"),
        &f,
        64,
    )
}

/// Every fixture: file name and bytes.
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let family = Family {
        id: FAMILY,
        groups: vec![("config".into(), CONFIG_GROUP)],
    };
    let mut notify = emit::reporter(
        FAMILY,
        Cmd::ReporterRecover,
        0,
        &st(rid(ICE, None, "mdd"), 1, true),
    );
    notify.extend(emit::reporter(
        FAMILY,
        Cmd::ReporterRecover,
        0,
        &st(rid(MLX5, None, "fw_fatal"), 1, false),
    ));
    vec![
        ("ctrl-family.bin", ctrl::family_reply(1, "devlink", &family)),
        ("ctrl-family-enoent.bin", wire::error(1, 0, 2)),
        ("reporters.bin", reporters(2, 0)),
        ("reporters-mdd3.bin", reporters(2, 3)),
        ("ports.bin", ports(3)),
        ("notify-recover.bin", notify),
        ("ice-mdd-dump.bin", ice_mdd_dump(4)),
        ("dump-clear-eperm.bin", wire::error(5, 0, 1)),
        ("mlx5-vnic-diagnose-1.bin", vnic_diagnose(6, 0, 0)),
        ("mlx5-vnic-diagnose-2.bin", vnic_diagnose(6, 4, 9)),
    ]
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn fixtures_are_what_the_generator_writes() {
    for (name, bytes) in fixtures() {
        let path = dir().join(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(load(name), bytes, "{name} differs from its generator");
    }
}

#[test]
fn the_family_and_its_config_group_are_found() {
    let f = ctrl::parse_family(&load("ctrl-family.bin")).unwrap();
    assert_eq!((f.id, f.group("config")), (FAMILY, Some(CONFIG_GROUP)));
    assert_eq!(
        ctrl::parse_family(&load("ctrl-family-enoent.bin")),
        Err(wire::WireError::Errno(-2))
    );
}

#[test]
fn the_reporter_dump_decodes_per_device_and_port() {
    let list = parse_reporters(&load("reporters-mdd3.bin"), FAMILY).unwrap();
    assert_eq!(list.len(), 7);
    let mdd = list.iter().find(|s| s.id.name == "mdd").unwrap();
    assert_eq!((mdd.errors, mdd.error, mdd.id.port), (3, true, None));
    assert!(mdd.dump_ts.is_some());
    let ported: Vec<_> = list.iter().filter_map(|s| s.id.port).collect();
    assert_eq!(ported, vec![2, 3]);
    let notes = parse_reporters(&load("notify-recover.bin"), FAMILY).unwrap();
    assert!(notes.iter().all(|s| s.notification));
    assert_eq!(notes.len(), 2);
}

#[test]
fn ports_name_their_vf() {
    let p = parse_ports(&load("ports.bin"), FAMILY).unwrap();
    let vfs: Vec<_> = p.iter().map(|p| (p.index, p.flavour, p.vf)).collect();
    assert_eq!(
        vfs,
        vec![
            (1, Some(3), None),
            (2, Some(4), Some(0)),
            (3, Some(4), Some(1))
        ]
    );
}

#[test]
fn the_ice_mdd_dump_spans_messages_and_names_its_vf() {
    let f = parse_fmsg(&load("ice-mdd-dump.bin"), FAMILY).unwrap();
    assert_eq!(
        f.get("src").map(ToString::to_string).as_deref(),
        Some("tx_tclan")
    );
    assert_eq!(f.get("vf_num").and_then(|v| v.as_u64()), Some(2));
    assert_eq!(f.get("queue").and_then(|v| v.as_u64()), Some(130));
    let ev = vfguard_sources::devlink::health::error_events(
        &rid(ICE, None, "mdd"),
        (None, None),
        1,
        Some(&f),
    );
    assert_eq!(ev[0].kind, FaultKind::MddTx);
    assert_eq!(ev[0].vf, Some(VfIndex(2)));
    assert_eq!(ev[0].pf.map(|b| b.to_string()).as_deref(), Some(ICE));
    let fault = ev[0].clone().into_fault(Some("ice"));
    assert_eq!(fault.catalog_id, "devlink.ice.mdd");
    assert_eq!(
        fault.details.get("src").map(String::as_str),
        Some("tx_tclan")
    );
    assert_eq!(fault.queue, Some(130));
}

#[test]
fn a_refused_clear_is_its_errno() {
    let e = parse_fmsg(&load("dump-clear-eperm.bin"), FAMILY).unwrap_err();
    assert_eq!(vfguard_sources::devlink::proto::refusal(&e), Some(1));
}

/// A socket that answers from the fixtures, and records what was asked.
struct Scripted {
    answers: VecDeque<Vec<u8>>,
    notes: VecDeque<Vec<u8>>,
    asked: Vec<String>,
    joined: Vec<u32>,
}

impl GenlLink for Scripted {
    fn request(&mut self, msg: &[u8]) -> io::Result<Vec<u8>> {
        let what = match Request::decode(msg, FAMILY) {
            Ok((r, _)) => format!("{r:?}").split('(').next().unwrap_or("").to_owned(),
            Err(_) => "family".to_owned(),
        };
        self.asked.push(what);
        self.answers
            .pop_front()
            .ok_or_else(|| io::Error::other("unscripted request"))
    }
    fn join(&mut self, group: u32) -> io::Result<()> {
        self.joined.push(group);
        Ok(())
    }
    fn notifications(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.notes.pop_front().unwrap_or_default())
    }
}

#[test]
fn the_source_reads_clears_and_diffs() {
    let link = Scripted {
        answers: [
            "ctrl-family.bin",
            // first full poll: baseline (no events)
            "reporters.bin",
            "ports.bin",
            "mlx5-vnic-diagnose-1.bin",
            "mlx5-vnic-diagnose-1.bin",
            // second full poll: mdd rose by 3, VF 1's counters grew
            "reporters-mdd3.bin",
            "ports.bin",
            "mlx5-vnic-diagnose-1.bin",
            "mlx5-vnic-diagnose-2.bin",
            "ice-mdd-dump.bin",
            "dump-clear-eperm.bin",
        ]
        .iter()
        .map(|n| load(n))
        .collect(),
        notes: VecDeque::new(),
        asked: Vec::new(),
        joined: Vec::new(),
    };
    let mut src = DevlinkSource::new(link);
    assert!(src.start().unwrap());
    assert!(src.poll(true).unwrap().is_empty());
    let ev = src.poll(true).unwrap();
    let kinds: Vec<_> = ev.iter().map(|e| (e.kind, e.vf, e.count)).collect();
    // Three errors, one dump: the dumped one on its VF, the other two PF-level (no VF).
    assert!(
        kinds.contains(&(FaultKind::MddTx, Some(VfIndex(2)), 1)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(FaultKind::Mdd, None, 2)), "{kinds:?}");
    assert!(
        kinds.contains(&(FaultKind::Mdd, Some(VfIndex(1)), 4)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(FaultKind::Mailbox, Some(VfIndex(1)), 9)),
        "{kinds:?}"
    );
    assert_eq!(ev.len(), 4);
    assert_eq!(src.stats.clears_refused, 1);
    assert_eq!(src.stats.dumps, 1);
}

#[test]
fn a_host_without_devlink_is_off_not_failing() {
    let link = Scripted {
        answers: [load("ctrl-family-enoent.bin")].into(),
        notes: VecDeque::new(),
        asked: Vec::new(),
        joined: Vec::new(),
    };
    let mut src = DevlinkSource::new(link);
    assert!(!src.start().unwrap());
    assert!(src.unavailable().unwrap().contains("no devlink"));
    assert!(src.poll(true).unwrap().is_empty());
}

#[test]
fn a_notification_alone_triggers_the_dump() {
    let link = Scripted {
        answers: [
            "ctrl-family.bin",
            "reporters.bin",
            "ports.bin",
            "mlx5-vnic-diagnose-1.bin",
            "mlx5-vnic-diagnose-1.bin",
            "ice-mdd-dump.bin",
            "dump-clear-eperm.bin",
        ]
        .iter()
        .map(|n| load(n))
        // fw_fatal holds no dump: DONE alone.
        .chain([wire::done(9, 0)])
        .collect(),
        notes: [Vec::new(), load("notify-recover.bin")].into(),
        asked: Vec::new(),
        joined: Vec::new(),
    };
    let mut src = DevlinkSource::new(link);
    assert!(src.start().unwrap());
    assert!(src.poll(true).unwrap().is_empty());
    // The notifications say mdd is at 1 (baseline 0) and fw_fatal at 1 (first sight of a
    // port-less mlx5 fw_fatal: baseline 0 from the dump).
    let ev = src.poll(false).unwrap();
    let kinds: Vec<_> = ev.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![FaultKind::MddTx, FaultKind::FwFault]);
}

proptest! {
    /// Counter deltas survive a reset (a counter that went down counts from 0) and are never
    /// negative: the events of a run of diagnoses count exactly what the counters grew by.
    #[test]
    fn vnic_deltas_count_growth_and_survive_resets(
        values in proptest::collection::vec((0u32..50, 0u64..50), 1..12),
    ) {
        use vfguard_sources::devlink::fmsg::Fmsg;
        use vfguard_sources::devlink::health::HealthState;
        let id = rid(MLX5, Some(3), "vnic");
        let mut state = HealthState::default();
        let mut prev: Option<(u64, u64)> = None;
        for (eq, quota) in values {
            let bytes = vnic_diagnose(6, eq, quota);
            let f: Fmsg = parse_fmsg(&bytes, FAMILY).unwrap();
            let ev = state.vnic_events(&id, None, Some(VfIndex(1)), &f);
            let growth = |now: u64, before: u64| if now >= before { now - before } else { now };
            let (want_mdd, want_cmd) = match prev {
                None => (0, 0),
                Some((pe, pq)) => (growth(u64::from(eq), pe), growth(quota, pq)),
            };
            let got = |k: FaultKind| ev.iter().filter(|e| e.kind == k).map(|e| e.count).sum::<u64>();
            prop_assert_eq!(got(FaultKind::Mdd), want_mdd);
            prop_assert_eq!(got(FaultKind::Mailbox), want_cmd);
            prev = Some((u64::from(eq), quota));
        }
    }

    #[test]
    fn the_decoders_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_reporters(&bytes, FAMILY);
        let _ = parse_ports(&bytes, FAMILY);
        let _ = parse_fmsg(&bytes, FAMILY);
        let _ = ctrl::parse_family(&bytes);
        let _ = Request::decode(&bytes, FAMILY);
    }

    #[test]
    fn mutated_fixtures_decode_or_fail_typed(
        which in 0usize..10,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = fixtures().swap_remove(which).1;
        for (at, v) in flips {
            let n = bytes.len();
            if let Some(b) = bytes.get_mut(at % n) {
                *b = v;
            }
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = parse_reporters(&bytes, FAMILY);
        let _ = parse_ports(&bytes, FAMILY);
        let _ = parse_fmsg(&bytes, FAMILY);
        let _ = ctrl::parse_family(&bytes);
    }
}

/// The source against this machine's kernel: the family found (or its absence told), and the
/// reporter and port dumps decoded, whatever devices it has.
#[test]
#[ignore = "needs a Linux kernel (reads devlink health of this host)"]
fn the_live_kernel_is_read() {
    let link = vfguard_host::linux::LinuxGenl::open().unwrap();
    let mut src = DevlinkSource::new(link);
    match src.start().unwrap() {
        true => {
            let ev = src.poll(true).unwrap();
            assert!(ev.is_empty(), "the first look is a baseline: {ev:?}");
            assert_eq!(src.stats.malformed, 0);
        }
        false => eprintln!("no devlink: {:?}", src.unavailable()),
    }
}

#[test]
fn refused_diagnoses_are_counted_apart_from_garbage() {
    let link = Scripted {
        answers: [
            "ctrl-family.bin",
            "reporters.bin",
            "ports.bin",
            "dump-clear-eperm.bin",
            "dump-clear-eperm.bin",
        ]
        .iter()
        .map(|n| load(n))
        .collect(),
        notes: VecDeque::new(),
        asked: Vec::new(),
        joined: Vec::new(),
    };
    let mut src = DevlinkSource::new(link);
    assert!(src.start().unwrap());
    assert!(src.poll(true).unwrap().is_empty());
    assert_eq!((src.stats.refused, src.stats.malformed), (2, 0));
}
