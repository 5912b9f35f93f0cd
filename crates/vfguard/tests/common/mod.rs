//! Helpers the CLI tests share: run the binary, start it as a daemon, read its log, signal it.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `vfguard ARGS` to completion.
pub fn vfguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args(args)
        .output()
        .unwrap()
}

/// Its stdout then its stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Starts `vfguard ARGS` with its stderr piped (for [`wait_for`]).
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vfguard"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads stderr lines until one contains `needle` (or the deadline passes).
pub fn wait_for(
    lines: &mut impl Iterator<Item = String>,
    needle: &str,
    deadline: Duration,
) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    for l in lines.by_ref() {
        let hit = l.contains(needle);
        seen.push(l);
        if hit || start.elapsed() > deadline {
            break;
        }
    }
    seen
}

/// Sends signal `sig` to `pid` (kill(1): no unsafe code in the tests).
pub fn kill(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
