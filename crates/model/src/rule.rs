//! What made an action: a policy rule reaching its threshold, a retry or a fallback after a
//! failed rung, the cool-down, an operator, a re-offence, a containment undone, an uncontained
//! incident's notices.
//!
//! # Design
//! Its JSON form (an [`crate::Action`]'s `rule`), the journal's `rule` column, the webhook's
//! `rule` field and the notices all carry the sentence [`RuleRef`]'s `Display` writes, the text
//! the engine always wrote (`retry after EBUSY`, `fallback after set_vf:link_state failed:
//! EOPNOTSUPP`, `cool_down`...). Reading parses the forms back; any other text is a rule's name,
//! so every journal, however old, loads, and shows the text it holds.
//!
//! # Limitations
//! A policy rule may not be named like one of the other forms (the engine's policy refuses
//! such names). A quarantine whose reason is `release` reads back as a release: both are
//! `operator <who>: release`.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::errno::Errno;
use crate::fault::FaultKind;

const RETRY: &str = "retry after ";
const FALLBACK: &str = "fallback after ";
const FAILED: &str = " failed: ";
const COOL_DOWN: &str = "cool_down";
const OPERATOR: &str = "operator ";
const RELEASE: &str = "release";
const REOFFENCE: &str = "re-offence ";
const AFTER_RESTORE: &str = " after the restore: ";
const UNDONE: &str = "containment undone: ";
const LIFTED: &str = "a VF reset lifted the driver's";
const WHILE_CONTAINED: &str = " while contained";
const UNCONTAINED: &str = "uncontained: no rung of the ladder is left that works for ";
const AFTER: &str = " (after ";
const STILL: &str = "still uncontained: ";
const SINCE_NOTICE: &str = " faults since the last notice";
const PROBE: &str = "localize probe round ";
const GATED_FOR: &str = ": gated for ";
const TTL: &str = " ms, reverted within ";
const REVERTED: &str = ": reverted";

/// What made an action (an [`crate::Action`]'s `rule`). Serialized as the sentence its
/// `Display` writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleRef {
    /// A policy rule reached its threshold: its name (`mdd`). Also any text of no other form,
    /// read from a journal.
    Rule(String),
    /// The same rung again after a transient error: `retry after EBUSY`.
    Retry {
        /// The error of the attempt before.
        error: Errno,
    },
    /// The next rung after one failed: `fallback after set_vf:link_state failed: EOPNOTSUPP`.
    Fallback {
        /// The failed action's name ([`crate::ActionKind::name`]).
        action: String,
        /// Its error.
        error: Errno,
    },
    /// The cool-down passed: the function is put back (`cool_down`).
    CoolDown,
    /// An operator's quarantine: `operator uid=0(root) via unix socket: ticket 42`.
    Quarantine {
        /// Who asked.
        by: String,
        /// Why.
        reason: String,
    },
    /// An operator's release: `operator uid=0(root) via unix socket: release`.
    Release {
        /// Who asked.
        by: String,
    },
    /// A fault after the function was put back: `re-offence 1 after the restore: mdd`.
    Reoffence {
        /// Re-offences of the incident so far.
        count: u32,
        /// The fault's kind.
        kind: FaultKind,
    },
    /// A VF reset lifted the driver's own containment: `containment undone: a VF reset lifted
    /// the driver's`.
    DriverContainmentLifted,
    /// Offences went on past the hold-down while contained: `containment undone: mdd while
    /// contained`.
    OffendedWhileContained {
        /// The fault's kind.
        kind: FaultKind,
    },
    /// No rung is left that works for the function: `uncontained: no rung of the ladder is left
    /// that works for vm:tenant-a (after mdd)`.
    Uncontained {
        /// The owner's label.
        owner: String,
        /// What made the climb that found nothing.
        after: Box<RuleRef>,
    },
    /// An uncontained incident's renewed notice: `still uncontained: 12 faults since the last
    /// notice`.
    StillUncontained {
        /// Faults since the notice before.
        faults: u64,
    },
    /// A localization probe's gate on a suspect VF (docs/localize.md), never a punishment:
    /// `localize probe round 3: gated for 10000 ms, reverted within 30000 ms`.
    Probe {
        /// The search's round.
        round: u32,
        /// How long the gate is meant to stay on.
        window_ms: u64,
        /// When it is reverted whatever happens (its time to live).
        ttl_ms: u64,
    },
    /// A probe's gate taken off: `localize probe round 3: reverted`.
    ProbeReverted {
        /// The search's round.
        round: u32,
    },
}

impl RuleRef {
    /// Reads the sentence `Display` writes; any other text is a rule's name.
    pub fn parse(text: &str) -> RuleRef {
        RuleRef::form(text).unwrap_or_else(|| RuleRef::Rule(text.to_owned()))
    }

    /// The form other than a rule's name that `text` is written in, if any.
    fn form(text: &str) -> Option<RuleRef> {
        if text == COOL_DOWN {
            return Some(RuleRef::CoolDown);
        }
        if let Some(error) = text.strip_prefix(RETRY) {
            return Some(RuleRef::Retry {
                error: Errno::from_name(error),
            });
        }
        if let Some(rest) = text.strip_prefix(FALLBACK) {
            let (action, error) = rest.split_once(FAILED)?;
            return Some(RuleRef::Fallback {
                action: action.to_owned(),
                error: Errno::from_name(error),
            });
        }
        if let Some(rest) = text.strip_prefix(OPERATOR) {
            let (by, reason) = rest.split_once(": ")?;
            let by = by.to_owned();
            return Some(match reason {
                RELEASE => RuleRef::Release { by },
                _ => RuleRef::Quarantine {
                    by,
                    reason: reason.to_owned(),
                },
            });
        }
        if let Some(rest) = text.strip_prefix(REOFFENCE) {
            let (count, kind) = rest.split_once(AFTER_RESTORE)?;
            return Some(RuleRef::Reoffence {
                count: number(count)?,
                kind: FaultKind::from_name(kind)?,
            });
        }
        if let Some(rest) = text.strip_prefix(UNDONE) {
            if rest == LIFTED {
                return Some(RuleRef::DriverContainmentLifted);
            }
            let kind = FaultKind::from_name(rest.strip_suffix(WHILE_CONTAINED)?)?;
            return Some(RuleRef::OffendedWhileContained { kind });
        }
        if let Some(rest) = text.strip_prefix(UNCONTAINED) {
            let (owner, after) = rest.strip_suffix(')')?.split_once(AFTER)?;
            return Some(RuleRef::Uncontained {
                owner: owner.to_owned(),
                after: Box::new(RuleRef::parse(after)),
            });
        }
        if let Some(rest) = text.strip_prefix(PROBE) {
            if let Some(round) = rest.strip_suffix(REVERTED) {
                return Some(RuleRef::ProbeReverted {
                    round: number(round)?,
                });
            }
            let (round, rest) = rest.split_once(GATED_FOR)?;
            let (window, ttl) = rest.strip_suffix(" ms")?.split_once(TTL)?;
            return Some(RuleRef::Probe {
                round: number(round)?,
                window_ms: number(window)?,
                ttl_ms: number(ttl)?,
            });
        }
        if let Some(rest) = text.strip_prefix(STILL) {
            return Some(RuleRef::StillUncontained {
                faults: number(rest.strip_suffix(SINCE_NOTICE)?)?,
            });
        }
        None
    }

    /// Whether `name` may name a policy rule: it must read back as that rule, not as another
    /// form (`cool_down`, `retry after ...`).
    pub fn is_rule_name(name: &str) -> bool {
        RuleRef::form(name).is_none()
    }
}

/// A number written as `Display` writes it (no sign, no leading zero), so texts keep theirs.
fn number<T: FromStr + ToString>(digits: &str) -> Option<T> {
    digits.parse::<T>().ok().filter(|n| n.to_string() == digits)
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::Rule(name) => f.write_str(name),
            RuleRef::Retry { error } => write!(f, "{RETRY}{error}"),
            RuleRef::Fallback { action, error } => write!(f, "{FALLBACK}{action}{FAILED}{error}"),
            RuleRef::CoolDown => f.write_str(COOL_DOWN),
            RuleRef::Quarantine { by, reason } => write!(f, "{OPERATOR}{by}: {reason}"),
            RuleRef::Release { by } => write!(f, "{OPERATOR}{by}: {RELEASE}"),
            RuleRef::Reoffence { count, kind } => {
                write!(f, "{REOFFENCE}{count}{AFTER_RESTORE}{kind}")
            }
            RuleRef::DriverContainmentLifted => write!(f, "{UNDONE}{LIFTED}"),
            RuleRef::OffendedWhileContained { kind } => {
                write!(f, "{UNDONE}{kind}{WHILE_CONTAINED}")
            }
            RuleRef::Uncontained { owner, after } => {
                write!(f, "{UNCONTAINED}{owner}{AFTER}{after})")
            }
            RuleRef::StillUncontained { faults } => write!(f, "{STILL}{faults}{SINCE_NOTICE}"),
            RuleRef::Probe {
                round,
                window_ms,
                ttl_ms,
            } => write!(f, "{PROBE}{round}{GATED_FOR}{window_ms}{TTL}{ttl_ms} ms"),
            RuleRef::ProbeReverted { round } => write!(f, "{PROBE}{round}{REVERTED}"),
        }
    }
}

impl FromStr for RuleRef {
    type Err = Infallible;

    /// [`RuleRef::parse`]: every text is some rule.
    fn from_str(s: &str) -> Result<RuleRef, Infallible> {
        Ok(RuleRef::parse(s))
    }
}

impl Serialize for RuleRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RuleRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RuleRef, D::Error> {
        let text = String::deserialize(d)?;
        Ok(RuleRef::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every form, with the text the engine wrote for it before it was typed.
    fn forms() -> Vec<(RuleRef, &'static str)> {
        vec![
            (RuleRef::Rule("mdd".into()), "mdd"),
            (RuleRef::Rule("mdd_tx>=3/60s".into()), "mdd_tx>=3/60s"),
            (
                RuleRef::Retry {
                    error: Errno::EBUSY,
                },
                "retry after EBUSY",
            ),
            (
                RuleRef::Fallback {
                    action: "set_vf:link_state".into(),
                    error: Errno::EOPNOTSUPP,
                },
                "fallback after set_vf:link_state failed: EOPNOTSUPP",
            ),
            (RuleRef::CoolDown, "cool_down"),
            (
                RuleRef::Quarantine {
                    by: "uid=0(root) pid=42 via unix socket".into(),
                    reason: "ticket 42: floods".into(),
                },
                "operator uid=0(root) pid=42 via unix socket: ticket 42: floods",
            ),
            (
                RuleRef::Release {
                    by: "bearer token from [::1]:4000".into(),
                },
                "operator bearer token from [::1]:4000: release",
            ),
            (
                RuleRef::Reoffence {
                    count: 1,
                    kind: FaultKind::Mdd,
                },
                "re-offence 1 after the restore: mdd",
            ),
            (
                RuleRef::DriverContainmentLifted,
                "containment undone: a VF reset lifted the driver's",
            ),
            (
                RuleRef::OffendedWhileContained {
                    kind: FaultKind::Mailbox,
                },
                "containment undone: mailbox while contained",
            ),
            (
                RuleRef::Uncontained {
                    owner: "netns:pod-a".into(),
                    after: Box::new(RuleRef::Fallback {
                        action: "set_vf:link_state".into(),
                        error: Errno::EOPNOTSUPP,
                    }),
                },
                "uncontained: no rung of the ladder is left that works for netns:pod-a \
                 (after fallback after set_vf:link_state failed: EOPNOTSUPP)",
            ),
            (
                RuleRef::Probe {
                    round: 3,
                    window_ms: 10_000,
                    ttl_ms: 30_000,
                },
                "localize probe round 3: gated for 10000 ms, reverted within 30000 ms",
            ),
            (
                RuleRef::ProbeReverted { round: 3 },
                "localize probe round 3: reverted",
            ),
            (
                RuleRef::StillUncontained { faults: 12 },
                "still uncontained: 12 faults since the last notice",
            ),
        ]
    }

    #[test]
    fn each_form_writes_the_old_text_and_reads_it_back() {
        for (rule, text) in forms() {
            assert_eq!(rule.to_string(), text);
            assert_eq!(RuleRef::parse(text), rule, "{text}");
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<RuleRef>(&json).unwrap(), rule);
        }
    }

    #[test]
    fn texts_of_no_form_are_rule_names_kept_as_they_are() {
        for text in [
            "",
            "test",
            "re-offence 01 after the restore: mdd",
            "re-offence 1 after the restore: no_such_kind",
            "containment undone: somehow",
            "fallback after reset_vf",
            "still uncontained: many faults since the last notice",
            "uncontained: no rung of the ladder is left that works for vm:a",
            "operator alice",
        ] {
            assert_eq!(RuleRef::parse(text), RuleRef::Rule(text.into()));
            assert_eq!(RuleRef::parse(text).to_string(), text);
        }
    }

    #[test]
    fn only_texts_of_no_other_form_may_name_rules() {
        assert!(RuleRef::is_rule_name("mdd"));
        assert!(RuleRef::is_rule_name("retry"));
        assert!(!RuleRef::is_rule_name("cool_down"));
        assert!(!RuleRef::is_rule_name("retry after lunch"));
        assert!(!RuleRef::is_rule_name("operator x: y"));
    }

    proptest! {
        #[test]
        fn any_text_reads_back_as_the_same_rule(text in ".*") {
            let rule = RuleRef::parse(&text);
            prop_assert_eq!(RuleRef::parse(&rule.to_string()), rule.clone());
            let json = serde_json::to_string(&rule).unwrap();
            prop_assert_eq!(serde_json::from_str::<RuleRef>(&json).unwrap(), rule);
        }

        #[test]
        fn texts_keep_their_form(
            prefix in prop::sample::select(vec![
                "", RETRY, FALLBACK, OPERATOR, REOFFENCE, UNDONE, UNCONTAINED, STILL,
            ]),
            rest in "[a-z0-9 :()_-]{0,40}",
        ) {
            // No `E<number>` in it: that is the one text a read writes differently (`E16` is
            // read as EBUSY).
            let text = format!("{prefix}{rest}");
            prop_assert_eq!(RuleRef::parse(&text).to_string(), text);
        }
    }
}
