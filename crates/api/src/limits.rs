//! What one listener grants its clients: how many connections at once, how long a request's
//! headers may take, how long a keep-alive connection may sit idle, how many requests one
//! connection may carry.
//!
//! # Design
//! Connections beyond [`Limits::max_connections`] are not accepted: they wait in the kernel's
//! listen backlog, where they cost the daemon no file descriptor, and are accepted in turn as
//! served connections close. (Accepting and closing them at once would cost an fd and a syscall
//! per attempt and turn away legitimate clients as surely as the attacker; waiting lets them in
//! once a slot frees.) The timeouts make sure slots do free: a client that connects and says
//! nothing, trickles its headers, or keeps a connection open without using it, is dropped.
//!
//! The cap is per listener: clients of TCP (who may not even hold a token) never take the Unix
//! socket's slots, so the operator's commands on the host stay served.
//!
//! # Limitations
//! A client that fills every slot with slow headers, and reconnects as soon as it is dropped,
//! still delays others by up to [`Limits::header_read_timeout`] per round; only access to the
//! socket (mode 0660) or the TCP address (a firewall) keeps such a client out.

use std::time::Duration;

/// The limits of one listener (`[api]` in the daemon's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's listen backlog, not accepted.
    pub max_connections: usize,
    /// From the connection's accept, or from the first byte of a following request, to the end
    /// of the request's headers; a client slower than this is dropped without an answer.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed; so is one whose
    /// client stops reading an answer (no byte written for this long).
    pub idle_timeout: Duration,
    /// Requests served on one connection: the last one's answer carries `Connection: close`
    /// and the connection is closed once it is sent (the client reconnects).
    pub max_requests_per_connection: u32,
}

impl Limits {
    /// 64 connections per listener.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
    /// 10 s for a request's headers.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// 60 s idle.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// 1000 requests per connection.
    pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u32 = 1000;

    /// Each limit that is zero, by its name in `[api]` (a zero would refuse every client).
    pub fn zeros(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.max_connections == 0 {
            out.push("max_connections");
        }
        if self.header_read_timeout.is_zero() {
            out.push("header_read_timeout");
        }
        if self.idle_timeout.is_zero() {
            out.push("idle_timeout");
        }
        if self.max_requests_per_connection == 0 {
            out.push("max_requests_per_connection");
        }
        out
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: Limits::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Limits::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Limits::DEFAULT_IDLE_TIMEOUT,
            max_requests_per_connection: Limits::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sane_and_zeros_are_named() {
        let l = Limits::default();
        assert!(l.zeros().is_empty());
        assert!(l.header_read_timeout < l.idle_timeout);
        let z = Limits {
            max_connections: 0,
            idle_timeout: Duration::ZERO,
            ..l
        };
        assert_eq!(z.zeros(), ["max_connections", "idle_timeout"]);
    }
}
