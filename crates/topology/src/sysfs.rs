//! PCI functions as sysfs shows them (Documentation/ABI/testing/sysfs-bus-pci, drivers/pci/iov.c).
//!
//! VFs are found through the PF's `virtfnN` links (N is the driver's VF index) and `physfn`,
//! never by offset/stride arithmetic. Anything unreadable becomes a warning and a hole in the
//! record, never an error for the whole host.

use std::path::{Path, PathBuf};

use vfguard_host::HostFs;
use vfguard_model::Bdf;

/// `/sys/bus/pci/devices`: one entry per PCI function.
pub(crate) const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// One PCI function's sysfs attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciFunction {
    /// Address.
    pub bdf: Option<Bdf>,
    /// `class` (`0x020000`).
    pub class: Option<u32>,
    /// `vendor` without `0x`.
    pub vendor: Option<String>,
    /// `device` without `0x`.
    pub device: Option<String>,
    /// Bound driver.
    pub driver: Option<String>,
    /// `sriov_totalvfs`, when present (an SR-IOV PF).
    pub totalvfs: Option<u32>,
    /// `sriov_numvfs`.
    pub numvfs: Option<u32>,
    /// `virtfnN` → VF address.
    pub virtfns: Vec<(u16, Bdf)>,
    /// `physfn` → PF address (for a VF).
    pub physfn: Option<Bdf>,
    /// `numa_node` (-1 means none).
    pub numa_node: Option<i32>,
    /// `reset_method`.
    pub reset_method: Option<String>,
    /// AER counter files present.
    pub aer: bool,
    /// IOMMU group number.
    pub iommu_group: Option<u32>,
    /// The IOMMU unit translating its DMA: the last component of the `iommu` link
    /// (`../../virtual/iommu/dmar1` → `dmar1`; drivers/iommu/iommu-sysfs.c links each device to
    /// its unit's class device).
    pub iommu_unit: Option<String>,
    /// Netdevs in the reader's namespace.
    pub netdevs: Vec<String>,
    /// vfio cdev (`vfio-dev/vfioN`).
    pub vfio_cdev: Option<String>,
}

/// Reads sysfs through a [`HostFs`], collecting warnings.
pub struct SysfsReader<'a> {
    fs: &'a dyn HostFs,
    /// What could not be read.
    pub warnings: Vec<String>,
}

impl<'a> SysfsReader<'a> {
    /// A reader over `fs`.
    pub fn new(fs: &'a dyn HostFs) -> SysfsReader<'a> {
        SysfsReader {
            fs,
            warnings: Vec::new(),
        }
    }

    /// Every PCI function's address, sorted; a directory that cannot be listed is a warning and
    /// no function (see [`SysfsReader::try_list`] to tell the two apart).
    pub fn list(&mut self) -> Vec<Bdf> {
        self.try_list().unwrap_or_else(|e| {
            self.warnings.push(format!("{PCI_DEVICES}: {e}"));
            Vec::new()
        })
    }

    /// Every PCI function's address, sorted; `Err` when the directory exists but cannot be
    /// listed (`EMFILE`, `EIO`...): the host is not known to have no functions. A host without
    /// the directory (no PCI bus, a fixture tree without one) has none, with a warning.
    pub fn try_list(&mut self) -> std::io::Result<Vec<Bdf>> {
        match self.fs.list(Path::new(PCI_DEVICES)) {
            Ok(names) => {
                let mut out: Vec<Bdf> = names
                    .iter()
                    .filter_map(|n| match n.parse() {
                        Ok(b) => Some(b),
                        Err(_) => {
                            self.warnings
                                .push(format!("{PCI_DEVICES}/{n}: not a PCI address, skipped"));
                            None
                        }
                    })
                    .collect();
                out.sort();
                Ok(out)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.warnings.push(format!("{PCI_DEVICES}: {e}"));
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    fn path(bdf: Bdf, attr: &str) -> PathBuf {
        PathBuf::from(format!("{PCI_DEVICES}/{bdf}/{attr}"))
    }

    /// An attribute's trimmed text; `None` when absent (not a warning: many are optional).
    fn attr(&self, bdf: Bdf, attr: &str) -> Option<String> {
        self.fs
            .read(&Self::path(bdf, attr))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// An attribute that must be a number; garbage is a warning.
    fn num<T: std::str::FromStr>(&mut self, bdf: Bdf, attr: &str) -> Option<T> {
        let raw = self.attr(bdf, attr)?;
        let t = raw.trim_start_matches("0x");
        let parsed = if raw.starts_with("0x") {
            u64::from_str_radix(t, 16)
                .ok()
                .and_then(|v| v.to_string().parse().ok())
        } else {
            t.parse().ok()
        };
        if parsed.is_none() {
            self.warnings.push(format!(
                "{}: unreadable value {raw:?}",
                Self::path(bdf, attr).display()
            ));
        }
        parsed
    }

    fn link_name(&self, path: &Path) -> Option<String> {
        let target = self.fs.read_link(path).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Reads one function.
    pub fn function(&mut self, bdf: Bdf) -> PciFunction {
        let mut f = PciFunction {
            bdf: Some(bdf),
            ..PciFunction::default()
        };
        f.class = self.num(bdf, "class");
        f.vendor = self
            .attr(bdf, "vendor")
            .map(|v| v.trim_start_matches("0x").to_owned());
        f.device = self
            .attr(bdf, "device")
            .map(|v| v.trim_start_matches("0x").to_owned());
        f.driver = self.link_name(&Self::path(bdf, "driver"));
        f.totalvfs = self.num(bdf, "sriov_totalvfs");
        f.numvfs = self.num(bdf, "sriov_numvfs");
        f.numa_node = self.num(bdf, "numa_node");
        f.reset_method = self.attr(bdf, "reset_method");
        f.aer = self
            .fs
            .read(&Self::path(bdf, "aer_dev_correctable"))
            .is_ok();
        f.iommu_group = self
            .link_name(&Self::path(bdf, "iommu_group"))
            .and_then(|g| g.parse().ok());
        f.iommu_unit = self.link_name(&Self::path(bdf, "iommu"));
        f.physfn = self
            .link_name(&Self::path(bdf, "physfn"))
            .and_then(|n| n.parse().ok());
        let entries = self
            .fs
            .list(&PathBuf::from(format!("{PCI_DEVICES}/{bdf}")))
            .unwrap_or_default();
        for name in &entries {
            if let Some(n) = name
                .strip_prefix("virtfn")
                .and_then(|n| n.parse::<u16>().ok())
            {
                match self
                    .link_name(&Self::path(bdf, name))
                    .map(|t| t.parse::<Bdf>())
                {
                    Some(Ok(vf)) => f.virtfns.push((n, vf)),
                    _ => self.warnings.push(format!(
                        "{}: not a link to a PCI function",
                        Self::path(bdf, name).display()
                    )),
                }
            }
            // virtio-net keeps its netdev one level down (virtioN/net/...).
            if name.starts_with("virtio") {
                f.netdevs.extend(
                    self.fs
                        .list(&Self::path(bdf, &format!("{name}/net")))
                        .unwrap_or_default(),
                );
            }
        }
        f.virtfns.sort_unstable();
        f.netdevs
            .extend(self.fs.list(&Self::path(bdf, "net")).unwrap_or_default());
        f.netdevs.sort();
        f.vfio_cdev = self
            .fs
            .list(&Self::path(bdf, "vfio-dev"))
            .ok()
            .and_then(|v| v.into_iter().next());
        f
    }

    /// The other functions of an IOMMU group.
    pub fn group_members(&mut self, group: u32) -> Vec<Bdf> {
        let dir = PathBuf::from(format!("/sys/kernel/iommu_groups/{group}/devices"));
        self.fs
            .list(&dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

/// Whether a driver name is vfio (`vfio-pci`, or a vendor variant such as `mlx5_vfio_pci`).
pub fn is_vfio_driver(driver: &str) -> bool {
    driver == "vfio-pci" || driver.ends_with("vfio_pci") || driver.ends_with("vfio-pci")
}

/// PCI class 0x02: network controller.
pub fn is_network_class(class: Option<u32>) -> bool {
    class.is_some_and(|c| c >> 16 == 0x02)
}
