//! The table test over the labelled real-log corpus (shared/corpus/real-logs.jsonl, vendored in
//! testdata/corpus with its README): every labelled line yields its kind and attribution; lines
//! labelled `other`, and unlabelled lines, start no fault event.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vfguard_model::FaultEvent;
use vfguard_parse::{scan_text, FormatHint};

#[derive(Deserialize)]
struct Excerpt {
    id: String,
    lines: Vec<String>,
    expected: Vec<Label>,
}

#[derive(Deserialize)]
struct Label {
    line_index: usize,
    kind: String,
    pf_bdf: Option<String>,
    vf: Option<u32>,
    requester_bdf: Option<String>,
    queue: Option<u32>,
}

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("testdata/corpus/real-logs.jsonl")];
    // The shared corpus grows; when it sits beside the repository, hold the parser to it too.
    let shared = root.join("../shared/corpus/real-logs.jsonl");
    if shared.exists() {
        files.push(shared);
    }
    files
}

fn check(file: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut failures = Vec::new();
    let mut labels = 0;
    for (n, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let ex: Excerpt = serde_json::from_str(raw)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", file.display(), n + 1));
        let joined = ex.lines.join("\n");
        let (events, _) = scan_text(joined.as_bytes(), FormatHint::Auto);
        let covering = |idx: usize| -> Option<&FaultEvent> {
            let line = idx as u64 + 1;
            events.iter().find(|e| e.line <= line && line <= e.end_line)
        };
        for label in &ex.expected {
            let where_ = format!(
                "{} line {}: {:?}",
                ex.id,
                label.line_index,
                ex.lines.get(label.line_index)
            );
            if label.kind == "other" {
                if let Some(e) = events
                    .iter()
                    .find(|e| e.line == label.line_index as u64 + 1 && e.kind.is_fault())
                {
                    failures.push(format!("{where_}: labelled other, got {}", e.kind));
                }
                continue;
            }
            labels += 1;
            let Some(e) = covering(label.line_index) else {
                failures.push(format!("{where_}: no event (want {})", label.kind));
                continue;
            };
            // The global MDD lines print device-absolute numbers; the label's `vf` is the number
            // the line names, which the parser keeps in `vf_abs` (signals.md §1.1, §1.2).
            let vf =
                e.vf.map(|v| u32::from(v.0))
                    .or(if e.vf.is_none() { e.vf_abs } else { None });
            let got = (
                e.kind.as_str().to_owned(),
                e.pf.map(|b| b.to_string()),
                vf,
                e.function.map(|b| b.to_string()),
                e.queue,
                e.trusted,
            );
            let want = (
                label.kind.clone(),
                label.pf_bdf.clone(),
                label.vf,
                label.requester_bdf.clone(),
                label.queue,
                true,
            );
            if got != want {
                failures.push(format!("{where_}:\n    got  {got:?}\n    want {want:?}"));
            }
        }
        for e in events.iter().filter(|e| e.kind.is_fault()) {
            let idx = (e.line - 1) as usize;
            let labelled = ex
                .expected
                .iter()
                .any(|l| l.line_index == idx && l.kind != "other");
            if !labelled {
                failures.push(format!(
                    "{} line {idx}: unlabelled line reported as {} ({})",
                    ex.id, e.kind, e.catalog_id
                ));
            }
        }
    }
    (labels, failures)
}

#[test]
fn corpus_lines_yield_their_labels() {
    for file in corpus_files() {
        let (labels, failures) = check(&file);
        assert!(labels > 40, "{}: only {labels} labels read", file.display());
        assert!(
            failures.is_empty(),
            "{}:\n{}",
            file.display(),
            failures.join("\n")
        );
    }
}
