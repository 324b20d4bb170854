//! x2APIC: when the CPU offers it, msifw runs the local APIC in x2APIC mode (MSR interface) and every
//! interrupt still arrives, with the same message format for APIC IDs below 256. QEMU 7.2's TCG does not
//! offer x2APIC, so this runs under KVM (about 12 s on this project's nested KVM).
//! The INTx case checks KVM's level re-deliveries are not counted as the devices' interrupts.

use crate::common;

use msifw_host::{Exit, Machine};

#[test]
fn x2apic_mode_under_kvm_delivers_everything() {
    // 300 s like the other KVM boots: under load (other boots, other work) nested KVM takes longer.
    let Some(cfg) = common::kvm(common::config(Machine::Q35).timeout_secs(300).qemu_arg("-cpu").qemu_arg("qemu64,+x2apic"), "the x2APIC check") else {
        return;
    };
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "x2APIC run did not pass{why}");
    let platform = o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    assert!(platform.x2apic, "the CPU offers x2APIC (-cpu qemu64,+x2apic), so msifw must use it{why}");
    for bdf in ["00:02.0", "00:03.0", "00:04.0"] {
        let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} missing{why}"));
        assert!(f.interrupts >= 2, "{bdf}: {} interrupts in x2APIC mode{why}", f.interrupts);
    }
}

/// INTx under KVM, with the shared-run scenarios: KVM's IOAPIC delivers a claimed level again after the
/// EOI (about once per claim here), also once the driver has re-armed the entry's acknowledge. The entry
/// asks Status.Interrupt before it counts, so such a delivery is absorbed as a re-delivery (counted in the
/// function's `intx_redeliveries`) instead of being counted as the device's (the e1000e once had 3
/// interrupts where 2 were raised, and its intx-hold failed after). About 30 s on nested KVM.
#[test]
fn intx_under_kvm_counts_only_what_the_devices_raise() {
    let cfg = common::config(Machine::Q35)
        .timeout_secs(300)
        .append("scenario=intx-storm,reset-restore,reenable,incremental,shutdown,stuck-command nomsi");
    let Some(cfg) = common::kvm(cfg, "the KVM INTx check") else { return };
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "KVM INTx run did not pass{why}");
    for bdf in ["00:02.0", "00:03.0", "00:04.0"] {
        let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} missing{why}"));
        assert_eq!(f.irq_mode, msifw_host::IrqMode::Intx, "{bdf}{why}");
        let delivery = o.report.scenarios.iter().find(|s| s.bdf.as_deref() == Some(bdf) && s.name == "intx-delivery");
        assert!(delivery.is_some_and(|s| s.result == msifw_host::ScenarioResult::Pass), "{bdf}: {delivery:?}{why}");
    }
    let hold = o.report.scenarios.iter().filter(|s| s.name == "intx-hold").collect::<Vec<_>>();
    assert!(!hold.is_empty() && hold.iter().all(|s| s.detail.contains("none unclaimed")), "{hold:?}{why}");
}
