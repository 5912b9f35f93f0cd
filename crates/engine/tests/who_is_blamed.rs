//! Who a fault is pinned on when the line is not the culprit's own word (issue 14): a VF's own
//! driver reporting what befell it (the victim side), a requester printed without its PCI
//! segment, an AER error whose TLP header names the sender, and link faults on a NIC a VM
//! holds whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vfguard_engine::{Engine, IncidentState as State};
use vfguard_model::{
    ActionOutcome, Bdf, Decision, FaultEvent, Method, Observation, Topology, VICTIM_CONTEXT,
};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

/// Feeds every action's success back, as actuators would (with the VF's state before).
fn succeed(e: &mut Engine, d: &[Decision], t: &Topology, now: u64) -> Vec<Decision> {
    let mut out = Vec::new();
    for a in d.iter().filter_map(|d| match d {
        Decision::Act(a) => Some(a.id),
        _ => None,
    }) {
        out.extend(e.observe(
            &Observation::Outcome(ActionOutcome {
                id: a,
                error: None,
                before: Some(vfguard_model::VfState::default()),
                at: now,
            }),
            t,
            now,
        ));
    }
    out
}

// ------------------------------------------------------------------ the victim side

#[test]
fn a_victim_line_alone_opens_nothing_counts_nothing_and_acts_on_no_one() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    for i in 0..50u64 {
        for line in [
            "iavf 0000:87:00.3: Failed to communicate with PF; waiting before retry",
            "iavf 0000:87:00.3: Reset task did not complete, VF disabled",
        ] {
            let obs = fault(line);
            let Observation::Fault(ev) = &obs else {
                unreachable!()
            };
            assert!(ev.victim, "{line}: the catalog marks it the victim side");
            let d = e.observe(&obs, &t, 1000 + i * 100);
            assert!(d.is_empty(), "{line}: {d:?}");
        }
    }
    assert_eq!(e.incidents().count(), 0);
}

#[test]
fn a_victim_line_joins_the_incident_of_its_function_as_context_only() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    // i40e disabled VF 2 for MDD: an incident, contained by the driver.
    let d = e.observe(
        &fault("i40e 0000:3b:00.0: Use PF Control I/F to re-enable the VF #2"),
        &t,
        1000,
    );
    assert!(d.iter().any(|d| matches!(d, Decision::Contained { .. })));
    let faults = e.incidents().next().unwrap().faults;
    // The VF's own driver then reports its reset did not complete (and keeps saying so).
    for now in [1200, 5000, 9000] {
        let d = e.observe(
            &fault("iavf 0000:3c:00.2: Reset task did not complete, VF disabled"),
            &t,
            now,
        );
        let a = attributed(&d);
        assert_eq!(a.len(), 1, "{d:?}");
        assert!(a[0].1.starts_with(VICTIM_CONTEXT), "{:?}", a[0].1);
        assert!(acts(&d).is_empty(), "{d:?}");
        assert!(
            !d.iter().any(|d| matches!(d, Decision::StateChanged { .. })),
            "a victim line neither undoes nor lifts a containment: {d:?}"
        );
    }
    let inc = e.incidents().next().unwrap();
    assert_eq!((inc.faults, inc.state), (faults, State::Contained));
    assert!(inc
        .evidence
        .iter()
        .any(|ev| ev.text.starts_with(VICTIM_CONTEXT)));
}

#[test]
fn a_victim_line_corroborates_the_pf_line_that_names_its_vf_but_changes_no_confidence() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let d = e.observe(
        &fault("iavf 0000:3c:00.2: Failed to communicate with PF; waiting before retry"),
        &t,
        1000,
    );
    assert!(d.is_empty(), "{d:?}");
    let line = "i40e 0000:3b:00.0: 1 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 5254003b0002. mdd-auto-reset-vfs=on";
    let d = e.observe(&fault(line), &t, 1500);
    let a: Vec<(Method, f64, String)> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Attributed {
                method,
                confidence,
                evidence,
                ..
            } => Some((*method, *confidence, evidence.clone())),
            _ => None,
        })
        .collect();
    assert_eq!((a[0].0, a[0].1), (Method::Direct, 1.0), "{a:?}");
    assert!(
        a[0].2
            .contains("corroborated by the VF's own driver (iavf.mbx.comm_failed, 500 ms apart)"),
        "{:?}",
        a[0].2
    );
    // Too far apart: no word of it.
    let d = e.observe(&fault(line), &t, 9000);
    assert!(!attributed(&d)[0].1.contains("corroborated"), "{d:?}");
}

// ------------------------------------------------------------------ link faults, whole NICs

/// The AER lines a marginal link prints for one receiver error on `function` (signals.md §2.1).
fn rx_err(function: &str) -> Observation {
    let text = format!(
        "pcieport 0000:5d:00.0: AER: Correctable error message received from {function}\n\
         vfio-pci {function}: AER: PCIe Bus Error: severity=Correctable, type=Physical Layer, (Receiver ID)\n\
         vfio-pci {function}: AER:   device [8086:1521] error status/mask=00000001/0000e000\n\
         vfio-pci {function}: AER:    [ 0] RxErr                  (First)\n"
    );
    let mut v = faults(&text);
    assert_eq!(v.len(), 1, "{v:?}");
    Observation::Fault(v.remove(0))
}

/// Issue 14: a VM holding a NIC whole lost it (detach) to a stream of correctable receiver
/// errors: the aer_correctable rule crossed its threshold and the ladder climbed past notify.
#[test]
fn correctable_physical_layer_errors_never_detach_a_whole_nic_vm() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("hold_down = \"1s\""));
    let mut all = Vec::new();
    for i in 0..600u64 {
        let now = 1000 + i * 100;
        let d = e.observe(&rx_err("0000:5e:00.1"), &t, now);
        all.extend(acts(&d));
        let c = Observation::Aer {
            function: bdf("0000:5e:00.1"),
            correctable: 1,
            nonfatal: 0,
            fatal: 0,
        };
        let d2 = e.observe(&c, &t, now);
        all.extend(acts(&d2));
        succeed(&mut e, &[d, d2].concat(), &t, now + 1);
    }
    assert!(
        all.iter().any(|(_, a)| a == "notify"),
        "someone must know: {all:?}"
    );
    assert!(all.iter().all(|(_, a)| a == "notify"), "{all:?}");
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.owner_label(), "vm:whole");
}

#[test]
fn a_whole_nic_vm_that_also_faults_on_its_own_is_still_acted_on() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("hold_down = \"1s\""));
    let dma = "DMAR: [DMA Write NO_PASID] Request device [5e:00.1] fault addr 0x1000 [fault reason 0x05] PTE Write access is not set";
    let mut all = Vec::new();
    for i in 0..40u64 {
        let now = 1000 + i * 300;
        let d = e.observe(&rx_err("0000:5e:00.1"), &t, now);
        all.extend(acts(&d));
        let d2 = e.observe(&fault(dma), &t, now + 1);
        all.extend(acts(&d2));
        succeed(&mut e, &[d, d2].concat(), &t, now + 2);
    }
    assert!(all.iter().any(|(_, a)| a == "detach"), "{all:?}");
}

// ------------------------------------------------------------------ the TLP header

/// An uncorrectable error a root port logged with the header of the TLP that caused it.
fn malformed_at_root_port(details: &[(&str, &str)]) -> FaultEvent {
    let mut v = faults(
        "pcieport 0000:3a:00.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:3a:00.0\n\
         pcieport 0000:3a:00.0: AER: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Receiver ID)\n\
         pcieport 0000:3a:00.0: AER:   device [8086:2030] error status/mask=00040000/00000000\n\
         pcieport 0000:3a:00.0: AER:    [18] MalfTLP                (First)\n\
         pcieport 0000:3a:00.0: AER:   TLP Header: 0x60000001 0x3c0200ff 0x00000000 0x7ff3c000\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    let mut ev = v.remove(0);
    for (k, val) in details {
        ev.details.insert((*k).to_owned(), (*val).to_owned());
    }
    ev
}

#[test]
fn an_error_at_a_root_port_is_pinned_on_the_vf_its_tlp_header_names() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    // A memory write request: the requester sent it.
    let ev = malformed_at_root_port(&[
        ("tlp_type", "MWr64"),
        ("tlp_requester", "3c:00.2"),
        ("tlp_completer", "00:00.0"),
    ]);
    let d = e.observe(&Observation::Fault(ev), &t, 1000);
    let a = attributed(&d);
    assert_eq!(a.len(), 1, "{d:?}");
    assert_eq!(a[0].0, Method::TlpHeader, "{a:?}");
    assert!(
        a[0].1.contains("0000:3c:00.2 as its requester"),
        "{:?}",
        a[0].1
    );
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.function, Some(bdf("0000:3c:00.2")));
    assert_eq!(inc.owner_label(), "vm:vm2");
    // The uncorrectable rule acts on the VF that sent it.
    assert_eq!(acts(&d), [("0000:3c:00.2".to_owned(), "notify".to_owned())]);
}

/// The parser decodes the header itself (requester ID in DW1 for a memory write).
#[test]
fn the_decoded_header_alone_names_the_sender() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let ev = malformed_at_root_port(&[]);
    assert_eq!(
        (
            ev.details.get("tlp_type").map(String::as_str),
            ev.details.get("tlp_requester").map(String::as_str)
        ),
        (Some("MWr64"), Some("3c:00.2")),
        "{:?}",
        ev.details
    );
    let d = e.observe(&Observation::Fault(ev), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::TlpHeader, "{d:?}");
    assert_eq!(
        e.incidents().next().unwrap().function,
        Some(bdf("0000:3c:00.2"))
    );
}

/// A VF without its own AER capability: the error shows on its PF, with the VF's request.
#[test]
fn an_error_a_pf_logged_is_pinned_on_its_vf_and_a_vf_keeps_its_own() {
    let sim = sim_host();
    let t = topology(&sim);
    let at_pf = "pcieport 0000:3a:00.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:3b:00.0\n\
         i40e 0000:3b:00.0: AER: PCIe Bus Error: severity=Uncorrectable (Non-Fatal), type=Transaction Layer, (Requester ID)\n\
         i40e 0000:3b:00.0: AER:   device [8086:1572] error status/mask=00100000/00000000\n\
         i40e 0000:3b:00.0: AER:    [20] UnsupReq               (First)\n\
         i40e 0000:3b:00.0: AER:   TLP Header: 0x00000001 0x3c0000ff 0x7ff3c000 0x00000000\n";
    let mut e = Engine::new(policy(""));
    let d = e.observe(&Observation::Fault(faults(at_pf).remove(0)), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::TlpHeader, "{d:?}");
    let inc = e.incidents().next().unwrap();
    assert_eq!(
        (inc.function, inc.owner_label()),
        (Some(bdf("0000:3c:00.0")), "vm:vm0".to_owned())
    );
    // The VF logged it itself (its own AER capability): it keeps it, whatever the header says.
    let at_vf = at_pf
        .replace("from 0000:3b:00.0", "from 0000:3c:00.2")
        .replace("i40e 0000:3b:00.0", "vfio-pci 0000:3c:00.2");
    let mut e = Engine::new(policy(""));
    let d = e.observe(&Observation::Fault(faults(&at_vf).remove(0)), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::Requester, "{d:?}");
    assert_eq!(
        e.incidents().next().unwrap().function,
        Some(bdf("0000:3c:00.2"))
    );
}

#[test]
fn a_completion_is_pinned_on_its_completer_and_an_unknown_sender_on_no_one() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let ev = malformed_at_root_port(&[
        ("tlp_type", "CplD"),
        ("tlp_requester", "00:00.0"),
        ("tlp_completer", "09:00.1"),
    ]);
    let d = e.observe(&Observation::Fault(ev), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::TlpHeader, "{d:?}");
    assert_eq!(
        e.incidents().next().unwrap().function,
        Some(bdf("0000:09:00.1"))
    );
    // A sender the map does not know: the error stays on its reporter.
    let mut e = Engine::new(policy(""));
    let ev = malformed_at_root_port(&[("tlp_type", "MRd32"), ("tlp_requester", "77:00.0")]);
    let d = e.observe(&Observation::Fault(ev), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::Requester, "{d:?}");
    assert_eq!(
        e.incidents().next().unwrap().function,
        Some(bdf("0000:3a:00.0"))
    );
}

// ------------------------------------------------------------------ PCI segments

const TWO_SEGMENTS: &str = r#"
[scenario]
name = "segments"
duration_ms = 60000

[[pf]]
bdf = "0000:3b:00.0"
driver = "i40e"
netdev = "enp59s0f0"
numvfs = 4
iommu_unit = "dmar1"

[[pf]]
bdf = "0001:3b:00.0"
driver = "i40e"
netdev = "enp1s59f0"
numvfs = 4
iommu_unit = "dmar7"

[[vm]]
name = "innocent"
functions = ["0000:3b:00.0/vf3"]

[[vm]]
name = "rogue"
functions = ["0001:3b:00.0/vf3"]
"#;

fn two_segments() -> (SimHost, Topology) {
    let sim = SimHost::new(Scenario::parse("segments.toml", TWO_SEGMENTS).unwrap()).unwrap();
    let t = topology(&sim);
    (sim, t)
}

const DMAR_3C_00_3: &str = "DMAR: [DMA Read NO_PASID] Request device [3c:00.3] fault addr 0x7ff3c000 [fault reason 0x06] PTE Read access is not set";

#[test]
fn the_topology_knows_each_function_s_iommu_unit() {
    let (_sim, t) = two_segments();
    let units: Vec<(String, Option<String>)> = t
        .in_any_segment(0x3c, 0, 3)
        .iter()
        .map(|f| (f.bdf().to_string(), f.iommu_unit().map(str::to_owned)))
        .collect();
    assert_eq!(
        units,
        [
            ("0000:3c:00.3".to_owned(), Some("dmar1".to_owned())),
            ("0001:3c:00.3".to_owned(), Some("dmar7".to_owned()))
        ]
    );
}

#[test]
fn a_segmentless_requester_in_two_segments_blames_no_one_and_lists_both() {
    let (_sim, t) = two_segments();
    let mut e = Engine::new(policy(""));
    let mut all = Vec::new();
    for i in 0..20u64 {
        let d = e.observe(&fault(DMAR_3C_00_3), &t, 1000 + i * 200);
        let a = attributed(&d);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0, Method::Ambiguous, "{a:?}");
        assert!(
            a[0].1.contains("0000:3c:00.3 (vm:innocent")
                && a[0].1.contains("0001:3c:00.3 (vm:rogue"),
            "{:?}",
            a[0].1
        );
        all.extend(acts(&d));
    }
    assert!(all.iter().all(|(_, a)| a == "notify"), "{all:?}");
    let inc = e.incidents().next().unwrap();
    // About the address as printed, owned by no one.
    assert_eq!(
        (inc.function, inc.owner.as_ref()),
        (Some(bdf("0000:3c:00.3")), None)
    );
}

#[test]
fn the_iommu_unit_the_log_names_picks_the_requester_s_segment() {
    let (_sim, t) = two_segments();
    let mut e = Engine::new(policy(""));
    let Observation::Fault(mut ev) = fault(DMAR_3C_00_3) else {
        unreachable!()
    };
    ev.details.insert("unit".into(), "dmar7".into());
    let d = e.observe(&Observation::Fault(ev), &t, 1000);
    let a = attributed(&d);
    assert_eq!(a[0].0, Method::Requester, "{a:?}");
    assert!(a[0].1.contains("IOMMU unit dmar7"), "{:?}", a[0].1);
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.function, Some(bdf("0001:3c:00.3")));
    assert_eq!(inc.owner_label(), "vm:rogue");
}

/// On a host whose map knows one function at 3c:00.3, the DMAR line is pinned on it; when its
/// faults go on after the agent contained it, the agent doubts itself rather than climb on.
#[test]
fn faults_that_outlive_the_containment_of_their_requester_raise_an_alarm_not_the_ladder() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("hold_down = \"1s\"\ncool_down = \"10s\""));
    let line = "DMAR: [DMA Read NO_PASID] Request device [3c:00.2] fault addr 0x7ff3c000 [fault reason 0x06] PTE Read access is not set";
    let mut contained_at = None;
    let mut after = Vec::new();
    for i in 0..240u64 {
        let now = 1000 + i * 250;
        let d = e.observe(&fault(line), &t, now);
        let o = succeed(&mut e, &d, &t, now + 1);
        // Ticks: the cool-down restores the function, which is then never punished again.
        let tick = e.observe(&Observation::Tick, &t, now + 2);
        let o2 = succeed(&mut e, &tick, &t, now + 3);
        let d = [d, tick, o2].concat();
        if contained_at.is_none() && o.iter().any(|d| matches!(d, Decision::Contained { .. })) {
            contained_at = Some(now);
        } else if contained_at.is_some() {
            after.extend(d);
        }
    }
    assert!(contained_at.is_some(), "the first attribution is acted on");
    let acts_after: Vec<String> = after
        .iter()
        .filter_map(|d| match d {
            Decision::Act(a) => Some(format!("{} {}", a.kind.name(), a.rule)),
            _ => None,
        })
        .collect();
    assert_eq!(acts_after.len(), 2, "{acts_after:?}");
    assert!(
        acts_after[0].starts_with("notify faults continue from a contained requester"),
        "{acts_after:?}"
    );
    assert!(
        acts_after[1].starts_with("restore cool_down"),
        "the wrongly punished function is put back: {acts_after:?}"
    );
    let moves: Vec<(State, State)> = after
        .iter()
        .filter_map(|d| match d {
            Decision::StateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        moves,
        [(State::Contained, State::Restored)],
        "never escalated again"
    );
}

/// Through the parser: CONFIG_DMAR_DEBUG's dump line after the fault joins it as its `unit`.
#[test]
fn the_dmar_dump_line_after_a_fault_names_the_unit_that_places_it() {
    let (_sim, t) = two_segments();
    let mut e = Engine::new(policy(""));
    let v = faults(&format!(
        "DMAR: DRHD: handling fault status reg 2\n{DMAR_3C_00_3}\nDMAR: Dump dmar1 table entries for IOVA 0x7ff3c000\n"
    ));
    assert_eq!(v.len(), 1, "{v:?}");
    let d = e.observe(&Observation::Fault(v[0].clone()), &t, 1000);
    assert_eq!(attributed(&d)[0].0, Method::Requester, "{d:?}");
    let inc = e.incidents().next().unwrap();
    assert_eq!(inc.function, Some(bdf("0000:3c:00.3")));
    assert_eq!(inc.owner_label(), "vm:innocent");
}
