//! A small synchronous rtnetlink client: link dumps (for namespace views), one PF's VF table, and
//! moving a link to another namespace (evicting a VF from a pod).
//!
//! Thin translation between `netlink-packet-route` types and `vfguard-model` types; nothing
//! above this module sees a netlink type.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState,
    VfInfoMac, VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfLinkState as NlLinkState,
    VfStats as NlVfStats,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use vfguard_model::{Bdf, MacAddr, VfChange, VfIndex, VfLinkState, VfState, VfStats};

use crate::netns::NetnsLink;
use crate::vfctl::VfControl;
use crate::vfnet::VfNet;

/// An rtnetlink socket in the calling thread's network namespace.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens and binds a NETLINK_ROUTE socket.
    pub fn open() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends one request and collects every reply message until DONE (dump) or the ACK/answer.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let bytes = data.get(offset..).unwrap_or_default();
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-length netlink message",
                    ));
                }
                offset += len;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(_) => return Err(e.to_io()),
                    },
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every link of the namespace with its parent device (`IFLA_PARENT_DEV_NAME`).
    pub fn links(&mut self) -> io::Result<Vec<NetnsLink>> {
        Ok(self.indexed_links()?.into_iter().map(|(_, l)| l).collect())
    }

    /// Every link of the namespace with its ifindex and parent device.
    pub(crate) fn indexed_links(&mut self) -> io::Result<Vec<(u32, NetnsLink)>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .filter_map(|l| {
                let index = l.header.index;
                let mut name = None;
                let (mut bus, mut dev) = (None, None);
                for a in l.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = Some(n),
                        LinkAttribute::ParentDevBusName(b) => bus = Some(b),
                        LinkAttribute::ParentDevName(d) => dev = Some(d),
                        _ => {}
                    }
                }
                let parent = match bus.as_deref() {
                    Some("pci") | None => dev.and_then(|d| d.parse().ok()),
                    Some(_) => None,
                };
                Some((
                    index,
                    NetnsLink {
                        ifname: name?,
                        parent,
                    },
                ))
            })
            .collect())
    }

    /// The ifindex and name of the link whose parent device is PCI function `function`, when
    /// this namespace has one.
    pub fn link_of(&mut self, function: Bdf) -> io::Result<Option<(u32, String)>> {
        Ok(self
            .indexed_links()?
            .into_iter()
            .find(|(_, l)| l.parent == Some(function))
            .map(|(i, l)| (i, l.ifname)))
    }

    /// The raw RTM_NEWLINK reply (one whole netlink message) for a link asked for by name with
    /// `RTEXT_FILTER_VF`: what `testdata/netlink/*.hex` captures hold.
    pub fn getlink_raw(&mut self, ifname: &str) -> io::Result<Vec<u8>> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(ifname.to_owned()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(RouteNetlinkMessage::GetLink(msg));
        nl.header.flags = NLM_F_REQUEST;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let (data, _) = self.sock.recv_from_full()?;
        let len = data
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short netlink reply"))?;
        let bytes = data
            .get(..len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "truncated netlink reply"))?
            .to_vec();
        decode_newlink(&bytes)?;
        Ok(bytes)
    }

    /// The VF table of one link, asked for by name with `RTEXT_FILTER_VF`.
    pub fn vf_states(&mut self, ifname: &str) -> io::Result<Vec<VfState>> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(ifname.to_owned()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST | NLM_F_ACK)?;
        Ok(replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(vf_states_of(&l)),
                _ => None,
            })
            .unwrap_or_default())
    }
}

impl Rtnl {
    /// The message `ip link set <pf> vf N <change>` sends (an `RTM_NEWLINK` on the PF's
    /// ifindex with one `IFLA_VF_INFO`), byte for byte but for the sequence number.
    pub fn setlink_message(pf_ifindex: u32, vf: VfIndex, change: &VfChange) -> LinkMessage {
        let id = u32::from(vf.0);
        let info = match *change {
            VfChange::LinkState(s) => VfInfo::LinkState(VfInfoLinkState::new(
                id,
                match s {
                    VfLinkState::Auto => NlLinkState::Auto,
                    VfLinkState::Enable => NlLinkState::Enable,
                    VfLinkState::Disable => NlLinkState::Disable,
                },
            )),
            VfChange::SpoofChk(on) => VfInfo::SpoofCheck(VfInfoSpoofCheck::new(id, on)),
            VfChange::Trust(on) => VfInfo::Trust(VfInfoTrust::new(id, on)),
            VfChange::Rate { min_mbps, max_mbps } => {
                VfInfo::Rate(VfInfoRate::new(id, min_mbps, max_mbps))
            }
            VfChange::Vlan { vlan, qos } => {
                VfInfo::Vlan(VfInfoVlan::new(id, u32::from(vlan), u32::from(qos)))
            }
            VfChange::Mac(m) => VfInfo::Mac(VfInfoMac::new(id, &m.0)),
        };
        let mut msg = LinkMessage::default();
        msg.header.index = pf_ifindex;
        msg.attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![info])]));
        msg
    }

    /// The bytes of [`Rtnl::setlink_message`] as sent, with sequence number `seq`.
    pub fn setlink_bytes(pf_ifindex: u32, vf: VfIndex, change: &VfChange, seq: u32) -> Vec<u8> {
        let msg = Self::setlink_message(pf_ifindex, vf, change);
        let mut nl = NetlinkMessage::from(RouteNetlinkMessage::NewLink(msg));
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }

    /// Applies one VF change; the kernel's errno comes back as the error.
    pub fn set_vf(&mut self, pf_netdev: &str, vf: VfIndex, change: &VfChange) -> io::Result<()> {
        let msg = Self::setlink_message(ifindex(pf_netdev)?, vf, change);
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_REQUEST | NLM_F_ACK)
            .map(|_| ())
    }
}

impl Rtnl {
    /// The message `ip link set dev <ifindex> netns <fd> down` sends: an `RTM_NEWLINK` on the
    /// link's ifindex with `IFLA_NET_NS_FD` and `IFF_UP` cleared (flags 0, change mask
    /// `IFF_UP`); with `rename`, also `IFLA_IFNAME` (the name it takes in the new namespace,
    /// for when its own is taken there: the kernel answers `EEXIST` otherwise).
    pub fn move_down_message(ifindex: u32, netns_fd: RawFd, rename: Option<&str>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.header.flags = LinkFlags::empty();
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::NetNsFd(netns_fd));
        if let Some(name) = rename {
            msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        }
        msg
    }

    /// Moves link `ifindex` of this socket's namespace into the namespace `netns` refers to,
    /// administratively down (the kernel closes a link it moves; the cleared `IFF_UP` says so
    /// explicitly). The kernel's errno comes back as the error.
    pub fn move_down(
        &mut self,
        ifindex: u32,
        netns: &impl AsRawFd,
        rename: Option<&str>,
    ) -> io::Result<()> {
        let msg = Self::move_down_message(ifindex, netns.as_raw_fd(), rename);
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_REQUEST | NLM_F_ACK)
            .map(|_| ())
    }
}

/// A netdev's ifindex (`/sys/class/net/<dev>/ifindex`).
fn ifindex(netdev: &str) -> io::Result<u32> {
    if netdev.is_empty() || netdev.contains('/') {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    std::fs::read_to_string(format!("/sys/class/net/{netdev}/ifindex"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))
}

/// [`VfControl`] over rtnetlink in the agent's own namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetlinkVfControl;

impl VfControl for NetlinkVfControl {
    fn set_vf(&self, pf_netdev: &str, vf: VfIndex, change: &VfChange) -> io::Result<()> {
        Rtnl::open()?.set_vf(pf_netdev, vf, change)
    }
}

/// Decodes a whole RTM_NEWLINK netlink message (as captured on the wire) into its VF table.
pub fn decode_newlink(bytes: &[u8]) -> io::Result<Vec<VfState>> {
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Ok(vf_states_of(&l)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an RTM_NEWLINK message",
        )),
    }
}

/// The VF table of a link message (`IFLA_VFINFO_LIST`); empty when it has none.
pub fn vf_states_of(link: &LinkMessage) -> Vec<VfState> {
    let mut out: Vec<VfState> = link
        .attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::VfInfoList(list) => Some(list),
            _ => None,
        })
        .flatten()
        .map(vf_state)
        .collect();
    out.sort_by_key(|v| v.index);
    out
}

fn vf_state(info: &LinkVfInfo) -> VfState {
    let mut s = VfState::default();
    let mut index: Option<u32> = None;
    for attr in &info.0 {
        match attr {
            VfInfo::Mac(m) => {
                index = Some(m.vf_id);
                let mut six = [0u8; 6];
                for (d, s) in six.iter_mut().zip(m.mac.iter()) {
                    *d = *s;
                }
                s.mac = Some(MacAddr(six));
            }
            VfInfo::Vlan(v) => {
                index = Some(v.vf_id);
                s.vlan = Some(v.vlan_id);
                s.qos = Some(v.qos);
            }
            VfInfo::Rate(r) => {
                index = Some(r.vf_id);
                s.min_tx_rate = Some(r.min_tx_rate);
                s.max_tx_rate = Some(r.max_tx_rate);
            }
            VfInfo::TxRate(r) => {
                index = Some(r.vf_id);
                s.max_tx_rate.get_or_insert(r.rate);
            }
            VfInfo::SpoofCheck(c) => {
                index = Some(c.vf_id);
                s.spoofchk = Some(c.enabled);
            }
            VfInfo::Trust(t) => {
                index = Some(t.vf_id);
                s.trust = Some(t.enabled);
            }
            VfInfo::LinkState(l) => {
                index = Some(l.vf_id);
                s.link_state = match l.state {
                    NlLinkState::Auto => Some(VfLinkState::Auto),
                    NlLinkState::Enable => Some(VfLinkState::Enable),
                    NlLinkState::Disable => Some(VfLinkState::Disable),
                    _ => None,
                };
            }
            VfInfo::Stats(stats) => {
                let mut st = VfStats::default();
                for v in stats {
                    match v {
                        NlVfStats::RxPackets(n) => st.rx_packets = *n,
                        NlVfStats::TxPackets(n) => st.tx_packets = *n,
                        NlVfStats::RxBytes(n) => st.rx_bytes = *n,
                        NlVfStats::TxBytes(n) => st.tx_bytes = *n,
                        NlVfStats::Broadcast(n) => st.broadcast = *n,
                        NlVfStats::Multicast(n) => st.multicast = *n,
                        NlVfStats::RxDropped(n) => st.rx_dropped = *n,
                        NlVfStats::TxDropped(n) => st.tx_dropped = *n,
                        _ => {}
                    }
                }
                s.stats = Some(st);
            }
            _ => {}
        }
    }
    s.index = index
        .and_then(|i| u16::try_from(i).ok())
        .unwrap_or(u16::MAX);
    s
}

/// [`VfNet`] over rtnetlink in the agent's own namespace (and `ethtool -i` for the firmware
/// version, which no netlink family carries).
#[derive(Debug, Default)]
pub struct NetlinkVfNet {
    ethtool: super::ethtool::Ethtool,
}

impl VfNet for NetlinkVfNet {
    fn vf_states(&self, pf_netdev: &str) -> io::Result<Vec<VfState>> {
        Rtnl::open()?.vf_states(pf_netdev)
    }

    fn firmware(&self, pf_netdev: &str) -> io::Result<Option<String>> {
        self.ethtool.firmware(pf_netdev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an RTM_NEWLINK the way a PF driver's reply looks, with two VFs.
    fn newlink_bytes() -> Vec<u8> {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.attributes.push(LinkAttribute::IfName("enp59s0f0".into()));
        l.attributes.push(LinkAttribute::NumVf(2));
        let vf = |id: u32, mac: [u8; 6], down: bool, rx_dropped: u64| {
            LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(id, &mac)),
                VfInfo::Vlan(VfInfoVlan::new(id, 42, 3)),
                VfInfo::Rate(VfInfoRate::new(id, 0, 1000)),
                VfInfo::SpoofCheck(VfInfoSpoofCheck::new(id, true)),
                VfInfo::LinkState(VfInfoLinkState::new(
                    id,
                    if down {
                        NlLinkState::Disable
                    } else {
                        NlLinkState::Auto
                    },
                )),
                VfInfo::Trust(VfInfoTrust::new(id, false)),
                VfInfo::Stats(vec![
                    NlVfStats::RxPackets(10),
                    NlVfStats::TxPackets(20),
                    NlVfStats::RxDropped(rx_dropped),
                    NlVfStats::TxDropped(1),
                ]),
            ])
        };
        l.attributes.push(LinkAttribute::VfInfoList(vec![
            vf(1, [0x52, 0x54, 0, 0, 0, 1], true, 5),
            vf(0, [0x52, 0x54, 0, 0, 0, 0], false, 0),
        ]));
        let mut nl = NetlinkMessage::from(RouteNetlinkMessage::NewLink(l));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }

    #[test]
    fn decodes_every_vf_field_and_keeps_rx_and_tx_dropped_apart() {
        let vfs = decode_newlink(&newlink_bytes()).unwrap();
        assert_eq!(vfs.len(), 2);
        assert_eq!(vfs[0].index, 0);
        let v1 = &vfs[1];
        assert_eq!(v1.mac.unwrap().to_string(), "52:54:00:00:00:01");
        assert_eq!((v1.vlan, v1.qos), (Some(42), Some(3)));
        assert_eq!((v1.min_tx_rate, v1.max_tx_rate), (Some(0), Some(1000)));
        assert_eq!((v1.spoofchk, v1.trust), (Some(true), Some(false)));
        assert_eq!(v1.link_state, Some(VfLinkState::Disable));
        let st = v1.stats.unwrap();
        assert_eq!(
            (st.rx_packets, st.tx_packets, st.rx_dropped, st.tx_dropped),
            (10, 20, 5, 1)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_newlink(&[1, 2, 3]).is_err());
        let mut b = newlink_bytes();
        b.truncate(b.len() / 2);
        assert!(decode_newlink(&b).is_err());
    }

    #[test]
    fn the_eviction_message_moves_the_link_and_clears_only_up() {
        for rename in [None, Some("vf0000-3b-02.1")] {
            let msg = Rtnl::move_down_message(42, 7, rename);
            let mut nl = NetlinkMessage::from(RouteNetlinkMessage::NewLink(msg));
            nl.header.flags = NLM_F_REQUEST | NLM_F_ACK;
            nl.finalize();
            let mut buf = vec![0u8; nl.buffer_len()];
            nl.serialize(&mut buf);
            let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
            let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = back.payload else {
                panic!("not RTM_NEWLINK: {back:?}");
            };
            assert_eq!(l.header.index, 42);
            assert_eq!(l.header.flags, LinkFlags::empty());
            assert_eq!(l.header.change_mask, LinkFlags::Up);
            let mut want = vec![LinkAttribute::NetNsFd(7)];
            want.extend(rename.map(|n| LinkAttribute::IfName(n.to_owned())));
            assert_eq!(l.attributes, want);
        }
    }

    #[test]
    fn reads_this_machines_links_without_vfs() {
        // The real kernel: every link here answers, and none has VFs (no SR-IOV on this host).
        let mut rtnl = Rtnl::open().unwrap();
        let links = rtnl.links().unwrap();
        assert!(links.iter().any(|l| l.ifname == "lo"));
        for l in &links {
            assert!(
                rtnl.vf_states(&l.ifname).unwrap().is_empty(),
                "{} has VFs?",
                l.ifname
            );
        }
        assert!(rtnl.vf_states("no-such-link0").is_err());
        // A link without VF operations answers EOPNOTSUPP: the errno the policy steps up on.
        let err = rtnl
            .set_vf("lo", VfIndex(0), &VfChange::SpoofChk(true))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP), "{err}");
        assert_eq!(
            rtnl.set_vf("no-such-link0", VfIndex(0), &VfChange::Trust(false))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
