//! `vfguard quarantine`, `release` and `mode`: an operator's requests, through the daemon's
//! socket (the daemon journals each with who asked: the kernel tells it the caller's uid).

use std::process::ExitCode;

use serde_json::{json, Value};

use super::client;
use crate::cli::{ModeArgs, QuarantineArgs, ReleaseArgs};

/// Exit status: 0 done, 1 the daemon refused (its reason on stderr), 2 an error (no daemon).
fn print(code: u16, v: &Value, json: bool) -> anyhow::Result<ExitCode> {
    if !(200..300).contains(&code) {
        if json {
            println!("{}", serde_json::to_string_pretty(v)?);
        }
        eprintln!(
            "vfguard: the daemon refused ({code}): {}",
            vfguard_model::Printable(v["error"].as_str().unwrap_or("no reason given"))
        );
        return Ok(ExitCode::from(1));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut any = false;
    let mut owners = std::collections::BTreeMap::new();
    for d in v["decisions"].as_array().into_iter().flatten() {
        let Ok(d) = serde_json::from_value::<vfguard_model::Decision>(d.clone()) else {
            continue;
        };
        let at = v["at_ms"].as_u64().unwrap_or(0);
        if let Some(line) = vfguard_agent::simrun::describe(at, &d, &mut owners) {
            println!("{}", vfguard_model::Printable(line.trim_start()));
            any = true;
        }
    }
    for o in v["outcomes"].as_array().into_iter().flatten() {
        match o["error"].as_str() {
            None => println!("action {}: ok", o["id"]),
            Some(e) => println!(
                "action {}: failed: {}",
                o["id"],
                vfguard_model::Printable(e)
            ),
        }
    }
    if !any {
        println!("done");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn quarantine(args: &QuarantineArgs) -> anyhow::Result<ExitCode> {
    let (code, v) = client::request(
        &args.socket,
        "POST",
        &format!("/v1/functions/{}/quarantine", args.function),
        Some(&json!({"reason": args.reason})),
    )?;
    print(code, &v, args.json)
}

pub fn release(args: &ReleaseArgs) -> anyhow::Result<ExitCode> {
    let (code, v) = client::request(
        &args.socket,
        "POST",
        &format!("/v1/functions/{}/release", args.function),
        Some(&json!({})),
    )?;
    print(code, &v, args.json)
}

pub fn mode(args: &ModeArgs) -> anyhow::Result<ExitCode> {
    let (code, v) = client::request(
        &args.socket,
        "POST",
        "/v1/policy/mode",
        Some(&json!({"mode": args.mode})),
    )?;
    print(code, &v, args.json)
}
