//! `vfguard inventory`: the host map, in the spirit of `ip -d link`.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_model::{printable, Owner, OwnerKind, Pf, Printable, Topology, Vf, VfLinkState};

use crate::cli::InventoryArgs;
use vfguard_agent::host::topology_reader;

pub fn run(args: &InventoryArgs) -> anyhow::Result<ExitCode> {
    if !args.root.is_dir() {
        anyhow::bail!(
            "--root {}: not a directory (give the root of a host tree, or / for this host)",
            args.root.display()
        );
    }
    let mut t = topology_reader(&args.root).read();
    t.version = 1;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &t).context("writing JSON")?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &t)?;
    }
    out.flush()?;
    for w in &t.warnings {
        eprintln!("vfguard: warning: {}", Printable(w));
    }
    Ok(ExitCode::SUCCESS)
}

/// The owner, escaped (VM and namespace names can hold anything: `vfguard_model::printable`).
fn owner_text(o: &Owner) -> String {
    let mut s = printable(&o.label()).into_owned();
    if let Some(pid) = o.pid {
        s.push_str(&format!(" (pid {pid})"));
    }
    if o.kind == OwnerKind::None && !o.evidence.is_empty() {
        // Say why: unbound, or vfio-bound with nobody holding it.
        s = "none".to_owned();
    }
    s
}

fn print_table(out: &mut impl Write, t: &Topology) -> io::Result<()> {
    if t.pfs.is_empty() {
        writeln!(out, "no PFs or NICs found")?;
    }
    for pf in &t.pfs {
        print_pf(out, pf)?;
        for vf in &pf.vfs {
            print_vf(out, vf)?;
        }
    }
    Ok(())
}

/// A name read from the host, escaped, or `-`.
fn text(s: Option<&String>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| printable(s).into_owned())
}

fn print_pf(out: &mut impl Write, pf: &Pf) -> io::Result<()> {
    write!(
        out,
        "pf {} {} [{}:{}] netdev {}",
        pf.bdf,
        pf.driver
            .as_deref()
            .map_or_else(|| "(no driver)".into(), printable),
        text(pf.vendor.as_ref()),
        text(pf.device.as_ref()),
        text(pf.netdev.as_ref()),
    )?;
    if pf.totalvfs > 0 {
        write!(out, " vfs {}/{}", pf.numvfs, pf.totalvfs)?;
    } else {
        write!(out, " (no SR-IOV)")?;
    }
    if let Some(n) = pf.numa_node {
        write!(out, " numa {n}")?;
    }
    // The DMAR unit tells apart requesters a fault line prints without their PCI segment; a
    // PF's VFs sit behind the same one (each VF's is in --json).
    if let Some(unit) = &pf.iommu_unit {
        write!(out, " iommu {}", printable(unit))?;
    }
    if let Some(fw) = &pf.firmware {
        write!(out, " firmware \"{}\"", printable(fw))?;
    }
    writeln!(out, " owner {}", owner_text(&pf.owner))
}

fn print_vf(out: &mut impl Write, vf: &Vf) -> io::Result<()> {
    let dash = || "-".to_owned();
    write!(
        out,
        "    vf {:<3} {} {:<9} {:<14} owner {}",
        vf.index.0,
        vf.bdf,
        text(vf.driver.as_ref()),
        text(vf.netdev.as_ref()),
        owner_text(&vf.owner),
    )?;
    if let Some(s) = &vf.state {
        write!(out, "  ")?;
        let onoff = |b: Option<bool>| match b {
            Some(true) => "on",
            Some(false) => "off",
            None => "?",
        };
        let link = match s.link_state {
            Some(VfLinkState::Auto) => "auto",
            Some(VfLinkState::Enable) => "enable",
            Some(VfLinkState::Disable) => "disable",
            None => "?",
        };
        write!(
            out,
            "mac {} vlan {} spoofchk {} trust {} link-state {} rate {}/{}",
            s.mac.map_or_else(dash, |m| m.to_string()),
            s.vlan.map_or_else(dash, |v| v.to_string()),
            onoff(s.spoofchk),
            onoff(s.trust),
            link,
            s.min_tx_rate.map_or_else(dash, |v| v.to_string()),
            s.max_tx_rate.map_or_else(dash, |v| v.to_string()),
        )?;
    }
    writeln!(out)
}
