//! What the fleet's tests and its bench share: a journal of incidents as the agent writes them.

#![allow(dead_code, clippy::unwrap_used)]

use vfguard_journal::{Batch, Journal};
use vfguard_model::{Bdf, Decision, IncidentId, Observation, Owner, OwnerKind};

/// VF `n` of the PF at 0000:3b:00.0.
pub fn vf(n: u8) -> Bdf {
    format!("0000:3b:02.{n}").parse().unwrap()
}

/// Opens `n` incidents (ids from `first`), each with a rule crossed: two messages each; each
/// owned by a VM of its own.
pub fn incidents(j: &mut Journal, first: u64, n: u64) {
    for id in first..first + n {
        let incident = IncidentId(id);
        j.record_batch(&Batch {
            at: id * 10,
            observations: vec![(Observation::Tick, Some(incident))],
            decisions: vec![
                Decision::IncidentOpened {
                    incident,
                    function: vf(u8::try_from(id % 8).unwrap()),
                    owner: Some(Owner {
                        kind: OwnerKind::Vm,
                        name: Some(format!("vm-{id}")),
                        id: Some(format!("00000000-0000-4000-8000-{id:012x}")),
                        ..Owner::default()
                    }),
                },
                Decision::ThresholdCrossed {
                    incident,
                    rule: "mdd".into(),
                    count: 1,
                },
            ],
            cursor: None,
        })
        .unwrap();
    }
}

/// The journal's last commit-order number that the outbox reads.
pub fn last_seq(j: &Journal) -> u64 {
    j.outbox_after(0)
        .map(|e| e.unwrap().seq())
        .max()
        .unwrap_or(0)
}
