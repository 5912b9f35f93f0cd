//! Subjects: `vfguard.v1.<site>.<host>.<kind>`, one stream (`VFGUARD`) over `vfguard.v1.>`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FleetError;

/// The JetStream stream every agent publishes to.
pub const STREAM: &str = "VFGUARD";
/// The subjects the stream holds.
pub const ALL: &str = "vfguard.v1.>";

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An incident opened, changed state, crossed a rule or closed.
    Incident,
    /// An action's intent (published before it is carried out).
    Action,
    /// An action's outcome.
    Outcome,
    /// The agent is alive: its version, mode, open incidents and outbox backlog.
    Heartbeat,
}

impl Kind {
    /// The subject's last token.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Action => "action",
            Kind::Outcome => "outcome",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent's subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    site: String,
    host: String,
}

impl Subjects {
    /// The subjects of `host` in `site`; both must be valid subject tokens.
    pub fn new(site: &str, host: &str) -> Result<Subjects, FleetError> {
        Ok(Subjects {
            site: token("site", site)?.to_owned(),
            host: token("host", host)?.to_owned(),
        })
    }

    /// The site.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `vfguard.v1.<site>.<host>.<kind>`.
    pub fn of(&self, kind: Kind) -> String {
        format!("vfguard.v1.{}.{}.{kind}", self.site, self.host)
    }

    /// The message id JetStream deduplicates on: `<host>:<seq>` (the journal's commit-order
    /// number), so a restart that publishes again from its cursor stores nothing twice.
    pub fn msg_id(&self, seq: u64) -> String {
        format!("{}:{seq}", self.host)
    }
}

/// Checks a subject token: not empty, no `.`, `*`, `>` or whitespace (they would split or
/// widen the subject), at most 64 bytes.
fn token<'a>(what: &'static str, value: &'a str) -> Result<&'a str, FleetError> {
    let why = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > 64 {
        Some("it is longer than 64 bytes")
    } else if value.contains(['.', '*', '>']) {
        Some("`.`, `*` and `>` are subject syntax")
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it holds whitespace or a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(FleetError::BadToken {
            what,
            value: value.to_owned(),
            why,
        }),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_ids() {
        let s = Subjects::new("fra1", "hv-07").unwrap();
        assert_eq!(s.of(Kind::Incident), "vfguard.v1.fra1.hv-07.incident");
        assert_eq!(s.of(Kind::Heartbeat), "vfguard.v1.fra1.hv-07.heartbeat");
        assert_eq!(s.msg_id(42), "hv-07:42");
    }

    #[test]
    fn a_name_that_would_split_or_widen_a_subject_is_refused() {
        for bad in ["", "a.b", "*", "h>", "two words", "tab\t", &"x".repeat(65)] {
            let e = Subjects::new("site", bad).unwrap_err();
            assert!(e.to_string().contains("host"), "{e}");
        }
        assert!(Subjects::new("a.b", "h").is_err());
    }
}
