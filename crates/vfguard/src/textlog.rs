//! The daemon's text log (`log_format = "text"`, or `auto` off systemd): tracing-subscriber's
//! line format with a field formatter of our own, so text from outside cannot forge a line or
//! drive the terminal that shows the log.
//!
//! # Design
//! Owner names, kernel text, file names and operators' reasons reach the log in messages and
//! fields. tracing-subscriber 0.3 writes `%` fields and the parts of a message as they are, and
//! sanitises only ESC, BEL, BS, FF, DEL and C1 in messages: a VM named `a\n2025-... WARN ...`
//! wrote a second, forged line, and CR or U+202E rewrote what the reader saw. Here every value,
//! message included, goes through [`vfguard_model::printable`] (control characters, bidi
//! controls and backslashes escaped, reversibly), and a field's value is quoted logfmt-style
//! (`owner="vm:a b"`, `\"` within) when it holds a space, `=` or `"`, or is empty, so a value
//! cannot pose as another field either.
//!
//! The JSON log needs none of it: serde_json escapes every C0 control, `"` and `\`, so each
//! value reads back exactly as it was (DEL, C1 and bidi controls stay as they are, valid JSON;
//! showing them is the reader's business). journald stores fields as given, and `journalctl`
//! shows a value with control characters as `[… blob data]` unless asked for `--all`.

use std::borrow::Cow;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use vfguard_model::printable;

/// The text log's layer: tracing-subscriber's full line format, its fields written by
/// [`EscapedFields`], to `writer`, coloured when `ansi`.
pub fn layer<S, W>(
    writer: W,
    ansi: bool,
) -> tracing_subscriber::fmt::Layer<S, EscapedFields, tracing_subscriber::fmt::format::Format, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(EscapedFields)
        .with_writer(writer)
        .with_ansi(ansi)
}

/// Writes an event's or a span's fields as tracing-subscriber's default does (the message
/// first and bare, then `name=value` separated by spaces), each value escaped (see the
/// module's documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        let name = field.name();
        self.result = self.result.and_then(|()| {
            if name == "message" {
                self.writer.write_str(&printable(value))
            } else {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.writer, "{name}={}", field_value(value))
            }
        });
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.write(field, &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too, their Debug being x's Display.
        self.write(field, &format!("{value:?}"));
    }
}

/// A field's value: escaped, and quoted when it holds what separates fields (a space, `=`) or
/// a quote, or is empty.
fn field_value(raw: &str) -> Cow<'_, str> {
    let p = printable(raw);
    if !p.is_empty() && !p.contains([' ', '=', '"']) {
        return p;
    }
    Cow::Owned(format!("\"{}\"", p.replace('"', "\\\"")))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::layer::SubscriberExt as _;
    use vfguard_model::printable::{is_escaped, unescape};

    use super::*;

    /// What the log wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8(bytes).unwrap()
        }
    }

    /// The text log's line for a notification about `owner` (as `LogNotifier` writes it) and
    /// a kernel message in the message.
    fn text_line(owner: &str, kernel: &str) -> String {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::registry().with(layer(move || w.clone(), false));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                incident = 7,
                rule = "spoof",
                owner = %owner,
                "NOTIFY owner={owner}: {kernel}"
            );
        });
        out.text()
    }

    /// The JSON log's line for the same.
    fn json_line(owner: &str) -> String {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || w.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(owner = %owner, "NOTIFY owner={owner}");
        });
        out.text()
    }

    /// What follows `after` on the line, up to its end, read back: unescaped, and unquoted
    /// when a field's value (a message is never quoted).
    fn read_back(line: &str, after: &str, field: bool) -> Option<String> {
        let at = line.find(after)?;
        let v = line.get(at + after.len()..)?.strip_suffix('\n')?;
        let v = match v.strip_prefix('"').filter(|_| field) {
            Some(q) => q.strip_suffix('"')?.replace("\\\"", "\""),
            None => v.to_owned(),
        };
        unescape(&v)
    }

    /// The text log's line for a message alone, and for a fixed message with one field.
    fn lines(text: &str) -> (String, String) {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::registry().with(layer(move || w.clone(), false));
        tracing::subscriber::with_default(subscriber, || tracing::warn!("{text}"));
        let message = out.text();
        out.0.lock().unwrap().clear();
        let w = out.clone();
        let subscriber = tracing_subscriber::registry().with(layer(move || w.clone(), false));
        tracing::subscriber::with_default(subscriber, || tracing::warn!(owner = %text, "NOTIFY"));
        (message, out.text())
    }

    #[test]
    fn kernel_text_and_owner_names_cannot_forge_lines_or_drive_the_terminal() {
        let owner = "vm:evil\n2025-01-01T00:00:00Z  WARN vfguard: forged";
        let kernel = "ixgbe 0000:08:00.1: \u{1b}[31mMalicious\u{1b}[0m\r\u{202e}evil\u{9b}2J";
        let line = text_line(owner, kernel);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(!line.trim_end().chars().any(is_escaped), "{line:?}");
        assert!(
            line.contains(
                "NOTIFY owner=vm:evil\\n2025-01-01T00:00:00Z  WARN vfguard: forged: ixgbe \
                 0000:08:00.1: \\x1b[31mMalicious\\x1b[0m\\r\\u{202e}evil\\u{9b}2J"
            ),
            "{line}"
        );
        assert!(
            line.ends_with(
                " incident=7 rule=spoof owner=\"vm:evil\\n2025-01-01T00:00:00Z  WARN vfguard: forged\"\n"
            ),
            "{line}"
        );
        assert_eq!(
            read_back(&line, " rule=spoof owner=", true).as_deref(),
            Some(owner)
        );
    }

    #[test]
    fn a_value_cannot_pose_as_another_field() {
        let line = text_line("vm:a rule=release", "x");
        assert!(line.ends_with(" owner=\"vm:a rule=release\"\n"), "{line}");
        assert!(text_line("", "x").ends_with(" owner=\"\"\n"));
    }

    #[test]
    fn the_json_log_is_escaped_by_serde() {
        let owner = "vm:\u{1b}[31m\"\\\n\r\u{0}\u{202e}";
        let line = json_line(owner);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(!line.chars().any(|c| c < ' ' && c != '\n'), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fields"]["owner"], owner);
        assert_eq!(v["fields"]["message"], format!("NOTIFY owner={owner}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text, in a message or a field: one line, no control or bidi character, the text
        /// read back exactly (the escaping is reversible: no two texts write the same line); in
        /// JSON too.
        #[test]
        fn any_text_is_one_clean_line_that_reads_back(
            text in prop_oneof![
                any::<String>(),
                "[\"\\\\\n\r =a\u{0}\u{1b}\u{7f}\u{85}\u{202a}-\u{202e}\u{2066}-\u{2069}]{0,24}",
            ]
        ) {
            let (message, field) = lines(&text);
            for line in [&message, &field] {
                prop_assert_eq!(line.matches('\n').count(), 1, "{}", line);
                prop_assert!(!line.trim_end_matches('\n').chars().any(is_escaped), "{:?}", line);
            }
            let target = "vfguard::textlog::tests: ";
            prop_assert_eq!(read_back(&message, target, false), Some(text.clone()));
            prop_assert_eq!(read_back(&field, &format!("{target}NOTIFY owner="), true), Some(text.clone()));
            let json = json_line(&text);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(v["fields"]["owner"].as_str(), Some(text.as_str()));
        }
    }
}
