//! The MP table (Intel MultiProcessor Specification 1.4): where the IOAPICs are and how PCI INTx reaches
//! them on a platform without ACPI.
//!
//! A BIOS leaves a 16-byte *floating pointer structure* ("_MP_", MP 1.4 §4.1) on a 16-byte boundary in the
//! first KiB of the EBDA, the last KiB of base memory, or 0xF0000-0xFFFFF; it points at the *configuration
//! table* ("PCMP", §4.2): a 44-byte header, then the base entries (§4.3: processor 20 bytes; bus, I/O APIC,
//! I/O interrupt assignment and local interrupt assignment 8 bytes each), then optionally the extended
//! entries (§5, type and length in each). [`find`] scans for the floating pointer as Linux's
//! `default_find_smp_config` does, [`parse`] checks everything (signatures, both checksums, revisions,
//! lengths against readable memory, each entry inside the table) before any entry is used, and [`MpTable`]
//! answers the questions routing asks: the IOAPICs in table order, and the I/O interrupt assignment of a PCI
//! bus, device and pin ([`MpTable::pci_interrupt`]).
//!
//! What makes the table unusable is an [`MpError`] from [`parse`]. What Linux tolerates (an entry count that
//! disagrees with the entries, an unknown bus type, an interrupt entry naming an undeclared bus or IOAPIC,
//! reserved polarity or trigger bits, a broken extended table) leaves the table in use and is listed in
//! [`MpTable::warnings`], as typed [`MpError`]s too.
//!
//! Every function is total: any bytes give a value or a typed error, never a panic; every read is
//! bounds-checked and every loop is bounded by the table's length.

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

use core::fmt;
use core::ops::Range;

use heapless::Vec;

use crate::physmem::PhysMemory;

/// "_MP_": the floating pointer structure's signature.
pub const FLOATING_SIGNATURE: [u8; 4] = *b"_MP_";
/// "PCMP": the configuration table's signature.
pub const TABLE_SIGNATURE: [u8; 4] = *b"PCMP";
/// Size of the floating pointer structure (its length field counts 16-byte paragraphs and must be 1).
pub const FLOATING_LEN: usize = 16;
/// Size of the configuration table header.
pub const HEADER_LEN: usize = 44;
/// Most warnings kept; further ones are counted in [`MpTable::warnings_dropped`].
pub const MAX_WARNINGS: usize = 8;
/// The IOAPIC ID an I/O interrupt entry uses for "every I/O APIC" (MP 1.4 Table 4-8).
pub const ALL_IO_APICS: u8 = 0xFF;

/// Base table entry types (MP 1.4 Table 4-3).
pub mod entry {
    /// Processor (20 bytes).
    pub const PROCESSOR: u8 = 0;
    /// Bus (8 bytes).
    pub const BUS: u8 = 1;
    /// I/O APIC (8 bytes).
    pub const IO_APIC: u8 = 2;
    /// I/O interrupt assignment (8 bytes).
    pub const IO_INTERRUPT: u8 = 3;
    /// Local interrupt assignment (8 bytes).
    pub const LOCAL_INTERRUPT: u8 = 4;

    /// The length of a base entry of `kind`, `None` for a type the base table does not define.
    pub const fn len(kind: u8) -> Option<usize> {
        match kind {
            PROCESSOR => Some(20),
            BUS | IO_APIC | IO_INTERRUPT | LOCAL_INTERRUPT => Some(8),
            _ => None,
        }
    }
}

/// Interrupt type of an interrupt assignment entry (MP 1.4 Table 4-9): a vectored interrupt.
pub const INTERRUPT_INT: u8 = 0;

// Floating pointer fields (MP 1.4 Table 4-1).
const FP_PHYSPTR: usize = 4;
const FP_LENGTH: usize = 8;
const FP_REVISION: usize = 9;
const FP_FEATURE1: usize = 11;
const FP_FEATURE2: usize = 12;
// Configuration table header fields (MP 1.4 Table 4-2).
const HDR_LENGTH: usize = 4;
const HDR_REVISION: usize = 6;
const HDR_ENTRY_COUNT: usize = 34;
const HDR_LAPIC: usize = 36;
const HDR_EXT_LENGTH: usize = 40;
const HDR_EXT_CHECKSUM: usize = 42;

/// BIOS Data Area word holding the EBDA segment.
const BDA_EBDA_SEGMENT: u64 = 0x40E;
/// BIOS Data Area word holding the base memory size in KiB.
const BDA_BASE_MEMORY_KIB: u64 = 0x413;
/// Where an EBDA or the top of base memory can be.
const BASE_MEMORY_TOP: Range<u64> = 0x8_0000..0xA_0000;
/// The BIOS ROM area the spec names.
const BIOS_AREA: Range<u64> = 0xF_0000..0x10_0000;

/// Why the MP table cannot be used, or (in [`MpTable::warnings`]) what is wrong with a table in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpError {
    /// A floating pointer whose length field is not 1 (16 bytes).
    FloatingBadLength {
        /// Its address.
        address: u64,
        /// Its length field (16-byte paragraphs).
        length: u8,
    },
    /// A floating pointer whose 16 bytes do not sum to zero.
    FloatingBadChecksum {
        /// Its address.
        address: u64,
    },
    /// A floating pointer of a revision other than 1 (MP 1.1) or 4 (MP 1.4).
    FloatingBadRevision {
        /// Its address.
        address: u64,
        /// The revision found.
        revision: u8,
    },
    /// The floating pointer names one of the spec's default configurations (MP 1.4 §5) instead of a table:
    /// they have no PCI interrupt entries.
    DefaultConfiguration(u8),
    /// No default configuration and a null configuration table pointer.
    NoTablePointer,
    /// The configuration table header is not in readable memory.
    TableUnreadable {
        /// The table's address.
        address: u64,
    },
    /// The configuration table does not start with "PCMP".
    BadTableSignature {
        /// The table's address.
        address: u64,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The base table length is smaller than its own header.
    TableTooShort {
        /// The length field.
        length: u16,
    },
    /// The base table's length reaches past readable memory.
    TablePastEnd {
        /// The table's address.
        address: u64,
        /// The length field.
        length: u16,
    },
    /// The base table's bytes do not sum to zero.
    BadTableChecksum {
        /// The table's address.
        address: u64,
    },
    /// A configuration table revision other than 1 or 4.
    BadTableRevision(u8),
    /// The local APIC address is 0.
    NullLocalApicAddress,
    /// A base entry runs past the end of the base table.
    EntryTruncated {
        /// Offset of the entry in the table.
        offset: usize,
        /// Its type.
        kind: u8,
    },
    /// A base entry of a type MP 1.4 does not define: the rest of the table cannot be walked.
    UnknownEntryType {
        /// Offset of the entry in the table.
        offset: usize,
        /// Its type.
        kind: u8,
    },
    /// (warning) The header's entry count disagrees with the entries in the base table.
    EntryCountMismatch {
        /// The header's count.
        declared: u16,
        /// Entries found.
        found: u32,
    },
    /// (warning) A bus entry of a type other than PCI or ISA: its interrupts are not used.
    UnknownBusType {
        /// Bus ID.
        bus: u8,
        /// The six type bytes.
        name: [u8; 6],
    },
    /// (warning) Two bus entries with the same ID: the first is kept.
    DuplicateBus {
        /// Bus ID.
        bus: u8,
    },
    /// (warning) Two I/O APIC entries with the same ID: the first is kept.
    DuplicateIoApic {
        /// I/O APIC ID.
        id: u8,
    },
    /// (warning) An interrupt entry names a bus no bus entry declares: the entry is not used.
    UndeclaredBus {
        /// Offset of the entry in the table.
        offset: usize,
        /// The bus ID it names.
        bus: u8,
    },
    /// (warning) An I/O interrupt entry names an I/O APIC no I/O APIC entry declares: the entry is not used.
    UndeclaredIoApic {
        /// Offset of the entry in the table.
        offset: usize,
        /// The I/O APIC ID it names.
        id: u8,
    },
    /// (warning) An interrupt entry with the reserved polarity or trigger value (10b): read as active-low
    /// and level, as Linux does.
    ReservedFlags {
        /// Offset of the entry in the table.
        offset: usize,
        /// Its flags.
        flags: u16,
    },
    /// (warning) Two I/O interrupt entries for the same PCI bus, device and pin with different destinations:
    /// the first is used.
    ConflictingEntries {
        /// PCI bus.
        bus: u8,
        /// Source bus IRQ (device << 2 | pin).
        irq: u8,
    },
    /// (warning) The extended table reaches past readable memory.
    ExtendedPastEnd {
        /// Its address.
        address: u64,
        /// Its length.
        length: u16,
    },
    /// (warning) The extended table's bytes and its checksum do not sum to zero.
    ExtendedBadChecksum,
    /// (warning) An extended entry shorter than its own header or running past the extended table.
    ExtendedEntryMalformed {
        /// Offset in the extended table.
        offset: usize,
        /// Its length byte.
        length: u8,
    },
}

impl fmt::Display for MpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FloatingBadLength { address, length } => {
                write!(f, "MP floating pointer at {address:#x}: length {length} paragraphs, not 1")
            }
            Self::FloatingBadChecksum { address } => write!(f, "MP floating pointer at {address:#x}: bad checksum"),
            Self::FloatingBadRevision { address, revision } => {
                write!(f, "MP floating pointer at {address:#x}: revision {revision}, not 1 or 4")
            }
            Self::DefaultConfiguration(n) => {
                write!(f, "MP default configuration {n} instead of a table: no PCI interrupt entries")
            }
            Self::NoTablePointer => write!(f, "MP floating pointer names neither a table nor a default configuration"),
            Self::TableUnreadable { address } => write!(f, "MP configuration table at {address:#x} is not in readable memory"),
            Self::BadTableSignature { address, found } => {
                write!(f, "MP configuration table at {address:#x}: signature {:?}, not \"PCMP\"", EscapedBytes(found))
            }
            Self::TableTooShort { length } => write!(f, "MP configuration table length {length} is shorter than its header"),
            Self::TablePastEnd { address, length } => {
                write!(f, "MP configuration table at {address:#x} of {length} bytes reaches past readable memory")
            }
            Self::BadTableChecksum { address } => write!(f, "MP configuration table at {address:#x}: bad checksum"),
            Self::BadTableRevision(r) => write!(f, "MP configuration table revision {r}, not 1 or 4"),
            Self::NullLocalApicAddress => write!(f, "MP configuration table: local APIC address 0"),
            Self::EntryTruncated { offset, kind } => {
                write!(f, "MP table entry of type {kind} at offset {offset} runs past the end of the table")
            }
            Self::UnknownEntryType { offset, kind } => {
                write!(f, "MP table entry of unknown type {kind} at offset {offset}: the rest cannot be walked")
            }
            Self::EntryCountMismatch { declared, found } => {
                write!(f, "MP table header counts {declared} entries, the table holds {found}")
            }
            Self::UnknownBusType { bus, name } => {
                write!(f, "MP bus {bus} of unknown type {:?}: its interrupt entries are not used", EscapedBytes(name))
            }
            Self::DuplicateBus { bus } => write!(f, "MP bus {bus} declared twice; the first entry is kept"),
            Self::DuplicateIoApic { id } => write!(f, "MP I/O APIC {id} declared twice; the first entry is kept"),
            Self::UndeclaredBus { offset, bus } => {
                write!(f, "MP interrupt entry at offset {offset} names undeclared bus {bus}; not used")
            }
            Self::UndeclaredIoApic { offset, id } => {
                write!(f, "MP interrupt entry at offset {offset} names undeclared I/O APIC {id}; not used")
            }
            Self::ReservedFlags { offset, flags } => write!(
                f,
                "MP interrupt entry at offset {offset}: reserved polarity or trigger in flags {flags:#x}; read as active-low, level (as Linux)"
            ),
            Self::ConflictingEntries { bus, irq } => write!(
                f,
                "MP table routes PCI bus {bus} device {} INT{} twice, to different inputs; the first is used",
                irq >> 2,
                pin_name(irq & 3)
            ),
            Self::ExtendedPastEnd { address, length } => {
                write!(f, "MP extended table at {address:#x} of {length} bytes reaches past readable memory")
            }
            Self::ExtendedBadChecksum => write!(f, "MP extended table: bad checksum"),
            Self::ExtendedEntryMalformed { offset, length } => {
                write!(f, "MP extended table entry at offset {offset} has length {length}, which does not fit")
            }
        }
    }
}

/// Shows table bytes as text when printable, escaped otherwise.
struct EscapedBytes<'a>(&'a [u8]);

impl fmt::Debug for EscapedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

fn pin_name(pin: u8) -> char {
    (b'A' + (pin & 3)) as char
}

/// The kind of a bus the table declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// No bus entry with this ID.
    Undeclared,
    /// "PCI   ".
    Pci,
    /// "ISA   ".
    Isa,
    /// Any other type string (EISA, MCA, ...).
    Other,
}

/// An I/O APIC entry (MP 1.4 §4.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicEntry {
    /// I/O APIC ID.
    pub id: u8,
    /// Version register value.
    pub version: u8,
    /// The EN flag: clear means "unusable".
    pub usable: bool,
    /// Register window address.
    pub address: u32,
}

/// Where a PCI interrupt arrives, from an I/O interrupt assignment entry (MP 1.4 §4.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciInterrupt {
    /// Destination I/O APIC ID ([`ALL_IO_APICS`] = every I/O APIC).
    pub io_apic: u8,
    /// The input (INTIN#) of that I/O APIC.
    pub input: u8,
    /// Level-triggered (the PCI default when the entry says "conforms").
    pub level: bool,
    /// Active-low (the PCI default when the entry says "conforms").
    pub active_low: bool,
}

/// One base table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A processor: local APIC ID and whether it is enabled.
    Processor {
        /// Local APIC ID.
        apic_id: u8,
        /// The EN flag.
        enabled: bool,
    },
    /// A bus.
    Bus {
        /// Bus ID.
        id: u8,
        /// The six type bytes.
        name: [u8; 6],
    },
    /// An I/O APIC.
    IoApic(IoApicEntry),
    /// An I/O interrupt assignment.
    IoInterrupt(Interrupt),
    /// A local interrupt assignment.
    LocalInterrupt(Interrupt),
}

/// An interrupt assignment entry's fields (I/O or local: the same layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    /// Offset of the entry in the table.
    pub offset: usize,
    /// Interrupt type (0 INT, 1 NMI, 2 SMI, 3 ExtINT).
    pub kind: u8,
    /// Polarity (bits 1:0) and trigger mode (bits 3:2).
    pub flags: u16,
    /// Source bus ID.
    pub bus: u8,
    /// Source bus IRQ (for PCI: device << 2 | pin, pin 0 = INTA).
    pub irq: u8,
    /// Destination APIC ID.
    pub dest: u8,
    /// Destination input (INTIN# or LINTIN#).
    pub input: u8,
}

/// A checked MP configuration table.
#[derive(Debug, Clone)]
pub struct MpTable<'m> {
    /// Address of the floating pointer structure.
    pub floating_address: u64,
    /// Address of the configuration table.
    pub table_address: u64,
    /// Specification revision of the table (1 or 4).
    pub revision: u8,
    /// The local APIC address the table gives.
    pub local_apic_address: u32,
    /// IMCR present (PIC mode at hand-over; MP 1.4 §3.6.2.1).
    pub imcr: bool,
    /// What is wrong but tolerated, as Linux tolerates it.
    pub warnings: Vec<MpError, MAX_WARNINGS>,
    /// Warnings beyond [`MAX_WARNINGS`].
    pub warnings_dropped: u32,
    /// The base entries (the table after its header), every entry checked to lie inside.
    entries: &'m [u8],
    /// Each bus ID's kind (the first declaration wins).
    buses: [BusKind; 256],
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// The areas MP 1.4 §4 names for the floating pointer, in Linux's order of search after its first KiB of
/// memory (the real-mode vector table, which no BIOS this firmware meets uses): the last KiB of base memory
/// (from the BDA's size word, and 639 KiB as Linux assumes), the BIOS ROM area, the first KiB of the EBDA.
pub fn search_ranges<M: PhysMemory + ?Sized>(mem: &M) -> [Range<u64>; 4] {
    let word = |at| mem.bytes(at, 2).and_then(|b| le16(b, 0));
    let base_top = word(BDA_BASE_MEMORY_KIB)
        .map(|kib| u64::from(kib) << 10)
        .filter(|top| BASE_MEMORY_TOP.contains(top) || *top == BASE_MEMORY_TOP.end)
        .filter(|top| *top != 640 << 10)
        .map_or(0..0, |top| top - 1024..top);
    let ebda = word(BDA_EBDA_SEGMENT)
        .map(|segment| u64::from(segment) << 4)
        .filter(|start| BASE_MEMORY_TOP.contains(start))
        .map_or(0..0, |start| start..start + 1024);
    [base_top, (639 << 10)..(640 << 10), BIOS_AREA, ebda]
}

/// Checks the floating pointer structure at `address`: `Ok(false)` when there is no "_MP_" there.
fn check_floating<M: PhysMemory + ?Sized>(mem: &M, address: u64) -> Result<bool, MpError> {
    let Some(b) = mem.bytes(address, FLOATING_LEN) else {
        return Ok(false);
    };
    if b.get(..4) != Some(&FLOATING_SIGNATURE[..]) {
        return Ok(false);
    }
    let length = b.get(FP_LENGTH).copied().unwrap_or(0);
    if length != 1 {
        return Err(MpError::FloatingBadLength { address, length });
    }
    if sum(b) != 0 {
        return Err(MpError::FloatingBadChecksum { address });
    }
    match b.get(FP_REVISION).copied().unwrap_or(0) {
        1 | 4 => Ok(true),
        revision => Err(MpError::FloatingBadRevision { address, revision }),
    }
}

/// Scans [`search_ranges`] on 16-byte boundaries for a valid floating pointer structure (signature, length
/// 1, checksum, revision 1 or 4, as Linux's `smp_scan_config`). `Ok(None)`: there is none; `Err`: there is
/// no valid one, and the first "_MP_" found was broken in this way.
pub fn find<M: PhysMemory + ?Sized>(mem: &M) -> Result<Option<u64>, MpError> {
    let mut first_error = None;
    for range in search_ranges(mem) {
        let Some(mut address) = range.start.checked_add(15).map(|a| a & !15) else {
            continue;
        };
        while address < range.end {
            match check_floating(mem, address) {
                Ok(true) => return Ok(Some(address)),
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            address += 16;
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// Finds and parses the MP table: `Ok(None)` when the platform has none.
pub fn discover<M: PhysMemory + ?Sized>(mem: &M) -> Result<Option<MpTable<'_>>, MpError> {
    match find(mem)? {
        Some(address) => parse(mem, address).map(Some),
        None => Ok(None),
    }
}

/// Parses the table the floating pointer at `floating` names; everything is checked before use.
pub fn parse<M: PhysMemory + ?Sized>(mem: &M, floating: u64) -> Result<MpTable<'_>, MpError> {
    if !check_floating(mem, floating)? {
        return Err(MpError::TableUnreadable { address: floating });
    }
    let fp = mem
        .bytes(floating, FLOATING_LEN)
        .ok_or(MpError::TableUnreadable { address: floating })?;
    let feature1 = fp.get(FP_FEATURE1).copied().unwrap_or(0);
    if feature1 != 0 {
        return Err(MpError::DefaultConfiguration(feature1));
    }
    let imcr = fp.get(FP_FEATURE2).is_some_and(|f| f & 0x80 != 0);
    let address = u64::from(le32(fp, FP_PHYSPTR).unwrap_or(0));
    if address == 0 {
        return Err(MpError::NoTablePointer);
    }
    let header = mem
        .bytes(address, HEADER_LEN)
        .ok_or(MpError::TableUnreadable { address })?;
    let mut found = [0u8; 4];
    found.copy_from_slice(header.get(..4).unwrap_or(&[0; 4]));
    if found != TABLE_SIGNATURE {
        return Err(MpError::BadTableSignature { address, found });
    }
    let length = le16(header, HDR_LENGTH).unwrap_or(0);
    if usize::from(length) < HEADER_LEN {
        return Err(MpError::TableTooShort { length });
    }
    let table = mem
        .bytes(address, usize::from(length))
        .ok_or(MpError::TablePastEnd { address, length })?;
    if sum(table) != 0 {
        return Err(MpError::BadTableChecksum { address });
    }
    let revision = table.get(HDR_REVISION).copied().unwrap_or(0);
    if revision != 1 && revision != 4 {
        return Err(MpError::BadTableRevision(revision));
    }
    let local_apic_address = le32(table, HDR_LAPIC).unwrap_or(0);
    if local_apic_address == 0 {
        return Err(MpError::NullLocalApicAddress);
    }
    let entries = table.get(HEADER_LEN..).unwrap_or(&[]);
    let mut mp = MpTable {
        floating_address: floating,
        table_address: address,
        revision,
        local_apic_address,
        imcr,
        warnings: Vec::new(),
        warnings_dropped: 0,
        entries,
        buses: [BusKind::Undeclared; 256],
    };

    // First walk: every entry inside the table and of a known type; buses and I/O APICs declared.
    let mut count = 0u32;
    let mut io_apic_ids = [false; 256];
    let mut offset = 0;
    while offset < entries.len() {
        let kind = entries.get(offset).copied().unwrap_or(0);
        let table_offset = HEADER_LEN + offset;
        let len = entry::len(kind).ok_or(MpError::UnknownEntryType {
            offset: table_offset,
            kind,
        })?;
        let e = entries
            .get(offset..offset + len)
            .ok_or(MpError::EntryTruncated {
                offset: table_offset,
                kind,
            })?;
        match decode(e, table_offset) {
            Some(Entry::Bus { id, name }) => {
                let kind = match &name {
                    b"PCI   " => BusKind::Pci,
                    b"ISA   " => BusKind::Isa,
                    _ => BusKind::Other,
                };
                if mp.bus_kind(id) != BusKind::Undeclared {
                    mp.warn(MpError::DuplicateBus { bus: id });
                } else {
                    if let Some(slot) = mp.buses.get_mut(usize::from(id)) {
                        *slot = kind;
                    }
                    if kind == BusKind::Other {
                        mp.warn(MpError::UnknownBusType { bus: id, name });
                    }
                }
            }
            Some(Entry::IoApic(io)) => {
                if let Some(seen) = io_apic_ids.get_mut(usize::from(io.id)) {
                    if *seen {
                        mp.warn(MpError::DuplicateIoApic { id: io.id });
                    }
                    *seen = true;
                }
            }
            _ => {}
        }
        count += 1;
        offset += len;
    }
    let declared = le16(table, HDR_ENTRY_COUNT).unwrap_or(0);
    if u32::from(declared) != count {
        mp.warn(MpError::EntryCountMismatch {
            declared,
            found: count,
        });
    }

    // Second walk: interrupt entries against the declarations.
    for e in mp.entries() {
        let (Entry::IoInterrupt(i) | Entry::LocalInterrupt(i)) = e else {
            continue;
        };
        if mp.bus_kind(i.bus) == BusKind::Undeclared {
            mp.warn(MpError::UndeclaredBus {
                offset: i.offset,
                bus: i.bus,
            });
        }
        if i.flags & 0b11 == 0b10 || (i.flags >> 2) & 0b11 == 0b10 {
            mp.warn(MpError::ReservedFlags {
                offset: i.offset,
                flags: i.flags,
            });
        }
        if let Entry::IoInterrupt(i) = e {
            if i.dest != ALL_IO_APICS && io_apic_ids.get(usize::from(i.dest)) != Some(&true) {
                mp.warn(MpError::UndeclaredIoApic {
                    offset: i.offset,
                    id: i.dest,
                });
            }
            if i.kind == INTERRUPT_INT && mp.bus_kind(i.bus) == BusKind::Pci {
                let first = mp.entries().find_map(|e| match e {
                    Entry::IoInterrupt(j)
                        if j.kind == INTERRUPT_INT && j.bus == i.bus && j.irq == i.irq =>
                    {
                        Some(j)
                    }
                    _ => None,
                });
                if first
                    .is_some_and(|j| j.offset != i.offset && (j.dest, j.input) != (i.dest, i.input))
                {
                    mp.warn(MpError::ConflictingEntries {
                        bus: i.bus,
                        irq: i.irq,
                    });
                }
            }
        }
    }

    // The extended table (MP 1.4 §5): Linux does not read it; it is checked so a broken one is reported.
    let ext_length = le16(table, HDR_EXT_LENGTH).unwrap_or(0);
    if ext_length > 0 {
        let ext_address = address + u64::from(length);
        match mem.bytes(ext_address, usize::from(ext_length)) {
            None => mp.warn(MpError::ExtendedPastEnd {
                address: ext_address,
                length: ext_length,
            }),
            Some(ext) => {
                if sum(ext).wrapping_add(table.get(HDR_EXT_CHECKSUM).copied().unwrap_or(0)) != 0 {
                    mp.warn(MpError::ExtendedBadChecksum);
                }
                let mut at = 0;
                while at < ext.len() {
                    let len = ext.get(at + 1).copied().unwrap_or(0);
                    if len < 2 || at + usize::from(len) > ext.len() {
                        mp.warn(MpError::ExtendedEntryMalformed {
                            offset: at,
                            length: len,
                        });
                        break;
                    }
                    at += usize::from(len);
                }
            }
        }
    }
    Ok(mp)
}

/// Decodes one base entry whose bytes are exactly its length.
fn decode(e: &[u8], offset: usize) -> Option<Entry> {
    let byte = |i: usize| e.get(i).copied();
    match byte(0)? {
        entry::PROCESSOR => Some(Entry::Processor {
            apic_id: byte(1)?,
            enabled: byte(3)? & 1 != 0,
        }),
        entry::BUS => {
            let mut name = [0u8; 6];
            name.copy_from_slice(e.get(2..8)?);
            Some(Entry::Bus { id: byte(1)?, name })
        }
        entry::IO_APIC => Some(Entry::IoApic(IoApicEntry {
            id: byte(1)?,
            version: byte(2)?,
            usable: byte(3)? & 1 != 0,
            address: le32(e, 4)?,
        })),
        kind @ (entry::IO_INTERRUPT | entry::LOCAL_INTERRUPT) => {
            let i = Interrupt {
                offset,
                kind: byte(1)?,
                flags: le16(e, 2)?,
                bus: byte(4)?,
                irq: byte(5)?,
                dest: byte(6)?,
                input: byte(7)?,
            };
            Some(if kind == entry::IO_INTERRUPT {
                Entry::IoInterrupt(i)
            } else {
                Entry::LocalInterrupt(i)
            })
        }
        _ => None,
    }
}

impl<'m> MpTable<'m> {
    fn warn(&mut self, w: MpError) {
        if self.warnings.push(w).is_err() {
            self.warnings_dropped = self.warnings_dropped.saturating_add(1);
        }
    }

    /// The base entries in table order.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + 'm {
        let bytes = self.entries;
        let mut offset = 0;
        core::iter::from_fn(move || {
            let kind = *bytes.get(offset)?;
            let len = entry::len(kind)?;
            let e = decode(bytes.get(offset..offset + len)?, HEADER_LEN + offset)?;
            offset += len;
            Some(e)
        })
    }

    /// The kind of bus `id`, as its (first) bus entry declares it.
    pub fn bus_kind(&self, id: u8) -> BusKind {
        self.buses
            .get(usize::from(id))
            .copied()
            .unwrap_or(BusKind::Undeclared)
    }

    /// The I/O APIC entries in table order (the order Linux gives them GSI ranges in), duplicates left out.
    pub fn io_apics(&self) -> impl Iterator<Item = IoApicEntry> + 'm {
        let mut seen = [false; 256];
        self.entries().filter_map(move |e| match e {
            Entry::IoApic(io)
                if seen
                    .get_mut(usize::from(io.id))
                    .is_some_and(|s| !core::mem::replace(s, true)) =>
            {
                Some(io)
            }
            _ => None,
        })
    }

    /// Vectored I/O interrupt entries whose source is a PCI bus.
    pub fn pci_entries(&self) -> impl Iterator<Item = Interrupt> + '_ {
        self.entries().filter_map(move |e| match e {
            Entry::IoInterrupt(i)
                if i.kind == INTERRUPT_INT && self.bus_kind(i.bus) == BusKind::Pci =>
            {
                Some(i)
            }
            _ => None,
        })
    }

    /// Whether any vectored I/O interrupt entry comes from PCI bus `bus`.
    pub fn covers_pci_bus(&self, bus: u8) -> bool {
        self.pci_entries().any(|i| i.bus == bus)
    }

    /// Where PCI bus `bus`, device `dev`, pin `pin` (0 = INTA) is routed: the first vectored I/O interrupt
    /// entry with exactly that source. Polarity and trigger "conform to the bus" mean PCI's active-low and
    /// level (MP 1.4 Table 4-10); the reserved value 10b is read as active-low and level, as Linux does.
    /// No fuzzy match on the pin: Linux falls back to another pin of the same device for broken tables, which
    /// on QEMU's boards gives a wrong input for the pins SeaBIOS lists no entry for.
    pub fn pci_interrupt(&self, bus: u8, dev: u8, pin: u8) -> Option<PciInterrupt> {
        if dev > 31 || pin > 3 {
            return None;
        }
        let irq = dev << 2 | pin;
        let i = self.pci_entries().find(|i| i.bus == bus && i.irq == irq)?;
        Some(PciInterrupt {
            io_apic: i.dest,
            input: i.input,
            active_low: i.flags & 0b11 != 0b01,
            level: (i.flags >> 2) & 0b11 != 0b01,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physmem::SliceMemory;

    /// Where the test images start: the F-segment, like SeaBIOS's table.
    const BASE: u64 = 0xF_0000;

    /// A configuration table builder.
    #[derive(Default, Clone)]
    struct Table {
        entries: std::vec::Vec<u8>,
        count: u16,
    }

    impl Table {
        fn processor(mut self, apic_id: u8) -> Self {
            self.entries.extend_from_slice(&[
                entry::PROCESSOR,
                apic_id,
                0x14,
                0x03,
                0x63,
                0x06,
                0,
                0,
            ]);
            self.entries
                .extend_from_slice(&[0xFF, 0xFB, 0x8B, 0x07, 0, 0, 0, 0, 0, 0, 0, 0]);
            self.count += 1;
            self
        }
        fn bus(mut self, id: u8, name: &[u8; 6]) -> Self {
            self.entries.extend_from_slice(&[entry::BUS, id]);
            self.entries.extend_from_slice(name);
            self.count += 1;
            self
        }
        fn io_apic(mut self, id: u8, usable: bool, address: u32) -> Self {
            self.entries
                .extend_from_slice(&[entry::IO_APIC, id, 0x11, usable as u8]);
            self.entries.extend_from_slice(&address.to_le_bytes());
            self.count += 1;
            self
        }
        fn intsrc(mut self, kind: u8, flags: u16, bus: u8, irq: u8, dest: u8, input: u8) -> Self {
            self.entries.extend_from_slice(&[entry::IO_INTERRUPT, kind]);
            self.entries.extend_from_slice(&flags.to_le_bytes());
            self.entries.extend_from_slice(&[bus, irq, dest, input]);
            self.count += 1;
            self
        }
        fn lintsrc(mut self, kind: u8, dest: u8, input: u8) -> Self {
            self.entries.extend_from_slice(&[
                entry::LOCAL_INTERRUPT,
                kind,
                0,
                0,
                1,
                0,
                dest,
                input,
            ]);
            self.count += 1;
            self
        }

        /// The table as QEMU 7.2's SeaBIOS builds it on pc with e1000e, nvme and edu at 02-04 (pins 10, 11, 11),
        /// PIIX3 IDE and ACPI at 01.1/01.3 (01.3 has INTA -> 9 in SeaBIOS; kept here as the SCI line).
        fn seabios_pc() -> Self {
            let mut t = Table::default()
                .processor(0)
                .bus(0, b"PCI   ")
                .bus(1, b"ISA   ")
                .io_apic(0, true, 0xFEC0_0000);
            for (dev, pin, line) in [(1u8, 0u8, 9u8), (2, 0, 10), (3, 0, 11), (4, 0, 11)] {
                t = t.intsrc(INTERRUPT_INT, 1, 0, dev << 2 | pin, 0, line);
            }
            for irq in 0..16u8 {
                if [2, 5, 9, 10, 11].contains(&irq) {
                    continue;
                }
                t = t.intsrc(INTERRUPT_INT, 0, 1, irq, 0, if irq == 0 { 2 } else { irq });
            }
            t.lintsrc(3, 0, 0).lintsrc(1, 0xFF, 1)
        }

        /// Header + entries with a correct checksum.
        fn bytes(&self, revision: u8) -> std::vec::Vec<u8> {
            let length = (HEADER_LEN + self.entries.len()) as u16;
            let mut t = std::vec::Vec::new();
            t.extend_from_slice(b"PCMP");
            t.extend_from_slice(&length.to_le_bytes());
            t.extend_from_slice(&[revision, 0]);
            t.extend_from_slice(b"BOCHSCPU0.1         ");
            t.extend_from_slice(&[0; 6]);
            t.extend_from_slice(&self.count.to_le_bytes());
            t.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
            t.extend_from_slice(&[0; 4]);
            t.extend_from_slice(&self.entries);
            t[7] = 0u8.wrapping_sub(sum(&t));
            t
        }
    }

    /// A 64 KiB F-segment image with the floating pointer at 0xF5B80 (where SeaBIOS put it on q35) and the
    /// table at 0xF5B90.
    struct Image {
        bytes: std::vec::Vec<u8>,
    }

    const FP: u64 = 0xF_5B80;
    const TABLE: u64 = 0xF_5B90;

    impl Image {
        fn new(table: &[u8]) -> Self {
            let mut bytes = vec![0u8; 0x1_0000];
            let at = (FP - BASE) as usize;
            bytes[at..at + 4].copy_from_slice(b"_MP_");
            bytes[at + 4..at + 8].copy_from_slice(&(TABLE as u32).to_le_bytes());
            bytes[at + 8] = 1;
            bytes[at + 9] = 4;
            let t = (TABLE - BASE) as usize;
            bytes[t..t + table.len()].copy_from_slice(table);
            let mut image = Image { bytes };
            image.fix_floating();
            image
        }
        fn fix_floating(&mut self) {
            let at = (FP - BASE) as usize;
            self.bytes[at + 10] = 0;
            self.bytes[at + 10] = 0u8.wrapping_sub(sum(&self.bytes[at..at + 16]));
        }
        fn fix_table(&mut self) {
            let t = (TABLE - BASE) as usize;
            let len = u16::from_le_bytes([self.bytes[t + 4], self.bytes[t + 5]]) as usize;
            self.bytes[t + 7] = 0;
            let end = (t + len).min(self.bytes.len());
            self.bytes[t + 7] = 0u8.wrapping_sub(sum(&self.bytes[t..end]));
        }
        fn mem(&self) -> SliceMemory<'_> {
            SliceMemory::new(BASE, &self.bytes)
        }
        fn table_byte(&mut self, offset: usize) -> &mut u8 {
            &mut self.bytes[(TABLE - BASE) as usize + offset]
        }
    }

    fn parsed<'a>(mem: &'a SliceMemory<'a>) -> Result<MpTable<'a>, MpError> {
        let at = find(mem)?.ok_or(MpError::NoTablePointer)?;
        parse(mem, at)
    }

    #[test]
    fn seabios_pc_table() {
        let image = Image::new(&Table::seabios_pc().bytes(4));
        let mem = image.mem();
        let mp = parsed(&mem).unwrap();
        assert_eq!(
            (
                mp.floating_address,
                mp.table_address,
                mp.revision,
                mp.local_apic_address
            ),
            (FP, TABLE, 4, 0xFEE0_0000)
        );
        assert!(mp.warnings.is_empty(), "{:?}", mp.warnings);
        assert_eq!(
            mp.io_apics().collect::<std::vec::Vec<_>>(),
            [IoApicEntry {
                id: 0,
                version: 0x11,
                usable: true,
                address: 0xFEC0_0000
            }]
        );
        assert_eq!(
            (mp.bus_kind(0), mp.bus_kind(1), mp.bus_kind(2)),
            (BusKind::Pci, BusKind::Isa, BusKind::Undeclared)
        );
        // SeaBIOS: irqflag 1 = active high, trigger "conforms" = level for PCI.
        let nvme = mp.pci_interrupt(0, 3, 0).unwrap();
        assert_eq!(
            nvme,
            PciInterrupt {
                io_apic: 0,
                input: 11,
                level: true,
                active_low: false
            }
        );
        assert_eq!(mp.pci_interrupt(0, 2, 0).map(|i| i.input), Some(10));
        assert_eq!(
            mp.pci_interrupt(0, 3, 1),
            None,
            "no fuzzy match on another pin"
        );
        assert_eq!(
            mp.pci_interrupt(1, 0, 3),
            None,
            "the ISA bus's IRQ 3 is not a PCI interrupt"
        );
        assert_eq!(mp.pci_interrupt(0, 32, 0), None);
        assert!(mp.covers_pci_bus(0) && !mp.covers_pci_bus(1));
        assert_eq!(mp.pci_entries().count(), 4);
    }

    #[test]
    fn conforming_flags_are_pci_defaults_and_explicit_ones_are_read() {
        let t = Table::default()
            .bus(0, b"PCI   ")
            .io_apic(2, true, 0xFEC0_0000)
            .intsrc(INTERRUPT_INT, 0b0000, 0, 1 << 2, 2, 16)
            .intsrc(INTERRUPT_INT, 0b0101, 0, 2 << 2, 2, 17)
            .intsrc(INTERRUPT_INT, 0b1111, 0, 3 << 2, 2, 18);
        let image = Image::new(&t.bytes(1));
        let mem = image.mem();
        let mp = parsed(&mem).unwrap();
        assert_eq!(
            mp.pci_interrupt(0, 1, 0),
            Some(PciInterrupt {
                io_apic: 2,
                input: 16,
                level: true,
                active_low: true
            })
        );
        assert_eq!(
            mp.pci_interrupt(0, 2, 0),
            Some(PciInterrupt {
                io_apic: 2,
                input: 17,
                level: false,
                active_low: false
            })
        );
        assert_eq!(
            mp.pci_interrupt(0, 3, 0),
            Some(PciInterrupt {
                io_apic: 2,
                input: 18,
                level: true,
                active_low: true
            })
        );
    }

    #[test]
    fn nothing_found_is_not_an_error() {
        let bytes = vec![0u8; 0x1_0000];
        assert_eq!(
            discover(&SliceMemory::new(BASE, &bytes)).map(|t| t.is_some()),
            Ok(false)
        );
    }

    #[test]
    fn found_in_each_area_the_spec_names() {
        // Low memory image: BDA with EBDA at 0x9F000 and 636 KiB base memory; the table in the EBDA's first KiB.
        let table = Table::seabios_pc().bytes(4);
        for fp in [0x9_F000u64 + 0x3F0, (636 << 10) - 16, (639 << 10) + 0x200] {
            let mut low = vec![0u8; 0xA_0000];
            low[0x40E..0x410].copy_from_slice(&(0x9F00u16).to_le_bytes());
            low[0x413..0x415].copy_from_slice(&636u16.to_le_bytes());
            let at = fp as usize;
            low[at..at + 4].copy_from_slice(b"_MP_");
            low[at + 4..at + 8].copy_from_slice(&0x5_0000u32.to_le_bytes());
            low[at + 8] = 1;
            low[at + 9] = 4;
            low[at + 10] = 0u8.wrapping_sub(sum(&low[at..at + 16]));
            low[0x5_0000..0x5_0000 + table.len()].copy_from_slice(&table);
            let mem = SliceMemory::new(0, &low);
            assert_eq!(find(&mem), Ok(Some(fp)), "floating pointer at {fp:#x}");
            assert!(parse(&mem, fp).is_ok());
        }
    }

    #[test]
    fn floating_pointer_errors() {
        let table = Table::seabios_pc().bytes(4);
        let at = (FP - BASE) as usize;
        let mut image = Image::new(&table);
        image.bytes[at + 8] = 2;
        image.fix_floating();
        assert_eq!(
            find(&image.mem()),
            Err(MpError::FloatingBadLength {
                address: FP,
                length: 2
            })
        );
        let mut image = Image::new(&table);
        image.bytes[at + 4] ^= 1;
        assert_eq!(
            find(&image.mem()),
            Err(MpError::FloatingBadChecksum { address: FP })
        );
        let mut image = Image::new(&table);
        image.bytes[at + 9] = 5;
        image.fix_floating();
        assert_eq!(
            find(&image.mem()),
            Err(MpError::FloatingBadRevision {
                address: FP,
                revision: 5
            })
        );
        let mut image = Image::new(&table);
        image.bytes[at + 11] = 5;
        image.fix_floating();
        assert_eq!(
            discover(&image.mem()).map(|t| t.is_some()),
            Err(MpError::DefaultConfiguration(5))
        );
        let mut image = Image::new(&table);
        image.bytes[at + 4..at + 8].fill(0);
        image.fix_floating();
        assert_eq!(
            discover(&image.mem()).map(|t| t.is_some()),
            Err(MpError::NoTablePointer)
        );
        let mut image = Image::new(&table);
        image.bytes[at + 4..at + 8].copy_from_slice(&0x10_0000u32.to_le_bytes());
        image.fix_floating();
        assert_eq!(
            discover(&image.mem()).map(|t| t.is_some()),
            Err(MpError::TableUnreadable { address: 0x10_0000 })
        );
        // A broken candidate before a good one: the good one is used.
        let mut image = Image::new(&table);
        let early = (0xF_1000 - BASE) as usize;
        image.bytes[early..early + 4].copy_from_slice(b"_MP_");
        assert_eq!(find(&image.mem()), Ok(Some(FP)));
    }

    #[test]
    fn table_header_errors() {
        let good = Table::seabios_pc().bytes(4);
        let mut image = Image::new(&good);
        *image.table_byte(0) = b'X';
        image.fix_table();
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::BadTableSignature {
                address: TABLE,
                found: *b"XCMP"
            })
        );
        let mut image = Image::new(&good);
        *image.table_byte(4) = 40;
        *image.table_byte(5) = 0;
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::TableTooShort { length: 40 })
        );
        let mut image = Image::new(&good);
        *image.table_byte(4) = 0xFF;
        *image.table_byte(5) = 0xFF;
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::TablePastEnd {
                address: TABLE,
                length: 0xFFFF
            })
        );
        let mut image = Image::new(&good);
        *image.table_byte(20) ^= 0x40;
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::BadTableChecksum { address: TABLE })
        );
        let mut image = Image::new(&good);
        *image.table_byte(6) = 2;
        image.fix_table();
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::BadTableRevision(2))
        );
        let mut image = Image::new(&good);
        for i in 36..40 {
            *image.table_byte(i) = 0;
        }
        image.fix_table();
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::NullLocalApicAddress)
        );
    }

    #[test]
    fn entry_errors() {
        let mut t = Table::seabios_pc();
        t.entries.push(9);
        t.entries.extend_from_slice(&[0; 7]);
        let image = Image::new(&t.bytes(4));
        let end = HEADER_LEN + Table::seabios_pc().entries.len();
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::UnknownEntryType {
                offset: end,
                kind: 9
            })
        );
        // A processor entry (20 bytes) with only 8 bytes left in the table.
        let mut t = Table::seabios_pc();
        t.entries
            .extend_from_slice(&[entry::PROCESSOR, 1, 0x14, 1, 0, 0, 0, 0]);
        let image = Image::new(&t.bytes(4));
        assert_eq!(
            parsed(&image.mem()).err(),
            Some(MpError::EntryTruncated {
                offset: end,
                kind: entry::PROCESSOR
            })
        );
    }

    #[test]
    fn tolerated_faults_are_warnings() {
        let mut t = Table::default()
            .bus(0, b"PCI   ")
            .bus(0, b"ISA   ")
            .bus(3, b"EISA  ")
            .io_apic(1, true, 0xFEC0_0000)
            .io_apic(1, true, 0xFEC0_1000)
            .intsrc(INTERRUPT_INT, 0b1010, 0, 1 << 2, 1, 5)
            .intsrc(INTERRUPT_INT, 0, 7, 0, 1, 6)
            .intsrc(INTERRUPT_INT, 0, 0, 2 << 2, 9, 7)
            .intsrc(INTERRUPT_INT, 0, 0, 3 << 2, 1, 8)
            .intsrc(INTERRUPT_INT, 0, 0, 3 << 2, 1, 9);
        t.count = 99;
        let mp_bytes = t.bytes(4);
        let image = Image::new(&mp_bytes);
        let mem = image.mem();
        let mp = parsed(&mem).unwrap();
        let w = |e: MpError| mp.warnings.contains(&e);
        assert!(w(MpError::DuplicateBus { bus: 0 }), "{:?}", mp.warnings);
        assert!(w(MpError::UnknownBusType {
            bus: 3,
            name: *b"EISA  "
        }));
        assert!(w(MpError::DuplicateIoApic { id: 1 }));
        assert!(w(MpError::EntryCountMismatch {
            declared: 99,
            found: 10
        }));
        assert!(w(MpError::UndeclaredBus {
            offset: HEADER_LEN + 5 * 8 + 8,
            bus: 7
        }));
        assert!(w(MpError::UndeclaredIoApic {
            offset: HEADER_LEN + 5 * 8 + 16,
            id: 9
        }));
        assert!(w(MpError::ConflictingEntries {
            bus: 0,
            irq: 3 << 2
        }));
        assert_eq!(mp.warnings.len() as u32 + mp.warnings_dropped, 8);
        // The first declaration wins; reserved flags read as low/level; the first of two entries is used.
        assert_eq!(mp.bus_kind(0), BusKind::Pci);
        assert_eq!(mp.io_apics().count(), 1);
        assert_eq!(
            mp.pci_interrupt(0, 1, 0),
            Some(PciInterrupt {
                io_apic: 1,
                input: 5,
                level: true,
                active_low: true
            })
        );
        assert_eq!(mp.pci_interrupt(0, 3, 0).map(|i| i.input), Some(8));
        let reserved = mp.warnings.contains(&MpError::ReservedFlags {
            offset: HEADER_LEN + 5 * 8,
            flags: 0b1010,
        });
        assert!(reserved || mp.warnings_dropped > 0);
    }

    #[test]
    fn extended_table_checked() {
        let base = Table::seabios_pc().bytes(4);
        // Extended entries: one bus hierarchy descriptor (type 129, length 8).
        let ext = [129u8, 8, 1, 1, 0, 0, 0, 0];
        let with_ext = |ext_len: u16, checksum: u8| {
            let mut t = base.clone();
            t[40..42].copy_from_slice(&ext_len.to_le_bytes());
            t[42] = checksum;
            t[7] = 0;
            t[7] = 0u8.wrapping_sub(sum(&t));
            t.extend_from_slice(&ext);
            t
        };
        let good = 0u8.wrapping_sub(sum(&ext));
        let image = Image::new(&with_ext(8, good));
        assert!(parsed(&image.mem()).unwrap().warnings.is_empty());
        let image = Image::new(&with_ext(8, good ^ 1));
        assert_eq!(
            parsed(&image.mem()).unwrap().warnings.as_slice(),
            [MpError::ExtendedBadChecksum]
        );
        let image = Image::new(&with_ext(6, 0u8.wrapping_sub(sum(&ext[..6]))));
        assert_eq!(
            parsed(&image.mem()).unwrap().warnings.as_slice(),
            [MpError::ExtendedEntryMalformed {
                offset: 0,
                length: 8
            }]
        );
        let image = Image::new(&with_ext(0xF000, good));
        assert!(matches!(
            parsed(&image.mem()).unwrap().warnings.as_slice(),
            [MpError::ExtendedPastEnd { .. }]
        ));
    }

    #[test]
    fn every_error_displays() {
        let errors = [
            MpError::FloatingBadLength {
                address: 1,
                length: 2,
            },
            MpError::BadTableSignature {
                address: 1,
                found: [0, b'A', 0xFF, b' '],
            },
            MpError::UnknownBusType {
                bus: 1,
                name: *b"EISA\0\0",
            },
            MpError::ConflictingEntries { bus: 0, irq: 0x0E },
            MpError::ReservedFlags {
                offset: 3,
                flags: 0xA,
            },
        ];
        for e in errors {
            assert!(!e.to_string().is_empty());
        }
        assert!(MpError::ConflictingEntries { bus: 0, irq: 0x0E }
            .to_string()
            .contains("device 3 INTC"));
    }

    /// Robustness in `cargo test` (the fuzz target `mptable` goes further): many mutations of a SeaBIOS-shaped
    /// image (bytes flipped, set to boundary values, lengths and counts changed, checksums repaired or not),
    /// each parsed and every accessor run; none may panic, and a table that parses answers consistently.
    #[test]
    fn mutated_tables_never_panic() {
        let mut t = Table::seabios_pc();
        t = t.intsrc(INTERRUPT_INT, 0b1111, 0, 5 << 2 | 2, 0, 10);
        let good = Image::new(&t.bytes(4));
        let fp_at = (FP - BASE) as usize;
        let t_at = (TABLE - BASE) as usize;
        let len = t.bytes(4).len();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed_ok = 0;
        // MSIFW_MPTABLE_MUTATIONS=1000000 for a longer run (the README's figure).
        let runs: u32 = std::env::var("MSIFW_MPTABLE_MUTATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        for _ in 0..runs {
            let mut image = Image {
                bytes: good.bytes.clone(),
            };
            let mutations = 1 + next() % 4;
            for _ in 0..mutations {
                let r = next();
                // Mostly inside the floating pointer and the table (and a little past its end).
                let at = if r % 5 == 0 {
                    fp_at + (r >> 8) as usize % 16
                } else {
                    t_at + (r >> 8) as usize % (len + 16)
                };
                image.bytes[at] = match (r >> 40) % 4 {
                    0 => image.bytes[at] ^ (1 << ((r >> 48) % 8)),
                    1 => [0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFF][(r >> 48) as usize % 9],
                    2 => image.bytes[at].wrapping_add(1),
                    _ => (r >> 52) as u8,
                };
            }
            if next() % 4 != 0 {
                image.fix_table();
            }
            if next() % 2 == 0 {
                image.fix_floating();
            }
            let mem = image.mem();
            if let Ok(Some(mp)) = discover(&mem) {
                parsed_ok += 1;
                let entries = mp.entries().count();
                assert!(entries * 8 <= usize::from(u16::MAX));
                for io in mp.io_apics() {
                    let _ = io.address;
                }
                for bus in 0..=255u8 {
                    let _ = mp.bus_kind(bus);
                    let _ = mp.covers_pci_bus(bus);
                }
                for irq in 0..=255u8 {
                    if let Some(i) = mp.pci_interrupt(0, irq >> 2, irq & 3) {
                        assert!(mp
                            .pci_entries()
                            .any(|e| e.input == i.input && e.dest == i.io_apic));
                    }
                }
                for w in mp.warnings.iter() {
                    let _ = w.to_string();
                }
            }
        }
        assert!(
            parsed_ok > runs / 20,
            "too few mutants parsed ({parsed_ok} of {runs}) for the accessors to be exercised"
        );
    }
}
