//! A generic netlink socket for devlink health: whole netlink messages in and out, as bytes.
//!
//! The devlink messages are encoded and decoded by `vfguard-sources` (pure, tested with
//! recorded bytes); the socket only moves them, so the Linux implementation and the simulated
//! one answer the same bytes.

use std::io;

/// Requests and notifications of generic netlink families (devlink, and `nlctrl` to find it).
pub trait GenlLink: Send {
    /// Sends one request (a whole netlink message) and returns every answer message to it,
    /// concatenated as received, up to and including the one that ends it: `NLMSG_DONE`, an
    /// `NLMSG_ERROR` (an errno, or the acknowledgement), or the single answer of a request
    /// that is not a dump. A refusal is an answer (an `NLMSG_ERROR`), not an `Err`.
    fn request(&mut self, msg: &[u8]) -> io::Result<Vec<u8>>;
    /// Joins the multicast group `group` (a group id from the controller).
    fn join(&mut self, group: u32) -> io::Result<()>;
    /// The notifications received since the last call, concatenated; empty when there are
    /// none. Never blocks.
    fn notifications(&mut self) -> io::Result<Vec<u8>>;
}

impl<L: GenlLink + ?Sized> GenlLink for Box<L> {
    fn request(&mut self, msg: &[u8]) -> io::Result<Vec<u8>> {
        (**self).request(msg)
    }
    fn join(&mut self, group: u32) -> io::Result<()> {
        (**self).join(group)
    }
    fn notifications(&mut self) -> io::Result<Vec<u8>> {
        (**self).notifications()
    }
}
