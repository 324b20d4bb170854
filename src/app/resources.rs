//! BAR assignment when the boot firmware left it undone (qboot; UEFI firmwares that skip devices without a
//! driver): bridges numbered, the buses enumerated again, BARs and bridge windows placed in the host
//! bridge's windows (`PCI0._CRS`, else the memory map's holes) and decoding enabled. Under SeaBIOS every BAR
//! already has an address and nothing here writes anything.

use super::platform::{BarAssigner, Platform};
use super::problem;
use crate::boot::BootInfo;
use crate::bus::pci::assign::{self, BridgeInfo, Space, WindowSource, Windows};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::{self, Enumeration};

/// Assigns what the boot firmware did not; returns who assigned the BARs.
/// `memmap_only`: windows from the memory map even where the DSDT has them (`bar_windows=memmap`).
pub(super) fn assign(cfg: &PlatformConfig, boot: &BootInfo, platform: &Platform, pci: &mut Enumeration, memmap_only: bool) -> BarAssigner {
    if !assign::needed(pci) {
        return BarAssigner::BootFirmware;
    }
    let t0 = crate::time::now_us();
    let (bus_start, bus_end) = platform.bus_range();
    if assign::numbering_needed(pci) {
        // Each root bus numbers its bridges inside its own range (an expander's root port as well as bus 0's).
        let mut numbered = 0;
        for (first, last) in platform.root_ranges() {
            let n = assign::number_buses(cfg, pci, first, last.min(bus_end));
            for (bdf, e) in n.problems.iter() {
                problem("pci.assign", format_args!("{bdf}: {e}"));
            }
            if n.problems.dropped > 0 {
                problem("pci.assign", format_args!("{} more bus-numbering problems not listed", n.problems.dropped));
            }
            numbered += n.numbered;
        }
        if numbered > 0 {
            crate::info!("PCI: {=u32} bridges numbered; enumerating again", numbered);
            enumerate::enumerate_roots(cfg, &platform.root_ranges(), pci);
        }
    }

    let host = if memmap_only { None } else { platform.host_windows() };
    let (mut windows, source) = match host {
        Some(Ok(host)) => {
            for e in host.dropped.iter() {
                problem("acpi.dsdt", format_args!("{e}"));
            }
            (Windows::from_host(&host), WindowSource::AcpiCrs)
        }
        other => {
            if let Some(Err(e)) = other {
                problem("acpi.dsdt", format_args!("{e}; BAR windows from the memory map"));
            }
            (Windows::from_memory_map(&boot.memmap), WindowSource::MemoryMap)
        }
    };
    // Whatever the windows say, nothing goes over RAM, reserved memory or the ECAM window.
    windows.exclude_memory_map(&boot.memmap);
    windows.exclude_fixed_io(&platform.tables.fadt_io);
    if let Some(ecam) = platform.ecam_window() {
        windows.exclude(Space::Mem, ecam);
    }

    let t_windows = crate::time::now_us();
    let bridges: alloc::vec::Vec<BridgeInfo> = pci.functions.iter().filter_map(|f| assign::bridge_info(cfg, f)).collect();
    let t_plan = crate::time::now_us();
    let plan = assign::plan(pci, &bridges, bus_start, windows);
    let t_apply = crate::time::now_us();
    for (bdf, e) in plan.problems.iter() {
        problem("pci.assign", format_args!("{bdf}: {e}"));
    }
    if plan.problems_dropped > 0 {
        problem("pci.assign", format_args!("{} more assignment problems not listed", plan.problems_dropped));
    }
    let applied = assign::apply(cfg, pci, &plan);
    for (bdf, e) in applied.iter() {
        problem("pci.assign", format_args!("{bdf}: {e}"));
    }
    if applied.dropped > 0 {
        problem("pci.assign", format_args!("{} more assignment problems not listed", applied.dropped));
    }
    let t_end = crate::time::now_us();
    crate::info!(
        "PCI: {=usize} BARs and {=usize} bridges assigned from {=str} in {=u64} us (numbering and windows {=u64}, bridges read {=u64}, plan {=u64}, writes {=u64})",
        plan.bars.len(),
        plan.bridges.len(),
        source.name(),
        t_end - t0,
        t_windows - t0,
        t_plan - t_windows,
        t_apply - t_plan,
        t_end - t_apply
    );
    BarAssigner::Msifw(source)
}
