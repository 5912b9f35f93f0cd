//! Raw kernel log text and records → typed fault events.
//!
//! This is the *parse* stage of the pipeline (signals → **parse** → attribution → policy →
//! actions). It is pure: bytes in, [`FaultEvent`]s out, no I/O, no clock.
//!
//! - [`aer`]: AER detail decoding (the TLP header log, link errors).
//! - [`catalog`]: the driver message catalog (data: format, fields, kind, example per entry).
//! - [`printf`]: kernel format strings → matchers and renderers.
//! - [`textfmt`]: which text form a line is in (kmsg, dmesg, syslog, journal...).
//! - [`prefix`]: the `<driver> <bdf>[ <netdev>]:` device prefix.
//! - [`classify`]: the line-level state machine (continuations, AER groups, provenance).
//! - [`scan`]: a fast scanner over whole saved logs with a literal prefilter.
//! - [`fold`]: live records identical within a batch become one event with a repeat count.
//! - [`kmsg`] classifies one live `/dev/kmsg` record.

pub mod aer;
pub mod catalog;
pub mod classify;
pub mod fold;
pub mod prefix;
pub mod printf;
pub mod scan;
pub mod textfmt;

use std::borrow::Cow;

use vfguard_model::{FaultEvent, KmsgRecord, LogFormat, TrustBasis};

pub use catalog::Catalog;
pub use classify::{Classifier, LogicalLine};
pub use fold::FoldingClassifier;
pub use scan::{ScanStats, Scanner};
pub use textfmt::FormatHint;

/// Turns a live kmsg record into the classifier's input (line numbers are 0: a live record has
/// none; the sequence number identifies it).
pub fn kmsg_line(rec: &KmsgRecord) -> LogicalLine<'_> {
    let trust = if rec.facility == 0 {
        TrustBasis::KernelRecord
    } else {
        TrustBasis::UserFacility
    };
    // Precision loss is irrelevant: the timestamp is informational.
    #[allow(clippy::cast_precision_loss)]
    let timestamp = Some(rec.ts_usec as f64 / 1e6);
    LogicalLine {
        line: 0,
        end_line: 0,
        format: LogFormat::Kmsg,
        trust,
        timestamp,
        seq: Some(rec.seq),
        dict_device: rec.device.as_deref().map(Cow::Borrowed),
        text: Cow::Borrowed(&rec.text),
    }
}

/// Classifies one kmsg record on its own (no grouping with the records that follow): the event
/// it starts, if any; of a record that is two events (ixgbe's MDD in both directions), the first
/// (mdd_tx). A long-running reader should keep a [`Classifier`] instead, so that AER detail
/// records join their error and every event of a record is seen.
pub fn kmsg(rec: &KmsgRecord) -> Option<FaultEvent> {
    let mut c = Classifier::new();
    let mut out = Vec::new();
    c.push(&kmsg_line(rec), &mut out);
    c.finish(&mut out);
    out.into_iter().next()
}

/// Classifies a whole text log held in memory.
pub fn scan_text(text: &[u8], hint: FormatHint) -> (Vec<FaultEvent>, ScanStats) {
    let mut s = Scanner::new(hint);
    let mut out = Vec::new();
    s.feed(text, true, &mut out);
    (out, s.stats())
}
