//! `vfguard fleet`: the fleet's stream read into a view (vfguard_fleet::view), printed as
//! tables or one JSON object.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use vfguard_fleet::consume::read_into;
use vfguard_fleet::publish;
use vfguard_fleet::view::{FleetReport, ReportOptions, View};
use vfguard_model::Printable;

use crate::cli::FleetArgs;

pub fn run(args: &FleetArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut view = View::new();
    let read = rt.block_on(async {
        let js = tokio::time::timeout(Duration::from_secs(8), publish::connect(&args.url))
            .await
            .map_err(|_| anyhow::anyhow!("NATS at {}: no answer within 8 s", args.url))??;
        let stats = read_into(&js, None, &mut view, |n| {
            eprintln!("vfguard: read {n} messages...");
        })
        .await?;
        anyhow::Ok(stats)
    });
    let stats = match read {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "vfguard: {e:#}\nvfguard: is a nats-server with JetStream running there? (scripts/nats.sh start runs one on loopback; agents publish with `vfguard run --fleet URL`)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let report = view.report(ReportOptions {
        min_hosts: args.min_hosts as usize,
        silent_after_ms: args.silent_after.saturating_mul(1000),
        now: vfguard_agent::pace::wall_ms(),
    });
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        render(&report, stats.messages, &mut out)?;
        if stats.unreadable > 0 {
            eprintln!(
                "vfguard: {} message(s) on the stream were not vfguard's and were skipped",
                stats.unreadable
            );
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn render(r: &FleetReport, messages: u64, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{} host(s), {messages} message(s)", r.hosts.len())?;
    for h in &r.hosts {
        writeln!(
            out,
            "  {}/{}  {}{}{}",
            Printable(&h.site),
            Printable(&h.host),
            h.version
                .as_deref()
                .map_or("no heartbeat".to_owned(), |v| format!(
                    "vfguard {}",
                    Printable(v)
                )),
            if h.silent { ", SILENT" } else { "" },
            if h.dropped > 0 {
                format!(", {} message(s) dropped while the bus was away", h.dropped)
            } else {
                String::new()
            }
        )?;
    }
    writeln!(out, "\nopen incidents:")?;
    if r.open.is_empty() {
        writeln!(out, "  none")?;
    }
    for i in &r.open {
        let e = &i.incident;
        writeln!(
            out,
            "  {}/{} #{:<4} {}  {:<24} {:<12} {:<10} {}{}",
            Printable(&i.site),
            Printable(&i.host),
            e.incident.0,
            e.function,
            Printable(
                &e.owner
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), vfguard_model::Owner::label)
            ),
            e.state,
            Printable(e.class.as_deref().unwrap_or("-")),
            Printable(e.platform.driver.as_deref().unwrap_or("?")),
            if i.platform_suspect {
                "  (platform suspect: not its tenant's doing)"
            } else {
                ""
            }
        )?;
    }
    writeln!(out, "\nacross hosts:")?;
    if r.vms_on_several_hosts.is_empty() && r.platform_suspects.is_empty() {
        writeln!(out, "  nothing")?;
    }
    for v in &r.vms_on_several_hosts {
        let names: Vec<&str> = v.names.iter().map(String::as_str).collect();
        let hosts: Vec<&str> = v.hosts.iter().map(String::as_str).collect();
        let classes: Vec<&str> = v.classes.iter().map(String::as_str).collect();
        writeln!(
            out,
            "  vm {} ({}) faulted on {}: {}; the fault follows the guest",
            Printable(&v.uuid),
            Printable(&names.join(", ")),
            Printable(&hosts.join(", ")),
            Printable(&classes.join(", "))
        )?;
    }
    for s in &r.platform_suspects {
        let hosts: Vec<&str> = s.hosts.iter().map(String::as_str).collect();
        writeln!(
            out,
            "  {} firmware {}: {} on {} hosts ({}), {} tenants: a driver or firmware bug is suspected; no tenant is blamed",
            Printable(s.driver.as_deref().unwrap_or("?")),
            Printable(s.firmware.as_deref().unwrap_or("?")),
            Printable(&s.class),
            s.hosts.len(),
            Printable(&hosts.join(", ")),
            s.tenants
        )?;
    }
    Ok(())
}
