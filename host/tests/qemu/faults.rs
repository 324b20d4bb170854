//! Faults under QEMU: a device that never completes a command (an NVMe Asynchronous Event Request on an
//! idle controller) is timed out with a typed error and reported, and the controller keeps working.

use crate::common;

use msifw_host::{Machine, ScenarioResult};

#[test]
fn nvme_command_that_never_completes_is_timed_out_and_reported() {
    for machine in [Machine::Q35, Machine::Pc] {
        let o = common::boot(&common::config(machine).append("scenario=stuck-command"));
        common::assert_passed(&o);
        let s = o
            .report
            .scenarios_for("00:03.0")
            .find(|s| s.name == "stuck-command")
            .unwrap_or_else(|| panic!("{machine}: no stuck-command scenario on the nvme{}", common::explain(&o)));
        assert_eq!(s.result, ScenarioResult::Pass, "{machine}: {}", s.detail);
        // The firmware waited its bounded time, no longer: the run finished (assert_passed) with the
        // timeout reported, and the interrupt of the next command reached its handler.
        assert!(s.detail.starts_with("no completion in "), "{machine}: {}", s.detail);
    }
}
