//! From framed log lines to [`FaultEvent`]s: match the catalog, join continuation lines, group
//! the lines of one error, and judge provenance.
//!
//! # Design
//! A push state machine: [`Classifier::push`] takes one logical line (a text line, or a whole
//! kmsg record with its dictionary) and may hold one event open while the lines that continue it
//! arrive (igb's second line, a Tx-hang dump, AER detail lines). The same machine serves a saved
//! log and the live `/dev/kmsg` stream; the caller calls [`Classifier::finish`] at the end (or
//! when the stream goes idle).

use std::borrow::Cow;
use std::collections::BTreeMap;

use vfguard_model::{
    Bdf, FaultEvent, FaultKind, LogFormat, MacAddr, Severity, TrustBasis, VfIndex,
};

use crate::catalog::{Catalog, Compiled, Group, KindRule, Role, Scope, Source};
use crate::prefix::{self, DevPrefix};
use crate::printf;

/// Drivers whose oops or WARNING location makes it a NIC fault (kernel module names).
pub const NIC_MODULES: &[&str] = &[
    "i40e",
    "ice",
    "ixgbe",
    "igb",
    "iavf",
    "i40evf",
    "ixgbevf",
    "igbvf",
    "mlx5_core",
    "mlx4_core",
    "bnxt_en",
    "idpf",
    "e1000e",
    "igc",
    "ena",
];

/// PF drivers: a `netdev_*`/`dev_*` line of theirs concerns the PF (`pf` is the prefix device).
pub const PF_DRIVERS: &[&str] = &["i40e", "ice", "ixgbe", "igb", "mlx5_core", "bnxt_en"];

/// The detail holding mlx5's `function:line` origin (see [`crate::prefix`]).
pub const ORIGIN: &str = "origin";

/// At most this many lines are joined to one event.
const MAX_FOLLOWERS: usize = 64;

/// One logical input line: a text line, or one kmsg record (dictionary included).
#[derive(Debug, Clone)]
pub struct LogicalLine<'a> {
    /// First input line (1-based).
    pub line: u64,
    /// Last input line it covers.
    pub end_line: u64,
    /// The form it came in.
    pub format: LogFormat,
    /// Provenance as far as the log prefix tells.
    pub trust: TrustBasis,
    /// Seconds since boot, when known.
    pub timestamp: Option<f64>,
    /// kmsg sequence number.
    pub seq: Option<u64>,
    /// The kmsg `DEVICE=` value, when present.
    pub dict_device: Option<Cow<'a, str>>,
    /// The kernel's text, unescaped: may hold several printed lines joined by `\n`.
    pub text: Cow<'a, str>,
}

struct Pending {
    event: FaultEvent,
    entry: usize,
    next_line: usize,
    group: Option<Group>,
    pure_head: bool,
    followers: usize,
}

/// The classifier. Cheap to create; holds at most one open event.
pub struct Classifier {
    cat: &'static Catalog,
    pending: Option<Pending>,
    candidates: Vec<usize>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new()
    }
}

impl Classifier {
    /// A classifier over the built-in catalog.
    pub fn new() -> Classifier {
        Classifier {
            cat: Catalog::get(),
            pending: None,
            candidates: Vec::new(),
        }
    }

    /// Whether an event is open and wants to see the next line.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Classifies one logical line; completed events are appended to `out`.
    pub fn push(&mut self, line: &LogicalLine<'_>, out: &mut Vec<FaultEvent>) {
        let mut printed = line.text.split('\n');
        let first = printed.next().unwrap_or("");
        if let Some(p) = self.pending.as_mut() {
            let absorbed = if p.group.is_some() {
                absorb_detail(self.cat, p, line, first)
            } else if line.format != LogFormat::Kmsg {
                // A printk with embedded newlines is one kmsg record but several text lines.
                absorb_continuation(self.cat, p, line, first)
            } else {
                false
            };
            if absorbed {
                self.close_if_done(out);
                return;
            }
            self.flush(out);
        }
        let Some(mut pending) = self.head(line, first) else {
            return;
        };
        for rest in printed {
            if pending.group.is_some() {
                absorb_detail(self.cat, &mut pending, line, rest);
            } else {
                absorb_continuation(self.cat, &mut pending, line, rest);
            }
        }
        self.pending = Some(pending);
        self.close_if_done(out);
    }

    /// Emits the open event, if any.
    pub fn finish(&mut self, out: &mut Vec<FaultEvent>) {
        self.flush(out);
    }

    fn close_if_done(&mut self, out: &mut Vec<FaultEvent>) {
        let done = self.pending.as_ref().is_some_and(|p| {
            let lines = self.cat.entries.get(p.entry).map_or(1, |c| c.lines.len());
            (p.group.is_none() && p.next_line >= lines) || p.followers >= MAX_FOLLOWERS
        });
        if done {
            self.flush(out);
        }
    }

    fn flush(&mut self, out: &mut Vec<FaultEvent>) {
        if let Some(p) = self.pending.take() {
            if let Some(event) = finalize(self.cat, p) {
                push_split(event, out);
            }
        }
    }

    fn head(&mut self, line: &LogicalLine<'_>, first: &str) -> Option<Pending> {
        self.cat.candidates(first, &mut self.candidates);
        if self.candidates.is_empty() {
            return None;
        }
        let dev = prefix::split(first);
        for &idx in &self.candidates {
            let Some(compiled) = self.cat.entries.get(idx) else {
                continue;
            };
            let Some(message) = compiled.message(dev.as_ref(), first) else {
                continue;
            };
            let Some(caps) = compiled.regexes.first().and_then(|re| re.captures(message)) else {
                continue;
            };
            let values: Vec<&str> = (1..caps.len())
                .map(|i| caps.get(i).map_or("", |m| m.as_str()))
                .collect();
            let mut event = new_event(compiled, dev.as_ref(), line, message);
            apply_fields(compiled, 0, &values, &mut event, dev.as_ref());
            return Some(Pending {
                event,
                entry: idx,
                next_line: 1,
                group: compiled.entry.group,
                pure_head: compiled.entry.role == Role::Head,
                followers: 0,
            });
        }
        None
    }
}

fn new_event(
    c: &Compiled,
    dev: Option<&DevPrefix<'_>>,
    line: &LogicalLine<'_>,
    message: &str,
) -> FaultEvent {
    let e = c.entry;
    let uses_prefix = !matches!(e.source, Source::Bare);
    let dev = dev.filter(|_| uses_prefix);
    let device = dev.and_then(|d| d.bdf);
    let driver = dev.map(|d| d.driver.to_owned());
    let is_pf_driver = dev.is_some_and(|d| PF_DRIVERS.contains(&d.driver));
    let (pf, function) = match e.scope {
        Scope::Pf => (device, None),
        Scope::Own => (device.filter(|_| is_pf_driver), device),
        Scope::Named | Scope::Host => (None, None),
    };
    let trust = provenance(line, device);
    let mut details = BTreeMap::new();
    // mlx5's `function:line` says which code path printed it (health poll, command timeout...).
    if let Some(site) = dev.and_then(DevPrefix::origin_site) {
        details.insert(ORIGIN.to_owned(), site.to_owned());
    }
    let kind = match e.kind {
        KindRule::Fixed(k) => k,
        KindRule::AerSeverity => FaultKind::AerCorrectable,
        KindRule::MddDirection | KindRule::MddMasks => FaultKind::Mdd,
        KindRule::ByValue { otherwise, .. } => otherwise,
        KindRule::Oops => FaultKind::Oops,
    };
    FaultEvent {
        line: line.line,
        end_line: line.end_line,
        kind,
        severity: e.severity,
        driver,
        device,
        netdev: dev.and_then(|d| d.netdev.map(str::to_owned)),
        pf,
        vf: None,
        vf_abs: None,
        function,
        queue: None,
        count: None,
        mac: None,
        catalog_id: e.id.to_owned(),
        message: message.trim_end().to_owned(),
        trusted: trust.is_trusted(),
        trust,
        format: line.format,
        timestamp: line.timestamp,
        seq: line.seq,
        details,
        owner: None,
        repeats: 0,
        victim: e.victim,
    }
}

/// Provenance: the log prefix's word, checked against the kmsg dictionary for kmsg records.
fn provenance(line: &LogicalLine<'_>, device: Option<Bdf>) -> TrustBasis {
    if line.trust != TrustBasis::KernelRecord {
        return line.trust;
    }
    match (
        line.dict_device
            .as_deref()
            .and_then(|d| d.strip_prefix("+pci:")),
        device,
    ) {
        (Some(dict), Some(text)) if dict.parse::<Bdf>().ok() != Some(text) => {
            TrustBasis::DeviceMismatch
        }
        _ => TrustBasis::KernelRecord,
    }
}

/// Stores the captured values of printed line(s) starting at conversion `first`.
fn apply_fields(
    c: &Compiled,
    first: usize,
    values: &[&str],
    ev: &mut FaultEvent,
    dev: Option<&DevPrefix<'_>>,
) {
    let mut seg: Option<u16> = None;
    let (mut bus, mut slot, mut func): (Option<u8>, Option<u8>, Option<u8>) = (None, None, None);
    for (i, raw) in values.iter().enumerate() {
        let idx = first + i;
        let Some(&name) = c.entry.fields.get(idx) else {
            continue;
        };
        let spec = c.spec(idx);
        let num = || printf::read_number(raw, spec);
        let raw = raw.trim();
        if let KindRule::ByValue { field, values, .. } = c.entry.kind {
            if name == field {
                if let Some((_, k)) = values.iter().find(|(v, _)| *v == raw) {
                    ev.kind = *k;
                }
            }
        }
        match name {
            _ if name.starts_with('_') => {}
            "vf" if !c.entry.absolute => {
                ev.vf = num().and_then(|n| u16::try_from(n).ok()).map(VfIndex)
            }
            "vf" | "vf_abs" => ev.vf_abs = num().and_then(|n| u32::try_from(n).ok()),
            "queue" => ev.queue = num().and_then(|n| u32::try_from(n).ok()),
            "count" => ev.count = num(),
            "mac" => ev.mac = raw.parse::<MacAddr>().ok(),
            "seg" => seg = num().and_then(|n| u16::try_from(n).ok()),
            "bus" => bus = num().and_then(|n| u8::try_from(n).ok()),
            "dev" => slot = num().and_then(|n| u8::try_from(n).ok()),
            "fn" => func = num().and_then(|n| u8::try_from(n).ok()),
            "rid" => {
                let segment = ev.device.map_or(0, Bdf::segment);
                ev.function = num()
                    .and_then(|n| u16::try_from(n).ok())
                    .map(|rid| Bdf::from_requester_id(segment, rid));
            }
            "netdev" => ev.netdev = Some(raw.to_owned()),
            "driver" => ev.driver = Some(raw.to_owned()),
            "client" => {
                if let Ok(b) = raw.parse::<Bdf>() {
                    ev.function.get_or_insert(b);
                }
                add_detail(ev, name, raw);
            }
            "sev" => {
                if matches!(c.entry.kind, KindRule::AerSeverity) {
                    ev.kind = aer_kind(raw);
                }
                add_detail(ev, "severity_text", raw);
            }
            "tlp_header" => {
                add_detail(ev, name, raw);
                // A Flit-mode header (`TLP Header (Flit):`) has another layout: kept, not decoded.
                if !ev.details.contains_key("tlp_flit") {
                    for (key, value) in crate::aer::header_words(raw)
                        .map(|w| crate::aer::decode_header(&w))
                        .unwrap_or_default()
                    {
                        add_detail(ev, key, &value);
                    }
                }
            }
            "dir" => {
                if matches!(c.entry.kind, KindRule::MddDirection) {
                    ev.kind = if raw.starts_with("TX") {
                        FaultKind::MddTx
                    } else if raw.starts_with("RX") {
                        FaultKind::MddRx
                    } else {
                        FaultKind::Mdd
                    };
                }
                add_detail(ev, "source", raw);
            }
            _ => add_detail(ev, name, raw),
        }
    }
    if let (Some(bus), Some(slot), Some(func)) = (bus, slot, func) {
        let segment = seg.unwrap_or_else(|| ev.device.map_or(0, Bdf::segment));
        if let Some(b) = Bdf::new(segment, bus, slot, func) {
            if ev.function.is_none() {
                ev.function = Some(b);
            } else if ev.function != Some(b) {
                add_detail(ev, "also", &b.to_string());
            }
        }
    }
    if let Some(d) = dev {
        if ev.driver.is_none() {
            ev.driver = Some(d.driver.to_owned());
        }
    }
}

fn add_detail(ev: &mut FaultEvent, name: &str, raw: &str) {
    if raw.is_empty() {
        return;
    }
    ev.details
        .entry(name.to_owned())
        .and_modify(|v| {
            if !v.split(", ").any(|x| x == raw) {
                v.push_str(", ");
                v.push_str(raw);
            }
        })
        .or_insert_with(|| raw.to_owned());
}

/// AER severity words, old and new (aer.c `aer_error_severity_string`).
fn aer_kind(word: &str) -> FaultKind {
    if word.contains("Non-Fatal") {
        FaultKind::AerNonfatal
    } else if word.contains("Fatal") {
        FaultKind::AerFatal
    } else {
        FaultKind::AerCorrectable
    }
}

/// A following text line that continues the open event's printk (`"...\nReload the VF..."`).
fn absorb_continuation(cat: &Catalog, p: &mut Pending, line: &LogicalLine<'_>, text: &str) -> bool {
    let Some(c) = cat.entries.get(p.entry) else {
        return false;
    };
    // dmesg prints continuation lines bare; some tools repeat the device prefix.
    let body = match prefix::split(text) {
        Some(d) if d.bdf.is_some() && d.bdf == p.event.device => d.message,
        _ => text,
    };
    for n in p.next_line..c.lines.len() {
        let (Some(re), Some(&first)) = (c.regexes.get(n), c.first_conv.get(n)) else {
            break;
        };
        if let Some(caps) = re.captures(body) {
            let values: Vec<&str> = (1..caps.len())
                .map(|i| caps.get(i).map_or("", |m| m.as_str()))
                .collect();
            apply_fields(c, first, &values, &mut p.event, None);
            p.event.message.push('\n');
            p.event.message.push_str(body.trim());
            p.event.end_line = p.event.end_line.max(line.end_line);
            p.next_line = n + 1;
            p.followers += 1;
            return true;
        }
    }
    false
}

/// A following line that details the open event's error (AER status, bits, TLP header...).
fn absorb_detail(cat: &Catalog, p: &mut Pending, line: &LogicalLine<'_>, text: &str) -> bool {
    let Some(group) = p.group else {
        return false;
    };
    let dev = prefix::split(text);
    for c in &cat.entries {
        let e = c.entry;
        let joins = match e.role {
            Role::Detail => true,
            Role::HeadOrDetail => p.pure_head,
            Role::Head | Role::Context => false,
        };
        if !joins || e.group != Some(group) {
            continue;
        }
        let Some(message) = c.message(dev.as_ref(), text) else {
            continue;
        };
        let Some(caps) = c.regexes.first().and_then(|re| re.captures(message)) else {
            continue;
        };
        let values: Vec<&str> = (1..caps.len())
            .map(|i| caps.get(i).map_or("", |m| m.as_str()))
            .collect();
        let kind_before = p.event.kind;
        let function_before = p.event.function;
        apply_fields(c, 0, &values, &mut p.event, None);
        // The group's head decides kind and function; details only fill what is missing.
        p.event.kind = kind_before;
        if function_before.is_some() {
            p.event.function = function_before;
        } else if p.event.function.is_none() && e.scope == Scope::Own {
            p.event.function = dev.as_ref().and_then(|d| d.bdf);
        }
        if e.role == Role::HeadOrDetail {
            if let Some(d) = dev.as_ref().and_then(|d| d.bdf) {
                add_detail(&mut p.event, "reported_by", &d.to_string());
            }
        }
        // A detail line on another device than the head's must come from the kernel too.
        if let Some(d) = dev.as_ref().and_then(|d| d.bdf) {
            let t = provenance(line, Some(d));
            if !t.is_trusted() {
                p.event.trusted = false;
                p.event.trust = t;
            }
        } else if !line.trust.is_trusted() {
            p.event.trusted = false;
            p.event.trust = line.trust;
        }
        p.event.end_line = p.event.end_line.max(line.end_line);
        p.followers += 1;
        return true;
    }
    false
}

/// Last touches once an event is complete; `None` drops it (an oops outside NIC drivers).
fn finalize(cat: &Catalog, p: Pending) -> Option<FaultEvent> {
    let mut ev = p.event;
    let entry = cat.entries.get(p.entry)?.entry;
    match entry.kind {
        KindRule::Oops => {
            let symbol = ev.details.get("symbol").cloned().unwrap_or_default();
            let module = symbol
                .rsplit_once('[')
                .and_then(|(_, m)| m.strip_suffix(']'))
                .map(str::to_owned);
            let file = ev.details.get("file").cloned().unwrap_or_default();
            let file_driver = file
                .strip_prefix("drivers/net/")
                .and_then(|rest| rest.rsplit('/').nth(1))
                .map(str::to_owned);
            let nic = module
                .clone()
                .filter(|m| NIC_MODULES.contains(&m.as_str()))
                .or(file_driver.filter(|d| NIC_MODULES.contains(&d.as_str())))?;
            ev.driver = Some(nic);
        }
        KindRule::AerSeverity => {
            ev.severity = match ev.kind {
                FaultKind::AerFatal => Severity::Critical,
                FaultKind::AerNonfatal => Severity::Error,
                _ => Severity::Warning,
            };
        }
        KindRule::MddMasks => mdd_masks_kind(&mut ev),
        KindRule::Fixed(_) | KindRule::MddDirection | KindRule::ByValue { .. } => {}
    }
    if matches!(p.group, Some(Group::Aer | Group::AerFirmware))
        && ev.kind == FaultKind::AerCorrectable
    {
        mark_link_error(&mut ev);
    }
    if p.group == Some(Group::AerFirmware) {
        if let Some(sev) = ev.details.get("uncor_severity").and_then(|s| hex(s)) {
            let status = ev.details.get("status").and_then(|s| hex(s)).unwrap_or(0);
            ev.kind = if status & sev != 0 {
                FaultKind::AerFatal
            } else {
                FaultKind::AerNonfatal
            };
            ev.severity = if ev.kind == FaultKind::AerFatal {
                Severity::Critical
            } else {
                Severity::Error
            };
        }
    }
    // Old DPC lines carry a requester ID that names the source only for ERR_* triggers.
    if let (Some(src), Some(reason)) = (ev.details.get("source_id"), ev.details.get("reason")) {
        if ev.function.is_none() && reason.starts_with("ERR_") {
            if let Some(rid) = hex(src).and_then(|n| u16::try_from(n).ok()) {
                ev.function = Some(Bdf::from_requester_id(
                    ev.device.map_or(0, Bdf::segment),
                    rid,
                ));
            }
        }
    }
    // SMMUv3 raw events: StreamID in bits 63:32 of the first dword.
    if p.group == Some(Group::Smmu) && !ev.details.contains_key("sid") {
        if let Some(d0) = ev
            .details
            .get("dword")
            .and_then(|d| d.split(", ").next())
            .and_then(hex)
        {
            ev.details
                .insert("sid".to_owned(), format!("{:#x}", d0 >> 32));
        }
    }
    Some(ev)
}

/// Says in `details.aer_link` whether a correctable AER error is a link error (RxErr, BadTLP,
/// BadDLLP, Rollover, Timeout: physical or data link layer), which no tenant causes.
fn mark_link_error(ev: &mut FaultEvent) {
    let link = crate::aer::is_link_error(
        ev.details.get("bits").map(String::as_str),
        ev.details.get("status").map(String::as_str),
        ev.details.get("aer_layer").map(String::as_str),
    );
    if let Some(link) = link {
        ev.details
            .insert(crate::aer::AER_LINK.to_owned(), link.to_string());
    }
}

/// The direction of an MDD event from its cause registers (ixgbe `LVMMC_TX`/`LVMMC_RX`, printed
/// `%x`): a non-zero register is an event in that direction. Both non-zero is marked
/// [`BOTH_DIRECTIONS`] here and split in two by [`push_split`]; neither leaves `mdd`, since the
/// driver still saw a malicious VF.
fn mdd_masks_kind(ev: &mut FaultEvent) {
    let nonzero = |name: &str| {
        ev.details
            .get(name)
            .and_then(|s| hex(s))
            .is_some_and(|n| n != 0)
    };
    let (tx, rx) = (nonzero("tx_mask"), nonzero("rx_mask"));
    let (kind, direction) = match (tx, rx) {
        (true, true) => (FaultKind::MddTx, BOTH_DIRECTIONS),
        (true, false) => (FaultKind::MddTx, "tx"),
        (false, true) => (FaultKind::MddRx, "rx"),
        (false, false) => return,
    };
    ev.kind = kind;
    ev.details
        .insert(DIRECTION.to_owned(), direction.to_owned());
}

/// The detail that tells the two events of one line apart (`tx`, `rx`).
pub const DIRECTION: &str = "direction";

/// The transient `direction` of a line that reported both directions, before the split.
const BOTH_DIRECTIONS: &str = "tx+rx";

/// Emits an event, or the two it stands for: one line that reported an MDD in both directions
/// (ixgbe `tx:4 rx:2`) is an mdd_tx and an mdd_rx event, so that each direction's rule and count
/// sees it. The two share the line, sequence number and text; `details.direction` tells them
/// apart.
fn push_split(mut ev: FaultEvent, out: &mut Vec<FaultEvent>) {
    if ev.details.get(DIRECTION).map(String::as_str) != Some(BOTH_DIRECTIONS) {
        out.push(ev);
        return;
    }
    let mut rx = ev.clone();
    ev.kind = FaultKind::MddTx;
    ev.details.insert(DIRECTION.to_owned(), "tx".to_owned());
    rx.kind = FaultKind::MddRx;
    rx.details.insert(DIRECTION.to_owned(), "rx".to_owned());
    out.push(ev);
    out.push(rx);
}

fn hex(s: &str) -> Option<u64> {
    let t = s.trim();
    u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
}
