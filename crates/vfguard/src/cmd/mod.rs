//! Subcommand implementations.

mod catalog;
mod inventory;
mod scan;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Catalog(args) => catalog::run(&args),
        Command::Inventory(args) => inventory::run(&args),
    }
}
