//! One test per catalog entry, from its own example line: it renders back from the kernel
//! format, and classifying it yields that entry (heads) or joins its group (details).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation
)]

use vfguard_model::FaultKind;
use vfguard_parse::catalog::{Catalog, Group, Role};
use vfguard_parse::{printf, scan_text, FormatHint};

/// A head example for each group, so a detail line can be classified in its context.
fn group_head(group: Group) -> &'static str {
    match group {
        Group::Aer => {
            "pcieport 0000:3a:00.0: AER: Correctable error message received from 0000:3b:02.1"
        }
        Group::Dpc => "pcieport 0000:00:1c.0: DPC: containment event, status:0x1f01 source:0x3b00",
        Group::Smmu => "arm-smmu-v3 arm-smmu-v3.0.auto: event 0x10 received:",
        Group::AmdVi => "AMD-Vi: Event logged [Device not attached to domain properly]",
        Group::Dmar => "DMAR: [DMA Read NO_PASID] Request device [3b:02.1] fault addr 0x7ff3c000 [fault reason 0x06] PTE Read access is not set",
        Group::AerFirmware => {
            "pcieport 0000:00:03.0: AER: aer_status: 0x00004000, aer_mask: 0x00000000"
        }
        Group::Mlx5Health => {
            "mlx5_core 0000:08:00.0: print_health_info:458:(pid 0): Health issue observed, firmware internal error, severity(3) ERROR:"
        }
    }
}

#[test]
fn every_example_renders_back_from_its_format() {
    let cat = Catalog::get();
    let mut failures = Vec::new();
    for c in &cat.entries {
        match c.captures(c.entry.example) {
            Some((message, values)) => {
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                let rendered = printf::render(&c.lines, &refs);
                // Leading and trailing blanks are optional by design (see printf::line_regex).
                if rendered.trim() != message.trim() {
                    failures.push(format!(
                        "{}: rendered {rendered:?} != {message:?}",
                        c.entry.id
                    ));
                }
            }
            None => failures.push(format!(
                "{}: example does not match its own format",
                c.entry.id
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_head_example_classifies_to_its_own_entry() {
    let cat = Catalog::get();
    let mut failures = Vec::new();
    for c in cat
        .entries
        .iter()
        .filter(|c| matches!(c.entry.role, Role::Head | Role::HeadOrDetail))
    {
        let (events, _) = scan_text(c.entry.example.as_bytes(), FormatHint::Auto);
        let want_lines = c.entry.example.lines().count() as u64;
        match events.as_slice() {
            [] if c.entry.kind == vfguard_parse::catalog::KindRule::Oops => {
                failures.push(format!("{}: the NIC oops example was dropped", c.entry.id));
            }
            [e] if e.catalog_id == c.entry.id && e.end_line == want_lines && e.trusted => {}
            other => failures.push(format!(
                "{}: got {:?}",
                c.entry.id,
                other
                    .iter()
                    .map(|e| (&e.catalog_id, e.line, e.end_line))
                    .collect::<Vec<_>>()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_detail_example_joins_its_group() {
    let cat = Catalog::get();
    let mut failures = Vec::new();
    for c in cat.entries.iter().filter(|c| c.entry.role == Role::Detail) {
        let Some(group) = c.entry.group else {
            failures.push(format!("{}: a detail without a group", c.entry.id));
            continue;
        };
        let text = format!("{}\n{}", group_head(group), c.entry.example);
        let (events, _) = scan_text(text.as_bytes(), FormatHint::Auto);
        match events.as_slice() {
            [e] if e.line == 1 && e.end_line == 2 => {}
            other => failures.push(format!(
                "{}: got {:?}",
                c.entry.id,
                other
                    .iter()
                    .map(|e| (&e.catalog_id, e.line, e.end_line))
                    .collect::<Vec<_>>()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn context_examples_match_but_are_not_events() {
    let cat = Catalog::get();
    for c in cat.entries.iter().filter(|c| c.entry.role == Role::Context) {
        assert!(c.captures(c.entry.example).is_some(), "{}", c.entry.id);
        let (events, _) = scan_text(c.entry.example.as_bytes(), FormatHint::Auto);
        assert!(events.is_empty(), "{}: {events:?}", c.entry.id);
    }
}

#[test]
fn every_fault_kind_has_an_entry() {
    let cat = Catalog::get();
    for kind in FaultKind::ALL {
        let found = cat.entries.iter().any(|c| match c.entry.kind {
            vfguard_parse::catalog::KindRule::Fixed(k) => k == kind,
            vfguard_parse::catalog::KindRule::AerSeverity => {
                matches!(
                    kind,
                    FaultKind::AerCorrectable | FaultKind::AerNonfatal | FaultKind::AerFatal
                )
            }
            vfguard_parse::catalog::KindRule::MddDirection => {
                matches!(kind, FaultKind::MddTx | FaultKind::MddRx)
            }
            vfguard_parse::catalog::KindRule::ByValue {
                values, otherwise, ..
            } => otherwise == kind || values.iter().any(|(_, k)| *k == kind),
            vfguard_parse::catalog::KindRule::MddMasks => {
                matches!(kind, FaultKind::MddTx | FaultKind::MddRx | FaultKind::Mdd)
            }
            vfguard_parse::catalog::KindRule::Oops => kind == FaultKind::Oops,
        });
        assert!(found, "no catalog entry yields {kind}");
    }
}

/// What the simulator does (crates/sim/tests/render_roundtrip.rs), without the simulator: a line
/// rendered from each head entry's format, with its example's prefix (and mlx5 origin) and
/// values, classifies as the example does.
#[test]
fn every_head_entry_renders_a_line_that_classifies_like_its_example() {
    let cat = Catalog::get();
    let mut failures = Vec::new();
    for c in cat
        .entries
        .iter()
        .filter(|c| matches!(c.entry.role, Role::Head | Role::HeadOrDetail))
    {
        let (_, values) = c.captures(c.entry.example).unwrap();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let first = c.entry.example.lines().next().unwrap();
        let dev = vfguard_parse::prefix::split(first);
        let device = dev.as_ref().map(|p| (p.driver, p.device, p.netdev));
        let Some(line) = cat.render_line(c.entry.id, device, &refs) else {
            failures.push(format!("{}: does not render", c.entry.id));
            continue;
        };
        let (got, _) = scan_text(line.as_bytes(), FormatHint::Auto);
        let (want, _) = scan_text(c.entry.example.as_bytes(), FormatHint::Auto);
        let key = |e: &vfguard_model::FaultEvent| {
            (
                e.catalog_id.clone(),
                e.kind,
                e.vf,
                e.queue,
                e.function,
                e.pf,
                e.details.clone(),
            )
        };
        let (g, w): (Vec<_>, Vec<_>) = (
            got.iter().map(key).collect(),
            want.iter().map(key).collect(),
        );
        if g != w {
            failures.push(format!(
                "{}: {line:?}\n  got  {g:?}\n  want {w:?}",
                c.entry.id
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
