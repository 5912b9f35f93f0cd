//! The operator's paths end to end against `vfguard run --sim demo --linger`: quarantine,
//! release and mode through the CLI and the socket, each journalled with who asked; incidents
//! and explain through the socket; TCP only behind its bearer token; a bad API configuration
//! refused before anything starts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_wrap)]

mod common;
use common::{kill, spawn, text, vfguard, wait_for};
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Starts the demo daemon and waits for the scenario's end (the daemon stays up: --linger).
fn daemon(dir: &Path, extra: &[&str]) -> Child {
    let sock = dir.join("s.sock");
    let db = dir.join("j.db");
    let mut args = vec![
        "run",
        "--sim",
        "demo",
        "--speed",
        "0",
        "--linger",
        "--journal",
        db.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
        "--log-format",
        "text",
    ];
    args.extend_from_slice(extra);
    let mut child = spawn(&args);
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let seen = wait_for(&mut lines, "serving until stopped", Duration::from_secs(60));
    if seen
        .last()
        .is_some_and(|l| l.contains("serving until stopped"))
    {
        return child;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the daemon did not reach the scenario's end: {seen:?}");
}

fn stop(mut child: Child) {
    kill(child.id(), 15);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn quarantine_release_and_mode_through_the_socket_are_journalled_with_who_asked() {
    let dir = tempfile::tempdir().unwrap();
    let child = daemon(dir.path(), &[]);
    let sock = dir.path().join("s.sock");
    let s = sock.to_str().unwrap();
    let me = std::fs::metadata(dir.path()).unwrap().uid();

    let o = vfguard(&[
        "quarantine",
        "0000:3c:00.1",
        "--reason",
        "tenant reported a compromised guest",
        "--socket",
        s,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("set_vf:link_state on 0000:3c:00.1"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("vm:web-2"),
        "the owner is named: {}",
        text(&o)
    );

    // Through the socket: the list, then the incident's evidence with who asked and why.
    let o = vfguard(&["incidents", "--open", "--json", "--socket", s]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["function"] == "0000:3c:00.1")
        .unwrap_or_else(|| panic!("{rows}"))
        .clone();
    let id = row["id"].as_u64().unwrap().to_string();
    let o = vfguard(&["explain", &id, "--socket", s]);
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("operator uid={me}"))
            && shown.contains("tenant reported a compromised guest"),
        "{shown}"
    );

    // Refusals say what is wrong; nothing is done.
    let o = vfguard(&["quarantine", "0000:99:00.0", "--reason", "x", "--socket", s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no function 0000:99:00.0 on this host"),
        "{}",
        text(&o)
    );
    let o = vfguard(&[
        "quarantine",
        "0000:3c:00.1",
        "--reason",
        "  ",
        "--socket",
        s,
    ]);
    assert!(text(&o).contains("a reason is required"), "{}", text(&o));

    let o = vfguard(&["release", "0000:3c:00.1", "--socket", s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("restore on 0000:3c:00.1"), "{}", text(&o));
    let o = vfguard(&["release", "0000:3c:00.1", "--socket", s]);
    assert!(text(&o).contains("nothing to release"), "{}", text(&o));

    let o = vfguard(&["mode", "observe", "--socket", s]);
    assert!(text(&o).contains("mode enforce -> observe"), "{}", text(&o));
    let o = vfguard(&["status", "--json", "--socket", s]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["mode"], "observe");
    stop(child);

    // The journal holds the requests with who asked, read offline.
    let db = dir.path().join("j.db");
    let o = vfguard(&["explain", &id, "--json", "--journal", db.to_str().unwrap()]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let by: Vec<&str> = d["observations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["observation"]["by"].as_str())
        .collect();
    assert_eq!(by.len(), 2, "quarantine and release: {d}");
    assert!(
        by.iter().all(|b| b.starts_with(&format!("uid={me}"))),
        "{by:?}"
    );
}

fn http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn tcp_is_served_only_behind_a_private_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let read_token = dir.path().join("read-token");
    std::fs::write(&read_token, "scrape-scrape-scrape-scrape\n").unwrap();
    std::fs::set_permissions(&read_token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.path().join("vfguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\nread_token_file = \"{}\"\n",
            token.display(),
            read_token.display()
        ),
    )
    .unwrap();
    // A token others may read is refused, before anything starts.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = vfguard(&["config", "check", cfg.to_str().unwrap()]);
    assert!(
        !o.status.success() && text(&o).contains("chmod 600"),
        "{}",
        text(&o)
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    // TCP without a token file is refused too.
    let open = dir.path().join("open.toml");
    std::fs::write(&open, format!("[api]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let o = vfguard(&["config", "check", open.to_str().unwrap()]);
    assert!(
        text(&o).contains("api.listen needs api.token_file"),
        "{}",
        text(&o)
    );

    let child = daemon(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let addr = format!("127.0.0.1:{port}");
    let get = |auth: &str| {
        http(
            &addr,
            &format!("GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n"),
        )
    };
    assert!(get("").starts_with("HTTP/1.1 401"));
    assert!(get("Authorization: Bearer nope\r\n").starts_with("HTTP/1.1 401"));
    let ok = get("Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n");
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("\"running\""),
        "{ok}"
    );
    let body = r#"{"reason":"over tcp"}"#;
    let post = |auth: &str| {
        http(
            &addr,
            &format!(
                "POST /v1/functions/0000:3c:00.2/quarantine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert!(post("").starts_with("HTTP/1.1 401"));
    // Prometheus's token reads the metrics and may not change anything.
    let scrape = http(
        &addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer scrape-scrape-scrape-scrape\r\n\r\n",
    );
    assert!(
        scrape.starts_with("HTTP/1.1 200") && scrape.contains("vfguard_build_info"),
        "{scrape}"
    );
    let refused = post("Authorization: Bearer scrape-scrape-scrape-scrape\r\n");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    // A rotated token takes effect on SIGHUP; the old one stops working.
    std::fs::write(&token, "fedcba9876543210fedcba9876543210\n").unwrap();
    kill(child.id(), 1);
    let start = Instant::now();
    while !get("Authorization: Bearer fedcba9876543210fedcba9876543210\r\n")
        .starts_with("HTTP/1.1 200")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new token never took"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        get("Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n")
            .starts_with("HTTP/1.1 401")
    );
    let ok = post("Authorization: Bearer fedcba9876543210fedcba9876543210\r\n");
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("bearer token from 127.0.0.1"),
        "{ok}"
    );
    stop(child);
}

#[test]
fn only_the_socket_owner_and_its_group_may_connect() {
    let dir = tempfile::tempdir().unwrap();
    // Only the socket's own mode may keep anyone out, not its directory's.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = daemon(dir.path(), &[]);
    let sock = dir.path().join("s.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "no access for others");
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    if me == 0 {
        // As root the test can be somebody else: nobody may neither change nor read.
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_vfguard"))
            .args(["quarantine", "0000:3c:00.1", "--reason", "x", "--socket"])
            .arg(&sock)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("refuses you"), "{}", text(&o));
        let o = vfguard(&["incidents", "--json", "--socket", sock.to_str().unwrap()]);
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            !rows.to_string().contains("0000:3c:00.1"),
            "nothing was done for nobody: {rows}"
        );
    }
    stop(child);
}
