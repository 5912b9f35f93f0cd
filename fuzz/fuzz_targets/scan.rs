//! Fuzz the catalog and the scanner over arbitrary log text, whole and in two chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfguard_parse::{scan_text, FormatHint, Scanner};

fuzz_target!(|data: &[u8]| {
    let (whole, _) = scan_text(data, FormatHint::Auto);
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut s = Scanner::new(FormatHint::Auto);
    let mut events = Vec::new();
    let mut buf = data[..cut].to_vec();
    let used = s.feed(&buf, false, &mut events);
    buf.drain(..used);
    buf.extend_from_slice(&data[cut..]);
    s.feed(&buf, true, &mut events);
    assert_eq!(whole, events, "chunking changed the events");
});
