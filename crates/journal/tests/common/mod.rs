//! Builders of model values for the journal's tests: shared by the unit tests (included with
//! `#[path]`) and the integration tests (`mod common;`), so every test speaks about the same
//! host: PF 0000:3b:00.0 with VFs 0000:3b:02.x, owned by VMs `web-N`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use vfguard_model::{
    Action, ActionId, ActionKind, ActionOutcome, Bdf, Decision, Errno, FaultEvent, FaultKind,
    IncidentId, LogFormat, Method, Millis, Observation, OperatorRequest, Owner, OwnerKind, RuleRef,
    Severity, TrustBasis, VfChange, VfIndex, VfLinkState, VfState, VfStats,
};

/// The PF.
pub fn pf() -> Bdf {
    Bdf::new(0, 0x3b, 0, 0).expect("valid PF address")
}

/// VF `n` of the PF (n < 8).
pub fn vf(n: u8) -> Bdf {
    Bdf::new(0, 0x3b, 2, n % 8).expect("valid VF address")
}

/// A VM owner.
pub fn vm(name: &str) -> Owner {
    Owner {
        kind: OwnerKind::Vm,
        name: Some(name.to_owned()),
        id: Some(format!("uuid-{name}")),
        pid: Some(4242),
        evidence: vec![format!("/run/libvirt/qemu/{name}.xml")],
        metadata: Default::default(),
    }
}

/// An MDD event on VF `n`, as i40e prints it.
pub fn fault(n: u8, seq: u64) -> FaultEvent {
    let mut details = BTreeMap::new();
    details.insert("event".to_owned(), "0x02".to_owned());
    FaultEvent {
        line: 0,
        end_line: 0,
        kind: FaultKind::MddTx,
        severity: Severity::Error,
        driver: Some("i40e".to_owned()),
        device: Some(pf()),
        netdev: Some("ens1f0".to_owned()),
        pf: Some(pf()),
        vf: Some(VfIndex(u16::from(n))),
        vf_abs: None,
        function: Some(vf(n)),
        queue: Some(3),
        count: None,
        mac: None,
        catalog_id: "i40e_mdd_tx".to_owned(),
        message: format!("Malicious Driver Detection event 0x02 on TX queue 3 PF number 0x00 VF number 0x{n:02x}"),
        trusted: true,
        trust: TrustBasis::KernelRecord,
        format: LogFormat::Kmsg,
        timestamp: Some(1_234.567_891),
        seq: Some(seq),
        details,
        owner: Some(vm(&format!("web-{n}"))),
        repeats: 0,
        victim: false,
    }
}

/// A fault as the agent journals it in a storm: an i40e MDD line on VF `n`, resolved against
/// the host map (owner with its evidence), the kind of ~1 KB body the journal's size is about.
/// Only `seq` and the timestamp change from one record to the next.
pub fn storm_fault(n: u8, seq: u64) -> FaultEvent {
    let mut ev = fault(n, seq);
    ev.details.insert("pf_number".to_owned(), "0x00".to_owned());
    ev.details
        .insert("vf_number".to_owned(), format!("0x{n:02x}"));
    ev.details.insert("queue".to_owned(), "3".to_owned());
    ev.details
        .insert("event_name".to_owned(), "TX_DESC_BAD".to_owned());
    ev.timestamp = Some(86_400.0 + seq as f64 / 1_000.0);
    if let Some(owner) = ev.owner.as_mut() {
        owner.evidence = vec![
            format!("/run/libvirt/qemu/web-{n}.xml: <hostdev> 0000:3b:02.{n} (vfio)"),
            "/proc/4242/cmdline: qemu-system-x86_64 -name guest=web,debug-threads=on".to_owned(),
            format!("/sys/bus/pci/devices/0000:3b:02.{n}/iommu_group -> 5{n}"),
        ];
    }
    ev
}

/// One engine step of a storm on VF `n`: the fault attached to `incident`, and the
/// attribution the engine journals with every fault.
pub fn storm_step(n: u8, seq: u64, incident: IncidentId) -> (Observation, Decision) {
    (
        Observation::Fault(storm_fault(n, seq)),
        Decision::Attributed {
            incident,
            method: Method::Direct,
            confidence: 1.0,
            evidence: format!(
                "i40e.mdd.vf_tx_events names PF 0000:3b:00.0 VF {n}; owner vm:web-{n}"
            ),
        },
    )
}

/// One observation of each kind.
pub fn observations() -> Vec<Observation> {
    vec![
        Observation::Fault(fault(1, 10)),
        Observation::Aer {
            function: vf(1),
            correctable: 1,
            nonfatal: 0,
            fatal: 0,
        },
        Observation::VfStats {
            pf: pf(),
            vf: VfIndex(1),
            stats: VfStats {
                rx_packets: 5,
                tx_dropped: 2,
                ..VfStats::default()
            },
        },
        Observation::Outcome(ActionOutcome {
            id: ActionId(1),
            error: None,
            before: None,
            at: 5,
        }),
        Observation::Operator(OperatorRequest::Quarantine {
            function: vf(2),
            reason: "tenant \"web-2\" reported".to_owned(),
            by: "alice".to_owned(),
        }),
        Observation::Tick,
    ]
}

/// An action on VF 1 for `incident`.
pub fn action(id: u64, incident: IncidentId, at: Millis) -> Action {
    Action {
        id: ActionId(id),
        incident,
        function: vf(1),
        pf: Some(pf()),
        pf_netdev: Some("ens1f0".to_owned()),
        vf: Some(VfIndex(1)),
        owner: Some(vm("web-1")),
        kind: ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable)),
        rule: RuleRef::Rule("mdd_tx>=3/60s".to_owned()),
        dry_run: false,
        at,
    }
}

/// The outcome of `action` at `at`.
pub fn outcome(action: &Action, at: Millis, error: Option<&str>) -> ActionOutcome {
    ActionOutcome {
        id: action.id,
        error: error.map(Errno::from_name),
        before: Some(VfState {
            index: 1,
            link_state: Some(VfLinkState::Auto),
            spoofchk: Some(true),
            ..VfState::default()
        }),
        at,
    }
}

/// One decision of each kind, about `incident` (opened on VF 1).
pub fn decisions(incident: IncidentId) -> Vec<Decision> {
    vec![
        Decision::IncidentOpened {
            incident,
            function: vf(1),
            owner: Some(vm("web-1")),
        },
        Decision::Attributed {
            incident,
            method: Method::Direct,
            confidence: 0.1 + 0.2,
            evidence: "VF number 0x01 under PF 0000:3b:00.0".to_owned(),
        },
        Decision::ThresholdCrossed {
            incident,
            rule: "mdd_tx>=3/60s".to_owned(),
            count: 3,
        },
        Decision::Act(action(incident.0 * 100, incident, 7)),
        Decision::Suppressed {
            incident,
            action: "detach".to_owned(),
            reason: "observe mode".to_owned(),
        },
        Decision::Contained {
            incident,
            by: "set_vf:link_state".to_owned(),
        },
        Decision::Restored { incident },
        Decision::Closed {
            incident,
            reason: "cool-down over".to_owned(),
        },
    ]
}
