//! `vfguard`: the one binary. CLI subcommands and, later, the daemon wiring.

mod cli;
mod cmd;
mod host;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("vfguard: {err:#}");
            ExitCode::from(2)
        }
    }
}
