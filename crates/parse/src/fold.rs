//! Storm folding: within one batch of live kmsg records, records identical to one already
//! classified (same text, `DEVICE=` and source) become a repeat count on its event instead of
//! events of their own.
//!
//! # Why
//! A VF flooding MDD events prints the same line thousands of times a second. Classifying,
//! attributing and journalling each copy costs microseconds apiece and tells nothing new; folding
//! costs a hash lookup, and the engine still counts every record (`FaultEvent::repeats`).
//!
//! # What may fold
//! Only a record that the classifier took in alone: it was idle before the record and is idle
//! after it (so the record neither continued an open event nor opened one that waits for detail
//! lines); every event it made is then its own. A repeat adds one to each of them: a line that
//! is two events (ixgbe's `Malicious event on VF 2 tx:4 rx:2`, an mdd_tx and an mdd_rx) counts
//! a repeat on both, and never on an event of another text. A record that makes no event folds
//! too (benign chatter costs a lookup). The first record's line, sequence number and timestamp
//! stay on the event; the order of events within the batch is that of their first records.

use std::collections::HashMap;

use vfguard_model::{FaultEvent, KmsgRecord};

use crate::{kmsg_line, Classifier};

/// At most this many distinct texts are remembered per batch (memory stays bounded when a storm
/// is of distinct lines; those are classified one by one).
const MAX_DISTINCT: usize = 4096;

/// A classifier for live records that folds identical ones within a batch.
#[derive(Default)]
pub struct FoldingClassifier {
    classifier: Classifier,
    events: Vec<FaultEvent>,
    /// Key → the indices in `events` of the events it made (`start..end`; empty when it made
    /// none).
    seen: HashMap<String, std::ops::Range<usize>>,
    key: String,
    folded: u64,
    /// When false every record is classified on its own (a baseline to measure folding by).
    off: bool,
}

impl FoldingClassifier {
    /// A folding classifier over the built-in catalog.
    pub fn new() -> FoldingClassifier {
        FoldingClassifier::default()
    }

    /// The same interface without folding: every record is classified on its own.
    pub fn unfolded() -> FoldingClassifier {
        FoldingClassifier {
            off: true,
            ..FoldingClassifier::default()
        }
    }

    /// Takes one record.
    pub fn push(&mut self, rec: &KmsgRecord) {
        let idle = !self.off && !self.classifier.is_pending();
        if idle {
            self.key.clear();
            self.key.push(if rec.facility == 0 { 'k' } else { 'u' });
            self.key.push_str(rec.device.as_deref().unwrap_or(""));
            self.key.push('\0');
            self.key.push_str(&rec.text);
            if let Some(made) = self.seen.get(self.key.as_str()) {
                if let Some(events) = self.events.get_mut(made.clone()) {
                    for e in events {
                        e.repeats = e.repeats.saturating_add(1);
                    }
                    self.folded += 1;
                    return;
                }
            }
        }
        let before = self.events.len();
        self.classifier.push(&kmsg_line(rec), &mut self.events);
        let after = self.events.len();
        // Idle before and after: every event made since `before` came from this record alone.
        if idle && !self.classifier.is_pending() && self.seen.len() < MAX_DISTINCT {
            self.seen.insert(self.key.clone(), before..after);
        }
    }

    /// Ends the batch: closes an open event and hands out the batch's events; the next record
    /// starts a new batch (nothing folds across batches).
    pub fn finish(&mut self) -> std::vec::Drain<'_, FaultEvent> {
        self.classifier.finish(&mut self.events);
        self.seen.clear();
        self.events.drain(..)
    }

    /// Records folded into an earlier one (or skipped as identical to a record that made no
    /// event) since the start.
    pub fn folded(&self) -> u64 {
        self.folded
    }
}

#[cfg(test)]
mod tests {
    use vfguard_model::KmsgFlag;

    use super::*;

    fn rec(seq: u64, facility: u8, text: &str) -> KmsgRecord {
        KmsgRecord {
            seq,
            ts_usec: seq * 1000,
            facility,
            level: 3,
            flag: KmsgFlag::Whole,
            caller: None,
            text: text.to_owned(),
            subsystem: Some("pci".into()),
            device: Some("+pci:0000:08:00.0".into()),
        }
    }

    const MDD: &str = "ixgbe 0000:08:00.0: Malicious event on VF 3 tx:0 rx:0";

    #[test]
    fn identical_records_fold_into_the_first_and_distinct_ones_do_not() {
        let mut f = FoldingClassifier::new();
        for seq in 0..5 {
            f.push(&rec(seq, 0, MDD));
            f.push(&rec(100 + seq, 0, &MDD.replace("VF 3", "VF 4")));
        }
        let events: Vec<FaultEvent> = f.finish().collect();
        assert_eq!(events.len(), 2, "{events:#?}");
        assert_eq!(events[0].seq, Some(0));
        assert_eq!(events[0].repeats, 4);
        assert_eq!(events[0].records(), 5);
        assert_eq!(events[1].seq, Some(100));
        assert_eq!(events[1].repeats, 4);
        assert_eq!(f.folded(), 8);
    }

    #[test]
    fn a_line_of_two_events_folds_its_repeats_into_both_and_no_other() {
        // Issue 14: "tx:4 rx:2" is an mdd_tx and an mdd_rx event from one record; its repeats
        // count on both, the Tx-only line beside it keeps its own count.
        let both = MDD.replace("tx:0 rx:0", "tx:4 rx:2");
        let tx_only = MDD.replace("tx:0 rx:0", "tx:4 rx:0");
        let mut f = FoldingClassifier::new();
        for seq in 0..3 {
            f.push(&rec(seq, 0, &both));
            f.push(&rec(10 + seq, 0, &tx_only));
        }
        f.push(&rec(20, 0, &both));
        let events: Vec<FaultEvent> = f.finish().collect();
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.seq,
                    e.repeats,
                    e.details.get("direction").map(String::as_str),
                )
            })
            .collect();
        use vfguard_model::FaultKind::{MddRx, MddTx};
        assert_eq!(
            got,
            [
                (MddTx, Some(0), 3, Some("tx")),
                (MddRx, Some(0), 3, Some("rx")),
                (MddTx, Some(10), 2, Some("tx")),
            ]
        );
        assert_eq!(f.folded(), 5);
        // Folded or not, the same records make the same events with the same counts.
        let mut plain = FoldingClassifier::unfolded();
        for seq in 0..3 {
            plain.push(&rec(seq, 0, &both));
            plain.push(&rec(10 + seq, 0, &tx_only));
        }
        plain.push(&rec(20, 0, &both));
        let unfolded: Vec<FaultEvent> = plain.finish().collect();
        let count = |evs: &[FaultEvent], k| {
            evs.iter()
                .filter(|e| e.kind == k)
                .map(FaultEvent::records)
                .sum::<u64>()
        };
        assert_eq!(count(&events, MddTx), count(&unfolded, MddTx));
        assert_eq!(count(&events, MddRx), count(&unfolded, MddRx));
    }

    #[test]
    fn a_userspace_copy_never_folds_into_a_kernel_record() {
        let mut f = FoldingClassifier::new();
        f.push(&rec(0, 0, MDD));
        f.push(&rec(1, 1, MDD));
        let events: Vec<FaultEvent> = f.finish().collect();
        assert_eq!(events.len(), 2);
        assert!(events[0].trusted && !events[1].trusted);
        assert_eq!(events[0].repeats + events[1].repeats, 0);
    }

    #[test]
    fn nothing_folds_across_batches() {
        let mut f = FoldingClassifier::new();
        f.push(&rec(0, 0, MDD));
        assert_eq!(f.finish().count(), 1);
        f.push(&rec(1, 0, MDD));
        let events: Vec<FaultEvent> = f.finish().collect();
        assert_eq!(
            (events.len(), events[0].seq, events[0].repeats),
            (1, Some(1), 0)
        );
    }

    #[test]
    fn records_of_a_multi_line_error_are_never_folded() {
        // An AER error is a head record and detail records: each head waits for its details, so
        // none of them is taken in alone and the classifier groups them exactly as without
        // folding.
        let lines = [
            "pcieport 0000:3a:00.0: AER: Correctable error message received from 0000:3b:02.1",
            "vfio-pci 0000:3b:02.1: AER: PCIe Bus Error: severity=Correctable, type=Physical Layer, (Receiver ID)",
            "vfio-pci 0000:3b:02.1: AER:   device [8086:154c] error status/mask=00000001/0000e000",
            "vfio-pci 0000:3b:02.1: AER:    [ 0] RxErr                  (First)",
        ];
        let mut plain = Classifier::new();
        let mut want = Vec::new();
        let mut f = FoldingClassifier::new();
        for round in 0..3u64 {
            for (i, l) in lines.iter().enumerate() {
                let r = rec(round * 10 + i as u64, 0, l);
                plain.push(&kmsg_line(&r), &mut want);
                f.push(&r);
            }
        }
        plain.finish(&mut want);
        let got: Vec<FaultEvent> = f.finish().collect();
        // Three errors, each grouped with its detail lines (and their status in the details).
        let groups = want.iter().filter(|e| !e.details.is_empty()).count();
        assert_eq!(groups, 3, "{want:#?}");
        assert_eq!(got, want);
    }
}
