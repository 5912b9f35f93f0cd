//! Issue 13, item 1: 1100 idle connections to the API socket exhausted the daemon's 1024 file
//! descriptors. Now connections beyond the cap wait in the kernel's backlog (no fd in the
//! daemon), silent ones are dropped after the header timeout, and a new client is answered.
//!
//! Alone in its test binary: it counts the process's file descriptors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{closed_within, open_fds, read_response, send, ReadTimeout as _, Server, GET_STATUS};
use vfguard_api::Limits;

#[test]
fn idle_connections_beyond_the_cap_cost_no_fd_and_a_new_client_is_still_answered() {
    const CAP: usize = 8;
    const IDLE: usize = 40;
    let header = Duration::from_millis(250);
    let server = Server::unix(Limits {
        max_connections: CAP,
        header_read_timeout: header,
        ..Limits::default()
    });
    // One exchange first, so the runtime's own descriptors are all open before the count.
    let mut c = server.connect_unix();
    c.set_timeout(Some(Duration::from_secs(10)));
    send(&mut c, GET_STATUS);
    assert!(read_response(&mut c).is_some());
    drop(c);
    let before = open_fds();
    // The attack: connections that say nothing.
    let mut idle: Vec<_> = (0..IDLE).map(|_| server.connect_unix()).collect();
    // Each client holds one fd here; the daemon at most one per served connection.
    let bound = before + IDLE + CAP + 2;
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(open_fds());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        most <= bound,
        "{most} fds open with {IDLE} idle clients (before: {before}, bound: {bound})"
    );
    // A new client asks; it is behind the idle ones in the backlog, which are accepted and
    // dropped CAP at a time, one header timeout per round.
    let t = Instant::now();
    let mut client = server.connect_unix();
    send(&mut client, GET_STATUS);
    let rounds = u32::try_from(IDLE.div_ceil(CAP) + 1).unwrap();
    client.set_timeout(Some(header * rounds + Duration::from_secs(5)));
    let (head, body) = read_response(&mut client).expect("the new client was never answered");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, r#"{"state":"starting"}"#);
    assert!(
        t.elapsed() < header * rounds + Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    // Every idle client was dropped by the daemon, none kept.
    for (n, c) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(c, Duration::from_secs(5)),
            "idle client {n} still open"
        );
    }
    drop(idle);
    drop(client);
    assert!(
        open_fds() <= before + CAP + 2,
        "fds left: {} (before: {before})",
        open_fds()
    );
    assert!(server.stop_within(Duration::from_secs(5)));
}
