//! The PCI Express memory-mapped configuration table (PCI Firmware Specification 3.3 §4.1.2): where each
//! segment's ECAM window is.

use core::{mem::size_of, ops::Range};

use ::acpi::mcfg::{self, Mcfg};
use heapless::Vec;

use super::sdt::{view, Sdt};
use super::{AcpiProblem, EntryKind, PlatformTables};

/// Most MCFG allocations kept.
pub const MAX_MCFG_ENTRIES: usize = 8;

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
    let mut kept_index: Vec<u16, MAX_MCFG_ENTRIES> = Vec::new();
    let mut full_reported = false;
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
        let overlap = out.mcfg.iter().zip(kept_index.iter()).find(|(kept, _)| mcfg_overlap(kept, &entry));
        if let Some((_, &first)) = overlap {
            out.report(AcpiProblem::OverlappingMcfg { first, second: index });
            continue;
        }
        if out.mcfg.push(entry).is_err() {
            if !full_reported {
                full_reported = true;
                let capacity = MAX_MCFG_ENTRIES as u16;
                out.report(AcpiProblem::TooManyEntries { kind: EntryKind::McfgEntries, capacity });
            }
            continue;
        }
        // Same capacity as `out.mcfg`, which just had room.
        let _ = kept_index.push(index);
    }
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
    fn more_mcfg_allocations_than_capacity_are_reported_once() {
        let entries: StdVec<_> = (0..10u16).map(|s| (0x8000_0000 + u64::from(s) * 0x100_0000, s, 0, 15)).collect();
        let (img, _) = build(&[qemu_madt().table(), mcfg(&entries)], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [AcpiProblem::TooManyEntries { kind: EntryKind::McfgEntries, capacity: MAX_MCFG_ENTRIES as u16 }]
        );
        assert_eq!(t.mcfg.len(), MAX_MCFG_ENTRIES);
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
