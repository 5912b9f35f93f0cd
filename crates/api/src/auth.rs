//! Who is asking, and whether they may change anything.
//!
//! On the Unix socket the kernel says who connected (`SO_PEERCRED`): reading needs only access
//! to the socket (mode 0660), changing anything needs a uid on the [`Access`] list (root and the
//! daemon's own user by default). Over TCP every request needs the bearer token, and a holder of
//! the token may change things. Every change is journalled with the caller's [`Caller::label`].

use std::net::SocketAddr;

/// The authenticated caller of one request (a request extension set by the listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A local process on the Unix socket.
    Unix {
        /// Its user id.
        uid: u32,
        /// Its process id, when the kernel gave it.
        pid: Option<i32>,
        /// The user's name, when `/etc/passwd` has it.
        user: Option<String>,
    },
    /// A client over TCP that presented a bearer token.
    Token {
        /// Where it connected from.
        peer: SocketAddr,
        /// It presented the read-only token (a scraper's), not the one that may change things.
        read_only: bool,
    },
}

impl Caller {
    /// How the journal names the caller ("who asked").
    pub fn label(&self) -> String {
        match self {
            Caller::Unix { uid, pid, user, .. } => {
                let name = user
                    .as_deref()
                    .map(|u| format!("({u})"))
                    .unwrap_or_default();
                let pid = pid.map(|p| format!(" pid={p}")).unwrap_or_default();
                format!("uid={uid}{name}{pid} via unix socket")
            }
            Caller::Token {
                peer,
                read_only: false,
            } => format!("bearer token from {peer}"),
            Caller::Token {
                peer,
                read_only: true,
            } => format!("read-only token from {peer}"),
        }
    }
}

/// Who may change things over the Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// User ids allowed to quarantine, release and switch the mode.
    pub mutators: Vec<u32>,
}

impl Access {
    /// Root and `own` (the daemon's effective uid).
    pub fn root_and(own: u32) -> Access {
        let mut mutators = vec![0];
        if own != 0 {
            mutators.push(own);
        }
        Access { mutators }
    }

    /// Whether `caller` may change things; `Err` says why not and what to do.
    pub fn may_change(&self, caller: Option<&Caller>) -> Result<String, (u16, String)> {
        match caller {
            None => Err((
                401,
                "unauthenticated: connect through the daemon's Unix socket, or over TCP with \
                 `Authorization: Bearer <token>`"
                    .to_owned(),
            )),
            Some(
                c @ Caller::Token {
                    read_only: false, ..
                },
            ) => Ok(c.label()),
            Some(
                c @ Caller::Token {
                    read_only: true, ..
                },
            ) => Err((
                403,
                format!(
                    "{} may read but not change anything; changes need the daemon's token_file",
                    c.label()
                ),
            )),
            Some(c @ Caller::Unix { uid, .. }) if self.mutators.contains(uid) => Ok(c.label()),
            Some(c @ Caller::Unix { .. }) => Err((
                403,
                format!(
                    "{} may read but not change anything; changes are for the users in \
                     `api_users` of the daemon's configuration (now uids {:?})",
                    c.label(),
                    self.mutators
                ),
            )),
        }
    }
}

/// A value the daemon replaces on a configuration reload while the listeners run (who may
/// change things, the TCP tokens): cheap to clone, each request reads the current one.
#[derive(Debug)]
pub struct Reloadable<T>(std::sync::Arc<std::sync::RwLock<T>>);

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Reloadable(self.0.clone())
    }
}

impl<T: Clone> Reloadable<T> {
    /// Holding `v`.
    pub fn new(v: T) -> Reloadable<T> {
        Reloadable(std::sync::Arc::new(std::sync::RwLock::new(v)))
    }

    /// The current value.
    pub fn get(&self) -> T {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces it (a reload).
    pub fn set(&self, v: T) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = v;
    }
}

impl<T: Clone> From<T> for Reloadable<T> {
    fn from(v: T) -> Reloadable<T> {
        Reloadable::new(v)
    }
}

/// The name of `uid` in `passwd` (the text of `/etc/passwd`).
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

/// The uid of `name` in `passwd`.
pub fn user_id(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// The gid of group `name` in `group` (the text of `/etc/group`).
pub fn group_id(group: &str, name: &str) -> Option<u32> {
    user_id(group, name)
}

/// Compares a presented token with the configured one in time independent of where they differ.
pub fn token_matches(presented: &[u8], configured: &[u8]) -> bool {
    if presented.len() != configured.len() {
        return false;
    }
    presented
        .iter()
        .zip(configured)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken line\n";

    #[test]
    fn names_and_ids_come_from_passwd() {
        assert_eq!(user_name(PASSWD, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(PASSWD, 7), None);
        assert_eq!(user_id(PASSWD, "root"), Some(0));
        assert_eq!(user_id(PASSWD, "bob"), None);
        assert_eq!(
            group_id("wheel:x:10:alice\nvfguard-ops:x:998:\n", "vfguard-ops"),
            Some(998)
        );
    }

    #[test]
    fn only_listed_uids_and_token_holders_may_change() {
        let a = Access::root_and(1000);
        let unix = |uid| Caller::Unix {
            uid,
            pid: Some(42),
            user: None,
        };
        assert_eq!(
            a.may_change(Some(&unix(0))),
            Ok("uid=0 pid=42 via unix socket".into())
        );
        assert!(a.may_change(Some(&unix(1000))).is_ok());
        assert_eq!(a.may_change(Some(&unix(1001))).unwrap_err().0, 403);
        assert_eq!(a.may_change(None).unwrap_err().0, 401);
        let t = Caller::Token {
            peer: "127.0.0.1:5000".parse().unwrap(),
            read_only: false,
        };
        assert_eq!(
            a.may_change(Some(&t)),
            Ok("bearer token from 127.0.0.1:5000".into())
        );
        let r = Caller::Token {
            peer: "127.0.0.1:5000".parse().unwrap(),
            read_only: true,
        };
        assert_eq!(a.may_change(Some(&r)).unwrap_err().0, 403);
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cret", b"s3creT"));
        assert!(!token_matches(b"s3cre", b"s3cret"));
        assert!(!token_matches(b"", b"s3cret"));
    }
}
