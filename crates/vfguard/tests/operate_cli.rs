//! `vfguard config check`, `vfguard completions`, `vfguard man`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::vfguard;

#[test]
fn config_check_accepts_the_shipped_file_and_names_what_is_wrong() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/vfguard.toml");
    let ok = vfguard(&["config", "check", shipped]);
    assert_eq!(ok.status.code(), Some(0));
    let text = String::from_utf8(ok.stdout).unwrap();
    assert!(text.contains(": ok (mode enforce; rules mdd,"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "step = \"100ms\"\n[policy]\nmode = \"dry_run\"\nquarantine_vlan = 9999\n",
    )
    .unwrap();
    let out = vfguard(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("policy.quarantine_vlan (9999) must be 1..=4094"),
        "{err}"
    );
    assert!(err.contains("bad.toml"), "{err}");

    let out = vfguard(&["config", "check", "--json", bad.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("quarantine_vlan"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[policy]\nmode = \"dry_run\"\n").unwrap();
    let out = vfguard(&["config", "check", "-j", good.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["mode"].as_str()),
        (Some(true), Some("dry_run"))
    );

    // What depends on this host: a replay window over a record file has no clock to use.
    let rec = dir.path().join("records.kmsg");
    std::fs::write(&rec, "").unwrap();
    let win = dir.path().join("window.toml");
    std::fs::write(
        &win,
        format!("kmsg = \"{}\"\nreplay_window = \"1h\"\n", rec.display()),
    )
    .unwrap();
    let out = vfguard(&["config", "check", win.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("replay_window applies to the kernel's own log device"));
    std::fs::write(
        &win,
        format!(
            "kmsg = \"{}\"\nreplay_window = \"1h\"\nreplay_history = false\n",
            rec.display()
        ),
    )
    .unwrap();
    let out = vfguard(&["config", "check", win.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "no replay, no window to apply");

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "\n\nstats_evry = \"1s\"\n").unwrap();
    let out = vfguard(&["config", "check", typo.to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 3: unknown field `stats_evry`"), "{err}");
}

#[test]
fn completions_and_man_page_come_from_the_command_line() {
    let bash = vfguard(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    let bash = String::from_utf8(bash.stdout).unwrap();
    assert!(
        bash.contains("complete -F _vfguard"),
        "not a bash completion script"
    );
    for sub in ["scan", "inventory", "incidents", "explain", "run", "demo"] {
        assert!(bash.contains(sub), "{sub} missing from the completions");
    }
    let zsh = String::from_utf8(vfguard(&["completions", "zsh"]).stdout).unwrap();
    assert!(zsh.starts_with("#compdef vfguard"));
    let bad = vfguard(&["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));

    let man = vfguard(&["man"]);
    assert_eq!(man.status.code(), Some(0));
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.contains(".TH vfguard 1"),
        "{}",
        &man[..200.min(man.len())]
    );
    for sub in ["vfguard\\-scan", "vfguard\\-incidents", "vfguard\\-run"] {
        assert!(man.contains(sub), "{sub} missing from the man page");
    }
    assert!(
        !man.contains("vfguard\\-debug") && man.contains("vfguard\\-status"),
        "hidden commands stay hidden"
    );
}
