//! `vfguard incidents`: the incidents in the journal, newest first, one line each.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_journal::IncidentFilter;

use super::explain::open_journal;
use crate::cli::IncidentsArgs;
use vfguard::timefmt::at as secs;

pub fn run(args: &IncidentsArgs) -> anyhow::Result<ExitCode> {
    let journal = open_journal(&args.journal)?;
    let filter = IncidentFilter {
        open_only: args.open,
        owner: args.owner.clone(),
        pf: args.pf,
    };
    let rows = journal
        .incidents(&filter)
        .with_context(|| format!("listing incidents in {}", args.journal.display()))?;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        let v: Vec<serde_json::Value> = rows.iter().map(vfguard::views::incident_row).collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
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
            writeln!(
                out,
                "{:>5}  {:<12}  {:<12}  {:<10}  {:<24}  {}",
                i.id.0,
                i.function.to_string(),
                i.pf.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                i.state.as_str(),
                i.owner
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label),
                secs(i.opened_at).trim()
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
