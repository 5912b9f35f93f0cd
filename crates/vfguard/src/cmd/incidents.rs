//! `vfguard incidents`: the incidents, newest first, one line each: from the daemon (its
//! socket) or from a journal file (`--journal`, offline).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_api::reply::IncidentList;
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
    let rows: IncidentList = match &args.journal {
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
            let v = super::client::ok(code, v)?;
            if !v.is_array() {
                anyhow::bail!("the daemon's answer is not a list: {v:.200}");
            }
            if args.json {
                // The API's JSON as is.
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            super::client::read(v, "incidents")?
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
            let owner = i
                .owner
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label);
            writeln!(
                out,
                "{:>5}  {:<12}  {:<12}  {:<10}  {:<24}  {}",
                i.id.0,
                i.function.to_string(),
                i.pf.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                i.state.as_str(),
                vfguard_model::Printable(&owner),
                secs(i.opened_ms).trim()
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
