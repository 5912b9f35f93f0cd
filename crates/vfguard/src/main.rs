//! `vfguard`: the one binary: the command line and its subcommands; the agent itself is the
//! `vfguard-agent` library (`crates/agent`).

mod cli;
mod cmd;
mod textlog;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        // A reader that stops early (`| head`) is not an error.
        Err(err)
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("vfguard: {err:#}");
            ExitCode::from(2)
        }
    }
}
