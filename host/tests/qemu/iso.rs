//! The GRUB ISO (`cargo run -- image`): the same ELF booted through Multiboot2 by GRUB, under SeaBIOS and
//! under OVMF (UEFI), gets the same report as the PVH boot: the same functions, interrupt modes, vectors
//! and scenario results, with the command line, memory map and ACPI tables taken from Multiboot2 tags.

use crate::common;

use msifw_host::{BootPath, Machine, RunOutcome};

/// What must match between two boots of the same platform: per function its identity, mode and vector
/// count; per scenario its result (details carry timings).
fn essentials(o: &RunOutcome) -> (Vec<String>, Vec<String>) {
    let functions = o
        .report
        .functions
        .iter()
        .map(|f| format!("{} {}:{} {} {} vectors {:?}", f.bdf, f.vendor, f.device, f.irq_mode.as_str(), f.vectors.len(), f.driver))
        .collect();
    let scenarios = o.report.scenarios.iter().map(|s| format!("{} {:?} {} {:?}", s.name, s.bdf, s.control, s.result)).collect();
    (functions, scenarios)
}

fn same_report_as_pvh(machine: Machine, boot: BootPath) {
    let append = "rounds=3";
    let pvh = common::boot_shared(&common::config(machine).append(append));
    common::assert_passed(&pvh);
    let iso_cfg = common::config(machine).boot(boot).append(append).timeout_secs(180);
    let iso = common::boot(&iso_cfg);
    let why = common::explain(&iso);
    common::assert_passed(&iso);
    let p = iso.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!(p.boot.as_deref(), Some("multiboot2"), "not booted through Multiboot2{why}");
    assert!(p.loader.as_deref().is_some_and(|l| l.starts_with("GRUB")), "loader {:?}{why}", p.loader);
    // The launcher's line: `rounds=3` with the oracle's word in front.
    assert_eq!(p.cmdline, iso_cfg.firmware_cmdline(), "the command line comes from the Multiboot2 tag{why}");
    assert!(p.cmdline.ends_with(append), "{why}");
    assert_eq!(essentials(&iso), essentials(&pvh), "{} boot differs from the PVH boot{why}", boot.as_str());
    // Three rounds per source, as the command line asked, on every driven device.
    for f in iso.report.functions.iter().filter(|f| f.driver.is_some()) {
        assert!(f.interrupts >= 3 * f.vectors.len() as u64, "{}: {} interrupts{why}", f.bdf, f.interrupts);
    }
}

#[test]
fn iso_under_seabios_q35_matches_pvh() {
    same_report_as_pvh(Machine::Q35, BootPath::IsoBios);
}

#[test]
fn iso_under_seabios_pc_matches_pvh() {
    same_report_as_pvh(Machine::Pc, BootPath::IsoBios);
}

#[test]
fn iso_under_ovmf_q35_matches_pvh() {
    same_report_as_pvh(Machine::Q35, BootPath::IsoUefi);
}
