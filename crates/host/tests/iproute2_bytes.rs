//! The VF-control messages are the ones iproute2 sends for the same `ip link set <pf> vf N ...`,
//! byte for byte but for the sequence number (captured with `strace -e write=3`,
//! testdata/netlink/iproute2/).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use vfguard_host::linux::Rtnl;
use vfguard_model::{MacAddr, VfChange, VfIndex, VfLinkState};

fn captured(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!(
        "{}/../../testdata/netlink/iproute2/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

#[test]
fn every_knob_encodes_like_iproute2() {
    let cases = [
        (
            "link_state_disable",
            0,
            VfChange::LinkState(VfLinkState::Disable),
        ),
        ("spoofchk_on", 2, VfChange::SpoofChk(true)),
        ("trust_off", 3, VfChange::Trust(false)),
        (
            "rate",
            1,
            VfChange::Rate {
                min_mbps: 0,
                max_mbps: 100,
            },
        ),
        ("vlan", 0, VfChange::Vlan { vlan: 4094, qos: 0 }),
        (
            "mac",
            5,
            VfChange::Mac("52:54:00:12:34:56".parse::<MacAddr>().unwrap()),
        ),
    ];
    for (name, vf, change) in cases {
        let want = captured(name);
        let seq = u32::from_le_bytes(want[8..12].try_into().unwrap());
        let got = Rtnl::setlink_bytes(4, VfIndex(vf), &change, seq);
        assert_eq!(got, want, "{name}");
    }
}
