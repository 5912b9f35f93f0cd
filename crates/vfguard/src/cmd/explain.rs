//! `vfguard explain INCIDENT`: the evidence chain of one incident, from the daemon (its socket)
//! or from a journal file (`--journal`, offline).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_api::reply::IncidentDetail as Detail;
use vfguard_journal::Journal;
use vfguard_model::{Decision, IncidentId, Observation, Owner};

use crate::cli::ExplainArgs;
use vfguard_agent::timefmt::at as secs;

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
    let (d, source) = match &args.journal {
        Some(path) => {
            let journal = open_journal(path)?;
            let d = journal.incident(IncidentId(args.incident))?;
            (
                d.as_ref().map(vfguard_agent::views::incident_detail),
                path.display().to_string(),
            )
        }
        None => {
            let (code, v) =
                super::client::get(&args.socket, &format!("/v1/incidents/{}", args.incident))?;
            let d = if code == 404 {
                None
            } else {
                let v = super::client::ok(code, v)?;
                if args.json {
                    // The API's JSON as is.
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(ExitCode::SUCCESS);
                }
                Some(super::client::read::<Detail>(v, "incident")?)
            };
            (d, "the daemon's journal".to_owned())
        }
    };
    let Some(d) = d else {
        eprintln!(
            "vfguard: no incident {} in {source} (list them with `vfguard incidents`)",
            args.incident
        );
        return Ok(ExitCode::from(1));
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &d)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    render(&d, &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn render(d: &Detail, out: &mut impl Write) -> anyhow::Result<()> {
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
    writeln!(
        out,
        "incident {} on {}{}: owner {}, {}, opened at {}",
        d.id.0,
        d.function,
        d.pf.filter(|p| *p != d.function)
            .map(|p| format!(" (PF {p})"))
            .unwrap_or_default(),
        vfguard_model::Printable(
            &d.owner
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), Owner::label)
        ),
        d.state,
        secs(d.opened_ms).trim()
    )?;
    writeln!(out, "\nwhat the kernel said:")?;
    for o in &d.observations {
        if let Observation::Fault(e) = &o.observation {
            let origin = match (e.seq, e.line) {
                (Some(s), _) => format!("kmsg seq {s}"),
                (None, l) if l > 0 => format!("line {l}"),
                _ => "counters".to_owned(),
            };
            let times = if e.repeats > 0 {
                format!(" (x{})", e.records())
            } else {
                String::new()
            };
            writeln!(
                out,
                "{}  {:<14} {:<28} {origin}: {}{times}",
                secs(o.at_ms),
                e.kind.as_str(),
                e.catalog_id,
                vfguard_model::Printable(e.message.lines().next().unwrap_or(""))
            )?;
        } else {
            writeln!(
                out,
                "{}  {}",
                secs(o.at_ms),
                vfguard_model::Printable(&serde_json::to_string(&o.observation)?)
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
                a.rule.to_string(),
                outcome_of(a.id)
            ),
            Decision::Suppressed { action, reason, .. } => format!("{action} suppressed: {reason}"),
            Decision::Contained { by, .. } => format!("CONTAINED by {by}"),
            Decision::Restored { .. } => "restored".to_owned(),
            Decision::StateChanged {
                from, to, cause, ..
            } => format!("{from} -> {to} ({cause})"),
            Decision::Closed { reason, .. } => format!("closed: {reason}"),
            Decision::ModeChanged { from, to, by } => format!("mode {from} -> {to} by {by}"),
        };
        // Evidence, reasons, rule names and errors come from outside: escaped.
        writeln!(
            out,
            "{}  {}",
            secs(r.at_ms),
            vfguard_model::Printable(&line)
        )?;
    }
    Ok(())
}
