//! One `/dev/kmsg` record and its wire format (Documentation/ABI/testing/dev-kmsg).
//!
//! A record reads as `prio,seq,ts_usec,flags[,more...];text\n` followed by dictionary lines
//! ` KEY=value\n` (`SUBSYSTEM=`, `DEVICE=`). Every byte `< 0x20`, `>= 0x7f` or `\` in the text and
//! the values is written as `\xNN` by the kernel (`msg_add_ext_text()`), so an embedded newline
//! arrives as `\x0a` and a record never holds a raw newline before its dictionary.
//!
//! # Design
//! Decoding is pure and total: malformed input is a [`KmsgDecodeError`] naming what was wrong,
//! never a panic. Unknown header fields after the fourth are ignored, as the ABI asks.

use std::borrow::Cow;

/// A decoded kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Sequence number; 64-bit, consecutive, so a gap means records were lost.
    pub seq: u64,
    /// Monotonic timestamp in microseconds since boot.
    pub ts_usec: u64,
    /// Syslog facility (`prio >> 3`); 0 is the kernel. Userspace writes never get 0.
    pub facility: u8,
    /// Syslog level (`prio & 7`).
    pub level: u8,
    /// The record's flag: a whole line, or a fragment of one.
    pub flag: KmsgFlag,
    /// `caller=T<pid>|C<cpu>` when the kernel has CONFIG_PRINTK_CALLER.
    pub caller: Option<String>,
    /// The message text with `\xNN` escapes decoded; may contain `\n`.
    pub text: String,
    /// The `SUBSYSTEM=` dictionary value (e.g. `pci`).
    pub subsystem: Option<String>,
    /// The `DEVICE=` dictionary value (e.g. `+pci:0000:3b:00.0`, `n2`, `c4:67`).
    pub device: Option<String>,
}

/// Why bytes are not a valid kmsg record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsgDecodeError {
    /// No `;` ends the header.
    #[error("record header has no ';'")]
    NoHeaderEnd,
    /// A required header field is missing or not a number.
    #[error("record header field {field} is missing or invalid in {header:?}")]
    BadHeaderField {
        /// Which field (`prio`, `seq`, `ts_usec`, `flags`).
        field: &'static str,
        /// The header as read (lossy).
        header: String,
    },
    /// Longer than any kernel record (read past, not decoded).
    #[error("record of {bytes} bytes is longer than any kernel record")]
    TooLong {
        /// Its length.
        bytes: usize,
    },
    /// A sequence number beyond what a cursor can be journalled with.
    #[error("record sequence number {seq} is beyond i64::MAX")]
    SeqOutOfRange {
        /// The number.
        seq: u64,
    },
}

impl KmsgRecord {
    /// Decodes one record as returned by one `read()` of `/dev/kmsg` (trailing dictionary lines
    /// included).
    pub fn decode(bytes: &[u8]) -> Result<KmsgRecord, KmsgDecodeError> {
        let semi = memchr_byte(b';', bytes).ok_or(KmsgDecodeError::NoHeaderEnd)?;
        let (header, rest) = bytes.split_at(semi);
        let rest = rest.get(1..).unwrap_or_default();
        let hdr = parse_header(header)?;
        let (text, dict) = match memchr_byte(b'\n', rest) {
            Some(nl) => (
                rest.get(..nl).unwrap_or_default(),
                rest.get(nl + 1..).unwrap_or_default(),
            ),
            None => (rest, &[][..]),
        };
        let mut rec = KmsgRecord {
            seq: hdr.seq,
            ts_usec: hdr.ts_usec,
            facility: hdr.facility,
            level: hdr.level,
            flag: hdr.flag,
            caller: hdr.caller,
            text: unescape(text).into_owned(),
            subsystem: None,
            device: None,
        };
        for line in dict.split(|&b| b == b'\n') {
            let Some(kv) = line.strip_prefix(b" ") else {
                continue;
            };
            let Some(eq) = memchr_byte(b'=', kv) else {
                continue;
            };
            let (k, v) = kv.split_at(eq);
            let v = unescape(v.get(1..).unwrap_or_default()).into_owned();
            match k {
                b"SUBSYSTEM" => rec.subsystem = Some(v),
                b"DEVICE" => rec.device = Some(v),
                _ => {}
            }
        }
        Ok(rec)
    }

    /// The PCI address named by a `DEVICE=+pci:<bdf>` dictionary line, if any.
    pub fn pci_device(&self) -> Option<&str> {
        self.device.as_deref()?.strip_prefix("+pci:")
    }

    /// Encodes the record in the kernel's wire format (the inverse of [`KmsgRecord::decode`]).
    pub fn encode(&self) -> String {
        let mut out = format!(
            "{},{},{},{}",
            (u32::from(self.facility) << 3) | u32::from(self.level & 7),
            self.seq,
            self.ts_usec,
            match self.flag {
                KmsgFlag::Whole => '-',
                KmsgFlag::Begin => 'c',
                KmsgFlag::More => '+',
            }
        );
        if let Some(c) = &self.caller {
            out.push_str(",caller=");
            out.push_str(c);
        }
        out.push(';');
        escape_into(&self.text, &mut out);
        out.push('\n');
        for (k, v) in [("SUBSYSTEM", &self.subsystem), ("DEVICE", &self.device)] {
            if let Some(v) = v {
                out.push(' ');
                out.push_str(k);
                out.push('=');
                escape_into(v, &mut out);
                out.push('\n');
            }
        }
        out
    }
}

/// A record's flag (`-`, `c`, `+` in the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KmsgFlag {
    /// `-`: a whole line.
    #[default]
    Whole,
    /// `c`: the first fragment of a line continued by the next record(s).
    Begin,
    /// `+`: a fragment continuing the previous record.
    More,
}

/// The fields of a record header (`prio,seq,ts_usec,flags[,caller=..][,...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgHeader {
    /// Sequence number.
    pub seq: u64,
    /// Timestamp in microseconds.
    pub ts_usec: u64,
    /// Facility (`prio >> 3`).
    pub facility: u8,
    /// Level (`prio & 7`).
    pub level: u8,
    /// The record's flag.
    pub flag: KmsgFlag,
    /// The caller field, when present.
    pub caller: Option<String>,
}

/// Parses the header part of a record, i.e. the bytes before `;`.
pub fn parse_header(header: &[u8]) -> Result<KmsgHeader, KmsgDecodeError> {
    let bad = |field| KmsgDecodeError::BadHeaderField {
        field,
        header: String::from_utf8_lossy(header).into_owned(),
    };
    let mut fields = header.split(|&b| b == b',');
    let prio: u32 = num(fields.next()).ok_or_else(|| bad("prio"))?;
    let seq: u64 = num(fields.next()).ok_or_else(|| bad("seq"))?;
    let ts_usec: u64 = num(fields.next()).ok_or_else(|| bad("ts_usec"))?;
    let flags = fields.next().ok_or_else(|| bad("flags"))?;
    let flag = match flags.first() {
        Some(b'c') => KmsgFlag::Begin,
        Some(b'+') => KmsgFlag::More,
        _ => KmsgFlag::Whole,
    };
    let mut caller = None;
    for extra in fields {
        if let Some(c) = extra.strip_prefix(b"caller=") {
            caller = Some(String::from_utf8_lossy(c).into_owned());
        }
    }
    // The kernel prints `facility << 3 | level` with an 8-bit facility: never above 2047. A
    // larger number did not come from a kernel record; taken modulo 256 its facility could
    // read as 0, the kernel's, and be trusted.
    if prio > 2047 {
        return Err(bad("prio"));
    }
    let facility = u8::try_from(prio >> 3).map_err(|_| bad("prio"))?;
    let level = u8::try_from(prio & 7).map_err(|_| bad("prio"))?;
    Ok(KmsgHeader {
        seq,
        ts_usec,
        facility,
        level,
        flag,
        caller,
    })
}

fn num<T: std::str::FromStr>(field: Option<&[u8]>) -> Option<T> {
    let f = field?;
    if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(f).ok()?.parse().ok()
}

fn memchr_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Decodes the kernel's `\xNN` escapes; other bytes pass through (invalid UTF-8 is replaced).
pub fn unescape(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\\' && raw.get(i + 1) == Some(&b'x') {
            let hex = raw
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn escape_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        if !(b' '..127).contains(&b) || b == b'\\' {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(char::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_the_abi_example() {
        let raw = b"7,160,424069,-;pci_root PNP0A03:00: host bridge window [io  0x0000-0x0cf7] (ignored)\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A03:00\n";
        let r = KmsgRecord::decode(raw).unwrap();
        assert_eq!(
            (r.facility, r.level, r.seq, r.ts_usec, r.flag),
            (0, 7, 160, 424069, KmsgFlag::Whole)
        );
        assert_eq!(r.subsystem.as_deref(), Some("acpi"));
        assert_eq!(r.device.as_deref(), Some("+acpi:PNP0A03:00"));
        assert!(r.text.ends_with("(ignored)"));
    }

    /// Issue 13: a priority of 2048 or more wrapped the facility to 0 (the kernel's).
    #[test]
    fn a_priority_no_kernel_prints_is_refused_not_wrapped_to_the_kernels_facility() {
        for prio in [2048u32, 2054, 4096, u32::MAX] {
            let raw = format!("{prio},1,10,-;i40e 0000:3b:00.0: forged\n");
            assert!(
                matches!(
                    KmsgRecord::decode(raw.as_bytes()),
                    Err(KmsgDecodeError::BadHeaderField { field: "prio", .. })
                ),
                "{prio}"
            );
        }
        let r = KmsgRecord::decode(b"2047,1,10,-;x\n").unwrap();
        assert_eq!((r.facility, r.level), (255, 7));
    }

    #[test]
    fn unescapes_embedded_newlines_and_ignores_unknown_fields() {
        let raw = b"4,9,10,c,caller=T42,future=1;igb 0000:02:00.0: VF 0 attempted\\x0aReload\n";
        let r = KmsgRecord::decode(raw).unwrap();
        assert_eq!(r.text, "igb 0000:02:00.0: VF 0 attempted\nReload");
        assert_eq!(r.caller.as_deref(), Some("T42"));
        assert_eq!(r.flag, KmsgFlag::Begin);
    }

    #[test]
    fn userspace_priority_has_nonzero_facility() {
        let r = KmsgRecord::decode(b"11,345,75509681,-;i40e 0000:3b:00.0: forged\n").unwrap();
        assert_eq!((r.facility, r.level), (1, 3));
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(
            KmsgRecord::decode(b"no header"),
            Err(KmsgDecodeError::NoHeaderEnd)
        );
        assert!(KmsgRecord::decode(b"x,1,2,-;t").is_err());
        assert!(KmsgRecord::decode(b"6,1;t").is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = KmsgRecord::decode(&bytes);
        }

        #[test]
        fn encode_then_decode_round_trips(prio in 0u32..2048, seq in any::<u64>(), ts in any::<u64>(),
                                           text in "\\PC{0,60}", dev in proptest::option::of("[+a-z0-9:.]{1,20}")) {
            let rec = KmsgRecord {
                seq, ts_usec: ts,
                facility: u8::try_from(prio >> 3).unwrap(), level: u8::try_from(prio & 7).unwrap(),
                flag: KmsgFlag::Whole, caller: None, text, subsystem: dev.as_ref().map(|_| "pci".to_owned()), device: dev,
            };
            prop_assert_eq!(KmsgRecord::decode(rec.encode().as_bytes()).unwrap(), rec);
        }
    }
}
