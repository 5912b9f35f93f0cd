//! `vfguard explain INCIDENT`: the evidence chain of one incident, from the daemon (its socket)
//! or from a journal file (`--journal`, offline).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Deserialize;
use vfguard_journal::Journal;
use vfguard_model::{
    Action, ActionOutcome, Bdf, Decision, IncidentId, Observation, Owner, Printable,
};

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

/// `GET /v1/incidents/{id}` and `vfguard explain --json`, read back.
#[derive(Deserialize)]
struct Detail {
    id: u64,
    function: Bdf,
    pf: Option<Bdf>,
    state: String,
    owner: Option<Owner>,
    opened_ms: u64,
    observations: Vec<AtObservation>,
    decisions: Vec<AtDecision>,
    actions: Vec<ActionWithOutcome>,
}

#[derive(Deserialize)]
struct AtObservation {
    at_ms: u64,
    observation: Observation,
}

#[derive(Deserialize)]
struct AtDecision {
    at_ms: u64,
    decision: Decision,
}

#[derive(Deserialize)]
struct ActionWithOutcome {
    action: Action,
    outcome: Option<ActionOutcome>,
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let (v, source) = match &args.journal {
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
            let v = if code == 404 {
                None
            } else {
                Some(super::client::ok(code, v)?)
            };
            (v, "the daemon's journal".to_owned())
        }
    };
    let Some(v) = v else {
        eprintln!(
            "vfguard: no incident {} in {source} (list them with `vfguard incidents`)",
            args.incident
        );
        return Ok(ExitCode::from(1));
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let d: Detail = serde_json::from_value(v).context("reading the incident's detail")?;
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
        d.id,
        d.function,
        d.pf.filter(|p| *p != d.function)
            .map(|p| format!(" (PF {p})"))
            .unwrap_or_default(),
        Printable(
            &d.owner
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), Owner::label)
        ),
        Printable(&d.state),
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
                Printable(e.message.lines().next().unwrap_or(""))
            )?;
        } else {
            writeln!(
                out,
                "{}  {}",
                secs(o.at_ms),
                Printable(&serde_json::to_string(&o.observation)?)
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
        writeln!(out, "{}  {}", secs(r.at_ms), Printable(&line))?;
    }
    Ok(())
}
