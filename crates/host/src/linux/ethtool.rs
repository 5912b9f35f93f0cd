//! The adapter's firmware version, from `ethtool -i NETDEV` (the driver info every NIC driver
//! answers: `firmware-version: 9.20 0x8000d8c5 1.3353.0`).
//!
//! # Design
//! Neither rtnetlink nor the ethtool netlink family carries the driver info; only the
//! `SIOCETHTOOL` ioctl does, and this workspace allows no `unsafe` code. `ethtool` (installed
//! on nearly every server) asks it for us, once per netdev per [`Ethtool::keep`]: a firmware
//! changes only with a flash and a driver reload. Without `ethtool`, the version is unknown
//! (`None`), never an error: the fleet then groups faults by driver and class alone.

use std::collections::HashMap;
use std::io;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::process::run_bounded;

/// `ethtool -i`, its answers kept a while.
#[derive(Debug)]
pub struct Ethtool {
    /// The command (default `ethtool`).
    pub program: String,
    /// How long one call may take.
    pub timeout: Duration,
    /// How long an answer is kept.
    pub keep: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl Default for Ethtool {
    fn default() -> Ethtool {
        Ethtool::new("ethtool")
    }
}

impl Ethtool {
    /// Through `program`, with the default timeout (2 s) and keep (10 min).
    pub fn new(program: &str) -> Ethtool {
        Ethtool {
            program: program.to_owned(),
            timeout: Duration::from_secs(2),
            keep: Duration::from_secs(600),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The firmware version `netdev`'s driver reports; `None` when it reports none or
    /// `ethtool` is not installed.
    pub fn firmware(&self, netdev: &str) -> io::Result<Option<String>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, v)) = cache.get(netdev) {
                if at.elapsed() < self.keep {
                    return Ok(v.clone());
                }
            }
        }
        let v = match self.run(netdev) {
            Ok(text) => firmware_of(&text),
            // No ethtool, or a driver without driver info: unknown, and asked again only
            // when the answer is no longer kept.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(netdev.to_owned(), (Instant::now(), v.clone()));
        }
        Ok(v)
    }

    fn run(&self, netdev: &str) -> io::Result<String> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("-i").arg(netdev);
        let done = run_bounded(cmd, self.timeout)?;
        if done.status.success() {
            return Ok(done.stdout);
        }
        // `ethtool -i` fails for a netdev gone, or a driver without driver info.
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
}

/// The `firmware-version:` of `ethtool -i`'s output; `None` when absent, empty or `N/A`.
pub fn firmware_of(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("firmware-version:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "N/A")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// What `ethtool -i` prints for an i40e port (ethtool 6.1).
    const I40E: &str = "driver: i40e\nversion: 6.1.0-18-amd64\nfirmware-version: 9.20 0x8000d8c5 1.3353.0\nexpansion-rom-version: \nbus-info: 0000:3b:00.0\nsupports-statistics: yes\nsupports-test: yes\nsupports-eeprom-access: yes\nsupports-register-dump: yes\nsupports-priv-flags: yes\n";

    #[test]
    fn the_firmware_line_is_read_and_an_empty_one_is_none() {
        assert_eq!(
            firmware_of(I40E).as_deref(),
            Some("9.20 0x8000d8c5 1.3353.0")
        );
        assert_eq!(firmware_of("driver: veth\nfirmware-version: \n"), None);
        assert_eq!(firmware_of("driver: tun\nfirmware-version: N/A\n"), None);
        assert_eq!(firmware_of(""), None);
    }

    /// A stand-in `ethtool` that counts its calls in `dir/calls` and prints `out`.
    fn fake(dir: &std::path::Path, body: &str) -> Ethtool {
        let p = dir.join("ethtool");
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho x >> {}/calls\n{body}\n", dir.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Ethtool::new(p.to_str().unwrap())
    }

    #[test]
    fn answers_are_kept_and_a_missing_ethtool_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = fake(
            dir.path(),
            &format!("printf '{}'", I40E.replace('\n', "\\n")),
        );
        assert_eq!(
            e.firmware("ens1f0").unwrap().as_deref(),
            Some("9.20 0x8000d8c5 1.3353.0")
        );
        assert_eq!(
            e.firmware("ens1f0").unwrap().as_deref(),
            Some("9.20 0x8000d8c5 1.3353.0")
        );
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(
            calls.lines().count(),
            1,
            "the second answer came from the cache"
        );
        let none = Ethtool::new("/nonexistent/ethtool");
        assert_eq!(none.firmware("ens1f0").unwrap(), None);
    }

    #[test]
    fn a_failing_ethtool_is_no_version_and_a_stuck_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = fake(dir.path(), "exit 75");
        assert_eq!(e.firmware("gone0").unwrap(), None);
        let mut e = fake(dir.path(), "sleep 5");
        e.timeout = Duration::from_millis(100);
        let err = e.firmware("ens1f0").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
    }
}
