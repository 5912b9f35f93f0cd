//! The driver message catalog: one [`Entry`] per message form a kernel prints, as data.
//!
//! Each entry holds the exact format string from the kernel source, the fields its conversions
//! yield, the fault kind and severity, one example line exactly as the kernel prints it, and the
//! kernels that print it. [`Catalog::get`] compiles the table once: a regex per printed line,
//! derived from the format (see [`crate::printf`]), and an Aho-Corasick prefilter over each
//! entry's longest literal, so lines that cannot match are rejected before any regex runs.
//!
//! # Field names
//! Conversions are named by the entry's `fields`. Names with a meaning of their own:
//! `vf` (PF-relative VF index), `vf_abs` (device-absolute VF number), `queue`, `count`, `mac`,
//! `seg`/`bus`/`dev`/`fn` (the function the line names), `rid` (a 16-bit requester ID),
//! `sev` (an AER severity word), `dir` (a direction word: TX/RX), `tx_mask`/`rx_mask` (MDD
//! cause registers, read by [`KindRule::MddMasks`]), `netdev`, `driver`,
//! `client` (an SMMU master name), `symbol` (an oops location). Any other name lands in the
//! event's `details`; a name starting with `_` is matched and dropped.

mod entries;

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use regex::Regex;
use vfguard_model::{FaultKind, Severity};

use crate::prefix::DevPrefix;
use crate::printf::{self, Conv, Lines, Piece, Spec};

/// Which prefix a message carries, and so which part of the line the format is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `dev_*`/`netdev_*` of one of these drivers: `<driver> <bdf>[ <netdev>]: <message>`.
    Driver(&'static [&'static str]),
    /// `dev_*` of any driver (AER details are printed under whatever driver is bound).
    AnyDevice,
    /// With or without a device prefix (AMD-Vi prints both ways).
    Any,
    /// No device prefix (`pr_*`, core messages).
    Bare,
}

/// How an entry takes part in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Starts an event.
    Head,
    /// Only continues an open event of its group (AER detail lines).
    Detail,
    /// Continues an open group whose head is a pure [`Role::Head`], else starts its own event
    /// (an AER "PCIe Bus Error" line after, or without, its "error message received" line).
    HeadOrDetail,
    /// Recognised context that is not an event by itself (DMAR's "DRHD: handling fault").
    Context,
}

/// Groups of lines that the kernel prints for one error, one printk each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// PCIe AER: source line, "PCIe Bus Error", status/mask, bits, TLP header.
    Aer,
    /// DPC: containment line and RP PIO details.
    Dpc,
    /// ARM SMMUv3: event line, raw dwords, decoded event.
    Smmu,
    /// AMD-Vi events whose device is on the next line.
    AmdVi,
    /// An Intel DMAR fault and the CONFIG_DMAR_DEBUG page-table dump after it, which names the
    /// DMAR unit (`Dump dmar1 table entries ...`): the unit tells apart requesters that the
    /// fault line prints without their PCI segment.
    Dmar,
    /// A firmware-first (GHES) AER report.
    AerFirmware,
    /// mlx5's health buffer dump (health.c print_health_info(): syndrome, assert registers, FW
    /// version), one printk per field after the head.
    Mlx5Health,
}

/// How an entry's kind is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindRule {
    /// Always this kind.
    Fixed(FaultKind),
    /// From the AER severity word in field `sev` (Corrected/Correctable, Non-Fatal, Fatal).
    AerSeverity,
    /// From the direction word in field `dir` (TX... → mdd_tx, RX... → mdd_rx).
    MddDirection,
    /// From the per-direction cause registers in fields `tx_mask` and `rx_mask` (ixgbe's
    /// `LVMMC_TX`/`LVMMC_RX`): mdd_tx when only Tx is non-zero, mdd_rx when only Rx is, one
    /// event of each (details `direction` = `tx`/`rx`) when both are, mdd when neither is.
    MddMasks,
    /// From the raw value of one field: the kind paired with the printed value, else `otherwise`
    /// (mlx5's error CQE opcode: `d` a send queue's, `e` a receive queue's).
    ByValue {
        /// The field whose printed value decides.
        field: &'static str,
        /// Printed value (as captured, trimmed) → kind.
        values: &'static [(&'static str, FaultKind)],
        /// The kind for any other value.
        otherwise: FaultKind,
    },
    /// An oops/BUG/WARNING: an event only when its location names a NIC driver.
    Oops,
}

/// Which function an entry's event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Printed by a PF driver about the PF or one of its VFs: `pf` is the prefix device.
    Pf,
    /// Printed on the function itself (a VF driver, an AER detail): `function` is the prefix
    /// device.
    Own,
    /// The function is in the fields (`seg`/`bus`/`dev`/`fn`, `rid`, `client`).
    Named,
    /// No PCI function (a netdev watchdog without a device, an IOMMU-wide error).
    Host,
}

/// One message form.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Stable id, `<driver>.<area>.<what>`.
    pub id: &'static str,
    /// Where it comes from.
    pub source: Source,
    /// Sub-prefixes the line may carry before the format (`"AER: "` from `dev_fmt`).
    pub prefixes: &'static [&'static str],
    /// The exact kernel format string (with `\n`).
    pub format: &'static str,
    /// One name per conversion, in order.
    pub fields: &'static [&'static str],
    /// Pattern overrides by field name (non-capturing regex), where the default is too loose.
    pub patterns: &'static [(&'static str, &'static str)],
    /// How the kind is decided.
    pub kind: KindRule,
    /// How much it matters.
    pub severity: Severity,
    /// Which function it is about.
    pub scope: Scope,
    /// Its role in a group of lines.
    pub role: Role,
    /// The group it opens or continues.
    pub group: Option<Group>,
    /// Whether `vf`-like numbers in it are device-absolute (global MDD registers).
    pub absolute: bool,
    /// Whether a VF's own driver prints it about what befell the VF (the victim's side):
    /// never, on its own, evidence against the VF's owner ([`vfguard_model::FaultEvent::victim`]).
    pub victim: bool,
    /// The kernels that print it, and where.
    pub since: &'static str,
    /// One line exactly as the kernel prints it (device prefix included, no log prefix).
    pub example: &'static str,
}

impl Entry {
    /// Defaults for the table: a head of a PF driver, fixed kind, warning.
    pub const DEFAULT: Entry = Entry {
        id: "",
        source: Source::Bare,
        prefixes: &[],
        format: "",
        fields: &[],
        patterns: &[],
        kind: KindRule::Fixed(FaultKind::Mailbox),
        severity: Severity::Warning,
        scope: Scope::Pf,
        role: Role::Head,
        group: None,
        absolute: false,
        victim: false,
        since: "",
        example: "",
    };
}

/// An entry compiled for matching.
#[derive(Debug)]
pub struct Compiled {
    /// The entry.
    pub entry: &'static Entry,
    /// The format split into printed lines.
    pub lines: Lines,
    /// One anchored regex per printed line.
    pub regexes: Vec<Regex>,
    /// Index of the first conversion of each printed line.
    pub first_conv: Vec<usize>,
    /// Every conversion of the format, in order.
    pub convs: Vec<Conv>,
}

impl Compiled {
    /// The conversion spec of field `i`.
    pub fn spec(&self, i: usize) -> Spec {
        self.convs.get(i).map_or(Spec::Str, |c| c.spec)
    }

    /// The part of `body` this entry's format is matched against (device prefix and optional
    /// sub-prefix removed), or `None` if the entry's source rules this line out.
    pub fn message<'b>(&self, dev: Option<&DevPrefix<'b>>, body: &'b str) -> Option<&'b str> {
        let msg = match (self.entry.source, dev) {
            (Source::Driver(drivers), Some(d)) if drivers.contains(&d.driver) => d.message,
            (Source::Driver(_), _) | (Source::AnyDevice, None) => return None,
            (Source::AnyDevice | Source::Any, Some(d)) => d.message,
            (Source::Any | Source::Bare, _) => body,
        };
        Some(
            self.entry
                .prefixes
                .iter()
                .find_map(|p| msg.strip_prefix(p))
                .unwrap_or(msg),
        )
    }

    /// Matches a (possibly multi-line) text against every printed line of the entry and returns
    /// the message and the raw value of each conversion: the inverse of [`printf::render`].
    pub fn captures(&self, text: &str) -> Option<(String, Vec<String>)> {
        let mut printed = text.split('\n');
        let first = printed.next()?;
        let dev = crate::prefix::split(first);
        let mut message = self.message(dev.as_ref(), first)?.to_owned();
        let mut values = Vec::new();
        let mut lines = vec![message.clone()];
        for (n, body) in std::iter::once(message.as_str()).chain(printed).enumerate() {
            let caps = self.regexes.get(n)?.captures(body)?;
            values
                .extend((1..caps.len()).map(|i| caps.get(i).map_or("", |m| m.as_str()).to_owned()));
            if n > 0 {
                lines.push(body.to_owned());
            }
        }
        message = lines.join("\n");
        Some((message, values))
    }
}

/// A catalog entry that does not compile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The format string is unusable.
    #[error("catalog entry {id}: {source}")]
    Format {
        /// Entry id.
        id: &'static str,
        /// Why.
        #[source]
        source: printf::FormatError,
    },
    /// The fields do not name every conversion.
    #[error("catalog entry {id}: {fields} field names for {convs} conversions")]
    FieldCount {
        /// Entry id.
        id: &'static str,
        /// Number of names.
        fields: usize,
        /// Number of conversions.
        convs: usize,
    },
    /// A derived or override pattern is not a valid regex, or adds capture groups.
    #[error("catalog entry {id}: bad pattern for line {line}: {reason}")]
    Pattern {
        /// Entry id.
        id: &'static str,
        /// Printed line index.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// The compiled catalog.
#[derive(Debug)]
pub struct Catalog {
    /// Every entry, in table order (earlier entries win when two match).
    pub entries: Vec<Compiled>,
    /// The prefilter over head anchors, for scanning buffers (leftmost-first).
    pub prefilter: AhoCorasick,
    /// The same anchors with overlapping matches, for finding every candidate entry of a line.
    pub line_matcher: AhoCorasick,
    /// Per prefilter pattern, the head entries it stands for.
    pub anchor_entries: Vec<Vec<usize>>,
    /// The anchor literals, in prefilter order.
    pub anchors: Vec<String>,
    /// Entry index by id.
    ids: std::collections::HashMap<&'static str, usize>,
}

impl Catalog {
    /// The built-in catalog, compiled once.
    ///
    /// # Panics
    /// Never in a tested build: every entry is compiled by the test suite, so a broken entry
    /// fails `cargo test` rather than a host.
    #[allow(clippy::expect_used)]
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::compile(entries::ENTRIES).expect("the built-in catalog compiles (tested)")
        })
    }

    /// The raw table.
    pub fn table() -> &'static [Entry] {
        entries::ENTRIES
    }

    /// Compiles a table of entries.
    pub fn compile(table: &'static [Entry]) -> Result<Catalog, CatalogError> {
        let entries = table
            .iter()
            .map(compile_entry)
            .collect::<Result<Vec<_>, _>>()?;
        let heads: Vec<(usize, Vec<&str>)> = entries
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.entry.role, Role::Head | Role::HeadOrDetail))
            .map(|(i, c)| (i, first_line_literals(c)))
            .collect();
        let anchors = choose_anchors(&heads);
        let anchor_entries: Vec<Vec<usize>> = anchors
            .iter()
            .map(|a| {
                heads
                    .iter()
                    .filter(|(_, lits)| lits.iter().any(|l| l.contains(a.as_str())))
                    .map(|(i, _)| *i)
                    .collect()
            })
            .collect();
        let build = |kind| {
            AhoCorasick::builder()
                .match_kind(kind)
                .build(&anchors)
                .map_err(|e| CatalogError::Pattern {
                    id: "<prefilter>",
                    line: 0,
                    reason: e.to_string(),
                })
        };
        // Leftmost-first lets the SIMD (Teddy) searcher run over the buffer; the per-line
        // matcher needs overlapping matches, which only standard semantics give.
        let prefilter = build(aho_corasick::MatchKind::LeftmostFirst)?;
        let line_matcher = build(aho_corasick::MatchKind::Standard)?;
        let ids = entries
            .iter()
            .enumerate()
            .map(|(i, c)| (c.entry.id, i))
            .collect();
        Ok(Catalog {
            ids,
            entries,
            prefilter,
            line_matcher,
            anchor_entries,
            anchors,
        })
    }

    /// Entry indices whose anchors occur in `text`, in table order.
    pub fn candidates(&self, text: &str, out: &mut Vec<usize>) {
        out.clear();
        for m in self.line_matcher.find_overlapping_iter(text) {
            if let Some(list) = self.anchor_entries.get(m.pattern().as_usize()) {
                out.extend_from_slice(list);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Looks an entry up by id.
    pub fn by_id(&self, id: &str) -> Option<&Compiled> {
        self.entries.get(*self.ids.get(id)?)
    }

    /// Renders the text of entry `id` exactly as the kernel prints it: the device prefix
    /// (`<driver> <bdf>[ <netdev>]: `, the netdev form when the driver prints it with
    /// `netdev_*`), the entry's sub-prefix, and the format filled with `values` (one raw string
    /// per conversion). `None` for an unknown id or a wrong number of values.
    pub fn render_line(
        &self,
        id: &str,
        dev: Option<(&str, &str, Option<&str>)>,
        values: &[&str],
    ) -> Option<String> {
        let c = self.by_id(id)?;
        if values.len() != c.convs.len() {
            return None;
        }
        let mut line = String::new();
        if let Some((driver, device, netdev)) = dev {
            let example = crate::prefix::split(c.entry.example);
            let netdev_style = example.as_ref().is_some_and(|p| p.netdev.is_some());
            match netdev.filter(|_| netdev_style) {
                Some(nd) => line.push_str(&format!("{driver} {device} {nd}: ")),
                None => line.push_str(&format!("{driver} {device}: ")),
            }
            // mlx5's `function:line:(pid N): ` origin, as the example prints it.
            if let Some(origin) = example.as_ref().and_then(|p| p.origin) {
                line.push_str(origin);
                line.push_str(": ");
            }
        }
        if let Some(p) = c.entry.prefixes.first() {
            if c.entry.example.contains(p) {
                line.push_str(p);
            }
        }
        line.push_str(&printf::render(&c.lines, values));
        Some(line)
    }
}

/// Shortest anchor worth searching for (shorter ones match too much noise).
const MIN_ANCHOR: usize = 9;

/// Coverage is weighed by anchor length up to this many bytes.
const ANCHOR_WEIGHT_CAP: usize = 12;

/// Words too common in kernel logs to make a good anchor on their own.
const STOPWORDS: &[&str] = &[
    "detected", "device", "error", "Error", "failed", "Failed", "reset", "received", "message",
    "address", "filter", "queue", "event", "driver", "enabled", "status", "from", "with",
];

/// The literal text of an entry's first printed line, trimmed, one piece per run; and the name
/// of its driver when only one driver prints it, since the device prefix puts that name on every
/// line the entry matches. One anchor (`mlx5_core`) then stands for a whole driver's entries,
/// which keeps the prefilter within its SIMD limit as the catalog grows.
fn first_line_literals(c: &Compiled) -> Vec<&str> {
    let mut lits: Vec<&str> = c
        .lines
        .first()
        .map(|l| {
            l.iter()
                .filter_map(|p| match p {
                    Piece::Lit(t) => Some(t.trim()),
                    Piece::Conv(_) => None,
                })
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Source::Driver([only]) = c.entry.source {
        lits.push(only);
    }
    lits
}

/// Picks a small set of literals such that every head entry's first line contains one: a
/// greedy set cover over runs of up to four whole words (at least 5 bytes, not a lone common
/// word). Fewer anchors let Aho-Corasick use its SIMD (Teddy) search, which is what makes the
/// prefilter faster than reading the lines.
fn choose_anchors(heads: &[(usize, Vec<&str>)]) -> Vec<String> {
    let mut grams: Vec<&str> = Vec::new();
    for (_, lits) in heads {
        for lit in lits {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(lit.match_indices(' ').map(|(i, _)| i + 1))
                .collect();
            for (k, &a) in starts.iter().enumerate() {
                for &b in starts
                    .iter()
                    .skip(k + 1)
                    .take(3)
                    .chain(std::iter::once(&(lit.len() + 1)))
                {
                    let Some(g) = lit.get(a..b.saturating_sub(1)).map(str::trim) else {
                        continue;
                    };
                    let useful = g.len() >= MIN_ANCHOR
                        && !g.contains("  ")
                        && g.bytes().any(|c| c.is_ascii_alphabetic())
                        && !STOPWORDS.contains(&g);
                    if useful {
                        grams.push(g);
                    }
                }
            }
        }
    }
    grams.sort_unstable();
    grams.dedup();
    // Which heads each gram covers, computed once.
    let cover: Vec<Vec<usize>> = grams
        .iter()
        .map(|g| {
            heads
                .iter()
                .enumerate()
                .filter(|(_, (_, lits))| lits.iter().any(|l| l.contains(g)))
                .map(|(h, _)| h)
                .collect()
        })
        .collect();
    let mut covered = vec![false; heads.len()];
    let mut chosen: Vec<String> = Vec::new();
    while let Some(first_open) = covered.iter().position(|c| !c) {
        let best = grams
            .iter()
            .zip(&cover)
            .map(|(g, hs)| {
                let n = hs
                    .iter()
                    .filter(|&&h| !covered.get(h).copied().unwrap_or(true))
                    .count();
                // Longer literals are rarer in a log: weigh coverage by length, up to a point.
                (n * g.len().min(ANCHOR_WEIGHT_CAP), g.len(), *g, hs)
            })
            .filter(|(n, _, _, _)| *n > 0)
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(a.2)));
        match best {
            Some((_, _, g, hs)) => {
                for &h in hs {
                    if let Some(c) = covered.get_mut(h) {
                        *c = true;
                    }
                }
                chosen.push(g.to_owned());
            }
            None => {
                // No usable gram: fall back to the entry's longest literal, however short.
                let lit = heads
                    .get(first_open)
                    .and_then(|(_, l)| l.iter().max_by_key(|t| t.len()))
                    .map(|t| (*t).to_owned())
                    .unwrap_or_default();
                for (h, (_, lits)) in heads.iter().enumerate() {
                    if !lit.is_empty() && lits.iter().any(|l| l.contains(lit.as_str())) {
                        if let Some(c) = covered.get_mut(h) {
                            *c = true;
                        }
                    }
                }
                if let Some(c) = covered.get_mut(first_open) {
                    *c = true;
                }
                if !lit.is_empty() {
                    chosen.push(lit);
                }
            }
        }
    }
    chosen.sort();
    chosen
}

fn compile_entry(entry: &'static Entry) -> Result<Compiled, CatalogError> {
    let lines = printf::parse(entry.format).map_err(|source| CatalogError::Format {
        id: entry.id,
        source,
    })?;
    let convs: Vec<Conv> = lines
        .iter()
        .flatten()
        .filter_map(|p| match p {
            Piece::Conv(c) => Some(*c),
            Piece::Lit(_) => None,
        })
        .collect();
    if convs.len() != entry.fields.len() {
        return Err(CatalogError::FieldCount {
            id: entry.id,
            fields: entry.fields.len(),
            convs: convs.len(),
        });
    }
    let pattern_for = |i: usize, conv: Conv| -> String {
        let name = entry.fields.get(i).copied().unwrap_or("");
        entry.patterns.iter().find(|(n, _)| *n == name).map_or_else(
            || printf::default_pattern(conv).to_owned(),
            |(_, p)| (*p).to_owned(),
        )
    };
    let mut regexes = Vec::with_capacity(lines.len());
    let mut first_conv = Vec::with_capacity(lines.len());
    let mut next = 0;
    for (n, line) in lines.iter().enumerate() {
        let src = printf::line_regex(line, next, &pattern_for);
        let re = Regex::new(&src).map_err(|e| CatalogError::Pattern {
            id: entry.id,
            line: n,
            reason: e.to_string(),
        })?;
        let count = printf::conv_count(line);
        if re.captures_len() != count + 1 {
            return Err(CatalogError::Pattern {
                id: entry.id,
                line: n,
                reason: format!(
                    "{} capture groups for {count} conversions (use (?:...) in overrides)",
                    re.captures_len() - 1
                ),
            });
        }
        first_conv.push(next);
        next += count;
        regexes.push(re);
    }
    Ok(Compiled {
        entry,
        lines,
        regexes,
        first_conv,
        convs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_entry_compiles_and_ids_are_unique() {
        let cat = Catalog::compile(entries::ENTRIES).unwrap();
        let mut ids = HashSet::new();
        for c in &cat.entries {
            assert!(ids.insert(c.entry.id), "duplicate id {}", c.entry.id);
            assert!(
                !c.entry.example.is_empty(),
                "{} has no example line",
                c.entry.id
            );
            assert!(
                !c.entry.since.is_empty(),
                "{} says nothing of its kernels",
                c.entry.id
            );
        }
    }

    #[test]
    fn the_prefilter_stays_small_enough_for_simd_search() {
        // aho-corasick's Teddy searcher takes at most 64 patterns; past that the scan falls back
        // to a DFA several times slower (docs/performance.md).
        assert!(
            Catalog::get().anchors.len() <= 64,
            "{} anchors",
            Catalog::get().anchors.len()
        );
    }

    #[test]
    fn one_anchor_stands_for_the_mlx5_entries() {
        let cat = Catalog::get();
        assert!(
            cat.anchors.iter().any(|a| a == "mlx5_core"),
            "{:?}",
            cat.anchors
        );
        let mut found = Vec::new();
        cat.candidates(
            "mlx5_core 0000:08:00.0: poll_health:801:(pid 0): Fatal error 3 detected",
            &mut found,
        );
        assert!(found
            .iter()
            .any(|&i| cat.entries[i].entry.id == "mlx5.health.fatal_error"));
    }

    #[test]
    fn head_anchors_are_long_enough_to_prefilter() {
        let cat = Catalog::get();
        for a in &cat.anchors {
            assert!(a.len() >= 4, "anchor {a:?} is too short to reject lines");
        }
    }
}
