//! The PCI Express memory-mapped configuration table (PCI Firmware Specification 3.3 §4.1.2): where each
//! segment's ECAM window is.

use core::{mem::size_of, ops::Range};

use ::acpi::mcfg::{self, Mcfg};
use super::sdt::{view, Sdt};
use super::{push_on_heap, AcpiProblem, EntryKind, PlatformTables};

/// Size of the MCFG before its first allocation (header, 8 reserved bytes).
const MCFG_FIXED_LEN: usize = size_of::<Mcfg>();
/// Size of one MCFG allocation structure.
const MCFG_ENTRY_LEN: usize = size_of::<mcfg::McfgEntry>();
/// Every PCI bus takes 1 MiB of ECAM space (32 devices x 8 functions x 4 KiB).
const ECAM_BUS_SHIFT: u32 = 20;

const _: () = assert!(MCFG_FIXED_LEN == 44);
const _: () = assert!(MCFG_ENTRY_LEN == 16);

/// One MCFG allocation: the ECAM window for `bus_start ..= bus_end` of PCI segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McfgEntry {
    /// ECAM base address, i.e. the address bus 0 would have (PCI Firmware Spec 3.3 Table 4-3), even when
    /// `bus_start` is not 0.
    pub base_address: u64,
    /// PCI segment group number.
    pub segment: u16,
    /// First bus decoded.
    pub bus_start: u8,
    /// Last bus decoded.
    pub bus_end: u8,
}

impl McfgEntry {
    /// The physical bytes this allocation decodes (1 MiB per bus). [`parse`](super::parse) only keeps entries for which this
    /// does not overflow.
    pub fn window(&self) -> Range<u64> {
        let start = self.base_address.saturating_add(u64::from(self.bus_start) << ECAM_BUS_SHIFT);
        let end = self.base_address.saturating_add((u64::from(self.bus_end) + 1) << ECAM_BUS_SHIFT);
        start..end
    }

    /// Physical address of the 4 KiB configuration space of `bus:device.function`, if this entry decodes it.
    pub fn config_address(&self, bus: u8, device: u8, function: u8) -> Option<u64> {
        if !(self.bus_start..=self.bus_end).contains(&bus) || device >= 32 || function >= 8 {
            return None;
        }
        let offset = (u64::from(bus) << ECAM_BUS_SHIFT) | (u64::from(device) << 15) | (u64::from(function) << 12);
        self.base_address.checked_add(offset)
    }
}

pub(super) fn parse_mcfg(sdt: Sdt<'_>, out: &mut PlatformTables) {
    let table = sdt.bytes;
    let Some(mcfg) = view::<Mcfg>(table) else {
        out.report(AcpiProblem::TableTooShort {
            signature: sdt.signature,
            address: sdt.address,
            length: u32::try_from(table.len()).unwrap_or(u32::MAX),
        });
        return;
    };
    // `Mcfg::entries` computes `header.length - 44` (== `table.len() - 44`, non-negative as `view` succeeded)
    // and rounds down to whole 16-byte entries, all inside `table`.
    let raw = mcfg.entries();
    let whole = raw.len().saturating_mul(MCFG_ENTRY_LEN).saturating_add(MCFG_FIXED_LEN);
    if whole < table.len() {
        out.report(AcpiProblem::TruncatedEntry {
            signature: sdt.signature,
            offset: u32::try_from(whole).unwrap_or(u32::MAX),
        });
    }
    // Every allocation is kept (a server has one per segment, or several per segment), on the heap.
    let mut heap_reported = 0u8;
    for (index, e) in raw.iter().enumerate() {
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        let entry = McfgEntry {
            base_address: { e.base_address },
            segment: { e.pci_segment_group },
            bus_start: e.bus_number_start,
            bus_end: e.bus_number_end,
        };
        let window_fits = entry.base_address.checked_add((u64::from(entry.bus_end) + 1) << ECAM_BUS_SHIFT).is_some();
        if entry.bus_start > entry.bus_end || entry.base_address == 0 || !window_fits {
            out.report(AcpiProblem::BadMcfgEntry { index });
            continue;
        }
        if let Some(kept) = out.mcfg.iter().find(|kept| mcfg_overlap(kept, &entry)) {
            // The kept entry's index: the first allocation in the table with its values (an earlier equal one
            // would have been kept, or dropped for a fault this one shares).
            let first = raw.iter().position(|e| same(e, kept)).and_then(|i| u16::try_from(i).ok()).unwrap_or(u16::MAX);
            out.report(AcpiProblem::OverlappingMcfg { first, second: index });
            continue;
        }
        if let Some(p) = push_on_heap(&mut out.mcfg, entry, EntryKind::McfgEntries, &mut heap_reported) {
            out.report(p);
        }
    }
}

/// Whether the table's allocation `e` has the values of `kept`.
fn same(e: &mcfg::McfgEntry, kept: &McfgEntry) -> bool {
    // Copies of the packed fields.
    let (base, segment) = ({ e.base_address }, { e.pci_segment_group });
    base == kept.base_address
        && segment == kept.segment
        && e.bus_number_start == kept.bus_start
        && e.bus_number_end == kept.bus_end
}

/// Two allocations overlap if they decode a common bus of the same segment, or common physical bytes.
fn mcfg_overlap(a: &McfgEntry, b: &McfgEntry) -> bool {
    let buses = a.segment == b.segment && a.bus_start <= b.bus_end && b.bus_start <= a.bus_end;
    let (wa, wb) = (a.window(), b.window());
    buses || (wa.start < wb.end && wb.start < wa.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;
    use crate::platform::acpi::*;

    #[test]
    fn a_truncated_mcfg_entry_is_reported_and_whole_ones_kept() {
        let mut m = mcfg(&[QEMU_MCFG]);
        m.extend_from_slice(&[0xAA; 10]);
        let len = m.len() as u32;
        let (img, _) = build(&[qemu_madt().table(), with_length(m, len)], false);
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::TruncatedEntry { signature: Signature::MCFG, offset: 60 }]);
        assert_eq!(t.mcfg.len(), 1);
    }

    #[test]
    fn overlapping_mcfg_allocations_keep_the_first() {
        // Same segment, buses 0-255 and 128-191 at different bases.
        let (img, _) = build(&[qemu_madt().table(), mcfg(&[QEMU_MCFG, (0xE000_0000, 0, 128, 191)])], false);
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::OverlappingMcfg { first: 0, second: 1 }]);
        assert_eq!(t.mcfg.len(), 1);

        // Different segments whose windows share physical bytes.
        let (img, _) = build(&[qemu_madt().table(), mcfg(&[QEMU_MCFG, (0xB800_0000, 1, 0, 15)])], false);
        assert_eq!(problems(&img.parse()), [AcpiProblem::OverlappingMcfg { first: 0, second: 1 }]);

        // Disjoint segments and windows are fine; the bus-0 base convention puts segment 1 bus 16 at +16 MiB.
        let (img, _) = build(&[qemu_madt().table(), mcfg(&[QEMU_MCFG, (0xC000_0000, 1, 16, 31)])], false);
        let t = img.parse();
        assert!(t.is_clean(), "{:?}", t.problems);
        assert_eq!(t.mcfg[1].window(), 0xC100_0000..0xC200_0000);
    }

    #[test]
    fn invalid_mcfg_allocations_are_dropped() {
        let entries = [(0xB000_0000, 0, 10, 5), (0, 1, 0, 0), (u64::MAX - 0x10_0000, 2, 0, 1), QEMU_MCFG];
        let (img, _) = build(&[qemu_madt().table(), mcfg(&entries)], false);
        let t = img.parse();
        let bad = |index| AcpiProblem::BadMcfgEntry { index };
        assert_eq!(problems(&t), [bad(0), bad(1), bad(2)]);
        assert_eq!(t.mcfg.len(), 1);
    }

    #[test]
    fn every_mcfg_allocation_of_a_many_segment_server_is_kept() {
        // 8 were kept once, and the ninth segment's ECAM window was lost.
        let entries: StdVec<_> = (0..40u16).map(|s| (0x8000_0000 + u64::from(s) * 0x100_0000, s, 0, 15)).collect();
        let (img, _) = build(&[qemu_madt().table(), mcfg(&entries)], false);
        let t = img.parse();
        assert!(t.is_clean(), "{:?}", t.problems);
        assert_eq!(t.mcfg.len(), 40);
        assert_eq!((t.mcfg[39].segment, t.mcfg[39].base_address), (39, 0x8000_0000 + 39 * 0x100_0000));
        // An overlap late in the list still names the kept allocation's index.
        let mut entries = entries;
        entries.push((0x8000_0000 + 30 * 0x100_0000, 99, 0, 0));
        let (img, _) = build(&[qemu_madt().table(), mcfg(&entries)], false);
        assert_eq!(problems(&img.parse()), [AcpiProblem::OverlappingMcfg { first: 30, second: 40 }]);
    }

    #[test]
    fn an_mcfg_the_heap_cannot_hold_is_a_capacity_problem() {
        let entries: StdVec<_> = (0..12u16).map(|s| (0x8000_0000 + u64::from(s) * 0x100_0000, s, 0, 15)).collect();
        let (img, _) = build(&[qemu_madt().table(), mcfg(&entries)], false);
        let t = with_heap_limit(10, || img.parse());
        let p = problems(&t);
        assert_eq!(p, [AcpiProblem::NoHeap { kind: EntryKind::McfgEntries, kept: 10 }]);
        assert!(p[0].is_capacity());
        assert_eq!(t.mcfg.len(), 10);
    }

    #[test]
    fn mcfg_config_addresses_use_the_bus_0_base() {
        let e = McfgEntry { base_address: 0xB000_0000, segment: 0, bus_start: 0, bus_end: 255 };
        assert_eq!(e.config_address(1, 2, 3), Some(0xB000_0000 + (1 << 20) + (2 << 15) + (3 << 12)));
        assert_eq!(e.config_address(0, 32, 0), None);
        assert_eq!(e.config_address(0, 0, 8), None);
        let e = McfgEntry { base_address: 0xC000_0000, segment: 1, bus_start: 16, bus_end: 31 };
        assert_eq!(e.config_address(16, 0, 0), Some(0xC100_0000));
        assert_eq!(e.config_address(15, 0, 0), None);
        assert_eq!(e.window(), 0xC100_0000..0xC200_0000);
    }
}
