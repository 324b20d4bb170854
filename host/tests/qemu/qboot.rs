//! Under qboot (`-bios /usr/share/qemu/qboot.rom`), which boots PVH but assigns no BARs and leaves decoding
//! off, msifw assigns them itself and the run must match a SeaBIOS boot of the same platform: the same
//! functions, interrupt modes and vector counts, every scenario passing. Under SeaBIOS msifw must not touch
//! what the boot firmware assigned.

use crate::common;

use msifw_host::{BarKind, Exit, Machine, RunConfig, RunOutcome, ScenarioResult};
use std::collections::BTreeSet;

use common::QBOOT;

fn qboot(cfg: RunConfig) -> RunConfig {
    cfg.qemu_arg("-bios").qemu_arg(QBOOT)
}

/// A function's name that does not depend on bus numbering: its BDF on bus 0; below a bridge its
/// vendor:device and device.function (qboot and SeaBIOS number the root ports' buses in different orders).
fn label(o: &RunOutcome, bdf: &str) -> String {
    match o.report.function(bdf) {
        Some(f) if !bdf.starts_with("00:") => format!("below a bridge: {}:{} {}", f.vendor, f.device, &bdf[3..]),
        _ => bdf.to_string(),
    }
}

/// (function, vendor:device, mode, vector count) of every function.
fn functions(o: &RunOutcome) -> BTreeSet<(String, String, String, usize)> {
    o.report.functions.iter().map(|f| (label(o, &f.bdf), format!("{}:{}", f.vendor, f.device), format!("{:?}", f.irq_mode), f.vectors.len())).collect()
}

/// (name, function, result) of every scenario.
fn scenarios(o: &RunOutcome) -> BTreeSet<(String, String, String)> {
    o.report.scenarios.iter().map(|s| (s.name.clone(), s.bdf.as_deref().map(|b| label(o, b)).unwrap_or_default(), format!("{:?}", s.result))).collect()
}

/// Every BAR has an address, naturally aligned, and no two overlap.
fn assert_bars_assigned(o: &RunOutcome, why: &str) {
    let mut ranges: Vec<(u64, u64, bool, String)> = Vec::new();
    for f in o.report.functions.iter() {
        for b in f.bars.iter() {
            let address = u64::from_str_radix(b.address.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("{}: bad address {}{why}", f.bdf, b.address));
            assert_ne!(address, 0, "{} BAR{} left unassigned{why}", f.bdf, b.index);
            assert_eq!(address % b.size, 0, "{} BAR{} at {address:#x} not aligned to its size {:#x}{why}", f.bdf, b.index, b.size);
            let io = b.kind == BarKind::Io;
            let last = address + b.size - 1;
            for (s, l, other_io, who) in ranges.iter() {
                assert!(io != *other_io || last < *s || *l < address, "{} BAR{} [{address:#x}, {last:#x}] overlaps {who}{why}", f.bdf, b.index);
            }
            ranges.push((address, last, io, format!("{} BAR{}", f.bdf, b.index)));
        }
    }
}

/// Boots `cfg` under SeaBIOS and under qboot and holds the two reports against each other.
fn same_as_seabios(cfg: RunConfig) {
    let seabios = common::boot_shared(&cfg);
    let why_seabios = common::explain(&seabios);
    common::assert_passed(&seabios);
    let q = common::boot(&qboot(cfg));
    let why = common::explain(&q);
    common::assert_passed(&q);
    assert_eq!(q.exit, Exit::Passed, "{why}");

    let sp = seabios.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why_seabios}"));
    assert_eq!((sp.bar_assignment.as_str(), sp.bar_windows.as_deref()), ("boot-firmware", None), "SeaBIOS assigns every BAR: msifw must change nothing{why_seabios}");
    let qp = q.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!((qp.bar_assignment.as_str(), qp.bar_windows.as_deref()), ("msifw", Some("acpi-crs")), "{why}");
    let assign_problems: Vec<_> = q.report.problems.iter().filter(|p| p.source == "pci.assign" || p.source == "acpi.dsdt").collect();
    assert!(assign_problems.is_empty(), "assignment problems: {assign_problems:?}{why}");

    assert_eq!(functions(&q), functions(&seabios), "functions, modes or vector counts differ from SeaBIOS{why}{why_seabios}");
    assert_eq!(scenarios(&q), scenarios(&seabios), "scenarios differ from SeaBIOS{why}{why_seabios}");
    assert!(q.report.scenarios.iter().all(|s| s.result == ScenarioResult::Pass), "{why}");
    for o in [&q, &seabios] {
        assert_bars_assigned(o, &common::explain(o));
    }
    for f in q.report.functions.iter().filter(|f| f.driver.is_some()) {
        assert!(f.interrupts > 0, "{}: no interrupt under qboot{why}", f.bdf);
    }
}

#[test]
fn q35_default_platform_under_qboot_matches_seabios() {
    same_as_seabios(common::config(Machine::Q35));
}

#[test]
fn pc_default_platform_under_qboot_matches_seabios() {
    same_as_seabios(common::config(Machine::Pc));
}

#[test]
fn devices_behind_root_ports_under_qboot_get_bridge_windows() {
    // Two root ports, one device on each link: the ports' bus numbers, I/O and memory windows must cover
    // the devices' BARs for them to be reached and to interrupt (their MSI writes cross the port too).
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .device("pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0")
        .device("edu,bus=rp1")
        .device("pcie-root-port,id=rp2,chassis=2,slot=2,addr=06.0")
        .device("e1000e,romfile=,bus=rp2");
    same_as_seabios(cfg);
}

#[test]
fn io_space_exhaustion_under_qboot_is_reported_and_every_device_still_interrupts() {
    // 32 root ports with an e1000e each want 32 I/O windows of 4 KiB; 0x1000-0xFFFF less the chipset ports
    // (assign::CHIPSET_IO) holds 13. SeaBIOS hangs here; msifw reports every I/O window and BAR it could not
    // place and runs on with the memory BARs.
    let (devices, args) = msifw_host::bench::scale_devices(&["e1000e"; 32]);
    let mut cfg = qboot(common::config(Machine::Q35).default_devices(false));
    for d in devices {
        cfg = cfg.device(d);
    }
    for a in args {
        cfg = cfg.qemu_arg(a);
    }
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let problems: Vec<_> = o.report.problems.iter().filter(|p| p.source == "pci.assign").collect();
    assert!(!problems.is_empty(), "I/O space cannot hold 32 bridge windows: expected pci.assign problems{why}");
    assert!(problems.iter().all(|p| p.detail.contains("io") && p.detail.contains("fits no free window")), "only I/O may run out: {problems:?}{why}");
    let e1000e: Vec<_> = o.report.functions.iter().filter(|f| f.device == "10d3").collect();
    assert_eq!(e1000e.len(), 32, "{why}");
    for f in e1000e {
        assert!(f.interrupts > 0 && f.vectors.len() == 5, "{}: {} interrupts on {:?}{why}", f.bdf, f.interrupts, f.vectors);
        assert!(f.bars.iter().filter(|b| b.kind != BarKind::Io).all(|b| b.address != "0x0"), "{}: a memory BAR left unassigned{why}", f.bdf);
    }
}

#[test]
fn nested_switch_and_pci_bridge_under_qboot_match_seabios() {
    // Root port -> switch upstream port -> downstream port -> edu, and a conventional PCI-to-PCI bridge
    // (with its own 64-bit SHPC BAR) -> edu: windows nest two levels deep.
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .device("pcie-root-port,id=rp1,chassis=1,addr=05.0")
        .device("x3130-upstream,id=up1,bus=rp1")
        .device("xio3130-downstream,id=dn1,bus=up1,chassis=2,slot=0")
        .device("edu,bus=dn1")
        .device("pci-bridge,id=pb1,chassis_nr=3,addr=07.0")
        .device("edu,bus=pb1,addr=03.0");
    same_as_seabios(cfg);
}

#[test]
fn memory_map_windows_under_qboot_keep_clear_of_ram_ecam_and_the_chipset() {
    // `bar_windows=memmap`: the fallback for a DSDT without a usable PCI0._CRS, forced.
    let seabios = common::boot_shared(&common::config(Machine::Q35));
    common::assert_passed(&seabios);
    let o = common::boot(&qboot(common::config(Machine::Q35)).append("bar_windows=memmap"));
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!((p.bar_assignment.as_str(), p.bar_windows.as_deref()), ("msifw", Some("memory-map")), "{why}");
    assert_eq!(functions(&o), functions(&seabios), "{why}");
    assert_bars_assigned(&o, &why);
    const RAM_TOP: u64 = 256 << 20; // the tests' -m 256M
    for f in o.report.functions.iter() {
        for b in f.bars.iter().filter(|b| b.kind != BarKind::Io) {
            let a = u64::from_str_radix(b.address.trim_start_matches("0x"), 16).unwrap();
            let last = a + b.size - 1;
            assert!(a >= RAM_TOP && last < 0xFEC0_0000, "{} BAR{} at {a:#x} outside the memory map's hole{why}", f.bdf, b.index);
            assert!(last < 0xB000_0000 || a > 0xBFFF_FFFF, "{} BAR{} at {a:#x} inside the ECAM window{why}", f.bdf, b.index);
        }
    }
}
