//! PCI segments: a requester printed without its segment, placed only where the host map and
//! the log leave one answer.
//!
//! Intel's DMAR fault lines (`Request device [3c:00.3]`) and AMD-Vi before about v6.0
//! (`device=3c:00.3`) print bus, device and function but no PCI segment (signals.md §3); the
//! parser reads them in segment 0000. On a host with several segments the same bus:dev.fn can
//! be a function in each: pinning the fault on segment 0000's would blame a tenant for its
//! neighbour's DMA. So:
//! - one function of the map at that bus:dev.fn (in any segment): it is the requester;
//! - several: the IOMMU unit the log names (`dmarN` of a CONFIG_DMAR_DEBUG `Dump dmarN table
//!   entries` line, joined to the fault as its `unit` detail) picks the one whose DMA that unit
//!   translates (the topology reads each function's `iommu` link);
//! - else nobody is blamed: the fault is `ambiguous`, with every candidate listed.
//!
//! # Limitations
//! The old AER `id=%04x` form has no segment either, but it is printed on the root port that
//! received the message, whose segment is the source's: the parser takes it from there, so it
//! is not ambiguous. A requester that is not a network function (an NVMe drive in another
//! segment) is not in the map: see [`crate::engine`]'s reconsideration of a contained
//! requester whose faults go on.

use vfguard_model::{Bdf, FaultEvent, FunctionRef, Method, Placement, Topology};

use crate::attribute::{owner_label, Attributed, Key};

/// Details that name the IOMMU unit of a fault: `unit` from DMAR's dump line (joined to the
/// fault by the parser), `iommu_unit` as any other source may give it.
const UNIT_DETAILS: &[&str] = &["iommu_unit", "unit"];

/// Where a fault's requester was placed.
pub(crate) enum Resolution {
    /// The event, its function placed (with a note for the evidence when the segment had to be
    /// found), or untouched.
    One(Box<FaultEvent>, Option<String>),
    /// Several functions answer to it: no one is blamed.
    Ambiguous(Box<Attributed>),
}

/// Whether the event's requester was printed without its segment, with no device prefix to
/// take it from.
pub(crate) fn segment_unprinted(e: &FaultEvent) -> bool {
    vfguard_model::segment_unprinted(&e.catalog_id, e.device.is_some())
        || e.details.get("segment").is_some_and(|s| s == "unprinted")
}

/// The IOMMU unit the log names for this fault, if any.
pub(crate) fn iommu_unit(e: &FaultEvent) -> Option<&str> {
    UNIT_DETAILS
        .iter()
        .find_map(|k| e.details.get(*k))
        .map(String::as_str)
}

/// `3c:00.3`: a requester as the segment-less line printed it.
fn printed(b: Bdf) -> String {
    format!("{:02x}:{:02x}.{:x}", b.bus(), b.device(), b.function())
}

/// The same event with its function moved to `to` (PF, VF and owner found again).
fn repin(mut e: FaultEvent, to: Bdf, t: &Topology) -> FaultEvent {
    e.function = Some(to);
    e.pf = None;
    e.vf = None;
    e.owner = None;
    e.resolve(t);
    e
}

/// `0000:3c:00.3 (vm:a, IOMMU unit dmar1), ...`.
fn listed(all: &[FunctionRef<'_>]) -> String {
    all.iter()
        .map(|c| {
            format!(
                "{} ({}, IOMMU unit {})",
                c.bdf(),
                c.owner().label(),
                c.iommu_unit().unwrap_or("unknown")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Places a fault's requester across segments (see the module docs).
pub(crate) fn resolve(e: FaultEvent, t: &Topology) -> Resolution {
    let Some(f) = e.function.filter(|_| segment_unprinted(&e)) else {
        return Resolution::One(Box::new(e), None);
    };
    let unit = iommu_unit(&e).map(str::to_owned);
    let all = match t.place_requester(f, unit.as_deref()) {
        Placement::One(only) if only.bdf() == f => return Resolution::One(Box::new(e), None),
        Placement::One(only) => {
            let to = only.bdf();
            let note = format!(
                "{} was printed without a segment; {to} is the only function at it",
                printed(f)
            );
            return Resolution::One(Box::new(repin(e, to, t)), Some(note));
        }
        Placement::ByUnit(one, all) => {
            let to = one.bdf();
            let note = format!(
                "{} was printed without a segment and matches {}; the log names IOMMU unit {}, \
                 which translates only {to}",
                printed(f),
                listed(&all),
                unit.as_deref().unwrap_or_default()
            );
            return Resolution::One(Box::new(repin(e, to, t)), Some(note));
        }
        Placement::Several(all) if all.is_empty() => return Resolution::One(Box::new(e), None),
        Placement::Several(all) => all,
    };
    let why = match unit {
        Some(u) => format!("the IOMMU unit the log names ({u}) does not single one out"),
        None => "the log names no IOMMU unit".to_owned(),
    };
    let mut ev = e;
    ev.details.insert("candidates".to_owned(), listed(&all));
    let evidence = format!(
        "{} names requester {} without a PCI segment; it matches {}; {why}: no one is blamed \
         (owners: {})",
        ev.catalog_id,
        printed(f),
        listed(&all),
        all.iter()
            .map(|c| owner_label(Some(c.owner())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ev.function = None;
    ev.pf = None;
    ev.vf = None;
    ev.owner = None;
    Resolution::Ambiguous(Box::new(Attributed {
        event: ev,
        key: Key::Ambiguous(f),
        method: Method::Ambiguous,
        confidence: 0.0,
        evidence,
    }))
}

/// Every function of the map a requester printed without a segment may be (all of them when
/// the event's requester had its segment printed: just the one).
pub(crate) fn candidates(e: &FaultEvent, f: Bdf, t: &Topology) -> Vec<Bdf> {
    if segment_unprinted(e) {
        t.in_any_segment(f.bus(), f.device(), f.function())
            .iter()
            .map(|c| c.bdf())
            .collect()
    } else {
        vec![f]
    }
}
