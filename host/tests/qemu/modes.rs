//! Every driven device in every mode the command line asks for: `nomsi` puts everything on INTx (routed
//! as QEMU documents: q35 GSI 20 + (slot + pin) % 4, pc through PIIX3 PIRQs 10/10/11/11, where nvme and
//! edu then share GSI 11), `nomsix` moves e1000e to MSI, and per-function overrides pick a mode.

use crate::common;

use msifw_host::{Exit, IrqMode, Machine, RunOutcome, ScenarioResult};

fn expect(o: &RunOutcome, bdf: &str, mode: IrqMode, gsi: Option<u32>) {
    let why = common::explain(o);
    let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} missing{why}"));
    assert_eq!(f.irq_mode, mode, "{bdf}: mode{why}");
    assert_eq!(f.gsi, gsi, "{bdf}: GSI (QEMU's routing for this slot){why}");
    if gsi.is_some() {
        assert_eq!((f.trigger.as_deref(), f.polarity.as_deref()), (Some("level"), Some("high")), "{bdf}: INTx is level, active-high in QEMU{why}");
    }
    assert!(f.interrupts >= 2, "{bdf}: {} interrupts{why}", f.interrupts);
    let name = match mode {
        IrqMode::Msix => "msix-delivery",
        IrqMode::Msi => "msi-delivery",
        _ => "intx-delivery",
    };
    let s = o.report.scenarios_for(bdf).find(|s| s.name == name).unwrap_or_else(|| panic!("{bdf}: no {name} scenario{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{bdf}: {name}: {}{why}", s.detail);
}

fn boot(machine: Machine, append: &str) -> RunOutcome {
    let o = common::boot_shared(&common::config(machine).append(append));
    assert_eq!(o.exit, Exit::Passed, "run with '{append}' did not pass{}", common::explain(&o));
    o
}

#[test]
fn q35_nomsi_everything_on_intx() {
    let o = boot(Machine::Q35, "nomsi");
    expect(&o, "00:02.0", IrqMode::Intx, Some(22));
    expect(&o, "00:03.0", IrqMode::Intx, Some(23));
    expect(&o, "00:04.0", IrqMode::Intx, Some(20));
    let f = o.report.function("00:02.0").unwrap();
    assert_eq!(f.modes_offered, ["msix", "msi", "intx"]);
    assert_eq!(f.irq_reason.as_deref(), Some("MSI disabled on the command line"));
}

#[test]
fn pc_nomsi_everything_on_intx_with_a_shared_line() {
    let o = boot(Machine::Pc, "nomsi");
    expect(&o, "00:02.0", IrqMode::Intx, Some(10));
    expect(&o, "00:03.0", IrqMode::Intx, Some(11));
    expect(&o, "00:04.0", IrqMode::Intx, Some(11));
    // nvme and edu share GSI 11 and its vector; Status.Interrupt attributed each one its own interrupts
    // (expect() checked both delivery scenarios, which require exact per-function counts).
    let (n, e) = (o.report.function("00:03.0").unwrap(), o.report.function("00:04.0").unwrap());
    assert_eq!(n.vectors, e.vectors, "a shared line has one vector");
}

#[test]
fn q35_nomsix_and_overrides() {
    let o = boot(Machine::Q35, "nomsix irq.00:04.0=intx");
    expect(&o, "00:02.0", IrqMode::Msi, None);
    expect(&o, "00:03.0", IrqMode::Intx, Some(23));
    expect(&o, "00:04.0", IrqMode::Intx, Some(20));
    let o = boot(Machine::Pc, "irq.00:02.0=msi irq.00:03.0=intx");
    expect(&o, "00:02.0", IrqMode::Msi, None);
    expect(&o, "00:03.0", IrqMode::Intx, Some(11));
    expect(&o, "00:04.0", IrqMode::Msi, None);
}

#[test]
fn nvme_msix_completes_on_admin_and_io_queue_vectors() {
    let o = boot(Machine::Q35, "");
    let why = common::explain(&o);
    let f = o.report.function("00:03.0").unwrap_or_else(|| panic!("nvme missing{why}"));
    assert_eq!(f.vectors.len(), 5, "admin queue + 4 I/O completion queues, one MSI-X vector each{why}");
    let d = o.report.scenarios_for("00:03.0").find(|s| s.name == "msix-delivery").unwrap_or_else(|| panic!("no delivery{why}"));
    assert_eq!(d.result, ScenarioResult::Pass, "{}{why}", d.detail);
    assert!(d.detail.starts_with("10 interrupts on 5 vector(s)"), "every queue's vector delivered, 2 rounds: {}{why}", d.detail);
}
