//! The PF drivers' documented reactions (signals.md §1, peers.md), as the simulator plays them:
//! which lines each family prints for a hardware event and what it does to the VF.
//!
//! - i40e: a VF MDD event disables the VF unless `mdd-auto-reset-vf` is on (then the VF is
//!   reset); the global line (msglvl-gated) carries device-absolute numbers, the per-VF summary
//!   is PF-relative and printed at most once a second per PF.
//! - ice: per-VF MDD counters and 1/s summaries; with auto-reset, "PF-to-VF reset"; the
//!   mailbox-overflow warning names the VF by MAC, once until the VF is reset.
//! - ixgbe: "Malicious event on VF n tx:.. rx:.."; the queue is re-enabled; spoofed packets are
//!   counted per PF (SSVPC) with no VF named.
//! - igb: spoof events per VF; MAC/VLAN override messages. igb has no MDD.
//! - mlx5 (ConnectX, switchdev): no MDD line on the host; a VF's bad work requests move its
//!   queues to error and its command abuse is rejected by the firmware, both counted in the
//!   vNIC counters its representor's devlink `vnic` reporter diagnoses; a Tx timeout is
//!   printed (en_main.c, en/reporter_tx.c) and reported to the PF's `tx` reporter
//!   (crate::devlink).
//!
//! ice also reports every MDD event to its devlink `mdd` reporter (v6.14), msglvl or not.

use vfguard_model::{Bdf, KmsgRecord};

use vfguard_sources::devlink::fmsg::FmsgBuilder;
use vfguard_sources::devlink::proto::DevHandle;

use crate::devlink::ice_mdd_dump;
use crate::render::record;
use crate::scenario::{BehaviourKind, Family};
use crate::state::SimPf;

/// Lines a hardware event makes the kernel print, in order.
pub struct Printer {
    now_ms: u64,
    /// The records, `seq` unset (the ring assigns it).
    pub out: Vec<KmsgRecord>,
}

impl Printer {
    /// A printer at virtual time `now_ms`.
    pub fn new(now_ms: u64) -> Printer {
        Printer {
            now_ms,
            out: Vec::new(),
        }
    }

    /// Virtual time of the lines.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Prints entry `id` on `bdf` (netdev for netdev_* lines).
    pub fn dev(&mut self, id: &str, driver: &str, bdf: Bdf, netdev: Option<&str>, values: &[&str]) {
        // Each line 7 µs after the previous one, as the driver's printk calls would be.
        let ts = self.now_ms * 1000 + 7 * self.out.len() as u64;
        let name = bdf.to_string();
        if let Some(r) = record(id, Some((driver, &name, netdev)), values, 0, ts) {
            self.out.push(r);
        }
    }

    /// Prints a line with no device prefix (DMAR, core).
    pub fn bare(&mut self, id: &str, values: &[&str]) {
        let ts = self.now_ms * 1000 + 7 * self.out.len() as u64;
        if let Some(r) = record(id, None, values, 0, ts) {
            self.out.push(r);
        }
    }
}

fn pf_line(p: &mut Printer, pf: &SimPf, id: &str, values: &[&str]) {
    let drv = pf.family().pf_driver();
    p.dev(id, drv, pf.spec.bdf, Some(&pf.spec.netdev), values);
}

/// A VF-driver misbehaviour, as the PF sees it. Returns nothing when the VF is disabled.
pub fn vf_event(
    p: &mut Printer,
    pf: &mut SimPf,
    vi: usize,
    kind: BehaviourKind,
    now_ms: u64,
    rng_bits: u64,
) {
    let family = pf.family();
    let auto = pf.spec.mdd_auto_reset;
    let gated = pf.spec.msglvl_tx_err;
    let pf_num = u32::from(pf.spec.bdf.function());
    let vf_base = pf.spec.vf_base;
    let Some(vf) = pf.vfs.get_mut(vi) else { return };
    if !vf.enabled() {
        return;
    }
    let idx = vf.index.0;
    let i = idx.to_string();
    let mac_colon = vf.mac.to_string();
    match kind {
        BehaviourKind::Benign => {}
        BehaviourKind::MddFlood | BehaviourKind::BuggyDriver => match family {
            Family::I40e | Family::Ice => {
                vf.mdd_tx += 1;
                let queue = u32::from(idx) * 4 + (rng_bits % 4) as u32;
                if family == Family::Ice {
                    let dump = ice_mdd_dump(
                        "tx_tclan",
                        u8::try_from(pf_num).unwrap_or(0),
                        idx,
                        7,
                        u16::try_from(queue).unwrap_or(u16::MAX),
                    );
                    pf.health
                        .report(&DevHandle::of(pf.spec.bdf), "mdd", dump, now_ms);
                }
                if gated {
                    let q = queue.to_string();
                    let abs = vf_base + u32::from(idx);
                    if family == Family::I40e {
                        pf_line(
                            p,
                            pf,
                            "i40e.mdd.global_tx",
                            &["02", &q, &format!("{pf_num:02x}"), &format!("{abs:02x}")],
                        );
                    } else {
                        pf_line(
                            p,
                            pf,
                            "ice.mdd.global_tx",
                            &["7", &q, &pf_num.to_string(), &abs.to_string()],
                        );
                        pf_line(p, pf, "ice.mdd.vf", &["TX_TCLAN", &i]);
                    }
                }
                if !pf.summary_pending.contains(&vi) {
                    pf.summary_pending.push(vi);
                }
                flush_summaries(p, pf, now_ms, auto);
            }
            Family::Ixgbe => {
                let mask = format!("{:x}", 1u64 << (idx % 32));
                pf_line(p, pf, "ixgbe.mdd.event", &[&i, &mask, "0"]);
            }
            Family::Igb => {} // igb has no Malicious Driver Detection: the hardware is blind.
            // The device refuses the malformed work request and moves the queue to error.
            Family::Mlx5 => vf.vnic.total_error_queues += 1,
        },
        BehaviourKind::MailboxFlood => match family {
            Family::Ice => {
                if !vf.mbx_latched {
                    vf.mbx_latched = true;
                    let pf_mac = format!("b4:96:91:{:02x}:00:01", pf.spec.bdf.bus());
                    pf_line(p, pf, "ice.mbx.overflow", &[&mac_colon, &pf_mac]);
                }
            }
            Family::I40e => pf_line(p, pf, "i40e.vc.invalid_message", &[&i, "10", "4096"]),
            Family::Ixgbe => pf_line(p, pf, "ixgbe.vc.api_version", &[&i, "99"]),
            Family::Igb => pf_line(p, pf, "igb.vc.unhandled", &["000000ff"]),
            // Command-interface abuse: rejected commands and commands over the VF's quota.
            Family::Mlx5 => {
                vf.vnic.invalid_command += 2;
                vf.vnic.quota_exceeded_command += 8;
            }
        },
        BehaviourKind::MacSpoof => {
            // Spoofed frames are dropped by the anti-spoof filter when it is on.
            let spoofchk = vf.spoofchk;
            if spoofchk {
                vf.stats.tx_dropped += 16;
                pf.ssvpc += 16;
            }
            match family {
                // Legacy and switchdev alike: the dropped frames are the VF's tx_dropped.
                Family::Mlx5 => {}
                Family::I40e => pf_line(p, pf, "i40e.vc.mac_override", &[]),
                Family::Ice => pf_line(p, pf, "ice.vc.mac_override", &[]),
                Family::Ixgbe | Family::Igb => {
                    pf_line(p, pf, "ixgbe.vc.mac_override", &[&i]);
                    if family == Family::Igb && spoofchk {
                        pf_line(p, pf, "igb.spoof", &[&i]);
                    }
                }
            }
        }
        BehaviourKind::SpoofFrames => {
            let frames = vf.tx_allowed(1 + rng_bits % 8);
            if vf.spoofchk && frames > 0 {
                // ixgbe's filter counts them PF-wide only; the VF's own counters do not show
                // the drop (ixgbe_get_vf_stats() has no drop counter).
                pf.ssvpc += frames;
            }
        }
        BehaviourKind::VlanSpoof => match family {
            Family::I40e => pf_line(p, pf, "i40e.vc.untrusted_vlan", &[]),
            Family::Ice => pf_line(p, pf, "ice.vc.untrusted_vlan", &[&i]),
            Family::Ixgbe => pf_line(p, pf, "ixgbe.vc.vlan_override", &[&i]),
            Family::Igb => pf_line(p, pf, "igb.vc.vlan_override", &[&i]),
            Family::Mlx5 => {} // the eswitch drops the frames; nothing is printed
        },
        BehaviourKind::DmaFault => {
            let bdf = vf.bdf;
            dma_fault(p, bdf, rng_bits);
        }
        BehaviourKind::AerStorm | BehaviourKind::PfTxHang | BehaviourKind::MalformedTlp => {}
    }
}

/// The per-VF MDD summary lines, at most once a second per PF (i40e `mdd_message_rate_limit`,
/// ice `last_printed_mdd_jiffies`), then the driver's reaction.
pub fn flush_summaries(p: &mut Printer, pf: &mut SimPf, now_ms: u64, auto: bool) {
    if pf.last_summary_ms.is_some_and(|t| now_ms < t + 1000) {
        return;
    }
    pf.last_summary_ms = Some(now_ms);
    let family = pf.family();
    let pf_id = u32::from(pf.spec.bdf.function()).to_string();
    let onoff = if auto { "on" } else { "off" };
    let pending = std::mem::take(&mut pf.summary_pending);
    for vi in pending {
        let Some(vf) = pf.vfs.get(vi) else { continue };
        let i = vf.index.0.to_string();
        let count = vf.mdd_tx.to_string();
        match family {
            Family::I40e => {
                let bare_mac: String = vf.mac.0.iter().map(|b| format!("{b:02x}")).collect();
                pf_line(
                    p,
                    pf,
                    "i40e.mdd.vf_tx_events",
                    &[&count, &pf_id, &i, &bare_mac, onoff],
                );
                if auto {
                    if let Some(v) = pf.vfs.get_mut(vi) {
                        v.reset();
                    }
                } else {
                    if let Some(v) = pf.vfs.get_mut(vi) {
                        v.driver_disabled = true;
                    }
                    pf_line(p, pf, "i40e.mdd.reenable_vf", &[&i]);
                }
            }
            Family::Ice => {
                let mac = vf.mac.to_string();
                pf_line(
                    p,
                    pf,
                    "ice.mdd.vf_tx_events",
                    &[&count, &pf_id, &i, &mac, onoff],
                );
                if auto {
                    pf_line(p, pf, "ice.mdd.auto_reset", &[&pf_id, &i]);
                    if let Some(v) = pf.vfs.get_mut(vi) {
                        v.reset();
                    }
                }
            }
            Family::Ixgbe | Family::Igb | Family::Mlx5 => {}
        }
    }
}

/// A DMA fault: the IOMMU names the requester (the VF's own RID, or the PF's for a whole NIC).
pub fn dma_fault(p: &mut Printer, requester: Bdf, rng_bits: u64) {
    let addr = format!("{:x}", 0x7ff0_0000u64 + (rng_bits % 0x1000) * 0x1000);
    let rid = format!("{:02x}", requester.bus());
    let dev = format!("{:02x}", requester.device());
    let func = requester.function().to_string();
    p.bare("dmar.drhd", &["2"]);
    p.bare(
        "dmar.dma",
        &[
            "DMA Read",
            &rid,
            &dev,
            &func,
            &addr,
            "06",
            "PTE Read access is not set",
        ],
    );
}

/// Correctable AER errors on a function with no tenant behind them (a marginal link).
pub fn aer_storm(p: &mut Printer, pf: &mut SimPf, owner_driver: &str) {
    pf.aer_rxerr += 1;
    let bdf = pf.spec.bdf;
    let rp = Bdf::new(bdf.segment(), bdf.bus().saturating_sub(1), 0, 0).unwrap_or(bdf);
    let (seg, bus, dev, func) = (
        format!("{:04x}", bdf.segment()),
        format!("{:02x}", bdf.bus()),
        format!("{:02x}", bdf.device()),
        bdf.function().to_string(),
    );
    p.dev(
        "aer.source",
        "pcieport",
        rp,
        None,
        &["", "Correctable", &seg, &bus, &dev, &func, ""],
    );
    p.dev(
        "aer.bus_error",
        owner_driver,
        bdf,
        None,
        &["Correctable", "Physical Layer", "Receiver ID"],
    );
    let (vendor, device, _) = pf.family().ids();
    p.dev(
        "aer.status",
        owner_driver,
        bdf,
        None,
        &[
            vendor.trim_start_matches("0x"),
            device.trim_start_matches("0x"),
            "00000001",
            "0000e000",
        ],
    );
    p.dev(
        "aer.bit",
        owner_driver,
        bdf,
        None,
        &[" 0", "RxErr                 ", " (First)"],
    );
}

/// The PF's transmit queue hangs: the stack's watchdog, then the driver's own report and reset.
pub fn pf_tx_hang(p: &mut Printer, pf: &mut SimPf, rng_bits: u64) {
    pf.tx_hangs += 1;
    let q = (rng_bits % 8).to_string();
    let family = pf.family();
    let drv = family.pf_driver();
    let (bdf, nd) = (pf.spec.bdf, pf.spec.netdev.clone());
    p.dev("watchdog.cpu", drv, bdf, Some(&nd), &["1", &q, "5120"]);
    match family {
        Family::I40e => {
            p.dev(
                "i40e.tx_timeout",
                drv,
                bdf,
                Some(&nd),
                &["390", &q, "1a", "1a", "1c", "1c", "0"],
            );
            p.dev("i40e.tx_timeout_recovery", drv, bdf, Some(&nd), &["1", &q]);
        }
        Family::Ice => {
            p.dev(
                "ice.tx_timeout",
                drv,
                bdf,
                Some(&nd),
                &["12", &q, "8", "8", "a", "1"],
            );
            p.dev("i40e.tx_timeout_recovery", drv, bdf, Some(&nd), &["1", &q]);
            let dump = FmsgBuilder::default()
                .obj_start()
                .obj_start()
                .u32("head", 0x8)
                .u32("intr", 1)
                .u32("vsi_num", 12)
                .u32("queue", u32::try_from(rng_bits % 8).unwrap_or(0))
                .u32("next_to_clean", 0x8)
                .u32("next_to_use", 0xa)
                .end()
                .end();
            pf.health
                .report(&DevHandle::of(bdf), "tx_hang", dump, p.now_ms());
        }
        Family::Mlx5 => {
            // en_main.c mlx5e_tx_timeout_work, then en/reporter_tx.c's report of the queue
            // (netdev_err), which the devlink `tx` reporter also gets.
            p.dev("mlx5e.tx_timeout_detected", drv, bdf, Some(&nd), &[]);
            p.dev(
                "mlx5e.tx_timeout",
                drv,
                bdf,
                Some(&nd),
                &[&q, "1c2", "5d1", "40", "52", "10752000"],
            );
            // en/reporter_tx.c: the timed-out SQ, simplified.
            let dump = FmsgBuilder::default()
                .obj_start()
                .pair_start("SQ")
                .obj_start()
                .u32("channel ix", u32::try_from(rng_bits % 8).unwrap_or(0))
                .u32("sqn", 0x1c2)
                .u32("cc", 0x40)
                .u32("pc", 0x52)
                .end()
                .end()
                .end();
            pf.health
                .report(&DevHandle::of(bdf), "tx", dump, p.now_ms());
        }
        Family::Ixgbe => {
            p.dev(
                "ixgbe.tx_hang_reset",
                drv,
                bdf,
                Some(&nd),
                &[&pf.tx_hangs.to_string(), &q],
            );
            p.dev("ixgbe.reset.tx_timeout", drv, bdf, Some(&nd), &[]);
            p.dev("ixgbe.reset.adapter", drv, bdf, Some(&nd), &[]);
        }
        Family::Igb => {
            p.dev(
                "igb.tx_hang",
                drv,
                bdf,
                None,
                &[
                    &q,
                    "3c",
                    "48",
                    "48",
                    "3c",
                    "1000c4a10",
                    "00000000a1b2c3d4",
                    "1000c4c80",
                    "1",
                ],
            );
        }
    }
}

/// ixgbe's watchdog reads the clear-on-read SSVPC register every 2 s and prints what it counted.
pub fn ixgbe_spoof_check(p: &mut Printer, pf: &mut SimPf) {
    if pf.family() == Family::Ixgbe && pf.ssvpc > 0 {
        let n = std::mem::take(&mut pf.ssvpc).to_string();
        pf_line(p, pf, "ixgbe.spoof", &[&n]);
    }
}
