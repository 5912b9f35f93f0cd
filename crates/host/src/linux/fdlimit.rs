//! The process's open-file limit (`RLIMIT_NOFILE`, getrlimit(2)).
//!
//! The daemon raises its soft limit to the hard one at start: the soft limit is 1024 on most
//! distributions (a guard for programs that still use select(2), which vfguard does not), and
//! every sysfs, procfs and libvirt read, every API client, the journal and rtnetlink each hold a
//! descriptor while they work. The systemd unit sets `LimitNOFILE=65536` for the hard limit.

use std::io;

/// The open-file limit around [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit found.
    pub before: u64,
    /// The soft limit now.
    pub after: u64,
    /// The hard limit (the most an unprivileged process may raise its soft limit to).
    pub hard: u64,
}

/// The soft and hard open-file limits, as getrlimit(2) gives them.
pub fn fd_limits() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, Resource};
    getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)
}

/// Raises the soft open-file limit to the hard one (a no-op when they are equal).
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    use nix::sys::resource::{setrlimit, Resource};
    let (before, hard) = fd_limits()?;
    if before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    let (after, hard) = fd_limits()?;
    Ok(FdLimit {
        before,
        after,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let l = raise_fd_limit().unwrap();
        assert_eq!(l.after, l.hard);
        assert!(l.before <= l.after);
        assert_eq!(fd_limits().unwrap(), (l.hard, l.hard));
    }
}
