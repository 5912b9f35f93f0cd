//! `vfguard explain INCIDENT`: the evidence chain of one incident, read from the journal.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_journal::Journal;
use vfguard_model::{Decision, IncidentId, Observation};

use crate::cli::ExplainArgs;
use vfguard::timefmt::at as secs;

/// Opens an existing journal read side; a missing file is an error that says where one comes from.
pub(super) fn open_journal(path: &std::path::Path) -> anyhow::Result<Journal> {
    if !path.exists() {
        anyhow::bail!(
            "no journal at {} (the daemon writes it; give --journal FILE, or run `vfguard simulate --journal FILE SCENARIO`)",
            path.display()
        );
    }
    Journal::open_read_only(path).with_context(|| format!("opening {}", path.display()))
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let journal = open_journal(&args.journal)?;
    let Some(d) = journal.incident(IncidentId(args.incident))? else {
        eprintln!(
            "vfguard: no incident {} in {} (list them with `vfguard incidents`)",
            args.incident,
            args.journal.display()
        );
        return Ok(ExitCode::from(1));
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let outcome_of = |id| {
        d.actions
            .iter()
            .find(|a| a.action.id == id)
            .and_then(|a| a.outcome.as_ref())
            .map_or_else(
                || "no outcome (interrupted?)".to_owned(),
                |o| match &o.error {
                    None => format!("ok at {}", secs(o.at).trim()),
                    Some(e) => format!("failed: {e} at {}", secs(o.at).trim()),
                },
            )
    };
    if args.json {
        let v = vfguard::views::incident_detail(&d);
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let i = &d.incident;
    writeln!(
        out,
        "incident {} on {}{}: owner {}, {}, opened at {}",
        i.id.0,
        i.function,
        i.pf.filter(|p| *p != i.function)
            .map(|p| format!(" (PF {p})"))
            .unwrap_or_default(),
        i.owner
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label),
        i.state.as_str(),
        secs(i.opened_at).trim()
    )?;
    writeln!(out, "\nwhat the kernel said:")?;
    for o in &d.observations {
        if let Observation::Fault(e) = &o.observation {
            let origin = match (e.seq, e.line) {
                (Some(s), _) => format!("kmsg seq {s}"),
                (None, l) if l > 0 => format!("line {l}"),
                _ => "counters".to_owned(),
            };
            writeln!(
                out,
                "{}  {:<14} {:<28} {origin}: {}",
                secs(o.at),
                e.kind.as_str(),
                e.catalog_id,
                e.message.lines().next().unwrap_or("")
            )?;
        } else {
            writeln!(
                out,
                "{}  {}",
                secs(o.at),
                serde_json::to_string(&o.observation)?
            )?;
        }
    }
    writeln!(out, "\nhow vfguard read it, and what it did:")?;
    for r in &d.decisions {
        let line = match &r.decision {
            Decision::IncidentOpened { .. } => "opened".to_owned(),
            Decision::Attributed {
                method,
                confidence,
                evidence,
                ..
            } => format!("attributed {method} ({confidence:.2}): {evidence}"),
            Decision::ThresholdCrossed { rule, count, .. } => {
                format!("rule {rule}: {count} in its window")
            }
            Decision::Act(a) => format!(
                "{}{} by rule {:?}: {}",
                if a.dry_run { "dry-run " } else { "" },
                a.kind.name(),
                a.rule,
                outcome_of(a.id)
            ),
            Decision::Suppressed { action, reason, .. } => format!("{action} suppressed: {reason}"),
            Decision::Contained { by, .. } => format!("CONTAINED by {by}"),
            Decision::Restored { .. } => "restored".to_owned(),
            Decision::Closed { reason, .. } => format!("closed: {reason}"),
        };
        writeln!(out, "{}  {line}", secs(r.at))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
