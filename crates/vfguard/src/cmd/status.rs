//! `vfguard status`: asks the running daemon over its API socket.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::cli::StatusArgs;

/// `GET path` on the daemon's socket: the status code and the JSON body. A missing socket or a
/// refused connection means no daemon, said in words an operator can act on.
pub fn get(socket: &Path, path: &str) -> anyhow::Result<(u16, Value)> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "no vfguard daemon answers on {} ({e}); start it (`systemctl start vfguard` or `vfguard run`), or give --socket PATH",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer from {}", socket.display()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the daemon's answer has no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("the daemon's answer has no status code")?;
    let json = serde_json::from_str(body)
        .with_context(|| format!("the daemon's answer is not JSON: {body:.200}"))?;
    Ok((code, json))
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (code, v) = get(&args.socket, "/v1/status")?;
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
