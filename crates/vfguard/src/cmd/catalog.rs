//! `vfguard catalog`: the message forms vfguard recognises.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use serde::Serialize;
use vfguard_parse::catalog::{Catalog, KindRule, Role, Source};

use crate::cli::CatalogArgs;

#[derive(Serialize)]
struct EntryJson<'a> {
    id: &'a str,
    drivers: Vec<&'a str>,
    kind: String,
    severity: &'a str,
    role: &'a str,
    format: &'a str,
    fields: &'a [&'a str],
    since: &'a str,
    example: &'a str,
}

pub fn run(args: &CatalogArgs) -> anyhow::Result<ExitCode> {
    let cat = Catalog::get();
    let mut out = BufWriter::new(io::stdout().lock());
    if args.anchors {
        for a in &cat.anchors {
            writeln!(out, "{a}")?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in &cat.entries {
        let e = c.entry;
        let drivers = match e.source {
            Source::Driver(d) => d.to_vec(),
            Source::AnyDevice => vec!["(any device)"],
            Source::Any | Source::Bare => vec!["(kernel)"],
        };
        let kind = match e.kind {
            KindRule::Fixed(k) => k.to_string(),
            KindRule::AerSeverity => "aer_* (by severity)".to_owned(),
            KindRule::MddDirection => "mdd_tx|mdd_rx (by source)".to_owned(),
            KindRule::MddMasks => "mdd_tx|mdd_rx|both|mdd (by tx/rx cause)".to_owned(),
            KindRule::ByValue {
                field,
                values,
                otherwise,
            } => {
                let by: Vec<String> = values.iter().map(|(v, k)| format!("{v}: {k}")).collect();
                format!("by {field} ({}, else {otherwise})", by.join(", "))
            }
            KindRule::Oops => "oops (in NIC drivers)".to_owned(),
        };
        let role = match e.role {
            Role::Head => "head",
            Role::Detail => "detail",
            Role::HeadOrDetail => "head-or-detail",
            Role::Context => "context",
        };
        if args.json {
            let j = EntryJson {
                id: e.id,
                drivers,
                kind,
                severity: e.severity.as_str(),
                role,
                format: e.format,
                fields: e.fields,
                since: e.since,
                example: e.example,
            };
            serde_json::to_writer(&mut out, &j)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{}  [{}] {} {} {}",
                e.id,
                drivers.join(","),
                kind,
                e.severity,
                role
            )?;
            writeln!(out, "    format:  {:?}", e.format)?;
            writeln!(out, "    example: {}", e.example.replace('\n', "\\n"))?;
            writeln!(out, "    since:   {}", e.since)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
