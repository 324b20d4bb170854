//! The device-timer fence (`time::timers_run_by`, README "Device-model behaviour"): with QEMU's HPET it
//! goes through the HPET, without one (`-machine hpet=off`) through the LAPIC timer, and either way the
//! e1000e's checks, which re-trigger causes and so depend on it, still count every interrupt exactly.

use crate::common;

use msifw_host::{Machine, ScenarioResult};

fn fence_and_e1000e_checks(cfg: &msifw_host::RunConfig, fence: &str) {
    let o = common::boot(cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!(p.timer_fence, fence, "{why}");
    for name in ["msix-delivery", "msix-vector-mask", "msix-function-mask"] {
        let s = o.report.scenarios.iter().find(|s| s.name == name && s.bdf.as_deref() == Some("00:02.0"));
        assert!(s.is_some_and(|s| s.result == ScenarioResult::Pass), "e1000e {name}: {s:?}{why}");
    }
}

#[test]
fn hpet_fences_on_q35() {
    fence_and_e1000e_checks(&common::config(Machine::Q35).append("rounds=4"), "hpet");
}

#[test]
fn lapic_timer_fences_without_an_hpet() {
    let cfg = common::config(Machine::Q35).qemu_arg("-machine").qemu_arg("hpet=off").append("rounds=4");
    fence_and_e1000e_checks(&cfg, "lapic-timer");
}
