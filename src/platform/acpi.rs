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
/// Most I/O APICs kept from the MADT.
pub const MAX_IO_APICS: usize = 8;
/// Most interrupt source overrides kept from the MADT.
pub const MAX_OVERRIDES: usize = 16;
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

/// Read access to physical memory, refusing what is not there.
///
/// Hand-written instead of `acpi::AcpiHandler`: that trait's `map_physical_region` has no way to fail, so it
/// cannot refuse a null or out-of-range address taken from a table.
pub trait PhysMemory {
    /// The `len` bytes at physical address `phys`, or `None` if any of them is not readable (or `phys` is 0).
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]>;
}

impl<M: PhysMemory + ?Sized> PhysMemory for &M {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        (**self).bytes(phys, len)
    }
}

/// Physical memory read through the identity map (virtual == physical), up to a caller-given limit.
#[derive(Debug, Clone, Copy)]
pub struct IdentityMemory {
    limit: u64,
}

impl IdentityMemory {
    /// Reads of `[1, limit)` through the identity map; address 0 and anything reaching `limit` are refused.
    ///
    /// # Safety
    /// For as long as the value (or a slice it returned) is in use, every byte in `[1, limit)` must be
    /// identity-mapped, readable, and free of read side effects (RAM, ROM or firmware-reserved memory, no device
    /// MMIO), and nothing may write to the bytes of a returned slice while it is alive. `limit` must not exceed
    /// the identity-mapped range (4 GiB on this firmware).
    pub const unsafe fn new(limit: u64) -> Self {
        Self { limit }
    }

    /// The first address that is refused.
    pub const fn limit(&self) -> u64 {
        self.limit
    }
}

impl PhysMemory for IdentityMemory {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        if phys == 0 {
            return None;
        }
        let end = phys.checked_add(u64::try_from(len).ok()?)?;
        if end > self.limit {
            return None;
        }
        let addr = usize::try_from(phys).ok()?;
        let ptr = core::ptr::with_exposed_provenance::<u8>(addr);
        // SAFETY: `ptr` is non-null (phys != 0) and `[phys, phys + len)` lies below `limit`, which the caller of
        // `new` promised is identity-mapped, readable and not written while the slice lives; u8 needs no
        // alignment; `len` fits in isize because `phys + len <= limit <= 4 GiB` (also a `new` precondition).
        Some(unsafe { core::slice::from_raw_parts(ptr, len) })
    }
}

/// Physical memory backed by a byte slice: physical address `base + i` is `bytes[i]`. Used by host tests.
#[derive(Debug, Clone, Copy)]
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl<'a> SliceMemory<'a> {
    /// Memory whose first byte `bytes[0]` is at physical address `base`.
    pub const fn new(base: u64, bytes: &'a [u8]) -> Self {
        Self { base, bytes }
    }
}

impl PhysMemory for SliceMemory<'_> {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        if phys == 0 {
            return None;
        }
        let start = usize::try_from(phys.checked_sub(self.base)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}

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
    /// An RSDT/XSDT entry is null or points outside readable memory. That entry was skipped.
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
fn load_sdt<M: PhysMemory + ?Sized>(
    mem: &M,
    address: u64,
    expected: Option<Signature>,
) -> Result<Sdt<'_>, SdtFault> {
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
    let bytes = mem
        .bytes(address, len)
        .ok_or(SdtFault::Problem(AcpiProblem::TableOutsideMemory { signature, address, length }))?;
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
        local_apic_address: u64::from({ madt.local_apic_address }),
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
                let io_apic =
                    IoApic { id: e.io_apic_id, address: { e.io_apic_address }, gsi_base: { e.global_system_interrupt_base } };
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
                local_nmi(&mut info, out, &mut full, table, e, 0x4, uid, { e.flags }, e.nmi_line);
            }
            MadtEntry::X2ApicNmi(e) => {
                let uid = Some({ e.processor_uid }).filter(|&u| u != u32::MAX);
                local_nmi(&mut info, out, &mut full, table, e, 0xA, uid, { e.flags }, e.nmi_line);
            }
            MadtEntry::LocalApicAddressOverride(e) => info.local_apic_address = { e.local_apic_address },
            // SAPIC, GIC and wakeup entries say nothing about x86 APIC interrupt routing.
            _ => {}
        }
    }
    if let Some((offset, entry_type, fault)) = scan.fault {
        out.report(AcpiProblem::BadMadtEntry {
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            entry_type,
            fault,
        });
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
        let window_fits =
            entry.base_address.checked_add((u64::from(entry.bus_end) + 1) << ECAM_BUS_SHIFT).is_some();
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
