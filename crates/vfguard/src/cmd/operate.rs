//! `vfguard quarantine`, `release` and `mode`: an operator's requests, through the daemon's
//! socket (the daemon journals each with who asked: the kernel tells it the caller's uid).

use std::process::ExitCode;

use serde_json::{json, Value};
use vfguard_api::reply::OperatorAccepted;

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
            vfguard_model::Printable(&client::reason(v))
        );
        return Ok(ExitCode::from(1));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Done, whatever the answer says: a reply this build cannot read is said, not an error.
    let r: OperatorAccepted = match serde_json::from_value(v.clone()) {
        Ok(r) => r,
        Err(e) => {
            println!("done (the daemon's answer could not be read: {e}; `vfguard incidents` shows the state)");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let mut any = false;
    let mut owners = std::collections::BTreeMap::new();
    for d in &r.decisions {
        if let Some(line) = vfguard_agent::simrun::describe(r.at_ms, d, &mut owners) {
            println!("{}", vfguard_model::Printable(line.trim_start()));
            any = true;
        }
    }
    for o in &r.outcomes {
        match &o.error {
            None => println!("action {}: ok", o.id.0),
            Some(e) => println!(
                "action {}: failed: {}",
                o.id.0,
                vfguard_model::Printable(&e.to_string())
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
