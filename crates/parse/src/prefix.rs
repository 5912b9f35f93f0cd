//! The device prefix the kernel puts before a driver's message.
//!
//! `dev_printk` emits `"<driver> <device>: <msg>"`; `netdev_printk` emits
//! `"<driver> <device> <netdev>[ (<state>)]: <msg>"` on the parent device (drivers/base/core.c,
//! net/core/dev.c). `<driver>` is the *bound* driver, so a VF given to a VM prints as `vfio-pci`.
//!
//! mlx5 adds an origin of its own after the device prefix: `mlx5_core_err`/`_warn`/`_err_rl` and
//! `mlx5_log` (drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.h) print
//! `"%s:%d:(pid %d): " fmt` with `__func__, __LINE__, current->pid`, so the line reads
//! `mlx5_core 0000:08:00.0: wait_func:1155:(pid 1967079): TEARDOWN_HCA(0x103) timeout...`. The
//! origin is split off ([`DevPrefix::origin`]) so that the catalog matches the format after it.

use vfguard_model::Bdf;

/// A parsed device prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPrefix<'a> {
    /// The bound driver's name.
    pub driver: &'a str,
    /// The device name (a PCI address for PCI devices).
    pub device: &'a str,
    /// The device name as a PCI address, when it is one.
    pub bdf: Option<Bdf>,
    /// The netdev name, for `netdev_*` messages.
    pub netdev: Option<&'a str>,
    /// The `function:line:(pid N)` origin mlx5's macros print before their message, if any.
    pub origin: Option<&'a str>,
    /// What follows the prefix (and the origin).
    pub message: &'a str,
}

impl DevPrefix<'_> {
    /// The origin's `function:line`, without the pid (which changes from print to print).
    pub fn origin_site(&self) -> Option<&str> {
        self.origin
            .and_then(|o| o.split_once(":(pid "))
            .map(|(site, _)| site)
    }
}

/// Splits `body` into its device prefix and message, if it has one.
pub fn split(body: &str) -> Option<DevPrefix<'_>> {
    let (driver, rest) = body.split_once(' ')?;
    if driver.is_empty()
        || !driver
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return None;
    }
    let dev_end = rest.find(' ').unwrap_or(rest.len());
    let token = rest.get(..dev_end)?;
    if let Some(device) = token.strip_suffix(':') {
        let (origin, message) = split_origin(rest.get(dev_end + 1..).unwrap_or(""));
        return looks_like_device(device).then(|| DevPrefix {
            driver,
            device,
            bdf: device.parse().ok(),
            netdev: None,
            origin,
            message,
        });
    }
    // netdev_*: "<driver> <device> <netdev>[ (state)]: <message>"
    let device = token;
    if !looks_like_device(device) {
        return None;
    }
    let after = rest.get(dev_end + 1..)?;
    let colon = after.find(": ")?;
    let nd = after.get(..colon)?;
    let name = match nd.find(" (") {
        Some(p) if nd.ends_with(')') && !nd.starts_with('(') => nd.get(..p)?,
        _ => nd,
    };
    let valid = name == "(unnamed net_device)"
        || (!name.is_empty() && name.len() <= 15 && !name.contains(' ') && !name.contains('/'));
    if !valid {
        return None;
    }
    let (origin, message) = split_origin(after.get(colon + 2..)?);
    Some(DevPrefix {
        driver,
        device,
        bdf: device.parse().ok(),
        netdev: Some(name),
        origin,
        message,
    })
}

/// Longest `function:line:(pid N)` origin taken for one (kernel function names are short).
const MAX_ORIGIN: usize = 96;

/// Splits mlx5's `"%s:%d:(pid %d): "` origin (`__func__`, `__LINE__`, `current->pid`) off a
/// message, so that the catalog sees the format the driver wrote. Anything else is left whole.
fn split_origin(message: &str) -> (Option<&str>, &str) {
    let whole = (None, message);
    let Some(at) = message
        .get(..MAX_ORIGIN.min(message.len()))
        .and_then(|h| h.find(":(pid "))
    else {
        // The window may cut a multi-byte character: then there is no ASCII origin either.
        return whole;
    };
    let Some((func, line)) = message.get(..at).and_then(|site| site.rsplit_once(':')) else {
        return whole;
    };
    let ident = !func.is_empty() && func.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let number = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !ident || !number(line) {
        return whole;
    }
    let Some((pid, rest)) = message.get(at + 6..).and_then(|r| r.split_once("): ")) else {
        return whole;
    };
    if !number(pid) {
        return whole;
    }
    let origin_end = at + 6 + pid.len() + 1;
    (message.get(..origin_end), rest)
}

/// A device name has a digit and a `.` or `:` (PCI `0000:3b:00.0`, platform `arm-smmu-v3.0.auto`).
fn looks_like_device(name: &str) -> bool {
    name.bytes().any(|b| b.is_ascii_digit()) && name.bytes().any(|b| b == b'.' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_and_netdev_forms() {
        let p = split("ixgbe 0000:08:00.1 ens3f1: 1934439 Spoofed packets detected").unwrap();
        assert_eq!(
            (p.driver, p.netdev, p.message),
            ("ixgbe", Some("ens3f1"), "1934439 Spoofed packets detected")
        );
        assert_eq!(p.bdf.unwrap().to_string(), "0000:08:00.1");
        let p =
            split("pcieport 0000:00:1d.0: AER: Corrected error received: 0000:07:00.0").unwrap();
        assert_eq!(
            (p.driver, p.netdev, p.message),
            (
                "pcieport",
                None,
                "AER: Corrected error received: 0000:07:00.0"
            )
        );
        let p =
            split("i40e 0000:3b:00.0 eth0 (unregistering): tx_timeout recovery level 1, txqueue 2")
                .unwrap();
        assert_eq!(p.netdev, Some("eth0"));
        let p = split("arm-smmu-v3 arm-smmu-v3.0.auto: event 0x10 received:").unwrap();
        assert_eq!((p.device, p.bdf), ("arm-smmu-v3.0.auto", None));
    }

    #[test]
    fn mlx5_origin_is_split_off() {
        let p = split("mlx5_core 0000:56:00.0: wait_func:1189:(pid 72061): ACCESS_REG(0x805) timeout. Will cause a leak of a command resource").unwrap();
        assert_eq!(p.origin, Some("wait_func:1189:(pid 72061)"));
        assert_eq!(p.origin_site(), Some("wait_func:1189"));
        assert_eq!(
            p.message,
            "ACCESS_REG(0x805) timeout. Will cause a leak of a command resource"
        );
        // Not an origin: left whole.
        for msg in [
            "mlx5_core 0000:56:00.0: firmware version: 14.98.3410",
            "mlx5_core 0000:56:00.0: f:x:(pid 1): y",
            "mlx5_core 0000:56:00.0: f:1:(pid x): y",
            "mlx5_core 0000:56:00.0: bad func:1:(pid 1): y",
        ] {
            let p = split(msg).unwrap();
            assert_eq!(p.origin, None, "{msg}");
            assert!(msg.ends_with(p.message), "{msg}");
        }
    }

    #[test]
    fn lines_without_a_device_prefix() {
        for body in [
            "NETDEV WATCHDOG: eth0 (iavf): transmit queue 3 timed out",
            "DMAR: [DMA Read NO_PASID] Request device [3b:02.1] fault addr 0x1",
            "ixgbevf: probe of 0000:01:10.0 failed with error -15",
            "(0000:04:00.0): E-Switch: SRIOV enabled: active vports(5)",
            "Reload the VF driver to resume operations",
            "",
        ] {
            assert_eq!(split(body), None, "{body:?}");
        }
    }
}
