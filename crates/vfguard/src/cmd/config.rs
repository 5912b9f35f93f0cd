//! `vfguard config check FILE`: the validation `vfguard run` applies, without running.

use std::process::ExitCode;

use serde_json::json;
use vfguard_agent::config::Config;

/// Exit 0 when the file is accepted, 1 when it is not (the reason on stderr, or in the JSON).
pub fn check(file: &std::path::Path, as_json: bool) -> anyhow::Result<ExitCode> {
    match Config::load(file).and_then(|c| c.check_host().map(|()| c)) {
        Ok(c) => {
            let mode = c.agent.policy.mode.as_str();
            let rules: Vec<&str> = c
                .agent
                .policy
                .rules
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            if as_json {
                println!(
                    "{}",
                    json!({
                        "file": file,
                        "ok": true,
                        "mode": mode,
                        "rules": rules,
                        "journal": c.journal,
                        "kmsg": c.kmsg,
                        "webhook": c.webhook.as_ref().map(|w| w.url.clone()),
                    })
                );
            } else {
                println!(
                    "{}: ok (mode {mode}; rules {}; journal {})",
                    file.display(),
                    rules.join(", "),
                    c.journal.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if as_json {
                println!("{}", json!({"file": file, "ok": false, "error": msg}));
            } else {
                eprintln!("vfguard: {msg}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
