//! The simulated host's state: its PFs and VFs as the NIC and driver see them, its tenants, and
//! the kernel log ring.

use std::collections::{BTreeMap, VecDeque};

use vfguard_model::{Bdf, KmsgRecord, MacAddr, VfIndex, VfLinkState, VfState, VfStats};

use crate::scenario::{Family, PfSpec};

/// The simulated ports' line rate, Mbit/s.
pub const LINE_RATE_MBPS: u64 = 10_000;

/// One VF as the PF driver holds it.
#[derive(Debug, Clone)]
pub struct SimVf {
    /// Index under its PF.
    pub index: VfIndex,
    /// Address.
    pub bdf: Bdf,
    /// Administratively set MAC (what libvirt or the operator set through the PF).
    pub mac: MacAddr,
    /// Port VLAN.
    pub vlan: u16,
    /// VLAN priority.
    pub qos: u8,
    /// Anti-spoof checking.
    pub spoofchk: bool,
    /// Trusted mode.
    pub trust: bool,
    /// The link-state knob.
    pub link_state: VfLinkState,
    /// Rate limits, Mbps.
    pub min_tx_rate: u32,
    /// Rate limits, Mbps.
    pub max_tx_rate: u32,
    /// Counters.
    pub stats: VfStats,
    /// The PF driver disabled it (i40e after MDD, without auto-reset) until a reset.
    pub driver_disabled: bool,
    /// Tx MDD events since the last VF reset.
    pub mdd_tx: u64,
    /// Rx MDD events since the last VF reset.
    pub mdd_rx: u64,
    /// ice's once-per-VF mailbox-overflow latch.
    pub mbx_latched: bool,
    /// Resets so far.
    pub resets: u32,
    /// mlx5: the vNIC counters its representor's `vnic` reporter diagnoses.
    pub vnic: crate::devlink::Vnic,
}

impl SimVf {
    /// Whether the VF can act at all (not forced down by the agent or disabled by its driver).
    pub fn enabled(&self) -> bool {
        !self.driver_disabled && self.link_state != VfLinkState::Disable
    }

    /// Of `n` frames the tenant tries to send in a moment, those its `max_tx_rate` lets out: all
    /// of them unlimited, else the share the cap is of the line rate (a VF throttled to
    /// 10 Mbit/s on a 10 Gbit/s port sends a thousandth of what it did). A throttle is the
    /// localizer's least harmful gate (docs/localize.md).
    pub fn tx_allowed(&self, n: u64) -> u64 {
        if self.max_tx_rate == 0 {
            return n;
        }
        n.saturating_mul(u64::from(self.max_tx_rate)) / LINE_RATE_MBPS
    }

    /// A VF reset (FLR, or the PF resetting it): the driver's per-VF state starts over.
    pub fn reset(&mut self) {
        self.driver_disabled = false;
        self.mdd_tx = 0;
        self.mdd_rx = 0;
        self.mbx_latched = false;
        self.resets += 1;
    }

    /// As rtnetlink would report it.
    pub fn netlink(&self) -> VfState {
        VfState {
            index: self.index.0,
            mac: Some(self.mac),
            vlan: Some(u32::from(self.vlan)),
            qos: Some(u32::from(self.qos)),
            spoofchk: Some(self.spoofchk),
            trust: Some(self.trust),
            link_state: Some(self.link_state),
            min_tx_rate: Some(self.min_tx_rate),
            max_tx_rate: Some(self.max_tx_rate),
            stats: Some(self.stats),
        }
    }
}

/// One PF.
#[derive(Debug, Clone)]
pub struct SimPf {
    /// Its scenario entry.
    pub spec: PfSpec,
    /// Its VFs by index.
    pub vfs: Vec<SimVf>,
    /// When the driver last printed its per-VF MDD summary (rate-limited to 1/s per PF).
    pub last_summary_ms: Option<u64>,
    /// VFs with MDD events not yet printed in a summary.
    pub summary_pending: Vec<usize>,
    /// ixgbe's clear-on-read spoofed-packet counter (SSVPC).
    pub ssvpc: u64,
    /// AER correctable errors so far (RxErr).
    pub aer_rxerr: u64,
    /// Tx hangs so far.
    pub tx_hangs: u64,
    /// Its devlink health reporters.
    pub health: crate::devlink::PfHealth,
}

impl SimPf {
    /// The driver family.
    pub fn family(&self) -> Family {
        self.spec.driver
    }
}

/// The address of VF `i` of a PF: the bus after the PF's, device `i / 8`, function `i % 8`
/// (the common first-VF-offset/stride layout; the agent reads the real mapping from `virtfnN`).
pub fn vf_bdf(pf: Bdf, i: u16) -> Bdf {
    let dev = u8::try_from(i / 8).unwrap_or(31).min(31);
    let func = u8::try_from(i % 8).unwrap_or(0);
    Bdf::new(pf.segment(), pf.bus().wrapping_add(1), dev, func).unwrap_or(pf)
}

/// The MAC the simulated administrator gives VF `i` of the PF on `bus`.
pub fn vf_mac(bus: u8, i: u16) -> MacAddr {
    let [hi, lo] = i.to_be_bytes();
    MacAddr([0x52, 0x54, 0x00, bus, hi, lo])
}

/// A tenant.
#[derive(Debug, Clone)]
pub struct SimOwner {
    /// Name.
    pub name: String,
    /// A VM (else a container).
    pub vm: bool,
    /// Its process.
    pub pid: u32,
    /// Its functions: (PF index, VF index or `None` for the whole PF).
    pub functions: Vec<(usize, Option<usize>)>,
    /// Still holds its functions (a migrated VM holds none).
    pub present: bool,
    /// Paused by the agent: it does nothing.
    pub paused: bool,
}

/// The kernel log ring: bounded like the kernel's, so a slow reader sees an overrun.
#[derive(Debug)]
pub struct LogRing {
    records: VecDeque<KmsgRecord>,
    capacity: usize,
    next_seq: u64,
    /// Every record ever written, when the run keeps them (for `--log` and reports).
    pub kept: Option<Vec<KmsgRecord>>,
}

impl LogRing {
    /// A ring holding at most `capacity` records.
    pub fn new(capacity: usize, keep_all: bool) -> LogRing {
        LogRing {
            records: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            next_seq: 0,
            kept: keep_all.then(Vec::new),
        }
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends a record (its `seq` is assigned here).
    pub fn push(&mut self, mut rec: KmsgRecord) {
        rec.seq = self.next_seq;
        self.next_seq += 1;
        if let Some(k) = self.kept.as_mut() {
            k.push(rec.clone());
        }
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(rec);
    }

    /// The oldest record still held.
    pub fn first_seq(&self) -> u64 {
        self.records.front().map_or(self.next_seq, |r| r.seq)
    }

    /// The record with this sequence number, if still held.
    pub fn get(&self, seq: u64) -> Option<&KmsgRecord> {
        let first = self.first_seq();
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.records.get(i)
    }
}

/// Calls the agent made on the simulated host's knobs, for tests and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCall {
    /// Virtual time.
    pub at_ms: u64,
    /// What was asked (`set_vf 0000:3b:00.0 vf 2 link_state disable`, `reset 0000:3b:02.2`).
    pub op: String,
    /// `ok` or the errno name.
    pub result: String,
}

/// Injected failures per PF: errno name and how many calls remain.
pub type Failures = BTreeMap<Bdf, (String, u32)>;

/// Injected eviction failures per container (by name): errno name and how many calls remain.
pub type NetnsFailures = BTreeMap<String, (String, u32)>;
