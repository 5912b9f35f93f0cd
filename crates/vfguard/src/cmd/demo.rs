//! `vfguard demo`: the built-in scenario, watched live, then the report.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use vfguard_sim::scenario::Scenario;
use vfguard_sim::SimHost;

use crate::cli::DemoArgs;

/// The built-in scenario (testdata/scenarios/demo.toml).
const DEMO: &str = include_str!("../../../../testdata/scenarios/demo.toml");

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let scenario =
        Scenario::parse("demo.toml (built in)", DEMO).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy =
        vfguard_agent::simrun::scenario_policy(&scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sim = SimHost::new(scenario).context("building the simulated host")?;
    if !args.json {
        let sc = sim.scenario();
        println!("vfguard demo: {}", sc.scenario.description);
        println!(
            "host: {} PFs, {} VFs, {} VMs, {} container{}; {} s of virtual time {}\n",
            sc.pf.len(),
            sc.pf.iter().map(|p| u32::from(p.numvfs)).sum::<u32>(),
            sc.vm.len(),
            sc.container.len(),
            if sc.container.len() == 1 { "" } else { "s" },
            sc.scenario.duration_ms / 1000,
            if args.speed > 0.0 {
                format!("at {}x", args.speed)
            } else {
                "as fast as possible".to_owned()
            }
        );
        println!("timeline:");
    }
    let quiet = args.json;
    let report = vfguard_agent::simrun::run(
        &mut sim,
        policy,
        args.journal.as_deref(),
        args.speed,
        |line| {
            if !quiet {
                println!("{}", vfguard_model::Printable(line));
            }
        },
    )?;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "\nreport:")?;
        crate::cmd::simulate::print_report(&mut out, &report)?;
        if let Some(j) = &args.journal {
            writeln!(
                out,
                "\nevidence chains: vfguard explain --journal {} <incident>",
                j.display()
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::from(u8::from(!report.expectations.passed)))
}
