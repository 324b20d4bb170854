//! The Bochs emulator as a second platform (`cargo run -- bochs`): the GRUB ISO boots under Bochs' own
//! BIOS, the e1000 (Bochs has no MSI) interrupts through the IOAPIC on the line the BIOS's tables route
//! it to, and every interrupt is counted exactly. Bochs must be installed (`.ci/run` installs Debian's
//! bochs, bochsbios, bochs-term, vgabios and seabios); without it this test fails, it does not skip.

use crate::common;

use msifw_host::bochs::{run_bochs, Bios, BochsConfig};
use msifw_host::{Exit, IrqMode, ScenarioResult};

#[test]
fn e1000_interrupts_are_counted_on_bochs() {
    let cfg = BochsConfig {
        bios: Bios::Bochs,
        append: "rounds=3".into(),
        ..BochsConfig::default()
    };
    let slot = common::slot(msifw_host::Accel::Tcg);
    let o = run_bochs(&cfg).unwrap_or_else(|e| panic!("could not run the firmware on Bochs: {e}"));
    drop(slot);
    let why = common::explain(&o);
    common::assert_passed(&o);
    assert_eq!(o.exit, Exit::Passed, "{why}");
    let p = o
        .report
        .platform
        .as_ref()
        .unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!(p.cmdline, "rounds=3", "the command line from grub.cfg{why}");
    let e1000 = o
        .report
        .functions
        .iter()
        .find(|f| (f.vendor.as_str(), f.device.as_str()) == ("8086", "100e"))
        .unwrap_or_else(|| panic!("no e1000 (8086:100e) enumerated{why}"));
    assert_eq!(
        e1000.irq_mode,
        IrqMode::Intx,
        "Bochs' e1000 has INTx only{why}"
    );
    assert_eq!(e1000.driver.as_deref(), Some("e1000"), "{why}");
    let delivery = o
        .report
        .scenarios
        .iter()
        .find(|s| s.name == "intx-delivery" && s.bdf.as_deref() == Some(e1000.bdf.as_str()))
        .unwrap_or_else(|| panic!("no intx-delivery line for the e1000{why}"));
    assert_eq!(delivery.result, ScenarioResult::Pass, "{why}");
    assert!(
        delivery
            .detail
            .starts_with("3 interrupts on 1 vector(s), each exactly as triggered"),
        "three rounds, each counted once: {}{why}",
        delivery.detail
    );
    assert!(
        e1000.interrupts >= 3,
        "the function's count holds the delivered interrupts{why}"
    );
    assert!(
        o.report.problems.iter().all(|p| !p.detail.contains("no function claimed")),
        "every interrupt on the e1000's line was claimed (Status.Interrupt is absent on Bochs: the handler reads ICR){why}"
    );
    for (vendor, device, name) in [("10ec", "8029", "NE2000"), ("1274", "5000", "ES1370")] {
        let f = o.report.functions.iter().find(|f| (f.vendor.as_str(), f.device.as_str()) == (vendor, device));
        let f = f.unwrap_or_else(|| panic!("the {name} ({vendor}:{device}) was not enumerated{why}"));
        assert!(f.irq_mode == IrqMode::None && f.interrupts == 0, "the {name} has no driver: left quiet{why}");
    }
    assert!(
        o.report
            .scenarios
            .iter()
            .any(|s| s.name == "intx-hold" && s.result == ScenarioResult::Pass),
        "{why}"
    );
}
