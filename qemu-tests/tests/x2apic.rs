//! x2APIC: when the CPU offers it, msifw runs the local APIC in x2APIC mode (MSR interface) and every
//! interrupt still arrives, with the same message format for APIC IDs below 256. QEMU 7.2's TCG does not
//! offer x2APIC, so this runs under KVM (about 12 s on this project's nested KVM).

mod common;

use msifw_qemu::{Accel, Exit, Machine};

#[test]
fn x2apic_mode_under_kvm_delivers_everything() {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        // The project's machines have KVM; say loudly when one does not, rather than pass quietly.
        eprintln!("NOTICE: /dev/kvm is not usable here; the x2APIC check did not run");
        return;
    }
    let cfg = common::config(Machine::Q35).accel(Accel::Kvm).qemu_arg("-cpu").qemu_arg("qemu64,+x2apic");
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
