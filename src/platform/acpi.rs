//! ACPI static tables: RSDP -> RSDT/XSDT -> MADT, MCFG (and where the DSDT is).
//!
//! [`parse`] walks the tables the firmware was handed and returns a [`PlatformTables`]: what it could trust,
//! plus a list of typed [`AcpiProblem`]s for what it could not. It never panics, whatever the bytes: every
//! table is bounds-checked against a [`PhysMemory`] and checksummed before any of its contents are used, and a
//! table that fails is reported and left out (a MADT with a bad checksum gives `madt: None` and a problem).
//!
//! ## What comes from the `acpi` crate, and what does not
//! The `acpi` 5.2 crate (without `alloc`) provides the table layouts ([`SdtHeader`], [`Madt`], [`Mcfg`] and
//! the MADT entry structs), header validation ([`SdtHeader::validate`]: signature, OEM ids, checksum), the MADT
//! entry iterator ([`Madt::entries`]) and the MCFG entry slice ([`Mcfg::entries`]). It is not safe on
//! untrusted input on its own, so this module checks every precondition before handing memory to it:
//! - `AcpiHandler::map_physical_region` cannot fail, so a handler cannot refuse a null or out-of-range address;
//!   `AcpiTables::from_rsdp`/`find_table` would map whatever an RSDT entry says. The walk over the RSDP and the
//!   root table is therefore done here, through the fallible [`PhysMemory`].
//! - `Rsdp::validate` reads `length` bytes for a v2 RSDP without bounds, and skips the ACPI 1.0 checksum.
//! - `SdtHeader::validate` and `Mcfg::entries` subtract the header size from `length` without checking it.
//! - `MadtEntryIter` loops forever on a zero-length entry and reads past the table on an over-long one.
//! - `find_table` reports a table with a bad checksum as missing, and `Signature`'s `Display` unwraps UTF-8.
//!
//! `acpi` 5.2 reads the rest of a table through the `&SdtHeader`/`&Madt`/`&Mcfg` it is given. Here those
//! references are always made from a slice covering the whole checked table, which is sound under the Tree
//! Borrows model (Miri `-Zmiri-tree-borrows` passes every test); Miri's stricter Stacked Borrows model rejects
//! that pattern inside the crate itself, as it does for any user of it.
//!
//! Addresses are physical. On the firmware, [`IdentityMemory`] reads them directly (virtual == physical below
//! 4 GiB); host tests use [`SliceMemory`] over a byte image.
//!
//! References: ACPI 6.5 §5.2.5 (RSDP), §5.2.6 (SDT header), §5.2.7/§5.2.8 (RSDT/XSDT), §5.2.9 (FADT),
//! §5.2.12 (MADT); PCI Firmware Specification 3.3 §4.1.2 (MCFG).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

use core::{
    fmt,
    mem::{align_of, size_of},
    ops::Range,
    pin::Pin,
};

use acpi::{
    madt::{self, Madt, MadtEntry},
    mcfg::{self, Mcfg},
    sdt::SdtHeader,
    AcpiError,
};
use heapless::Vec;

/// Most local APICs and x2APICs kept from the MADT.
pub const MAX_LOCAL_APICS: usize = 64;
/// Most I/O APICs kept from the MADT: one per possible I/O APIC ID (8 bits), so no MADT with distinct IDs
/// can overflow it (a GSI of a dropped one would have been a false INTx FAIL).
pub const MAX_IO_APICS: usize = 256;
/// Most interrupt source overrides kept from the MADT: one per possible ISA source IRQ (8 bits).
pub const MAX_OVERRIDES: usize = 256;
/// Most NMI source entries kept from the MADT.
pub const MAX_NMI_SOURCES: usize = 4;
/// Most local APIC (and x2APIC) NMI entries kept from the MADT.
pub const MAX_LOCAL_APIC_NMIS: usize = 64;
/// Most MCFG allocations kept.
pub const MAX_MCFG_ENTRIES: usize = 8;
/// Most valid tables listed in [`PlatformTables::tables`].
pub const MAX_TABLES: usize = 32;
/// Most problems kept; further ones are only counted in [`PlatformTables::problems_dropped`].
pub const MAX_PROBLEMS: usize = 16;

/// Size of the ACPI 1.0 RSDP, covered by its first checksum.
const RSDP_V1_LEN: usize = 20;
/// Size of the ACPI 2.0+ RSDP, covered by the extended checksum.
const RSDP_V2_LEN: usize = 36;
/// Upper bound on a v2 RSDP `Length` we are willing to checksum (the spec fixes it at 36).
const RSDP_MAX_LEN: usize = 4096;
/// "RSD PTR " (with the trailing space).
const RSDP_SIGNATURE: [u8; 8] = *b"RSD PTR ";
/// Size of the common SDT header.
const SDT_HEADER_LEN: usize = 36;
/// Size of the MADT before its first entry (header, local APIC address, flags).
const MADT_FIXED_LEN: usize = size_of::<Madt>();
/// Size of the MCFG before its first allocation (header, 8 reserved bytes).
const MCFG_FIXED_LEN: usize = size_of::<Mcfg>();
/// Size of one MCFG allocation structure.
const MCFG_ENTRY_LEN: usize = size_of::<mcfg::McfgEntry>();
/// FADT offset of the 32-bit DSDT address (ACPI 6.5 Table 5.9).
const FADT_DSDT_OFFSET: usize = 40;
/// FADT offset of the 64-bit X_DSDT address, present from ACPI 2.0 (FADT length >= 148).
const FADT_X_DSDT_OFFSET: usize = 140;
/// Every PCI bus takes 1 MiB of ECAM space (32 devices x 8 functions x 4 KiB).
const ECAM_BUS_SHIFT: u32 = 20;

const _: () = assert!(size_of::<SdtHeader>() == SDT_HEADER_LEN);
const _: () = assert!(MADT_FIXED_LEN == 44);
const _: () = assert!(MCFG_FIXED_LEN == 44);
const _: () = assert!(MCFG_ENTRY_LEN == 16);

// ---------------------------------------------------------------------------------------------------------------
// Physical memory access
// ---------------------------------------------------------------------------------------------------------------

pub use crate::physmem::{IdentityMemory, PhysMemory, SliceMemory};

// ---------------------------------------------------------------------------------------------------------------
// Result types
// ---------------------------------------------------------------------------------------------------------------

/// A 4-byte table signature such as `APIC`. Displayed with non-printable bytes as `?`.
///
/// Hand-written instead of `acpi::sdt::Signature`: that type has no public constructor and its `Display`
/// unwraps UTF-8, which panics on garbage bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// Root System Description Table.
    pub const RSDT: Self = Self(*b"RSDT");
    /// Extended System Description Table.
    pub const XSDT: Self = Self(*b"XSDT");
    /// Multiple APIC Description Table.
    pub const MADT: Self = Self(*b"APIC");
    /// PCI Express memory-mapped configuration space table.
    pub const MCFG: Self = Self(*b"MCFG");
    /// Fixed ACPI Description Table.
    pub const FADT: Self = Self(*b"FACP");
    /// Differentiated System Description Table.
    pub const DSDT: Self = Self(*b"DSDT");
    /// IA-PC High Precision Event Timer Table.
    pub const HPET: Self = Self(*b"HPET");
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The 6-byte OEM id from the RSDP (`BOCHS ` on QEMU). Displayed with non-printable bytes as `?`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct OemId(pub [u8; 6]);

impl fmt::Display for OemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.0)
    }
}

impl fmt::Debug for OemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

fn write_ascii(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    use fmt::Write as _;
    for &b in bytes {
        f.write_char(if b == b' ' || b.is_ascii_graphic() { char::from(b) } else { '?' })?;
    }
    Ok(())
}

/// Which root table the table list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTableKind {
    /// RSDT: 32-bit table addresses (ACPI 1.0, and QEMU's SeaBIOS tables).
    Rsdt,
    /// XSDT: 64-bit table addresses (ACPI 2.0+).
    Xsdt,
}

/// A table that passed the length and checksum checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRef {
    /// Its signature.
    pub signature: Signature,
    /// Physical address of its header.
    pub address: u64,
    /// Length in bytes, header included.
    pub length: u32,
    /// The header's revision byte.
    pub revision: u8,
}

/// The root table that was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootTable {
    /// RSDT or XSDT.
    pub kind: RootTableKind,
    /// Where it is.
    pub table: TableRef,
}

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
    /// Local APICs and x2APICs, in table order (the first is normally the boot processor).
    pub local_apics: Vec<LocalApic, MAX_LOCAL_APICS>,
    /// I/O APICs, in table order.
    pub io_apics: Vec<IoApic, MAX_IO_APICS>,
    /// Interrupt source overrides, in table order.
    pub overrides: Vec<InterruptSourceOverride, MAX_OVERRIDES>,
    /// GSIs wired to NMI.
    pub nmi_sources: Vec<NmiSource, MAX_NMI_SOURCES>,
    /// Local APIC LINT pins wired to NMI.
    pub local_apic_nmis: Vec<LocalApicNmi, MAX_LOCAL_APIC_NMIS>,
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
    /// The MADT gives only each I/O APIC's first GSI; [`parse`] already rejects equal bases, and this completes
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
    /// The physical bytes this allocation decodes (1 MiB per bus). [`parse`] only keeps entries for which this
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

/// A fixed-capacity list in [`PlatformTables`] or [`MadtInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// [`PlatformTables::tables`].
    Tables,
    /// [`MadtInfo::local_apics`].
    LocalApics,
    /// [`MadtInfo::io_apics`].
    IoApics,
    /// [`MadtInfo::overrides`].
    Overrides,
    /// [`MadtInfo::nmi_sources`].
    NmiSources,
    /// [`MadtInfo::local_apic_nmis`].
    LocalApicNmis,
    /// [`PlatformTables::mcfg`].
    McfgEntries,
}

impl EntryKind {
    const fn bit(self) -> u8 {
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
    /// A list was full; further entries of this kind were dropped. Reported once per kind.
    TooManyEntries {
        /// Which list.
        kind: EntryKind,
        /// Its capacity.
        capacity: u16,
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
    /// registers give each one's number of redirection entries (found by [`MadtInfo::gsi_overlap`], not by
    /// [`parse`], which only rejects equal bases). GSIs in both ranges go to the first in table order.
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

/// Everything [`parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformTables {
    /// The RSDP address parsed.
    pub rsdp_address: u64,
    /// RSDP revision (0 for ACPI 1.0, 2 for ACPI 2.0+); 0 if the RSDP was unusable.
    pub rsdp_revision: u8,
    /// The OEM id from the RSDP.
    pub oem_id: OemId,
    /// The root table used, if any.
    pub root: Option<RootTable>,
    /// Every table the root lists that passed the length and checksum checks, in root order.
    pub tables: Vec<TableRef, MAX_TABLES>,
    /// The MADT, if one passed the checks.
    pub madt: Option<MadtInfo>,
    /// MCFG allocations that passed the checks (empty without an MCFG, e.g. on i440fx).
    pub mcfg: Vec<McfgEntry, MAX_MCFG_ENTRIES>,
    /// The DSDT, found through the FADT, if it passed the checks.
    pub dsdt: Option<TableRef>,
    /// The fixed-hardware I/O port blocks the FADT names (PM1a/PM1b event and control, PM2 control, PM
    /// timer, GPE0, GPE1), as (first port, length): ports a resource allocator must leave alone.
    pub fadt_io: Vec<(u16, u16), 8>,
    /// What was wrong, in the order found.
    pub problems: Vec<AcpiProblem, MAX_PROBLEMS>,
    /// Problems beyond [`MAX_PROBLEMS`], counted but not kept.
    pub problems_dropped: u16,
}

impl PlatformTables {
    fn empty(rsdp_address: u64) -> Self {
        Self {
            rsdp_address,
            rsdp_revision: 0,
            oem_id: OemId::default(),
            root: None,
            tables: Vec::new(),
            madt: None,
            mcfg: Vec::new(),
            dsdt: None,
            fadt_io: Vec::new(),
            problems: Vec::new(),
            problems_dropped: 0,
        }
    }

    /// No problems at all.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_dropped == 0
    }

    /// The valid table with this signature, if listed.
    pub fn table(&self, signature: Signature) -> Option<&TableRef> {
        self.tables.iter().find(|t| t.signature == signature)
    }

    /// The root table kind used (`None` if no root table was usable).
    pub fn root_kind(&self) -> Option<RootTableKind> {
        self.root.map(|r| r.kind)
    }

    fn report(&mut self, problem: AcpiProblem) {
        if self.problems.push(problem).is_err() {
            self.problems_dropped = self.problems_dropped.saturating_add(1);
        }
    }
}

/// Why the HPET table's event timer block cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpetTableError {
    /// The table (length given) ends before its Base Address (IA-PC HPET 1.0a Table 3: 56 bytes).
    TooShort(u32),
    /// The table could no longer be read.
    Unreadable,
    /// The Base Address is not in system memory space (address space ID given).
    NotMemory(u8),
    /// The Base Address is zero.
    NoAddress,
}

impl core::fmt::Display for HpetTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort(len) => write!(f, "HPET table of {len} bytes ends before its base address (56 needed)"),
            Self::Unreadable => write!(f, "HPET table unreadable"),
            Self::NotMemory(id) => write!(f, "HPET base address in address space {id}, not system memory"),
            Self::NoAddress => write!(f, "HPET base address is zero"),
        }
    }
}

/// The event timer block address from the first valid HPET table (IA-PC HPET 1.0a 3.2.4, Table 3: Base
/// Address is a Generic Address Structure at offset 40, address space ID at 40, address at 44), or None
/// if no HPET table is listed.
pub fn hpet_base<M: PhysMemory + ?Sized>(tables: &PlatformTables, mem: &M) -> Option<Result<u64, HpetTableError>> {
    let t = tables.table(Signature::HPET)?;
    if t.length < 56 {
        return Some(Err(HpetTableError::TooShort(t.length)));
    }
    let Some(bytes) = mem.bytes(t.address, 56) else { return Some(Err(HpetTableError::Unreadable)) };
    let (Some(&space), Some(address)) = (bytes.get(40), le_u64(bytes, 44)) else {
        return Some(Err(HpetTableError::Unreadable));
    };
    Some(match (space, address) {
        (0, 0) => Err(HpetTableError::NoAddress),
        (0, a) => Ok(a),
        (id, _) => Err(HpetTableError::NotMemory(id)),
    })
}

#[cfg(target_os = "none")]
impl defmt::Format for AcpiProblem {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{}", defmt::Display2Format(self))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// RSDP
// ---------------------------------------------------------------------------------------------------------------

/// The physical range below 1 MiB the BIOS may put the RSDP in (ACPI 6.5 §5.2.5.1).
pub const BIOS_RSDP_AREA: Range<u64> = 0xE0000..0x100000;
/// BDA word holding the EBDA segment.
const EBDA_SEGMENT_PTR: u64 = 0x40E;
/// Where an EBDA can sit.
const EBDA_AREA: Range<u64> = 0x80000..0xA0000;

/// The RSDP fields we use, after validation.
struct RsdpFields {
    rsdt: u32,
    /// The XSDT address, only if the RSDP is revision >= 2, its extended checksum holds and it is non-zero.
    xsdt: Option<u64>,
}

/// Sum of all bytes, modulo 256; a valid ACPI structure sums to 0.
///
/// Hand-written: `acpi` keeps its SDT checksum private and its RSDP check over-reads (see module docs).
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Checks the RSDP at `address` and reads its fields, reporting what is wrong.
///
/// Hand-written at fixed offsets (ACPI 6.5 Table 5.3): `acpi::rsdp::Rsdp` needs 36 readable bytes even for a
/// 20-byte v1 RSDP, its `validate` reads an unchecked `length` and skips the v1 checksum of a v2 RSDP, and its
/// v2 accessors panic on a v1 RSDP.
fn read_rsdp<M: PhysMemory + ?Sized>(address: u64, mem: &M, out: &mut PlatformTables) -> Option<RsdpFields> {
    if address == 0 {
        out.report(AcpiProblem::RsdpNotFound);
        return None;
    }
    let Some(v1) = mem.bytes(address, RSDP_V1_LEN) else {
        out.report(AcpiProblem::RsdpUnreadable { address });
        return None;
    };
    if v1.get(..8) != Some(&RSDP_SIGNATURE[..]) {
        out.report(AcpiProblem::BadRsdpSignature { address });
        return None;
    }
    if checksum(v1) != 0 {
        out.report(AcpiProblem::BadRsdpChecksum { address });
        return None;
    }
    let revision = v1.get(15).copied().unwrap_or(0);
    let mut oem_id = [0u8; 6];
    if let Some(id) = v1.get(9..15) {
        oem_id.copy_from_slice(id);
    }
    let rsdt = le_u32(v1, 16).unwrap_or(0);
    out.rsdp_revision = revision;
    out.oem_id = OemId(oem_id);

    // Revision 2 is ACPI 2.0; revision 1 was never defined, so like Linux treat only >= 2 as extended.
    let xsdt = if revision >= 2 { read_rsdp_extension(address, mem, out) } else { None };
    Some(RsdpFields { rsdt, xsdt })
}

/// Checks the ACPI 2.0 part of the RSDP; returns the XSDT address if it can be trusted and is non-zero.
fn read_rsdp_extension<M: PhysMemory + ?Sized>(address: u64, mem: &M, out: &mut PlatformTables) -> Option<u64> {
    let length = mem.bytes(address, RSDP_V2_LEN).and_then(|b| le_u32(b, 20));
    let Some(length) = length else {
        out.report(AcpiProblem::BadRsdpLength { address, length: 0 });
        return None;
    };
    let full = usize::try_from(length)
        .ok()
        .filter(|len| (RSDP_V2_LEN..=RSDP_MAX_LEN).contains(len))
        .and_then(|len| mem.bytes(address, len));
    let Some(full) = full else {
        out.report(AcpiProblem::BadRsdpLength { address, length });
        return None;
    };
    if checksum(full) != 0 {
        out.report(AcpiProblem::BadRsdpExtendedChecksum { address });
        return None;
    }
    le_u64(full, 24).filter(|&xsdt| xsdt != 0)
}

/// Whether a valid RSDP (signature, checksum, and extended checksum for revision >= 2) is at `address`.
fn is_valid_rsdp<M: PhysMemory + ?Sized>(mem: &M, address: u64) -> bool {
    let Some(v1) = mem.bytes(address, RSDP_V1_LEN) else { return false };
    if v1.get(..8) != Some(&RSDP_SIGNATURE[..]) || checksum(v1) != 0 {
        return false;
    }
    if v1.get(15).is_some_and(|&rev| rev >= 2) {
        let full = mem
            .bytes(address, RSDP_V2_LEN)
            .and_then(|b| le_u32(b, 20))
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| (RSDP_V2_LEN..=RSDP_MAX_LEN).contains(len))
            .and_then(|len| mem.bytes(address, len));
        return full.is_some_and(|b| checksum(b) == 0);
    }
    true
}

/// Scans `ranges` on 16-byte boundaries for a valid RSDP ("RSD PTR ", checksum, and extended checksum for
/// revision >= 2) and returns the first one's address. Unreadable parts of a range are skipped.
///
/// Hand-written instead of `acpi::rsdp::Rsdp::search_for_on_bios`: that one maps fixed BIOS addresses through
/// the infallible handler, takes no ranges, and over-reads on a bogus v2 length.
pub fn find_rsdp_in<M: PhysMemory + ?Sized>(mem: &M, ranges: &[Range<u64>]) -> Option<u64> {
    ranges.iter().find_map(|range| {
        let first = range.start.checked_add(15)? & !15;
        let mut address = first;
        while address < range.end {
            if is_valid_rsdp(mem, address) {
                return Some(address);
            }
            address = address.checked_add(16)?;
        }
        None
    })
}

/// The areas a BIOS may put the RSDP in (ACPI 6.5 §5.2.5.1): the first KiB of the EBDA (found through the BDA
/// word at 0x40E; an empty range if that does not point into 0x80000..0xA0000), then 0xE0000..0x100000.
pub fn bios_rsdp_ranges<M: PhysMemory + ?Sized>(mem: &M) -> [Range<u64>; 2] {
    let ebda = mem
        .bytes(EBDA_SEGMENT_PTR, 2)
        .and_then(|b| le_u16(b, 0))
        .map(|segment| u64::from(segment) << 4)
        .filter(|start| EBDA_AREA.contains(start))
        .map_or(0..0, |start| start..start.saturating_add(1024));
    [ebda, BIOS_RSDP_AREA]
}

/// Looks for the RSDP where a BIOS puts it ([`bios_rsdp_ranges`]), for when the boot protocol hands none over.
pub fn find_rsdp_bios<M: PhysMemory + ?Sized>(mem: &M) -> Option<u64> {
    find_rsdp_in(mem, &bios_rsdp_ranges(mem))
}

// ---------------------------------------------------------------------------------------------------------------
// SDTs
// ---------------------------------------------------------------------------------------------------------------

/// A table whose header, length and checksum have been checked; `bytes` is exactly `length` bytes.
#[derive(Clone, Copy)]
struct Sdt<'m> {
    signature: Signature,
    address: u64,
    bytes: &'m [u8],
}

impl Sdt<'_> {
    fn table_ref(&self) -> TableRef {
        TableRef {
            signature: self.signature,
            address: self.address,
            length: u32::try_from(self.bytes.len()).unwrap_or(u32::MAX),
            revision: self.bytes.get(8).copied().unwrap_or(0),
        }
    }
}

/// Why [`load_sdt`] refused a table.
#[derive(Clone, Copy)]
enum SdtFault {
    /// Null, or the 36-byte header is not readable.
    Unreadable,
    /// A problem to report as is.
    Problem(AcpiProblem),
}

/// `acpi` table structs this module views in place.
///
/// # Safety
/// Implementors must be `repr(C, packed)` (alignment 1) and valid for every bit pattern.
unsafe trait PackedTable {}
// SAFETY: `repr(C, packed)`; integers, byte arrays and `Signature([u8; 4])` only.
unsafe impl PackedTable for SdtHeader {}
// SAFETY: `repr(C, packed)`; an `SdtHeader`, two `u32`s and a zero-sized `PhantomPinned`.
unsafe impl PackedTable for Madt {}
// SAFETY: `repr(C, packed)`; an `SdtHeader` and a `u64`.
unsafe impl PackedTable for Mcfg {}

/// Views the start of `bytes` as `T`, keeping the whole slice's provenance (the `acpi` accessors read past the
/// fixed part into the entries that follow it).
fn view<T: PackedTable>(bytes: &[u8]) -> Option<&T> {
    const { assert!(align_of::<T>() == 1) };
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` initialised bytes, borrowed immutably for the returned
    // lifetime; `T` has alignment 1 and accepts any bit pattern (`PackedTable`).
    Some(unsafe { &*bytes.as_ptr().cast::<T>() })
}

/// Reads and checks the table at `address`: readable header, `36 <= length`, readable body, then the `acpi`
/// crate's header check (signature, ASCII OEM ids, checksum).
fn load_sdt<M: PhysMemory + ?Sized>(mem: &M, address: u64, expected: Option<Signature>) -> Result<Sdt<'_>, SdtFault> {
    let header = mem.bytes(address, SDT_HEADER_LEN).ok_or(SdtFault::Unreadable)?;
    let mut sig = [0u8; 4];
    sig.copy_from_slice(header.get(..4).ok_or(SdtFault::Unreadable)?);
    let signature = Signature(sig);
    let length = le_u32(header, 4).ok_or(SdtFault::Unreadable)?;
    if expected.is_some_and(|e| e != signature) {
        return Err(SdtFault::Problem(AcpiProblem::BadSdtSignature { expected, found: signature, address }));
    }
    let too_short = SdtFault::Problem(AcpiProblem::TableTooShort { signature, address, length });
    let len = usize::try_from(length).map_err(|_| too_short)?;
    if len < SDT_HEADER_LEN {
        return Err(too_short);
    }
    let bytes = mem.bytes(address, len).ok_or(SdtFault::Problem(AcpiProblem::TableOutsideMemory {
        signature,
        address,
        length,
    }))?;
    let sdt_header: &SdtHeader = view(bytes).ok_or(too_short)?;
    let own_signature = sdt_header.signature;
    // `validate` sums `length` bytes from the header: `bytes` is exactly that long, and the header was viewed
    // from it, so the read stays inside the checked slice.
    sdt_header.validate(own_signature).map_err(|e| {
        SdtFault::Problem(match e {
            AcpiError::SdtInvalidOemId(_) | AcpiError::SdtInvalidTableId(_) => {
                AcpiProblem::BadSdtOemId { signature, address }
            }
            AcpiError::SdtInvalidChecksum(_) => AcpiProblem::BadSdtChecksum { signature, address },
            _ => AcpiProblem::BadSdtSignature { expected, found: signature, address },
        })
    })?;
    Ok(Sdt { signature, address, bytes })
}

// ---------------------------------------------------------------------------------------------------------------
// The walk
// ---------------------------------------------------------------------------------------------------------------

/// Parses the ACPI tables reachable from the RSDP at `rsdp_phys`. Never panics; see [`PlatformTables`].
///
/// The root table is the XSDT when the RSDP is revision >= 2, its extended checksum holds and the XSDT itself
/// checks out; otherwise the RSDT (as Linux does). The first valid MADT, MCFG and FADT listed are used.
pub fn parse<M: PhysMemory + ?Sized>(rsdp_phys: u64, mem: &M) -> PlatformTables {
    let mut out = PlatformTables::empty(rsdp_phys);
    let Some(rsdp) = read_rsdp(rsdp_phys, mem, &mut out) else {
        return out;
    };
    let Some((kind, root)) = select_root(&rsdp, mem, &mut out) else {
        out.report(AcpiProblem::NoRootTable);
        return out;
    };
    out.root = Some(RootTable { kind, table: root.table_ref() });
    walk_root(kind, root, mem, &mut out);
    out
}

/// Picks the XSDT if it is usable, else the RSDT.
fn select_root<'m, M: PhysMemory + ?Sized>(
    rsdp: &RsdpFields,
    mem: &'m M,
    out: &mut PlatformTables,
) -> Option<(RootTableKind, Sdt<'m>)> {
    let candidates = [
        (RootTableKind::Xsdt, rsdp.xsdt, Signature::XSDT),
        (RootTableKind::Rsdt, Some(u64::from(rsdp.rsdt)).filter(|&a| a != 0), Signature::RSDT),
    ];
    for (kind, address, signature) in candidates {
        let Some(address) = address else { continue };
        match load_sdt(mem, address, Some(signature)) {
            Ok(sdt) => return Some((kind, sdt)),
            Err(SdtFault::Unreadable) => out.report(AcpiProblem::RootTableUnreadable { kind, address }),
            Err(SdtFault::Problem(p)) => out.report(p),
        }
    }
    None
}

/// The first valid table seen for each signature we parse.
#[derive(Default)]
struct Chosen<'m> {
    madt: Option<Sdt<'m>>,
    mcfg: Option<Sdt<'m>>,
    fadt: Option<Sdt<'m>>,
    /// Signatures seen in any readable header, valid or not (so a bad table is not also reported missing).
    seen_madt: bool,
    seen_mcfg: bool,
}

fn walk_root<'m, M: PhysMemory + ?Sized>(kind: RootTableKind, root: Sdt<'m>, mem: &'m M, out: &mut PlatformTables) {
    let entry_len = match kind {
        RootTableKind::Rsdt => 4,
        RootTableKind::Xsdt => 8,
    };
    let body = root.bytes.get(SDT_HEADER_LEN..).unwrap_or(&[]);
    let mut chosen = Chosen::default();
    let mut full_reported = false;
    let mut entries = body.chunks_exact(entry_len);
    for (index, chunk) in entries.by_ref().enumerate() {
        let address = match kind {
            RootTableKind::Rsdt => le_u32(chunk, 0).map(u64::from),
            RootTableKind::Xsdt => le_u64(chunk, 0),
        }
        .unwrap_or(0);
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        let sdt = match load_sdt(mem, address, None) {
            Ok(sdt) => sdt,
            Err(SdtFault::Unreadable) => {
                out.report(AcpiProblem::BadTableAddress { parent: root.signature, index, address });
                continue;
            }
            Err(SdtFault::Problem(p)) => {
                note_seen(&mut chosen, &p);
                out.report(p);
                continue;
            }
        };
        if out.tables.push(sdt.table_ref()).is_err() && !full_reported {
            full_reported = true;
            out.report(AcpiProblem::TooManyEntries { kind: EntryKind::Tables, capacity: MAX_TABLES as u16 });
        }
        let slot = match sdt.signature {
            Signature::MADT => {
                chosen.seen_madt = true;
                &mut chosen.madt
            }
            Signature::MCFG => {
                chosen.seen_mcfg = true;
                &mut chosen.mcfg
            }
            Signature::FADT => &mut chosen.fadt,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(sdt);
        } else {
            out.report(AcpiProblem::DuplicateTable { signature: sdt.signature, address: sdt.address });
        }
    }
    if !entries.remainder().is_empty() {
        let offset = SDT_HEADER_LEN.saturating_add(body.len() - entries.remainder().len());
        out.report(AcpiProblem::TruncatedEntry {
            signature: root.signature,
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
        });
    }

    match chosen.madt {
        Some(sdt) => out.madt = parse_madt(sdt, out),
        None if !chosen.seen_madt => out.report(AcpiProblem::MissingTable { signature: Signature::MADT }),
        None => {}
    }
    match chosen.mcfg {
        Some(sdt) => parse_mcfg(sdt, out),
        None if !chosen.seen_mcfg => out.report(AcpiProblem::MissingTable { signature: Signature::MCFG }),
        None => {}
    }
    if let Some(fadt) = chosen.fadt {
        out.dsdt = find_dsdt(fadt, mem, out);
        out.fadt_io = fadt_io_blocks(fadt.bytes);
    }
}

/// Remembers that a table with a wanted signature exists even though it failed its checks.
fn note_seen(chosen: &mut Chosen<'_>, problem: &AcpiProblem) {
    let signature = match *problem {
        AcpiProblem::TableTooShort { signature, .. }
        | AcpiProblem::TableOutsideMemory { signature, .. }
        | AcpiProblem::BadSdtOemId { signature, .. }
        | AcpiProblem::BadSdtChecksum { signature, .. } => signature,
        _ => return,
    };
    chosen.seen_madt |= signature == Signature::MADT;
    chosen.seen_mcfg |= signature == Signature::MCFG;
}

/// The FADT's fixed-hardware I/O blocks (ACPI 6.5 Table 5.9: PM1a_EVT_BLK at 56, PM1b_EVT_BLK 60,
/// PM1a_CNT_BLK 64, PM1b_CNT_BLK 68, PM2_CNT_BLK 72, PM_TMR_BLK 76, GPE0_BLK 80, GPE1_BLK 84, their
/// lengths as bytes at 88-93; PM1 event and control lengths cover each of the a and b blocks). A block is
/// kept when its port is non-zero, its length non-zero and it ends below 0x10000; a FADT too short for
/// a field leaves it out.
fn fadt_io_blocks(fadt: &[u8]) -> Vec<(u16, u16), 8> {
    // (port offset, length offset)
    const BLOCKS: [(usize, usize); 8] = [(56, 88), (60, 88), (64, 89), (68, 89), (72, 90), (76, 91), (80, 92), (84, 93)];
    let mut out = Vec::new();
    for (port_at, len_at) in BLOCKS {
        let (Some(port), Some(&len)) = (le_u32(fadt, port_at), fadt.get(len_at)) else { continue };
        if port != 0 && len != 0 && port + len as u32 <= 0x1_0000 {
            let _ = out.push((port as u16, len as u16));
        }
    }
    out
}

/// Follows the FADT to the DSDT: X_DSDT if the FADT is long enough to have it and it is non-zero, else DSDT.
///
/// Hand-written at fixed offsets: `acpi::fadt::Fadt` is the full 276-byte ACPI 6 layout, and viewing a shorter
/// FADT (QEMU's are 116 and 244 bytes) through it would read past the table.
fn find_dsdt<M: PhysMemory + ?Sized>(fadt: Sdt<'_>, mem: &M, out: &mut PlatformTables) -> Option<TableRef> {
    let x_dsdt = le_u64(fadt.bytes, FADT_X_DSDT_OFFSET).filter(|&a| a != 0);
    let address = x_dsdt.or_else(|| le_u32(fadt.bytes, FADT_DSDT_OFFSET).map(u64::from))?;
    if address == 0 {
        return None;
    }
    match load_sdt(mem, address, Some(Signature::DSDT)) {
        Ok(sdt) => Some(sdt.table_ref()),
        Err(SdtFault::Unreadable) => {
            out.report(AcpiProblem::BadTableAddress { parent: Signature::FADT, index: 0, address });
            None
        }
        Err(SdtFault::Problem(p)) => {
            out.report(p);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// MADT
// ---------------------------------------------------------------------------------------------------------------

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

/// Pushes `item`, reporting the first overflow of each list.
fn push_or_report<T, const N: usize>(
    list: &mut Vec<T, N>,
    item: T,
    kind: EntryKind,
    full: &mut u8,
    out: &mut PlatformTables,
) {
    if list.push(item).is_err() && *full & kind.bit() == 0 {
        *full |= kind.bit();
        out.report(AcpiProblem::TooManyEntries { kind, capacity: u16::try_from(N).unwrap_or(u16::MAX) });
    }
}

fn parse_madt(sdt: Sdt<'_>, out: &mut PlatformTables) -> Option<MadtInfo> {
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

// ---------------------------------------------------------------------------------------------------------------
// MCFG
// ---------------------------------------------------------------------------------------------------------------

fn parse_mcfg(sdt: Sdt<'_>, out: &mut PlatformTables) {
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
    use std::{format, string::String, string::ToString, vec, vec::Vec as StdVec};

    // ---- A byte image standing in for physical memory ----------------------------------------------------

    /// The image covers 0xE0000..0x110000: the BIOS area plus 64 KiB above 1 MiB for tables.
    const BASE: u64 = 0xE0000;
    const SIZE: usize = 0x30000;
    const END: u64 = BASE + SIZE as u64;
    /// Where QEMU's SeaBIOS puts the RSDP on q35.
    const RSDP_AT: u64 = 0xF59E0;
    const TABLES_AT: u64 = 0x100000;

    struct Image {
        bytes: StdVec<u8>,
        next: u64,
    }

    impl Image {
        fn new() -> Self {
            Image { bytes: vec![0; SIZE], next: TABLES_AT }
        }
        fn put(&mut self, addr: u64, data: &[u8]) {
            let at = (addr - BASE) as usize;
            self.bytes[at..at + data.len()].copy_from_slice(data);
        }
        /// Places `data` at the next free 16-byte aligned address and returns that address.
        fn add(&mut self, data: &[u8]) -> u64 {
            let addr = self.next;
            self.put(addr, data);
            self.next = (addr + data.len() as u64 + 15) & !15;
            addr
        }
        fn mem(&self) -> SliceMemory<'_> {
            SliceMemory::new(BASE, &self.bytes)
        }
        fn parse(&self) -> PlatformTables {
            parse(RSDP_AT, &self.mem())
        }
    }

    // ---- Table builders ---------------------------------------------------------------------------------------

    /// Sets `t[at]` so that `t[range]` sums to 0.
    fn fix_checksum(t: &mut [u8], at: usize, range: Range<usize>) {
        t[at] = 0;
        t[at] = 0u8.wrapping_sub(checksum(&t[range]));
    }

    fn sdt(sig: &[u8; 4], revision: u8, body: &[u8]) -> StdVec<u8> {
        let mut t = StdVec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((SDT_HEADER_LEN + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[revision, 0]);
        t.extend_from_slice(b"BOCHS BXPC    ");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(b"BXPC");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(body);
        let len = t.len();
        fix_checksum(&mut t, 9, 0..len);
        t
    }

    /// Rewrites a built table's length field (and checksum over the bytes that are there).
    fn with_length(mut t: StdVec<u8>, length: u32) -> StdVec<u8> {
        t[4..8].copy_from_slice(&length.to_le_bytes());
        let len = t.len().min(length as usize).max(10);
        fix_checksum(&mut t, 9, 0..len);
        t
    }

    fn rsdp_v0(rsdt: u32) -> StdVec<u8> {
        let mut r = StdVec::new();
        r.extend_from_slice(b"RSD PTR \0BOCHS \0");
        r.extend_from_slice(&rsdt.to_le_bytes());
        fix_checksum(&mut r, 8, 0..20);
        r
    }

    fn rsdp_v2(rsdt: u32, xsdt: u64) -> StdVec<u8> {
        let mut r = StdVec::new();
        r.extend_from_slice(b"RSD PTR \0BOCHS \x02");
        r.extend_from_slice(&rsdt.to_le_bytes());
        r.extend_from_slice(&36u32.to_le_bytes());
        r.extend_from_slice(&xsdt.to_le_bytes());
        r.extend_from_slice(&[0; 4]);
        fix_checksum(&mut r, 8, 0..20);
        fix_checksum(&mut r, 32, 0..36);
        r
    }

    fn rsdt(entries: &[u64]) -> StdVec<u8> {
        let body: StdVec<u8> = entries.iter().flat_map(|&a| (a as u32).to_le_bytes()).collect();
        sdt(b"RSDT", 1, &body)
    }

    fn xsdt(entries: &[u64]) -> StdVec<u8> {
        let body: StdVec<u8> = entries.iter().flat_map(|&a| a.to_le_bytes()).collect();
        sdt(b"XSDT", 1, &body)
    }

    #[derive(Clone, Default)]
    struct MadtBody(StdVec<u8>);

    impl MadtBody {
        fn raw(mut self, bytes: &[u8]) -> Self {
            self.0.extend_from_slice(bytes);
            self
        }
        fn lapic(self, uid: u8, id: u8, flags: u32) -> Self {
            let f = flags.to_le_bytes();
            self.raw(&[0, 8, uid, id, f[0], f[1], f[2], f[3]])
        }
        fn ioapic(self, id: u8, address: u32, gsi_base: u32) -> Self {
            let mut e = vec![1, 12, id, 0];
            e.extend_from_slice(&address.to_le_bytes());
            e.extend_from_slice(&gsi_base.to_le_bytes());
            self.raw(&e)
        }
        fn iso(self, bus: u8, irq: u8, gsi: u32, flags: u16) -> Self {
            let mut e = vec![2, 10, bus, irq];
            e.extend_from_slice(&gsi.to_le_bytes());
            e.extend_from_slice(&flags.to_le_bytes());
            self.raw(&e)
        }
        fn nmi_source(self, flags: u16, gsi: u32) -> Self {
            let mut e = vec![3, 8];
            e.extend_from_slice(&flags.to_le_bytes());
            e.extend_from_slice(&gsi.to_le_bytes());
            self.raw(&e)
        }
        fn lapic_nmi(self, uid: u8, flags: u16, lint: u8) -> Self {
            let f = flags.to_le_bytes();
            self.raw(&[4, 6, uid, f[0], f[1], lint])
        }
        fn lapic_override(self, address: u64) -> Self {
            let mut e = vec![5, 12, 0, 0];
            e.extend_from_slice(&address.to_le_bytes());
            self.raw(&e)
        }
        fn x2apic(self, x2apic_id: u32, flags: u32, uid: u32) -> Self {
            let mut e = vec![9, 16, 0, 0];
            for v in [x2apic_id, flags, uid] {
                e.extend_from_slice(&v.to_le_bytes());
            }
            self.raw(&e)
        }
        fn x2apic_nmi(self, flags: u16, uid: u32, lint: u8) -> Self {
            let mut e = vec![0xA, 12];
            e.extend_from_slice(&flags.to_le_bytes());
            e.extend_from_slice(&uid.to_le_bytes());
            e.extend_from_slice(&[lint, 0, 0, 0]);
            self.raw(&e)
        }
        /// The MADT: local APIC at 0xFEE00000, PCAT_COMPAT set.
        fn table(&self) -> StdVec<u8> {
            let mut body = StdVec::new();
            body.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
            body.extend_from_slice(&1u32.to_le_bytes());
            body.extend_from_slice(&self.0);
            sdt(b"APIC", 1, &body)
        }
    }

    /// The MADT QEMU 7.2 builds for two CPUs (hw/i386/acpi-common.c).
    fn qemu_madt() -> MadtBody {
        MadtBody::default()
            .lapic(0, 0, 1)
            .lapic(1, 1, 1)
            .ioapic(0, 0xFEC0_0000, 0)
            .iso(0, 0, 2, 0)
            .iso(0, 5, 5, 0x000D)
            .iso(0, 9, 9, 0x000D)
            .iso(0, 10, 10, 0x000D)
            .iso(0, 11, 11, 0x000D)
            .lapic_nmi(0xFF, 0, 1)
    }

    fn mcfg(entries: &[(u64, u16, u8, u8)]) -> StdVec<u8> {
        let mut body = vec![0u8; 8];
        for &(base, segment, start, end) in entries {
            body.extend_from_slice(&base.to_le_bytes());
            body.extend_from_slice(&segment.to_le_bytes());
            body.extend_from_slice(&[start, end, 0, 0, 0, 0]);
        }
        sdt(b"MCFG", 1, &body)
    }

    /// An ACPI 1.0 FADT (116 bytes) pointing at `dsdt`.
    fn fadt(dsdt: u32) -> StdVec<u8> {
        let mut body = vec![0u8; 116 - SDT_HEADER_LEN];
        body[FADT_DSDT_OFFSET - SDT_HEADER_LEN..][..4].copy_from_slice(&dsdt.to_le_bytes());
        sdt(b"FACP", 1, &body)
    }

    /// An ACPI 2.0+ FADT (244 bytes, as QEMU q35's) with both DSDT and X_DSDT.
    fn fadt_v3(dsdt: u32, x_dsdt: u64) -> StdVec<u8> {
        let mut body = vec![0u8; 244 - SDT_HEADER_LEN];
        body[FADT_DSDT_OFFSET - SDT_HEADER_LEN..][..4].copy_from_slice(&dsdt.to_le_bytes());
        body[FADT_X_DSDT_OFFSET - SDT_HEADER_LEN..][..8].copy_from_slice(&x_dsdt.to_le_bytes());
        sdt(b"FACP", 3, &body)
    }

    fn dsdt() -> StdVec<u8> {
        sdt(b"DSDT", 1, &[0x08, b'P', b'I', b'C', b'F', 0x00]) // Name(PICF, Zero)
    }

    const QEMU_MCFG: (u64, u16, u8, u8) = (0xB000_0000, 0, 0, 255);

    /// Places a DSDT and `tables` in an image, lists them (FADT first) in an RSDT (and an XSDT if `v2`) and
    /// puts the RSDP at `RSDP_AT`. Returns the image and the tables' addresses (FADT first).
    fn build(tables: &[StdVec<u8>], v2: bool) -> (Image, StdVec<u64>) {
        let mut img = Image::new();
        let dsdt_at = img.add(&dsdt());
        let mut addrs = vec![img.add(&fadt(dsdt_at as u32))];
        addrs.extend(tables.iter().map(|t| img.add(t)));
        let rsdt_at = img.add(&rsdt(&addrs));
        if v2 {
            let xsdt_at = img.add(&xsdt(&addrs));
            img.put(RSDP_AT, &rsdp_v2(rsdt_at as u32, xsdt_at));
        } else {
            img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        }
        (img, addrs)
    }

    fn qemu_like(v2: bool) -> (Image, StdVec<u64>) {
        build(&[qemu_madt().table(), mcfg(&[QEMU_MCFG])], v2)
    }

    fn problems(t: &PlatformTables) -> StdVec<AcpiProblem> {
        t.problems.iter().copied().collect()
    }

    // ---- Good input --------------------------------------------------------------------------------------------

    #[test]
    fn qemu_like_v0_rsdt_tables_parse_to_their_values() {
        let (img, addrs) = qemu_like(false);
        let t = img.parse();
        assert!(t.is_clean(), "unexpected problems: {:?}", t.problems);
        assert_eq!(t.rsdp_revision, 0);
        assert_eq!(t.root_kind(), Some(RootTableKind::Rsdt));
        assert_eq!(t.oem_id.to_string(), "BOCHS ");
        let sigs: StdVec<Signature> = t.tables.iter().map(|t| t.signature).collect();
        assert_eq!(sigs, [Signature::FADT, Signature::MADT, Signature::MCFG]);

        let madt = t.madt.as_ref().expect("MADT parsed");
        assert_eq!(madt.address, addrs[1]);
        assert_eq!(madt.local_apic_address, 0xFEE0_0000);
        assert!(madt.pcat_compat);
        let cpu = |uid, id| LocalApic {
            processor_uid: uid,
            apic_id: id,
            enabled: true,
            online_capable: false,
            x2apic: false,
        };
        assert_eq!(madt.local_apics, [cpu(0, 0), cpu(1, 1)]);
        assert_eq!(madt.io_apics, [IoApic { id: 0, address: 0xFEC0_0000, gsi_base: 0 }]);
        let iso =
            |irq, gsi, polarity, trigger| InterruptSourceOverride { bus: 0, source_irq: irq, gsi, polarity, trigger };
        let (high, level) = (Polarity::ActiveHigh, TriggerMode::Level);
        assert_eq!(
            madt.overrides,
            [
                iso(0, 2, Polarity::Conforming, TriggerMode::Conforming),
                iso(5, 5, high, level),
                iso(9, 9, high, level),
                iso(10, 10, high, level),
                iso(11, 11, high, level),
            ]
        );
        assert_eq!(
            madt.local_apic_nmis,
            [LocalApicNmi {
                processor_uid: None,
                line: LocalInterruptLine::Lint1,
                polarity: Polarity::Conforming,
                trigger: TriggerMode::Conforming
            }]
        );
        assert!(madt.nmi_sources.is_empty());
        assert_eq!(t.mcfg, [McfgEntry { base_address: 0xB000_0000, segment: 0, bus_start: 0, bus_end: 255 }]);
        let dsdt = t.dsdt.expect("DSDT found through the FADT");
        assert_eq!((dsdt.signature, dsdt.address, dsdt.length), (Signature::DSDT, TABLES_AT, 42));
    }

    #[test]
    fn v2_rsdp_uses_the_xsdt_and_x2apic_entries_and_address_override() {
        let body = MadtBody::default()
            .lapic(0, 0, 1)
            .x2apic(0x100, 0b10, 7)
            .ioapic(2, 0xFEC0_0000, 0)
            .lapic_override(0x1_FEE0_0000)
            .nmi_source(0x000F, 23)
            .x2apic_nmi(0x0005, u32::MAX, 0);
        let (mut img, addrs) = build(&[body.table(), mcfg(&[QEMU_MCFG])], true);
        // An RSDT that lists nothing, to show the XSDT is the one used.
        let empty_rsdt = img.add(&rsdt(&[]));
        let xsdt_real = le_u64(&rsdp_bytes(&img), 24).unwrap();
        img.put(RSDP_AT, &rsdp_v2(empty_rsdt as u32, xsdt_real));

        let t = img.parse();
        assert!(t.is_clean(), "unexpected problems: {:?}", t.problems);
        assert_eq!(t.rsdp_revision, 2);
        assert_eq!(t.root_kind(), Some(RootTableKind::Xsdt));
        assert_eq!(t.root.unwrap().table.address, xsdt_real);
        let madt = t.madt.as_ref().unwrap();
        assert_eq!(madt.address, addrs[1]);
        assert_eq!(madt.local_apic_address, 0x1_FEE0_0000, "the 64-bit override wins");
        assert_eq!(
            madt.local_apics[1],
            LocalApic { processor_uid: 7, apic_id: 0x100, enabled: false, online_capable: true, x2apic: true }
        );
        assert_eq!(madt.io_apics[0].id, 2);
        assert_eq!(
            madt.nmi_sources,
            [NmiSource { gsi: 23, polarity: Polarity::ActiveLow, trigger: TriggerMode::Level }]
        );
        assert_eq!(
            madt.local_apic_nmis,
            [LocalApicNmi {
                processor_uid: None,
                line: LocalInterruptLine::Lint0,
                polarity: Polarity::ActiveHigh,
                trigger: TriggerMode::Edge
            }]
        );
        assert_eq!(t.mcfg.len(), 1);
    }

    fn rsdp_bytes(img: &Image) -> StdVec<u8> {
        img.mem().bytes(RSDP_AT, 36).unwrap().to_vec()
    }

    #[test]
    fn dsdt_is_found_through_x_dsdt_of_a_long_fadt() {
        let mut img = Image::new();
        let old = img.add(&dsdt());
        let new = img.add(&dsdt());
        let fadt_at = img.add(&fadt_v3(old as u32, new));
        let rsdt_at = img.add(&rsdt(&[fadt_at]));
        img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        let t = img.parse();
        assert_eq!(t.dsdt.map(|d| d.address), Some(new));
    }

    #[test]
    fn a_bad_xsdt_falls_back_to_the_rsdt() {
        let (mut img, _) = qemu_like(true);
        let xsdt_at = le_u64(&rsdp_bytes(&img), 24).unwrap();
        img.put(xsdt_at + 9, &[0x55]);
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadSdtChecksum { signature: Signature::XSDT, address: xsdt_at }]);
        assert_eq!(t.root_kind(), Some(RootTableKind::Rsdt));
        assert!(t.madt.is_some());
        assert_eq!(t.mcfg.len(), 1);
    }

    // ---- RSDP faults ---------------------------------------------------------------------------------------------

    #[test]
    fn a_bad_rsdp_checksum_stops_the_walk() {
        let (mut img, _) = qemu_like(false);
        img.put(RSDP_AT + 8, &[0x42]);
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadRsdpChecksum { address: RSDP_AT }]);
        assert_eq!((t.root, t.madt.is_none(), t.mcfg.len(), t.dsdt), (None, true, 0, None));
    }

    #[test]
    fn a_missing_or_unreadable_or_unsigned_rsdp_is_reported() {
        let (img, _) = qemu_like(false);
        assert_eq!(problems(&parse(0, &img.mem())), [AcpiProblem::RsdpNotFound]);
        assert_eq!(problems(&parse(END - 4, &img.mem())), [AcpiProblem::RsdpUnreadable { address: END - 4 }]);
        assert_eq!(
            problems(&parse(RSDP_AT + 16, &img.mem())),
            [AcpiProblem::BadRsdpSignature { address: RSDP_AT + 16 }]
        );
    }

    #[test]
    fn a_bad_extended_checksum_keeps_the_rsdt_but_not_the_xsdt() {
        let (mut img, _) = qemu_like(true);
        img.put(RSDP_AT + 33, &[0x99]); // reserved byte, covered only by the extended checksum
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadRsdpExtendedChecksum { address: RSDP_AT }]);
        assert_eq!(t.rsdp_revision, 2);
        assert_eq!(t.root_kind(), Some(RootTableKind::Rsdt));
        assert!(t.madt.is_some());
    }

    #[test]
    fn a_bad_v2_rsdp_length_keeps_the_rsdt_but_not_the_xsdt() {
        for length in [20u32, 5000, u32::MAX] {
            let (mut img, _) = qemu_like(true);
            let mut r = rsdp_bytes(&img);
            r[20..24].copy_from_slice(&length.to_le_bytes());
            fix_checksum(&mut r, 32, 0..36);
            img.put(RSDP_AT, &r);
            let t = img.parse();
            assert_eq!(problems(&t), [AcpiProblem::BadRsdpLength { address: RSDP_AT, length }]);
            assert_eq!(t.root_kind(), Some(RootTableKind::Rsdt));
        }
    }

    #[test]
    fn an_unreadable_root_table_means_no_tables() {
        let mut img = Image::new();
        img.put(RSDP_AT, &rsdp_v0(0x2000_0000));
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [
                AcpiProblem::RootTableUnreadable { kind: RootTableKind::Rsdt, address: 0x2000_0000 },
                AcpiProblem::NoRootTable
            ]
        );
        img.put(RSDP_AT, &rsdp_v0(0));
        assert_eq!(problems(&img.parse()), [AcpiProblem::NoRootTable]);
    }

    #[test]
    fn an_rsdp_pointing_at_the_wrong_table_is_reported() {
        let (mut img, addrs) = qemu_like(false);
        img.put(RSDP_AT, &rsdp_v0(addrs[1] as u32)); // the MADT
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [
                AcpiProblem::BadSdtSignature {
                    expected: Some(Signature::RSDT),
                    found: Signature::MADT,
                    address: addrs[1]
                },
                AcpiProblem::NoRootTable
            ]
        );
    }

    // ---- Root table and SDT faults -----------------------------------------------------------------------------

    #[test]
    fn root_entries_that_are_null_or_outside_memory_are_skipped() {
        let mut img = Image::new();
        let madt = img.add(&qemu_madt().table());
        let mcfg_at = img.add(&mcfg(&[QEMU_MCFG]));
        let straddling = END - 8; // header runs past the end of memory
        let entries = [0, 0xDEAD_0000, straddling, madt, mcfg_at];
        let rsdt_at = img.add(&rsdt(&entries));
        img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        let t = img.parse();
        let bad = |index, address| AcpiProblem::BadTableAddress { parent: Signature::RSDT, index, address };
        assert_eq!(problems(&t), [bad(0, 0), bad(1, 0xDEAD_0000), bad(2, straddling)]);
        assert!(t.madt.is_some());
        assert_eq!(t.mcfg.len(), 1);
    }

    #[test]
    fn a_root_table_ending_in_a_partial_entry_is_reported() {
        let mut img = Image::new();
        let madt = img.add(&qemu_madt().table());
        let mut body = (madt as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&[1, 2]);
        let rsdt_at = img.add(&sdt(b"RSDT", 1, &body));
        img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [
                AcpiProblem::TruncatedEntry { signature: Signature::RSDT, offset: 40 },
                AcpiProblem::MissingTable { signature: Signature::MCFG }
            ]
        );
        assert!(t.madt.is_some());
    }

    #[test]
    fn an_sdt_shorter_than_its_header_or_fixed_part_is_skipped() {
        // 20 < 36: shorter than the SDT header.
        let (img, addrs) = build(&[with_length(qemu_madt().table(), 20), mcfg(&[QEMU_MCFG])], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [AcpiProblem::TableTooShort { signature: Signature::MADT, address: addrs[1], length: 20 }]
        );
        assert!(t.madt.is_none());

        // 40: a valid header, but shorter than the MADT's 44-byte fixed part; same for the MCFG.
        let (img, addrs) = build(&[with_length(qemu_madt().table(), 40), with_length(mcfg(&[]), 40)], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [
                AcpiProblem::TableTooShort { signature: Signature::MADT, address: addrs[1], length: 40 },
                AcpiProblem::TableTooShort { signature: Signature::MCFG, address: addrs[2], length: 40 }
            ]
        );
        assert!(t.madt.is_none());
        assert!(t.mcfg.is_empty());
    }

    #[test]
    fn an_sdt_longer_than_memory_is_skipped() {
        let (img, addrs) = build(&[with_length(qemu_madt().table(), 0x40_0000), mcfg(&[QEMU_MCFG])], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [AcpiProblem::TableOutsideMemory { signature: Signature::MADT, address: addrs[1], length: 0x40_0000 }]
        );
        assert!(t.madt.is_none());
        assert_eq!(t.mcfg.len(), 1);
    }

    #[test]
    fn a_madt_with_a_bad_checksum_is_not_used() {
        let (mut img, addrs) = qemu_like(false);
        img.put(addrs[1] + 44 + 3, &[7]); // first LAPIC's APIC id
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadSdtChecksum { signature: Signature::MADT, address: addrs[1] }]);
        assert!(t.madt.is_none());
        assert_eq!(t.mcfg.len(), 1, "the other tables are still used");
    }

    #[test]
    fn bad_rsdt_xsdt_and_mcfg_checksums_are_reported() {
        // RSDT (revision 0 RSDP, so no XSDT to fall back on): nothing is found.
        let (mut img, _) = qemu_like(false);
        let rsdt_at = u64::from(le_u32(&rsdp_bytes(&img), 16).unwrap());
        img.put(rsdt_at + 9, &[0x55]);
        let t = img.parse();
        assert_eq!(problems(&t)[0], AcpiProblem::BadSdtChecksum { signature: Signature::RSDT, address: rsdt_at });
        assert!(problems(&t).contains(&AcpiProblem::NoRootTable), "{:?}", t.problems);
        assert!(t.madt.is_none() && t.mcfg.is_empty());
        // XSDT and RSDT both bad: nothing is found either.
        let (mut img, _) = qemu_like(true);
        let r = rsdp_bytes(&img);
        let (rsdt_at, xsdt_at) = (u64::from(le_u32(&r, 16).unwrap()), le_u64(&r, 24).unwrap());
        img.put(rsdt_at + 9, &[0x55]);
        img.put(xsdt_at + 9, &[0x55]);
        let t = img.parse();
        assert!(problems(&t).contains(&AcpiProblem::BadSdtChecksum { signature: Signature::XSDT, address: xsdt_at }));
        assert!(problems(&t).contains(&AcpiProblem::NoRootTable), "{:?}", t.problems);
        // MCFG: not used, so configuration access falls back to ports; the MADT is still used.
        let (mut img, addrs) = qemu_like(false);
        img.put(addrs[2] + 44, &[0x01]); // first allocation's base address, low byte
        let t = img.parse();
        assert_eq!(problems(&t)[0], AcpiProblem::BadSdtChecksum { signature: Signature::MCFG, address: addrs[2] });
        assert!(t.mcfg.is_empty());
        assert!(t.madt.is_some());
    }

    #[test]
    fn a_non_ascii_oem_id_is_rejected_by_the_acpi_crate_check() {
        let mut m = qemu_madt().table();
        m[10] = 0xFF;
        let len = m.len();
        fix_checksum(&mut m, 9, 0..len);
        let (img, addrs) = build(&[m, mcfg(&[QEMU_MCFG])], false);
        assert_eq!(
            problems(&img.parse()),
            [AcpiProblem::BadSdtOemId { signature: Signature::MADT, address: addrs[1] }]
        );
    }

    #[test]
    fn missing_and_duplicate_tables_are_reported() {
        let (img, _) = build(&[], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [
                AcpiProblem::MissingTable { signature: Signature::MADT },
                AcpiProblem::MissingTable { signature: Signature::MCFG }
            ]
        );
        let second = qemu_madt().lapic(2, 2, 1).table();
        let (img, addrs) = build(&[qemu_madt().table(), second, mcfg(&[QEMU_MCFG])], false);
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::DuplicateTable { signature: Signature::MADT, address: addrs[2] }]);
        assert_eq!(t.madt.unwrap().local_apics.len(), 2, "the first MADT is used");
    }

    // ---- MADT entry faults ----------------------------------------------------------------------------------------

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
    fn more_local_apics_than_capacity_are_reported_once() {
        let body = (0..70u32).fold(MadtBody::default(), |b, i| b.x2apic(i, 1, i));
        let t = parse_madt_body(body);
        assert_eq!(
            problems(&t),
            [AcpiProblem::TooManyEntries { kind: EntryKind::LocalApics, capacity: MAX_LOCAL_APICS as u16 }]
        );
        assert_eq!(t.madt.unwrap().local_apics.len(), MAX_LOCAL_APICS);
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

    // ---- MCFG faults --------------------------------------------------------------------------------------------

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
    fn problems_beyond_capacity_are_counted() {
        let mut img = Image::new();
        let rsdt_at = img.add(&rsdt(&[0; 40]));
        img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        let t = img.parse();
        assert_eq!(t.problems.len(), MAX_PROBLEMS);
        // 40 bad entries + MissingTable x2 = 42 problems.
        assert_eq!(t.problems_dropped, 42 - MAX_PROBLEMS as u16);
        assert!(!t.is_clean());
    }

    // ---- Helpers ------------------------------------------------------------------------------------------------

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

    #[test]
    fn inti_flags_decode() {
        assert_eq!(decode_inti_flags(0), Some((Polarity::Conforming, TriggerMode::Conforming)));
        assert_eq!(decode_inti_flags(0x000D), Some((Polarity::ActiveHigh, TriggerMode::Level)));
        assert_eq!(decode_inti_flags(0x0007), Some((Polarity::ActiveLow, TriggerMode::Edge)));
        assert_eq!(decode_inti_flags(0x0002), None);
        assert_eq!(decode_inti_flags(0x0008), None);
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one-element lists of ranges are the point here
    fn rsdp_scan_finds_only_aligned_valid_rsdps() {
        let mut img = Image::new();
        let good = rsdp_v2(0x1234, 0x5678);
        let mut bad = good.clone();
        bad[8] ^= 1;
        img.put(0xE0100, &bad); // bad checksum
        img.put(0xE0208, &good); // not 16-byte aligned
        let mut bad_ext = good.clone();
        bad_ext[33] = 1;
        img.put(0xE0300, &bad_ext); // bad extended checksum
        img.put(0xF0010, &good);
        let mem = img.mem();
        assert_eq!(find_rsdp_in(&mem, &[BIOS_RSDP_AREA]), Some(0xF0010));
        assert_eq!(find_rsdp_in(&mem, &[0xE0000..0xF0000]), None);
        assert_eq!(find_rsdp_in(&mem, &[0xE0200..0xE0300]), None, "the copy at 0xE0208 is not 16-byte aligned");
        assert_eq!(find_rsdp_in(&mem, &[0xF0001..0xF0100]), Some(0xF0010), "a range start is rounded up");
        // Ranges reaching outside memory, or wrapping, end the scan of that range without panicking.
        assert_eq!(find_rsdp_in(&mem, &[0..0x100, u64::MAX - 20..u64::MAX, 0xF0000..0xF0020]), Some(0xF0010));
    }

    #[test]
    fn bios_rsdp_search_looks_at_the_ebda_first() {
        let mut low = vec![0u8; 0x100000];
        let mut put = |addr: usize, data: &[u8]| low[addr..addr + data.len()].copy_from_slice(data);
        put(0x40E, &0x9FC0u16.to_le_bytes());
        put(0x9FC10, &rsdp_v0(0x1111));
        put(0xF59E0, &rsdp_v0(0x2222));
        let mem = SliceMemory::new(0, &low);
        assert_eq!(bios_rsdp_ranges(&mem), [0x9FC00..0xA0000, BIOS_RSDP_AREA]);
        assert_eq!(find_rsdp_bios(&mem), Some(0x9FC10));
        low[0x40E..0x410].copy_from_slice(&0x1234u16.to_le_bytes()); // not an EBDA segment
        let mem = SliceMemory::new(0, &low);
        assert_eq!(bios_rsdp_ranges(&mem)[0], 0..0);
        assert_eq!(find_rsdp_bios(&mem), Some(0xF59E0));
    }

    #[test]
    fn identity_memory_refuses_null_and_beyond_the_limit() {
        // SAFETY: only refused requests are made below, so no memory is read.
        let mem = unsafe { IdentityMemory::new(0x1000_0000) };
        assert_eq!(mem.limit(), 0x1000_0000);
        assert!(mem.bytes(0, 1).is_none());
        assert!(mem.bytes(0x0FFF_FFFF, 2).is_none());
        assert!(mem.bytes(0x1000_0000, 0).is_none());
        assert!(mem.bytes(u64::MAX, 2).is_none());
        assert!(mem.bytes(1, usize::MAX).is_none());
    }

    #[test]
    fn slice_memory_bounds() {
        let data = [1u8, 2, 3, 4];
        let mem = SliceMemory::new(0x1000, &data);
        assert_eq!(mem.bytes(0x1001, 3), Some(&data[1..]));
        assert_eq!(mem.bytes(0x1004, 0), Some(&[][..]));
        assert_eq!(mem.bytes(0x1001, 4), None);
        assert_eq!(mem.bytes(0xFFF, 1), None);
        assert_eq!(mem.bytes(0x1001, usize::MAX), None);
        assert_eq!(SliceMemory::new(0, &data).bytes(0, 1), None, "address 0 is null");
    }

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
        }
        assert_eq!(format!("{:?}", Signature::MCFG), "\"MCFG\"");
    }

    // ---- Never panics -------------------------------------------------------------------------------------------

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Re-checksums every table the image's root lists (and the RSDP), so mutations reach the table walkers.
    fn refresh_checksums(img: &mut Image, tables: &[u64]) {
        for &addr in tables {
            let at = (addr - BASE) as usize;
            let Some(len) = img.bytes.get(at + 4..at + 8).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
            else {
                continue;
            };
            if (10..=0x8000).contains(&len) && at + len <= img.bytes.len() {
                fix_checksum(&mut img.bytes[at..at + len], 9, 0..len);
            }
        }
        let r = (RSDP_AT - BASE) as usize;
        fix_checksum(&mut img.bytes[r..r + 36], 8, 0..20);
        fix_checksum(&mut img.bytes[r..r + 36], 32, 0..36);
    }

    #[test]
    fn mutated_tables_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (base, addrs) = qemu_like(true);
        let mut tables = addrs.clone();
        let r = rsdp_bytes(&base);
        tables.push(u64::from(le_u32(&r, 16).unwrap()));
        tables.push(le_u64(&r, 24).unwrap());
        let region = TABLES_AT..base.next;
        // Miri runs a sample of the rounds: it is ~1000x slower.
        for round in 0..if cfg!(miri) { 40 } else { 4000 } {
            let mut img = Image { bytes: base.bytes.clone(), next: base.next };
            for _ in 0..1 + rng.below(8) {
                let addr = if rng.below(4) == 0 {
                    // Aim at a header: signature, length or checksum bytes.
                    tables[rng.below(tables.len() as u64) as usize] + rng.below(10)
                } else {
                    region.start + rng.below(region.end - region.start)
                };
                img.put(addr, &[rng.next() as u8]);
            }
            if round % 2 == 0 {
                refresh_checksums(&mut img, &tables);
            }
            let t = img.parse();
            assert!(t.problems.len() <= MAX_PROBLEMS);
            for p in &t.problems {
                let _ = p.to_string();
            }
            let _ = find_rsdp_in(&img.mem(), &[BIOS_RSDP_AREA]);
        }
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

    // ---- Real tables ---------------------------------------------------------------------------------------------

    /// Two memory regions: the RSDP in the F segment and the table block at the top of RAM.
    struct Regions<'a>([SliceMemory<'a>; 2]);

    impl PhysMemory for Regions<'_> {
        fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
            self.0.iter().find_map(|r| r.bytes(phys, len))
        }
    }

    /// The table block 0x0FFE0000.. of `qemu-system-x86_64 -M {q35,pc} -m 256 -smp 2 -nodefaults` (QEMU 7.2,
    /// SeaBIOS), saved with the monitor's `pmemsave`; the RSDP bytes are from the same runs.
    const DUMP_BASE: u64 = 0x0FFE_0000;
    const Q35_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-q35-tables.dat");
    const Q35_RSDP: (u64, [u8; 20]) = (
        0xF59E0,
        [
            0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x8c, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0x97, 0x22,
            0xfe, 0x0f,
        ],
    );
    const PC_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-pc-tables.dat");
    const PC_RSDP: (u64, [u8; 20]) = (
        0xF59D0,
        [
            0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x87, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0xa4, 0x1a,
            0xfe, 0x0f,
        ],
    );

    fn check_qemu_madt(madt: &MadtInfo) {
        assert_eq!(madt.local_apic_address, 0xFEE0_0000);
        assert!(madt.pcat_compat);
        let cpu = |n| LocalApic { processor_uid: n, apic_id: n, enabled: true, online_capable: false, x2apic: false };
        assert_eq!(madt.local_apics, [cpu(0), cpu(1)]);
        assert_eq!(madt.io_apics, [IoApic { id: 0, address: 0xFEC0_0000, gsi_base: 0 }]);
        let got: StdVec<_> = madt.overrides.iter().map(|o| (o.source_irq, o.gsi, o.polarity, o.trigger)).collect();
        let (c, h, l) = (Polarity::Conforming, Polarity::ActiveHigh, TriggerMode::Level);
        assert_eq!(
            got,
            [(0, 2, c, TriggerMode::Conforming), (5, 5, h, l), (9, 9, h, l), (10, 10, h, l), (11, 11, h, l)]
        );
        assert_eq!(madt.local_apic_nmis.len(), 1);
        assert_eq!(madt.local_apic_nmis[0].line, LocalInterruptLine::Lint1);
        assert_eq!(madt.local_apic_nmis[0].processor_uid, None);
    }

    #[test]
    fn qemu_7_2_q35_tables_parse() {
        let mem = Regions([SliceMemory::new(Q35_RSDP.0, &Q35_RSDP.1), SliceMemory::new(DUMP_BASE, Q35_TABLES)]);
        assert_eq!(find_rsdp_in(&mem, &[BIOS_RSDP_AREA]), Some(Q35_RSDP.0));
        let t = parse(Q35_RSDP.0, &mem);
        assert!(t.is_clean(), "{:?}", t.problems);
        assert_eq!((t.rsdp_revision, t.root_kind()), (0, Some(RootTableKind::Rsdt)));
        assert_eq!(t.oem_id.to_string(), "BOCHS ");
        let sigs: StdVec<String> = t.tables.iter().map(|t| t.signature.to_string()).collect();
        assert_eq!(sigs, ["FACP", "APIC", "HPET", "MCFG", "WAET"]);
        check_qemu_madt(t.madt.as_ref().unwrap());
        assert_eq!(t.mcfg, [McfgEntry { base_address: 0xB000_0000, segment: 0, bus_start: 0, bus_end: 255 }]);
        let dsdt = t.dsdt.unwrap();
        assert_eq!((dsdt.address, dsdt.length), (0x0FFE_0040, 8263));
        // ICH9 LPC PM base 0x600: PM1a event, PM1a control, PM timer, GPE0 (QEMU hw/isa/lpc_ich9.c).
        assert_eq!(t.fadt_io.as_slice(), &[(0x600, 4), (0x604, 2), (0x608, 4), (0x620, 16)]);
    }

    #[test]
    fn qemu_7_2_pc_tables_parse() {
        let mem = Regions([SliceMemory::new(PC_RSDP.0, &PC_RSDP.1), SliceMemory::new(DUMP_BASE, PC_TABLES)]);
        let t = parse(PC_RSDP.0, &mem);
        assert_eq!(problems(&t), [AcpiProblem::MissingTable { signature: Signature::MCFG }], "i440fx has no MCFG");
        check_qemu_madt(t.madt.as_ref().unwrap());
        assert!(t.mcfg.is_empty());
        let dsdt = t.dsdt.unwrap();
        assert_eq!((dsdt.address, dsdt.length), (0x0FFE_0040, 6416));
        // PIIX4 PM base 0x600 (as SeaBIOS programs it) and GPE0 at 0xAFE0 (QEMU hw/acpi/piix4.c).
        assert_eq!(t.fadt_io.as_slice(), &[(0x600, 4), (0x604, 2), (0x608, 4), (0xAFE0, 4)]);
    }

    // ---- HPET table ---------------------------------------------------------------------------------------

    /// QEMU's HPET table body (after the header): event timer block ID, Base Address GAS, number, minimum
    /// tick, page protection.
    fn hpet_body(space: u8, address: u64) -> StdVec<u8> {
        let mut b = StdVec::new();
        b.extend_from_slice(&0x8086_A201u32.to_le_bytes());
        b.extend_from_slice(&[space, 0, 0, 0]);
        b.extend_from_slice(&address.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b
    }

    fn with_hpet(table: StdVec<u8>) -> Image {
        let mut img = Image::new();
        let hpet = img.add(&table);
        let root = img.add(&rsdt(&[hpet]));
        img.put(RSDP_AT, &rsdp_v0(root as u32));
        img
    }

    #[test]
    fn hpet_base_address_is_read_and_bad_tables_are_typed_errors() {
        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(0, 0xFED0_0000)));
        let t = img.parse();
        assert_eq!(hpet_base(&t, &img.mem()), Some(Ok(0xFED0_0000)));

        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(1, 0xFED0_0000)));
        assert_eq!(hpet_base(&img.parse(), &img.mem()), Some(Err(HpetTableError::NotMemory(1))));

        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(0, 0)));
        assert_eq!(hpet_base(&img.parse(), &img.mem()), Some(Err(HpetTableError::NoAddress)));

        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(0, 0xFED0_0000)[..6]));
        assert_eq!(hpet_base(&img.parse(), &img.mem()), Some(Err(HpetTableError::TooShort(42))));

        let (img, _) = qemu_like(false);
        assert_eq!(hpet_base(&img.parse(), &img.mem()), None, "no HPET table listed");
    }
}
