//! What the engine takes in (observations) and gives out (decisions), and what actuators report
//! back. These cross every stage after parsing: engine, actuators, journal, API.

use serde::{Deserialize, Serialize};

use crate::attribution::Method;
use crate::errno::Errno;
use crate::fault::FaultEvent;
use crate::incident::{Cause, IncidentState};
use crate::pci::{Bdf, VfIndex};
use crate::rule::RuleRef;
use crate::topology::{Owner, VfChange, VfState, VfStats};

/// Milliseconds on the agent's clock (injected: virtual in the simulator, wall time on a host).
pub type Millis = u64;

/// Identifies an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub u64);

/// Identifies an action (intent and outcome share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub u64);

/// Something the engine is told.
// Faults are most of what flows; boxing them would cost an allocation per kernel record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Observation {
    /// A fault event from the kernel log.
    Fault(FaultEvent),
    /// AER counters of a function moved.
    Aer {
        /// The function.
        function: Bdf,
        /// New correctable errors.
        correctable: u64,
        /// New non-fatal errors.
        nonfatal: u64,
        /// New fatal errors.
        fatal: u64,
    },
    /// A VF's counters, as last sampled.
    VfStats {
        /// The PF.
        pf: Bdf,
        /// The VF.
        vf: VfIndex,
        /// The counters.
        stats: VfStats,
    },
    /// What an actuator did with an action.
    Outcome(ActionOutcome),
    /// An operator's decision.
    Operator(OperatorRequest),
    /// Time passed (cool-downs, hold-downs, windows).
    Tick,
}

/// What the agent may do (the policy's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Record and notify only.
    Observe,
    /// Decide and journal what would be done, do nothing.
    #[serde(alias = "dry-run")]
    DryRun,
    /// Act.
    Enforce,
}

impl Mode {
    /// The name in the configuration and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::DryRun => "dry_run",
            Mode::Enforce => "enforce",
        }
    }

    /// The mode named `s` (`observe`, `dry_run` or `dry-run`, `enforce`).
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "observe" => Some(Mode::Observe),
            "dry_run" | "dry-run" => Some(Mode::DryRun),
            "enforce" => Some(Mode::Enforce),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator's request, entering the same path as the engine's own decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "request")]
pub enum OperatorRequest {
    /// Isolate a function now.
    Quarantine {
        /// The function.
        function: Bdf,
        /// Why (required).
        reason: String,
        /// Who asked.
        by: String,
    },
    /// Undo what was done to a function and close its incident.
    Release {
        /// The function.
        function: Bdf,
        /// Who asked.
        by: String,
    },
    /// Switch the policy's mode (`observe`, `dry_run`, `enforce`) until the next restart or
    /// configuration reload.
    SetMode {
        /// The new mode.
        mode: Mode,
        /// Who asked.
        by: String,
    },
}

/// A rung of the escalation ladder, or a restore.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "args")]
pub enum ActionKind {
    /// Tell someone (webhook, log); changes nothing.
    Notify,
    /// Change a VF knob through its PF.
    SetVf(VfChange),
    /// Function-level reset of the VF (sysfs `reset`).
    ResetVf,
    /// Detach the function from its tenant: a VM's is unplugged (libvirt), a pod's VF netdev is
    /// evicted from its network namespace to the host's, down (docs/actions.md).
    Detach,
    /// Pause the VM.
    PauseVm,
    /// Reset the whole PF (never automatic unless configured).
    ResetPf,
    /// Put back the state captured before the first action.
    Restore(Box<VfState>),
}

impl ActionKind {
    /// A short stable name (`set_vf:link_state`, `reset_vf`, ...).
    pub fn name(&self) -> String {
        match self {
            ActionKind::Notify => "notify".into(),
            ActionKind::SetVf(c) => format!("set_vf:{}", c.knob()),
            ActionKind::ResetVf => "reset_vf".into(),
            ActionKind::Detach => "detach".into(),
            ActionKind::PauseVm => "pause_vm".into(),
            ActionKind::ResetPf => "reset_pf".into(),
            ActionKind::Restore(_) => "restore".into(),
        }
    }

    /// Whether, once it succeeded, the function can harm no one (its traffic or its VM stopped).
    pub fn contains(&self) -> bool {
        matches!(
            self,
            ActionKind::SetVf(VfChange::LinkState(crate::topology::VfLinkState::Disable))
                | ActionKind::Detach
                | ActionKind::PauseVm
        )
    }
}

impl VfChange {
    /// The knob's stable name.
    pub fn knob(&self) -> &'static str {
        match self {
            VfChange::LinkState(_) => "link_state",
            VfChange::SpoofChk(_) => "spoofchk",
            VfChange::Trust(_) => "trust",
            VfChange::Rate { .. } => "rate",
            VfChange::Vlan { .. } => "vlan",
            VfChange::Mac(_) => "mac",
        }
    }
}

/// An action the engine decided on (the intent, journalled before it is carried out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Its id.
    pub id: ActionId,
    /// The incident it serves.
    pub incident: IncidentId,
    /// The function it acts on.
    pub function: Bdf,
    /// Its PF and netdev (for VF knobs).
    pub pf: Option<Bdf>,
    /// The PF's netdev.
    pub pf_netdev: Option<String>,
    /// The VF index.
    pub vf: Option<VfIndex>,
    /// The owner at decision time.
    pub owner: Option<Owner>,
    /// What.
    pub kind: ActionKind,
    /// The rule or request that made it.
    pub rule: RuleRef,
    /// Decided, journalled, but not carried out (dry-run mode).
    pub dry_run: bool,
    /// When it was decided.
    pub at: Millis,
}

/// What an actuator reports back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// The action.
    pub id: ActionId,
    /// `None` when it worked, else its error (`EOPNOTSUPP`, `EBUSY`, `ETIMEDOUT`...).
    pub error: Option<Errno>,
    /// The VF's state read just before acting (for restore).
    pub before: Option<VfState>,
    /// When it finished.
    pub at: Millis,
}

/// What the engine decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// An incident was opened.
    IncidentOpened {
        /// It.
        incident: IncidentId,
        /// The function (or PF) it is about.
        function: Bdf,
        /// Its owner then.
        owner: Option<Owner>,
    },
    /// An observation was attributed (or left on the PF), with how and how sure.
    Attributed {
        /// The incident it joined.
        incident: IncidentId,
        /// How.
        method: Method,
        /// 0..=1.
        confidence: f64,
        /// A line of evidence.
        evidence: String,
    },
    /// A rule's threshold was crossed.
    ThresholdCrossed {
        /// The incident.
        incident: IncidentId,
        /// The rule.
        rule: String,
        /// Faults in the window.
        count: u32,
    },
    /// Act (or, in dry-run, record what would be done).
    Act(Action),
    /// An action was suppressed (guard cap, exclusion list, observe mode, low confidence).
    Suppressed {
        /// The incident.
        incident: IncidentId,
        /// What would have been done.
        action: String,
        /// Why not.
        reason: String,
    },
    /// The incident is contained (by the agent, or by the driver disabling the VF).
    Contained {
        /// The incident.
        incident: IncidentId,
        /// How.
        by: String,
    },
    /// The incident's function was put back after its cool-down.
    Restored {
        /// The incident.
        incident: IncidentId,
    },
    /// The incident moved from one state to another ([`crate::incident`] has the table).
    StateChanged {
        /// The incident.
        incident: IncidentId,
        /// Where it stood.
        from: IncidentState,
        /// Where it stands now.
        to: IncidentState,
        /// Why.
        cause: Cause,
    },
    /// The incident was closed.
    Closed {
        /// The incident.
        incident: IncidentId,
        /// Why.
        reason: String,
    },
    /// An operator switched the policy's mode.
    ModeChanged {
        /// The mode before.
        from: Mode,
        /// The mode now.
        to: Mode,
        /// Who asked.
        by: String,
    },
}

impl Decision {
    /// The incident it is about (an operator's mode switch is about none).
    pub fn incident(&self) -> Option<IncidentId> {
        match self {
            Decision::IncidentOpened { incident, .. }
            | Decision::Attributed { incident, .. }
            | Decision::ThresholdCrossed { incident, .. }
            | Decision::Suppressed { incident, .. }
            | Decision::Contained { incident, .. }
            | Decision::Restored { incident }
            | Decision::StateChanged { incident, .. }
            | Decision::Closed { incident, .. } => Some(*incident),
            Decision::Act(action) => Some(action.incident),
            Decision::ModeChanged { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::VfLinkState;

    /// Written by the engine before methods, errors, rules and modes were typed (commit
    /// 8906ca6): journals hold these, and must read them, and write the same again.
    const OLD: [&str; 4] = [
        r#"{"decision":"attributed","incident":3,"method":"whole_device","confidence":1.0,"evidence":"ixgbe 0000:3b:00.0: Malicious event on VF 1"}"#,
        r#"{"decision":"mode_changed","from":"enforce","to":"dry_run","by":"uid=0(root) via unix socket"}"#,
        r#"{"decision":"act","id":7,"incident":3,"function":"0000:3b:02.1","pf":"0000:3b:00.0","pf_netdev":"ens1f0","vf":1,"owner":{"kind":"vm","name":"tenant-a","id":null,"pid":42,"evidence":[]},"kind":{"action":"set_vf","args":{"knob":"link_state","value":"disable"}},"rule":"fallback after set_vf:spoofchk failed: EOPNOTSUPP","dry_run":false,"at":8000}"#,
        r#"{"type":"outcome","id":7,"error":"EBUSY","before":null,"at":8100}"#,
    ];

    #[test]
    fn old_journal_json_reads_as_typed_values_and_writes_the_same() {
        let attributed: Decision = serde_json::from_str(OLD[0]).unwrap();
        assert!(matches!(
            attributed,
            Decision::Attributed {
                method: Method::WholeDevice,
                ..
            }
        ));
        let mode: Decision = serde_json::from_str(OLD[1]).unwrap();
        assert!(matches!(
            mode,
            Decision::ModeChanged {
                from: Mode::Enforce,
                to: Mode::DryRun,
                ..
            }
        ));
        let act: Decision = serde_json::from_str(OLD[2]).unwrap();
        let Decision::Act(a) = &act else {
            panic!("{act:?}")
        };
        assert_eq!(
            a.rule,
            RuleRef::Fallback {
                action: "set_vf:spoofchk".into(),
                error: Errno::EOPNOTSUPP
            }
        );
        assert_eq!(
            a.kind,
            ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable))
        );
        let outcome: Observation = serde_json::from_str(OLD[3]).unwrap();
        let Observation::Outcome(o) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(o.error, Some(Errno::EBUSY));
        for (old, new) in OLD.iter().zip([
            serde_json::to_string(&attributed).unwrap(),
            serde_json::to_string(&mode).unwrap(),
            serde_json::to_string(&act).unwrap(),
            serde_json::to_string(&outcome).unwrap(),
        ]) {
            assert_eq!(*old, new);
        }
    }

    #[test]
    fn every_method_and_mode_round_trips_in_a_decision() {
        for method in Method::ALL {
            let d = Decision::Attributed {
                incident: IncidentId(1),
                method,
                confidence: 0.5,
                evidence: "e".into(),
            };
            let json = serde_json::to_value(&d).unwrap();
            assert_eq!(json["method"], method.as_str());
            assert_eq!(serde_json::from_value::<Decision>(json).unwrap(), d);
        }
        for (from, to) in [
            (Mode::Observe, Mode::DryRun),
            (Mode::DryRun, Mode::Enforce),
            (Mode::Enforce, Mode::Observe),
        ] {
            let d = Decision::ModeChanged {
                from,
                to,
                by: "alice".into(),
            };
            let json = serde_json::to_value(&d).unwrap();
            assert_eq!(
                (&json["from"], &json["to"]),
                (&from.as_str().into(), &to.as_str().into())
            );
            assert_eq!(serde_json::from_value::<Decision>(json).unwrap(), d);
        }
        // `dry-run` was accepted on input, and still is.
        let d: Decision = serde_json::from_str(
            r#"{"decision":"mode_changed","from":"dry-run","to":"enforce","by":"b"}"#,
        )
        .unwrap();
        assert!(matches!(
            d,
            Decision::ModeChanged {
                from: Mode::DryRun,
                ..
            }
        ));
    }
}
