//! The listeners hold their clients to their [`Limits`] (issue 13, item 1): a cap on
//! connections (beyond it, clients wait in the backlog), a header read timeout, an idle
//! keep-alive timeout, a request limit per connection; on the Unix socket and on TCP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{closed_within, read_response, send, ReadTimeout as _, Server, GET_STATUS};
use vfguard_api::Limits;

fn limits(header_ms: u64, idle_ms: u64) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        ..Limits::default()
    }
}

#[test]
fn a_client_that_sends_nothing_is_dropped_after_the_header_timeout() {
    let server = Server::unix(limits(300, 30_000));
    let mut silent = server.connect_unix();
    let t = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The same on TCP, where the client need not hold a token to connect.
    let server = Server::tcp(limits(300, 30_000));
    let mut silent = server.connect_tcp();
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
}

#[test]
fn a_client_that_sends_its_headers_slowly_is_dropped_before_they_end() {
    let server = Server::unix(limits(400, 30_000));
    let mut slow = server.connect_unix();
    slow.set_timeout(Some(Duration::from_millis(50)));
    // A byte every 50 ms: the whole head would take several seconds.
    let head = format!(
        "GET /v1/status HTTP/1.1\r\nHost: vfguard\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(80)
    );
    let t = Instant::now();
    let mut dropped = false;
    for b in head.bytes() {
        use std::io::{Read as _, Write as _};
        if slow.write_all(&[b]).is_err() {
            dropped = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                dropped = true;
                break;
            }
            Ok(n) => panic!("answered: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                dropped = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(dropped, "the slow client was never dropped");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    // The header timeout is shorter than the pause between the two requests: only the idle
    // timeout applies between requests.
    let server = Server::unix(limits(200, 1_500));
    let mut c = server.connect_unix();
    c.set_timeout(Some(Duration::from_secs(10)));
    send(&mut c, GET_STATUS);
    let (head, body) = read_response(&mut c).unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(body, r#"{"state":"starting"}"#);
    std::thread::sleep(Duration::from_millis(600));
    send(&mut c, GET_STATUS);
    let (head, _) = read_response(&mut c).expect("kept alive past the header timeout");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let t = Instant::now();
    assert!(
        closed_within(&mut c, Duration::from_secs(10)),
        "never closed"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1_200) && took < Duration::from_secs(5),
        "closed after {took:?}, not the idle timeout"
    );
}

#[test]
fn a_connection_is_closed_gracefully_after_its_request_limit() {
    let server = Server::unix(Limits {
        max_requests_per_connection: 3,
        ..Limits::default()
    });
    let mut c = server.connect_unix();
    c.set_timeout(Some(Duration::from_secs(10)));
    for n in 1..=3 {
        send(&mut c, GET_STATUS);
        let (head, body) = read_response(&mut c).unwrap();
        assert!(head.starts_with("http/1.1 200"), "{n}: {head}");
        assert_eq!(body, r#"{"state":"starting"}"#);
        assert_eq!(head.contains("connection: close"), n == 3, "{n}: {head}");
    }
    // A fourth request on it is never read.
    let _ = std::io::Write::write_all(&mut c, GET_STATUS.as_bytes());
    assert!(closed_within(&mut c, Duration::from_secs(5)));
    // A new connection is served.
    let mut c = server.connect_unix();
    c.set_timeout(Some(Duration::from_secs(10)));
    send(&mut c, GET_STATUS);
    assert!(read_response(&mut c).is_some());
}

#[test]
fn tcp_connections_beyond_the_cap_wait_until_a_slot_frees() {
    let server = Server::tcp(Limits {
        max_connections: 2,
        ..limits(30_000, 30_000)
    });
    // Two clients hold both slots (each served once, then idle).
    let mut holders: Vec<_> = (0..2)
        .map(|_| {
            let mut c = server.connect_tcp();
            c.set_timeout(Some(Duration::from_secs(10)));
            send(&mut c, GET_STATUS);
            assert!(read_response(&mut c).is_some());
            c
        })
        .collect();
    // A third connects (the kernel queues it) but is not accepted, so not answered.
    let mut third = server.connect_tcp();
    send(&mut third, GET_STATUS);
    third.set_timeout(Some(Duration::from_millis(500)));
    assert!(read_response(&mut third).is_none(), "served beyond the cap");
    // Once a holder leaves, its slot goes to the third.
    drop(holders.pop());
    third.set_timeout(Some(Duration::from_secs(10)));
    let (head, _) = read_response(&mut third).expect("served once a slot freed");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    drop(holders);
}

#[test]
fn shutdown_closes_idle_connections_and_does_not_wait_for_their_timeout() {
    let server = Server::unix(limits(60_000, 60_000));
    let mut idle = server.connect_unix();
    idle.set_timeout(Some(Duration::from_secs(10)));
    send(&mut idle, GET_STATUS);
    assert!(read_response(&mut idle).is_some());
    // And one that connected and said nothing yet.
    let _silent = server.connect_unix();
    assert!(server.stop_within(Duration::from_secs(5)), "shutdown hung");
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
}
