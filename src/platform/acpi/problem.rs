//! What [`parse`](super::parse) reports about tables it could not trust, each naming what was left out.

use core::fmt;

use super::{RootTableKind, Signature};

/// A list in [`PlatformTables`](super::PlatformTables) or [`MadtInfo`](super::MadtInfo). Each lives on the heap and
/// holds every entry the table has; the heap is its limit (and [`MAX_IO_APICS`](super::MAX_IO_APICS), one per
/// I/O APIC ID, for the I/O APICs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// [`PlatformTables::tables`](super::PlatformTables::tables).
    Tables,
    /// [`MadtInfo::local_apics`](super::MadtInfo::local_apics).
    LocalApics,
    /// [`MadtInfo::io_apics`](super::MadtInfo::io_apics).
    IoApics,
    /// [`MadtInfo::overrides`](super::MadtInfo::overrides).
    Overrides,
    /// [`MadtInfo::nmi_sources`](super::MadtInfo::nmi_sources).
    NmiSources,
    /// [`MadtInfo::local_apic_nmis`](super::MadtInfo::local_apic_nmis).
    LocalApicNmis,
    /// [`PlatformTables::mcfg`](super::PlatformTables::mcfg).
    McfgEntries,
}

impl EntryKind {
    pub(super) const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tables => "tables",
            Self::LocalApics => "local APICs",
            Self::IoApics => "I/O APICs",
            Self::Overrides => "interrupt source overrides",
            Self::NmiSources => "NMI sources",
            Self::LocalApicNmis => "local APIC NMI entries",
            Self::McfgEntries => "MCFG entries",
        })
    }
}

/// Why a MADT entry was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtEntryFault {
    /// Its length is below 2, or below the size of its entry type.
    TooShort,
    /// It runs past the end of the table.
    PastTableEnd,
    /// Its MPS INTI flags use a reserved polarity or trigger encoding.
    ReservedFlags(u16),
    /// A local APIC NMI names a LINT pin other than 0 or 1.
    BadLintNumber(u8),
}

/// Something wrong with the tables. Each names what was left out because of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiProblem {
    /// No RSDP address was given (0). Nothing was parsed.
    RsdpNotFound,
    /// The RSDP at `address` is not in readable memory. Nothing was parsed.
    RsdpUnreadable {
        /// Physical address given.
        address: u64,
    },
    /// No "RSD PTR " signature at `address`. Nothing was parsed.
    BadRsdpSignature {
        /// Physical address given.
        address: u64,
    },
    /// The checksum over the first 20 bytes of the RSDP is wrong. Nothing was parsed.
    BadRsdpChecksum {
        /// Physical address of the RSDP.
        address: u64,
    },
    /// A revision >= 2 RSDP has a `Length` below 36, above 4096, or reaching outside memory. The XSDT address
    /// was not used.
    BadRsdpLength {
        /// Physical address of the RSDP.
        address: u64,
        /// Its `Length` field.
        length: u32,
    },
    /// The extended checksum of a revision >= 2 RSDP is wrong. The XSDT address was not used.
    BadRsdpExtendedChecksum {
        /// Physical address of the RSDP.
        address: u64,
    },
    /// Neither a usable XSDT nor an RSDT: no tables were found.
    NoRootTable,
    /// The RSDT or XSDT the RSDP points to is null or not readable.
    RootTableUnreadable {
        /// Which root table.
        kind: RootTableKind,
        /// Its address from the RSDP.
        address: u64,
    },
    /// An RSDT/XSDT entry (or the FADT's DSDT pointer: `parent` FACP, `index` 0) is null or points outside
    /// readable memory. That entry was skipped.
    BadTableAddress {
        /// RSDT or XSDT.
        parent: Signature,
        /// Index of the entry in the root table.
        index: u16,
        /// The address it holds.
        address: u64,
    },
    /// A table's `Length` is smaller than its fixed part. The table was skipped.
    TableTooShort {
        /// The table's signature.
        signature: Signature,
        /// Its address.
        address: u64,
        /// Its `Length` field.
        length: u32,
    },
    /// A table's `Length` reaches outside readable memory. The table was skipped.
    TableOutsideMemory {
        /// The table's signature.
        signature: Signature,
        /// Its address.
        address: u64,
        /// Its `Length` field.
        length: u32,
    },
    /// A table has an unexpected or non-ASCII signature. It was skipped.
    BadSdtSignature {
        /// What the pointer to it promised, if anything.
        expected: Option<Signature>,
        /// What is there.
        found: Signature,
        /// Its address.
        address: u64,
    },
    /// A table's OEM id or OEM table id is not ASCII (rejected by `acpi`'s header check). It was skipped.
    BadSdtOemId {
        /// The table's signature.
        signature: Signature,
        /// Its address.
        address: u64,
    },
    /// A table's checksum is wrong. It was skipped.
    BadSdtChecksum {
        /// The table's signature.
        signature: Signature,
        /// Its address.
        address: u64,
    },
    /// No table with this signature is listed (expected for MCFG on the i440fx `pc` machine).
    MissingTable {
        /// The signature looked for.
        signature: Signature,
    },
    /// A second valid table with this signature; only the first is used.
    DuplicateTable {
        /// The signature.
        signature: Signature,
        /// Address of the ignored copy.
        address: u64,
    },
    /// A table ends in the middle of a fixed-size entry (RSDT/XSDT pointer, MCFG allocation). The partial entry
    /// was ignored; the ones before it were used.
    TruncatedEntry {
        /// The table's signature.
        signature: Signature,
        /// Offset of the partial entry from the start of the table.
        offset: u32,
    },
    /// A malformed MADT entry. For `TooShort` and `PastTableEnd` the walk stops there (entries before it are
    /// kept); for the other faults only that entry is skipped.
    BadMadtEntry {
        /// Offset of the entry from the start of the MADT.
        offset: u32,
        /// Its type byte.
        entry_type: u8,
        /// What is wrong with it.
        fault: MadtEntryFault,
    },
    /// More entries of this kind than the list's architectural capacity; further ones were dropped. Reported
    /// once per kind; a limit met (see [`AcpiProblem::is_capacity`]).
    TooManyEntries {
        /// Which list.
        kind: EntryKind,
        /// Its capacity.
        capacity: u16,
    },
    /// The heap had no room for another entry of this kind; it and further ones were dropped. Reported once
    /// per kind; a limit met (see [`AcpiProblem::is_capacity`]).
    NoHeap {
        /// Which list.
        kind: EntryKind,
        /// How many entries it holds.
        kept: u32,
    },
    /// Two I/O APICs claim the same first GSI. The second was dropped.
    IoApicGsiCollision {
        /// Id of the I/O APIC kept.
        first_id: u8,
        /// Id of the I/O APIC dropped.
        second_id: u8,
        /// The shared GSI base.
        gsi_base: u32,
    },
    /// Two I/O APICs' GSI ranges overlap: one's base lies inside the other's range, known once their version
    /// registers give each one's number of redirection entries (found by [`MadtInfo::gsi_overlap`](super::MadtInfo::gsi_overlap), not by
    /// [`parse`](super::parse), which only rejects equal bases). GSIs in both ranges go to the first in table order.
    IoApicGsiOverlap {
        /// Id of the first I/O APIC in table order.
        first_id: u8,
        /// Its GSIs, `first ..= last`.
        first_gsis: (u32, u32),
        /// Id of the other.
        second_id: u8,
        /// Its GSIs, `first ..= last`.
        second_gsis: (u32, u32),
    },
    /// An MCFG allocation with `bus_start > bus_end`, a zero base or a window past the 64-bit space. Dropped.
    BadMcfgEntry {
        /// Index of the allocation in the MCFG.
        index: u16,
    },
    /// Two MCFG allocations overlap (same segment and buses, or same physical bytes). The second was dropped.
    OverlappingMcfg {
        /// Index of the allocation kept.
        first: u16,
        /// Index of the allocation dropped.
        second: u16,
    },
}

impl AcpiProblem {
    /// A limit of msifw's own (its heap, a list's capacity) kept entries of a table out: the run cannot pass
    /// (`app` reports it as a `capacity` problem and fails the run).
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::TooManyEntries { .. } | Self::NoHeap { .. })
    }
}

impl fmt::Display for AcpiProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RsdpNotFound => f.write_str("no RSDP address given"),
            Self::RsdpUnreadable { address } => write!(f, "RSDP at {address:#x} is outside readable memory"),
            Self::BadRsdpSignature { address } => write!(f, "no \"RSD PTR \" signature at {address:#x}"),
            Self::BadRsdpChecksum { address } => write!(f, "RSDP at {address:#x} has a bad checksum"),
            Self::BadRsdpLength { address, length } => {
                write!(f, "RSDP at {address:#x} has a bad length {length}; XSDT not used")
            }
            Self::BadRsdpExtendedChecksum { address } => {
                write!(f, "RSDP at {address:#x} has a bad extended checksum; XSDT not used")
            }
            Self::NoRootTable => f.write_str("no usable RSDT or XSDT"),
            Self::RootTableUnreadable { kind, address } => {
                let name = match kind {
                    RootTableKind::Rsdt => "RSDT",
                    RootTableKind::Xsdt => "XSDT",
                };
                write!(f, "{name} address {address:#x} is null or outside readable memory")
            }
            Self::BadTableAddress { parent, index, address } => {
                write!(f, "{parent} entry {index} ({address:#x}) is null or outside readable memory")
            }
            Self::TableTooShort { signature, address, length } => {
                write!(f, "{signature} at {address:#x}: length {length} is shorter than its fixed part")
            }
            Self::TableOutsideMemory { signature, address, length } => {
                write!(f, "{signature} at {address:#x}: length {length} reaches outside readable memory")
            }
            Self::BadSdtSignature { expected: Some(expected), found, address } => {
                write!(f, "expected {expected} at {address:#x}, found \"{found}\"")
            }
            Self::BadSdtSignature { expected: None, found, address } => {
                write!(f, "table at {address:#x} has an invalid signature \"{found}\"")
            }
            Self::BadSdtOemId { signature, address } => {
                write!(f, "{signature} at {address:#x} has a non-ASCII OEM id")
            }
            Self::BadSdtChecksum { signature, address } => {
                write!(f, "{signature} at {address:#x} has a bad checksum")
            }
            Self::MissingTable { signature } => write!(f, "no {signature} table"),
            Self::DuplicateTable { signature, address } => {
                write!(f, "second {signature} at {address:#x} ignored")
            }
            Self::TruncatedEntry { signature, offset } => {
                write!(f, "{signature} ends inside the entry at offset {offset}")
            }
            Self::BadMadtEntry { offset, entry_type, fault } => {
                write!(f, "MADT entry type {entry_type:#x} at offset {offset}: ")?;
                match fault {
                    MadtEntryFault::TooShort => f.write_str("length too short"),
                    MadtEntryFault::PastTableEnd => f.write_str("runs past the table end"),
                    MadtEntryFault::ReservedFlags(flags) => write!(f, "reserved INTI flags {flags:#06x}"),
                    MadtEntryFault::BadLintNumber(lint) => write!(f, "LINT{lint} does not exist"),
                }
            }
            Self::TooManyEntries { kind, capacity } => {
                write!(f, "more than {capacity} {kind}; the rest were dropped")
            }
            Self::NoHeap { kind, kept } => {
                write!(f, "no heap left for more than {kept} {kind}; the rest were dropped")
            }
            Self::IoApicGsiCollision { first_id, second_id, gsi_base } => {
                write!(f, "I/O APICs {first_id} and {second_id} both start at GSI {gsi_base}; {second_id} dropped")
            }
            Self::IoApicGsiOverlap { first_id, first_gsis: (a0, a1), second_id, second_gsis: (b0, b1) } => write!(
                f,
                "I/O APICs {first_id} (GSIs {a0}..={a1}) and {second_id} (GSIs {b0}..={b1}) overlap; \
                 shared GSIs go to {first_id}"
            ),
            Self::BadMcfgEntry { index } => write!(f, "MCFG entry {index} has an invalid bus range or base"),
            Self::OverlappingMcfg { first, second } => {
                write!(f, "MCFG entries {first} and {second} overlap; {second} dropped")
            }
        }
    }
}

#[cfg(target_os = "none")]
impl defmt::Format for AcpiProblem {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{}", defmt::Display2Format(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;
    use crate::platform::acpi::*;

    #[test]
    fn problems_display_as_actionable_text() {
        let s = Signature::MADT;
        let cases = [
            (AcpiProblem::RsdpNotFound, "no RSDP address given"),
            (AcpiProblem::BadRsdpChecksum { address: 0xF59E0 }, "RSDP at 0xf59e0 has a bad checksum"),
            (AcpiProblem::BadSdtChecksum { signature: s, address: 0x100 }, "APIC at 0x100 has a bad checksum"),
            (
                AcpiProblem::BadSdtSignature { expected: None, found: Signature([0xFF, b'A', 0, b'B']), address: 1 },
                "table at 0x1 has an invalid signature \"?A?B\"",
            ),
            (
                AcpiProblem::BadMadtEntry { offset: 44, entry_type: 0, fault: MadtEntryFault::TooShort },
                "MADT entry type 0x0 at offset 44: length too short",
            ),
            (
                AcpiProblem::TooManyEntries { kind: EntryKind::IoApics, capacity: 8 },
                "more than 8 I/O APICs; the rest were dropped",
            ),
            (
                AcpiProblem::NoHeap { kind: EntryKind::LocalApics, kept: 4096 },
                "no heap left for more than 4096 local APICs; the rest were dropped",
            ),
            (AcpiProblem::MissingTable { signature: Signature::MCFG }, "no MCFG table"),
        ];
        for (problem, text) in cases {
            assert_eq!(problem.to_string(), text);
        }
        // Every variant formats to something.
        let all = [
            AcpiProblem::RsdpUnreadable { address: 1 },
            AcpiProblem::BadRsdpSignature { address: 1 },
            AcpiProblem::BadRsdpLength { address: 1, length: 2 },
            AcpiProblem::BadRsdpExtendedChecksum { address: 1 },
            AcpiProblem::NoRootTable,
            AcpiProblem::RootTableUnreadable { kind: RootTableKind::Xsdt, address: 1 },
            AcpiProblem::BadTableAddress { parent: Signature::RSDT, index: 1, address: 2 },
            AcpiProblem::TableTooShort { signature: s, address: 1, length: 2 },
            AcpiProblem::TableOutsideMemory { signature: s, address: 1, length: 2 },
            AcpiProblem::BadSdtSignature { expected: Some(s), found: s, address: 1 },
            AcpiProblem::BadSdtOemId { signature: s, address: 1 },
            AcpiProblem::DuplicateTable { signature: s, address: 1 },
            AcpiProblem::TruncatedEntry { signature: s, offset: 1 },
            AcpiProblem::BadMadtEntry { offset: 1, entry_type: 2, fault: MadtEntryFault::PastTableEnd },
            AcpiProblem::BadMadtEntry { offset: 1, entry_type: 2, fault: MadtEntryFault::ReservedFlags(2) },
            AcpiProblem::BadMadtEntry { offset: 1, entry_type: 4, fault: MadtEntryFault::BadLintNumber(3) },
            AcpiProblem::IoApicGsiCollision { first_id: 1, second_id: 2, gsi_base: 0 },
            AcpiProblem::IoApicGsiOverlap { first_id: 1, first_gsis: (0, 23), second_id: 2, second_gsis: (16, 39) },
            AcpiProblem::BadMcfgEntry { index: 1 },
            AcpiProblem::OverlappingMcfg { first: 0, second: 1 },
        ];
        for p in all {
            assert!(!p.to_string().is_empty());
            assert!(!p.is_capacity(), "{p}: a table fault, not a limit of msifw's");
        }
        assert!(AcpiProblem::TooManyEntries { kind: EntryKind::IoApics, capacity: 256 }.is_capacity());
        assert!(AcpiProblem::NoHeap { kind: EntryKind::Tables, kept: 0 }.is_capacity());
        assert_eq!(format!("{:?}", Signature::MCFG), "\"MCFG\"");
    }
}
