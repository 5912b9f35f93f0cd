//! Fault events: what one kernel message (or one group of lines) says happened, to which PCI
//! function, and how far the source can be trusted.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::pci::{Bdf, VfIndex};
use crate::topology::{Owner, Topology};

/// What kind of fault (or notable non-fault) a message reports.
///
/// The snake_case names are a stable interface (`vfguard scan --json` prints them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Malicious Driver Detection on the transmit path.
    MddTx,
    /// Malicious Driver Detection on the receive path.
    MddRx,
    /// Malicious Driver Detection, direction not stated.
    Mdd,
    /// The PF driver disabled a VF (or says it stays disabled).
    VfDisabled,
    /// A VF was reset (by the PF, on the VF's request, or seen by the VF driver).
    VfReset,
    /// Spoofed packets were dropped.
    Spoof,
    /// A VF tried to override the administratively set MAC address.
    MacOverride,
    /// A VF tried to override the administratively set VLAN.
    VlanOverride,
    /// A VF's mailbox (virtchnl) request was rejected, invalid, or flooding.
    Mailbox,
    /// A transmit hang or netdev watchdog timeout.
    TxHang,
    /// The PF (the whole adapter) was reset.
    PfReset,
    /// A correctable PCIe AER error.
    AerCorrectable,
    /// An uncorrectable, non-fatal PCIe AER error.
    AerNonfatal,
    /// An uncorrectable, fatal PCIe AER error.
    AerFatal,
    /// Downstream Port Containment took a link down.
    Dpc,
    /// An IOMMU (DMAR, AMD-Vi, SMMU) translation fault.
    IommuFault,
    /// An administrator changed a VF (MAC, VLAN, trust): recorded for audit, not a fault.
    Admin,
    /// A kernel oops, BUG or WARNING whose location names a NIC driver.
    Oops,
    /// A receive queue error (mlx5's `rx` health reporter: CQE errors, a stuck RQ).
    RxError,
    /// The adapter's firmware reported a fault or failed a command (mlx5 health syndromes,
    /// command timeouts, page allocation; devlink `fw`, `fw_fatal`): device-wide, no tenant's.
    FwFault,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 20] = [
        FaultKind::MddTx,
        FaultKind::MddRx,
        FaultKind::Mdd,
        FaultKind::VfDisabled,
        FaultKind::VfReset,
        FaultKind::Spoof,
        FaultKind::MacOverride,
        FaultKind::VlanOverride,
        FaultKind::Mailbox,
        FaultKind::TxHang,
        FaultKind::PfReset,
        FaultKind::AerCorrectable,
        FaultKind::AerNonfatal,
        FaultKind::AerFatal,
        FaultKind::Dpc,
        FaultKind::IommuFault,
        FaultKind::Admin,
        FaultKind::Oops,
        FaultKind::RxError,
        FaultKind::FwFault,
    ];

    /// Whether the kind is the function's own misbehaviour (what a tenant's driver did), as
    /// opposed to the PF driver's reaction to it (a reset, a disable), the hardware's doing
    /// (correctable AER, a Tx hang, a PF reset) or an administrator's. A contained or restored
    /// function showing one of these again is offending again.
    pub fn is_offence(self) -> bool {
        matches!(
            self,
            FaultKind::MddTx
                | FaultKind::MddRx
                | FaultKind::Mdd
                | FaultKind::Spoof
                | FaultKind::MacOverride
                | FaultKind::VlanOverride
                | FaultKind::Mailbox
                | FaultKind::IommuFault
                | FaultKind::AerNonfatal
                | FaultKind::AerFatal
        )
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::MddTx => "mdd_tx",
            FaultKind::MddRx => "mdd_rx",
            FaultKind::Mdd => "mdd",
            FaultKind::VfDisabled => "vf_disabled",
            FaultKind::VfReset => "vf_reset",
            FaultKind::Spoof => "spoof",
            FaultKind::MacOverride => "mac_override",
            FaultKind::VlanOverride => "vlan_override",
            FaultKind::Mailbox => "mailbox",
            FaultKind::TxHang => "tx_hang",
            FaultKind::PfReset => "pf_reset",
            FaultKind::AerCorrectable => "aer_correctable",
            FaultKind::AerNonfatal => "aer_nonfatal",
            FaultKind::AerFatal => "aer_fatal",
            FaultKind::Dpc => "dpc",
            FaultKind::IommuFault => "iommu_fault",
            FaultKind::Admin => "admin",
            FaultKind::Oops => "oops",
            FaultKind::RxError => "rx_error",
            FaultKind::FwFault => "fw_fault",
        }
    }

    /// Whether the kind is a fault (everything but administrator changes).
    pub fn is_fault(self) -> bool {
        self != FaultKind::Admin
    }

    /// Looks a kind up by its stable name.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much an operator should care, independent of the kernel log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording (audit, expected resets).
    Info,
    /// A fault that the hardware or driver contained.
    Warning,
    /// A fault that disrupted a function.
    Error,
    /// A fault that can take down a PF, a link or the host.
    Critical,
}

impl Severity {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text form a line came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// A raw `/dev/kmsg` record (`prio,seq,ts,flags;text` + dictionary).
    Kmsg,
    /// `dmesg` with `[  123.456789]` stamps.
    Dmesg,
    /// `dmesg -T` (`[Mon Jul  7 12:37:37 2025]`).
    DmesgTime,
    /// `dmesg -H` (`[Nov29 18:23]`, `[  +0.000001]`).
    DmesgHuman,
    /// `dmesg -x` (`kern  :err   : ...`).
    DmesgFacility,
    /// `dmesg -r` (`<6>[  123.456789] ...`, `<6>...` with `-t`): the raw priority.
    DmesgRaw,
    /// syslog / kern.log (`Mon DD HH:MM:SS host kernel: ...`) or RFC 3339 stamps.
    Syslog,
    /// journalctl `short-iso`/`short-precise` (`2025-07-07T12:37:37+0000 host kernel: ...`).
    Journal,
    /// A bare `kernel: ` prefix.
    KernelTag,
    /// No prefix at all.
    Bare,
}

impl LogFormat {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Kmsg => "kmsg",
            LogFormat::Dmesg => "dmesg",
            LogFormat::DmesgTime => "dmesg_time",
            LogFormat::DmesgHuman => "dmesg_human",
            LogFormat::DmesgFacility => "dmesg_facility",
            LogFormat::DmesgRaw => "dmesg_raw",
            LogFormat::Syslog => "syslog",
            LogFormat::Journal => "journal",
            LogFormat::KernelTag => "kernel_tag",
            LogFormat::Bare => "bare",
        }
    }
}

/// Why a line is (or is not) believed to come from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustBasis {
    /// A kmsg record with facility 0 whose `DEVICE=` (if any) agrees with the text.
    KernelRecord,
    /// A syslog/journal line tagged `kernel`, `dmesg -x` facility `kern`, or `dmesg -r`
    /// priority with facility 0: the reader that wrote the text said it was the kernel's.
    KernelTag,
    /// Plain text with no provenance (dmesg paste, bare lines): taken as the kernel's.
    Unverified,
    /// A kmsg record (or `dmesg -x` line) with a non-kernel facility: written from userspace.
    UserFacility,
    /// A kmsg record whose `DEVICE=+pci:` dictionary names another function than the text.
    DeviceMismatch,
    /// A syslog/journal line logged by a program other than the kernel.
    NotKernel,
}

impl TrustBasis {
    /// The stable snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            TrustBasis::KernelRecord => "kernel_record",
            TrustBasis::KernelTag => "kernel_tag",
            TrustBasis::Unverified => "unverified",
            TrustBasis::UserFacility => "user_facility",
            TrustBasis::DeviceMismatch => "device_mismatch",
            TrustBasis::NotKernel => "not_kernel",
        }
    }

    /// Whether a line on this basis may be taken as a driver message.
    pub fn is_trusted(self) -> bool {
        matches!(
            self,
            TrustBasis::KernelRecord | TrustBasis::KernelTag | TrustBasis::Unverified
        )
    }
}

/// One fault (or audit) event recognised from the kernel log.
///
/// Field names are a stable interface: `vfguard scan --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// 1-based input line of the message (0 for live records without a line).
    pub line: u64,
    /// Last input line the event covers (continuation and detail lines included).
    pub end_line: u64,
    /// What happened.
    pub kind: FaultKind,
    /// How much it matters.
    pub severity: Severity,
    /// The driver that printed it (the bound driver of the prefix device), when known.
    pub driver: Option<String>,
    /// The PCI address in the message prefix.
    pub device: Option<Bdf>,
    /// The network interface in the message prefix.
    pub netdev: Option<String>,
    /// The PF the event concerns.
    pub pf: Option<Bdf>,
    /// The PF-relative VF index the message names.
    pub vf: Option<VfIndex>,
    /// A device-absolute VF number (i40e "VF number 0x..", ice "VF# ..").
    pub vf_abs: Option<u32>,
    /// The function the event is attributed to: a VF driver's own BDF, the AER source or erring
    /// function, the IOMMU requester; resolved from PF+VF when a topology is known.
    pub function: Option<Bdf>,
    /// The queue the message names.
    pub queue: Option<u32>,
    /// A count the message prints (events, spoofed packets); never a VF index.
    pub count: Option<u64>,
    /// A MAC address the message prints.
    pub mac: Option<MacAddr>,
    /// The catalog entry that matched.
    pub catalog_id: String,
    /// The message text (continuation lines joined with `\n`).
    pub message: String,
    /// Whether the source is trusted to be the kernel.
    pub trusted: bool,
    /// Why it is or is not trusted.
    pub trust: TrustBasis,
    /// The text form of the line.
    pub format: LogFormat,
    /// Seconds since boot, when the line carries it.
    pub timestamp: Option<f64>,
    /// The kmsg sequence number, for kmsg records.
    pub seq: Option<u64>,
    /// Every other field the message yields (event codes, opcodes, AER status and bits...).
    pub details: BTreeMap<String, String>,
    /// The owner of `function` (or of the PF), when a topology was consulted.
    pub owner: Option<Owner>,
    /// Further records identical to this one (same text, device and source) that a reader
    /// folded into it during a storm: the event stands for `1 + repeats` records, and keeps
    /// the first one's line, sequence number and timestamp.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u64,
    /// Printed by a VF's own driver about what befell it (iavf "Failed to communicate with
    /// PF", ixgbevf "PF still resetting"): its owner suffered the fault, so the event is never,
    /// on its own, evidence against that owner.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub victim: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FaultEvent {
    /// Whether this event counts as a fault (a trusted message of a fault kind).
    pub fn is_fault(&self) -> bool {
        self.trusted && self.kind.is_fault()
    }

    /// How many records the event stands for (1 + the identical ones folded into it).
    pub fn records(&self) -> u64 {
        self.repeats.saturating_add(1)
    }

    /// Completes what the line says with the host map: the VF's BDF for a line naming PF + VF,
    /// the PF and index for a line printed by (or naming) a VF, and the owner of the function
    /// (or of the PF for PF-level lines). Nothing is guessed: what the topology does not know
    /// stays unknown.
    pub fn resolve(&mut self, topology: &Topology) {
        if self.function.is_none() {
            if let (Some(pf), Some(vf)) = (self.pf, self.vf) {
                self.function = topology.vf(pf, vf).map(|v| v.bdf);
            }
        }
        // ice's mailbox-overflow warning names the VF only by its MAC: match the VF table.
        if let (Some(pf), None, None, Some(mac)) = (self.pf, self.vf, self.function, self.mac) {
            let by_mac = topology.pf(pf).and_then(|p| {
                p.vfs
                    .iter()
                    .find(|v| v.state.as_ref().and_then(|s| s.mac) == Some(mac))
            });
            if let Some(v) = by_mac {
                self.vf = Some(v.index);
                self.function = Some(v.bdf);
                self.details
                    .insert("resolved_by".to_owned(), "mac".to_owned());
            }
        }
        if let Some(f) = self.function.and_then(|b| topology.function(b)) {
            if let Some(vf) = f.vf {
                self.pf.get_or_insert(f.pf.bdf);
                self.vf.get_or_insert(vf.index);
            }
            self.owner = Some(f.owner().clone());
        } else if let Some(pf) = self.pf.and_then(|b| topology.pf(b)) {
            if self.vf.is_none() {
                self.owner = Some(pf.owner.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_and_format_names_are_their_json() {
        use TrustBasis as T;
        for t in [
            T::KernelRecord,
            T::KernelTag,
            T::Unverified,
            T::UserFacility,
            T::DeviceMismatch,
            T::NotKernel,
        ] {
            let json = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        let json = serde_json::to_string(&LogFormat::DmesgRaw).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", LogFormat::DmesgRaw.as_str()));
    }

    #[test]
    fn kind_names_round_trip_through_serde_and_lookup() {
        for k in FaultKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(FaultKind::from_name(k.as_str()), Some(k));
        }
    }

    #[test]
    fn only_admin_is_not_a_fault() {
        assert_eq!(FaultKind::ALL.iter().filter(|k| !k.is_fault()).count(), 1);
    }
}
