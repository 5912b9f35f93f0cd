//! What a VMM's command line says: its name, UUID and the PCI functions it was given.
//!
//! QEMU takes `-device vfio-pci,host=0000:3b:02.1,id=hostdev0` (also `host=3b:02.1` and
//! `sysfsdev=/sys/bus/pci/devices/0000:3b:02.1`); recent libvirt writes the JSON form
//! `-device {"driver":"vfio-pci","host":"0000:06:00.0","id":"hostdev0",...}`. The name comes from
//! `-name guest=NAME,debug-threads=on` (libvirt) or `-name NAME`, the UUID from `-uuid`.

use vfguard_model::Bdf;

/// The parts of a VMM command line that identify a VM and its devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmCmdline {
    /// `-name`.
    pub name: Option<String>,
    /// `-uuid`.
    pub uuid: Option<String>,
    /// Functions given with `-device vfio-pci,...`.
    pub hostdevs: Vec<Bdf>,
}

/// Parses a NUL-separated `/proc/<pid>/cmdline`; `None` unless it is a QEMU process.
pub fn parse_cmdline(raw: &[u8]) -> Option<VmCmdline> {
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let argv0 = args.first()?;
    let exe = argv0.rsplit('/').next().unwrap_or(argv0);
    if !exe.contains("qemu") {
        return None;
    }
    let mut out = VmCmdline::default();
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let flag = arg.trim_start_matches('-');
        if !arg.starts_with('-') {
            continue;
        }
        match flag {
            "name" => out.name = it.next().map(|v| vm_name(v)),
            "uuid" => out.uuid = it.next().cloned(),
            "device" => {
                if let Some(bdf) = it.next().and_then(|v| vfio_host(v)) {
                    out.hostdevs.push(bdf);
                }
            }
            _ => {}
        }
    }
    Some(out)
}

fn vm_name(value: &str) -> String {
    let mut first = None;
    for part in value.split(',') {
        if let Some(n) = part.strip_prefix("guest=") {
            return n.to_owned();
        }
        if first.is_none() && !part.contains('=') {
            first = Some(part.to_owned());
        }
    }
    first.unwrap_or_else(|| value.to_owned())
}

/// The host function of a `-device` value, when it is a vfio-pci device.
fn vfio_host(value: &str) -> Option<Bdf> {
    if value.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(value).ok()?;
        let driver = v.get("driver")?.as_str()?;
        if !driver.contains("vfio-pci") {
            return None;
        }
        if let Some(h) = v.get("host").and_then(|h| h.as_str()) {
            return h.parse().ok();
        }
        return v
            .get("sysfsdev")
            .and_then(|s| s.as_str())
            .and_then(sysfsdev_bdf);
    }
    let mut parts = value.split(',');
    let driver = parts.next()?;
    let driver = driver.strip_prefix("driver=").unwrap_or(driver);
    if !driver.contains("vfio-pci") {
        return None;
    }
    for p in parts {
        if let Some(h) = p.strip_prefix("host=") {
            return h.parse().ok();
        }
        if let Some(s) = p.strip_prefix("sysfsdev=") {
            return sysfsdev_bdf(s);
        }
    }
    None
}

fn sysfsdev_bdf(path: &str) -> Option<Bdf> {
    path.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        args.join("\0").into_bytes()
    }

    #[test]
    fn key_value_json_and_sysfsdev_forms() {
        let c = parse_cmdline(&cmd(&[
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=web-7,debug-threads=on",
            "-uuid",
            "5b2c6f1e-0d1a-4b8e-9d1e-2b7f3c1d9a01",
            "-device",
            "vfio-pci,host=0000:3b:02.1,id=hostdev0,bus=pci.4,addr=0x0",
            "-device",
            r#"{"driver":"vfio-pci","host":"0000:3b:02.2","id":"hostdev1","bus":"pci.5","addr":"0x0"}"#,
            "-device",
            "vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:3b:02.3",
            "-device",
            "vfio-pci,host=3b:02.4",
            "-device",
            "virtio-net-pci,netdev=n0",
        ]))
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("web-7"));
        assert_eq!(
            c.uuid.as_deref(),
            Some("5b2c6f1e-0d1a-4b8e-9d1e-2b7f3c1d9a01")
        );
        let hosts: Vec<String> = c.hostdevs.iter().map(ToString::to_string).collect();
        assert_eq!(
            hosts,
            [
                "0000:3b:02.1",
                "0000:3b:02.2",
                "0000:3b:02.3",
                "0000:3b:02.4"
            ]
        );
    }

    #[test]
    fn plain_name_and_non_qemu_processes() {
        let c = parse_cmdline(&cmd(&["qemu-kvm", "-name", "db1", "-m", "4096"])).unwrap();
        assert_eq!(c.name.as_deref(), Some("db1"));
        assert!(parse_cmdline(&cmd(&["/usr/sbin/sshd", "-D"])).is_none());
        assert!(parse_cmdline(b"").is_none());
        let junk = parse_cmdline(&cmd(&["qemu", "-device", "{not json", "-name"])).unwrap();
        assert!(junk.hostdevs.is_empty());
    }
}
