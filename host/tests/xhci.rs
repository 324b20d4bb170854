//! xHCI (`xhci` driver, xHCI 1.2) on q35: qemu-xhci (1b36:000d) and nec-usb-xhci (1033:0194) in every
//! interrupt mode they offer, in one boot: qemu-xhci in MSI-X and forced to INTx (it has no MSI), nec in
//! MSI-X (default), MSI (`msix=off`) and INTx (`msi=off,msix=off`). Each one is reset, given a command
//! ring and interrupter 0's event ring, and run; a No-Op command's Command Completion Event raises
//! interrupter 0 (MSI-X entry 0, MSI vector 0, or INTA), acknowledged through ERDP with EHB (and IMAN.IP in
//! INTx mode). A second boot leaves them running (`crash-restart` stage A) and checks that the quiet
//! path halts every controller before its MSI-X is touched.

mod common;

use msifw_host::{IrqMode, Machine, RunOutcome, ScenarioResult};

/// (BDF, QEMU device, device ID, mode, modes offered).
const DEVICES: &[(&str, &str, &str, IrqMode, &[&str])] = &[
    ("00:03.0", "qemu-xhci,addr=03.0", "000d", IrqMode::Msix, &["msix", "intx"]),
    ("00:04.0", "nec-usb-xhci,msix=off,addr=04.0", "0194", IrqMode::Msi, &["msi", "intx"]),
    ("00:05.0", "nec-usb-xhci,msi=off,msix=off,addr=05.0", "0194", IrqMode::Intx, &["intx"]),
    ("00:06.0", "nec-usb-xhci,addr=06.0", "0194", IrqMode::Msix, &["msix", "msi", "intx"]),
    ("00:07.0", "qemu-xhci,addr=07.0", "000d", IrqMode::Intx, &["msix", "intx"]),
];

fn passed<'a>(o: &'a RunOutcome, bdf: &'a str, name: &str) -> &'a str {
    let why = common::explain(o);
    let s = o.report.scenarios_for(bdf).find(|s| s.name == name).unwrap_or_else(|| panic!("{bdf}: no {name} scenario{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{bdf}: {name}: {}{why}", s.detail);
    &s.detail
}

fn boot(append: &str) -> RunOutcome {
    let mut cfg = common::config(Machine::Q35).default_devices(false).append(append);
    for (_, dev, ..) in DEVICES {
        cfg = cfg.device(*dev);
    }
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    o
}

/// Every controller is driven by `xhci` in its mode and its No-Op completions interrupted exactly as
/// triggered; no problem was reported.
fn all_interrupt(o: &RunOutcome) {
    let why = common::explain(o);
    for &(bdf, dev, id, mode, offered) in DEVICES {
        let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} ({dev}) not listed{why}"));
        let vendor = if id == "000d" { "1b36" } else { "1033" };
        assert_eq!((f.vendor.as_str(), f.device.as_str(), f.class.as_str()), (vendor, id, "0c0330"), "{bdf}{why}");
        assert_eq!(f.modes_offered, offered, "{bdf} ({dev}){why}");
        assert_eq!(f.driver.as_deref(), Some("xhci"), "{bdf} ({dev}){why}");
        assert_eq!(f.irq_mode, mode, "{bdf} ({dev}){why}");
        assert_eq!(f.vectors.len(), 1, "{bdf} ({dev}): interrupter 0's vector{why}");
        assert!(f.problems.is_empty(), "{bdf} ({dev}): problems {:?}{why}", f.problems);
        let delivery = match mode {
            IrqMode::Msix => "msix-delivery",
            IrqMode::Msi => "msi-delivery",
            _ => "intx-delivery",
        };
        let d = passed(o, bdf, delivery);
        assert!(d.starts_with("2 interrupts on 1 vector(s)"), "{bdf} ({dev}): two No-Ops, each exactly once: {d}{why}");
        match mode {
            IrqMode::Msix => {
                passed(o, bdf, "msix-vector-mask");
                passed(o, bdf, "msix-function-mask");
            }
            IrqMode::Intx => {
                // A No-Op rung again before the first completion was acknowledged raises again (the
                // driver consumes the first event so EHB clears) and is held until the rearm.
                passed(o, bdf, "intx-hold");
            }
            _ => {}
        }
        passed(o, bdf, "write-order");
    }
}

#[test]
fn no_op_completion_interrupts_on_interrupter_0_in_msix_msi_and_intx() {
    let o = boot("irq.00:07.0=intx");
    all_interrupt(&o);
}

#[test]
fn a_running_xhci_is_halted_before_its_msix_is_touched() {
    // Stage A sets every controller up and leaves it running (USBCMD = R/S | INTE) with MSI-X or INTx live,
    // then restarts in place; stage B's quiet path must halt each one before quieting its interrupts.
    let o = boot("irq.00:07.0=intx scenario=crash-restart");
    let why = common::explain(&o);
    let s = o.report.scenarios.iter().find(|s| s.name == "crash-restart").unwrap_or_else(|| panic!("no crash-restart scenario{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "crash-restart: {}{why}", s.detail);
    for &(bdf, ..) in DEVICES {
        let halted = format!("{bdf} xhci: found running (USBCMD 0x5), halted before quieting");
        assert!(
            o.defmt.lines.iter().any(|l| l.message == halted),
            "{bdf}: the quiet path did not halt the running controller ('{halted}' not logged){why}"
        );
    }
    // Taken over halted (no takeover problem), and interrupting again afterwards.
    all_interrupt(&o);
}
