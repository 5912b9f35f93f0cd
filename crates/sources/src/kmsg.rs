//! The kernel log reader: `/dev/kmsg` (or a record file/FIFO) → [`KmsgRecord`]s.
//!
//! # Design
//! - One record per read, decoded by [`KmsgRecord::decode`]; a record that does not decode is
//!   reported as [`KmsgEvent::Malformed`] and counted, never fatal.
//! - Loss is a fact to report, not an error: an `EPIPE` overrun or a jump in sequence numbers
//!   becomes [`KmsgEvent::Gap`] with the lost range, so the journal can say what was missed.
//! - Resume: [`KmsgReader::resume_after`] replays from the oldest record and skips everything up
//!   to a saved sequence number; if the saved one was already overwritten, the gap is reported.
//! - Continuation fragments (`c` then `+` flags, same caller) are merged into one record, up
//!   to [`MERGED_MAX`] bytes: past that the merged record is delivered and the next fragment
//!   starts a new one, so a writer that never ends a line cannot grow memory without bound.
//! - Records no kernel writes are counted and read past, never fatal: longer than the buffer (a
//!   record file), or numbered beyond what the journal's cursor can hold (`i64::MAX`).

use std::io;

use vfguard_host::{KmsgDevice, KmsgRead, KmsgSeek};
use vfguard_model::{KmsgDecodeError, KmsgFlag, KmsgRecord};

/// Records are at most `CONSOLE_EXT_LOG_MAX` (8 KiB) with their dictionary.
const RECORD_BUF: usize = 8192;

/// The most text continuation fragments are merged into (a kernel line is at most
/// `PRINTK_MESSAGE_MAX`, 2 KiB, however many fragments it was printed in).
pub const MERGED_MAX: usize = 8192;

/// The largest sequence number a cursor can be journalled with (SQLite integers are `i64`).
const SEQ_MAX: u64 = i64::MAX as u64;

/// What the reader yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsgEvent {
    /// One record.
    Record(KmsgRecord),
    /// Records `first..=last` were lost (overwritten before they were read).
    Gap {
        /// First lost sequence number.
        first: u64,
        /// Last lost sequence number.
        last: u64,
    },
    /// A record that does not decode; the raw bytes are kept (lossily) for the log.
    Malformed {
        /// Why.
        error: KmsgDecodeError,
        /// The record as read.
        raw: String,
    },
}

/// Counters an operator can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Records delivered.
    pub records: u64,
    /// Records known lost (sum of gap sizes).
    pub lost: u64,
    /// `EPIPE` overruns seen.
    pub overruns: u64,
    /// Records that did not decode.
    pub malformed: u64,
    /// Records skipped because they were at or before the resume point.
    pub skipped: u64,
    /// Records read past because no kernel writes them (too long, or numbered beyond
    /// `i64::MAX`); also counted in `malformed`.
    pub oversized: u64,
    /// Merged records cut at [`MERGED_MAX`] bytes.
    pub split: u64,
}

/// Reads records from a [`KmsgDevice`].
pub struct KmsgReader<D> {
    dev: D,
    buf: Vec<u8>,
    last_seq: Option<u64>,
    held: Option<KmsgRecord>,
    queued: Vec<KmsgEvent>,
    stats: ReaderStats,
}

impl<D: KmsgDevice> KmsgReader<D> {
    /// A reader at the device's current position (a fresh `/dev/kmsg` open starts at the oldest
    /// record).
    pub fn new(dev: D) -> KmsgReader<D> {
        KmsgReader {
            dev,
            buf: vec![0; RECORD_BUF],
            last_seq: None,
            held: None,
            queued: Vec::new(),
            stats: ReaderStats::default(),
        }
    }

    /// Positions at the end: only records logged from now on are read.
    pub fn tail(&mut self) -> io::Result<()> {
        self.dev.seek(KmsgSeek::End)
    }

    /// Positions at the oldest record held: the whole history is replayed.
    pub fn replay(&mut self) -> io::Result<()> {
        self.last_seq = None;
        self.dev.seek(KmsgSeek::Start)
    }

    /// Replays, skipping every record with a sequence number `<= seq`: the cursor a journal
    /// saved. Records after it that were overwritten meanwhile are reported as a gap.
    pub fn resume_after(&mut self, seq: u64) -> io::Result<()> {
        self.dev.seek(KmsgSeek::Start)?;
        self.last_seq = Some(seq);
        Ok(())
    }

    /// The sequence number of the last record delivered (the cursor to save).
    pub fn cursor(&self) -> Option<u64> {
        self.last_seq
    }

    /// Counters so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The next event, or `None` when nothing is ready (non-blocking device) or the source ended.
    pub fn next_event(&mut self) -> io::Result<Option<KmsgEvent>> {
        loop {
            if !self.queued.is_empty() {
                return Ok(Some(self.queued.remove(0)));
            }
            let n = match self.dev.read_record(&mut self.buf)? {
                KmsgRead::Record(n) => n,
                KmsgRead::Overrun => {
                    self.stats.overruns += 1;
                    continue;
                }
                KmsgRead::Oversized(bytes) => {
                    self.stats.oversized += 1;
                    self.stats.malformed += 1;
                    return Ok(Some(KmsgEvent::Malformed {
                        error: KmsgDecodeError::TooLong { bytes },
                        raw: String::new(),
                    }));
                }
                KmsgRead::WouldBlock | KmsgRead::Eof => {
                    // Nothing more now: a held fragment is as complete as it will get.
                    return Ok(self.held.take().map(|r| self.deliver(r)));
                }
            };
            let bytes = self.buf.get(..n).unwrap_or_default();
            let rec = match KmsgRecord::decode(bytes) {
                Ok(r) => r,
                Err(error) => {
                    self.stats.malformed += 1;
                    return Ok(Some(KmsgEvent::Malformed {
                        error,
                        raw: String::from_utf8_lossy(bytes).into_owned(),
                    }));
                }
            };
            if rec.seq > SEQ_MAX {
                self.stats.oversized += 1;
                self.stats.malformed += 1;
                return Ok(Some(KmsgEvent::Malformed {
                    error: KmsgDecodeError::SeqOutOfRange { seq: rec.seq },
                    raw: String::from_utf8_lossy(bytes).into_owned(),
                }));
            }
            if let Some(last) = self.last_seq {
                if rec.seq <= last {
                    self.stats.skipped += 1;
                    continue;
                }
                if rec.seq > last + 1 {
                    let (first, lost_last) = (last + 1, rec.seq - 1);
                    self.stats.lost += lost_last - first + 1;
                    self.queued.push(KmsgEvent::Gap {
                        first,
                        last: lost_last,
                    });
                }
            }
            self.last_seq = Some(rec.seq);
            for done in self.merge(rec) {
                let ev = self.deliver(done);
                self.queued.push(ev);
            }
        }
    }

    /// Joins continuation fragments; returns the records that are complete, in order.
    fn merge(&mut self, rec: KmsgRecord) -> Vec<KmsgRecord> {
        match (rec.flag, self.held.as_mut()) {
            (KmsgFlag::More, Some(h))
                if h.caller == rec.caller && h.text.len() + rec.text.len() <= MERGED_MAX =>
            {
                h.text.push_str(&rec.text);
                Vec::new()
            }
            (KmsgFlag::More, Some(h)) if h.caller == rec.caller => {
                // Past the bound: deliver what was merged, carry on from this fragment.
                self.stats.split += 1;
                self.held.replace(rec).into_iter().collect()
            }
            (KmsgFlag::Begin, _) => self.held.replace(rec).into_iter().collect(),
            _ => {
                let mut out: Vec<KmsgRecord> = self.held.take().into_iter().collect();
                out.push(rec);
                out
            }
        }
    }

    fn deliver(&mut self, rec: KmsgRecord) -> KmsgEvent {
        self.stats.records += 1;
        KmsgEvent::Record(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted device: each read pops the next outcome.
    struct Script(VecDeque<Result<String, KmsgRead>>);

    impl KmsgDevice for Script {
        fn read_record(&mut self, buf: &mut [u8]) -> io::Result<KmsgRead> {
            match self.0.pop_front() {
                None => Ok(KmsgRead::WouldBlock),
                Some(Err(r)) => Ok(r),
                Some(Ok(text)) => {
                    buf[..text.len()].copy_from_slice(text.as_bytes());
                    Ok(KmsgRead::Record(text.len()))
                }
            }
        }
        fn seek(&mut self, _: KmsgSeek) -> io::Result<()> {
            Ok(())
        }
    }

    fn rec(seq: u64, flag: char, text: &str) -> Result<String, KmsgRead> {
        Ok(format!("6,{seq},{seq}000,{flag};{text}\n"))
    }

    fn drain<D: KmsgDevice>(r: &mut KmsgReader<D>) -> Vec<KmsgEvent> {
        std::iter::from_fn(|| r.next_event().unwrap()).collect()
    }

    /// Issue 13: a record file with a record over 8 KiB, or a sequence number beyond i64::MAX,
    /// stopped the daemon for good.
    #[test]
    fn records_no_kernel_writes_are_counted_and_read_past() {
        let mut r = KmsgReader::new(Script(VecDeque::from([
            rec(1, '-', "a"),
            Err(KmsgRead::Oversized(100_000)),
            Ok(format!("6,{},1,-;huge\n", u64::MAX)),
            rec(2, '-', "b"),
        ])));
        let ev = drain(&mut r);
        assert!(matches!(&ev[0], KmsgEvent::Record(r) if r.seq == 1));
        assert!(matches!(
            &ev[1],
            KmsgEvent::Malformed {
                error: KmsgDecodeError::TooLong { bytes: 100_000 },
                ..
            }
        ));
        assert!(matches!(
            &ev[2],
            KmsgEvent::Malformed {
                error: KmsgDecodeError::SeqOutOfRange { .. },
                ..
            }
        ));
        assert!(matches!(&ev[3], KmsgEvent::Record(r) if r.seq == 2));
        let s = r.stats();
        assert_eq!((s.records, s.oversized, s.malformed, s.lost), (2, 2, 2, 0));
        assert_eq!(r.cursor(), Some(2));
    }

    /// Issue 13: `+` fragments were merged without bound.
    #[test]
    fn merging_fragments_is_bounded() {
        let chunk = "x".repeat(1000);
        let mut script = VecDeque::from([rec(1, 'c', &chunk)]);
        for seq in 2..=40 {
            script.push_back(rec(seq, '+', &chunk));
        }
        let mut r = KmsgReader::new(Script(script));
        let ev = drain(&mut r);
        let lens: Vec<usize> = ev
            .iter()
            .map(|e| match e {
                KmsgEvent::Record(r) => r.text.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(lens.iter().all(|&l| l <= MERGED_MAX), "{lens:?}");
        assert_eq!(lens.iter().sum::<usize>(), 40 * 1000, "nothing lost");
        assert_eq!(r.stats().split, 4);
    }

    #[test]
    fn a_sequence_jump_after_an_overrun_is_a_counted_gap() {
        let mut r = KmsgReader::new(Script(VecDeque::from([
            rec(1, '-', "a"),
            Err(KmsgRead::Overrun),
            rec(5, '-', "b"),
        ])));
        let ev = drain(&mut r);
        assert!(matches!(&ev[0], KmsgEvent::Record(r) if r.seq == 1));
        assert_eq!(ev[1], KmsgEvent::Gap { first: 2, last: 4 });
        assert!(matches!(&ev[2], KmsgEvent::Record(r) if r.seq == 5));
        let s = r.stats();
        assert_eq!((s.records, s.lost, s.overruns), (2, 3, 1));
    }

    #[test]
    fn resume_skips_what_was_seen() {
        let mut r = KmsgReader::new(Script(VecDeque::from([
            rec(7, '-', "old"),
            rec(8, '-', "old"),
            rec(9, '-', "new"),
        ])));
        r.resume_after(8).unwrap();
        let ev = drain(&mut r);
        assert_eq!(ev.len(), 1);
        assert!(matches!(&ev[0], KmsgEvent::Record(r) if r.seq == 9));
        assert_eq!(r.stats().skipped, 2);
        assert_eq!(r.cursor(), Some(9));
    }

    #[test]
    fn resume_reports_what_was_overwritten_meanwhile() {
        let mut r = KmsgReader::new(Script(VecDeque::from([rec(20, '-', "x")])));
        r.resume_after(10).unwrap();
        let ev = drain(&mut r);
        assert_eq!(
            ev[0],
            KmsgEvent::Gap {
                first: 11,
                last: 19
            }
        );
    }

    #[test]
    fn fragments_are_merged() {
        let mut r = KmsgReader::new(Script(VecDeque::from([
            rec(1, 'c', "abc"),
            rec(2, '+', "def"),
            rec(3, '-', "ghi"),
        ])));
        let texts: Vec<String> = drain(&mut r)
            .into_iter()
            .filter_map(|e| match e {
                KmsgEvent::Record(r) => Some(r.text),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["abcdef", "ghi"]);
    }

    #[test]
    fn malformed_records_are_reported_not_fatal() {
        let mut r = KmsgReader::new(Script(VecDeque::from([
            Ok("garbage\n".to_owned()),
            rec(1, '-', "ok"),
        ])));
        let ev = drain(&mut r);
        assert!(matches!(ev[0], KmsgEvent::Malformed { .. }));
        assert!(matches!(&ev[1], KmsgEvent::Record(_)));
        assert_eq!(r.stats().malformed, 1);
    }
}
