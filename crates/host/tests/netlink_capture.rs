//! The VF table decoded from an RTM_NEWLINK captured from a real igb PF (testdata/netlink) agrees
//! with what `ip -j -d link show` printed for the same PF at the same moment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vfguard_host::linux::netlink::decode_newlink;
use vfguard_model::VfLinkState;

fn testdata(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../testdata/netlink/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

#[test]
fn igb_capture_matches_iproute2() {
    let bytes = hex_bytes(&testdata("igb-82576-2vfs.hex"));
    let vfs = decode_newlink(&bytes).unwrap();
    let ip: serde_json::Value = serde_json::from_str(&testdata("igb-82576-2vfs.ip.json")).unwrap();
    let list = ip[0]["vfinfo_list"].as_array().unwrap();
    assert_eq!(vfs.len(), list.len());
    for (ours, theirs) in vfs.iter().zip(list) {
        assert_eq!(u64::from(ours.index), theirs["vf"].as_u64().unwrap());
        assert_eq!(
            ours.mac.unwrap().to_string(),
            theirs["address"].as_str().unwrap()
        );
        assert_eq!(ours.spoofchk, theirs["spoofchk"].as_bool());
        assert_eq!(ours.trust, theirs["trust"].as_bool());
        assert_eq!(ours.link_state, Some(VfLinkState::Auto));
        assert_eq!(theirs["link_state"], "auto");
        assert_eq!(
            u64::from(ours.max_tx_rate.unwrap()),
            theirs["rate"]["max_tx"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(ours.min_tx_rate.unwrap()),
            theirs["rate"]["min_tx"].as_u64().unwrap()
        );
        let vlan = theirs["vlan_list"][0]["vlan"].as_u64().unwrap_or(0);
        let qos = theirs["vlan_list"][0]["qos"].as_u64().unwrap_or(0);
        assert_eq!(
            (u64::from(ours.vlan.unwrap()), u64::from(ours.qos.unwrap())),
            (vlan, qos)
        );
    }
    assert_eq!(vfs[1].vlan, Some(42));
    assert_eq!(vfs[0].trust, Some(true));
    // igb has no ndo_get_vf_stats: the nest is still sent, all zero.
    assert_eq!(vfs[0].stats.unwrap().rx_packets, 0);
}

#[test]
fn every_truncation_of_the_capture_is_an_error_or_a_partial_table_never_a_panic() {
    let bytes = hex_bytes(&testdata("igb-82576-2vfs.hex"));
    for n in 0..bytes.len() {
        let _ = decode_newlink(&bytes[..n]);
    }
}
