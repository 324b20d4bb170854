//! The Multiple APIC Description Table (ACPI 6.5 §5.2.12): local APICs, I/O APICs, interrupt source
//! overrides and NMI wiring.

use core::{mem::size_of, ops::Range, pin::Pin};

use ::acpi::madt::{self, Madt, MadtEntry};
use alloc::vec::Vec;

use super::sdt::{view, Sdt};
use super::{push_on_heap, AcpiProblem, EntryKind, MadtEntryFault, PlatformTables};

/// Most I/O APICs kept from the MADT: one per possible I/O APIC ID (8 bits), so no MADT with distinct IDs
/// can overflow it (a GSI of a dropped one would have been a false INTx FAIL); more is a `capacity` problem
/// (Linux keeps 128, `MAX_IO_APICS` in arch/x86). It also bounds the work per I/O APIC (each is mapped and
/// masked, and their GSI ranges are compared pairwise). Every other MADT list holds every entry: a server
/// has a local APIC or x2APIC entry and a local APIC NMI entry per logical CPU (hundreds), all on the heap.
pub const MAX_IO_APICS: usize = 256;

/// Size of the MADT before its first entry (header, local APIC address, flags).
const MADT_FIXED_LEN: usize = size_of::<Madt>();

const _: () = assert!(MADT_FIXED_LEN == 44);

/// Interrupt input polarity from MPS INTI flags bits 1:0 (ACPI 6.5 Table 5.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// 00: conforms to the bus (active-high for ISA).
    Conforming,
    /// 01: active high.
    ActiveHigh,
    /// 11: active low.
    ActiveLow,
}

/// Interrupt trigger mode from MPS INTI flags bits 3:2 (ACPI 6.5 Table 5.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// 00: conforms to the bus (edge for ISA).
    Conforming,
    /// 01: edge-triggered.
    Edge,
    /// 11: level-triggered.
    Level,
}

/// Decodes MPS INTI flags; `None` for the reserved encodings (10b) of either field.
pub const fn decode_inti_flags(flags: u16) -> Option<(Polarity, TriggerMode)> {
    let polarity = match flags & 0b11 {
        0b00 => Polarity::Conforming,
        0b01 => Polarity::ActiveHigh,
        0b11 => Polarity::ActiveLow,
        _ => return None,
    };
    let trigger = match (flags >> 2) & 0b11 {
        0b00 => TriggerMode::Conforming,
        0b01 => TriggerMode::Edge,
        0b11 => TriggerMode::Level,
        _ => return None,
    };
    Some((polarity, trigger))
}

/// A processor's local APIC (MADT type 0) or local x2APIC (type 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalApic {
    /// ACPI processor UID (matches the `_UID` of the processor object).
    pub processor_uid: u32,
    /// The local APIC id (x2APIC id for type 9).
    pub apic_id: u32,
    /// Flags bit 0: the processor is usable now.
    pub enabled: bool,
    /// Flags bit 1: a disabled processor can be brought online (ACPI 6.3+).
    pub online_capable: bool,
    /// Came from a local x2APIC entry.
    pub x2apic: bool,
}

/// An I/O APIC (MADT type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// I/O APIC id.
    pub id: u8,
    /// Physical address of its register window.
    pub address: u32,
    /// The GSI of its first redirection entry; it covers `gsi_base ..= gsi_base + max redirection entry`.
    pub gsi_base: u32,
}

/// An interrupt source override (MADT type 2): ISA IRQ `source_irq` arrives on GSI `gsi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptSourceOverride {
    /// Bus; 0 (ISA) is the only value the spec defines.
    pub bus: u8,
    /// Bus-relative IRQ.
    pub source_irq: u8,
    /// The global system interrupt it is wired to.
    pub gsi: u32,
    /// Input polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: TriggerMode,
}

/// A GSI wired to NMI (MADT type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmiSource {
    /// The global system interrupt.
    pub gsi: u32,
    /// Input polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: TriggerMode,
}

/// A local APIC LINT input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalInterruptLine {
    /// LINT0.
    Lint0,
    /// LINT1.
    Lint1,
}

/// A local APIC input wired to NMI (MADT type 4, or type 0xA for x2APIC UIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalApicNmi {
    /// The processor UID, or `None` for all processors (UID 0xFF / 0xFFFF_FFFF).
    pub processor_uid: Option<u32>,
    /// Which LINT pin.
    pub line: LocalInterruptLine,
    /// Input polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: TriggerMode,
}

/// Where an ISA IRQ arrives, after interrupt source overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaIrqRoute {
    /// Global system interrupt.
    pub gsi: u32,
    /// Input polarity (`Conforming` means active-high on ISA).
    pub polarity: Polarity,
    /// Trigger mode (`Conforming` means edge on ISA).
    pub trigger: TriggerMode,
}

/// What the MADT says about the interrupt controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtInfo {
    /// Physical address of the MADT.
    pub address: u64,
    /// Local APIC physical address, after any local APIC address override entry (type 5).
    pub local_apic_address: u64,
    /// Flags bit 0 (PCAT_COMPAT): the system also has dual 8259 PICs, which must be masked to use the APICs.
    pub pcat_compat: bool,
    /// Local APICs and x2APICs, enabled, online-capable or neither, in table order (the first is normally
    /// the boot processor).
    pub local_apics: Vec<LocalApic>,
    /// I/O APICs, in table order (at most [`MAX_IO_APICS`]).
    pub io_apics: Vec<IoApic>,
    /// Interrupt source overrides, in table order.
    pub overrides: Vec<InterruptSourceOverride>,
    /// GSIs wired to NMI.
    pub nmi_sources: Vec<NmiSource>,
    /// Local APIC LINT pins wired to NMI.
    pub local_apic_nmis: Vec<LocalApicNmi>,
}

impl MadtInfo {
    /// Where ISA IRQ `irq` arrives: the bus-0 override if there is one, else the identity GSI with the bus
    /// defaults (ACPI 6.5 §5.2.12.5).
    pub fn isa_irq_route(&self, irq: u8) -> IsaIrqRoute {
        self.overrides.iter().find(|o| o.bus == 0 && o.source_irq == irq).map_or(
            IsaIrqRoute { gsi: u32::from(irq), polarity: Polarity::Conforming, trigger: TriggerMode::Conforming },
            |o| IsaIrqRoute { gsi: o.gsi, polarity: o.polarity, trigger: o.trigger },
        )
    }

    /// The I/O APIC serving `gsi`, given each I/O APIC's number of redirection entries (read from its version
    /// register: max redirection entry + 1).
    pub fn io_apic_for_gsi(&self, gsi: u32, redirection_entries: impl Fn(&IoApic) -> u32) -> Option<&IoApic> {
        self.io_apics.iter().find(|a| gsi_range(a, &redirection_entries).contains(&u64::from(gsi)))
    }

    /// The first pair of I/O APICs whose GSI ranges overlap, given each one's number of redirection entries.
    ///
    /// The MADT gives only each I/O APIC's first GSI; [`parse`](super::parse) already rejects equal bases, and this completes
    /// the check once the I/O APICs' version registers have been read.
    pub fn find_gsi_collision(&self, redirection_entries: impl Fn(&IoApic) -> u32) -> Option<(IoApic, IoApic)> {
        self.io_apics.iter().enumerate().find_map(|(i, a)| {
            let ra = gsi_range(a, &redirection_entries);
            self.io_apics
                .iter()
                .skip(i.saturating_add(1))
                .find(|b| {
                    let rb = gsi_range(b, &redirection_entries);
                    ra.start < rb.end && rb.start < ra.end
                })
                .map(|b| (*a, *b))
        })
    }

    /// [`Self::find_gsi_collision`] as the problem the report prints.
    pub fn gsi_overlap(&self, redirection_entries: impl Fn(&IoApic) -> u32) -> Option<AcpiProblem> {
        let (a, b) = self.find_gsi_collision(&redirection_entries)?;
        // Both ranges are non-empty (they overlap), so `end - 1` is the last GSI; past the 32-bit GSI space it
        // is shown as u32::MAX.
        let gsis = |x: &IoApic| {
            let r = gsi_range(x, &redirection_entries);
            (x.gsi_base, u32::try_from(r.end.saturating_sub(1)).unwrap_or(u32::MAX))
        };
        Some(AcpiProblem::IoApicGsiOverlap { first_id: a.id, first_gsis: gsis(&a), second_id: b.id, second_gsis: gsis(&b) })
    }
}

fn gsi_range(a: &IoApic, redirection_entries: &impl Fn(&IoApic) -> u32) -> Range<u64> {
    let start = u64::from(a.gsi_base);
    start..start.saturating_add(u64::from(redirection_entries(a)))
}

/// The least length `acpi`'s MADT iterator needs for an entry type, as it forms a reference to the whole entry
/// struct; `None` for types it skips without looking inside (0x11 and up).
fn acpi_entry_size(entry_type: u8) -> Option<usize> {
    Some(match entry_type {
        0x0 => size_of::<madt::LocalApicEntry>(),
        0x1 => size_of::<madt::IoApicEntry>(),
        0x2 => size_of::<madt::InterruptSourceOverrideEntry>(),
        0x3 => size_of::<madt::NmiSourceEntry>(),
        0x4 => size_of::<madt::LocalApicNmiEntry>(),
        0x5 => size_of::<madt::LocalApicAddressOverrideEntry>(),
        0x6 => size_of::<madt::IoSapicEntry>(),
        0x7 => size_of::<madt::LocalSapicEntry>(),
        0x8 => size_of::<madt::PlatformInterruptSourceEntry>(),
        0x9 => size_of::<madt::LocalX2ApicEntry>(),
        0xA => size_of::<madt::X2ApicNmiEntry>(),
        0xB => size_of::<madt::GiccEntry>(),
        0xC => size_of::<madt::GicdEntry>(),
        0xD => size_of::<madt::GicMsiFrameEntry>(),
        0xE => size_of::<madt::GicRedistributorEntry>(),
        0xF => size_of::<madt::GicInterruptTranslationServiceEntry>(),
        0x10 => size_of::<madt::MultiprocessorWakeupEntry>(),
        _ => return None,
    })
}

// The x86 entries have the sizes ACPI 6.5 §5.2.12 gives them.
const _: () = assert!(size_of::<madt::LocalApicEntry>() == 8);
const _: () = assert!(size_of::<madt::IoApicEntry>() == 12);
const _: () = assert!(size_of::<madt::InterruptSourceOverrideEntry>() == 10);
const _: () = assert!(size_of::<madt::NmiSourceEntry>() == 8);
const _: () = assert!(size_of::<madt::LocalApicNmiEntry>() == 6);
const _: () = assert!(size_of::<madt::LocalApicAddressOverrideEntry>() == 12);
const _: () = assert!(size_of::<madt::LocalX2ApicEntry>() == 16);
const _: () = assert!(size_of::<madt::X2ApicNmiEntry>() == 12);

/// The result of walking the MADT's entry headers before `acpi` does.
struct MadtScan {
    /// How many entries `acpi`'s iterator yields before the first malformed one.
    yielded: usize,
    /// The first malformed entry, if any: `(offset, type, fault)`.
    fault: Option<(usize, u8, MadtEntryFault)>,
}

/// Walks the entry headers of a MADT (`table` is the whole table) and finds how far `acpi`'s iterator may go:
/// it would loop on a length-0 entry, underflow on one past the end and read past a short one.
fn scan_madt_entries(table: &[u8]) -> MadtScan {
    let mut offset = MADT_FIXED_LEN;
    let mut yielded = 0usize;
    while let Some(rest) = table.get(offset..).filter(|r| !r.is_empty()) {
        let entry_type = rest.first().copied().unwrap_or(0);
        let length = usize::from(rest.get(1).copied().unwrap_or(0));
        let fault = if rest.len() < 2 {
            Some(MadtEntryFault::PastTableEnd)
        } else if length < 2 || acpi_entry_size(entry_type).is_some_and(|min| length < min) {
            Some(MadtEntryFault::TooShort)
        } else if length > rest.len() {
            Some(MadtEntryFault::PastTableEnd)
        } else {
            None
        };
        if let Some(fault) = fault {
            return MadtScan { yielded, fault: Some((offset, entry_type, fault)) };
        }
        if acpi_entry_size(entry_type).is_some() {
            yielded = yielded.saturating_add(1);
        }
        offset = offset.saturating_add(length);
    }
    MadtScan { yielded, fault: None }
}

/// Offset of `entry` (a reference `acpi` formed into `table`) from the start of `table`.
fn offset_in<T>(table: &[u8], entry: &T) -> u32 {
    let offset = core::ptr::from_ref(entry).cast::<u8>().addr().wrapping_sub(table.as_ptr().addr());
    u32::try_from(offset).unwrap_or(u32::MAX)
}

/// Pushes `item` on the heap, reporting the first time each list finds no room.
fn push_or_report<T>(list: &mut Vec<T>, item: T, kind: EntryKind, full: &mut u8, out: &mut PlatformTables) {
    if let Some(p) = push_on_heap(list, item, kind, full) {
        out.report(p);
    }
}

pub(super) fn parse_madt(sdt: Sdt<'_>, out: &mut PlatformTables) -> Option<MadtInfo> {
    let table = sdt.bytes;
    let Some(madt) = view::<Madt>(table) else {
        out.report(AcpiProblem::TableTooShort {
            signature: sdt.signature,
            address: sdt.address,
            length: u32::try_from(table.len()).unwrap_or(u32::MAX),
        });
        return None;
    };
    // SAFETY: `Pin<&Madt>` only promises the MADT stays where it is while borrowed; it is a view into memory
    // that `table` borrows immutably for this whole function, so it cannot move.
    let madt = unsafe { Pin::new_unchecked(madt) };

    let mut info = MadtInfo {
        address: sdt.address,
        local_apic_address: u64::from(madt.local_apic_address),
        pcat_compat: madt.supports_8259(),
        local_apics: Vec::new(),
        io_apics: Vec::new(),
        overrides: Vec::new(),
        nmi_sources: Vec::new(),
        local_apic_nmis: Vec::new(),
    };

    let scan = scan_madt_entries(table);
    let mut full = 0u8;
    // `acpi`'s iterator walks `header.length` (== `table.len()`) bytes; `take` stops it before the first entry
    // the scan rejected, so every entry it yields lies inside `table` and is at least its struct's size.
    for entry in madt.entries().take(scan.yielded) {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = { e.flags };
                let apic = LocalApic {
                    processor_uid: u32::from(e.processor_id),
                    apic_id: u32::from(e.apic_id),
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                    x2apic: false,
                };
                push_or_report(&mut info.local_apics, apic, EntryKind::LocalApics, &mut full, out);
            }
            MadtEntry::LocalX2Apic(e) => {
                let flags = { e.flags };
                let apic = LocalApic {
                    processor_uid: { e.processor_uid },
                    apic_id: { e.x2apic_id },
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                    x2apic: true,
                };
                push_or_report(&mut info.local_apics, apic, EntryKind::LocalApics, &mut full, out);
            }
            MadtEntry::IoApic(e) => {
                let io_apic = IoApic {
                    id: e.io_apic_id,
                    address: { e.io_apic_address },
                    gsi_base: { e.global_system_interrupt_base },
                };
                if let Some(first) = info.io_apics.iter().find(|a| a.gsi_base == io_apic.gsi_base) {
                    out.report(AcpiProblem::IoApicGsiCollision {
                        first_id: first.id,
                        second_id: io_apic.id,
                        gsi_base: io_apic.gsi_base,
                    });
                } else if info.io_apics.len() >= MAX_IO_APICS {
                    if full & EntryKind::IoApics.bit() == 0 {
                        full |= EntryKind::IoApics.bit();
                        let capacity = u16::try_from(MAX_IO_APICS).unwrap_or(u16::MAX);
                        out.report(AcpiProblem::TooManyEntries { kind: EntryKind::IoApics, capacity });
                    }
                } else {
                    push_or_report(&mut info.io_apics, io_apic, EntryKind::IoApics, &mut full, out);
                }
            }
            MadtEntry::InterruptSourceOverride(e) => {
                let flags = { e.flags };
                match decode_inti_flags(flags) {
                    Some((polarity, trigger)) => {
                        let iso = InterruptSourceOverride {
                            bus: e.bus,
                            source_irq: e.irq,
                            gsi: { e.global_system_interrupt },
                            polarity,
                            trigger,
                        };
                        push_or_report(&mut info.overrides, iso, EntryKind::Overrides, &mut full, out);
                    }
                    None => report_entry(out, table, e, 0x2, MadtEntryFault::ReservedFlags(flags)),
                }
            }
            MadtEntry::NmiSource(e) => {
                let flags = { e.flags };
                match decode_inti_flags(flags) {
                    Some((polarity, trigger)) => {
                        let nmi = NmiSource { gsi: { e.global_system_interrupt }, polarity, trigger };
                        push_or_report(&mut info.nmi_sources, nmi, EntryKind::NmiSources, &mut full, out);
                    }
                    None => report_entry(out, table, e, 0x3, MadtEntryFault::ReservedFlags(flags)),
                }
            }
            MadtEntry::LocalApicNmi(e) => {
                let uid = Some(u32::from(e.processor_id)).filter(|&u| u != 0xFF);
                local_nmi(&mut info, out, &mut full, table, e, 0x4, uid, e.flags, e.nmi_line);
            }
            MadtEntry::X2ApicNmi(e) => {
                let uid = Some(e.processor_uid).filter(|&u| u != u32::MAX);
                local_nmi(&mut info, out, &mut full, table, e, 0xA, uid, e.flags, e.nmi_line);
            }
            MadtEntry::LocalApicAddressOverride(e) => info.local_apic_address = e.local_apic_address,
            // SAPIC, GIC and wakeup entries say nothing about x86 APIC interrupt routing.
            _ => {}
        }
    }
    if let Some((offset, entry_type, fault)) = scan.fault {
        out.report(AcpiProblem::BadMadtEntry { offset: u32::try_from(offset).unwrap_or(u32::MAX), entry_type, fault });
    }
    Some(info)
}

fn report_entry<T>(out: &mut PlatformTables, table: &[u8], entry: &T, entry_type: u8, fault: MadtEntryFault) {
    out.report(AcpiProblem::BadMadtEntry { offset: offset_in(table, entry), entry_type, fault });
}

/// Records a local APIC / x2APIC NMI entry.
#[allow(clippy::too_many_arguments)]
fn local_nmi<T>(
    info: &mut MadtInfo,
    out: &mut PlatformTables,
    full: &mut u8,
    table: &[u8],
    entry: &T,
    entry_type: u8,
    processor_uid: Option<u32>,
    flags: u16,
    lint: u8,
) {
    let line = match lint {
        0 => LocalInterruptLine::Lint0,
        1 => LocalInterruptLine::Lint1,
        _ => {
            report_entry(out, table, entry, entry_type, MadtEntryFault::BadLintNumber(lint));
            return;
        }
    };
    let Some((polarity, trigger)) = decode_inti_flags(flags) else {
        report_entry(out, table, entry, entry_type, MadtEntryFault::ReservedFlags(flags));
        return;
    };
    let nmi = LocalApicNmi { processor_uid, line, polarity, trigger };
    push_or_report(&mut info.local_apic_nmis, nmi, EntryKind::LocalApicNmis, full, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;
    use crate::platform::acpi::*;

    fn parse_madt_body(body: MadtBody) -> PlatformTables {
        let (img, _) = build(&[body.table(), mcfg(&[QEMU_MCFG])], false);
        img.parse()
    }

    #[test]
    fn a_zero_length_madt_entry_stops_the_walk_and_keeps_what_came_before() {
        let t = parse_madt_body(qemu_madt().raw(&[0, 0, 0, 0, 0, 0, 0, 0]).lapic(9, 9, 1));
        let offset = 44 + 2 * 8 + 12 + 5 * 10 + 6;
        assert_eq!(
            problems(&t),
            [AcpiProblem::BadMadtEntry { offset, entry_type: 0, fault: MadtEntryFault::TooShort }]
        );
        let madt = t.madt.unwrap();
        assert_eq!(madt.local_apics.len(), 2, "entries after the bad one are not trusted");
        assert_eq!(madt.overrides.len(), 5);
        assert_eq!(madt.local_apic_nmis.len(), 1);
    }

    #[test]
    fn a_madt_entry_running_past_the_table_end_stops_the_walk() {
        // An IOAPIC entry claiming 12 bytes with only 6 left, and a lone trailing type byte.
        let t = parse_madt_body(MadtBody::default().lapic(0, 0, 1).raw(&[1, 12, 0, 0, 0, 0]));
        assert_eq!(
            problems(&t),
            [AcpiProblem::BadMadtEntry { offset: 52, entry_type: 1, fault: MadtEntryFault::PastTableEnd }]
        );
        assert_eq!(t.madt.as_ref().unwrap().local_apics.len(), 1);
        assert!(t.madt.unwrap().io_apics.is_empty());

        let t = parse_madt_body(MadtBody::default().lapic(0, 0, 1).raw(&[0x80]));
        assert_eq!(
            problems(&t),
            [AcpiProblem::BadMadtEntry { offset: 52, entry_type: 0x80, fault: MadtEntryFault::PastTableEnd }]
        );
    }

    #[test]
    fn a_madt_entry_shorter_than_its_type_is_rejected() {
        // A LAPIC entry of length 4 (needs 8), followed by enough bytes that it is not past the end.
        let t = parse_madt_body(MadtBody::default().raw(&[0, 4, 0, 0]).lapic(1, 1, 1));
        assert_eq!(
            problems(&t),
            [AcpiProblem::BadMadtEntry { offset: 44, entry_type: 0, fault: MadtEntryFault::TooShort }]
        );
        assert!(t.madt.unwrap().local_apics.is_empty());
    }

    #[test]
    fn unknown_madt_entry_types_are_skipped_silently() {
        let body = MadtBody::default()
            .lapic(0, 0, 1)
            .raw(&[0x14, 4, 0xAA, 0xBB]) // reserved type
            .raw(&[0x80, 2]) // OEM type, minimal length
            .raw(&[0xFF, 7, 1, 2, 3, 4, 5])
            .ioapic(0, 0xFEC0_0000, 0)
            .iso(0, 0, 2, 0);
        let t = parse_madt_body(body);
        assert!(t.is_clean(), "{:?}", t.problems);
        let madt = t.madt.unwrap();
        assert_eq!((madt.local_apics.len(), madt.io_apics.len(), madt.overrides.len()), (1, 1, 1));
    }

    #[test]
    fn reserved_inti_flags_and_bad_lint_numbers_skip_only_that_entry() {
        let body = MadtBody::default()
            .iso(0, 9, 9, 0b0010) // reserved polarity
            .iso(0, 10, 10, 0b1000) // reserved trigger
            .lapic_nmi(0xFF, 0, 2) // LINT2
            .iso(0, 11, 11, 0x000D);
        let t = parse_madt_body(body);
        let bad = |offset, entry_type, fault| AcpiProblem::BadMadtEntry { offset, entry_type, fault };
        assert_eq!(
            problems(&t),
            [
                bad(44, 2, MadtEntryFault::ReservedFlags(0b0010)),
                bad(54, 2, MadtEntryFault::ReservedFlags(0b1000)),
                bad(64, 4, MadtEntryFault::BadLintNumber(2)),
            ]
        );
        let madt = t.madt.unwrap();
        assert_eq!(madt.overrides.len(), 1);
        assert_eq!(madt.overrides[0].source_irq, 11);
        assert!(madt.local_apic_nmis.is_empty());
    }

    #[test]
    fn every_io_apic_id_fits_and_only_more_entries_than_ids_are_reported() {
        // 8 were kept once: the GSIs of the ninth I/O APIC on became false INTx failures.
        let ioapics = |n: u32| {
            (0..n).fold(MadtBody::default(), |b, i| b.ioapic(i as u8, 0xFEC0_0000 + i * 0x1000, i * 24))
        };
        let t = parse_madt_body(ioapics(256));
        assert!(problems(&t).is_empty(), "{:?}", problems(&t));
        let madt = t.madt.unwrap();
        assert_eq!(madt.io_apics.len(), 256);
        assert_eq!(madt.io_apics[40].gsi_base, 40 * 24);
        // More entries than 8-bit IDs: some ID repeats, reported, the first ones kept.
        let t = parse_madt_body(ioapics(257));
        assert_eq!(
            problems(&t),
            [AcpiProblem::TooManyEntries { kind: EntryKind::IoApics, capacity: MAX_IO_APICS as u16 }]
        );
        assert_eq!(t.madt.unwrap().io_apics.len(), MAX_IO_APICS);
    }

    #[test]
    fn a_dell_r820_madt_keeps_all_96_cpus_and_their_nmi_entries() {
        // 96 local APIC entries, 80 enabled and 16 neither enabled nor online-capable (a Dell PowerEdge R820
        // with 4 of 8-core parts lists 96), a local APIC NMI entry per CPU, 8 NMI sources. 64 local APICs,
        // 64 local APIC NMIs and 4 NMI sources were kept once.
        let mut body = MadtBody::default();
        for i in 0..96u8 {
            body = body.lapic(i, i, u32::from(i < 80));
        }
        for i in 0..96u8 {
            body = body.lapic_nmi(i, 0x000D, 1);
        }
        for i in 0..8u32 {
            body = body.nmi_source(0x000D, 100 + i);
        }
        let t = parse_madt_body(body.ioapic(0, 0xFEC0_0000, 0));
        assert!(t.is_clean(), "{:?}", t.problems);
        let madt = t.madt.unwrap();
        assert_eq!(madt.local_apics.len(), 96);
        assert_eq!(madt.local_apics.iter().filter(|a| a.enabled).count(), 80);
        assert_eq!(madt.local_apics[95], LocalApic { processor_uid: 95, apic_id: 95, enabled: false, online_capable: false, x2apic: false });
        assert_eq!(madt.local_apic_nmis.len(), 96);
        assert_eq!(madt.local_apic_nmis[95].processor_uid, Some(95));
        assert_eq!(madt.nmi_sources.len(), 8);
        assert_eq!(madt.nmi_sources[7].gsi, 107);
        assert_eq!(madt.io_apics.len(), 1);
    }

    #[test]
    fn a_large_server_madt_keeps_every_x2apic_entry_and_its_flags() {
        // 448 x2APIC entries (x2APIC ids above 255, as on 2-socket 224-thread parts), every third
        // online-capable but not enabled, each with its x2APIC NMI entry.
        let mut body = MadtBody::default();
        for i in 0..448u32 {
            let flags = if i % 3 == 2 { 0b10 } else { 0b01 };
            body = body.x2apic(0x100 + i, flags, i);
        }
        for i in 0..448u32 {
            body = body.x2apic_nmi(0x0005, i, 1);
        }
        let (img, _) = build(&[body.table(), mcfg(&[QEMU_MCFG])], false);
        assert!(img.next < END, "the synthetic MADT fits the test image");
        let t = img.parse();
        assert!(t.is_clean(), "{:?}", t.problems);
        let madt = t.madt.unwrap();
        assert_eq!(madt.local_apics.len(), 448);
        assert!(madt.local_apics.iter().all(|a| a.x2apic));
        assert_eq!(madt.local_apics.iter().filter(|a| a.enabled).count(), 299);
        assert_eq!(madt.local_apics.iter().filter(|a| a.online_capable).count(), 149);
        assert_eq!(madt.local_apics[447], LocalApic { processor_uid: 447, apic_id: 0x100 + 447, enabled: true, online_capable: false, x2apic: true });
        assert_eq!(madt.local_apic_nmis.len(), 448);
        assert_eq!(madt.local_apic_nmis[447].processor_uid, Some(447));
    }

    #[test]
    fn a_madt_the_heap_cannot_hold_is_a_capacity_problem_once_per_list() {
        let mut body = MadtBody::default();
        for i in 0..100u8 {
            body = body.lapic(i, i, 1).lapic_nmi(i, 0, 1);
        }
        let t = with_heap_limit(70, || parse_madt_body(body));
        let p = problems(&t);
        assert_eq!(
            p,
            [
                AcpiProblem::NoHeap { kind: EntryKind::LocalApics, kept: 70 },
                AcpiProblem::NoHeap { kind: EntryKind::LocalApicNmis, kept: 70 }
            ]
        );
        assert!(p.iter().all(AcpiProblem::is_capacity), "a limit met fails the run");
        assert_eq!(p[0].to_string(), "no heap left for more than 70 local APICs; the rest were dropped");
        let madt = t.madt.unwrap();
        assert_eq!((madt.local_apics.len(), madt.local_apic_nmis.len()), (70, 70));
    }

    #[test]
    fn an_io_apic_based_inside_an_earlier_ones_range_is_a_typed_problem() {
        // The later I/O APIC starts lower and its 24 pins cover the first one's base.
        let t = parse_madt_body(MadtBody::default().ioapic(4, 0xFEC0_0000, 8).ioapic(5, 0xFEC0_1000, 0));
        assert!(t.is_clean(), "distinct bases pass the table parse: {:?}", t.problems);
        let madt = t.madt.unwrap();
        let p = madt.gsi_overlap(|_| 24).expect("0..=23 covers 8");
        assert_eq!(p, AcpiProblem::IoApicGsiOverlap { first_id: 4, first_gsis: (8, 31), second_id: 5, second_gsis: (0, 23) });
        assert_eq!(p.to_string(), "I/O APICs 4 (GSIs 8..=31) and 5 (GSIs 0..=23) overlap; shared GSIs go to 4");
        assert_eq!(madt.io_apic_for_gsi(10, |_| 24).map(|a| a.id), Some(4), "the first in table order wins");
        // Redirection counts at the top of the GSI space do not overflow: the last GSI is clipped to u32::MAX.
        let t = parse_madt_body(MadtBody::default().ioapic(0, 0xFEC0_0000, u32::MAX - 1).ioapic(1, 0xFEC0_1000, u32::MAX));
        let p = t.madt.unwrap().gsi_overlap(|_| 240);
        assert_eq!(
            p,
            Some(AcpiProblem::IoApicGsiOverlap {
                first_id: 0,
                first_gsis: (u32::MAX - 1, u32::MAX),
                second_id: 1,
                second_gsis: (u32::MAX, u32::MAX)
            })
        );
    }

    #[test]
    fn io_apics_whose_gsi_ranges_collide_are_reported() {
        let body = MadtBody::default().ioapic(0, 0xFEC0_0000, 0).ioapic(1, 0xFEC0_1000, 0).ioapic(2, 0xFEC0_2000, 16);
        let t = parse_madt_body(body);
        assert_eq!(problems(&t), [AcpiProblem::IoApicGsiCollision { first_id: 0, second_id: 1, gsi_base: 0 }]);
        let madt = t.madt.unwrap();
        assert_eq!(madt.io_apics.iter().map(|a| a.id).collect::<StdVec<_>>(), [0, 2]);

        // With the redirection counts from the version registers: 24 pins at GSI 0 run into the one at 16.
        let (a, b) = madt.find_gsi_collision(|_| 24).expect("0..24 overlaps 16..40");
        assert_eq!((a.id, b.id), (0, 2));
        assert_eq!(madt.find_gsi_collision(|_| 16), None);
        assert_eq!(
            madt.gsi_overlap(|_| 24),
            Some(AcpiProblem::IoApicGsiOverlap { first_id: 0, first_gsis: (0, 23), second_id: 2, second_gsis: (16, 39) })
        );
        assert_eq!(madt.gsi_overlap(|_| 16), None, "0..=15 and 16..=31 touch but do not overlap");
        assert_eq!(madt.io_apic_for_gsi(17, |_| 16).map(|a| a.id), Some(2));
        assert_eq!(madt.io_apic_for_gsi(32, |_| 16), None);
    }

    #[test]
    fn isa_irqs_route_through_overrides() {
        let (img, _) = qemu_like(false);
        let madt = img.parse().madt.unwrap();
        let route = |gsi, polarity, trigger| IsaIrqRoute { gsi, polarity, trigger };
        assert_eq!(madt.isa_irq_route(0), route(2, Polarity::Conforming, TriggerMode::Conforming));
        assert_eq!(madt.isa_irq_route(9), route(9, Polarity::ActiveHigh, TriggerMode::Level));
        assert_eq!(madt.isa_irq_route(4), route(4, Polarity::Conforming, TriggerMode::Conforming));
    }

    #[test]
    fn inti_flags_decode() {
        assert_eq!(decode_inti_flags(0), Some((Polarity::Conforming, TriggerMode::Conforming)));
        assert_eq!(decode_inti_flags(0x000D), Some((Polarity::ActiveHigh, TriggerMode::Level)));
        assert_eq!(decode_inti_flags(0x0007), Some((Polarity::ActiveLow, TriggerMode::Edge)));
        assert_eq!(decode_inti_flags(0x0002), None);
        assert_eq!(decode_inti_flags(0x0008), None);
    }

    #[test]
    fn random_madt_entries_never_panic() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let types = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xA, 0xB, 0xF, 0x10, 0x11, 0x14, 0x80, 0xFF];
        for _ in 0..if cfg!(miri) { 100 } else { 3000 } {
            let mut body = MadtBody::default();
            for _ in 0..rng.below(12) {
                let len = rng.below(24) as usize;
                let mut e: StdVec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if let Some(b) = e.get_mut(0) {
                    *b = types[rng.below(types.len() as u64) as usize];
                }
                if rng.below(3) != 0 {
                    if let Some(b) = e.get_mut(1) {
                        *b = len as u8;
                    }
                }
                body = body.raw(&e);
            }
            let t = parse_madt_body(body);
            assert!(t.madt.is_some() || !t.problems.is_empty());
        }
    }
}
