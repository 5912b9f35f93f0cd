//! The catalog's cost per line: a noise line rejected by the prefilter, a fault line classified,
//! and a realistic 1 MiB log scanned end to end (0.1% fault lines).

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vfguard_model::{LogFormat, TrustBasis};
use vfguard_parse::catalog::Catalog;
use vfguard_parse::{scan_text, Classifier, FormatHint, LogicalLine};

const NOISE: &[&str] = &[
    "[ 1234.567890] EXT4-fs (dm-0): mounted filesystem with ordered data mode. Quota mode: none.",
    "[ 1234.567891] audit: type=1400 audit(1700000000.123:456): apparmor=\"STATUS\" operation=\"profile_load\"",
    "[ 1234.567892] i40e 0000:3b:00.0 enp59s0f0: NIC Link is Up, 40 Gbps Full Duplex, Flow Control: None",
    "[ 1234.567893] kvm: vcpu 3 ignored rdmsr: 0x4e data 0x0",
    "[ 1234.567894] vfio-pci 0000:3b:02.1: enabling device (0000 -> 0002)",
];

fn line(text: &str) -> LogicalLine<'_> {
    LogicalLine {
        line: 1,
        end_line: 1,
        format: LogFormat::Bare,
        trust: TrustBasis::Unverified,
        timestamp: None,
        seq: None,
        dict_device: None,
        text: text.into(),
    }
}

fn per_line(c: &mut Criterion) {
    let _ = Catalog::get();
    let mut g = c.benchmark_group("classify_line");
    let cases = [
        ("noise", "EXT4-fs (dm-0): mounted filesystem with ordered data mode. Quota mode: none."),
        ("near_miss", "i40e 0000:3b:00.0 enp59s0f0: NIC Link is Up, 40 Gbps Full Duplex, Flow Control: None"),
        ("mdd_vf", "i40e 0000:3b:00.0: 3 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 001b21aabbcc. mdd-auto-reset-vfs=off"),
        ("dmar", "DMAR: [DMA Read NO_PASID] Request device [3b:02.1] fault addr 0x7ff3c000 [fault reason 0x06] PTE Read access is not set"),
    ];
    for (name, text) in cases {
        g.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            let mut c = Classifier::new();
            let mut out = Vec::new();
            b.iter(|| {
                c.push(&line(black_box(text)), &mut out);
                c.finish(&mut out);
                out.clear();
            });
        });
    }
    g.finish();
}

fn whole_log(c: &mut Criterion) {
    let fault = "[ 1234.567899] i40e 0000:3b:00.0: 3 Tx Malicious Driver Detection events detected on PF 0 VF 2 MAC 001b21aabbcc. mdd-auto-reset-vfs=off";
    let mut text = String::new();
    let mut i = 0usize;
    while text.len() < 1 << 20 {
        if i % 1000 == 999 {
            text.push_str(fault);
        } else {
            text.push_str(NOISE[i % NOISE.len()]);
        }
        text.push('\n');
        i += 1;
    }
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("1MiB_0.1pct_faults", |b| {
        b.iter(|| scan_text(black_box(text.as_bytes()), FormatHint::Auto));
    });
    g.finish();
}

criterion_group!(benches, per_line, whole_log);
criterion_main!(benches);
