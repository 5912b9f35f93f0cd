//! Log-line framing: recognise which text form a line is in and strip its prefix.
//!
//! Forms (see [`LogFormat`]): raw `/dev/kmsg` records, `dmesg` (`[  123.456]`), `dmesg -T`,
//! `dmesg -H`, `dmesg -x`, syslog/kern.log (`Mon DD HH:MM:SS host kernel: [ts] ...`), journalctl
//! short-iso/RFC 3339, a bare `kernel:` prefix, and none. Detection is per line, because saved
//! logs are often concatenations.
//!
//! # Design
//! Hand-written byte checks, no regex: framing runs on every candidate line and every line that
//! may continue an open message, so it stays cheap and cannot panic on any input.

use vfguard_model::kmsg::{parse_header, KmsgHeader};
use vfguard_model::{LogFormat, TrustBasis};

/// Which forms to recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatHint {
    /// Every form, per line.
    #[default]
    Auto,
    /// Only kmsg records.
    Kmsg,
    /// Only `dmesg` forms (`[ts]`, `-T`, `-H`, `-x`).
    Dmesg,
    /// Only syslog forms.
    Syslog,
    /// Only journalctl forms (the same shapes as syslog).
    Journal,
}

/// A line with its log prefix removed.
#[derive(Debug, Clone)]
pub struct Framed<'a> {
    /// The form recognised.
    pub format: LogFormat,
    /// The kernel's text (for kmsg: still `\xNN`-escaped).
    pub body: &'a str,
    /// Seconds since boot, when the prefix carries it.
    pub timestamp: Option<f64>,
    /// Provenance as far as the prefix tells.
    pub trust: TrustBasis,
    /// The kmsg header, for kmsg records.
    pub kmsg: Option<KmsgHeader>,
}

impl<'a> Framed<'a> {
    fn new(format: LogFormat, body: &'a str, trust: TrustBasis) -> Framed<'a> {
        Framed {
            format,
            body,
            timestamp: None,
            trust,
            kmsg: None,
        }
    }
}

/// Frames one line (no trailing newline).
pub fn frame(line: &str, hint: FormatHint) -> Framed<'_> {
    let attempt = match hint {
        FormatHint::Auto => kmsg(line)
            .or_else(|| raw(line))
            .or_else(|| bracketed(line))
            .or_else(|| facility(line))
            .or_else(|| syslog(line))
            .or_else(|| kernel_tag(line)),
        FormatHint::Kmsg => kmsg(line),
        FormatHint::Dmesg => raw(line)
            .or_else(|| bracketed(line))
            .or_else(|| facility(line)),
        FormatHint::Syslog | FormatHint::Journal => syslog(line).or_else(|| kernel_tag(line)),
    };
    attempt.unwrap_or_else(|| Framed::new(LogFormat::Bare, line, TrustBasis::Unverified))
}

/// Whether a line is a kmsg dictionary line (` KEY=value`).
pub fn is_kmsg_dict_line(line: &[u8]) -> bool {
    match line.split_first() {
        Some((b' ', rest)) => {
            let key_len = rest
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
                .count();
            key_len > 0 && rest.get(key_len) == Some(&b'=')
        }
        _ => false,
    }
}

fn kmsg(line: &str) -> Option<Framed<'_>> {
    let first = *line.as_bytes().first()?;
    if !first.is_ascii_digit() {
        return None;
    }
    let semi = line.find(';')?;
    let header = parse_header(line.get(..semi)?.as_bytes()).ok()?;
    let body = line.get(semi + 1..)?;
    let trust = if header.facility == 0 {
        TrustBasis::KernelRecord
    } else {
        TrustBasis::UserFacility
    };
    let mut f = Framed::new(LogFormat::Kmsg, body, trust);
    // Precision loss is irrelevant: the timestamp is informational.
    #[allow(clippy::cast_precision_loss)]
    {
        f.timestamp = Some(header.ts_usec as f64 / 1e6);
    }
    f.kmsg = Some(header);
    Some(f)
}

/// `dmesg -r`: `<prio>` then, unless `-t`, the `[  123.456789]` stamp. The priority is the
/// kernel's `facility << 3 | level` (never above 2047): facility 0 is the kernel's; anything
/// else was written from userspace.
fn raw(line: &str) -> Option<Framed<'_>> {
    let rest = line.strip_prefix('<')?;
    let close = rest.find('>')?;
    let digits = rest.get(..close)?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prio: u32 = digits.parse().ok()?;
    let body = rest.get(close + 1..)?;
    let trust = if prio <= 7 {
        TrustBasis::KernelTag
    } else {
        TrustBasis::UserFacility
    };
    let mut f = match bracketed(body) {
        Some(b) if b.format == LogFormat::Dmesg => b,
        _ => Framed::new(LogFormat::DmesgRaw, body, trust),
    };
    f.format = LogFormat::DmesgRaw;
    f.trust = trust;
    Some(f)
}

/// `[  123.456789] `, `[Mon Jul  7 12:37:37 2025] `, `[Nov29 18:23] `, `[  +0.000001] `.
fn bracketed(line: &str) -> Option<Framed<'_>> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let inner = rest.get(..close)?;
    let body = rest.get(close + 1..)?;
    let body = body.strip_prefix(' ').unwrap_or(body);
    let t = inner.trim();
    if let Some(ts) = seconds(t) {
        let mut f = Framed::new(LogFormat::Dmesg, body, TrustBasis::Unverified);
        f.timestamp = Some(ts);
        return Some(f);
    }
    if t.starts_with('+') && seconds(t.get(1..)?).is_some() {
        return Some(Framed::new(
            LogFormat::DmesgHuman,
            body,
            TrustBasis::Unverified,
        ));
    }
    let b = t.as_bytes();
    // dmesg -T: "Mon Jul  7 12:37:37 2025"
    if b.len() >= 20 && is_weekday(b.get(..3)?) && b.get(3) == Some(&b' ') && is_month(b.get(4..7)?)
    {
        return Some(Framed::new(
            LogFormat::DmesgTime,
            body,
            TrustBasis::Unverified,
        ));
    }
    // dmesg -H: "Nov29 18:23" (or "Nov29 18:23:01")
    if b.len() >= 11
        && is_month(b.get(..3)?)
        && b.get(3..5)?
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b' ')
    {
        return Some(Framed::new(
            LogFormat::DmesgHuman,
            body,
            TrustBasis::Unverified,
        ));
    }
    None
}

fn seconds(t: &str) -> Option<f64> {
    let (int, frac) = t.split_once('.')?;
    if int.is_empty()
        || frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    t.parse().ok()
}

fn is_month(b: &[u8]) -> bool {
    matches!(
        b,
        b"Jan"
            | b"Feb"
            | b"Mar"
            | b"Apr"
            | b"May"
            | b"Jun"
            | b"Jul"
            | b"Aug"
            | b"Sep"
            | b"Oct"
            | b"Nov"
            | b"Dec"
    )
}

fn is_weekday(b: &[u8]) -> bool {
    matches!(
        b,
        b"Mon" | b"Tue" | b"Wed" | b"Thu" | b"Fri" | b"Sat" | b"Sun"
    )
}

/// `dmesg -x`: `kern  :err   : [  1.2] text`.
fn facility(line: &str) -> Option<Framed<'_>> {
    let (fac, rest) = line.split_once(':')?;
    let fac = fac.trim_end();
    const FACILITIES: [&str; 20] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
        "local7",
    ];
    if !FACILITIES.contains(&fac) {
        return None;
    }
    let (level, body) = rest.split_once(": ")?;
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
    ];
    if !LEVELS.contains(&level.trim_end()) {
        return None;
    }
    let trust = if fac == "kern" {
        TrustBasis::KernelTag
    } else {
        TrustBasis::UserFacility
    };
    let mut f = Framed::new(LogFormat::DmesgFacility, body, trust);
    if let Some(inner) = bracketed(body) {
        f.body = inner.body;
        f.timestamp = inner.timestamp;
    }
    Some(f)
}

/// `Mon DD HH:MM:SS[.frac] host tag[pid]: text` and `YYYY-MM-DDTHH:MM:SS... host tag: text`.
fn syslog(line: &str) -> Option<Framed<'_>> {
    let b = line.as_bytes();
    let (format, after_stamp) = if b.len() > 16 && is_month(b.get(..3)?) && b.get(3) == Some(&b' ')
    {
        // "Oct 10 12:14:39 " (day space-padded)
        let time = b.get(7..15)?;
        if b.get(6) != Some(&b' ') || time.get(2) != Some(&b':') || time.get(5) != Some(&b':') {
            return None;
        }
        let mut end = 15;
        if b.get(15) == Some(&b'.') {
            end = 16
                + b.get(16..)?
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
        }
        (LogFormat::Syslog, line.get(end..)?)
    } else if b.len() > 20
        && b.get(..4)?.iter().all(u8::is_ascii_digit)
        && b.get(4) == Some(&b'-')
        && b.get(10) == Some(&b'T')
    {
        let sp = line.find(' ')?;
        (LogFormat::Journal, line.get(sp..)?)
    } else {
        return None;
    };
    let rest = after_stamp.strip_prefix(' ')?;
    let (_host, rest) = rest.split_once(' ')?;
    let (tag, body) = rest.split_once(": ")?;
    let tag = tag.split('[').next().unwrap_or(tag);
    let trust = if tag == "kernel" {
        TrustBasis::KernelTag
    } else {
        TrustBasis::NotKernel
    };
    let mut f = Framed::new(format, body, trust);
    if let Some(inner) = bracketed(body) {
        if inner.format == LogFormat::Dmesg {
            f.body = inner.body;
            f.timestamp = inner.timestamp;
        }
    }
    Some(f)
}

fn kernel_tag(line: &str) -> Option<Framed<'_>> {
    let body = line.strip_prefix("kernel: ")?;
    let mut f = Framed::new(LogFormat::KernelTag, body, TrustBasis::KernelTag);
    if let Some(inner) = bracketed(body) {
        if inner.format == LogFormat::Dmesg {
            f.body = inner.body;
            f.timestamp = inner.timestamp;
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(line: &str) -> (LogFormat, &str, TrustBasis) {
        let f = frame(line, FormatHint::Auto);
        (f.format, f.body, f.trust)
    }

    #[test]
    fn recognises_every_form() {
        use LogFormat as F;
        use TrustBasis as T;
        let cases = [
            (
                "6,339,5140900,-;igb 0000:02:00.0: x",
                F::Kmsg,
                "igb 0000:02:00.0: x",
                T::KernelRecord,
            ),
            (
                "11,345,75509681,-;i40e 0000:3b:00.0: x",
                F::Kmsg,
                "i40e 0000:3b:00.0: x",
                T::UserFacility,
            ),
            ("[  123.456789] igb x", F::Dmesg, "igb x", T::Unverified),
            // dmesg -r, with and without -t: the priority tells the kernel's lines apart.
            (
                "<3>[  123.456789] igb x",
                F::DmesgRaw,
                "igb x",
                T::KernelTag,
            ),
            ("<4>igb x", F::DmesgRaw, "igb x", T::KernelTag),
            (
                "<12>[    5.000000] igb x",
                F::DmesgRaw,
                "igb x",
                T::UserFacility,
            ),
            ("<2051>igb x", F::DmesgRaw, "igb x", T::UserFacility),
            (
                "[Mon Jul  7 12:37:37 2025] iavf x",
                F::DmesgTime,
                "iavf x",
                T::Unverified,
            ),
            (
                "[  +0.000001] ixgbe x",
                F::DmesgHuman,
                "ixgbe x",
                T::Unverified,
            ),
            ("[ +9.188014] ice x", F::DmesgHuman, "ice x", T::Unverified),
            ("[Nov29 18:23] ice x", F::DmesgHuman, "ice x", T::Unverified),
            (
                "kern  :err   : [    1.000000] ice x",
                F::DmesgFacility,
                "ice x",
                T::KernelTag,
            ),
            (
                "user  :err   : [    1.000000] ice x",
                F::DmesgFacility,
                "ice x",
                T::UserFacility,
            ),
            (
                "Oct 10 12:14:39 vmsrv2 kernel: [128739.957486] igb x",
                F::Syslog,
                "igb x",
                T::KernelTag,
            ),
            (
                "Mar  5 14:21:58 h kernel: igb x",
                F::Syslog,
                "igb x",
                T::KernelTag,
            ),
            (
                "Mar  5 14:21:58 h evil[12]: igb x",
                F::Syslog,
                "igb x",
                T::NotKernel,
            ),
            (
                "2025-07-07T12:37:37+0000 host kernel: ice x",
                F::Journal,
                "ice x",
                T::KernelTag,
            ),
            (
                "2025-07-07T12:37:37.123456+00:00 host kernel: [ 1.5] ice x",
                F::Journal,
                "ice x",
                T::KernelTag,
            ),
            (
                "kernel: i40e 0000:3b:00.1: x",
                F::KernelTag,
                "i40e 0000:3b:00.1: x",
                T::KernelTag,
            ),
            (
                "i40e 0000:c2:00.0: x",
                F::Bare,
                "i40e 0000:c2:00.0: x",
                T::Unverified,
            ),
        ];
        for (line, format, b, trust) in cases {
            assert_eq!(body(line), (format, b, trust), "{line:?}");
        }
    }

    #[test]
    fn dmesg_timestamp_is_read() {
        let f = frame("[340246.523724] ixgbe x", FormatHint::Auto);
        assert_eq!(f.timestamp, Some(340_246.523_724));
    }

    #[test]
    fn forced_format_does_not_guess_others() {
        let f = frame("[  1.0] igb x", FormatHint::Kmsg);
        assert_eq!(f.format, LogFormat::Bare);
    }

    #[test]
    fn dict_lines() {
        assert!(is_kmsg_dict_line(b" SUBSYSTEM=pci"));
        assert!(is_kmsg_dict_line(b" DEVICE=+pci:0000:00:1d.0"));
        assert!(!is_kmsg_dict_line(b"  Tx Queue <5>"));
        assert!(!is_kmsg_dict_line(b"SUBSYSTEM=pci"));
    }
}
