//! `vfguard status`: asks the running daemon over its API socket.

use std::process::ExitCode;

use crate::cli::StatusArgs;

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (code, v) = super::client::get(&args.socket, "/v1/status")?;
    if code != 200 {
        anyhow::bail!(
            "the daemon answered {code}: {}",
            v["error"].as_str().unwrap_or("no reason given")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    println!(
        "vfguard {} {}: mode {}",
        v["version"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        v["mode"].as_str().unwrap_or("?")
    );
    println!(
        "    kernel log: {} records read, {} lost",
        n("records"),
        n("lost")
    );
    println!(
        "    host map: version {}, {} PFs, {} VFs",
        n("topology_version"),
        n("pfs"),
        n("vfs")
    );
    let incidents: Vec<String> = v["incidents"]
        .as_object()
        .map(|m| m.iter().map(|(k, c)| format!("{c} {k}")).collect())
        .unwrap_or_default();
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
