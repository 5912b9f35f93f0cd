//! The kernel's printf formats as data: parse a format string (`"VF %d attempted to ..."`),
//! derive the regular expression that matches what it prints, and render it back with values.
//!
//! # Design
//! The catalog stores the exact format string from the driver source. The matcher is *derived*
//! from it, so the format we document is the format we match, and the simulator renders lines
//! from the same string. Conversions follow lib/vsprintf.c: `%d %u %x %llx %s %c %p`, the `%pM`
//! (colon MAC), `%pm` (bare MAC) and `%pS` (symbol) extensions, flags `#-0 +`, widths.

use std::fmt::Write as _;

/// One conversion specification (`%#06x`, `%-22s`, `%pM`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    /// `#` flag: hex with a `0x` prefix.
    pub alt: bool,
    /// A field width was given (the value may be padded with spaces).
    pub width: bool,
    /// What is printed.
    pub spec: Spec,
}

/// The value class of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `%d`, `%i` (any length modifier).
    Signed,
    /// `%u`.
    Unsigned,
    /// `%x`, `%X`.
    Hex,
    /// `%s`.
    Str,
    /// `%c`.
    Char,
    /// A plain `%p` (hashed pointer).
    Pointer,
    /// `%pM`: `00:1b:21:aa:bb:cc`.
    MacColon,
    /// `%pm`: `001b21aabbcc`.
    MacBare,
    /// `%pS`/`%ps`: `symbol+0x1f/0x80 [module]`.
    Symbol,
}

impl Spec {
    /// The radix a number printed with this conversion is read in.
    pub fn radix(self) -> u32 {
        match self {
            Spec::Hex | Spec::Pointer => 16,
            _ => 10,
        }
    }
}

/// A piece of a format line: literal text or a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (never contains `\n`).
    Lit(String),
    /// A conversion.
    Conv(Conv),
}

/// A format split at its embedded newlines: one `Vec<Piece>` per printed line.
pub type Lines = Vec<Vec<Piece>>;

/// Why a format string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A `%` with no conversion after it.
    #[error("format {format:?}: incomplete conversion at byte {at}")]
    Incomplete {
        /// The format.
        format: String,
        /// Byte offset of the `%`.
        at: usize,
    },
    /// A conversion this module does not know.
    #[error("format {format:?}: unsupported conversion {conv:?}")]
    Unsupported {
        /// The format.
        format: String,
        /// The conversion text.
        conv: String,
    },
}

/// Parses a kernel format string into printed lines of pieces. A trailing `\n` is dropped.
pub fn parse(format: &str) -> Result<Lines, FormatError> {
    let mut lines: Lines = vec![Vec::new()];
    let mut lit = String::new();
    let mut chars = format.char_indices().peekable();
    let flush = |lit: &mut String, lines: &mut Lines| {
        if !lit.is_empty() {
            if let Some(cur) = lines.last_mut() {
                cur.push(Piece::Lit(std::mem::take(lit)));
            }
        }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            '\n' => {
                flush(&mut lit, &mut lines);
                lines.push(Vec::new());
            }
            '%' => {
                if chars.peek().map(|&(_, c)| c) == Some('%') {
                    chars.next();
                    lit.push('%');
                    continue;
                }
                let incomplete = || FormatError::Incomplete {
                    format: format.to_owned(),
                    at,
                };
                let mut alt = false;
                let mut width = false;
                while let Some(&(_, f)) = chars.peek() {
                    match f {
                        '#' => alt = true,
                        '-' | '0' | '+' | ' ' => {}
                        _ => break,
                    }
                    chars.next();
                }
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() || d == '.' {
                        width = true;
                        chars.next();
                    } else {
                        break;
                    }
                }
                while let Some(&(_, l)) = chars.peek() {
                    if matches!(l, 'h' | 'l' | 'z' | 'j' | 't' | 'L') {
                        chars.next();
                    } else {
                        break;
                    }
                }
                let (_, s) = chars.next().ok_or_else(incomplete)?;
                let spec = match s {
                    'd' | 'i' => Spec::Signed,
                    'u' => Spec::Unsigned,
                    'x' | 'X' => Spec::Hex,
                    's' => Spec::Str,
                    'c' => Spec::Char,
                    'p' => match chars.peek().map(|&(_, c)| c) {
                        Some('M') => {
                            chars.next();
                            Spec::MacColon
                        }
                        Some('m') => {
                            chars.next();
                            Spec::MacBare
                        }
                        Some('S' | 's') => {
                            chars.next();
                            Spec::Symbol
                        }
                        Some(c) if c.is_ascii_alphabetic() => {
                            return Err(FormatError::Unsupported {
                                format: format.to_owned(),
                                conv: format!("%p{c}"),
                            })
                        }
                        _ => Spec::Pointer,
                    },
                    other => {
                        return Err(FormatError::Unsupported {
                            format: format.to_owned(),
                            conv: format!("%{other}"),
                        })
                    }
                };
                flush(&mut lit, &mut lines);
                if let Some(cur) = lines.last_mut() {
                    cur.push(Piece::Conv(Conv { alt, width, spec }));
                }
            }
            c => lit.push(c),
        }
    }
    flush(&mut lit, &mut lines);
    if lines.len() > 1 && lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    Ok(lines)
}

/// The default pattern for a conversion's value (no capture group).
pub fn default_pattern(conv: Conv) -> &'static str {
    match (conv.spec, conv.width, conv.alt) {
        (Spec::Signed, false, _) => r"-?\d+",
        (Spec::Signed, true, _) => r" *-?\d+",
        (Spec::Unsigned, false, _) => r"\d+",
        (Spec::Unsigned, true, _) => r" *\d+",
        (Spec::Hex, _, true) => r"(?:0[xX])?[0-9a-fA-F]+",
        (Spec::Hex, _, false) => r" *[0-9a-fA-F]+",
        (Spec::Str, _, _) => r".*?",
        (Spec::Char, _, _) => r".",
        (Spec::Pointer, _, _) => r"\S+",
        (Spec::MacColon, _, _) => r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}",
        (Spec::MacBare, _, _) => r"[0-9a-fA-F]{12}",
        (Spec::Symbol, _, _) => r"\S+(?: \[\S+\])?",
    }
}

/// Builds an anchored regex source for one printed line. `pattern_for(i, conv)` gives the
/// pattern of the `i`-th conversion of the whole format (counting across lines).
///
/// Runs of spaces match one or more spaces, leading and trailing spaces are optional, so a line
/// whose padding was squeezed by a log shipper still matches.
pub fn line_regex(
    pieces: &[Piece],
    first_conv: usize,
    pattern_for: &dyn Fn(usize, Conv) -> String,
) -> String {
    let mut re = String::from(r"^\s*");
    let mut conv_idx = first_conv;
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Lit(text) => {
                let mut t = text.as_str();
                if i == 0 {
                    t = t.trim_start();
                }
                if i == last {
                    t = t.trim_end();
                }
                let mut in_space = false;
                for ch in t.chars() {
                    if ch == ' ' || ch == '\t' {
                        if !in_space {
                            re.push_str(r"\s+");
                        }
                        in_space = true;
                    } else {
                        in_space = false;
                        re.push_str(&regex::escape(&ch.to_string()));
                    }
                }
            }
            Piece::Conv(conv) => {
                let _ = write!(re, "({})", pattern_for(conv_idx, *conv));
                conv_idx += 1;
            }
        }
    }
    re.push_str(r"\s*$");
    re
}

/// Number of conversions in a line.
pub fn conv_count(pieces: &[Piece]) -> usize {
    pieces
        .iter()
        .filter(|p| matches!(p, Piece::Conv(_)))
        .count()
}

/// Renders lines with the raw text of each conversion, in order; extra values are ignored and
/// missing ones render empty. Lines are joined with `\n`, as the kernel prints them.
pub fn render(lines: &Lines, values: &[&str]) -> String {
    let mut out = String::new();
    let mut vals = values.iter();
    for (n, line) in lines.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for piece in line {
            match piece {
                Piece::Lit(t) => out.push_str(t),
                Piece::Conv(_) => out.push_str(vals.next().copied().unwrap_or("")),
            }
        }
    }
    out
}

/// The longest literal run of a line, for the prefilter (trimmed).
pub fn longest_literal(pieces: &[Piece]) -> &str {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Lit(t) => Some(t.trim()),
            Piece::Conv(_) => None,
        })
        .max_by_key(|t| t.len())
        .unwrap_or("")
}

/// Reads a printed number as its conversion prints it (`0x` prefixes and padding allowed).
pub fn read_number(raw: &str, spec: Spec) -> Option<u64> {
    let t = raw.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if spec.radix() == 16 || raw.trim().starts_with("0x") {
        u64::from_str_radix(t, 16).ok()
    } else {
        t.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_conversions() {
        let lines = parse("VF %d attempted\nReload the VF driver\n").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(conv_count(&lines[0]), 1);
        assert_eq!(lines[1], vec![Piece::Lit("Reload the VF driver".into())]);
    }

    #[test]
    fn knows_kernel_pointer_extensions() {
        let lines = parse("MAC %pM / %pm at %pS, %%%llu").unwrap();
        let specs: Vec<Spec> = lines[0]
            .iter()
            .filter_map(|p| match p {
                Piece::Conv(c) => Some(c.spec),
                Piece::Lit(_) => None,
            })
            .collect();
        assert_eq!(
            specs,
            [Spec::MacColon, Spec::MacBare, Spec::Symbol, Spec::Unsigned]
        );
        assert!(parse("bad %").is_err());
        assert!(parse("bad %q").is_err());
    }

    #[test]
    fn derived_regex_matches_what_printf_prints() {
        let lines = parse("event 0x%02x on TX queue %d PF number 0x%02x").unwrap();
        let re = regex::Regex::new(&line_regex(&lines[0], 0, &|_, c| {
            default_pattern(c).to_owned()
        }))
        .unwrap();
        let caps = re
            .captures("event 0x01 on TX queue 3 PF number 0x40")
            .unwrap();
        assert_eq!(&caps[3], "40");
        assert_eq!(read_number(&caps[3], Spec::Hex), Some(0x40));
    }

    #[test]
    fn renders_back() {
        let lines = parse("%u Spoofed packets detected\n").unwrap();
        assert_eq!(render(&lines, &["12"]), "12 Spoofed packets detected");
    }
}
