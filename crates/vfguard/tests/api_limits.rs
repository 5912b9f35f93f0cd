//! Issue 13, item 1, against `vfguard run --sim demo --linger`: the daemon raises its open-file
//! limit to the hard limit at start, and idle connections to its socket beyond `[api]
//! max_connections` cost it no file descriptor: they are dropped after the header timeout, one
//! round after another, and `vfguard status` is still answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{kill, text, vfguard, wait_for};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the demo daemon under `sh`, its soft open-file limit first lowered to 256, and waits
/// for the scenario's end; its log lines so far.
fn daemon(dir: &Path, config: &str) -> (Child, Vec<String>) {
    let cfg = dir.join("vfguard.toml");
    std::fs::write(&cfg, config).unwrap();
    let script = format!(
        "ulimit -Sn 256 && exec '{}' run --sim demo --speed 0 --linger --journal '{}' --socket '{}' --config '{}' --log-format text",
        env!("CARGO_BIN_EXE_vfguard"),
        dir.join("j.db").display(),
        dir.join("s.sock").display(),
        cfg.display(),
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let seen = wait_for(&mut lines, "serving until stopped", Duration::from_secs(60));
    assert!(
        seen.last()
            .is_some_and(|l| l.contains("serving until stopped")),
        "{seen:?}"
    );
    // Keep reading the log, so the daemon never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, seen)
}

/// The soft and hard "Max open files" of `pid`.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut f = line.split_whitespace().skip(3);
    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn the_daemon_raises_its_open_file_limit_and_bounds_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (child, log) = daemon(
        dir.path(),
        "[api]\nmax_connections = 8\nheader_read_timeout = \"300ms\"\n",
    );
    let pid = child.id();
    let (soft, hard) = nofile(pid);
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    if hard != "256" {
        assert!(
            log.iter().any(|l| l.contains("raised the open-file limit")),
            "{log:?}"
        );
    }
    let sock = dir.path().join("s.sock");
    let s = sock.to_str().unwrap();
    let o = vfguard(&["status", "--json", "--socket", s]);
    assert!(o.status.success(), "{}", text(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["topology_stale"], false, "{status}");
    let before = open_fds(pid);

    // The attack: 100 connections that say nothing.
    let idle: Vec<_> = (0..100)
        .map(|_| std::os::unix::net::UnixStream::connect(&sock).unwrap())
        .collect();
    let mut most = 0;
    for _ in 0..30 {
        most = most.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        most <= before + 8 + 2,
        "the daemon holds {most} fds with 100 idle clients (before: {before})"
    );
    // A client behind them in the backlog is answered once they are dropped, 8 every 300 ms.
    let t = Instant::now();
    let o = vfguard(&["status", "--socket", s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    drop(idle);
    kill(pid, 15);
    let mut child = child;
    assert!(child.wait().unwrap().success());
}
