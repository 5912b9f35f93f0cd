//! Attribution: which function (and so which tenant) an observation belongs to, by what method,
//! how sure, and on what evidence. Nothing is guessed: what the kernel and the host map do not
//! say stays on the PF, with its candidates.
//!
//! Methods (confidence):
//! - `direct` (1.0): the line names PF + VF, or a VF driver printed it under the VF's own address;
//! - `whole_device` (1.0): anything on a PF that a VM holds whole;
//! - `mac` (0.95): ice's mailbox warning names the VF by MAC, matched in the VF table;
//! - `absolute` (0.9): a device-absolute VF number (i40e/ice global MDD lines) is held until a
//!   per-VF MDD line of the same PF follows: before the PF's VF base is known, the first such
//!   line pairs with it and teaches the base; once known, only the line of the VF the base maps
//!   to releases it. A global line is never mapped through the base alone: when several VFs
//!   misbehave at once the driver may print another culprit's line first, the learned base may
//!   then be wrong, and mapping through it alone would blame a VF that printed nothing;
//! - `requester` (0.9, 0.6 when the IOMMU group has other members): AER source or erring function,
//!   IOMMU requester;
//! - `sequence` (0.7): a line naming no VF takes the VF named by the next line from the same PF
//!   within the sequence window;
//! - `tlp_header` (0.9, 0.6 with IOMMU group peers): an AER error a root port or PF logged with
//!   the header of the bad TLP, whose requester (a request) or completer (a completion) is
//!   another function of the map ([`crate::tlp`]);
//! - `ambiguous` (0): a requester printed without its PCI segment that matches functions in
//!   several segments, none singled out by the IOMMU unit the log names ([`crate::segment`]);
//! - `unattributed` (0): PF-level lines naming no function stay on the PF.

use std::collections::HashMap;

pub use vfguard_model::Method;
use vfguard_model::{Bdf, FaultEvent, FaultKind, Millis, Owner, OwnerKind, Topology, VfIndex};

/// What an incident is keyed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// One function (a VF, a whole-device PF, a requester).
    Function(Bdf),
    /// A PF, for lines naming none of its functions.
    PfLevel(Bdf),
    /// Nothing on the PCI bus named.
    Host,
    /// A requester printed without its segment (bus, device, function in segment 0000) that
    /// several functions of the map answer to: no one of them is blamed.
    Ambiguous(Bdf),
}

/// An attributed fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    /// The event, resolved.
    pub event: FaultEvent,
    /// Its incident key.
    pub key: Key,
    /// The method.
    pub method: Method,
    /// The confidence.
    pub confidence: f64,
    /// A line of evidence.
    pub evidence: String,
}

#[derive(Debug, Clone)]
struct Held {
    event: FaultEvent,
    pf: Bdf,
    at: Millis,
    absolute: bool,
}

/// Stateful attribution (held lines, learned VF bases).
#[derive(Debug, Default)]
pub struct Attributor {
    held: Vec<Held>,
    vf_base: HashMap<Bdf, u32>,
}

pub(crate) fn owner_label(o: Option<&Owner>) -> String {
    o.map_or_else(|| "unknown".to_owned(), Owner::label)
}

impl Attributor {
    /// A fresh attributor.
    pub fn new() -> Attributor {
        Attributor::default()
    }

    /// The learned VF base of a PF.
    pub fn vf_base(&self, pf: Bdf) -> Option<u32> {
        self.vf_base.get(&pf).copied()
    }

    /// Attributes one trusted fault; may also release held ones. Returns what is decided now
    /// and whether the last of it is `e` itself (`false` while `e` is held for a later line).
    pub fn attribute(
        &mut self,
        mut e: FaultEvent,
        t: &Topology,
        now: Millis,
        window: Millis,
    ) -> (Vec<Attributed>, bool) {
        let mut out = self.expire(t, now, window);
        e.resolve(t);
        // A requester printed without its segment is placed first (or no one is blamed).
        let (mut e, segment_note) = match crate::segment::resolve(e, t) {
            crate::segment::Resolution::One(e, note) => (*e, note),
            crate::segment::Resolution::Ambiguous(a) => {
                out.push(*a);
                return (out, true);
            }
        };
        if let Some(a) = crate::tlp::attribute(&e, t) {
            out.push(a);
            return (out, true);
        }
        if let Some(note) = segment_note {
            e.details.insert(SEGMENT_NOTE.to_owned(), note);
        }
        match (e.pf, e.vf, e.function) {
            (Some(pf), None, None) => {
                if e.vf_abs.is_some() {
                    self.held.push(Held {
                        event: e,
                        pf,
                        at: now,
                        absolute: true,
                    });
                    return (out, false);
                }
                let unnamed = matches!(
                    e.kind,
                    FaultKind::MacOverride | FaultKind::VlanOverride | FaultKind::Mailbox
                );
                if unnamed && t.pf(pf).is_some_and(|p| !p.vfs.is_empty()) {
                    self.held.push(Held {
                        event: e,
                        pf,
                        at: now,
                        absolute: false,
                    });
                    return (out, false);
                }
                out.push(pf_level(e, pf, t));
            }
            (Some(pf), Some(vf), _) => {
                // A named VF releases what waited for it.
                let named_line = e.device == Some(pf);
                let mut keep = Vec::new();
                for h in std::mem::take(&mut self.held) {
                    if h.pf != pf || now > h.at.saturating_add(window) {
                        keep.push(h);
                        continue;
                    }
                    if h.absolute {
                        let mdd = |k: FaultKind| {
                            matches!(
                                k,
                                FaultKind::MddTx
                                    | FaultKind::MddRx
                                    | FaultKind::Mdd
                                    | FaultKind::VfDisabled
                            )
                        };
                        let abs = h.event.vf_abs.unwrap_or(0);
                        let base = abs.checked_sub(u32::from(vf.0));
                        let pairs = named_line && mdd(e.kind) && mdd(h.event.kind);
                        // Once the base is known, only the VF it maps to releases the line.
                        let evidence = match (self.vf_base(pf), base) {
                            (Some(known), Some(b)) if pairs && known == b => format!(
                                "device-absolute VF {abs} minus learned base {b}, confirmed by VF {}'s own line",
                                vf.0
                            ),
                            (None, Some(b)) if pairs => {
                                self.vf_base.insert(pf, b);
                                format!(
                                    "global VF number {abs} paired with the per-VF line for VF {} (base {b})",
                                    vf.0
                                )
                            }
                            _ => {
                                keep.push(h);
                                continue;
                            }
                        };
                        if let Some(a) = self.with_vf(
                            &h.event,
                            pf,
                            u32::from(vf.0),
                            t,
                            (Method::Absolute, 0.9, &evidence),
                        ) {
                            out.push(a);
                        }
                    } else if named_line {
                        let ev = format!(
                            "the next line from PF {pf} named VF {}: {:?}",
                            vf.0, e.message
                        );
                        if let Some(a) = self.with_vf(
                            &h.event,
                            pf,
                            u32::from(vf.0),
                            t,
                            (Method::Sequence, 0.7, &ev),
                        ) {
                            out.push(a);
                        }
                    } else {
                        keep.push(h);
                    }
                }
                self.held = keep;
                out.push(direct(e, t));
            }
            (_, _, Some(_)) => out.push(direct(e, t)),
            (None, _, None) => out.push(Attributed {
                evidence: format!("{}: names no PCI function", e.catalog_id),
                event: e,
                key: Key::Host,
                method: Method::Unattributed,
                confidence: 0.0,
            }),
        }
        (out, true)
    }

    /// The event attributed to VF `vf` of `pf`, `how` = (method, confidence, evidence).
    fn with_vf(
        &self,
        e: &FaultEvent,
        pf: Bdf,
        vf: u32,
        t: &Topology,
        how: (Method, f64, &str),
    ) -> Option<Attributed> {
        let (method, confidence, evidence) = how;
        let idx = VfIndex(u16::try_from(vf).ok()?);
        let v = t.vf(pf, idx)?;
        let mut ev = e.clone();
        ev.vf = Some(idx);
        ev.function = Some(v.bdf);
        ev.owner = Some(v.owner.clone());
        Some(Attributed {
            key: Key::Function(v.bdf),
            evidence: format!("{evidence}; owner {}", owner_label(ev.owner.as_ref())),
            event: ev,
            method,
            confidence,
        })
    }

    /// Releases held lines whose window passed: they stay on their PF.
    pub fn expire(&mut self, t: &Topology, now: Millis, window: Millis) -> Vec<Attributed> {
        let (old, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| now > h.at.saturating_add(window));
        self.held = keep;
        old.into_iter()
            .map(|h| pf_level(h.event, h.pf, t))
            .collect()
    }
}

/// A line on a PF naming none of its functions: the PF's holder if a VM holds it whole, else
/// unattributed, with the candidates listed.
fn pf_level(mut e: FaultEvent, pf: Bdf, t: &Topology) -> Attributed {
    let whole = t.pf(pf).filter(|p| p.owner.kind == OwnerKind::Vm);
    if let Some(p) = whole {
        e.function = Some(pf);
        e.owner = Some(p.owner.clone());
        return Attributed {
            evidence: format!("PF {pf} is held whole by {}", p.owner.label()),
            event: e,
            key: Key::Function(pf),
            method: Method::WholeDevice,
            confidence: 1.0,
        };
    }
    let candidates: Vec<String> = t
        .pf(pf)
        .map(|p| {
            p.vfs
                .iter()
                .filter(|v| matches!(v.owner.kind, OwnerKind::Vm | OwnerKind::Netns))
                .map(|v| format!("vf {} ({})", v.index.0, v.owner.label()))
                .collect()
        })
        .unwrap_or_default();
    Attributed {
        evidence: format!(
            "{}: names no VF of PF {pf}; tenants on it: {}",
            e.catalog_id,
            if candidates.is_empty() {
                "none".to_owned()
            } else {
                candidates.join(", ")
            }
        ),
        event: e,
        key: Key::PfLevel(pf),
        method: Method::Unattributed,
        confidence: 0.0,
    }
}

/// The detail under which [`crate::segment`] says how a requester printed without its segment
/// was placed (it joins the attribution's evidence).
pub(crate) const SEGMENT_NOTE: &str = "segment_resolved";

fn direct(e: FaultEvent, t: &Topology) -> Attributed {
    let f = e.function;
    let Some(function) = f else {
        // PF + VF named, but the VF is not in the map (numvfs changed, a stale topology).
        return match e.pf {
            Some(pf) => {
                let mut a = pf_level(e, pf, t);
                a.evidence = format!(
                    "the named VF is not in the host map (version {}); {}",
                    t.version, a.evidence
                );
                a
            }
            None => Attributed {
                evidence: format!("{}: names no PCI function", e.catalog_id),
                event: e,
                key: Key::Host,
                method: Method::Unattributed,
                confidence: 0.0,
            },
        };
    };
    let r = t.function(function);
    let is_vf = r.is_some_and(|r| r.vf.is_some());
    let by_mac = e.details.get("resolved_by").map(String::as_str) == Some("mac");
    let own_prefix = e.device == Some(function);
    let named = e.pf.is_some() && e.vf.is_some() && e.device == e.pf;
    let owner = owner_label(e.owner.as_ref());
    let (method, confidence, evidence) = if by_mac {
        (
            Method::Mac,
            0.95,
            format!(
                "MAC {} is VF {:?}'s in the VF table; owner {owner}",
                e.mac.map(|m| m.to_string()).unwrap_or_default(),
                e.vf.map(|v| v.0)
            ),
        )
    } else if named {
        (
            Method::Direct,
            1.0,
            format!(
                "{} names PF {} VF {}; owner {owner}",
                e.catalog_id,
                e.pf.map(|p| p.to_string()).unwrap_or_default(),
                e.vf.map_or(0, |v| v.0)
            ),
        )
    } else if own_prefix && is_vf {
        (
            Method::Direct,
            1.0,
            format!("printed by the VF's own driver at {function}; owner {owner}"),
        )
    } else if !is_vf && r.is_some_and(|r| r.pf.owner.kind == OwnerKind::Vm) {
        (
            Method::WholeDevice,
            1.0,
            format!("{function} is held whole by {owner}"),
        )
    } else {
        let peers = r.and_then(|r| r.vf).map_or(0, |v| v.group_peers.len());
        let c = if peers > 0 { 0.6 } else { 0.9 };
        (
            Method::Requester,
            c,
            format!(
                "{} names {function} as the source/requester ({} IOMMU group peers); owner {owner}",
                e.catalog_id, peers
            ),
        )
    };
    let evidence = match e.details.get(SEGMENT_NOTE) {
        Some(note) => format!("{evidence}; {note}"),
        None => evidence,
    };
    Attributed {
        event: e,
        key: Key::Function(function),
        method,
        confidence,
        evidence,
    }
}
