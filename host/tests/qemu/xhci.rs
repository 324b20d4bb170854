//! xHCI (`xhci` driver, xHCI 1.2) on q35: qemu-xhci (1b36:000d) and nec-usb-xhci (1033:0194) in every
//! interrupt mode they offer, in one boot: qemu-xhci in MSI-X with a USB keyboard (all 16 interrupters)
//! and forced to INTx (it has no MSI), nec in MSI with a USB tablet (16 MSI vectors), in INTx with a
//! keyboard (interrupter 0 drives the pin) and in MSI-X without a device (interrupter 0 only). Interrupter
//! 0 is raised by a No-Op command's Command Completion Event; interrupter n >= 1 by a control transfer on
//! the device's slot whose Status Stage targets it. A second boot leaves them running (`crash-restart`
//! stage A) and checks that the quiet path halts every controller before its MSI-X is touched.

use crate::common;

use msifw_host::{IrqMode, Machine, RunOutcome, ScenarioResult};

/// (BDF, QEMU devices, device ID, mode, modes offered, vectors = interrupters driven).
type Row = (
    &'static str,
    &'static [&'static str],
    &'static str,
    IrqMode,
    &'static [&'static str],
    usize,
);
const DEVICES: &[Row] = &[
    (
        "00:03.0",
        &["qemu-xhci,id=x3,addr=03.0", "usb-kbd,bus=x3.0"],
        "000d",
        IrqMode::Msix,
        &["msix", "intx"],
        16,
    ),
    (
        "00:04.0",
        &[
            "nec-usb-xhci,id=x4,msix=off,addr=04.0",
            "usb-tablet,bus=x4.0",
        ],
        "0194",
        IrqMode::Msi,
        &["msi", "intx"],
        16,
    ),
    (
        "00:05.0",
        &[
            "nec-usb-xhci,id=x5,msi=off,msix=off,addr=05.0",
            "usb-kbd,bus=x5.0",
        ],
        "0194",
        IrqMode::Intx,
        &["intx"],
        1,
    ),
    (
        "00:06.0",
        &["nec-usb-xhci,addr=06.0"],
        "0194",
        IrqMode::Msix,
        &["msix", "msi", "intx"],
        1,
    ),
    (
        "00:07.0",
        &["qemu-xhci,addr=07.0"],
        "000d",
        IrqMode::Intx,
        &["msix", "intx"],
        1,
    ),
];

fn passed<'a>(o: &'a RunOutcome, bdf: &'a str, name: &str) -> &'a str {
    let why = common::explain(o);
    let s = o
        .report
        .scenarios_for(bdf)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{bdf}: no {name} scenario{why}"));
    assert_eq!(
        s.result,
        ScenarioResult::Pass,
        "{bdf}: {name}: {}{why}",
        s.detail
    );
    &s.detail
}

fn boot(append: &str) -> RunOutcome {
    let mut cfg = common::config(Machine::Q35)
        .default_devices(false)
        .append(append);
    for (_, devs, ..) in DEVICES {
        for d in devs.iter() {
            cfg = cfg.device(*d);
        }
    }
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    o
}

/// Every controller is driven by `xhci` in its mode and its No-Op completions interrupted exactly as
/// triggered; no problem was reported.
fn all_interrupt(o: &RunOutcome) {
    let why = common::explain(o);
    for &(bdf, devs, id, mode, offered, vectors) in DEVICES {
        let dev = devs.join(" ");
        let f = o
            .report
            .function(bdf)
            .unwrap_or_else(|| panic!("{bdf} ({dev}) not listed{why}"));
        let vendor = if id == "000d" { "1b36" } else { "1033" };
        assert_eq!(
            (f.vendor.as_str(), f.device.as_str(), f.class.as_str()),
            (vendor, id, "0c0330"),
            "{bdf}{why}"
        );
        assert_eq!(f.modes_offered, offered, "{bdf} ({dev}){why}");
        assert_eq!(f.driver.as_deref(), Some("xhci"), "{bdf} ({dev}){why}");
        assert_eq!(f.irq_mode, mode, "{bdf} ({dev}){why}");
        assert_eq!(
            f.vectors.len(),
            vectors,
            "{bdf} ({dev}): one vector per interrupter driven{why}"
        );
        assert!(
            f.problems.is_empty(),
            "{bdf} ({dev}): problems {:?}{why}",
            f.problems
        );
        let delivery = match mode {
            IrqMode::Msix => "msix-delivery",
            IrqMode::Msi => "msi-delivery",
            _ => "intx-delivery",
        };
        let d = passed(o, bdf, delivery);
        let expect = format!(
            "{} interrupts on {vectors} vector(s), each exactly as triggered",
            2 * vectors
        );
        assert!(
            d.starts_with(&expect),
            "{bdf} ({dev}): each interrupter twice, exactly once each: {d}{why}"
        );
        if devs.len() == 1 {
            let reason = f.irq_reason.as_deref().unwrap_or_default();
            assert!(
                reason.contains("no USB device attached"),
                "{bdf}: {reason}{why}"
            );
        }
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
fn every_interrupter_interrupts_in_msix_msi_and_intx() {
    let o = boot("irq.00:07.0=intx");
    all_interrupt(&o);
}

#[test]
fn a_running_xhci_is_halted_before_its_msix_is_touched() {
    // Stage A sets every controller up and leaves it running (USBCMD = R/S | INTE) with MSI-X or INTx live,
    // then restarts in place; stage B's quiet path must halt each one before quieting its interrupts.
    let o = boot("irq.00:07.0=intx scenario=crash-restart");
    let why = common::explain(&o);
    let s = o
        .report
        .scenarios
        .iter()
        .find(|s| s.name == "crash-restart")
        .unwrap_or_else(|| panic!("no crash-restart scenario{why}"));
    assert_eq!(
        s.result,
        ScenarioResult::Pass,
        "crash-restart: {}{why}",
        s.detail
    );
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
