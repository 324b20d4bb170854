//! Devices a user adds: behind a PCIe root port (found by following the bridge, and still interrupting),
//! and without a driver (listed and left alone). Bad command-line words are reported, not fatal.

use crate::common;

use msifw_host::{Exit, IrqMode, Machine, ScenarioResult};

#[test]
fn device_behind_root_port_is_enumerated_and_interrupts() {
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .device("pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0")
        .device("edu,bus=rp1")
        .device("pcie-root-port,id=rp2,chassis=2,slot=2,addr=06.0")
        .device("e1000e,romfile=,bus=rp2");
    let o = common::boot_shared(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "run did not pass{why}");
    for (bdf, mode) in [("01:00.0", IrqMode::Msi), ("02:00.0", IrqMode::Msix)] {
        let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} behind a root port not enumerated{why}"));
        assert_eq!(f.irq_mode, mode, "{bdf}: wrong mode{why}");
        assert!(f.interrupts >= 2, "{bdf}: {} interrupts{why}", f.interrupts);
        assert!(o.report.scenarios_for(bdf).any(|s| s.result == ScenarioResult::Pass), "{bdf}: no passing scenario{why}");
    }
    for bridge in ["00:05.0", "00:06.0"] {
        let f = o.report.function(bridge).unwrap_or_else(|| panic!("root port {bridge} missing{why}"));
        assert_eq!(f.header_type, 1, "{bridge} should be a type-1 header{why}");
    }
}

#[test]
fn device_without_driver_is_listed_and_left_alone() {
    let cfg = common::config(Machine::Q35).device("virtio-rng-pci,disable-modern=on,romfile=,addr=07.0");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "an unknown device must not fail the run{why}");
    let f = o.report.function("00:07.0").unwrap_or_else(|| panic!("virtio-rng not listed{why}"));
    assert_eq!((f.vendor.as_str(), f.device.as_str()), ("1af4", "1005"), "{why}");
    assert_eq!(f.irq_mode, IrqMode::None, "no driver, so no interrupt mode{why}");
    assert_eq!(f.interrupts, 0, "{why}");
    assert!(f.driver.is_none(), "{why}");
    // Undriven: only the conformance check, which runs on every function while it is quiet, and passes.
    let lines: Vec<_> = o.report.scenarios_for("00:07.0").collect();
    assert!(lines.iter().all(|s| s.name.ends_with("-conformance") && s.result == msifw_host::ScenarioResult::Pass), "no device check for an undriven device: {lines:?}{why}");
    let st = f.final_state.as_ref().unwrap_or_else(|| panic!("no final_state{why}"));
    assert!(!st.bus_master, "an undriven device must be left without Bus Master (command {}){why}", st.command);
    assert!(st.intx_disabled, "INTx must be disabled (command {}){why}", st.command);
    assert_eq!(st.msix_enabled, Some(false), "MSI-X must be off{why}");
    // Every function the firmware drove is left unable to interrupt as well.
    for f in o.report.functions.iter().filter(|f| f.driver.is_some()) {
        let st = f.final_state.as_ref().unwrap_or_else(|| panic!("{}: no final_state{why}", f.bdf));
        assert!(st.intx_disabled && st.msi_enabled != Some(true) && st.msix_enabled != Some(true), "{}: left able to interrupt: {st:?}{why}", f.bdf);
    }
}

#[test]
fn bad_command_line_words_are_reported() {
    let o = common::boot(&common::config(Machine::Q35).default_devices(false).append("bogus rounds=0 nomsix"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "bad words are reported, not fatal{why}");
    let cmdline: Vec<_> = o.report.problems.iter().filter(|p| p.source == "cmdline").collect();
    assert_eq!(cmdline.len(), 2, "expected two cmdline problems, got {cmdline:?}{why}");
    assert!(cmdline[0].detail.contains("bogus"), "{why}");
}
