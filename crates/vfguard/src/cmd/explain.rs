//! `vfguard explain INCIDENT`: the evidence chain of one incident, from the daemon (its socket)
//! or from a journal file (`--journal`, offline).
//!
//! An incident in a storm holds millions of observations, so explain shows the first and last
//! entries of each list (`--first`, `--last`) with the count of what lies between; `--all`
//! streams every entry from a journal file, one at a time, in memory that does not grow with the
//! incident.

use std::io::{self, BufWriter, Write};
use std::iter::Peekable;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_agent::views::{action_row, decision_at, incident_head, observation_at, read_incident};
use vfguard_api::reply::{
    ActionEntry, DecisionAt, EvidenceCounts, EvidencePage, IncidentDetail as Detail, ObservationAt,
};
use vfguard_journal::{Access, ActionRow, Journal, JournalError};
use vfguard_model::{ActionId, Decision, IncidentId, Observation, Owner, Printable};

use crate::cli::ExplainArgs;
use vfguard_agent::timefmt::at as secs;

/// Opens an existing journal read side; a missing file is an error that says where one comes
/// from. A reader that could only open a snapshot of the file is told what it does not see.
pub(super) fn open_journal(path: &Path) -> anyhow::Result<Journal> {
    if !path.exists() {
        anyhow::bail!(
            "no journal at {} (the daemon writes it; give --journal FILE, or run `vfguard simulate --journal FILE SCENARIO`)",
            path.display()
        );
    }
    let journal =
        Journal::open_read_only(path).with_context(|| format!("opening {}", path.display()))?;
    if let Access::Immutable { wal_bytes } = journal.access() {
        if wal_bytes > 0 {
            eprintln!(
                "vfguard: warning: {} is read as a snapshot of its main file (this user cannot open it beside its -wal file): the last {wal_bytes} bytes written, in {}-wal, are not shown; read it as the daemon's user, or from a copy taken after the daemon stopped",
                path.display(),
                path.display()
            );
        }
    }
    Ok(journal)
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    if args.all {
        let Some(path) = &args.journal else {
            anyhow::bail!(
                "--all streams every entry from a journal file: add --journal FILE (the daemon's journal, e.g. /var/lib/vfguard/journal.db, can be read while it runs); through the daemon, --first N and --last N (up to {}) page the evidence",
                EvidencePage::MAX
            );
        };
        return all(args, path);
    }
    let page = EvidencePage {
        first: args.first,
        last: args.last,
    };
    let (d, source) = match &args.journal {
        Some(path) => {
            let journal = open_journal(path)?;
            let d = read_incident(&journal, IncidentId(args.incident), page)?;
            (d, path.display().to_string())
        }
        None => {
            let (code, v) = super::client::get(
                &args.socket,
                &format!(
                    "/v1/incidents/{}?first={}&last={}",
                    args.incident, page.first, page.last
                ),
            )?;
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
        return Ok(not_found(args.incident, &source));
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

fn not_found(incident: u64, source: &str) -> ExitCode {
    eprintln!("vfguard: no incident {incident} in {source} (list them with `vfguard incidents`)");
    ExitCode::from(1)
}

/// The incident's header line.
fn head(d: &Detail, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "incident {} on {}{}: owner {}, {}, opened at {}",
        d.id.0,
        d.function,
        d.pf.filter(|p| *p != d.function)
            .map(|p| format!(" (PF {p})"))
            .unwrap_or_default(),
        Printable(
            &d.owner
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), Owner::label)
        ),
        d.state,
        secs(d.opened_ms).trim()
    )
}

/// One observation, as a line.
fn observation_line(o: &ObservationAt, out: &mut dyn Write) -> anyhow::Result<()> {
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
    Ok(())
}

/// What became of an action, as words; `None`: its row is not at hand.
fn outcome_words(a: Option<&ActionEntry>, omitted: bool) -> String {
    match a {
        None if omitted => "its outcome is among the actions not shown".to_owned(),
        None => "no outcome (interrupted?)".to_owned(),
        Some(a) => match &a.outcome {
            None => "no outcome (interrupted?)".to_owned(),
            Some(o) => match &o.error {
                None => format!("ok at {}", secs(o.at).trim()),
                Some(e) => format!("failed: {e} at {}", secs(o.at).trim()),
            },
        },
    }
}

/// One decision, as a line; `outcome` tells what became of an action it decided.
fn decision_line(
    r: &DecisionAt,
    outcome: impl FnOnce(ActionId) -> String,
    out: &mut dyn Write,
) -> io::Result<()> {
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
            outcome(a.id)
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
    writeln!(out, "{}  {}", secs(r.at_ms), Printable(&line))
}

/// The line that stands for the rows a page leaves out, and the one for what retention deleted.
fn gap(out: &mut dyn Write, what: &str, omitted: u64, dropped: u64) -> io::Result<()> {
    if omitted > 0 {
        writeln!(
            out,
            "  ... {omitted} more {what} not shown (--first/--last widen the page; --all --journal FILE shows every one) ..."
        )?;
    }
    if dropped > 0 {
        writeln!(
            out,
            "  ({dropped} {what} were deleted by the journal's retention)"
        )?;
    }
    Ok(())
}

/// Writes `rows`, with the gap line after the first `first` of them.
fn paged<T>(
    out: &mut dyn Write,
    rows: &[T],
    first: Option<u32>,
    (what, omitted, dropped): (&str, u64, u64),
    mut line: impl FnMut(&T, &mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let split = first.map_or(rows.len(), |f| (f as usize).min(rows.len()));
    for r in &rows[..split] {
        line(r, out)?;
    }
    gap(out, what, omitted, dropped)?;
    for r in &rows[split..] {
        line(r, out)?;
    }
    Ok(())
}

fn render(d: &Detail, out: &mut dyn Write) -> anyhow::Result<()> {
    let c = &d.counts;
    let first = c.page.map(|p| p.first);
    head(d, out)?;
    writeln!(out, "\nwhat the kernel said:")?;
    paged(
        out,
        &d.observations,
        first,
        (
            "observations",
            c.observations_omitted,
            c.observations_dropped,
        ),
        |o, out| observation_line(o, out),
    )?;
    writeln!(out, "\nhow vfguard read it, and what it did:")?;
    // A page's decisions and actions are the ends of their lists: an action decided in the
    // decisions shown is in the actions shown unless actions were omitted.
    let outcome = |id: ActionId| {
        outcome_words(
            d.actions.iter().find(|a| a.action.id == id),
            c.actions_omitted > 0,
        )
    };
    paged(
        out,
        &d.decisions,
        first,
        ("decisions", c.decisions_omitted, c.decisions_dropped),
        |r, out| Ok(decision_line(r, outcome, out)?),
    )?;
    Ok(())
}

/// `--all`: every entry, streamed from the journal, as text or as one JSON object (each entry
/// of its lists on a line of its own).
fn all(args: &ExplainArgs, path: &Path) -> anyhow::Result<ExitCode> {
    let journal = open_journal(path)?;
    let id = IncidentId(args.incident);
    // The ends of nothing: the incident's row and how much retention dropped.
    let Some(p) = journal.incident_page(id, 0, 0)? else {
        return Ok(not_found(args.incident, &path.display().to_string()));
    };
    let mut d = incident_head(&p.incident);
    d.counts.observations_dropped = p.observations.dropped;
    d.counts.decisions_dropped = p.decisions.dropped;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        all_json(&journal, id, d, &mut out)?;
    } else {
        all_text(&journal, id, &d, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn all_text(
    journal: &Journal,
    id: IncidentId,
    d: &Detail,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    head(d, out)?;
    writeln!(out, "\nwhat the kernel said:")?;
    gap(out, "observations", 0, d.counts.observations_dropped)?;
    for o in journal.incident_observations(id) {
        observation_line(&observation_at(&o?), out)?;
    }
    writeln!(out, "\nhow vfguard read it, and what it did:")?;
    gap(out, "decisions", 0, d.counts.decisions_dropped)?;
    // Actions come in the order their decisions do (ids only grow): each decision's action is
    // found by walking the actions forward, never holding them all.
    let mut actions = journal.incident_actions(id).peekable();
    for r in journal.incident_decisions(id) {
        let r = decision_at(&r?);
        let mut found = Ok(None);
        decision_line(
            &r,
            |wanted| {
                found = next_action(&mut actions, wanted);
                let a = found.as_ref().ok().and_then(Option::as_ref);
                outcome_words(a.map(action_row).as_ref(), false)
            },
            out,
        )?;
        found?;
    }
    Ok(())
}

/// The action `wanted`, walking `actions` forward past those before it; `None` if it is not
/// there (the walk stops at the first action after it).
fn next_action(
    actions: &mut Peekable<impl Iterator<Item = Result<ActionRow, JournalError>>>,
    wanted: ActionId,
) -> Result<Option<ActionRow>, JournalError> {
    loop {
        match actions.peek() {
            None => return Ok(None),
            Some(Ok(a)) if a.action.id > wanted => return Ok(None),
            Some(Ok(a)) if a.action.id == wanted => return actions.next().transpose(),
            Some(_) => {
                // An earlier action (no decision of this incident names it), or an error.
                actions.next().transpose()?;
            }
        }
    }
}

/// One JSON object in the shape of `GET /v1/incidents/{id}`, its lists streamed: the
/// incident's fields, the three lists one entry per line, then the counts (`page` null: the
/// lists are whole).
fn all_json(
    journal: &Journal,
    id: IncidentId,
    mut d: Detail,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let head = serde_json::to_value(&d)?;
    let serde_json::Value::Object(mut fields) = head else {
        anyhow::bail!("an incident did not serialise as a JSON object");
    };
    let lists = ["observations", "decisions", "actions"];
    let counts = serde_json::to_value(EvidenceCounts::default())?;
    fields.retain(|k, _| !lists.contains(&k.as_str()) && counts.get(k).is_none());
    write!(out, "{{")?;
    for (k, v) in &fields {
        write!(out, "{}:{},", serde_json::to_string(k)?, v)?;
    }
    d.counts.observations_total = stream_list(
        out,
        "observations",
        journal.incident_observations(id),
        |o| serde_json::to_value(observation_at(&o)),
    )?;
    write!(out, ",")?;
    d.counts.decisions_total =
        stream_list(out, "decisions", journal.incident_decisions(id), |r| {
            serde_json::to_value(decision_at(&r))
        })?;
    write!(out, ",")?;
    d.counts.actions_total = stream_list(out, "actions", journal.incident_actions(id), |a| {
        serde_json::to_value(action_row(&a))
    })?;
    let serde_json::Value::Object(counts) = serde_json::to_value(&d.counts)? else {
        anyhow::bail!("counts did not serialise as a JSON object");
    };
    for (k, v) in &counts {
        write!(out, ",{}:{}", serde_json::to_string(k)?, v)?;
    }
    writeln!(out, "}}")?;
    Ok(())
}

/// Writes `"name":[...]` with one entry per line; returns how many.
fn stream_list<T>(
    out: &mut dyn Write,
    name: &str,
    rows: impl Iterator<Item = Result<T, JournalError>>,
    json: impl Fn(T) -> serde_json::Result<serde_json::Value>,
) -> anyhow::Result<u64> {
    write!(out, "\"{name}\":[")?;
    let mut n = 0u64;
    for row in rows {
        let v = json(row?)?;
        write!(out, "{}\n{v}", if n == 0 { "" } else { "," })?;
        n += 1;
    }
    write!(out, "]")?;
    Ok(n)
}
