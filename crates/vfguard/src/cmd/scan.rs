//! `vfguard scan`: offline analysis of a saved kernel log.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use vfguard_model::{printable, FaultEvent, FaultKind, Printable, Severity, TrustBasis};
use vfguard_parse::{FormatHint, ScanStats, Scanner};

use crate::cli::{FormatArg, ScanArgs};

/// Read size: large enough that the prefilter runs over long stretches.
const CHUNK: usize = 4 << 20;
/// Show progress for inputs at least this big when stderr is a terminal.
const PROGRESS_MIN: u64 = 64 << 20;

pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let hint = match args.format {
        FormatArg::Auto => FormatHint::Auto,
        FormatArg::Kmsg => FormatHint::Kmsg,
        FormatArg::Dmesg => FormatHint::Dmesg,
        FormatArg::Syslog => FormatHint::Syslog,
        FormatArg::Journal => FormatHint::Journal,
    };
    let inputs: Vec<&Path> = if args.files.is_empty() {
        vec![Path::new("-")]
    } else {
        args.files.iter().map(|p| p.as_path()).collect()
    };
    let many = inputs.len() > 1;
    let topology = match &args.root {
        Some(root) if !root.is_dir() => anyhow::bail!(
            "--root {}: not a directory (give the root of a host tree, or / for this host)",
            root.display()
        ),
        Some(root) => {
            let t = vfguard_agent::host::topology_reader(root).read();
            for w in &t.warnings {
                eprintln!("vfguard: warning: topology: {}", Printable(w));
            }
            Some(t)
        }
        None => None,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut summary = Summary::default();
    let mut failed = false;
    let mut read_any = false;
    let mut header_done = args.json;
    for input in inputs {
        let name = input.display().to_string();
        let result = scan_input(input, hint, |ev| {
            let resolved;
            let ev = match &topology {
                Some(t) => {
                    let mut e = ev.clone();
                    e.resolve(t);
                    // A requester printed without its PCI segment (DMAR): placed by the map and
                    // the IOMMU unit, or nobody named on a multi-segment host.
                    t.place_segmentless(&mut e);
                    resolved = e;
                    &resolved
                }
                None => ev,
            };
            summary.add(ev);
            if args.json {
                write_json(&mut out, ev, &name)
            } else {
                if !header_done {
                    header_done = true;
                    table_header(&mut out, many)?;
                }
                table_row(&mut out, ev, many.then_some(name.as_str()))
            }
        });
        match result {
            Ok(stats) => {
                read_any = true;
                summary.add_stats(&stats);
            }
            Err(err) if is_broken_pipe(&err) => return Ok(ExitCode::from(summary.exit_code())),
            Err(err) => {
                out.flush().ok();
                eprintln!("vfguard: {err:#}");
                failed = true;
            }
        }
    }
    if !args.json && read_any {
        summary.print(&mut out)?;
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the report")?,
    }
    Ok(ExitCode::from(if failed { 2 } else { summary.exit_code() }))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Scans one file (or standard input), calling `on_event` for each event in order.
fn scan_input(
    path: &Path,
    hint: FormatHint,
    mut on_event: impl FnMut(&FaultEvent) -> io::Result<()>,
) -> anyhow::Result<ScanStats> {
    let name = path.display();
    let (mut reader, size): (Box<dyn Read>, Option<u64>) = if path == Path::new("-") {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat {name}"))?;
        if meta.is_dir() {
            anyhow::bail!("{name} is a directory; give the log files inside it");
        }
        (Box::new(file), Some(meta.len()).filter(|_| meta.is_file()))
    };
    let progress = size.filter(|&s| s >= PROGRESS_MIN && io::stderr().is_terminal());
    let started = Instant::now();
    let mut last_report = started;
    let mut scanner = Scanner::new(hint);
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    let mut total: u64 = 0;
    let mut events = Vec::new();
    loop {
        let mut eof = false;
        while filled < buf.len() {
            match reader.read(buf.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    filled += n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("reading {name}")),
            }
        }
        let data = buf.get(..filled).unwrap_or_default();
        let consumed = scanner.feed(data, eof, &mut events);
        for ev in events.drain(..) {
            on_event(&ev).context("writing the report")?;
        }
        if eof {
            break;
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        if let Some(size) = progress {
            if last_report.elapsed().as_millis() >= 500 {
                last_report = Instant::now();
                let pct = total.saturating_mul(100) / size.max(1);
                eprint!(
                    "\rscanning {}: {pct}% of {} MiB",
                    Printable(&name.to_string()),
                    size >> 20
                );
            }
        }
    }
    if progress.is_some() {
        eprintln!(
            "\rscanning {}: done in {:.1} s          ",
            Printable(&name.to_string()),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(scanner.stats())
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    #[serde(flatten)]
    event: &'a FaultEvent,
    file: &'a str,
}

fn write_json(out: &mut impl Write, event: &FaultEvent, file: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &JsonEvent { event, file })?;
    out.write_all(b"\n")
}

fn table_header(out: &mut impl Write, many: bool) -> io::Result<()> {
    let line = if many { "FILE:LINE" } else { "LINE" };
    writeln!(
        out,
        "{line:<10} {:<16} {:<8} {:<13} {:>4} {:<13} {:<9} MESSAGE",
        "KIND", "SEVERITY", "PF", "VF", "FUNCTION", "DRIVER"
    )
}

fn table_row(out: &mut impl Write, e: &FaultEvent, file: Option<&str>) -> io::Result<()> {
    // Kernel text and file names are escaped (vfguard_model::printable): a line cannot drive
    // the terminal or hide behind bidi controls.
    let line = match file {
        Some(f) => format!("{}:{}", printable(f), e.line),
        None => e.line.to_string(),
    };
    let kind = if e.trusted {
        e.kind.to_string()
    } else {
        format!("UNTRUSTED:{}", e.kind)
    };
    let dash = || "-".to_owned();
    let vf =
        e.vf.map(|v| v.to_string())
            .or_else(|| e.vf_abs.map(|v| format!("#{v}")))
            .unwrap_or_else(dash);
    let mut msg = printable(e.message.lines().next().unwrap_or("")).into_owned();
    if msg.chars().count() > 72 {
        msg = msg.chars().take(71).collect::<String>() + "…";
    }
    writeln!(
        out,
        "{line:<10} {kind:<16} {:<8} {:<13} {vf:>4} {:<13} {:<9} {msg}",
        e.severity.as_str(),
        e.pf.map_or_else(dash, |b| b.to_string()),
        e.function.map_or_else(dash, |b| b.to_string()),
        e.driver
            .as_deref()
            .map_or_else(dash, |d| printable(d).into_owned()),
    )
}

/// Counts for the summary, per target (the most specific thing an event names).
#[derive(Default)]
struct Summary {
    by_target: BTreeMap<String, Target>,
    events: u64,
    faults: u64,
    admin: u64,
    untrusted: u64,
    /// Faults counted from text that says nothing of where it came from.
    unverified: u64,
    /// Per input form: events, and how many of them each provenance.
    forms: BTreeMap<&'static str, BTreeMap<TrustBasis, u64>>,
    lines: u64,
    skipped: u64,
}

#[derive(Default)]
struct Target {
    kinds: BTreeMap<FaultKind, u64>,
    score: u64,
    worst: Option<Severity>,
}

impl Summary {
    fn add(&mut self, e: &FaultEvent) {
        self.events += 1;
        *self
            .forms
            .entry(e.format.as_str())
            .or_default()
            .entry(e.trust)
            .or_default() += 1;
        if !e.trusted {
            self.untrusted += 1;
            return;
        }
        if !e.kind.is_fault() {
            self.admin += 1;
            return;
        }
        self.faults += 1;
        if e.trust == TrustBasis::Unverified {
            self.unverified += 1;
        }
        // Escaped once here: the names hold kernel text (devices, netdevs).
        let t = self
            .by_target
            .entry(printable(&target(e)).into_owned())
            .or_default();
        *t.kinds.entry(e.kind).or_default() += 1;
        t.score += match e.severity {
            Severity::Critical => 50,
            Severity::Error => 10,
            Severity::Warning => 3,
            Severity::Info => 1,
        };
        t.worst = t.worst.max(Some(e.severity));
    }

    fn add_stats(&mut self, s: &ScanStats) {
        self.lines += s.lines;
        self.skipped += s.skipped_long + s.skipped_invalid;
    }

    /// 0 no fault; 1 faults, each from a line whose provenance was verified; 3 faults, some
    /// only from text that cannot say it came from the kernel.
    fn exit_code(&self) -> u8 {
        match (self.faults, self.unverified) {
            (0, _) => 0,
            (_, 0) => 1,
            _ => 3,
        }
    }

    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        if self.events > 0 {
            writeln!(out)?;
        }
        let mut ranked: Vec<(&String, &Target)> = self.by_target.iter().collect();
        ranked.sort_by(|a, b| b.1.score.cmp(&a.1.score).then(a.0.cmp(b.0)));
        if !ranked.is_empty() {
            writeln!(out, "Faults by function:")?;
            let width = ranked.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (name, t) in &ranked {
                writeln!(out, "  {name:<width$}  {}", kinds(t))?;
            }
            writeln!(out)?;
        }
        write!(
            out,
            "{} events: {} faults, {} admin changes, {} untrusted, in {} lines",
            self.events, self.faults, self.admin, self.untrusted, self.lines
        )?;
        if self.skipped > 0 {
            write!(
                out,
                " ({} unreadable lines skipped: too long or not UTF-8)",
                self.skipped
            )?;
        }
        writeln!(out)?;
        if !self.forms.is_empty() {
            writeln!(out, "Provenance by input form:")?;
            for (form, trusts) in &self.forms {
                let list: Vec<String> = trusts
                    .iter()
                    .map(|(t, n)| format!("{n} {}", t.as_str()))
                    .collect();
                writeln!(out, "  {form:<15} {}", list.join(", "))?;
            }
        }
        if self.unverified > 0 {
            writeln!(
                out,
                "Unverified: {} of the faults come from text that does not say it came from the \
                 kernel (plain dmesg or bare lines: anyone could have written them); prefer raw \
                 records (`vfguard scan /dev/kmsg`-style record files), `dmesg -r` or `dmesg -x`, \
                 or the journal's kernel lines. Exit status 3 says so.",
                self.unverified
            )?;
        }
        if self.untrusted > 0 {
            writeln!(
                out,
                "Note: {} driver-like lines did not come from the kernel (userspace writes to /dev/kmsg, \
                 or another program's syslog lines) and were not counted as faults.",
                self.untrusted
            )?;
        }
        match ranked.first() {
            Some((name, t)) => {
                let top = t
                    .kinds
                    .iter()
                    .max_by_key(|(k, n)| (weight(**k), **n))
                    .map(|(k, _)| *k);
                writeln!(
                    out,
                    "Look first at {name}: {}{}",
                    kinds(t),
                    top.map(|k| format!(" ({})", meaning(k)))
                        .unwrap_or_default()
                )
            }
            None => writeln!(out, "No faults found."),
        }
    }
}

fn kinds(t: &Target) -> String {
    t.kinds
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most specific thing an event names, as the summary groups it.
fn target(e: &FaultEvent) -> String {
    match (e.pf, e.vf, e.function, e.vf_abs) {
        (Some(pf), Some(vf), _, _) => format!("PF {pf} VF {vf}"),
        (_, _, Some(f), _) if Some(f) != e.pf => format!("function {f}"),
        (Some(pf), None, _, Some(abs)) => format!("PF {pf} VF #{abs} (device-absolute)"),
        (Some(pf), None, _, None) => match e.mac {
            Some(mac) => format!("PF {pf} VF with MAC {mac}"),
            None => format!("PF {pf} (no VF named)"),
        },
        _ => match (&e.device, &e.netdev) {
            (Some(d), _) => format!("device {d}"),
            (None, Some(n)) => format!("netdev {n}"),
            (None, None) => "host (no device named)".to_owned(),
        },
    }
}

fn weight(k: FaultKind) -> u8 {
    match k {
        FaultKind::Oops | FaultKind::Dpc | FaultKind::AerFatal | FaultKind::PfReset => 5,
        FaultKind::MddTx
        | FaultKind::MddRx
        | FaultKind::Mdd
        | FaultKind::VfDisabled
        | FaultKind::IommuFault => 4,
        FaultKind::TxHang | FaultKind::AerNonfatal | FaultKind::FwFault => 3,
        FaultKind::RxError => 2,
        FaultKind::Spoof
        | FaultKind::MacOverride
        | FaultKind::VlanOverride
        | FaultKind::Mailbox => 2,
        FaultKind::AerCorrectable | FaultKind::VfReset => 1,
        FaultKind::Admin => 0,
    }
}

fn meaning(k: FaultKind) -> &'static str {
    match k {
        FaultKind::MddTx | FaultKind::MddRx | FaultKind::Mdd => {
            "its driver handed the NIC malformed descriptors: Malicious Driver Detection"
        }
        FaultKind::VfDisabled => {
            "the VF was disabled (by its PF driver, or its own driver gave up)"
        }
        FaultKind::VfReset => "the VF was reset",
        FaultKind::Spoof => "spoofed frames were dropped",
        FaultKind::MacOverride => "the VF tried to change its administratively set MAC",
        FaultKind::VlanOverride => "the VF tried to change its administratively set VLAN",
        FaultKind::Mailbox => "the PF refused or could not serve the VF's mailbox requests",
        FaultKind::TxHang => "a transmit queue hung",
        FaultKind::PfReset => "the whole PF was reset: every VF on it was disrupted",
        FaultKind::AerCorrectable => "correctable PCIe errors",
        FaultKind::AerNonfatal => "uncorrectable PCIe errors",
        FaultKind::AerFatal => "fatal PCIe errors",
        FaultKind::Dpc => "Downstream Port Containment took the link down",
        FaultKind::IommuFault => "DMA to an address the IOMMU does not map",
        FaultKind::Oops => "the kernel crashed or warned inside a NIC driver",
        FaultKind::Admin => "administrator changes",
        FaultKind::RxError => "a receive queue failed",
        FaultKind::FwFault => "the adapter's firmware reported a fault or failed a command",
    }
}
