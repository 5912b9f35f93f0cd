//! The devlink family's health messages: requests the source sends, and the answers and
//! notifications it reads (include/uapi/linux/devlink.h; net/devlink/health.c
//! `devlink_nl_health_reporter_fill`, port.c `devlink_nl_port_fill`).

use vfguard_model::Bdf;

use super::fmsg::{Fmsg, FmsgBuilder, FmsgError};
use super::wire::{
    self, MessageBuilder, WireError, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST,
};

/// `DEVLINK_GENL_NAME`.
pub const FAMILY_NAME: &str = "devlink";
/// `DEVLINK_GENL_MCGRP_CONFIG_NAME`: the group health notifications go to.
pub const CONFIG_GROUP: &str = "config";
const DEVLINK_GENL_VERSION: u8 = 1;

/// `enum devlink_command` values the source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// `DEVLINK_CMD_PORT_GET` (dump).
    PortGet = 5,
    /// `DEVLINK_CMD_PORT_NEW`: the answer to a port get.
    PortNew = 7,
    /// `DEVLINK_CMD_HEALTH_REPORTER_GET` (dump; also the answer's command).
    ReporterGet = 52,
    /// `DEVLINK_CMD_HEALTH_REPORTER_RECOVER`: the notification `devlink_health_report` sends
    /// (state error, error count + 1) and the one after a recovery.
    ReporterRecover = 54,
    /// `DEVLINK_CMD_HEALTH_REPORTER_DIAGNOSE`.
    Diagnose = 55,
    /// `DEVLINK_CMD_HEALTH_REPORTER_DUMP_GET`.
    DumpGet = 56,
    /// `DEVLINK_CMD_HEALTH_REPORTER_DUMP_CLEAR`.
    DumpClear = 57,
}

const ATTR_BUS_NAME: u16 = 1;
const ATTR_DEV_NAME: u16 = 2;
const ATTR_PORT_INDEX: u16 = 3;
const ATTR_PORT_NETDEV_NAME: u16 = 7;
const ATTR_PORT_FLAVOUR: u16 = 77;
const ATTR_FMSG: u16 = 106;
const ATTR_HEALTH_REPORTER: u16 = 114;
const ATTR_HEALTH_REPORTER_NAME: u16 = 115;
const ATTR_HEALTH_REPORTER_STATE: u16 = 116;
const ATTR_HEALTH_REPORTER_ERR_COUNT: u16 = 117;
const ATTR_HEALTH_REPORTER_RECOVER_COUNT: u16 = 118;
const ATTR_HEALTH_REPORTER_DUMP_TS: u16 = 119;
const ATTR_PORT_PCI_PF_NUMBER: u16 = 127;
const ATTR_PORT_PCI_VF_NUMBER: u16 = 128;
const ATTR_HEALTH_REPORTER_DUMP_TS_NS: u16 = 137;
/// `DEVLINK_PORT_FLAVOUR_PCI_VF`: an eswitch port facing a VF (its representor).
pub const FLAVOUR_PCI_VF: u16 = 4;

/// A devlink instance: `bus/device` (`pci/0000:3b:00.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevHandle {
    /// `DEVLINK_ATTR_BUS_NAME`.
    pub bus: String,
    /// `DEVLINK_ATTR_DEV_NAME`.
    pub dev: String,
}

impl DevHandle {
    /// The PCI device of a `pci/...` instance.
    pub fn pci(&self) -> Option<Bdf> {
        (self.bus == "pci").then(|| self.dev.parse().ok()).flatten()
    }

    /// For a PCI function.
    pub fn of(bdf: Bdf) -> DevHandle {
        DevHandle {
            bus: "pci".into(),
            dev: bdf.to_string(),
        }
    }
}

impl std::fmt::Display for DevHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bus, self.dev)
    }
}

/// A reporter: its instance, port (for per-port reporters) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReporterId {
    /// The devlink instance.
    pub dev: DevHandle,
    /// `DEVLINK_ATTR_PORT_INDEX`, for a port's reporter.
    pub port: Option<u32>,
    /// `DEVLINK_ATTR_HEALTH_REPORTER_NAME`.
    pub name: String,
}

impl std::fmt::Display for ReporterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}/{p} reporter {}", self.dev, self.name),
            None => write!(f, "{} reporter {}", self.dev, self.name),
        }
    }
}

/// A reporter's state as `DEVLINK_CMD_HEALTH_REPORTER_GET` (or a notification) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterStatus {
    /// Which reporter.
    pub id: ReporterId,
    /// `DEVLINK_HEALTH_REPORTER_STATE_ERROR` (else healthy).
    pub error: bool,
    /// Errors reported since the reporter was created.
    pub errors: u64,
    /// Recoveries since.
    pub recovers: u64,
    /// A dump is held (its wall-clock stamp in ns, or ms since boot on kernels before 5.7).
    pub dump_ts: Option<u64>,
    /// The command it came in (`ReporterGet` or `ReporterRecover`).
    pub notification: bool,
}

/// A devlink port as `DEVLINK_CMD_PORT_GET` gives it: what a per-port reporter stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The instance.
    pub dev: DevHandle,
    /// `DEVLINK_ATTR_PORT_INDEX`.
    pub index: u32,
    /// `DEVLINK_ATTR_PORT_FLAVOUR`.
    pub flavour: Option<u16>,
    /// `DEVLINK_ATTR_PORT_PCI_PF_NUMBER`.
    pub pf: Option<u16>,
    /// `DEVLINK_ATTR_PORT_PCI_VF_NUMBER`: the VF's index under its PF, for a VF's port.
    pub vf: Option<u16>,
    /// `DEVLINK_ATTR_PORT_NETDEV_NAME` (the representor).
    pub netdev: Option<String>,
}

/// An answer that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// Its framing or attributes.
    #[error("devlink message")]
    Wire(#[from] WireError),
    /// Its fmsg.
    #[error("devlink fmsg")]
    Fmsg(#[from] FmsgError),
}

/// The kernel's errno, when the answer is a refusal.
pub fn refusal(e: &ProtoError) -> Option<i32> {
    match e {
        ProtoError::Wire(WireError::Errno(n))
        | ProtoError::Fmsg(FmsgError::Wire(WireError::Errno(n))) => Some(-n),
        _ => None,
    }
}

fn check_errors(msgs: &[wire::Message<'_>]) -> Result<(), WireError> {
    for m in msgs {
        if let Some(e) = m.errno()? {
            if e != 0 {
                return Err(WireError::Errno(e));
            }
        }
    }
    Ok(())
}

fn handle(attrs: &[wire::Attr<'_>]) -> Result<DevHandle, WireError> {
    let mut bus = None;
    let mut dev = None;
    for a in attrs {
        match a.kind {
            ATTR_BUS_NAME => bus = Some(a.str("DEVLINK_ATTR_BUS_NAME")?.to_owned()),
            ATTR_DEV_NAME => dev = Some(a.str("DEVLINK_ATTR_DEV_NAME")?.to_owned()),
            _ => {}
        }
    }
    Ok(DevHandle {
        bus: bus.ok_or(WireError::Missing("DEVLINK_ATTR_BUS_NAME"))?,
        dev: dev.ok_or(WireError::Missing("DEVLINK_ATTR_DEV_NAME"))?,
    })
}

/// The reporters in an answer to a reporter dump, or in notifications of family `family`
/// (messages of other families and commands are skipped).
pub fn parse_reporters(buf: &[u8], family: u16) -> Result<Vec<ReporterStatus>, ProtoError> {
    let msgs = wire::messages(buf)?;
    check_errors(&msgs)?;
    let mut out = Vec::new();
    for m in msgs.iter().filter(|m| m.kind == family) {
        let g = m.genl()?;
        let notification = g.cmd == Cmd::ReporterRecover as u8;
        if g.cmd != Cmd::ReporterGet as u8 && !notification {
            continue;
        }
        let attrs = wire::attrs(g.attrs)?;
        let dev = handle(&attrs)?;
        let mut port = None;
        let mut nest = None;
        for a in &attrs {
            match a.kind {
                ATTR_PORT_INDEX => port = Some(a.u32("DEVLINK_ATTR_PORT_INDEX")?),
                ATTR_HEALTH_REPORTER => nest = Some(a.nested()?),
                _ => {}
            }
        }
        let nest = nest.ok_or(WireError::Missing("DEVLINK_ATTR_HEALTH_REPORTER"))?;
        let (mut name, mut state, mut errors, mut recovers, mut dump_ts) = (None, 0, 0, 0, None);
        for a in &nest {
            match a.kind {
                ATTR_HEALTH_REPORTER_NAME => {
                    name = Some(a.str("DEVLINK_ATTR_HEALTH_REPORTER_NAME")?.to_owned());
                }
                ATTR_HEALTH_REPORTER_STATE => state = a.u8("DEVLINK_ATTR_HEALTH_REPORTER_STATE")?,
                ATTR_HEALTH_REPORTER_ERR_COUNT => {
                    errors = a.u64("DEVLINK_ATTR_HEALTH_REPORTER_ERR_COUNT")?;
                }
                ATTR_HEALTH_REPORTER_RECOVER_COUNT => {
                    recovers = a.u64("DEVLINK_ATTR_HEALTH_REPORTER_RECOVER_COUNT")?;
                }
                ATTR_HEALTH_REPORTER_DUMP_TS_NS => {
                    dump_ts = Some(a.u64("DEVLINK_ATTR_HEALTH_REPORTER_DUMP_TS_NS")?);
                }
                ATTR_HEALTH_REPORTER_DUMP_TS if dump_ts.is_none() => {
                    dump_ts = Some(a.u64("DEVLINK_ATTR_HEALTH_REPORTER_DUMP_TS")?);
                }
                _ => {}
            }
        }
        out.push(ReporterStatus {
            id: ReporterId {
                dev,
                port,
                name: name.ok_or(WireError::Missing("DEVLINK_ATTR_HEALTH_REPORTER_NAME"))?,
            },
            error: state == 1,
            errors,
            recovers,
            dump_ts,
            notification,
        });
    }
    Ok(out)
}

/// The ports in an answer to a port dump.
pub fn parse_ports(buf: &[u8], family: u16) -> Result<Vec<PortInfo>, ProtoError> {
    let msgs = wire::messages(buf)?;
    check_errors(&msgs)?;
    let mut out = Vec::new();
    for m in msgs.iter().filter(|m| m.kind == family) {
        let g = m.genl()?;
        if g.cmd != Cmd::PortNew as u8 {
            continue;
        }
        let attrs = wire::attrs(g.attrs)?;
        let dev = handle(&attrs)?;
        let mut p = PortInfo {
            dev,
            index: 0,
            flavour: None,
            pf: None,
            vf: None,
            netdev: None,
        };
        let mut index = None;
        for a in &attrs {
            match a.kind {
                ATTR_PORT_INDEX => index = Some(a.u32("DEVLINK_ATTR_PORT_INDEX")?),
                ATTR_PORT_FLAVOUR => p.flavour = Some(a.u16("DEVLINK_ATTR_PORT_FLAVOUR")?),
                ATTR_PORT_PCI_PF_NUMBER => p.pf = Some(a.u16("DEVLINK_ATTR_PORT_PCI_PF_NUMBER")?),
                ATTR_PORT_PCI_VF_NUMBER => p.vf = Some(a.u16("DEVLINK_ATTR_PORT_PCI_VF_NUMBER")?),
                ATTR_PORT_NETDEV_NAME => {
                    p.netdev = Some(a.str("DEVLINK_ATTR_PORT_NETDEV_NAME")?.to_owned());
                }
                _ => {}
            }
        }
        p.index = index.ok_or(WireError::Missing("DEVLINK_ATTR_PORT_INDEX"))?;
        out.push(p);
    }
    Ok(out)
}

/// The fmsg of an answer to `DUMP_GET` or `DIAGNOSE`: the items of every message's
/// `DEVLINK_ATTR_FMSG`, in order. An answer without one (no dump held) is an empty object.
pub fn parse_fmsg(buf: &[u8], family: u16) -> Result<Fmsg, ProtoError> {
    let msgs = wire::messages(buf)?;
    check_errors(&msgs)?;
    let mut items = Vec::new();
    for m in msgs.iter().filter(|m| m.kind == family) {
        let g = m.genl()?;
        for a in wire::attrs(g.attrs)? {
            if a.kind == ATTR_FMSG {
                items.extend(a.nested()?);
            }
        }
    }
    Ok(Fmsg::parse(&items)?)
}

/// A request to the devlink family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every reporter of every instance and port.
    Reporters,
    /// Every port of every instance.
    Ports,
    /// One reporter's held dump.
    DumpGet(ReporterId),
    /// Drop one reporter's held dump, so that the next error is dumped (CAP_NET_ADMIN).
    DumpClear(ReporterId),
    /// One reporter's diagnosis.
    Diagnose(ReporterId),
}

impl Request {
    /// The request's bytes for family `family`.
    pub fn encode(&self, family: u16, seq: u32) -> Vec<u8> {
        let dump = NLM_F_REQUEST | NLM_F_DUMP;
        let (cmd, flags, id) = match self {
            Request::Reporters => (Cmd::ReporterGet, dump, None),
            Request::Ports => (Cmd::PortGet, dump, None),
            Request::DumpGet(id) => (Cmd::DumpGet, dump, Some(id)),
            Request::DumpClear(id) => (Cmd::DumpClear, NLM_F_REQUEST | NLM_F_ACK, Some(id)),
            Request::Diagnose(id) => (Cmd::Diagnose, NLM_F_REQUEST, Some(id)),
        };
        let mut b =
            MessageBuilder::new(family, flags, seq, 0).genl(cmd as u8, DEVLINK_GENL_VERSION);
        if let Some(id) = id {
            b = b
                .str(ATTR_BUS_NAME, &id.dev.bus)
                .str(ATTR_DEV_NAME, &id.dev.dev);
            if let Some(p) = id.port {
                b = b.u32(ATTR_PORT_INDEX, p);
            }
            b = b.str(ATTR_HEALTH_REPORTER_NAME, &id.name);
        }
        b.finish()
    }

    /// Reads a request back (the simulated host's side).
    pub fn decode(buf: &[u8], family: u16) -> Result<(Request, u32), ProtoError> {
        let msgs = wire::messages(buf)?;
        let m = msgs
            .iter()
            .find(|m| m.kind == family)
            .ok_or(WireError::Missing("a devlink message"))?;
        let g = m.genl()?;
        let attrs = wire::attrs(g.attrs)?;
        let id = || -> Result<ReporterId, WireError> {
            let mut port = None;
            let mut name = None;
            for a in &attrs {
                match a.kind {
                    ATTR_PORT_INDEX => port = Some(a.u32("DEVLINK_ATTR_PORT_INDEX")?),
                    ATTR_HEALTH_REPORTER_NAME => {
                        name = Some(a.str("DEVLINK_ATTR_HEALTH_REPORTER_NAME")?.to_owned());
                    }
                    _ => {}
                }
            }
            Ok(ReporterId {
                dev: handle(&attrs)?,
                port,
                name: name.ok_or(WireError::Missing("DEVLINK_ATTR_HEALTH_REPORTER_NAME"))?,
            })
        };
        let r = match g.cmd {
            c if c == Cmd::ReporterGet as u8 => Request::Reporters,
            c if c == Cmd::PortGet as u8 => Request::Ports,
            c if c == Cmd::DumpGet as u8 => Request::DumpGet(id()?),
            c if c == Cmd::DumpClear as u8 => Request::DumpClear(id()?),
            c if c == Cmd::Diagnose as u8 => Request::Diagnose(id()?),
            _ => return Err(WireError::Missing("a known devlink command").into()),
        };
        Ok((r, m.seq))
    }
}

/// Writes the kernel's side: reporter and port messages, fmsg answers (fixtures, the
/// simulated host).
pub mod emit {
    use super::*;

    /// One reporter message (`cmd` `ReporterGet` for a dump's part, `ReporterRecover` for a
    /// notification, `seq` 0).
    pub fn reporter(family: u16, cmd: Cmd, seq: u32, s: &ReporterStatus) -> Vec<u8> {
        let flags = if seq == 0 { 0 } else { NLM_F_MULTI };
        let mut b = MessageBuilder::new(family, flags, seq, 0)
            .genl(cmd as u8, DEVLINK_GENL_VERSION)
            .str(ATTR_BUS_NAME, &s.id.dev.bus)
            .str(ATTR_DEV_NAME, &s.id.dev.dev);
        if let Some(p) = s.id.port {
            b = b.u32(ATTR_PORT_INDEX, p);
        }
        let (b, at) = b.nest(ATTR_HEALTH_REPORTER);
        let mut b = b
            .str(ATTR_HEALTH_REPORTER_NAME, &s.id.name)
            .u8(ATTR_HEALTH_REPORTER_STATE, u8::from(s.error))
            .u64(ATTR_HEALTH_REPORTER_ERR_COUNT, s.errors)
            .u64(ATTR_HEALTH_REPORTER_RECOVER_COUNT, s.recovers);
        if let Some(ts) = s.dump_ts {
            b = b
                .u64(ATTR_HEALTH_REPORTER_DUMP_TS, ts / 1_000_000)
                .u64(ATTR_HEALTH_REPORTER_DUMP_TS_NS, ts);
        }
        b.end_nest(at).finish()
    }

    /// One port message (part of a dump).
    pub fn port(family: u16, seq: u32, p: &PortInfo) -> Vec<u8> {
        let mut b = MessageBuilder::new(family, NLM_F_MULTI, seq, 0)
            .genl(Cmd::PortNew as u8, DEVLINK_GENL_VERSION)
            .str(ATTR_BUS_NAME, &p.dev.bus)
            .str(ATTR_DEV_NAME, &p.dev.dev)
            .u32(ATTR_PORT_INDEX, p.index);
        if let Some(n) = &p.netdev {
            b = b.str(ATTR_PORT_NETDEV_NAME, n);
        }
        if let Some(f) = p.flavour {
            b = b.u16(ATTR_PORT_FLAVOUR, f);
        }
        if let Some(n) = p.pf {
            b = b.u16(ATTR_PORT_PCI_PF_NUMBER, n);
        }
        if let Some(n) = p.vf {
            b = b.u16(ATTR_PORT_PCI_VF_NUMBER, n);
        }
        b.finish()
    }

    /// An fmsg answer (`cmd` `DumpGet` or `Diagnose`), split like the kernel splits a long
    /// one: at most `per_message` items per message.
    pub fn fmsg(
        family: u16,
        cmd: Cmd,
        seq: u32,
        id: &ReporterId,
        f: &FmsgBuilder,
        per_message: usize,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in f.attrs.chunks(per_message.max(1)) {
            let mut b = MessageBuilder::new(family, NLM_F_MULTI, seq, 0)
                .genl(cmd as u8, DEVLINK_GENL_VERSION);
            if cmd == Cmd::DumpGet {
                b = b
                    .str(ATTR_BUS_NAME, &id.dev.bus)
                    .str(ATTR_DEV_NAME, &id.dev.dev);
            }
            let (mut b, at) = b.nest(ATTR_FMSG);
            for (k, d) in chunk {
                b = b.attr(*k, d);
            }
            out.extend(b.end_nest(at).finish());
        }
        out.extend(wire::done(seq, 0));
        out
    }
}
