//! Render → parse round trip for every catalog entry: a kmsg record the simulator renders from
//! an entry's format (with the values of its example line) classifies back to that entry with
//! the same fields as the example itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use vfguard_parse::catalog::{Catalog, Role};
use vfguard_parse::{kmsg_line, prefix, scan_text, Classifier, FormatHint};

#[test]
fn every_head_entry_round_trips_through_a_rendered_record() {
    let cat = Catalog::get();
    let mut checked = 0;
    for c in cat
        .entries
        .iter()
        .filter(|c| matches!(c.entry.role, Role::Head | Role::HeadOrDetail))
    {
        let (_, values) = c.captures(c.entry.example).unwrap();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let first = c.entry.example.lines().next().unwrap();
        let dev = prefix::split(first);
        let device = dev.as_ref().map(|p| (p.driver, p.device, p.netdev));
        let rec = vfguard_sim::render::record(c.entry.id, device, &refs, 42, 1_000_000).unwrap();
        let mut cl = Classifier::new();
        let mut got = Vec::new();
        cl.push(&kmsg_line(&rec), &mut got);
        cl.finish(&mut got);
        let (want, _) = scan_text(c.entry.example.as_bytes(), FormatHint::Auto);
        match (got.as_slice(), want.as_slice()) {
            ([], []) => {} // an oops outside NIC drivers, dropped both ways
            ([g], [w]) => {
                assert_eq!(g.catalog_id, c.entry.id, "{}", rec.text);
                assert_eq!(
                    (g.kind, g.vf, g.vf_abs, g.queue, g.count, g.mac, g.function, g.pf),
                    (w.kind, w.vf, w.vf_abs, w.queue, w.count, w.mac, w.function, w.pf),
                    "{}",
                    c.entry.id
                );
                assert_eq!(g.details, w.details, "{}", c.entry.id);
                assert!(
                    g.trusted,
                    "{}: a rendered kernel record is trusted",
                    c.entry.id
                );
                checked += 1;
            }
            (g, w) => panic!("{}: rendered {g:?} vs example {w:?}", c.entry.id),
        }
    }
    assert!(checked > 100);
}
