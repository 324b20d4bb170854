//! AHCI (`ich9-ahci`, 8086:2922, built into every q35 at 00:1f.2, and `-device ahci`, the same model):
//! the driver resets the HBA and starts the FIS receive engine of the lowest implemented port, whose
//! first D2H Register FIS (PxIS.DHRS) raises the interrupt, acknowledged PxIS then IS. QEMU's model has
//! one MSI vector and INTx (devices-2.md section 3). Each trigger is checked exactly once per round by
//! the delivery scenario: a trigger that raised nothing, or twice, fails it.

use crate::common;

use msifw_host::{IrqMode, Machine, RunOutcome, ScenarioResult};

/// Drives the function at `bdf` and checks it interrupted in `mode`, each trigger exactly once, and
/// was left quiet.
fn ahci_interrupts(o: &RunOutcome, bdf: &str, mode: IrqMode, gsi: Option<u32>) {
    common::assert_passed(o);
    let why = common::explain(o);
    let f = o
        .report
        .function(bdf)
        .unwrap_or_else(|| panic!("{bdf}: no function record{why}"));
    assert_eq!(
        (f.vendor.as_str(), f.device.as_str(), f.class.as_str()),
        ("8086", "2922", "010601"),
        "{why}"
    );
    assert_eq!(
        f.driver.as_deref(),
        Some("ahci"),
        "the ahci driver takes class 010601{why}"
    );
    assert_eq!(f.irq_mode, mode, "{why}");
    assert_eq!(f.vectors.len(), 1, "one MSI vector or one line{why}");
    if gsi.is_some() {
        assert_eq!(f.gsi, gsi, "{why}");
    }
    let scenario = format!("{}-delivery", mode.name());
    let s = o
        .report
        .scenarios_for(bdf)
        .find(|s| s.name == scenario)
        .unwrap_or_else(|| panic!("{bdf}: no {scenario}{why}"));
    assert_eq!(
        s.result,
        ScenarioResult::Pass,
        "{bdf}: {scenario}: {}{why}",
        s.detail
    );
    assert!(
        s.detail.starts_with("2 interrupts on 1 vector(s)"),
        "both rounds delivered, each exactly once: {}{why}",
        s.detail
    );
    assert_eq!(
        f.interrupts, 2,
        "the handler counted exactly the two triggered D2H FIS interrupts{why}"
    );
    let st = f
        .final_state
        .as_ref()
        .unwrap_or_else(|| panic!("no final_state{why}"));
    assert!(st.intx_disabled, "left able to interrupt: {st:?}{why}");
    assert!(
        f.problems.is_empty(),
        "{bdf}: problems {:?}{why}",
        f.problems
    );
}

/// The takeover line the driver logs for `bdf`: which ports it found running.
fn takeover(o: &RunOutcome, bdf: &str) -> String {
    let why = common::explain(o);
    o.defmt
        .lines
        .iter()
        .find(|l| l.message.contains(bdf) && l.message.contains("ahci: event on port"))
        .map(|l| l.message.clone())
        .unwrap_or_else(|| panic!("no ahci takeover line{why}"))
}

#[test]
fn q35_ich9_ahci_interrupts_through_msi() {
    let o = common::boot(&common::config(Machine::Q35).default_devices(false));
    ahci_interrupts(&o, "00:1f.2", IrqMode::Msi, None);
    assert!(
        takeover(&o, "00:1f.2").contains("event on port 0; ports found running at takeover 0x0"),
        "{}",
        takeover(&o, "00:1f.2")
    );
}

/// INTx: 00:1f.2 INTA is GSI 16 on q35 (D31IR, PIRQA).
#[test]
fn q35_ich9_ahci_interrupts_through_intx() {
    let o = common::boot(
        &common::config(Machine::Q35)
            .default_devices(false)
            .append("irq.00:1f.2=intx"),
    );
    ahci_interrupts(&o, "00:1f.2", IrqMode::Intx, Some(16));
}

/// A disk on port 0: the boot firmware (SeaBIOS) leaves that port running (devices-2.md section 3.4),
/// so the driver stops it before touching interrupts, and the event still comes exactly once per
/// trigger.
#[test]
fn q35_port_left_running_by_the_boot_firmware_is_stopped() {
    let o = common::boot(
        &common::config(Machine::Q35)
            .default_devices(false)
            .qemu_arg("-drive")
            .qemu_arg("if=none,id=d0,file=null-co://,format=raw,file.size=16M")
            .device("ide-hd,drive=d0,bus=ide.0"),
    );
    ahci_interrupts(&o, "00:1f.2", IrqMode::Msi, None);
    let line = takeover(&o, "00:1f.2");
    assert!(
        line.contains("ports found running at takeover 0x1"),
        "port 0 (the disk's) found running: {line}"
    );
}

/// `-device ahci` on pc (no AHCI built in), in MSI and with `nomsi` on INTx: slot 5 INTA is PIRQ A
/// + 5 - 1 mod 4 = PIRQA, GSI 10 under SeaBIOS's routing.
#[test]
fn pc_ahci_device_interrupts_through_msi_and_intx() {
    let cfg = common::config(Machine::Pc)
        .default_devices(false)
        .device("ahci,addr=05.0");
    let o = common::boot(&cfg);
    ahci_interrupts(&o, "00:05.0", IrqMode::Msi, None);
    let o = common::boot(&cfg.append("nomsi"));
    ahci_interrupts(&o, "00:05.0", IrqMode::Intx, Some(10));
}
