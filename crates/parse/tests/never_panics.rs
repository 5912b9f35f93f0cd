//! Property tests: no input makes the parser panic, and chunking never changes the result.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation
)]

use proptest::prelude::*;
use vfguard_parse::catalog::Catalog;
use vfguard_parse::{scan_text, FormatHint, Scanner};

/// Lines built from catalog examples and log prefixes, mangled: closer to real input than
/// uniform bytes, so the matchers themselves are exercised.
fn log_line() -> impl Strategy<Value = String> {
    let examples: Vec<&'static str> = Catalog::table().iter().map(|e| e.example).collect();
    let prefixes = vec![
        "",
        "[  12.345678] ",
        "kernel: ",
        "6,12,345,-;",
        "11,1,2,-;",
        "Oct 10 12:14:39 h kernel: ",
        "kern  :err   : ",
    ];
    (
        prop::sample::select(prefixes),
        prop::sample::select(examples),
        any::<u8>(),
        0usize..200,
    )
        .prop_map(|(p, e, b, cut)| {
            let mut s = format!("{p}{e}");
            if b % 3 == 0 {
                let at = cut.min(s.len());
                let at = (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                s.truncate(at);
            } else if b % 3 == 1 {
                s = s.replace(|c: char| c.is_ascii_digit(), "9999999999999999999999");
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = scan_text(&bytes, FormatHint::Auto);
        let _ = scan_text(&bytes, FormatHint::Kmsg);
    }

    #[test]
    fn mangled_log_lines_never_panic(lines in proptest::collection::vec(log_line(), 0..40)) {
        let text = lines.join("\n");
        let (events, stats) = scan_text(text.as_bytes(), FormatHint::Auto);
        let want = text.lines().count();
        prop_assert_eq!(stats.lines as usize, want, "every input line is counted once");
        for e in events {
            prop_assert!(e.line >= 1 && e.line <= e.end_line);
        }
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_events(lines in proptest::collection::vec(log_line(), 1..30), split in any::<prop::sample::Index>()) {
        let text = lines.join("\n") + "\n";
        let (whole, _) = scan_text(text.as_bytes(), FormatHint::Auto);
        // Feed in two reads, the way the CLI carries an unconsumed tail into the next chunk.
        let cut = split.index(text.len());
        let mut s = Scanner::new(FormatHint::Auto);
        let mut events = Vec::new();
        let mut pending: Vec<u8> = text.as_bytes()[..cut].to_vec();
        let used = s.feed(&pending, false, &mut events);
        pending.drain(..used);
        pending.extend_from_slice(&text.as_bytes()[cut..]);
        s.feed(&pending, true, &mut events);
        prop_assert_eq!(whole, events);
    }
}
