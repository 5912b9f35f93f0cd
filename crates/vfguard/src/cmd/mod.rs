//! Subcommand implementations.

mod catalog;
mod client;
mod config;
mod demo;
mod explain;
mod fleet;
mod incidents;
mod inventory;
mod operate;
pub mod run;
mod scan;
pub mod simulate;
mod status;

use std::process::ExitCode;

use std::io::Write as _;

use anyhow::Context as _;
use vfguard_host::linux::netlink::{decode_newlink, Rtnl};

use clap::CommandFactory as _;

use crate::cli::{Cli, Command, ConfigCommand, DebugCommand};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Catalog(args) => catalog::run(&args),
        Command::Inventory(args) => inventory::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Incidents(args) => incidents::run(&args),
        Command::Fleet(args) => fleet::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Quarantine(args) => operate::quarantine(&args),
        Command::Release(args) => operate::release(&args),
        Command::Mode(args) => operate::mode(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Config(ConfigCommand::Check { file, json }) => config::check(&file, json),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "vfguard",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout().lock())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Debug(DebugCommand::NetlinkCapture { ifname }) => netlink_capture(&ifname),
    }
}

fn netlink_capture(ifname: &str) -> anyhow::Result<ExitCode> {
    let bytes = Rtnl::open()
        .and_then(|mut r| r.getlink_raw(ifname))
        .with_context(|| format!("RTM_GETLINK {ifname}"))?;
    let mut out = std::io::stdout().lock();
    for chunk in bytes.chunks(16) {
        let line: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{}", line.join(" "))?;
    }
    for vf in decode_newlink(&bytes)? {
        eprintln!("{}", serde_json::to_string(&vf)?);
    }
    Ok(ExitCode::SUCCESS)
}
