//! `vfguard status`: asks the running daemon over its API socket.

use std::process::ExitCode;

use vfguard_api::reply::Status;

use crate::cli::StatusArgs;

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (code, v) = super::client::get(&args.socket, "/v1/status")?;
    if code != 200 {
        anyhow::bail!("the daemon answered {code}: {}", super::client::reason(&v));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = match super::client::read::<Status>(v, "status")? {
        Status::Starting => {
            println!("vfguard starting: reading the host and the journal; nothing to show yet");
            return Ok(ExitCode::SUCCESS);
        }
        Status::Running(s) => s,
    };
    println!("vfguard {} running: mode {}", s.version, s.mode);
    println!(
        "    kernel log: {} records read, {} lost",
        s.records, s.lost
    );
    println!(
        "    host map: version {}, {} PFs, {} VFs{}",
        s.topology_version,
        s.pfs,
        s.vfs,
        if s.topology_stale {
            " (stale: the last read of the host failed; GET /v1/topology says why)"
        } else {
            ""
        }
    );
    let incidents: Vec<String> = s
        .incidents
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    println!(
        "    incidents: {}",
        if incidents.is_empty() {
            "none".to_owned()
        } else {
            incidents.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}
