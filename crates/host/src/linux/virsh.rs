//! VM control through `virsh` (libvirt's CLI): `virsh detach-device DOMAIN FILE --live` with a
//! `<hostdev>` fragment, and `virsh suspend DOMAIN`, each with a timeout.
//!
//! # Design
//! `virsh` rather than the `virt` crate: no libvirt development headers at build time, the same
//! binary runs on hosts without libvirt (it answers ENOENT there, and policy steps elsewhere),
//! and what it does is exactly what an operator would type.

use std::io::{self, Write};
use std::process::Command;
use std::time::Duration;

use vfguard_model::Bdf;

use super::process::run_bounded;
use crate::vmctl::VmControl;

/// libvirt through `virsh`.
#[derive(Debug, Clone)]
pub struct Virsh {
    /// The command (default `virsh`).
    pub program: String,
    /// libvirt URI (`qemu:///system`).
    pub uri: String,
    /// How long one call may take.
    pub timeout: Duration,
}

impl Default for Virsh {
    fn default() -> Virsh {
        Virsh {
            program: "virsh".into(),
            uri: "qemu:///system".into(),
            timeout: Duration::from_secs(20),
        }
    }
}

/// The `<hostdev>` fragment that names a PCI function to libvirt.
pub fn hostdev_xml(bdf: Bdf) -> String {
    format!(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/></source></hostdev>\n",
        bdf.segment(),
        bdf.bus(),
        bdf.device(),
        bdf.function()
    )
}

impl Virsh {
    fn run(&self, args: &[&str]) -> io::Result<()> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("-c").arg(&self.uri).args(args);
        let done = run_bounded(cmd, self.timeout)?;
        if done.status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "virsh {}: {}",
            args.join(" "),
            done.stderr.trim()
        )))
    }
}

impl VmControl for Virsh {
    fn detach(&self, domain: &str, bdf: Bdf) -> io::Result<()> {
        let mut f = tempfile_in_tmp()?;
        f.1.write_all(hostdev_xml(bdf).as_bytes())?;
        f.1.flush()?;
        let path = f.0.to_string_lossy().into_owned();
        let r = self.run(&["detach-device", domain, &path, "--live"]);
        let _ = std::fs::remove_file(&f.0);
        r
    }

    fn pause(&self, domain: &str) -> io::Result<()> {
        self.run(&["suspend", domain])
    }
}

fn tempfile_in_tmp() -> io::Result<(std::path::PathBuf, std::fs::File)> {
    let path = std::env::temp_dir().join(format!(
        "vfguard-hostdev-{}-{:?}.xml",
        std::process::id(),
        std::thread::current().id()
    ));
    let f = std::fs::File::create(&path)?;
    Ok((path, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostdev_fragment() {
        let x = hostdev_xml("0000:3b:02.1".parse().unwrap());
        assert!(x.contains("bus='0x3b' slot='0x02' function='0x1'"));
    }

    #[test]
    fn a_missing_virsh_is_an_error_not_a_hang() {
        let v = Virsh {
            program: "/nonexistent/virsh".into(),
            ..Virsh::default()
        };
        assert!(v.pause("vm").is_err());
    }
}
