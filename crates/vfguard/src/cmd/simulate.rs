//! `vfguard simulate`: a scenario on the simulated host.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_model::{printable, Printable};
use vfguard_sim::report::{host_only, Report};
use vfguard_sim::scenario::Scenario;
use vfguard_sim::{SimHost, DEFAULT_RING};

use crate::cli::SimulateArgs;

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let mut scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vfguard: bad scenario: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(seed) = args.seed {
        scenario.scenario.seed = seed;
    }
    // `--policy FILE` wins over the scenario's `[policy]`; otherwise a bad `[policy]` makes a bad
    // file, even with `--host-only` (which does not use it).
    let policy = match &args.policy {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            vfguard_engine::Policy::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => match vfguard_agent::simrun::scenario_policy(&scenario) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("vfguard: bad scenario: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut sim = match &args.keep_root {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            SimHost::build(scenario, dir, DEFAULT_RING, true)
        }
        None => SimHost::new(scenario),
    }
    .context("building the simulated host")?;
    let report = if args.host_only {
        host_only(&mut sim)
    } else {
        let quiet = args.json;
        vfguard_agent::simrun::run(&mut sim, policy, args.journal.as_deref(), 0.0, |line| {
            if !quiet && args.timeline {
                println!("{}", Printable(line));
            }
        })?
    };
    if let Some(path) = &args.log {
        let mut w = BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for r in sim.records() {
            w.write_all(r.encode().as_bytes())?;
        }
        w.flush()?;
    }
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report)?;
    }
    out.flush()?;
    Ok(ExitCode::from(u8::from(!report.expectations.passed)))
}

pub fn print_report(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        "scenario {} (seed {}): {} kernel records in {} ms of virtual time",
        r.scenario, r.seed, r.records, r.duration_ms
    )?;
    if r.incidents.is_empty() {
        writeln!(out, "no incidents")?;
    }
    for i in &r.incidents {
        // Owner names come from the scenario (a host's would be anything): escaped.
        let who = match &i.owner.name {
            Some(n) => format!("{}:{}", i.owner.kind, printable(n)),
            None => i.owner.kind.clone(),
        };
        let what = match (i.function, i.pf, i.vf) {
            (Some(f), Some(pf), Some(vf)) if Some(f) != i.pf => format!("{f} (PF {pf} VF {vf})"),
            (Some(f), _, _) => f.to_string(),
            (None, Some(pf), _) => format!("PF {pf}, no function named"),
            _ => "host".to_owned(),
        };
        let kinds: Vec<&str> = i.kinds.iter().map(|k| k.as_str()).collect();
        writeln!(
            out,
            "incident {}: {what} owner {who}: {} ({} events) first fault at {} ms, attributed {} ({:.1})",
            i.id,
            kinds.join(", "),
            i.events,
            i.first_fault_ms,
            i.attribution.method,
            i.attribution.confidence
        )?;
        // The same action at the same moment (a localization round's gates on half a PF's
        // VFs) is one line with its count.
        for run in i
            .actions
            .chunk_by(|a, b| (a.at_ms, &a.action, &a.result) == (b.at_ms, &b.action, &b.result))
        {
            let Some(a) = run.first() else { continue };
            let times = if run.len() > 1 {
                format!(" (x{})", run.len())
            } else {
                String::new()
            };
            writeln!(
                out,
                "    {:>7} ms  {:<22} {}{times}",
                a.at_ms, a.action, a.result
            )?;
        }
        if let Some(c) = i.contained_ms {
            writeln!(
                out,
                "    contained at {c} ms, {} ms after its first fault",
                c - i.first_fault_ms
            )?;
        }
    }
    if !r.untouched.is_empty() {
        writeln!(out, "untouched: {}", printable(&r.untouched.join(", ")))?;
    }
    for f in &r.expectations.failures {
        writeln!(out, "FAILED: {}", printable(f))?;
    }
    for s in &r.expectations.skipped {
        writeln!(out, "skipped: {}", printable(s))?;
    }
    writeln!(
        out,
        "expectations: {}",
        if r.expectations.passed {
            "passed"
        } else {
            "FAILED"
        }
    )
}
