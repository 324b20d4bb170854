//! PCIe ports as interrupt sources (hot-plug Command Completed): the generic pcie-root-port through MSI-X,
//! ioh3420 through 32-bit MSI with per-vector mask bits and multi-message (an aligned block of 2); under
//! `nomsi` the ports are skipped with the reason (QEMU 7.2 does not set their Status.Interrupt). Also the
//! storm guard, which needs an INTx line nobody claims.

use crate::common;

use msifw_host::{Exit, IrqMode, Machine, RunOutcome, ScenarioResult};

fn ports() -> msifw_host::RunConfig {
    common::config(Machine::Q35)
        .default_devices(false)
        .device("ioh3420,id=rp1,chassis=1,slot=1,addr=05.0")
        .device("edu,bus=rp1")
        .device("pcie-root-port,id=rp2,chassis=2,slot=2,addr=06.0")
}

fn passed(o: &RunOutcome, bdf: &str, scenario: &str) {
    let why = common::explain(o);
    let s = o.report.scenarios_for(bdf).find(|s| s.name == scenario).unwrap_or_else(|| panic!("{bdf}: no {scenario}{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{bdf} {scenario}: {}{why}", s.detail);
}

#[test]
fn root_ports_interrupt_through_msi_and_msix() {
    let o = common::boot(&ports());
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "{why}");
    let ioh = o.report.function("00:05.0").unwrap_or_else(|| panic!("ioh3420 missing{why}"));
    assert_eq!(ioh.irq_mode, IrqMode::Msi, "ioh3420 has MSI only{why}");
    assert_eq!(ioh.vectors.len(), 2, "multi-message: an aligned block of 2{why}");
    assert_eq!(ioh.vectors[0] % 2, 0, "the block is aligned to its size{why}");
    passed(&o, "00:05.0", "msi-delivery");
    passed(&o, "00:05.0", "msi-vector-mask");
    let rp = o.report.function("00:06.0").unwrap_or_else(|| panic!("pcie-root-port missing{why}"));
    assert_eq!(rp.irq_mode, IrqMode::Msix, "{why}");
    passed(&o, "00:06.0", "msix-delivery");
    passed(&o, "00:06.0", "msix-function-mask");
}

#[test]
fn with_nomsi_ports_are_skipped_with_a_reason_and_devices_behind_them_use_intx() {
    let o = common::boot(&ports().append("nomsi"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "{why}");
    for port in ["00:05.0", "00:06.0"] {
        let s = o.report.scenarios_for(port).find(|s| s.name == "intx-delivery").unwrap_or_else(|| panic!("{port}: no intx scenario{why}"));
        assert_eq!(s.result, ScenarioResult::Skip, "{port}: {}{why}", s.detail);
        assert!(s.detail.contains("Status.Interrupt"), "{port}: the skip says why: {}{why}", s.detail);
    }
    let edu = o.report.function("01:00.0").unwrap_or_else(|| panic!("edu behind the port missing{why}"));
    assert_eq!(edu.irq_mode, IrqMode::Intx, "{why}");
    passed(&o, "01:00.0", "intx-delivery");
}

#[test]
fn storm_guard_masks_an_unclaimed_line_on_q35_and_pc() {
    for machine in [Machine::Q35, Machine::Pc] {
        let o = common::boot(&common::config(machine).append("scenario=intx-storm"));
        let why = common::explain(&o);
        assert_eq!(o.exit, Exit::Passed, "without the guard the CPU would be stuck in the storm{why}");
        passed(&o, "00:04.0", "intx-storm");
    }
}

#[test]
fn storm_guard_keeps_the_other_devices_delivering() {
    // The edu is left undriven, so the storm runs while e1000e, nvme and q35's built-in AHCI are live.
    let o = common::boot(&common::config(Machine::Q35).append("irq.00:04.0=none scenario=intx-storm"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "{why}");
    passed(&o, "00:04.0", "intx-storm");
    let s = o.report.scenarios_for("00:04.0").find(|s| s.name == "intx-storm").unwrap();
    assert!(s.detail.ends_with("; 3 of 3 live devices still deliver"), "{}{why}", s.detail);
}
