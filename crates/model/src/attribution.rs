//! How a fault was pinned on a function: the attribution method the engine decided with, and
//! that the journal, the API, the metrics and the CLI show (`docs/engine.md` has each method's
//! evidence and confidence).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How an observation was attributed. Serialized as its snake_case name (`"direct"`,
/// `"whole_device"`...), as journals have always stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The line names the function.
    Direct,
    /// A PF held whole by a VM.
    WholeDevice,
    /// By MAC in the VF table.
    Mac,
    /// A device-absolute VF number through the learned VF base.
    Absolute,
    /// AER/IOMMU requester.
    Requester,
    /// The next line from the same PF named the VF.
    Sequence,
    /// Left on the PF.
    Unattributed,
    /// The AER TLP header a root port or PF logged names the function that sent the bad TLP
    /// (its requester ID for a request, its completer ID for a completion).
    TlpHeader,
    /// A requester printed without a PCI segment matches functions in more than one segment
    /// and nothing the log says (no IOMMU unit) tells them apart: every candidate is listed, no
    /// one is blamed.
    Ambiguous,
    /// A fault that names no VF, pinned on the VF that group testing found: gated alone, its
    /// PF's faults fell by what its search found for it (docs/localize.md).
    Localized,
}

/// How the evidence of a victim-side event begins: a line a VF's own driver printed about what
/// befell it, attached to its function's incident as context, never counted against its owner.
pub const VICTIM_CONTEXT: &str = "victim side (context only, never counted): ";

impl Method {
    /// Every method, in the order above.
    pub const ALL: [Method; 10] = [
        Method::Direct,
        Method::WholeDevice,
        Method::Mac,
        Method::Absolute,
        Method::Requester,
        Method::Sequence,
        Method::Unattributed,
        Method::TlpHeader,
        Method::Ambiguous,
        Method::Localized,
    ];

    /// The stable name (also its JSON form and its metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Direct => "direct",
            Method::WholeDevice => "whole_device",
            Method::Mac => "mac",
            Method::Absolute => "absolute",
            Method::Requester => "requester",
            Method::Sequence => "sequence",
            Method::Unattributed => "unattributed",
            Method::TlpHeader => "tlp_header",
            Method::Ambiguous => "ambiguous",
            Method::Localized => "localized",
        }
    }

    /// The method of this stable name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_stable_name_and_round_trips() {
        for m in Method::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
            assert_eq!(Method::from_name(m.as_str()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
        }
    }

    #[test]
    fn names_are_the_ones_journals_hold() {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(
            names,
            [
                "direct",
                "whole_device",
                "mac",
                "absolute",
                "requester",
                "sequence",
                "unattributed",
                "tlp_header",
                "ambiguous",
                "localized"
            ]
        );
        assert!(serde_json::from_str::<Method>("\"guessed\"").is_err());
    }
}
