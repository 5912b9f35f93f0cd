//! Scanning a whole saved log fast: a literal prefilter finds the few lines that can be driver
//! messages, and only those (and the lines that may continue them) are framed and classified.
//!
//! # Design
//! The input is fed in chunks that end on a line boundary ([`Scanner::feed`] says how much it
//! consumed; the caller keeps the rest). Over a chunk, one Aho-Corasick search for the catalog's
//! anchors skips everything else; newlines are counted with `memchr` to keep line numbers. While
//! an event is open, the next lines are read one by one so that continuation and detail lines
//! (which carry no anchor) are seen. Lines longer than [`MAX_LINE`] and lines that are not UTF-8
//! are counted and skipped, never fatal.

use std::borrow::Cow;

use memchr::{memchr, memrchr};
use vfguard_model::kmsg::unescape;
use vfguard_model::{FaultEvent, LogFormat};

use crate::catalog::Catalog;
use crate::classify::{Classifier, LogicalLine};
use crate::textfmt::{frame, is_kmsg_dict_line, FormatHint};

/// Lines longer than this cannot be kernel messages (a printk record is at most 1 KiB of text
/// plus prefix and dictionary) and are skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// A kmsg record's dictionary is gathered up to this many bytes (`CONSOLE_EXT_LOG_MAX`, the most
/// the kernel writes for a record); lines past it are read as lines of their own, so that a
/// stream of dictionary-like lines never makes the scanner hold on to its input.
pub const MAX_DICT: usize = 8192;

/// What a scan saw, for the summary and for operators who wonder what was skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Input lines read.
    pub lines: u64,
    /// Lines handed to the classifier (prefilter hits and their followers).
    pub examined: u64,
    /// Lines skipped for being longer than [`MAX_LINE`].
    pub skipped_long: u64,
    /// Examined lines skipped for not being UTF-8.
    pub skipped_invalid: u64,
    /// Events produced.
    pub events: u64,
}

/// A streaming scanner over a text log.
pub struct Scanner {
    cat: &'static Catalog,
    classifier: Classifier,
    hint: FormatHint,
    /// Number of the next line to be read (1-based).
    next_line: u64,
    stats: ScanStats,
    /// Inside an over-long line that began in an earlier chunk.
    in_long_line: bool,
}

impl Scanner {
    /// A scanner recognising the given log forms.
    pub fn new(hint: FormatHint) -> Scanner {
        Scanner {
            cat: Catalog::get(),
            classifier: Classifier::new(),
            hint,
            next_line: 1,
            stats: ScanStats::default(),
            in_long_line: false,
        }
    }

    /// What has been seen so far.
    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    /// Scans `buf`. Unless `eof`, only whole lines are consumed, and a kmsg record at the very end
    /// is left for the next call (its dictionary lines may follow). Returns the bytes consumed;
    /// the caller passes the rest again, followed by more input.
    pub fn feed(&mut self, buf: &[u8], eof: bool, out: &mut Vec<FaultEvent>) -> usize {
        let before = out.len();
        let mut pos = 0;
        if self.in_long_line {
            match memchr(b'\n', buf) {
                Some(nl) => {
                    self.in_long_line = false;
                    self.next_line += 1;
                    self.stats.lines += 1;
                    pos = nl + 1;
                }
                None => return buf.len(),
            }
        }
        let end = if eof {
            buf.len()
        } else {
            match memrchr(b'\n', buf.get(pos..).unwrap_or_default()) {
                Some(i) => pos + i + 1,
                None => {
                    if buf.len() - pos > MAX_LINE {
                        self.stats.skipped_long += 1;
                        self.in_long_line = true;
                        return buf.len();
                    }
                    return pos;
                }
            }
        };
        let data = buf.get(..end).unwrap_or_default();
        while pos < end {
            if self.classifier.is_pending() {
                match self.read_logical(data, pos, eof, out) {
                    Some(next) => pos = next,
                    None => break,
                }
                continue;
            }
            let rest = data.get(pos..).unwrap_or_default();
            let Some(m) = self.cat.prefilter.find(rest) else {
                self.count_lines(rest, eof);
                pos = end;
                break;
            };
            let hit = pos + m.start();
            let line_start =
                memrchr(b'\n', data.get(pos..hit).unwrap_or_default()).map_or(pos, |i| pos + i + 1);
            self.count_lines(data.get(pos..line_start).unwrap_or_default(), false);
            match self.read_logical(data, line_start, eof, out) {
                Some(next) => pos = next,
                None => {
                    pos = line_start;
                    break;
                }
            }
        }
        if eof {
            self.classifier.finish(out);
        }
        self.stats.events += (out.len() - before) as u64;
        pos
    }

    fn count_lines(&mut self, bytes: &[u8], eof: bool) {
        let mut n = bytecount::count(bytes, b'\n') as u64;
        if eof && bytes.last().is_some_and(|&b| b != b'\n') {
            n += 1;
        }
        self.next_line += n;
        self.stats.lines += n;
    }

    /// Reads the logical line at `start` (a text line, or a kmsg record with its dictionary),
    /// classifies it and returns where the next one starts. `None` when a kmsg record at the end
    /// of a non-final chunk may still have dictionary lines to come.
    fn read_logical(
        &mut self,
        data: &[u8],
        start: usize,
        eof: bool,
        out: &mut Vec<FaultEvent>,
    ) -> Option<usize> {
        let rest = data.get(start..)?;
        let (raw, mut next) = match memchr(b'\n', rest) {
            Some(i) => (rest.get(..i)?, start + i + 1),
            None => (rest, data.len()),
        };
        let first_line = self.next_line;
        let mut physical = 1u64;
        if raw.len() > MAX_LINE {
            self.stats.skipped_long += 1;
            self.advance(1);
            return Some(next);
        }
        let Ok(text) = std::str::from_utf8(trim_cr(raw)) else {
            self.stats.skipped_invalid += 1;
            self.advance(1);
            return Some(next);
        };
        let framed = frame(text, self.hint);
        let mut dict_device = None;
        if framed.format == LogFormat::Kmsg {
            // Gather the dictionary lines that belong to this record.
            loop {
                let tail = data.get(next..).unwrap_or_default();
                if tail.is_empty() {
                    if !eof {
                        return None;
                    }
                    break;
                }
                let (dl, after) = match memchr(b'\n', tail) {
                    Some(i) => (tail.get(..i).unwrap_or_default(), next + i + 1),
                    None => (tail, data.len()),
                };
                if !is_kmsg_dict_line(dl) || after - start > MAX_DICT {
                    break;
                }
                if let Some(v) = dl.strip_prefix(b" DEVICE=") {
                    dict_device = Some(Cow::Owned(unescape(v).into_owned()));
                }
                physical += 1;
                next = after;
            }
        }
        let text = if framed.format == LogFormat::Kmsg {
            unescape(framed.body.as_bytes())
        } else {
            Cow::Borrowed(framed.body)
        };
        let logical = LogicalLine {
            line: first_line,
            end_line: first_line + physical - 1,
            format: framed.format,
            trust: framed.trust,
            timestamp: framed.timestamp,
            seq: framed.kmsg.as_ref().map(|h| h.seq),
            dict_device,
            text,
        };
        self.stats.examined += 1;
        self.classifier.push(&logical, out);
        self.advance(physical);
        Some(next)
    }

    fn advance(&mut self, lines: u64) {
        self.next_line += lines;
        self.stats.lines += lines;
    }
}

fn trim_cr(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: a kmsg record followed by endless dictionary lines made the scanner ask for
    /// all of them before it could go on, so the caller kept every byte in memory.
    #[test]
    fn dictionary_lines_after_a_record_never_hold_the_input() {
        let mut s = Scanner::new(FormatHint::Auto);
        let mut out = Vec::new();
        let head = b"3,1,10,-;ixgbe 0000:08:00.0: Malicious event on VF 2 tx:4 rx:0\n".to_vec();
        let dict = b" SUBSYSTEM=pci\n".repeat(4096);
        let mut pending = head;
        for _ in 0..64 {
            pending.extend_from_slice(&dict);
            let used = s.feed(&pending, false, &mut out);
            pending.drain(..used);
            assert!(
                pending.len() < MAX_DICT + dict.len(),
                "{} bytes held",
                pending.len()
            );
        }
        s.feed(&pending, true, &mut out);
        assert_eq!(out.len(), 1, "the record still counts: {out:?}");
    }
}
