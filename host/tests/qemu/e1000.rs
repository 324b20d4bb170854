//! The classic e1000 (`-device e1000`, 8086:100e, 82540EM) beside the default devices: no capabilities,
//! so INTx is its only mode; the e1000 driver raises a cause through ICS, and the interrupt travels
//! through the IOAPIC, level-triggered, to the handler. On q35 slot 5 is GSI 20 + (5 + 0) mod 4 = 21; on
//! pc the PIIX PIRQ routing puts slot 5 on GSI 10, where the e1000e at slot 2 also lands when it is
//! moved to INTx, so the two share a line and each must be told apart by its Status.Interrupt.

use crate::common;

use msifw_host::{IrqMode, Machine, RunOutcome, ScenarioResult};

const BDF: &str = "00:05.0";
/// No option ROM (PVH needs none), fixed slot so the GSI is known.
const DEVICE: &str = "e1000,romfile=,addr=05.0";

fn boot(machine: Machine, append: &str) -> RunOutcome {
    let o = common::boot(&common::config(machine).device(DEVICE).append(append));
    common::assert_passed(&o);
    o
}

/// The intx-delivery scenario of `bdf` passed with every trigger delivered exactly once.
fn delivered(o: &RunOutcome, bdf: &str) {
    let why = common::explain(o);
    let s = o
        .report
        .scenarios_for(bdf)
        .find(|s| s.name == "intx-delivery")
        .unwrap_or_else(|| {
            panic!("{bdf}: no intx-delivery scenario (was the function driven?){why}")
        });
    assert_eq!(
        s.result,
        ScenarioResult::Pass,
        "{bdf}: intx-delivery: {}{why}",
        s.detail
    );
    assert!(
        s.detail.starts_with("2 interrupts on 1 vector(s)"),
        "{bdf}: both rounds delivered, each exactly once: {}{why}",
        s.detail
    );
}

/// The e1000 is driven on INTx at `gsi`, level-triggered and active-high as QEMU wires it, its
/// interrupts reached the handler, and it was left quiet.
fn e1000_on_intx(o: &RunOutcome, gsi: u32) {
    let why = common::explain(o);
    let f = o
        .report
        .function(BDF)
        .unwrap_or_else(|| panic!("{BDF}: no function record{why}"));
    assert_eq!(
        (f.vendor.as_str(), f.device.as_str()),
        ("8086", "100e"),
        "{why}"
    );
    assert_eq!(
        f.driver.as_deref(),
        Some("e1000"),
        "the e1000 driver takes 8086:100e{why}"
    );
    assert!(
        f.capabilities.is_empty(),
        "QEMU's e1000 has no capabilities: {:?}{why}",
        f.capabilities
    );
    assert_eq!(f.modes_offered, ["intx"], "{why}");
    assert_eq!(f.irq_mode, IrqMode::Intx, "{why}");
    assert_eq!(
        f.irq_reason.as_deref(),
        Some("no MSI or MSI-X capability"),
        "{why}"
    );
    assert_eq!(f.gsi, Some(gsi), "QEMU's routing of slot 5{why}");
    assert_eq!(
        (f.trigger.as_deref(), f.polarity.as_deref()),
        (Some("level"), Some("high")),
        "INTx is level, active-high in QEMU{why}"
    );
    assert!(
        f.interrupts >= 2,
        "{} interrupts reached the handler{why}",
        f.interrupts
    );
    delivered(o, BDF);
    let st = f
        .final_state
        .as_ref()
        .unwrap_or_else(|| panic!("no final_state{why}"));
    assert!(st.intx_disabled, "left able to interrupt: {st:?}{why}");
    assert!(
        f.problems.is_empty(),
        "{BDF}: problems {:?}{why}",
        f.problems
    );
}

#[test]
fn q35_e1000_interrupts_through_intx() {
    let o = boot(Machine::Q35, "");
    e1000_on_intx(&o, 21);
}

#[test]
fn pc_e1000_interrupts_through_intx() {
    let o = boot(Machine::Pc, "");
    e1000_on_intx(&o, 10);
}

#[test]
fn pc_e1000_shares_its_line_with_the_e1000e() {
    let o = boot(Machine::Pc, "irq.00:02.0=intx");
    e1000_on_intx(&o, 10);
    let why = common::explain(&o);
    let (old, new) = (
        o.report.function(BDF).unwrap(),
        o.report.function("00:02.0").unwrap(),
    );
    assert_eq!(
        (new.irq_mode, new.gsi),
        (IrqMode::Intx, Some(10)),
        "e1000e moved to INTx on the e1000's line{why}"
    );
    assert_eq!(
        old.vectors, new.vectors,
        "a shared line has one vector{why}"
    );
    // Exact counts per function on the shared vector: each interrupt was attributed to the one asserting.
    delivered(&o, "00:02.0");
}
