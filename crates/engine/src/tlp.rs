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

use vfguard_model::{Bdf, FaultEvent, FaultKind, Method, Topology};

use crate::attribute::{owner_label, Attributed, Key};

/// The decoded header's fields, as the parser names them.
const TLP_TYPE: &str = "tlp_type";
const TLP_REQUESTER: &str = "tlp_requester";
const TLP_COMPLETER: &str = "tlp_completer";

/// Whether a decoded TLP type is a completion (`Cpl`, `CplD`, `CplLk`, `CplDLk`): its sender is
/// the completer, not the requester its header also names.
fn is_completion(tlp_type: &str) -> bool {
    tlp_type.trim().starts_with("Cpl")
}

/// The function that sent the bad TLP, and its role in the header (`requester`, `completer`).
fn sender(e: &FaultEvent) -> Option<(Bdf, &'static str)> {
    if !matches!(
        e.kind,
        FaultKind::AerCorrectable | FaultKind::AerNonfatal | FaultKind::AerFatal
    ) {
        return None;
    }
    let completion = e.details.get(TLP_TYPE).is_some_and(|t| is_completion(t));
    let (key, role) = if completion {
        (TLP_COMPLETER, "completer")
    } else {
        (TLP_REQUESTER, "requester")
    };
    let raw = e.details.get(key)?.trim();
    let id: Bdf = raw.parse().ok()?;
    if raw.matches(':').count() == 2 {
        return Some((id, role));
    }
    // Printed bus:dev.fn: the reporter's segment.
    let segment = e.device.or(e.function)?.segment();
    Bdf::new(segment, id.bus(), id.device(), id.function()).map(|b| (b, role))
}

/// The fault attributed to the function its TLP header names as the sender, when a root port
/// or a PF (not the sender itself, not a VF reporting its own error) logged it.
pub(crate) fn attribute(e: &FaultEvent, t: &Topology) -> Option<Attributed> {
    let (to, role) = sender(e)?;
    if e.function == Some(to) {
        return None;
    }
    if e.function
        .and_then(|f| t.function(f))
        .is_some_and(|r| r.vf.is_some())
    {
        return None;
    }
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
            .get(TLP_TYPE)
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
