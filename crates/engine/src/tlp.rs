//! AER errors by the TLP that caused them: the header a root port or PF logged names the
//! function that sent the bad TLP.
//!
//! An AER error is reported by the function that *received* the bad TLP (a root port, a PF)
//! and printed on it; when its header log is valid, the kernel prints the header
//! (`TLP Header: ...`, drivers/pci/pcie/tlp.c) and the parser decodes it into the details
//! `tlp_type`, `tlp_requester` and `tlp_completer` (bus:dev.fn, without a segment). The sender
//! is the requester of a request (memory, I/O, configuration, message, atomic) and the
//! completer of a completion (`Cpl*`): a VF's DMA that a root port rejected names the VF even
//! though the line is printed on the port. The sender is in the reporter's PCI segment (a TLP
//! never crosses a host bridge), and is attributed only when the map knows it.

use vfguard_model::{FaultEvent, Method, Topology};

use crate::attribute::{owner_label, Attributed, Key};

/// The fault attributed to the function its TLP header names as the sender
/// ([`Topology::tlp_sender`]: a root port or a PF logged it, not the sender itself, not a VF
/// reporting its own error).
pub(crate) fn attribute(e: &FaultEvent, t: &Topology) -> Option<Attributed> {
    let (to, role) = t.tlp_sender(e)?;
    let r = t.function(to)?;
    let peers = r.vf.map_or(0, |v| v.group_peers.len());
    let confidence = if peers > 0 { 0.6 } else { 0.9 };
    let reporter = e
        .function
        .or(e.device)
        .map_or_else(|| "the reporter".to_owned(), |b| b.to_string());
    let mut ev = e.clone();
    ev.details
        .entry("reported_by".to_owned())
        .or_insert_with(|| reporter.clone());
    ev.function = Some(to);
    ev.pf = None;
    ev.vf = None;
    ev.owner = None;
    ev.resolve(t);
    let evidence = format!(
        "{} at {reporter}: the logged TLP header ({}) names {to} as its {role}, the function \
         that sent the bad TLP ({peers} IOMMU group peers); owner {}",
        ev.catalog_id,
        e.details
            .get("tlp_type")
            .map_or("type not decoded", String::as_str),
        owner_label(ev.owner.as_ref())
    );
    Some(Attributed {
        event: ev,
        key: Key::Function(to),
        method: Method::TlpHeader,
        confidence,
        evidence,
    })
}
