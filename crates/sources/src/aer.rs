//! PCIe AER counters from sysfs (drivers/pci/pcie/aer.c `aer_stats_dev_attr`, ABI
//! sysfs-bus-pci-devices-aer): `aer_dev_correctable`, `aer_dev_nonfatal`, `aer_dev_fatal` hold one
//! `"<name> <count>"` line per named bit (`<array>_bit[N]` for unnamed ones) and a `TOTAL_ERR_*`
//! line; root ports add `aer_rootport_total_err_{cor,fatal,nonfatal}`.
//!
//! Counters are complete even when the log is rate-limited (they are bumped before the rate
//! check), so deltas between polls are the reliable signal. A counter that went down was reset
//! (device reset, driver rebind): the delta is then the new value, never negative.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vfguard_host::HostFs;
use vfguard_model::{AerCounters, Bdf};

/// A line of an AER counter file that is not `<name> <count>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: line {line}: expected \"<name> <count>\", got {text:?}")]
pub struct AerParseError {
    /// Which file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The line.
    pub text: String,
}

/// Parses one counter file into per-bit counts and its `TOTAL_ERR_*` value.
pub fn parse_counter_file(
    file: &str,
    text: &str,
) -> Result<(BTreeMap<String, u64>, Option<u64>), AerParseError> {
    let mut bits = BTreeMap::new();
    let mut total = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = || AerParseError {
            file: file.to_owned(),
            line: n + 1,
            text: line.to_owned(),
        };
        // Names are opaque and may hold spaces (the 4.19 ABI sample): the count is the last word.
        let (name, count) = line.rsplit_once(char::is_whitespace).ok_or_else(err)?;
        let count: u64 = count.parse().map_err(|_| err())?;
        let name = name.trim();
        if name.starts_with("TOTAL_ERR_") {
            total = Some(count);
        } else {
            bits.insert(name.to_owned(), count);
        }
    }
    Ok((bits, total))
}

/// Why a function's AER counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AerReadError {
    /// A counter file is not in the kernel's format.
    #[error(transparent)]
    Parse(#[from] AerParseError),
    /// File descriptors ran out (`EMFILE`, `ENFILE`): the files may well be there; ask again
    /// later rather than take the function for one without AER.
    #[error("{path}: {source}")]
    Exhausted {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Reads a function's AER counters; `None` when it has no AER capability (no files: many VFs).
/// A read that failed for want of a file descriptor is an error, never `None`: before, a host
/// out of descriptors took every function for one without AER, and stopped reading them.
pub fn read_counters(fs: &dyn HostFs, bdf: Bdf) -> Result<Option<AerCounters>, AerReadError> {
    let mut c = AerCounters::default();
    let mut any = false;
    for (name, bits, total) in [
        (
            "aer_dev_correctable",
            &mut c.correctable,
            &mut c.total_correctable,
        ),
        ("aer_dev_nonfatal", &mut c.nonfatal, &mut c.total_nonfatal),
        ("aer_dev_fatal", &mut c.fatal, &mut c.total_fatal),
    ] {
        let path = PathBuf::from(format!("/sys/bus/pci/devices/{bdf}/{name}"));
        let text = match fs.read(&path) {
            Ok(text) => text,
            Err(e) if vfguard_host::fs::is_fd_exhaustion(&e) => {
                return Err(AerReadError::Exhausted {
                    path: path.display().to_string(),
                    source: e,
                })
            }
            Err(_) => continue,
        };
        any = true;
        let (b, t) = parse_counter_file(&path.display().to_string(), &text)?;
        *total = t.unwrap_or_else(|| b.values().fold(0u64, |a, &v| a.saturating_add(v)));
        *bits = b;
    }
    Ok(any.then_some(c))
}

/// Root-port totals (`aer_rootport_total_err_{cor,nonfatal,fatal}`, `"%llu\n"` each): every
/// error message the port received, from any function below it. `None` when the function is not
/// a root port or RCEC.
pub fn read_rootport_totals(fs: &dyn HostFs, bdf: Bdf) -> Option<(u64, u64, u64)> {
    let read = |name: &str| -> Option<u64> {
        fs.read(&PathBuf::from(format!("/sys/bus/pci/devices/{bdf}/{name}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((
        read("aer_rootport_total_err_cor")?,
        read("aer_rootport_total_err_nonfatal")?,
        read("aer_rootport_total_err_fatal")?,
    ))
}

/// What changed between two readings of one function's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AerDelta {
    /// New correctable errors.
    pub correctable: u64,
    /// New non-fatal errors.
    pub nonfatal: u64,
    /// New fatal errors.
    pub fatal: u64,
    /// New errors per bit name (all three files).
    pub bits: BTreeMap<String, u64>,
    /// Some counter went down: the device's counters were reset in between.
    pub reset: bool,
}

impl AerDelta {
    /// Whether anything happened.
    pub fn is_empty(&self) -> bool {
        self.correctable == 0 && self.nonfatal == 0 && self.fatal == 0
    }
}

/// `cur - prev`, surviving resets: a counter below its previous value restarted from zero.
fn step(prev: u64, cur: u64, reset: &mut bool) -> u64 {
    if cur >= prev {
        cur - prev
    } else {
        *reset = true;
        cur
    }
}

/// The errors between two readings.
pub fn delta(prev: &AerCounters, cur: &AerCounters) -> AerDelta {
    let mut d = AerDelta::default();
    d.correctable = step(prev.total_correctable, cur.total_correctable, &mut d.reset);
    d.nonfatal = step(prev.total_nonfatal, cur.total_nonfatal, &mut d.reset);
    d.fatal = step(prev.total_fatal, cur.total_fatal, &mut d.reset);
    for (p, c) in [
        (&prev.correctable, &cur.correctable),
        (&prev.nonfatal, &cur.nonfatal),
        (&prev.fatal, &cur.fatal),
    ] {
        for (name, &now) in c {
            let before = p.get(name).copied().unwrap_or(0);
            let n = step(before, now, &mut d.reset);
            if n > 0 {
                *d.bits.entry(name.clone()).or_default() += n;
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_current_and_old_names() {
        let text = "RxErr 2\nBadTLP 0\nBadDLLP 1\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\nHeaderOF 0\ndev_cor_errs_bit[5] 3\nTOTAL_ERR_COR 6\n";
        let (bits, total) = parse_counter_file("aer_dev_correctable", text).unwrap();
        assert_eq!(total, Some(6));
        assert_eq!(bits["RxErr"], 2);
        assert_eq!(bits["dev_cor_errs_bit[5]"], 3);
        let (old, _) =
            parse_counter_file("x", "Receiver Error 2\nBad TLP 0\nTOTAL_ERR_COR 2\n").unwrap();
        assert_eq!(old["Receiver Error"], 2);
        let err = parse_counter_file("aer_dev_fatal", "Undefined 0\ngarbage\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    /// A host whose reads of files under `/sys` fail with this errno (or, for `None`, are
    /// not there).
    struct Failing(Option<i32>);

    impl HostFs for Failing {
        fn read(&self, _: &std::path::Path) -> std::io::Result<String> {
            Err(match self.0 {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::ErrorKind::NotFound.into(),
            })
        }
        fn read_link(&self, p: &std::path::Path) -> std::io::Result<PathBuf> {
            self.read(p).map(PathBuf::from)
        }
        fn list(&self, p: &std::path::Path) -> std::io::Result<Vec<String>> {
            self.read(p).map(|s| vec![s])
        }
        fn inode(&self, p: &std::path::Path) -> std::io::Result<u64> {
            self.read(p).map(|_| 0)
        }
        fn write(&self, p: &std::path::Path, _: &str) -> std::io::Result<()> {
            self.read(p).map(drop)
        }
    }

    #[test]
    fn a_function_is_without_aer_only_when_its_files_are_not_there() {
        let bdf: Bdf = "0000:3b:02.1".parse().unwrap();
        // No files (ENOENT), or files this process may not read (EACCES): no AER to follow.
        assert!(matches!(read_counters(&Failing(None), bdf), Ok(None)));
        assert!(matches!(read_counters(&Failing(Some(13)), bdf), Ok(None)));
        // Out of file descriptors (EMFILE, ENFILE): an error, never "no AER" (issue 13).
        for code in [24, 23] {
            let e = read_counters(&Failing(Some(code)), bdf).unwrap_err();
            assert!(matches!(e, AerReadError::Exhausted { .. }), "{e}");
            assert!(e.to_string().contains("aer_dev_correctable"), "{e}");
        }
    }

    fn counters(cor: u64, bit: u64) -> AerCounters {
        AerCounters {
            total_correctable: cor,
            correctable: BTreeMap::from([("RxErr".to_owned(), bit)]),
            ..AerCounters::default()
        }
    }

    #[test]
    fn a_reset_counter_counts_from_zero() {
        let d = delta(&counters(10, 10), &counters(3, 3));
        assert!(d.reset);
        assert_eq!((d.correctable, d.bits["RxErr"]), (3, 3));
        let d = delta(&counters(10, 10), &counters(14, 14));
        assert!(!d.reset);
        assert_eq!(d.correctable, 4);
    }

    #[test]
    fn reads_device_and_rootport_files_through_the_host_fs() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("sys/bus/pci/devices/0000:3a:00.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(
            dev.join("aer_dev_correctable"),
            "RxErr 4\nBadTLP 1\nTOTAL_ERR_COR 5\n",
        )
        .unwrap();
        std::fs::write(
            dev.join("aer_dev_fatal"),
            "Undefined 0\nTOTAL_ERR_FATAL 0\n",
        )
        .unwrap();
        for (f, v) in [("cor", 7), ("nonfatal", 1), ("fatal", 0)] {
            std::fs::write(
                dev.join(format!("aer_rootport_total_err_{f}")),
                format!("{v}\n"),
            )
            .unwrap();
        }
        let fs = vfguard_host::FsRoot::new(dir.path());
        let bdf: Bdf = "0000:3a:00.0".parse().unwrap();
        let c = read_counters(&fs, bdf).unwrap().unwrap();
        assert_eq!(
            (c.total_correctable, c.correctable["RxErr"], c.total_fatal),
            (5, 4, 0)
        );
        assert_eq!(read_rootport_totals(&fs, bdf), Some((7, 1, 0)));
        let none: Bdf = "0000:3b:02.0".parse().unwrap();
        assert_eq!(read_counters(&fs, none).unwrap(), None);
        assert_eq!(read_rootport_totals(&fs, none), None);
    }

    proptest! {
        #[test]
        fn deltas_are_never_negative_and_add_up_without_resets(a in any::<u64>(), b in any::<u64>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let d = delta(&counters(lo, lo), &counters(hi, hi));
            prop_assert_eq!(d.correctable, hi - lo);
            prop_assert!(!d.reset);
            let back = delta(&counters(hi, hi), &counters(lo, lo));
            prop_assert!(back.correctable <= lo);
            prop_assert_eq!(back.reset, hi != lo);
        }
    }
}
