//! The devlink health source: drives a [`GenlLink`] (the real socket or the simulated host)
//! and turns what the reporters say into [`HealthEvent`]s.
//!
//! Each poll reads the notifications of the `config` group (a `HEALTH_REPORTER_RECOVER` is
//! sent for every reported error) and, on a full poll, dumps every reporter (notifications can
//! be dropped on a busy socket) and diagnoses the `vnic` reporter of every VF port. A reporter
//! whose error count rose has its held dump read (`DUMP_GET`) and then cleared (`DUMP_CLEAR`):
//! the kernel keeps only the first dump until it is cleared.

use std::collections::{BTreeMap, HashMap};
use std::io;

use vfguard_host::GenlLink;
use vfguard_model::{Bdf, VfIndex};

use super::ctrl::{self, Family};
use super::health::{dumps_events, error_events, HealthEvent, HealthState};
use super::proto::{
    self, parse_fmsg, parse_ports, parse_reporters, refusal, DevHandle, PortInfo, ProtoError,
    ReporterId, Request, FLAVOUR_PCI_VF,
};
use super::wire::WireError;

/// `ENOENT`: no such family (a kernel without devlink).
const ENOENT: i32 = 2;
/// `EPERM`, `EACCES`: not allowed (dump clear needs `CAP_NET_ADMIN`).
const EPERM: i32 = 1;
const EACCES: i32 = 13;
/// `EOPNOTSUPP`, `EPROTONOSUPPORT`: no generic netlink, or not this operation.
const EOPNOTSUPP: i32 = 95;
const EPROTONOSUPPORT: i32 = 93;

/// What went wrong with the socket or an answer as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevlinkError {
    /// The socket.
    #[error("devlink socket")]
    Io(#[from] io::Error),
    /// An answer that cannot be read.
    #[error("devlink answer to {what}")]
    Answer {
        /// What was asked.
        what: &'static str,
        /// Why it cannot be read.
        #[source]
        source: ProtoError,
    },
}

/// Counts, for metrics and `vfguard status`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DevlinkStats {
    /// Polls.
    pub polls: u64,
    /// Reporter notifications read.
    pub notifications: u64,
    /// Dumps read.
    pub dumps: u64,
    /// Dump clears the kernel refused (no `CAP_NET_ADMIN`): later errors of that reporter are
    /// counted but not detailed until its dump is cleared.
    pub clears_refused: u64,
    /// Diagnoses read.
    pub diagnoses: u64,
    /// Dump reads and diagnoses the kernel refused (`EPERM`: they need `CAP_NET_ADMIN`, as
    /// does the clear): the errors are still counted, without their details.
    pub refused: u64,
    /// Answers and notifications that could not be read (skipped).
    pub malformed: u64,
    /// Health events produced.
    pub events: u64,
}

/// The source's state.
pub struct DevlinkSource<L> {
    link: L,
    family: Option<Family>,
    unavailable: Option<String>,
    seq: u32,
    state: HealthState,
    ports: HashMap<(DevHandle, u32), PortInfo>,
    /// Counts.
    pub stats: DevlinkStats,
}

fn is_unavailable(errno: i32) -> bool {
    matches!(
        errno,
        ENOENT | EPERM | EACCES | EOPNOTSUPP | EPROTONOSUPPORT
    )
}

impl<L: GenlLink> DevlinkSource<L> {
    /// Over `link`; [`DevlinkSource::start`] finds the family.
    pub fn new(link: L) -> DevlinkSource<L> {
        DevlinkSource {
            link,
            family: None,
            unavailable: None,
            seq: 0,
            state: HealthState::default(),
            ports: HashMap::new(),
            stats: DevlinkStats::default(),
        }
    }

    /// Why the source is off on this host (no devlink family, not permitted), once
    /// [`DevlinkSource::start`] found out.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Finds the devlink family and joins its `config` group. `Ok(false)` when this host has
    /// no devlink (the family is unknown) or forbids it: the source stays off, the reason in
    /// [`DevlinkSource::unavailable`]; never an error to retry.
    pub fn start(&mut self) -> Result<bool, DevlinkError> {
        let seq = self.next_seq();
        let answer = match self
            .link
            .request(&ctrl::get_family(seq, proto::FAMILY_NAME))
        {
            Ok(a) => a,
            Err(e) if e.raw_os_error().is_some_and(is_unavailable) => {
                self.unavailable = Some(format!("generic netlink: {e}"));
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let family = match ctrl::parse_family(&answer) {
            Ok(f) => f,
            Err(WireError::Errno(e)) if is_unavailable(-e) => {
                let why = if -e == ENOENT {
                    "no devlink family in this kernel".to_owned()
                } else {
                    format!("devlink family refused (errno {})", -e)
                };
                self.unavailable = Some(why);
                return Ok(false);
            }
            Err(e) => {
                return Err(DevlinkError::Answer {
                    what: "the devlink family",
                    source: e.into(),
                })
            }
        };
        if let Some(g) = family.group(proto::CONFIG_GROUP) {
            match self.link.join(g) {
                Ok(()) => {}
                // Without the group the periodic dumps still see every error count.
                Err(e) if e.raw_os_error().is_some_and(is_unavailable) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.family = Some(family);
        Ok(true)
    }

    fn ask(&mut self, r: &Request) -> Result<Vec<u8>, DevlinkError> {
        let id = self.family.as_ref().map_or(0, |f| f.id);
        let seq = self.next_seq();
        Ok(self.link.request(&r.encode(id, seq))?)
    }

    /// One poll: notifications always, every reporter and every VF port's `vnic` when `full`.
    pub fn poll(&mut self, full: bool) -> Result<Vec<HealthEvent>, DevlinkError> {
        let Some(family) = self.family.as_ref().map(|f| f.id) else {
            return Ok(Vec::new());
        };
        self.stats.polls += 1;
        // Per reporter, the errors since it was last seen: notifications and the dump may both
        // tell of the same reporter in one poll, and its dump is read once.
        let mut pending: BTreeMap<ReporterId, u64> = BTreeMap::new();
        let notes = self.link.notifications()?;
        if !notes.is_empty() {
            match parse_reporters(&notes, family) {
                Ok(list) => {
                    for s in list {
                        self.stats.notifications += 1;
                        let n = self.state.new_errors(&s);
                        if n > 0 {
                            *pending.entry(s.id).or_default() += n;
                        }
                    }
                }
                Err(_) => self.stats.malformed += 1,
            }
        }
        let mut events = Vec::new();
        if full {
            let answer = self.ask(&Request::Reporters)?;
            let list = parse_reporters(&answer, family).map_err(|source| DevlinkError::Answer {
                what: "the reporter dump",
                source,
            })?;
            if list.iter().any(|s| s.id.port.is_some()) {
                let answer = self.ask(&Request::Ports)?;
                match parse_ports(&answer, family) {
                    Ok(ports) => {
                        self.ports = ports
                            .into_iter()
                            .map(|p| ((p.dev.clone(), p.index), p))
                            .collect();
                    }
                    Err(_) => self.stats.malformed += 1,
                }
            }
            let ids: Vec<ReporterId> = list.iter().map(|s| s.id.clone()).collect();
            for s in list {
                let n = self.state.new_errors(&s);
                if n > 0 {
                    *pending.entry(s.id.clone()).or_default() += n;
                }
                if s.id.name == "vnic" {
                    if let Some((pf, Some(vf))) = s.id.port.map(|p| self.port_vf(&s.id.dev, p)) {
                        events.extend(self.diagnose_vnic(&s.id, pf, vf)?);
                    }
                }
            }
            self.state.retain(&ids);
        }
        for (id, n) in pending {
            let port = id.port.map_or((None, None), |p| self.port_vf(&id.dev, p));
            let dump = if dumps_events(&id.name) {
                self.read_dump(&id)?
            } else {
                None
            };
            events.extend(error_events(&id, port, n, dump.as_ref()));
        }
        self.stats.events += events.len() as u64;
        Ok(events)
    }

    /// The PF and VF a port stands for: a VF's representor names its PF number and VF index.
    fn port_vf(&self, dev: &DevHandle, port: u32) -> (Option<Bdf>, Option<VfIndex>) {
        let base = dev.pci();
        let Some(p) = self.ports.get(&(dev.clone(), port)) else {
            return (base, None);
        };
        if p.flavour != Some(FLAVOUR_PCI_VF) {
            return (base, None);
        }
        let pf = match (base, p.pf) {
            (Some(b), Some(n)) => u8::try_from(n)
                .ok()
                .and_then(|f| Bdf::new(b.segment(), b.bus(), b.device(), f))
                .or(Some(b)),
            (b, _) => b,
        };
        (pf, p.vf.map(VfIndex))
    }

    /// Reads and clears a reporter's held dump; `None` when it holds none or refused.
    fn read_dump(&mut self, id: &ReporterId) -> Result<Option<super::fmsg::Fmsg>, DevlinkError> {
        let family = self.family.as_ref().map_or(0, |f| f.id);
        let answer = self.ask(&Request::DumpGet(id.clone()))?;
        let dump = match parse_fmsg(&answer, family) {
            Ok(f) if f.pairs().is_empty() => return Ok(None),
            Ok(f) => f,
            Err(e) => {
                self.count_failure(&e);
                return Ok(None);
            }
        };
        self.stats.dumps += 1;
        let answer = self.ask(&Request::DumpClear(id.clone()))?;
        if let Err(e) = proto::parse_fmsg(&answer, family) {
            if matches!(refusal(&e), Some(EPERM | EACCES)) {
                self.stats.clears_refused += 1;
            }
        }
        Ok(Some(dump))
    }

    fn diagnose_vnic(
        &mut self,
        id: &ReporterId,
        pf: Option<Bdf>,
        vf: VfIndex,
    ) -> Result<Vec<HealthEvent>, DevlinkError> {
        let family = self.family.as_ref().map_or(0, |f| f.id);
        let answer = self.ask(&Request::Diagnose(id.clone()))?;
        match parse_fmsg(&answer, family) {
            Ok(d) => {
                self.stats.diagnoses += 1;
                Ok(self.state.vnic_events(id, pf, Some(vf), &d))
            }
            Err(e) => {
                self.count_failure(&e);
                Ok(Vec::new())
            }
        }
    }

    /// A refusal (no `CAP_NET_ADMIN`) or an answer that could not be read, counted apart.
    fn count_failure(&mut self, e: &ProtoError) {
        match refusal(e) {
            Some(EPERM | EACCES) => self.stats.refused += 1,
            Some(_) => {}
            None => self.stats.malformed += 1,
        }
    }
}
