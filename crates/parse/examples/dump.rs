//! Dumps the events of a text file (development aid).
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let text = std::fs::read(&path).unwrap_or_default();
    let (events, stats) = vfguard_parse::scan_text(&text, vfguard_parse::FormatHint::Auto);
    for e in events {
        println!(
            "{}-{} {} {} pf={:?} vf={:?} abs={:?} fn={:?} q={:?} trusted={} {:?}",
            e.line,
            e.end_line,
            e.kind,
            e.catalog_id,
            e.pf,
            e.vf,
            e.vf_abs,
            e.function,
            e.queue,
            e.trusted,
            e.details
        );
    }
    eprintln!("{stats:?}");
}
