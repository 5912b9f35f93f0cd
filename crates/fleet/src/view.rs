//! The fleet as its messages show it, sans-IO: [`View::apply`] each message in stream order,
//! then [`View::report`]: the open incidents of every host, and the correlations no host can
//! make alone.
//!
//! - **One VM on several hosts**: incidents whose owner has the same libvirt UUID (kept across
//!   live migrations) on two hosts or more: the tenant's guest carries its fault along.
//! - **A platform suspect**: one (driver, firmware, fault class) in incidents on `min_hosts`
//!   hosts or more, of as many different tenants or more: a driver or firmware bug, never one
//!   tenant's fault (one tenant's VM migrating with its fault is that tenant, however many hosts
//!   it visits). Its incidents are marked so, and no tenant is named as its cause.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vfguard_model::{IncidentId, IncidentState, Millis, Owner};

use crate::event::{Body, Envelope, IncidentEvent, Platform};

/// A host: its site and name.
pub type HostKey = (String, String);

/// How the report is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    /// The fewest hosts, and different tenants, that make one (driver, firmware, class) a
    /// platform suspect.
    pub min_hosts: usize,
    /// A host is "silent" when its last heartbeat is older than this at `now`.
    pub silent_after_ms: Millis,
    /// The reader's clock.
    pub now: Millis,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            min_hosts: 3,
            silent_after_ms: 60_000,
            now: 0,
        }
    }
}

/// What the view knows of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostSeen {
    /// The site.
    pub site: String,
    /// The host.
    pub host: String,
    /// Its agent's version, from its last heartbeat.
    pub version: Option<String>,
    /// Its last heartbeat.
    pub last_heartbeat_ms: Option<Millis>,
    /// Whether its last heartbeat is older than `silent_after_ms` (or it never sent one).
    pub silent: bool,
    /// Its outbox's backlog and drops, from its last heartbeat.
    pub backlog: u64,
    /// Messages it dropped while the bus was away.
    pub dropped: u64,
    /// Messages read from it.
    pub messages: u64,
}

/// An incident not closed, as the fleet sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetIncident {
    /// The site.
    pub site: String,
    /// The host.
    pub host: String,
    /// The incident as last published.
    #[serde(flatten)]
    pub incident: IncidentEvent,
    /// When it was last updated.
    pub updated_ms: Millis,
    /// Whether its (driver, firmware, class) is a platform suspect: then it is not its
    /// tenant's doing.
    pub platform_suspect: bool,
}

/// One VM whose incidents span several hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmAcrossHosts {
    /// Its libvirt UUID.
    pub uuid: String,
    /// Its names, as the hosts reported them.
    pub names: BTreeSet<String>,
    /// The hosts (`site/host`) where it had an incident, open or closed.
    pub hosts: BTreeSet<String>,
    /// The fault classes seen.
    pub classes: BTreeSet<String>,
}

/// One (driver, firmware, fault class) on many hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformSuspect {
    /// The driver, firmware and kernels.
    pub driver: Option<String>,
    /// The firmware.
    pub firmware: Option<String>,
    /// The fault class.
    pub class: String,
    /// The hosts (`site/host`).
    pub hosts: BTreeSet<String>,
    /// The kernels those hosts run.
    pub kernels: BTreeSet<String>,
    /// How many tenants had such an incident.
    pub tenants: usize,
}

/// The report: `vfguard fleet --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetReport {
    /// Every host heard from.
    pub hosts: Vec<HostSeen>,
    /// Incidents not closed, by host.
    pub open: Vec<FleetIncident>,
    /// VMs with incidents on several hosts.
    pub vms_on_several_hosts: Vec<VmAcrossHosts>,
    /// (driver, firmware, class) seen on many hosts.
    pub platform_suspects: Vec<PlatformSuspect>,
}

/// A (driver, firmware, class) key.
type PlatformKey = (Option<String>, Option<String>, String);

/// Where one (driver, firmware, class) was seen: hosts (`site/host`), kernels, tenants.
#[derive(Debug, Default)]
struct Seen {
    hosts: BTreeSet<String>,
    kernels: BTreeSet<String>,
    tenants: BTreeSet<String>,
}

/// The fleet's state, built from its messages.
#[derive(Debug, Default)]
pub struct View {
    hosts: BTreeMap<HostKey, HostSeen>,
    /// Every incident's latest event and update time.
    incidents: BTreeMap<(HostKey, IncidentId), (IncidentEvent, Millis)>,
    /// Per VM UUID: names, hosts, classes.
    vms: BTreeMap<String, VmAcrossHosts>,
    /// Per (driver, firmware, class): hosts with their kernels, and tenants.
    platforms: BTreeMap<PlatformKey, Seen>,
}

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// Takes one message, in stream order.
    pub fn apply(&mut self, m: &Envelope) {
        let key = (m.site.clone(), m.host.clone());
        let host = self.hosts.entry(key.clone()).or_insert_with(|| HostSeen {
            site: m.site.clone(),
            host: m.host.clone(),
            ..HostSeen::default()
        });
        host.messages += 1;
        match &m.body {
            Body::Heartbeat(hb) => {
                host.version = Some(hb.version.clone());
                host.last_heartbeat_ms = Some(m.at_ms.max(host.last_heartbeat_ms.unwrap_or(0)));
                host.backlog = hb.backlog;
                host.dropped = hb.dropped;
            }
            Body::Incident(ev) => {
                let label = format!("{}/{}", m.site, m.host);
                if let (Some(vm), Some(class)) = (&ev.vm, &ev.class) {
                    let entry = self
                        .vms
                        .entry(vm.uuid.clone())
                        .or_insert_with(|| VmAcrossHosts {
                            uuid: vm.uuid.clone(),
                            names: BTreeSet::new(),
                            hosts: BTreeSet::new(),
                            classes: BTreeSet::new(),
                        });
                    entry.names.extend(vm.name.clone());
                    entry.hosts.insert(label.clone());
                    entry.classes.insert(class.clone());
                }
                if let Some(class) = &ev.class {
                    let Platform {
                        driver,
                        firmware,
                        kernel,
                    } = &ev.platform;
                    let p = self
                        .platforms
                        .entry((driver.clone(), firmware.clone(), class.clone()))
                        .or_default();
                    p.hosts.insert(label);
                    p.kernels.extend(kernel.clone());
                    p.tenants.insert(tenant(ev.owner.as_ref(), &key));
                }
                self.incidents
                    .insert((key, ev.incident), (ev.clone(), m.at_ms));
            }
            Body::Action(_) | Body::Outcome(_) => {}
        }
    }

    /// The report.
    pub fn report(&self, o: ReportOptions) -> FleetReport {
        let suspects: Vec<PlatformSuspect> = self
            .platforms
            .iter()
            .filter(|(_, s)| s.hosts.len() >= o.min_hosts && s.tenants.len() >= o.min_hosts)
            .map(|((driver, firmware, class), s)| PlatformSuspect {
                driver: driver.clone(),
                firmware: firmware.clone(),
                class: class.clone(),
                hosts: s.hosts.clone(),
                kernels: s.kernels.clone(),
                tenants: s.tenants.len(),
            })
            .collect();
        let is_suspect = |ev: &IncidentEvent| {
            suspects.iter().any(|s| {
                Some(&s.class) == ev.class.as_ref()
                    && s.driver == ev.platform.driver
                    && s.firmware == ev.platform.firmware
            })
        };
        let open = self
            .incidents
            .iter()
            .filter(|(_, (ev, _))| ev.state != IncidentState::Closed)
            .map(|((host, _), (ev, at))| FleetIncident {
                site: host.0.clone(),
                host: host.1.clone(),
                incident: ev.clone(),
                updated_ms: *at,
                platform_suspect: is_suspect(ev),
            })
            .collect();
        let hosts = self
            .hosts
            .values()
            .map(|h| HostSeen {
                silent: h
                    .last_heartbeat_ms
                    .is_none_or(|t| o.now.saturating_sub(t) > o.silent_after_ms),
                ..h.clone()
            })
            .collect();
        FleetReport {
            hosts,
            open,
            vms_on_several_hosts: self
                .vms
                .values()
                .filter(|v| v.hosts.len() >= 2)
                .cloned()
                .collect(),
            platform_suspects: suspects,
        }
    }
}

/// Who a tenant is across hosts: a VM by UUID, anything else by its label on its host.
fn tenant(owner: Option<&Owner>, host: &HostKey) -> String {
    match owner {
        Some(o) => match &o.id {
            Some(id) => id.clone(),
            None => format!("{}/{}:{}", host.0, host.1, o.label()),
        },
        None => format!("{}/{}:unknown", host.0, host.1),
    }
}
