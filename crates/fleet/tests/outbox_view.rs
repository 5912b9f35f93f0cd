//! The sans-IO halves: journal entries → messages (subjects, ids, the incident as it stands),
//! and messages from several hosts → the fleet view's correlations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vfguard_fleet::event::{Body, Envelope, Heartbeat};
use vfguard_fleet::outbox::{Message, Outbox};
use vfguard_fleet::view::{ReportOptions, View};
use vfguard_fleet::Subjects;
use vfguard_journal::{DecisionRow, Entry};
use vfguard_model::{
    Bdf, Cause, Decision, IncidentId, IncidentState, Owner, OwnerKind, Pf, Topology, Vf, VfIndex,
};

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn vm(name: &str, uuid: &str) -> Owner {
    Owner {
        kind: OwnerKind::Vm,
        name: Some(name.into()),
        id: Some(uuid.into()),
        ..Owner::default()
    }
}

fn topology(driver: &str) -> Topology {
    let vfs = (0..4u8)
        .map(|i| Vf {
            index: VfIndex(u16::from(i)),
            bdf: bdf(&format!("0000:3b:02.{i}")),
            driver: Some("vfio-pci".into()),
            netdev: None,
            iommu_group: None,
            group_peers: Vec::new(),
            iommu_unit: None,
            owner: Owner::default(),
            state: None,
        })
        .collect();
    Topology {
        pfs: vec![Pf {
            bdf: bdf("0000:3b:00.0"),
            vendor: None,
            device: None,
            driver: Some(driver.into()),
            netdevs: Vec::new(),
            netdev: None,
            numvfs: 4,
            totalvfs: 64,
            numa_node: None,
            reset_method: None,
            aer: false,
            iommu_group: None,
            iommu_unit: None,
            firmware: Some("9.20 0x8000d8c5 1.3353.0".into()),
            owner: Owner::default(),
            vfs,
        }],
        ..Topology::default()
    }
}

fn decision(seq: u64, decision: Decision) -> Entry {
    Entry::Decision(DecisionRow {
        seq,
        at: seq * 100,
        decision,
    })
}

/// The messages one host publishes for one incident of `owner` on VF `vf`, class `rule`.
fn incident(host: &str, driver: &str, id: u64, vf: u8, owner: &Owner, rule: &str) -> Vec<Message> {
    let mut o = Outbox::new(Subjects::new("lab", host).unwrap(), Some("6.12.0".into()));
    o.set_topology(&topology(driver));
    let incident = IncidentId(id);
    let entries = [
        decision(
            1,
            Decision::IncidentOpened {
                incident,
                function: bdf(&format!("0000:3b:02.{vf}")),
                owner: Some(owner.clone()),
            },
        ),
        decision(
            2,
            Decision::ThresholdCrossed {
                incident,
                rule: rule.into(),
                count: 1,
            },
        ),
        // A storm crosses the rule again at every fault: nothing new to say.
        decision(
            3,
            Decision::ThresholdCrossed {
                incident,
                rule: rule.into(),
                count: 2,
            },
        ),
        decision(
            4,
            Decision::StateChanged {
                incident,
                from: IncidentState::Open,
                to: IncidentState::Contained,
                cause: Cause::Contained,
            },
        ),
    ];
    entries
        .iter()
        .filter_map(|e| o.message(e).unwrap())
        .collect()
}

fn envelope(m: &Message) -> Envelope {
    serde_json::from_slice(&m.payload).unwrap()
}

#[test]
fn an_incident_becomes_messages_on_its_hosts_subject_with_ids_from_the_journal() {
    let ms = incident("hv-1", "i40e", 7, 2, &vm("web", "u-1"), "mdd");
    assert_eq!(
        ms.len(),
        3,
        "opened, rule, state; the repeated rule says nothing"
    );
    for m in &ms {
        assert_eq!(m.subject, "vfguard.v1.lab.hv-1.incident");
        assert_eq!(
            m.msg_id.as_deref(),
            Some(format!("hv-1:{}", m.seq).as_str())
        );
    }
    let last = envelope(&ms[2]);
    assert_eq!(
        (last.site.as_str(), last.host.as_str(), last.seq),
        ("lab", "hv-1", 4)
    );
    let Body::Incident(ev) = last.body else {
        panic!("{last:?}")
    };
    assert_eq!(ev.state, IncidentState::Contained);
    assert_eq!(ev.class.as_deref(), Some("mdd"));
    assert_eq!(ev.pf, Some(bdf("0000:3b:00.0")));
    assert_eq!(ev.platform.driver.as_deref(), Some("i40e"));
    assert_eq!(ev.platform.kernel.as_deref(), Some("6.12.0"));
    assert_eq!(
        ev.platform.firmware.as_deref(),
        Some("9.20 0x8000d8c5 1.3353.0"),
        "the PF's firmware, as the host map has it"
    );
    assert_eq!(ev.vm.map(|v| v.uuid), Some("u-1".to_owned()));
    // The JSON a consumer reads: the documented field names.
    let v: serde_json::Value = serde_json::from_slice(&ms[2].payload).unwrap();
    for k in [
        "v", "site", "host", "seq", "at_ms", "type", "incident", "change", "function", "pf",
        "state", "owner", "vm", "class", "platform",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(v["type"], "incident");
}

#[test]
fn the_view_sees_a_vm_on_several_hosts_and_a_platform_bug_on_many() {
    let mut view = View::new();
    let mallory = vm("mallory", "u-mallory");
    // Mallory faults on hv-1, migrates, faults on hv-2.
    let mut all = incident("hv-1", "i40e", 1, 1, &mallory, "spoof");
    all.extend(incident("hv-2", "i40e", 4, 3, &mallory, "spoof"));
    // ice's tx_hang on three hosts, three different tenants: a driver or firmware bug.
    for (i, host) in ["hv-3", "hv-4", "hv-5"].iter().enumerate() {
        let tenant = vm(&format!("t{i}"), &format!("u-t{i}"));
        all.extend(incident(host, "ice", 1, 0, &tenant, "tx_hang"));
    }
    // The same class on two hosts only: not enough.
    for host in ["hv-6", "hv-7"] {
        all.extend(incident(
            host,
            "ixgbe",
            1,
            0,
            &vm(host, &format!("u-{host}")),
            "mailbox",
        ));
    }
    let mut hb = Outbox::new(Subjects::new("lab", "hv-1").unwrap(), None);
    hb.set_topology(&topology("i40e"));
    all.push(
        hb.heartbeat(
            5000,
            Heartbeat {
                version: "0.1.0".into(),
                ..Heartbeat::default()
            },
        )
        .unwrap(),
    );
    for m in &all {
        view.apply(&envelope(m));
    }
    let r = view.report(ReportOptions {
        now: 10_000,
        ..ReportOptions::default()
    });
    assert_eq!(r.open.len(), 7);
    assert_eq!(
        r.vms_on_several_hosts.len(),
        1,
        "{:?}",
        r.vms_on_several_hosts
    );
    let m = &r.vms_on_several_hosts[0];
    assert_eq!(m.uuid, "u-mallory");
    assert_eq!(
        m.hosts.iter().map(String::as_str).collect::<Vec<_>>(),
        ["lab/hv-1", "lab/hv-2"]
    );
    assert_eq!(r.platform_suspects.len(), 1, "{:?}", r.platform_suspects);
    let s = &r.platform_suspects[0];
    assert_eq!(
        (
            s.driver.as_deref(),
            s.class.as_str(),
            s.hosts.len(),
            s.tenants
        ),
        (Some("ice"), "tx_hang", 3, 3)
    );
    // Its incidents are marked: not their tenants' doing; the others are not.
    for i in &r.open {
        assert_eq!(
            i.platform_suspect,
            i.incident.class.as_deref() == Some("tx_hang"),
            "{i:?}"
        );
    }
    // hv-1's heartbeat is 5 s old: alive; the hosts that never sent one are silent.
    let hv1 = r.hosts.iter().find(|h| h.host == "hv-1").unwrap();
    assert!(!hv1.silent && hv1.version.as_deref() == Some("0.1.0"));
    assert!(r
        .hosts
        .iter()
        .filter(|h| h.host != "hv-1")
        .all(|h| h.silent));
}

#[test]
fn one_tenant_on_many_hosts_is_that_tenant_not_the_platform() {
    let mut view = View::new();
    let mallory = vm("mallory", "u-mallory");
    for (i, host) in [(0u8, "hv-1"), (1, "hv-2"), (2, "hv-3")] {
        for m in incident(host, "i40e", 1, i, &mallory, "mdd") {
            view.apply(&envelope(&m));
        }
    }
    let r = view.report(ReportOptions::default());
    assert!(r.platform_suspects.is_empty(), "{:?}", r.platform_suspects);
    assert_eq!(r.vms_on_several_hosts[0].hosts.len(), 3);
}

#[test]
fn a_closed_incident_leaves_the_open_list() {
    let mut o = Outbox::new(Subjects::new("lab", "hv-1").unwrap(), None);
    o.set_topology(&topology("i40e"));
    let incident = IncidentId(3);
    let opened = decision(
        1,
        Decision::IncidentOpened {
            incident,
            function: bdf("0000:3b:02.1"),
            owner: None,
        },
    );
    let closed = decision(
        2,
        Decision::Closed {
            incident,
            reason: "quiet".into(),
        },
    );
    let mut view = View::new();
    for e in [opened, closed] {
        let m = o.message(&e).unwrap().unwrap();
        view.apply(&envelope(&m));
    }
    assert!(view.report(ReportOptions::default()).open.is_empty());
}

#[test]
fn a_pods_incident_carries_its_kubernetes_identity_and_an_older_message_reads_without_it() {
    let mut pod = Owner {
        kind: OwnerKind::Netns,
        name: Some("telco/pktgen-7d9f/dpdk".into()),
        pid: Some(6000),
        ..Owner::default()
    };
    for (k, v) in [
        ("k8s.namespace", "telco"),
        ("k8s.pod", "pktgen-7d9f"),
        ("k8s.container", "dpdk"),
        ("k8s.pod_uid", "3f1c2a9e"),
    ] {
        pod.metadata.insert(k.into(), v.into());
    }
    let ms = incident("node-1", "i40e", 3, 2, &pod, "mdd");
    let v: serde_json::Value = serde_json::from_slice(&ms[0].payload).unwrap();
    assert_eq!(
        v["pod"],
        serde_json::json!({
            "k8s_namespace": "telco",
            "k8s_pod": "pktgen-7d9f",
            "k8s_container": "dpdk",
            "k8s_pod_uid": "3f1c2a9e"
        })
    );
    assert!(v["vm"].is_null(), "a pod is no VM");
    // A VM's incident has no pod; a message from an agent before pods parses.
    let vm_ms = incident("hv-1", "i40e", 7, 2, &vm("web", "u-1"), "mdd");
    let mut old: serde_json::Value = serde_json::from_slice(&vm_ms[0].payload).unwrap();
    assert!(old["pod"].is_null());
    old.as_object_mut().unwrap().remove("pod");
    let e: Envelope = serde_json::from_value(old).unwrap();
    let Body::Incident(ev) = e.body else {
        panic!("{e:?}")
    };
    assert_eq!(ev.pod, None);
    assert_eq!(ev.vm.map(|v| v.uuid), Some("u-1".to_owned()));
}
