//! Legacy virtio-net (`virtio-net-pci,disable-modern=on`, 1af4:1000, driven over its I/O BAR) on q35
//! and pc. With QEMU's user-mode network attached (`-netdev user`: slirp inside the QEMU process,
//! nothing leaves the machine) MSI-X mode checks two sources: TX (a sent frame's completion, entry 0)
//! and RX (slirp's ARP reply, entry 1), and the configuration vector (entry 2) must stay silent; the mask
//! checks and the write-order rules pass. With `nomsi` the TX completion arrives through INTx. Without a
//! network backend the RX source is not claimed and the run still passes.

use crate::common;

use msifw_host::{Exit, IrqMode, Machine, RunConfig, RunOutcome, ScenarioResult};

const BDF: &str = "00:05.0";

fn config(machine: Machine, user_network: bool, append: &str) -> RunConfig {
    let cfg = common::config(machine).default_devices(false).append(append);
    if user_network {
        cfg.qemu_arg("-netdev")
            .qemu_arg("user,id=n0")
            .device("virtio-net-pci,disable-modern=on,netdev=n0,romfile=,addr=05.0")
    } else {
        cfg.device("virtio-net-pci,disable-modern=on,romfile=,addr=05.0")
    }
}

fn boot(cfg: &RunConfig) -> RunOutcome {
    let o = common::boot_shared(cfg);
    assert_eq!(o.exit, Exit::Passed, "virtio-net run did not pass{}", common::explain(&o));
    o
}

/// The scenario `name` of the virtio-net function passed; returns its detail.
fn passed<'a>(o: &'a RunOutcome, name: &str) -> &'a str {
    let why = common::explain(o);
    let s = o
        .report
        .scenarios_for(BDF)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{BDF}: no {name} scenario{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{BDF}: {name}: {}{why}", s.detail);
    &s.detail
}

fn msix_with_user_network(machine: Machine) {
    let o = boot(&config(machine, true, ""));
    let why = common::explain(&o);
    let f = o.report.function(BDF).unwrap_or_else(|| panic!("virtio-net not listed{why}"));
    assert_eq!((f.vendor.as_str(), f.device.as_str()), ("1af4", "1000"), "{why}");
    assert_eq!(f.driver.as_deref(), Some("virtio-net"), "{why}");
    assert_eq!(f.irq_mode, IrqMode::Msix, "{why}");
    assert_eq!(f.vectors.len(), 3, "TX queue, RX queue and configuration vectors{why}");
    let delivery = passed(&o, "msix-delivery");
    assert!(
        delivery.starts_with("4 interrupts on 2 vector(s)"),
        "TX and RX each delivered twice (2 rounds) on their own vector, the configuration vector silent: {delivery}\n\
         (only TX delivered means no ARP reply came back: is `-netdev user,id=n0` attached with `netdev=n0`?){why}"
    );
    passed(&o, "msix-vector-mask");
    passed(&o, "msix-function-mask");
    passed(&o, "write-order");
    // 4 from delivery, 2 per mask check.
    assert_eq!(f.interrupts, 8, "every interrupt accounted for{why}");
    let st = f.final_state.as_ref().unwrap_or_else(|| panic!("no final_state{why}"));
    assert!(st.intx_disabled && st.msix_enabled == Some(false), "left able to interrupt: {st:?}{why}");
}

fn intx(machine: Machine) {
    let o = boot(&config(machine, true, "nomsi"));
    let why = common::explain(&o);
    let f = o.report.function(BDF).unwrap_or_else(|| panic!("virtio-net not listed{why}"));
    assert_eq!(f.irq_mode, IrqMode::Intx, "{why}");
    assert!(f.gsi.is_some(), "an INTx route{why}");
    let delivery = passed(&o, "intx-delivery");
    assert!(delivery.starts_with("2 interrupts on 1 vector(s)"), "TX completion through INTx, twice: {delivery}{why}");
    passed(&o, "write-order");
    assert_eq!(f.interrupts, 2, "{why}");
}

#[test]
fn q35_msix_tx_and_rx_vectors_with_user_network() {
    msix_with_user_network(Machine::Q35);
}

#[test]
fn pc_msix_tx_and_rx_vectors_with_user_network() {
    msix_with_user_network(Machine::Pc);
}

#[test]
fn q35_nomsi_tx_completion_through_intx() {
    intx(Machine::Q35);
}

#[test]
fn pc_nomsi_tx_completion_through_intx() {
    intx(Machine::Pc);
}

#[test]
fn without_a_network_backend_only_tx_is_claimed() {
    let o = boot(&config(Machine::Q35, false, ""));
    let why = common::explain(&o);
    let f = o.report.function(BDF).unwrap_or_else(|| panic!("virtio-net not listed{why}"));
    assert_eq!(f.irq_mode, IrqMode::Msix, "{why}");
    let delivery = passed(&o, "msix-delivery");
    // The RX and configuration vectors are still programmed, and the delivery check holds them to zero.
    assert!(delivery.starts_with("2 interrupts on 1 vector(s)"), "TX only: {delivery}{why}");
    assert_eq!(f.vectors.len(), 3, "{why}");
    assert!(
        o.defmt.lines.iter().any(|l| l.message.contains("attach -netdev user")),
        "the log tells the user how to get the RX check{why}"
    );
}
