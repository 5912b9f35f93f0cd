//! `vfguard incidents`: the incidents, newest first, one line each: from the daemon (its
//! socket) or from a journal file (`--journal`, offline).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;
use vfguard_journal::IncidentFilter;

use super::explain::open_journal;
use crate::cli::IncidentsArgs;
use vfguard_agent::timefmt::at as secs;

/// The query string of `GET /v1/incidents` for these options.
fn query(args: &IncidentsArgs) -> String {
    let mut q = Vec::new();
    if args.open {
        q.push("open=true".to_owned());
    }
    if let Some(o) = &args.owner {
        q.push(format!("owner={}", encode(o)));
    }
    if let Some(p) = &args.pf {
        q.push(format!("pf={p}"));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// Percent-encodes a query value (owner labels may hold `:` and spaces).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(args: &IncidentsArgs) -> anyhow::Result<ExitCode> {
    let rows: Vec<Value> = match &args.journal {
        Some(path) => {
            let journal = open_journal(path)?;
            let filter = IncidentFilter {
                open_only: args.open,
                owner: args.owner.clone(),
                pf: args.pf,
            };
            journal
                .incidents(&filter)
                .with_context(|| format!("listing incidents in {}", path.display()))?
                .iter()
                .map(vfguard_agent::views::incident_row)
                .collect()
        }
        None => {
            let (code, v) =
                super::client::get(&args.socket, &format!("/v1/incidents{}", query(args)))?;
            match super::client::ok(code, v)? {
                Value::Array(rows) => rows,
                other => anyhow::bail!("the daemon's answer is not a list: {other:.200}"),
            }
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if rows.is_empty() {
        writeln!(out, "no incidents{}", if args.open { " open" } else { "" })?;
    } else {
        writeln!(
            out,
            "{:>5}  {:<12}  {:<12}  {:<10}  {:<24}  opened",
            "id", "function", "pf", "state", "owner"
        )?;
        for i in &rows {
            let owner = serde_json::from_value::<vfguard_model::Owner>(i["owner"].clone())
                .map_or_else(|_| "unknown".to_owned(), |o| o.label());
            writeln!(
                out,
                "{:>5}  {:<12}  {:<12}  {:<10}  {:<24}  {}",
                i["id"].as_u64().unwrap_or(0),
                i["function"].as_str().unwrap_or("-"),
                i["pf"].as_str().unwrap_or("-"),
                i["state"].as_str().unwrap_or("?"),
                vfguard_model::Printable(&owner),
                secs(i["opened_ms"].as_u64().unwrap_or(0)).trim()
            )?;
        }
        writeln!(
            out,
            "\n{} incident(s); `vfguard explain ID` shows one's evidence",
            rows.len()
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn owner_labels_are_percent_encoded() {
        assert_eq!(super::encode("vm:web 7/a"), "vm:web%207%2Fa");
    }
}
