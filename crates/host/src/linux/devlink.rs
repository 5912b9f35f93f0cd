//! The generic netlink socket on Linux (`NETLINK_GENERIC`, netlink-sys): one socket for
//! requests, one non-blocking socket for the multicast notifications, so that a notification
//! never interleaves with a dump being read.
//!
//! Thin: it frames nothing itself and reads only the `nlmsghdr` (with netlink-packet-core's
//! `NetlinkBuffer`) to know where an answer ends; the devlink messages are
//! `vfguard_sources::devlink`'s.

use std::io;

use netlink_packet_core::{NetlinkBuffer, NLMSG_DONE, NLMSG_ERROR, NLM_F_MULTIPART};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use crate::devlink::GenlLink;

/// `ENOBUFS`: the socket's queue overflowed and notifications were dropped.
const ENOBUFS: i32 = 105;

/// Generic netlink sockets in the calling thread's network namespace.
pub struct LinuxGenl {
    req: Socket,
    mcast: Socket,
    /// Notifications dropped by the kernel (`ENOBUFS`) so far: the periodic reporter dump
    /// catches up with what they said.
    pub overruns: u64,
}

impl LinuxGenl {
    /// Opens and binds both sockets.
    pub fn open() -> io::Result<LinuxGenl> {
        let mut req = Socket::new(NETLINK_GENERIC)?;
        req.bind_auto()?;
        req.connect(&SocketAddr::new(0, 0))?;
        let mut mcast = Socket::new(NETLINK_GENERIC)?;
        mcast.bind_auto()?;
        mcast.set_non_blocking(true)?;
        Ok(LinuxGenl {
            req,
            mcast,
            overruns: 0,
        })
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl GenlLink for LinuxGenl {
    fn request(&mut self, msg: &[u8]) -> io::Result<Vec<u8>> {
        let seq = NetlinkBuffer::new_checked(msg)
            .map_err(|_| invalid("request is not a netlink message"))?
            .sequence_number();
        self.req.send(msg, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.req.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let rest = data.get(offset..).unwrap_or_default();
                let b = NetlinkBuffer::new_checked(rest)
                    .map_err(|_| invalid("truncated netlink answer"))?;
                let len = b.length() as usize;
                let (kind, flags, s) = (b.message_type(), b.flags(), b.sequence_number());
                if len == 0 {
                    return Err(invalid("zero-length netlink message"));
                }
                let whole = rest.get(..len).unwrap_or(rest);
                offset += (len + 3) & !3;
                if s != seq {
                    continue; // an answer to an earlier, abandoned request
                }
                out.extend_from_slice(whole);
                if kind == NLMSG_DONE || kind == NLMSG_ERROR || flags & NLM_F_MULTIPART == 0 {
                    return Ok(out);
                }
            }
        }
    }

    fn join(&mut self, group: u32) -> io::Result<()> {
        self.mcast.add_membership(group)
    }

    fn notifications(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.mcast.recv_from_full() {
                Ok((data, _)) if data.is_empty() => return Ok(out),
                Ok((data, _)) => out.extend_from_slice(&data),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => self.overruns += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asks the live kernel for the devlink family (needs no privilege); a kernel without
    /// devlink answers ENOENT, which is an answer too.
    #[test]
    #[ignore = "needs a Linux kernel with generic netlink"]
    fn the_controller_answers() {
        let mut l = LinuxGenl::open().unwrap();
        // CTRL_CMD_GETFAMILY "devlink", built by hand: 16 + 4 + 12 bytes.
        let mut m = Vec::new();
        m.extend_from_slice(&32u32.to_ne_bytes());
        m.extend_from_slice(&0x10u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[3, 1, 0, 0]);
        m.extend_from_slice(&12u16.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(b"devlink\0");
        assert!(!l.request(&m).unwrap().is_empty());
    }
}
