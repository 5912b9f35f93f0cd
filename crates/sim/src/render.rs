//! Kernel log records rendered from the driver catalog: every line the simulator prints is a
//! format string a real driver prints, with its device prefix and `/dev/kmsg` dictionary.

use vfguard_model::{Bdf, KmsgFlag, KmsgRecord, Severity};
use vfguard_parse::catalog::{Catalog, Source};

use crate::drivers::Printer;
use crate::state::SimPf;

/// The kernel log level a catalog severity is printed at (dev_err 3, dev_warn 4, dev_info 6).
fn level(sev: Severity) -> u8 {
    match sev {
        Severity::Critical => 2,
        Severity::Error => 3,
        Severity::Warning => 4,
        Severity::Info => 6,
    }
}

/// One record of entry `id` printed by `driver` on device `name` (with `netdev` for netdev_*
/// lines), at `ts_usec`, with the dictionary `dev_printk` attaches (`SUBSYSTEM=pci`,
/// `DEVICE=+pci:<bdf>`; a platform device gets `+platform:<name>`). An unknown id or a wrong
/// value count is a bug in the simulator's driver models, reported as `None`.
pub fn record(
    id: &str,
    device: Option<(&str, &str, Option<&str>)>,
    values: &[&str],
    seq: u64,
    ts_usec: u64,
) -> Option<KmsgRecord> {
    let cat = Catalog::get();
    let c = cat.by_id(id)?;
    let dev = device.filter(|_| c.entry.source != Source::Bare);
    let text = cat.render_line(id, dev, values)?;
    let (subsystem, dict) = match dev.map(|(_, name, _)| name) {
        Some(name) if name.parse::<Bdf>().is_ok() => (Some("pci"), Some(format!("+pci:{name}"))),
        Some(name) => (Some("platform"), Some(format!("+platform:{name}"))),
        None => (None, None),
    };
    Some(KmsgRecord {
        seq,
        ts_usec,
        facility: 0,
        level: level(c.entry.severity),
        flag: KmsgFlag::Whole,
        caller: None,
        text,
        subsystem: subsystem.map(str::to_owned),
        device: dict,
    })
}

/// After a DMAR fault line just printed, CONFIG_DMAR_DEBUG's page-table dump naming the unit
/// that translated it (drivers/iommu/intel/iommu.c `dmar_fault_dump_ptes()`: `"Dump %s table
/// entries for IOVA 0x%llx"`, with the fault's address): on a host with several PCI segments it
/// is what tells the segment-less requester apart. Nothing when the last line is not a fault.
pub fn dmar_dump_after_fault(p: &mut Printer, unit: &str) {
    let iova = p
        .out
        .last()
        .and_then(|r| r.text.split(" fault addr 0x").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned);
    if let Some(iova) = iova {
        p.bare("dmar.dump_ptes", &[unit, &iova]);
    }
}

/// A malformed TLP sent upstream by the PF or its VF `vf` (nothing once that VF is disabled):
/// the root port above the PF (the bus before it) detects it and prints the AER report on
/// itself, the TLP's header last (drivers/pci/pcie/aer.c `aer_print_source()`,
/// `aer_print_error()`; tlp.c `pcie_print_tlp_log()`, v6.15+ rendering). The header is a 32-bit
/// memory write (Fmt 010, Type 00000) whose requester ID is the sender's.
pub fn malformed_tlp(p: &mut Printer, pf: &SimPf, vf: Option<usize>, rng_bits: u64) {
    let sender = match vf {
        None => pf.spec.bdf,
        Some(v) => match pf.vfs.get(v) {
            Some(vf) if vf.enabled() => vf.bdf,
            _ => return,
        },
    };
    let b = pf.spec.bdf;
    let rp = Bdf::new(b.segment(), b.bus().saturating_sub(1), 0, 0).unwrap_or(b);
    let rid = u32::from(sender.bus()) << 8
        | u32::from(sender.device()) << 3
        | u32::from(sender.function());
    let addr = 0x7ff0_0000u64 + (rng_bits % 0x1000) * 0x1000;
    let header = format!(
        "{:#010x} {:#010x} {:#010x} {:#010x}",
        0x4000_0010u32,
        rid << 16 | 0xff,
        addr & 0xffff_fffc,
        0
    );
    let severity = "Uncorrectable (Non-Fatal)";
    p.dev(
        "aer.source",
        "pcieport",
        rp,
        None,
        &[
            "",
            severity,
            &format!("{:04x}", rp.segment()),
            &format!("{:02x}", rp.bus()),
            &format!("{:02x}", rp.device()),
            &rp.function().to_string(),
            "",
        ],
    );
    p.dev(
        "aer.bus_error",
        "pcieport",
        rp,
        None,
        &[severity, "Transaction Layer", "Receiver ID"],
    );
    p.dev(
        "aer.status",
        "pcieport",
        rp,
        None,
        &["8086", "2030", "00040000", "00000000"],
    );
    p.dev(
        "aer.bit",
        "pcieport",
        rp,
        None,
        &["18", &format!("{:<22}", "MalfTLP"), " (First)"],
    );
    p.dev("aer.tlp_header", "pcieport", rp, None, &["  ", "", &header]);
}
