//! Generates a large, realistic host kernel log for the scan benchmark (bench/scan.sh).
//!
//! Boot and NIC-driver noise with about 0.1% fault lines, in several text forms (dmesg, syslog,
//! journalctl short-iso, raw kmsg records with dictionaries), deterministic for a seed.
//!
//! Usage: `genlog SIZE_MIB [SEED] > host.log`

#![allow(missing_docs)]

use std::io::{self, BufWriter, Write};

const NOISE: &[&str] = &[
    "EXT4-fs (dm-0): mounted filesystem with ordered data mode. Quota mode: none.",
    "audit: type=1400 audit(1700000000.123:456): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"libvirt-1b2c\" pid=4242 comm=\"apparmor_parser\"",
    "i40e 0000:3b:00.0 enp59s0f0: NIC Link is Up, 40 Gbps Full Duplex, Flow Control: None",
    "kvm: vcpu 3 ignored rdmsr: 0x4e data 0x0",
    "vfio-pci 0000:3b:02.1: enabling device (0000 -> 0002)",
    "br0: port 3(vnet12) entered forwarding state",
    "device vnet12 entered promiscuous mode",
    "IPv6: ADDRCONF(NETDEV_CHANGE): vnet12: link becomes ready",
    "ice 0000:86:00.0: PTP reset successful",
    "iavf 0000:86:01.3 eth4: NIC Link is Up Speed is 25 Gbps Full Duplex",
    "ixgbe 0000:08:00.1 ens3f1: NIC Link is Up 10 Gbps, Flow Control: RX/TX",
    "perf: interrupt took too long (2503 > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
    "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.",
    "nf_conntrack: nf_conntrack: table full, dropping packet",
    "systemd[1]: Started Session 4242 of user root.",
    "virbr0: port 2(vnet3) entered blocking state",
    "pci 0000:3b:02.5: [8086:154c] type 00 class 0x020000",
    "iommu: Adding device 0000:3b:02.5 to group 112",
    "igb 0000:02:00.0: Reload the VF driver to make this change effective.",
    "mlx5_core 0000:af:00.0: E-Switch: Enable: mode(LEGACY), nvfs(8), active vports(9)",
];

const FAULTS: &[(&str, &str)] = &[
    ("i40e 0000:3b:00.0: 3 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 001b21aabbcc. mdd-auto-reset-vfs=off", "+pci:0000:3b:00.0"),
    ("i40e 0000:3b:00.0: Use PF Control I/F to re-enable the VF #2", "+pci:0000:3b:00.0"),
    ("ice 0000:86:00.0: VF MAC 3a:14:8e:da:b0:98 on PF MAC b4:96:91:aa:bb:cc is generating asynchronous messages and may be overflowing the PF message queue. Please see the Adapter User Guide for more information", "+pci:0000:86:00.0"),
    ("ixgbe 0000:08:00.1 ens3f1: 1934439 Spoofed packets detected", "+pci:0000:08:00.1"),
    ("igb 0000:02:00.0: Spoof event(s) detected on VF 1", "+pci:0000:02:00.0"),
    ("pcieport 0000:3a:00.0: AER: Correctable error message received from 0000:3b:02.5", "+pci:0000:3a:00.0"),
    ("DMAR: [DMA Read NO_PASID] Request device [3b:02.2] fault addr 0x7ff3c000 [fault reason 0x06] PTE Read access is not set", ""),
    ("ixgbe 0000:08:00.1 ens3f1: VF 2 attempted to override administratively set MAC address\nReload the VF driver to resume operations", "+pci:0000:08:00.1"),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic and plenty for picking lines.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let target = mib << 20;
    let mut rng = Rng(seed | 1);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let (mut written, mut seq, mut usec) = (0u64, 0u64, 1_000_000u64);
    let mut faults = 0u64;
    while written < target {
        // Switch form every ~4000 lines, as concatenated logs do.
        let form = (seq / 4000) % 4;
        for _ in 0..4000 {
            seq += 1;
            usec += 1 + rng.next() % 5000;
            let fault = rng.below(1000) == 0;
            let (text, dev) = if fault {
                faults += 1;
                FAULTS[rng.below(FAULTS.len())]
            } else {
                (NOISE[rng.below(NOISE.len())], "")
            };
            let (s, us) = (usec / 1_000_000, usec % 1_000_000);
            let line = match form {
                0 => text
                    .split('\n')
                    .map(|t| format!("[{s:>5}.{us:06}] {t}\n"))
                    .collect::<String>(),
                1 => text
                    .split('\n')
                    .map(|t| {
                        format!(
                            "Nov 29 06:{:02}:{:02} hv07 kernel: [{s:>5}.{us:06}] {t}\n",
                            (s / 60) % 60,
                            s % 60
                        )
                    })
                    .collect(),
                2 => text
                    .split('\n')
                    .map(|t| {
                        format!(
                            "2026-11-29T06:{:02}:{:02}+0000 hv07 kernel: {t}\n",
                            (s / 60) % 60,
                            s % 60
                        )
                    })
                    .collect(),
                _ => {
                    let mut r = format!("6,{seq},{usec},-;{}\n", text.replace('\n', "\\x0a"));
                    if !dev.is_empty() {
                        r.push_str(" SUBSYSTEM=pci\n DEVICE=");
                        r.push_str(dev);
                        r.push('\n');
                    }
                    r
                }
            };
            out.write_all(line.as_bytes())?;
            written += line.len() as u64;
        }
    }
    out.flush()?;
    eprintln!(
        "genlog: {} MiB, {seq} records, {faults} fault lines",
        written >> 20
    );
    Ok(())
}
