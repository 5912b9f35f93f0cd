//! Issue 14 item 6: i40e's (v6.19) "Cannot add more MAC addresses: VF reached its maximum
//! allowed limit" names no VF. The engine holds it and pins it on the VF the next line from the
//! same PF names (method `sequence`); with no such line within the window it stays on the PF,
//! where it blames no one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vfguard_engine::Engine;
use vfguard_model::Method;

#[test]
fn the_mac_limit_line_is_pinned_on_the_vf_the_next_line_names() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy("mode = \"observe\""));
    let limit = "i40e 0000:3b:00.0: Cannot add more MAC addresses: VF reached its maximum allowed limit (16)";
    // Held: nothing decided about it yet.
    let d = e.observe(&fault(limit), &t, 1000);
    assert!(attributed(&d).is_empty(), "{d:?}");
    // The next line from that PF names VF 2.
    let d = e.observe(
        &fault("i40e 0000:3b:00.0: Invalid message from VF 2, opcode 10, len 4096"),
        &t,
        1200,
    );
    let a = attributed(&d);
    assert!(
        a.iter()
            .any(|(m, ev)| *m == Method::Sequence && ev.contains("named VF 2")),
        "{a:?}"
    );
}

#[test]
fn without_a_naming_line_it_stays_on_the_pf_and_blames_no_one() {
    let sim = sim_host();
    let t = topology(&sim);
    let mut e = Engine::new(policy(""));
    let limit = "i40e 0000:3b:00.0: Cannot add more MAC addresses: VF reached its maximum allowed limit (16)";
    let mut all = e.observe(&fault(limit), &t, 1000);
    for now in (2000..=60_000).step_by(1000) {
        all.extend(e.observe(&vfguard_model::Observation::Tick, &t, now));
    }
    let a = attributed(&all);
    assert!(a.iter().all(|(m, _)| *m == Method::Unattributed), "{a:?}");
    assert!(
        acts(&all).iter().all(|(_, k)| k == "notify"),
        "{:?}",
        acts(&all)
    );
}
