//! Text from outside (kernel messages, owner names, file names, operators' reasons) made safe to
//! write to a terminal or a text log: control characters and bidirectional controls are written
//! as escapes, so a kernel line or a VM name cannot move the cursor, recolour the screen, forge a
//! log line or reorder what the reader sees.
//!
//! # Design
//! One function, [`printable`], and its [`fmt::Display`] wrapper [`Printable`], used wherever
//! vfguard writes such text for people: `scan`'s table, `explain`, `incidents`, `inventory`,
//! `simulate` and `demo`, and the text log's field formatter. Escaped are:
//! - C0 controls (U+0000–U+001F), DEL (U+007F) and C1 controls (U+0080–U+009F): ESC starts a
//!   terminal escape sequence (and U+009B, CSI, does on some terminals), CR and LF rewrite or
//!   forge lines;
//! - the bidirectional controls of "Trojan Source" (CVE-2021-42574): the embeddings and
//!   overrides U+202A–U+202E, the isolates U+2066–U+2069, and the marks U+200E, U+200F,
//!   U+061C; and the line and paragraph separators U+2028, U+2029, which some viewers break
//!   lines at;
//! - the backslash itself, so the escaping is reversible ([`unescape`]): `\\`.
//!
//! Tab, line feed and carriage return are written `\t`, `\n`, `\r`; other C0 controls and DEL
//! `\x1b`-style; the rest `\u{202e}`-style (Rust's own notation).
//!
//! # Limitations
//! Other invisible or confusable characters (zero-width joiners, homoglyphs) are kept: they
//! cannot reorder or hide text around them, and names in any script stay readable. JSON output
//! is left to its encoder (`serde_json` escapes every C0 control, `"` and `\`).

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Whether `c` is written as an escape by [`printable`] (the backslash aside, which is
/// doubled).
pub fn is_escaped(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `s` with every control character, bidirectional control and backslash escaped (see the
/// module's documentation); `s` itself, unallocated, when it holds none.
pub fn printable(s: &str) -> Cow<'_, str> {
    match s.find(|c| c == '\\' || is_escaped(c)) {
        None => Cow::Borrowed(s),
        Some(first) => {
            let (clean, rest) = s.split_at(first);
            let mut out = String::with_capacity(s.len() + 8);
            out.push_str(clean);
            for c in rest.chars() {
                push_escaped(&mut out, c);
            }
            Cow::Owned(out)
        }
    }
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if is_escaped(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Writes its text through [`printable`], honouring width and alignment (`{:<24}`).
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&printable(self.0))
    }
}

/// The text [`printable`] was given, from what it wrote; `None` for text it cannot have
/// written (a lone backslash, an unknown escape, a character it escapes left raw).
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            if is_escaped(c) {
                return None;
            }
            out.push(c);
            continue;
        }
        let c = match it.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'x' => {
                let hex: String = it.by_ref().take(2).collect();
                if hex.len() != 2 {
                    return None;
                }
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            'u' => {
                if it.next()? != '{' {
                    return None;
                }
                let hex: String = it.by_ref().take_while(|&c| c != '}').collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        };
        out.push(c);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        for s in [
            "",
            "vm:web-7",
            "netns:租户-a",
            "0000:3c:00.4 Malicious Driver Detected",
        ] {
            assert!(matches!(printable(s), Cow::Borrowed(t) if t == s));
        }
    }

    #[test]
    fn escapes_terminal_sequences_bidi_controls_and_backslashes() {
        assert_eq!(
            printable(
                "a\u{1b}[31mred\u{1b}[0m\r\n\tb\\c\u{7f}\u{9b}2J\u{202e}evil\u{2066}\u{2029}"
            ),
            "a\\x1b[31mred\\x1b[0m\\r\\n\\tb\\\\c\\x7f\\u{9b}2J\\u{202e}evil\\u{2066}\\u{2029}"
        );
        assert_eq!(printable("\0"), "\\x00");
    }

    #[test]
    fn the_display_wrapper_pads_the_escaped_text() {
        assert_eq!(format!("[{:<8}]", Printable("a\nb")), "[a\\nb    ]");
        assert_eq!(format!("[{:>4}]", Printable("ok")), "[  ok]");
    }

    #[test]
    fn unescape_refuses_what_printable_never_writes() {
        for s in [
            "\\",
            "\\q",
            "\\x1",
            "\\u{zz}",
            "\\u{110000}",
            "a\u{1b}",
            "\\u202e",
        ] {
            assert_eq!(unescape(s), None, "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_comes_out_without_controls_and_back_unchanged(s in any::<String>()) {
            let p = printable(&s);
            prop_assert!(!p.chars().any(is_escaped), "{:?}", p);
            prop_assert_eq!(unescape(&p), Some(s));
        }

        #[test]
        fn control_heavy_text_too(s in "[\\x00-\\x20\\x7f-\\u{a0}\\\\xu{}\u{202a}-\u{202e}\u{2066}-\u{2069}a]{0,40}") {
            let p = printable(&s);
            prop_assert!(!p.chars().any(is_escaped), "{:?}", p);
            prop_assert_eq!(unescape(&p), Some(s));
        }
    }
}
