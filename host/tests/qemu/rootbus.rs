//! Every root bus and every configuration mechanism: functions behind QEMU's PCI expander bridges (pxb-pcie
//! on q35, pxb on pc) are found from the host bridges the DSDT describes and driven, INTx included (routed
//! from the expander's `_PRT` Method and its links, evaluated); microvm's GPEX, whose
//! ECAM only the DSDT's `_CBA` describes (no MCFG, no port 0xCF8), is used; a platform where no mechanism
//! answers fails; and an MCFG that lies over RAM or does not answer is rejected for the ports, as Linux does.

use crate::common;

use msifw_host::{Exit, IrqMode, Machine, RunOutcome, ScenarioResult};
use std::path::PathBuf;

/// Asserts `bdf` is an edu driven with MSI whose interrupts arrived.
fn assert_edu_msi(o: &RunOutcome, bdf: &str, why: &str) {
    let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} not enumerated{why}"));
    assert_eq!((f.vendor.as_str(), f.device.as_str()), ("1234", "11e8"), "{bdf}{why}");
    assert_eq!(f.irq_mode, IrqMode::Msi, "{bdf}: wrong mode{why}");
    assert!(f.interrupts >= 2, "{bdf}: {} interrupts{why}", f.interrupts);
    let delivery = o.report.scenarios_for(bdf).find(|s| s.name == "msi-delivery");
    assert_eq!(delivery.map(|s| s.result), Some(ScenarioResult::Pass), "{bdf}: msi-delivery{why}");
}

fn platform(o: &RunOutcome) -> &msifw_host::Platform {
    o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{}", common::explain(o)))
}

#[test]
fn pxb_pcie_expanders_on_q35_are_enumerated_and_driven() {
    // Two expanders, each with a root port and an edu behind it; the first edu is forced to INTx, routed
    // through the root port's swizzle to the expander's _PRT (a Method) and its link's _CRS.
    let cfg = common::config(Machine::Q35)
        .device("pxb-pcie,id=pxb1,bus_nr=0x80,bus=pcie.0")
        .device("pcie-root-port,id=rp1,bus=pxb1,chassis=1")
        .device("edu,bus=rp1")
        .device("pxb-pcie,id=pxb2,bus_nr=0xa0,bus=pcie.0")
        .device("pcie-root-port,id=rp2,bus=pxb2,chassis=2")
        .device("edu,bus=rp2")
        .append("irq.81:00.0=intx");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = platform(&o);
    assert_eq!(p.root_source, "acpi", "{why}");
    for root in ["00-7f PCI0", "80-81 PC80", "a0-a1 PCA0"] {
        assert!(p.root_buses.contains(root), "root bus {root} not in {:?}{why}", p.root_buses);
    }
    assert_edu_msi(&o, "a1:00.0", &why);
    for port in ["80:00.0", "a0:00.0"] {
        assert!(o.report.function(port).is_some_and(|f| f.header_type == 1), "root port {port} missing{why}");
    }
    assert_edu_intx(&o, "81:00.0", &why);
}

/// Asserts `bdf` is an edu driven with INTx routed from the ACPI `_PRT` whose interrupts arrived.
fn assert_edu_intx(o: &RunOutcome, bdf: &str, why: &str) {
    let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} not enumerated{why}"));
    assert_eq!((f.irq_mode, f.route_source.as_deref()), (IrqMode::Intx, Some("dsdt")), "{bdf}: INTx from the expander's _PRT{why}");
    assert!(f.interrupts >= 2, "{bdf}: {} interrupts{why}", f.interrupts);
    let delivery = o.report.scenarios_for(bdf).find(|s| s.name == "intx-delivery");
    assert_eq!(delivery.map(|s| s.result), Some(ScenarioResult::Pass), "{bdf}: intx-delivery{why}");
}

#[test]
fn pxb_expanders_on_pc_are_enumerated_and_driven() {
    // One expander with the edu directly on it, one with the edu behind a PCI bridge, forced to INTx:
    // swizzled through that bridge and the expander's own to the expander's _PRT.
    let cfg = common::config(Machine::Pc)
        .default_devices(false)
        .device("pxb,id=pxb1,bus_nr=0x40,bus=pci.0")
        .device("edu,bus=pxb1")
        .device("pxb,id=pxb2,bus_nr=0x60,bus=pci.0")
        .device("pci-bridge,id=br1,bus=pxb2,chassis_nr=3")
        .device("edu,bus=br1,addr=1.0")
        .append("irq.62:01.0=intx");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = platform(&o);
    for root in ["00-3f PCI0", "40-41 PC40", "60-62 PC60"] {
        assert!(p.root_buses.contains(root), "root bus {root} not in {:?}{why}", p.root_buses);
    }
    // QEMU's pxb puts its own PCI bridge on the expander's root bus; the edu sits behind it.
    assert_edu_msi(&o, "41:00.0", &why);
    assert_edu_intx(&o, "62:01.0", &why);
}

#[test]
fn without_acpi_peer_root_buses_are_probed() {
    // No DSDT lists the expanders: the peer-bus probe (Linux's pcibios_scan_specific_bus) finds them.
    let cfg = common::config(Machine::Pc)
        .default_devices(false)
        .qemu_arg("-machine")
        .qemu_arg("acpi=off")
        .device("pxb,id=pxb1,bus_nr=0x40,bus=pci.0")
        .device("edu,bus=pxb1")
        .device("pxb,id=pxb2,bus_nr=0x60,bus=pci.0")
        .device("pci-bridge,id=br1,bus=pxb2,chassis_nr=3")
        .device("edu,bus=br1,addr=1.0");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    let p = platform(&o);
    assert_eq!(p.root_source, "peer-probe", "{why}");
    assert!(p.root_buses.starts_with("00-3f") && p.root_buses.contains("40-5f") && p.root_buses.contains("60-ff"), "{:?}{why}", p.root_buses);
    assert_edu_msi(&o, "41:00.0", &why);
    assert_edu_msi(&o, "62:01.0", &why);
}

#[test]
fn a_bridge_left_without_a_bus_fails_the_run() {
    // Under qboot nothing numbers the expander's root port, and QEMU's PC80._CRS (built before any numbering)
    // gives the expander the one bus 0x80: no bus number is left for the port, so the edu below is not found.
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .qemu_arg("-bios")
        .qemu_arg("/usr/share/qemu/qboot.rom")
        .device("pxb-pcie,id=pxb1,bus_nr=0x80,bus=pcie.0")
        .device("pcie-root-port,id=rp1,bus=pxb1,chassis=1")
        .device("edu,bus=rp1");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Failed, "a run that could not reach below a bridge must fail{why}");
    let s = o.report.scenarios.iter().find(|s| s.name == "pci-buses");
    assert!(s.is_some_and(|s| s.result == ScenarioResult::Fail && s.detail.contains("80:00.0")), "{s:?}{why}");
}

#[test]
fn microvm_gpex_ecam_comes_from_the_dsdt() {
    let cfg = common::config(Machine::Q35).default_devices(false).device("edu").qemu_arg("-M").qemu_arg("microvm,pcie=on,acpi=on");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = platform(&o);
    assert_eq!((p.config_access.as_str(), p.ecam_base.as_deref()), ("ecam", Some("0xe0000000")), "{why}");
    assert!(p.config_reason.contains("dsdt-cba"), "{:?}{why}", p.config_reason);
    assert_eq!(p.root_buses, "00-ff PCI0", "{why}");
    let host = o.report.function("00:00.0").unwrap_or_else(|| panic!("GPEX root device missing{why}"));
    assert_eq!((host.vendor.as_str(), host.device.as_str()), ("1b36", "0008"), "{why}");
    assert_edu_msi(&o, "00:01.0", &why);
}

#[test]
fn microvm_intx_comes_from_the_gpex_static_prt() {
    // The GPEX's _PRT is a static package: slot 1 INTA -> GSI1 -> GSI 17 (acpi_dsdt_add_gpex).
    let cfg =
        common::config(Machine::Q35).default_devices(false).device("edu").qemu_arg("-M").qemu_arg("microvm,pcie=on,acpi=on").append("nomsi");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let f = o.report.function("00:01.0").unwrap_or_else(|| panic!("edu missing{why}"));
    assert_eq!((f.irq_mode, f.gsi, f.route_source.as_deref()), (IrqMode::Intx, Some(17), Some("dsdt")), "{why}");
    assert!(f.interrupts >= 2, "{} interrupts{why}", f.interrupts);
}

#[test]
fn no_configuration_mechanism_fails_the_run() {
    // microvm without pcie: no MCFG, no host bridge, no port 0xCF8.
    let cfg = common::config(Machine::Q35).default_devices(false).qemu_arg("-M").qemu_arg("microvm,acpi=on");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Failed, "a run that reached no PCI function must fail{why}");
    let s = o.report.scenarios.iter().find(|s| s.name == "pci-config");
    assert_eq!(s.map(|s| s.result), Some(ScenarioResult::Fail), "{why}");
    assert!(o.report.problems.iter().any(|p| p.detail.contains("no configuration mechanism answered")), "{why}");
}

/// An MCFG with one allocation for segment 0, written at test time with a valid checksum.
fn mcfg_file(name: &str, base: u64, end_bus: u8) -> PathBuf {
    let mut body = vec![0u8; 8];
    body.extend_from_slice(&base.to_le_bytes());
    body.extend_from_slice(&[0, 0, 0, end_bus, 0, 0, 0, 0]);
    let mut t = b"MCFG".to_vec();
    t.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
    t.extend_from_slice(&[1, 0]);
    t.extend_from_slice(b"MSIFW BADMCFG ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"MSIF");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&body);
    t[9] = 0u8.wrapping_sub(t.iter().fold(0u8, |a, &b| a.wrapping_add(b)));
    let path = std::env::temp_dir().join(format!("msifw-rootbus-{}-{name}.dat", std::process::id()));
    std::fs::write(&path, &t).expect("write the MCFG file");
    path
}

/// pc has no MCFG of its own, so the one added with `-acpitable` is the one the firmware meets.
#[test]
fn a_bad_mcfg_is_rejected_for_the_ports() {
    let cases = [
        // Bus 0 over RAM at 16 MiB: it would read zeros (or msifw's own memory).
        ("ram", 0x0100_0000, 0, "lies over RAM"),
        // Inside the PCI hole where nothing decodes: reads 0, while the ports read the i440FX at 00:00.0.
        ("void", 0xE000_0000, 0xFF, "00.0 reads 0x00000000 through it but 0x12378086 through ports"),
        // Over the IOAPIC: never read, so nothing is disturbed.
        ("ioapic", 0xFEC0_0000, 0, "lies over I/O APIC 0"),
    ];
    for (name, base, end_bus, reason) in cases {
        let file = mcfg_file(name, base, end_bus);
        let cfg = common::config(Machine::Pc).qemu_arg("-acpitable").qemu_arg(format!("file={}", file.display()));
        let o = common::boot(&cfg);
        let _ = std::fs::remove_file(&file);
        let why = common::explain(&o);
        common::assert_passed(&o);
        let p = platform(&o);
        assert_eq!(p.config_access, "port", "{name}: the MCFG must not be used{why}");
        assert!(p.config_reason.contains(reason), "{name}: {:?}{why}", p.config_reason);
        assert!(o.report.problems.iter().any(|p| p.source == "acpi.ecam" && p.detail.contains(reason)), "{name}: no problem{why}");
        let host = o.report.function("00:00.0").unwrap_or_else(|| panic!("{name}: 00:00.0 missing{why}"));
        assert_eq!((host.vendor.as_str(), host.device.as_str()), ("8086", "1237"), "{why}");
        assert_eq!(o.report.functions.len(), 7, "{name}: exactly pc's and the default devices' functions{why}");
        assert_eq!(o.report.function("00:03.0").map(|f| f.irq_mode), Some(IrqMode::Msix), "{name}: nvme{why}");
    }
}

/// q35's own MCFG comes first in the RSDT; a second one (added with `-acpitable`) is reported, not used.
#[test]
fn a_second_mcfg_is_ignored() {
    let file = mcfg_file("second", 0x0100_0000, 0);
    let cfg = common::config(Machine::Q35).qemu_arg("-acpitable").qemu_arg(format!("file={}", file.display()));
    let o = common::boot(&cfg);
    let _ = std::fs::remove_file(&file);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = platform(&o);
    assert_eq!((p.config_access.as_str(), p.ecam_base.as_deref()), ("ecam", Some("0xb0000000")), "{why}");
    assert!(o.report.problems.iter().any(|p| p.detail.contains("second MCFG")), "{why}");
}
