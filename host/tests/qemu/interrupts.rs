//! Each default device delivers interrupts in the mode it should: e1000e and nvme through MSI-X,
//! edu through MSI (it has no MSI-X), on q35 and on pc.

use crate::common;

use msifw_host::{IrqMode, Machine, ScenarioResult};

/// (BDF, device, expected mode).
const EXPECTED: &[(&str, &str, IrqMode)] = &[
    ("00:02.0", "e1000e", IrqMode::Msix),
    ("00:03.0", "nvme", IrqMode::Msix),
    ("00:04.0", "edu", IrqMode::Msi),
];

fn check(machine: Machine) {
    let o = common::boot_shared(&common::config(machine));
    common::assert_passed(&o);
    let why = common::explain(&o);
    let mut failures = Vec::new();
    for &(bdf, name, mode) in EXPECTED {
        let Some(f) = o.report.function(bdf) else {
            failures.push(format!(
                "{bdf} ({name}): no function record (was it enumerated? see host/tests/qemu/enumeration.rs)"
            ));
            continue;
        };
        if f.irq_mode != mode {
            failures.push(format!(
                "{bdf} ({name}): irq_mode is {:?}, expected {:?} (the driver fell back or never set \
                 up {mode}; see the function's problems and the defmt log)",
                f.irq_mode.as_str(),
                mode.as_str()
            ));
        }
        if f.interrupts < 1 {
            failures.push(format!(
                "{bdf} ({name}): no interrupt received (vectors {:?}); check the MSI/MSI-X address and \
                 data programming, the enable/mask bits and bus mastering",
                f.vectors
            ));
        }
        let scenarios: Vec<_> = o.report.scenarios_for(bdf).collect();
        if !scenarios.iter().any(|s| s.result == ScenarioResult::Pass) {
            let listed: Vec<String> = scenarios
                .iter()
                .map(|s| format!("{} {}: {}", s.result.label(), s.name, s.detail))
                .collect();
            failures.push(format!(
                "{bdf} ({name}): no passing scenario; its scenarios: {listed:?}"
            ));
        }
    }
    // A real interrupt on a freed vector is counted as unowned (and then taken by the check itself, so the
    // default run reports no unowned interrupts).
    match o.report.scenarios.iter().find(|s| s.name == "unowned-vector") {
        Some(s) if s.result == ScenarioResult::Pass => {}
        Some(s) => failures.push(format!("unowned-vector: {} {}", s.result.label(), s.detail)),
        None => failures.push("no unowned-vector scenario in the report".into()),
    }
    if let Some(p) = o.report.problems.iter().find(|p| p.detail.contains("nobody owned")) {
        failures.push(format!("unexpected unowned interrupts: {p:?}"));
    }
    assert!(
        failures.is_empty(),
        "interrupt delivery on {machine} is not as expected:\n  {}{why}",
        failures.join("\n  ")
    );
}

#[test]
fn q35_default_devices_interrupt() {
    check(Machine::Q35);
}

#[test]
fn pc_default_devices_interrupt() {
    check(Machine::Pc);
}
