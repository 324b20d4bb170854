//! PCI interrupt routing of bus 0 read from the static `PRTA` package of QEMU's q35 DSDT, without an AML
//! interpreter.
//!
//! On q35, QEMU 7.2 (`build_q35_pci0_int`) puts two *static* routing packages under `\_SB.PCI0`: `PRTP` for
//! PIC mode and `PRTA` for APIC mode; `_PRT` is a Method returning one of them according to `_PIC`. `PRTA`
//! names the link devices `GSIA`..`GSIH`, whose `_CRS` is a static resource template holding one Extended
//! Interrupt descriptor for GSI 16..23. Both are plain data in the AML byte stream, so this module finds them by
//! a byte-pattern scan ([`super::aml`]) and decodes only the few AML encodings they use:
//! - [`parse_prta`]: `Name(PRTA, Package(){ Package(4){ Address, Pin, Source, SourceIndex }, ... })`
//!   (ACPI 6.5 §6.2.13; AML grammar §20.2: NameOp, PackageOp/VarPackageOp, PkgLength, integer constants,
//!   NameString);
//! - [`parse_link_gsi`]: `Device(link){ ... Name(_CRS, Buffer(){ <resource template> }) ... }` (§6.4: small and
//!   large resource items; IRQ descriptor §6.4.2.1, Extended Interrupt descriptor §6.4.3.6);
//! - [`resolve`]: both together, as a slot/pin → GSI table for bus 0 ([`Routing`]).
//!
//! The pc (i440fx) DSDT builds `_PRT` at run time in a While loop and has no `PRTA`: [`parse_prta`] reports
//! [`PrtError::NotFound`] there, and the caller uses the PIIX3 PIRQ registers instead. Without a `PRTA`, a static
//! `Name(_PRT, Package)` of `PCI0` itself is read the same way (QEMU's microvm GPEX).
//!
//! Every function is total: any byte string gives a value or a typed [`PrtError`], never a panic. Every read is
//! bounds-checked, every PkgLength is checked against its container, no loop runs longer than its input, nothing
//! recurses, and the pattern scans try at most [`MAX_CANDIDATES`] matches of a name.

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

use heapless::Vec;

use super::aml::{
    innermost_device, pci0_bodies, resource_items, static_buffer, Aml, AmlError, Hit, Kind, NameHits, TemplateError,
    DUAL_NAME_PREFIX, MULTI_NAME_PREFIX, PARENT_PREFIX_CHAR, ROOT_CHAR,
};
pub use super::aml::MAX_CANDIDATES;

/// Most `_PRT` entries kept (QEMU's q35 `PRTA` has 128: 32 slots × 4 pins).
pub const MAX_PRT_ENTRIES: usize = 256;
/// Device numbers on a PCI bus.
pub const PCI_SLOTS: usize = 32;
/// Interrupt pins of a PCI function (INTA..INTD).
pub const PCI_PINS: usize = 4;

/// Distinct link devices whose interrupt [`resolve`] remembers, so each is looked up once.
const MAX_CACHED_LINKS: usize = 16;

// Resource descriptors (ACPI 6.5 §6.4).
const SMALL_TYPE_IRQ: u8 = 0x04;
const LARGE_EXTENDED_INTERRUPT: u8 = 0x89;
/// IRQ descriptor information byte (§6.4.2.1): bit 0 `_HE` (1 = edge), bit 3 `_LL` (1 = active-low), bit 4
/// `_SHR` (1 = shared).
const IRQ_INFO_EDGE: u8 = 1 << 0;
const IRQ_INFO_ACTIVE_LOW: u8 = 1 << 3;
const IRQ_INFO_SHARED: u8 = 1 << 4;
/// Extended Interrupt descriptor flags (§6.4.3.6 Table 6.48): bit 0 consumer, bit 1 `_HE` (1 = edge, 0 =
/// level), bit 2 `_LL` (1 = active-low), bit 3 `_SHR` (1 = shared), bit 4 wake capable. QEMU's GSIx have 0x09.
const EXT_IRQ_EDGE: u8 = 1 << 1;
const EXT_IRQ_ACTIVE_LOW: u8 = 1 << 2;
const EXT_IRQ_SHARED: u8 = 1 << 3;

/// `_PRT` Address low word meaning "all functions of the device" (§6.2.13: it must be 0xFFFF).
const ALL_FUNCTIONS: u64 = 0xFFFF;

// ---------------------------------------------------------------------------------------------------------------
// Results and errors
// ---------------------------------------------------------------------------------------------------------------

/// What a `_PRT` entry's interrupt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A PCI interrupt link device, by the last NameSeg of its path (QEMU q35: `GSIA`..`GSIH`).
    Link([u8; 4]),
    /// Hard-wired: Source was the integer 0 and SourceIndex is the global system interrupt.
    Gsi(u32),
}

/// One `Package(4){ Address, Pin, Source, SourceIndex }` of a `_PRT` (ACPI 6.5 §6.2.13, Table 6.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrtEntry {
    /// PCI device number: the Address high word.
    pub slot: u8,
    /// The Address low word is 0xFFFF ("all functions"), as the spec requires.
    pub function_all: bool,
    /// 0 = INTA .. 3 = INTD.
    pub pin: u8,
    /// Link device or hard-wired GSI.
    pub source: Source,
    /// SourceIndex as written: the GSI for [`Source::Gsi`], a resource descriptor index for a link.
    pub source_index: u32,
}

/// The entries of a `PRTA` package, in the order of the AML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrtTable {
    at: usize,
    entries: Vec<PrtEntry, MAX_PRT_ENTRIES>,
}

impl PrtTable {
    /// The entries, in AML order.
    pub fn entries(&self) -> &[PrtEntry] {
        &self.entries
    }

    /// Offset of the `Name(PRTA, ...)` NameOp in the table given to [`parse_prta`].
    pub fn at(&self) -> usize {
        self.at
    }
}

/// The interrupt a link device's `_CRS` assigns (its first interrupt descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkIrq {
    /// The interrupt number. From an Extended Interrupt descriptor this is a GSI; from a legacy IRQ descriptor
    /// it is the ISA IRQ, to which the MADT's interrupt source overrides still apply.
    pub gsi: u32,
    /// Level-triggered (not edge).
    pub level: bool,
    /// Active-low (not active-high).
    pub active_low: bool,
    /// Shareable.
    pub shared: bool,
}

/// Where and how a bus-0 INTx pin arrives at the interrupt controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedIrq {
    /// Global system interrupt (IOAPIC input).
    pub gsi: u32,
    /// Level-triggered (not edge).
    pub level: bool,
    /// Active-low (not active-high).
    pub active_low: bool,
}

/// Slot/pin → interrupt for the devices on bus 0, from [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    routes: [[Option<RoutedIrq>; PCI_PINS]; PCI_SLOTS],
}

impl Routing {
    /// The interrupt of pin `pin` (0 = INTA .. 3 = INTD) of device `slot` on bus 0; `None` if the `_PRT` has no
    /// entry for it or the arguments are out of range. Devices behind bridges are first swizzled to the bridge's
    /// slot and pin on bus 0 (PCI-to-PCI Bridge spec §9.1), which is the caller's business.
    pub fn gsi(&self, slot: u8, pin: u8) -> Option<RoutedIrq> {
        *self.routes.get(usize::from(slot))?.get(usize::from(pin))?
    }
}

/// Which field of a `_PRT` entry is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryField {
    /// The entry is not a package of exactly 4 elements.
    ElementCount,
    /// Address wider than 32 bits, or a device number above 31.
    Address,
    /// Pin above 3.
    Pin,
    /// Source is an integer other than 0.
    Source,
    /// SourceIndex wider than 32 bits.
    SourceIndex,
}

/// Why routing could not be read. Offsets (`at`) are into the table given to the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrtError {
    /// No `Name(PRTA, Package)` in the table (the pc machine's DSDT, for one).
    NotFound,
    /// An object continues past the end of the table or of its enclosing package.
    Truncated {
        /// Offset of the first missing byte.
        at: usize,
    },
    /// A PkgLength shorter than its own encoding or reaching past its container.
    BadPkgLength {
        /// Offset of the PkgLength.
        at: usize,
    },
    /// An opcode this decoder does not accept where it is (a method call, a nested package, ...).
    UnexpectedOpcode {
        /// Offset of the opcode.
        at: usize,
        /// The opcode byte.
        op: u8,
    },
    /// A NameSeg with a character outside `A-Z`, `0-9`, `_` (or a digit first), or an empty MultiNamePath.
    BadName {
        /// Offset of the offending byte.
        at: usize,
    },
    /// A `_PRT` entry is not `Package(4){ Address, Pin, Source, SourceIndex }` with values in range.
    BadEntry {
        /// Offset of the entry's PackageOp.
        at: usize,
        /// What is wrong with it.
        field: EntryField,
    },
    /// Bytes left inside a package after its last element.
    TrailingBytes {
        /// Offset of the first extra byte.
        at: usize,
    },
    /// More than [`MAX_PRT_ENTRIES`] entries.
    TooManyEntries {
        /// Offset of the first entry that did not fit.
        at: usize,
    },
    /// No `Device` with this name.
    LinkNotFound([u8; 4]),
    /// The link device has no `_CRS` object at all.
    NoCrs([u8; 4]),
    /// The link device's `_CRS` is a Method (like q35's `LNKx` or pc's `LNKA`..`LNKD`): it needs an interpreter.
    CrsNotStatic([u8; 4]),
    /// The link's resource template is malformed: an item runs past the buffer, or there is no end tag.
    BadResourceTemplate {
        /// The link device.
        link: [u8; 4],
        /// Offset of the offending item (or of the buffer's end, for a missing end tag).
        at: usize,
    },
    /// The link's `_CRS` holds no IRQ or Extended Interrupt descriptor with an interrupt in it.
    NoInterruptDescriptor([u8; 4]),
    /// A `_PRT` entry selects a resource descriptor other than the first of its link; not supported.
    UnsupportedSourceIndex {
        /// The link device.
        link: [u8; 4],
        /// The entry's SourceIndex.
        index: u32,
    },
    /// Two `_PRT` entries route the same slot and pin to different interrupts.
    ConflictingRoutes {
        /// Device number.
        slot: u8,
        /// 0 = INTA .. 3 = INTD.
        pin: u8,
    },
}

/// Writes a NameSeg with non-printable bytes as `?`.
struct Seg([u8; 4]);

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() { char::from(b) } else { '?' };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Display for EntryField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ElementCount => "it is not a package of 4 elements",
            Self::Address => "its Address is not (device << 16) | function with device <= 31",
            Self::Pin => "its Pin is above 3 (INTD)",
            Self::Source => "its Source is neither a name nor the integer 0",
            Self::SourceIndex => "its SourceIndex is wider than 32 bits",
        })
    }
}

impl fmt::Display for PrtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotFound => f.write_str("no static Name(PRTA, Package) in the DSDT"),
            Self::Truncated { at } => write!(f, "AML object truncated at offset {at:#x}"),
            Self::BadPkgLength { at } => write!(f, "bad PkgLength at offset {at:#x}"),
            Self::UnexpectedOpcode { at, op } => write!(f, "unexpected AML opcode {op:#04x} at offset {at:#x}"),
            Self::BadName { at } => write!(f, "malformed AML NameString at offset {at:#x}"),
            Self::BadEntry { at, field } => write!(f, "_PRT entry at offset {at:#x}: {field}"),
            Self::TrailingBytes { at } => write!(f, "unexpected bytes after the last package element at {at:#x}"),
            Self::TooManyEntries { at } => {
                write!(f, "more than {MAX_PRT_ENTRIES} _PRT entries; the one at offset {at:#x} does not fit")
            }
            Self::LinkNotFound(link) => write!(f, "no Device({}) for a _PRT link", Seg(link)),
            Self::NoCrs(link) => write!(f, "Device({}) has no _CRS", Seg(link)),
            Self::CrsNotStatic(link) => write!(f, "Device({})._CRS is a Method, not a static buffer", Seg(link)),
            Self::BadResourceTemplate { link, at } => {
                write!(f, "Device({})._CRS: malformed resource template at offset {at:#x}", Seg(link))
            }
            Self::NoInterruptDescriptor(link) => {
                write!(f, "Device({})._CRS holds no IRQ or Extended Interrupt descriptor", Seg(link))
            }
            Self::UnsupportedSourceIndex { link, index } => {
                write!(f, "_PRT entry uses resource {index} of Device({}); only the first is supported", Seg(link))
            }
            Self::ConflictingRoutes { slot, pin } => {
                let pin = match pin {
                    0..=3 => char::from(b'A' + pin),
                    _ => '?',
                };
                write!(f, "_PRT routes device {slot} pin INT{pin} to two different interrupts")
            }
        }
    }
}

/// The scanner's errors are the first four kinds of [`PrtError`], unchanged.
impl From<AmlError> for PrtError {
    fn from(e: AmlError) -> Self {
        match e {
            AmlError::Truncated { at } => Self::Truncated { at },
            AmlError::BadPkgLength { at } => Self::BadPkgLength { at },
            AmlError::UnexpectedOpcode { at, op } => Self::UnexpectedOpcode { at, op },
            AmlError::BadName { at } => Self::BadName { at },
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------------------------

/// Decodes the static `Name(PRTA, Package(){ Package(4){...}, ... })` of a DSDT (header included or not; offsets
/// in errors are into `dsdt`).
///
/// Every `PRTA` whose NameOp is followed by a package is tried (at most [`MAX_CANDIDATES`]); one lying inside a
/// `Device(PCI0)` or `Scope(...PCI0)` wins, else the first that decodes. If none decodes, the first one's error
/// is returned; if there is none, [`PrtError::NotFound`].
pub fn parse_prta(dsdt: &[u8]) -> Result<PrtTable, PrtError> {
    let pci0 = pci0_bodies(dsdt);
    let inside_pci0 = |at: usize| pci0.iter().any(|&(start, end)| start <= at && at < end);
    let mut first_valid = None;
    let mut first_error = None;
    for hit in NameHits::new(dsdt, *b"PRTA", Kind::Name).take(MAX_CANDIDATES) {
        match parse_prta_at(dsdt, hit) {
            Ok(table) if inside_pci0(hit.op_at) => return Ok(table),
            Ok(_) => {
                first_valid.get_or_insert(hit);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // Decoded again rather than kept, so that at most one table is on the stack.
    match (first_valid, first_error) {
        (Some(hit), _) => parse_prta_at(dsdt, hit),
        (None, Some(e)) => Err(e),
        (None, None) => static_pci0_prt(dsdt),
    }
}

/// Without a `PRTA`: a static `Name(_PRT, Package)` of `PCI0` itself (not of a device inside it), as QEMU's
/// microvm GPEX has (`acpi_dsdt_add_gpex`: `Name(_PRT, Package(128){ ... GSI0..GSI3 ... })`).
fn static_pci0_prt(dsdt: &[u8]) -> Result<PrtTable, PrtError> {
    for (start, end) in pci0_bodies(dsdt) {
        let own = NameHits::within(dsdt, start, end, *b"_PRT", Kind::Name)
            .take(MAX_CANDIDATES)
            .find(|hit| innermost_device(dsdt, start, hit.op_at).is_none());
        if let Some(hit) = own {
            return parse_prta_at(dsdt, hit);
        }
    }
    Err(PrtError::NotFound)
}

/// The interrupt assigned by `Device(link)`'s static `Name(_CRS, Buffer(){...})`: its first Extended Interrupt
/// (or legacy IRQ) descriptor with an interrupt in it. The whole resource template must be well formed, end tag
/// included.
///
/// Every `Device` named `link` is tried (at most [`MAX_CANDIDATES`]), in table order; the first that yields an
/// interrupt wins, else the first one's error is returned.
pub fn parse_link_gsi(dsdt: &[u8], link: [u8; 4]) -> Result<LinkIrq, PrtError> {
    let mut first_error = None;
    for hit in NameHits::new(dsdt, link, Kind::Device).take(MAX_CANDIDATES) {
        match link_irq_in(dsdt, hit, link) {
            Ok(irq) => return Ok(irq),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(PrtError::LinkNotFound(link)))
}

/// Bus-0 INTx routing in APIC mode: [`parse_prta`], then [`parse_link_gsi`] for every link it names.
///
/// A hard-wired entry (Source 0) is level-triggered and active-low, as PCI INTx is (PCI Local Bus 3.0 §2.2.6;
/// Linux `acpi_pci_irq_enable` does the same). Like Linux, an entry applies to the whole device whatever its
/// function field. Fails if any link cannot be resolved or two entries disagree.
pub fn resolve(dsdt: &[u8]) -> Result<Routing, PrtError> {
    let table = parse_prta(dsdt)?;
    let mut links: Vec<([u8; 4], LinkIrq), MAX_CACHED_LINKS> = Vec::new();
    let mut routing = Routing { routes: [[None; PCI_PINS]; PCI_SLOTS] };
    for entry in table.entries() {
        let irq = match entry.source {
            Source::Gsi(gsi) => RoutedIrq { gsi, level: true, active_low: true },
            Source::Link(name) => {
                if entry.source_index != 0 {
                    return Err(PrtError::UnsupportedSourceIndex { link: name, index: entry.source_index });
                }
                let link = match links.iter().find(|(n, _)| *n == name) {
                    Some(&(_, irq)) => irq,
                    None => {
                        let irq = parse_link_gsi(dsdt, name)?;
                        // A full cache only costs a repeated lookup.
                        let _ = links.push((name, irq));
                        irq
                    }
                };
                RoutedIrq { gsi: link.gsi, level: link.level, active_low: link.active_low }
            }
        };
        // Entries were range-checked by the parser, so the cell exists.
        let cell = routing.routes.get_mut(usize::from(entry.slot)).and_then(|s| s.get_mut(usize::from(entry.pin)));
        if let Some(cell) = cell {
            match *cell {
                None => *cell = Some(irq),
                Some(prev) if prev == irq => {}
                Some(_) => return Err(PrtError::ConflictingRoutes { slot: entry.slot, pin: entry.pin }),
            }
        }
    }
    Ok(routing)
}

// ---------------------------------------------------------------------------------------------------------------
// PRTA
// ---------------------------------------------------------------------------------------------------------------

/// Decodes the package after a `Name(PRTA` match.
fn parse_prta_at(dsdt: &[u8], hit: Hit) -> Result<PrtTable, PrtError> {
    let mut aml = Aml::new(dsdt, hit.name_end, dsdt.len());
    let (declared, end) = aml.package_header()?;
    let mut elements = aml.within(end);
    let mut entries = Vec::new();
    let mut count: u64 = 0;
    // Fewer initializers than NumElements is legal (the rest are uninitialized); more is not.
    while count < declared && elements.pos < end {
        let at = elements.pos;
        let entry = prt_entry(&mut elements)?;
        entries.push(entry).map_err(|_| PrtError::TooManyEntries { at })?;
        count += 1;
    }
    if elements.pos != end {
        return Err(PrtError::TrailingBytes { at: elements.pos });
    }
    Ok(PrtTable { at: hit.op_at, entries })
}

// ---------------------------------------------------------------------------------------------------------------
// Link devices and resource templates
// ---------------------------------------------------------------------------------------------------------------

/// The interrupt of the first static `Name(_CRS, Buffer)` inside a device body.
fn link_irq_in(dsdt: &[u8], device: Hit, link: [u8; 4]) -> Result<LinkIrq, PrtError> {
    let body_end = device.body_end;
    let mut first_error = None;
    for crs in NameHits::within(dsdt, device.name_end, body_end, *b"_CRS", Kind::Name).take(MAX_CANDIDATES) {
        match crs_irq(dsdt, crs.name_end, body_end, link) {
            Ok(irq) => return Ok(irq),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if NameHits::within(dsdt, device.name_end, body_end, *b"_CRS", Kind::Method).next().is_some() {
        return Err(PrtError::CrsNotStatic(link));
    }
    Err(PrtError::NoCrs(link))
}

/// Decodes `Buffer(size){ bytes }` at `at` and walks it as a resource template.
fn crs_irq(dsdt: &[u8], at: usize, limit: usize, link: [u8; 4]) -> Result<LinkIrq, PrtError> {
    let (base, data) = static_buffer(dsdt, at, limit)?;
    walk_resource_template(data, base, link)?.ok_or(PrtError::NoInterruptDescriptor(link))
}

/// Walks a resource template to its end tag and returns its first interrupt, if any. `base` is the offset of
/// `data` in the table, for errors.
fn walk_resource_template(data: &[u8], base: usize, link: [u8; 4]) -> Result<Option<LinkIrq>, PrtError> {
    let bad = |i: usize| PrtError::BadResourceTemplate { link, at: base + i };
    let mut first = None;
    for item in resource_items(data) {
        let item = item.map_err(|(TemplateError::NoEndTag { at } | TemplateError::Truncated { at })| bad(at))?;
        if first.is_some() {
            continue;
        }
        match (item.small_type, item.large_tag) {
            (Some(SMALL_TYPE_IRQ), _) => first = irq_descriptor(item.body).ok_or(bad(item.at))?,
            (None, LARGE_EXTENDED_INTERRUPT) => first = Some(extended_interrupt_descriptor(item.body).ok_or(bad(item.at))?),
            _ => {}
        }
    }
    Ok(first)
}

/// IRQ descriptor body (§6.4.2.1): 16-bit mask, optional information byte. `None` if malformed; `Some(None)` if
/// the mask is empty (no interrupt assigned). Without the information byte the IRQ is edge, active-high,
/// exclusive.
fn irq_descriptor(body: &[u8]) -> Option<Option<LinkIrq>> {
    let (mask, info) = match *body {
        [lo, hi] => (u16::from_le_bytes([lo, hi]), IRQ_INFO_EDGE),
        [lo, hi, info] => (u16::from_le_bytes([lo, hi]), info),
        _ => return None,
    };
    if mask == 0 {
        return Some(None);
    }
    Some(Some(LinkIrq {
        gsi: mask.trailing_zeros(),
        level: info & IRQ_INFO_EDGE == 0,
        active_low: info & IRQ_INFO_ACTIVE_LOW != 0,
        shared: info & IRQ_INFO_SHARED != 0,
    }))
}

/// Extended Interrupt descriptor body (§6.4.3.6): flags, table length n ≥ 1, n × u32, optional resource source.
fn extended_interrupt_descriptor(body: &[u8]) -> Option<LinkIrq> {
    let (&flags, rest) = body.split_first()?;
    let (&count, table) = rest.split_first()?;
    if count == 0 || table.len() < usize::from(count) * 4 {
        return None;
    }
    let first = table.first_chunk::<4>()?;
    Some(LinkIrq {
        gsi: u32::from_le_bytes(*first),
        level: flags & EXT_IRQ_EDGE == 0,
        active_low: flags & EXT_IRQ_ACTIVE_LOW != 0,
        shared: flags & EXT_IRQ_SHARED != 0,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// _PRT entries
// ---------------------------------------------------------------------------------------------------------------

/// One `Package(4){ Address, Pin, Source, SourceIndex }` (§6.2.13); moves past it.
fn prt_entry(aml: &mut Aml<'_>) -> Result<PrtEntry, PrtError> {
    let at = aml.pos;
    let bad = |field| PrtError::BadEntry { at, field };
    let (count, end) = aml.package_header()?;
    if count != 4 {
        return Err(bad(EntryField::ElementCount));
    }
    let mut fields = aml.within(end);
    let address = fields.integer()?;
    let pin = fields.integer()?;
    // Source is a NameString or the integer 0; ZeroOp and the NullName are the same byte, read as 0.
    let source_name = match fields.peek()? {
        b'A'..=b'Z' | b'_' | ROOT_CHAR | PARENT_PREFIX_CHAR | DUAL_NAME_PREFIX | MULTI_NAME_PREFIX => {
            fields.name_string()?
        }
        _ => match fields.integer()? {
            0 => None,
            _ => return Err(bad(EntryField::Source)),
        },
    };
    let source_index = fields.integer()?;
    if fields.pos != end {
        return Err(PrtError::TrailingBytes { at: fields.pos });
    }
    aml.pos = end;

    let address = u32::try_from(address).map_err(|_| bad(EntryField::Address))?;
    let slot = u8::try_from(address >> 16).ok().filter(|&s| usize::from(s) < PCI_SLOTS);
    let slot = slot.ok_or(bad(EntryField::Address))?;
    let pin = u8::try_from(pin).ok().filter(|&p| usize::from(p) < PCI_PINS).ok_or(bad(EntryField::Pin))?;
    let source_index = u32::try_from(source_index).map_err(|_| bad(EntryField::SourceIndex))?;
    let source = match source_name {
        Some(name) => Source::Link(name),
        None => Source::Gsi(source_index),
    };
    Ok(PrtEntry { slot, function_all: u64::from(address) & 0xFFFF == ALL_FUNCTIONS, pin, source, source_index })
}

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::aml::*;
    use std::{format, string::ToString, vec, vec::Vec as StdVec};

    // ---- The real tables -----------------------------------------------------------------------------------

    /// The table block 0x0FFE0000.. of QEMU 7.2 `-M q35` / `-M pc` (see `acpi/mod.rs`); the DSDT starts at
    /// 0x0FFE0040 in both.
    const Q35_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-q35-tables.dat");
    const PC_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-pc-tables.dat");
    const DSDT_OFFSET: usize = 0x40;

    fn q35_dsdt() -> &'static [u8] {
        let dsdt = &Q35_TABLES[DSDT_OFFSET..DSDT_OFFSET + 8263];
        assert_eq!(&dsdt[..4], b"DSDT");
        dsdt
    }

    fn pc_dsdt() -> &'static [u8] {
        let dsdt = &PC_TABLES[DSDT_OFFSET..DSDT_OFFSET + 6416];
        assert_eq!(&dsdt[..4], b"DSDT");
        dsdt
    }

    /// `build_q35_routing_table` (QEMU 7.2 `hw/i386/acpi-build.c`) and `ich9_cc_init`/`ich9_cc_update`: the
    /// PIRQ letter index (0 = A) of a bus-0 slot and pin.
    fn q35_pirq(slot: u8, pin: u8) -> u8 {
        match slot {
            0x19..=0x1D | 0x1F => pin,
            // D30 (the DMI-to-PCI bridge) is hard-wired INTA..D -> PIRQE..H, not swizzled.
            0x1E => 4 + pin,
            _ => 4 + (slot + pin) % 4,
        }
    }

    #[test]
    fn q35_prta_matches_build_q35_routing_table() {
        let table = parse_prta(q35_dsdt()).unwrap();
        assert_eq!(table.entries().len(), 128, "32 slots x 4 pins");
        assert_eq!(&q35_dsdt()[table.at()..table.at() + 6], b"\x08PRTA\x12");
        for (i, e) in table.entries().iter().enumerate() {
            let (slot, pin) = ((i / 4) as u8, (i % 4) as u8);
            let link = [b'G', b'S', b'I', b'A' + q35_pirq(slot, pin)];
            let want = PrtEntry { slot, function_all: true, pin, source: Source::Link(link), source_index: 0 };
            assert_eq!(*e, want, "PRTA entry {i}");
        }
    }

    #[test]
    fn q35_gsi_links_are_level_active_high_shared() {
        for x in 0..8u8 {
            let link = [b'G', b'S', b'I', b'A' + x];
            let irq = parse_link_gsi(q35_dsdt(), link).unwrap();
            assert_eq!(irq, LinkIrq { gsi: 16 + u32::from(x), level: true, active_low: false, shared: true });
        }
    }

    #[test]
    fn q35_routing_matches_qemu_7_2_facts() {
        let routing = resolve(q35_dsdt()).unwrap();
        for slot in 0..32u8 {
            for pin in 0..4u8 {
                let gsi = match slot {
                    0..=0x18 => 20 + u32::from((slot + pin) % 4),
                    0x1E => 20 + u32::from(pin),
                    _ => 16 + u32::from(pin),
                };
                assert_eq!(
                    routing.gsi(slot, pin),
                    Some(RoutedIrq { gsi, level: true, active_low: false }),
                    "slot {slot:#x} pin {pin}"
                );
            }
        }
        // Verified on the running machine (qemu-7.2-facts.md section 6).
        let verified = [(2, 22), (3, 23), (4, 20), (5, 21), (6, 22), (24, 20)];
        for (slot, gsi) in verified {
            assert_eq!(routing.gsi(slot, 0).map(|r| r.gsi), Some(gsi), "slot {slot} INTA");
        }
        assert_eq!(routing.gsi(32, 0), None);
        assert_eq!(routing.gsi(0, 4), None);
    }

    #[test]
    fn q35_pic_mode_links_need_an_interpreter() {
        assert_eq!(parse_link_gsi(q35_dsdt(), *b"LNKA"), Err(PrtError::CrsNotStatic(*b"LNKA")));
        assert_eq!(parse_link_gsi(q35_dsdt(), *b"NONE"), Err(PrtError::LinkNotFound(*b"NONE")));
    }

    #[test]
    fn pc_dsdt_has_no_prta() {
        assert_eq!(parse_prta(pc_dsdt()), Err(PrtError::NotFound));
        assert_eq!(resolve(pc_dsdt()), Err(PrtError::NotFound));
        assert_eq!(parse_link_gsi(pc_dsdt(), *b"LNKA"), Err(PrtError::CrsNotStatic(*b"LNKA")));
    }

    #[test]
    fn q35_prta_is_found_inside_pci0_scope() {
        let dsdt = q35_dsdt();
        let at = parse_prta(dsdt).unwrap().at();
        assert!(pci0_bodies(dsdt).iter().any(|&(s, e)| s <= at && at < e));
    }

    // ---- A small AML assembler -------------------------------------------------------------------------------

    /// `PkgLength` followed by `content`, using the shortest encoding.
    fn pkg(content: &[u8]) -> StdVec<u8> {
        let n = content.len();
        let mut out = if n + 1 < 0x40 {
            vec![(n + 1) as u8]
        } else {
            let follow = if n + 2 < 1 << 12 {
                1
            } else if n + 3 < 1 << 20 {
                2
            } else {
                3
            };
            let total = n + 1 + follow;
            let mut v = vec![((follow as u8) << 6) | (total & 0x0F) as u8];
            for i in 0..follow {
                v.push((total >> (4 + 8 * i)) as u8);
            }
            v
        };
        out.extend_from_slice(content);
        out
    }

    fn cat(parts: &[&[u8]]) -> StdVec<u8> {
        parts.concat()
    }

    /// The shortest integer encoding, as iasl and QEMU's `aml_int` emit.
    fn int(v: u64) -> StdVec<u8> {
        match v {
            0 => vec![ZERO_OP],
            1 => vec![ONE_OP],
            2..=0xFF => vec![BYTE_PREFIX, v as u8],
            0x100..=0xFFFF => cat(&[&[WORD_PREFIX], &(v as u16).to_le_bytes()]),
            0x1_0000..=0xFFFF_FFFF => cat(&[&[DWORD_PREFIX], &(v as u32).to_le_bytes()]),
            _ => cat(&[&[QWORD_PREFIX], &v.to_le_bytes()]),
        }
    }

    fn package(count: u8, elements: &[u8]) -> StdVec<u8> {
        cat(&[&[PACKAGE_OP], &pkg(&cat(&[&[count], elements]))])
    }

    fn entry(slot: u64, pin: u64, source: &[u8], index: u64) -> StdVec<u8> {
        package(4, &cat(&[&int((slot << 16) | 0xFFFF), &int(pin), source, &int(index)]))
    }

    fn name(path: &[u8], object: &[u8]) -> StdVec<u8> {
        cat(&[&[NAME_OP], path, object])
    }

    fn prta(entries: &[StdVec<u8>]) -> StdVec<u8> {
        name(b"PRTA", &package(entries.len() as u8, &entries.concat()))
    }

    fn device(seg: &[u8; 4], body: &[u8]) -> StdVec<u8> {
        cat(&[&[EXT_OP_PREFIX, DEVICE_OP], &pkg(&cat(&[seg, body]))])
    }

    fn scope(path: &[u8], body: &[u8]) -> StdVec<u8> {
        cat(&[&[SCOPE_OP], &pkg(&cat(&[path, body]))])
    }

    fn buffer(bytes: &[u8]) -> StdVec<u8> {
        cat(&[&[BUFFER_OP], &pkg(&cat(&[&int(bytes.len() as u64), bytes]))])
    }

    const END_TAG: [u8; 2] = [0x79, 0x00];

    fn ext_irq(flags: u8, gsis: &[u32]) -> StdVec<u8> {
        let body: StdVec<u8> =
            cat(&[&[flags, gsis.len() as u8], &gsis.iter().flat_map(|g| g.to_le_bytes()).collect::<StdVec<_>>()]);
        cat(&[&[LARGE_EXTENDED_INTERRUPT], &(body.len() as u16).to_le_bytes(), &body])
    }

    /// `Device(seg){ Name(_HID, EisaId("PNP0C0F")) Name(_CRS, ResourceTemplate(){ template }) }`.
    fn link_device(seg: &[u8; 4], template: &[u8]) -> StdVec<u8> {
        device(seg, &cat(&[&name(b"_HID", &[DWORD_PREFIX, 0x41, 0xD0, 0x0C, 0x0F]), &name(b"_CRS", &buffer(template))]))
    }

    /// A fake DSDT header, so offsets are not 0-based in the synthetic tables either.
    fn table(body: &[u8]) -> StdVec<u8> {
        let mut t = b"DSDT".to_vec();
        t.resize(36, 0);
        t.extend_from_slice(body);
        t
    }

    /// PRTA with two slots routed through two links, plus the links.
    fn small_dsdt() -> StdVec<u8> {
        let prt =
            prta(&[entry(1, 0, b"LNKA", 0), entry(1, 1, b"LNKB", 0), entry(2, 0, b"LNKB", 0), entry(2, 1, b"LNKA", 0)]);
        table(&cat(&[
            &scope(b"_SB_", &cat(&[&device(b"PCI0", &prt)])),
            &link_device(b"LNKA", &cat(&[&ext_irq(0x09, &[16]), &END_TAG])),
            &link_device(b"LNKB", &cat(&[&ext_irq(0x0F, &[17]), &END_TAG])),
        ]))
    }

    // ---- Synthetic AML -------------------------------------------------------------------------------------

    #[test]
    fn small_dsdt_resolves() {
        let dsdt = small_dsdt();
        let t = parse_prta(&dsdt).unwrap();
        let got: StdVec<_> = t.entries().iter().map(|e| (e.slot, e.pin, e.source)).collect();
        let (a, b) = (Source::Link(*b"LNKA"), Source::Link(*b"LNKB"));
        assert_eq!(got, [(1, 0, a), (1, 1, b), (2, 0, b), (2, 1, a)]);
        let r = resolve(&dsdt).unwrap();
        let high_level = RoutedIrq { gsi: 16, level: true, active_low: false };
        let low_edge = RoutedIrq { gsi: 17, level: false, active_low: true };
        assert_eq!(
            [r.gsi(1, 0), r.gsi(1, 1), r.gsi(2, 0), r.gsi(2, 1)],
            [Some(high_level), Some(low_edge), Some(low_edge), Some(high_level)]
        );
        assert_eq!(r.gsi(1, 2), None);
        assert_eq!(r.gsi(0, 0), None);
    }

    #[test]
    fn every_integer_encoding_is_decoded() {
        let encodings: [(&[u8], u64); 9] = [
            (&[ZERO_OP], 0),
            (&[ONE_OP], 1),
            (&[BYTE_PREFIX, 3], 3),
            (&[BYTE_PREFIX, 0], 0),
            (&[WORD_PREFIX, 3, 0], 3),
            (&[DWORD_PREFIX, 3, 0, 0, 0], 3),
            (&[QWORD_PREFIX, 3, 0, 0, 0, 0, 0, 0, 0], 3),
            (&[WORD_PREFIX, 0x34, 0x12], 0x1234),
            (&[DWORD_PREFIX, 0x78, 0x56, 0x34, 0x12], 0x1234_5678),
        ];
        for (bytes, value) in encodings {
            assert_eq!(Aml::new(bytes, 0, bytes.len()).integer(), Ok(value), "{bytes:x?}");
            // As a pin (only values up to 3 are pins).
            let e = package(4, &cat(&[&int(0x5_FFFF), bytes, b"LNKA", &[ZERO_OP]]));
            let t = parse_prta(&table(&name(b"PRTA", &package(1, &e))));
            if value <= 3 {
                assert_eq!(t.unwrap().entries()[0].pin, value as u8, "{bytes:x?}");
            } else {
                assert!(matches!(t, Err(PrtError::BadEntry { field: EntryField::Pin, .. })), "{bytes:x?}: {t:?}");
            }
        }
        assert_eq!(Aml::new(&[ONES_OP], 0, 1).integer(), Ok(u64::MAX));
        // Address as DWord and as QWord.
        for address in [
            cat(&[&[DWORD_PREFIX], &0x001F_FFFFu32.to_le_bytes()]),
            cat(&[&[QWORD_PREFIX], &0x001F_FFFFu64.to_le_bytes()]),
        ] {
            let e = package(4, &cat(&[&address, &[ONE_OP], b"LNKA", &[ZERO_OP]]));
            let t = parse_prta(&table(&name(b"PRTA", &package(1, &e)))).unwrap();
            assert_eq!((t.entries()[0].slot, t.entries()[0].pin, t.entries()[0].function_all), (0x1F, 1, true));
        }
    }

    #[test]
    fn name_prefixes_keep_the_last_segment() {
        let sources: [&[u8]; 5] = [b"GSIA", b"\\GSIA", b"^^GSIA", b"\\\x2e_SB_GSIA", b"\x2f\x03_SB_PCI0GSIA"];
        for source in sources {
            let dsdt = table(&prta(&[entry(3, 2, source, 0)]));
            let t = parse_prta(&dsdt).unwrap();
            assert_eq!(t.entries()[0].source, Source::Link(*b"GSIA"), "{source:x?}");
        }
        // PRTA itself under a path.
        let dsdt = table(&name(b"\\\x2e_SB_PRTA", &package(1, &entry(3, 2, b"GSIB", 0))));
        assert_eq!(parse_prta(&dsdt).unwrap().entries()[0].source, Source::Link(*b"GSIB"));
        // Lower case is not a NameSeg.
        let dsdt = table(&prta(&[entry(3, 2, b"\\gsia", 0)]));
        assert!(matches!(parse_prta(&dsdt), Err(PrtError::BadName { .. })), "{:?}", parse_prta(&dsdt));
    }

    #[test]
    fn source_zero_means_hard_wired_gsi() {
        let dsdt = table(&prta(&[entry(4, 0, &[ZERO_OP], 33), entry(4, 1, &[BYTE_PREFIX, 0], 0x1_0000)]));
        let t = parse_prta(&dsdt).unwrap();
        assert_eq!(t.entries()[0].source, Source::Gsi(33));
        assert_eq!(t.entries()[1].source, Source::Gsi(0x1_0000));
        let r = resolve(&dsdt).unwrap();
        assert_eq!(r.gsi(4, 0), Some(RoutedIrq { gsi: 33, level: true, active_low: true }));
        // A non-zero integer Source is not allowed.
        let dsdt = table(&prta(&[entry(4, 0, &[ONE_OP], 33)]));
        assert!(matches!(parse_prta(&dsdt), Err(PrtError::BadEntry { field: EntryField::Source, .. })));
    }

    #[test]
    fn out_of_range_entries_are_rejected() {
        let cases: [(StdVec<u8>, EntryField); 5] = [
            (package(4, &cat(&[&int(0x20_FFFF), &int(0), b"LNKA", &int(0)])), EntryField::Address),
            (package(4, &cat(&[&int(0x1_0000_FFFF), &int(0), b"LNKA", &int(0)])), EntryField::Address),
            (package(4, &cat(&[&int(0xFFFF), &int(4), b"LNKA", &int(0)])), EntryField::Pin),
            (package(4, &cat(&[&int(0xFFFF), &int(0), &[ZERO_OP], &int(1 << 32)])), EntryField::SourceIndex),
            (package(3, &cat(&[&int(0xFFFF), &int(0), b"LNKA"])), EntryField::ElementCount),
        ];
        for (e, field) in cases {
            let dsdt = table(&name(b"PRTA", &package(1, &e)));
            assert_eq!(parse_prta(&dsdt), Err(PrtError::BadEntry { at: 36 + 8, field }), "{e:x?}");
        }
    }

    #[test]
    fn a_function_specific_address_is_kept_and_routed_device_wide() {
        let dsdt = table(&prta(&[package(4, &cat(&[&int(0x5_0002), &int(0), &[ZERO_OP], &int(40)]))]));
        let t = parse_prta(&dsdt).unwrap();
        assert_eq!((t.entries()[0].slot, t.entries()[0].function_all), (5, false));
        assert_eq!(resolve(&dsdt).unwrap().gsi(5, 0).map(|r| r.gsi), Some(40));
    }

    #[test]
    fn fewer_initializers_than_num_elements_is_legal() {
        let entries = cat(&[&entry(1, 0, &[ZERO_OP], 16), &entry(1, 1, &[ZERO_OP], 17)]);
        let dsdt = table(&name(b"PRTA", &package(255, &entries)));
        assert_eq!(parse_prta(&dsdt).unwrap().entries().len(), 2);
        let var = cat(&[&[VAR_PACKAGE_OP], &pkg(&cat(&[&int(0xFFFF_FFFF), &entries]))]);
        assert_eq!(parse_prta(&table(&name(b"PRTA", &var))).unwrap().entries().len(), 2);
        // More initializers than NumElements is not.
        let dsdt = table(&name(b"PRTA", &package(1, &entries)));
        assert!(matches!(parse_prta(&dsdt), Err(PrtError::TrailingBytes { .. })));
    }

    #[test]
    fn too_many_entries_are_reported() {
        let entries: StdVec<u8> =
            (0..MAX_PRT_ENTRIES as u64 + 1).flat_map(|i| entry(i % 32, 0, &[ZERO_OP], i)).collect();
        let var = cat(&[&[VAR_PACKAGE_OP], &pkg(&cat(&[&int(entries.len() as u64), &entries]))]);
        let dsdt = table(&name(b"PRTA", &var));
        match parse_prta(&dsdt) {
            Err(PrtError::TooManyEntries { at }) => assert_eq!(dsdt[at], PACKAGE_OP),
            other => panic!("expected TooManyEntries, got {other:?}"),
        }
        // Exactly the capacity fits.
        let entries: StdVec<u8> = (0..MAX_PRT_ENTRIES as u64).flat_map(|i| entry(i % 32, 0, &[ZERO_OP], i)).collect();
        let var = cat(&[&[VAR_PACKAGE_OP], &pkg(&cat(&[&int(entries.len() as u64), &entries]))]);
        assert_eq!(parse_prta(&table(&name(b"PRTA", &var))).unwrap().entries().len(), MAX_PRT_ENTRIES);
    }

    #[test]
    fn conflicting_routes_are_reported_and_duplicates_accepted() {
        let dup = table(&prta(&[entry(1, 0, &[ZERO_OP], 16), entry(1, 0, &[ZERO_OP], 16)]));
        assert!(resolve(&dup).is_ok());
        let conflict = table(&prta(&[entry(1, 0, &[ZERO_OP], 16), entry(1, 0, &[ZERO_OP], 17)]));
        assert_eq!(resolve(&conflict), Err(PrtError::ConflictingRoutes { slot: 1, pin: 0 }));
    }

    #[test]
    fn a_static_prt_of_pci0_is_read_when_there_is_no_prta() {
        // QEMU microvm's GPEX: Name(_PRT, Package(){ ... GSI0 ... }) in PCI0, links with static _CRS.
        let links = cat(&[&link_device(b"GSI0", &cat(&[&ext_irq(0x01, &[16]), &END_TAG])), &link_device(b"GSI1", &cat(&[&ext_irq(0x01, &[17]), &END_TAG]))]);
        let entries = cat(&[&entry(0, 0, b"GSI0", 0), &entry(1, 0, b"GSI1", 0)]);
        // A root port inside PCI0 with its own static _PRT must not be taken for PCI0's.
        let port = device(b"RP01", &name(b"_PRT", &package(1, &entry(0, 0, &[ZERO_OP], 40))));
        let pci0 = device(b"PCI0", &cat(&[&port, &name(b"_PRT", &package(2, &entries)), &links]));
        let dsdt = table(&scope(b"_SB_", &pci0));
        let r = resolve(&dsdt).unwrap();
        assert_eq!(r.gsi(0, 0), Some(RoutedIrq { gsi: 16, level: true, active_low: false }));
        assert_eq!(r.gsi(1, 0).map(|r| r.gsi), Some(17));
        // Only the nested one: not PCI0's routing.
        let dsdt = table(&scope(b"_SB_", &device(b"PCI0", &port)));
        assert_eq!(parse_prta(&dsdt), Err(PrtError::NotFound));
    }

    #[test]
    fn a_prta_inside_pci0_is_preferred() {
        let other = prta(&[entry(1, 0, &[ZERO_OP], 99)]);
        let ours = prta(&[entry(1, 0, &[ZERO_OP], 16)]);
        let dsdt = table(&cat(&[&scope(b"_SB_", &other), &scope(b"\\\x2e_SB_PCI0", &ours)]));
        assert_eq!(parse_prta(&dsdt).unwrap().entries()[0].source, Source::Gsi(16));
        // Without a PCI0, the first valid one.
        let dsdt = table(&cat(&[&scope(b"_SB_", &other), &scope(b"PCI1", &ours)]));
        assert_eq!(parse_prta(&dsdt).unwrap().entries()[0].source, Source::Gsi(99));
        // An invalid first candidate does not hide a valid second one.
        let broken = name(b"PRTA", &[PACKAGE_OP, 0x3F]);
        let dsdt = table(&cat(&[&scope(b"_SB_", &broken), &scope(b"PCI1", &ours)]));
        assert_eq!(parse_prta(&dsdt).unwrap().entries()[0].source, Source::Gsi(16));
    }

    #[test]
    fn a_reference_to_prta_is_not_a_definition() {
        // `Return (PRTA)` and `Name(PRTB, ...)` must not match.
        let dsdt = table(&cat(&[&[0xA4], b"PRTA", &name(b"PRTB", &package(1, &entry(1, 0, b"LNKA", 0)))]));
        assert_eq!(parse_prta(&dsdt), Err(PrtError::NotFound));
        // `Name(PRTA, 5)` is found but is not a package.
        let dsdt = table(&name(b"PRTA", &[BYTE_PREFIX, 5]));
        assert_eq!(parse_prta(&dsdt), Err(PrtError::UnexpectedOpcode { at: 41, op: BYTE_PREFIX }));
    }

    #[test]
    fn legacy_irq_descriptors_are_accepted() {
        // IRQ(Level, ActiveLow, Shared){11}: 23 00 08 18.
        let dsdt = table(&link_device(b"LNKZ", &cat(&[&[0x23, 0x00, 0x08, 0x18], &END_TAG])));
        let want = LinkIrq { gsi: 11, level: true, active_low: true, shared: true };
        assert_eq!(parse_link_gsi(&dsdt, *b"LNKZ"), Ok(want));
        // IRQNoFlags(){5}: 22 20 00 (edge, active-high, exclusive).
        let dsdt = table(&link_device(b"LNKZ", &cat(&[&[0x22, 0x20, 0x00], &END_TAG])));
        let want = LinkIrq { gsi: 5, level: false, active_low: false, shared: false };
        assert_eq!(parse_link_gsi(&dsdt, *b"LNKZ"), Ok(want));
        // An empty mask assigns nothing; the next descriptor is used.
        let dsdt = table(&link_device(b"LNKZ", &cat(&[&[0x22, 0, 0], &ext_irq(0x09, &[18, 19]), &END_TAG])));
        assert_eq!(parse_link_gsi(&dsdt, *b"LNKZ").map(|l| l.gsi), Ok(18));
    }

    #[test]
    fn other_descriptors_before_the_interrupt_are_skipped() {
        // IO(Decode16, 0x60, 0x60, 1, 1), a QWord memory descriptor, then the interrupt.
        let io = [0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01];
        let mut qword = vec![0x8A, 43, 0];
        qword.extend_from_slice(&[0; 43]);
        let dsdt = table(&link_device(b"LNKZ", &cat(&[&io, &qword, &ext_irq(0x09, &[21]), &END_TAG])));
        assert_eq!(parse_link_gsi(&dsdt, *b"LNKZ").map(|l| l.gsi), Ok(21));
    }

    // ---- Hostile input -------------------------------------------------------------------------------------

    #[test]
    fn link_without_interrupt_descriptor() {
        let io = [0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01];
        let dsdt = table(&link_device(b"LNKZ", &cat(&[&io, &END_TAG])));
        assert_eq!(parse_link_gsi(&dsdt, *b"LNKZ"), Err(PrtError::NoInterruptDescriptor(*b"LNKZ")));
        let dsdt = table(&device(b"LNKZ", &name(b"_UID", &[ONE_OP])));
        assert_eq!(parse_link_gsi(&dsdt, *b"LNKZ"), Err(PrtError::NoCrs(*b"LNKZ")));
        // A PRTA naming such a link does not resolve.
        let dsdt = table(&cat(&[&prta(&[entry(1, 0, b"LNKZ", 0)]), &link_device(b"LNKZ", &cat(&[&io, &END_TAG]))]));
        assert_eq!(resolve(&dsdt), Err(PrtError::NoInterruptDescriptor(*b"LNKZ")));
        let dsdt = table(&prta(&[entry(1, 0, b"LNKZ", 0)]));
        assert_eq!(resolve(&dsdt), Err(PrtError::LinkNotFound(*b"LNKZ")));
        let dsdt = table(&cat(&[&prta(&[entry(1, 0, b"LNKZ", 1)]), &link_device(b"LNKZ", &ext_irq(9, &[16]))]));
        assert_eq!(resolve(&dsdt), Err(PrtError::UnsupportedSourceIndex { link: *b"LNKZ", index: 1 }));
    }

    #[test]
    fn resource_template_without_end_tag() {
        let dsdt = table(&link_device(b"LNKZ", &ext_irq(0x09, &[16])));
        assert!(matches!(parse_link_gsi(&dsdt, *b"LNKZ"), Err(PrtError::BadResourceTemplate { .. })));
        // An item longer than the buffer.
        let dsdt = table(&link_device(b"LNKZ", &[0x89, 0xFF, 0xFF, 0x09, 0x01]));
        assert!(matches!(parse_link_gsi(&dsdt, *b"LNKZ"), Err(PrtError::BadResourceTemplate { .. })));
        // An Extended Interrupt descriptor with no interrupts, or fewer than it claims.
        for bad in [[0x89, 0x02, 0x00, 0x09, 0x00], [0x89, 0x02, 0x00, 0x09, 0x01]] {
            let dsdt = table(&link_device(b"LNKZ", &cat(&[&bad, &END_TAG])));
            assert!(matches!(parse_link_gsi(&dsdt, *b"LNKZ"), Err(PrtError::BadResourceTemplate { .. })));
        }
        // A BufferSize smaller than the template cuts it before its end tag.
        let template = cat(&[&ext_irq(0x09, &[16]), &END_TAG]);
        let short = cat(&[&[BUFFER_OP], &pkg(&cat(&[&int(5), &template]))]);
        let dsdt = table(&device(b"LNKZ", &name(b"_CRS", &short)));
        assert!(matches!(parse_link_gsi(&dsdt, *b"LNKZ"), Err(PrtError::BadResourceTemplate { .. })));
    }

    #[test]
    fn pkg_length_past_the_end() {
        let good = small_dsdt();
        // The outer package claims 0x3FF bytes more than there are.
        let mut dsdt = table(&name(b"PRTA", &[PACKAGE_OP, 0x7F, 0xFF, 1]));
        assert_eq!(parse_prta(&dsdt), Err(PrtError::BadPkgLength { at: 42 }));
        dsdt.extend_from_slice(&good[36..]);
        assert_eq!(parse_prta(&dsdt).map(|t| t.entries().len()), Ok(4), "the real PRTA further on is still found");
        // An entry package reaching past its enclosing package.
        let e = entry(1, 0, b"LNKA", 0);
        let mut outer = package(1, &e);
        outer[1] -= 2; // shrink the outer PkgLength (one byte) by two
        let dsdt = table(&name(b"PRTA", &outer));
        assert!(matches!(parse_prta(&dsdt), Err(PrtError::BadPkgLength { .. })), "{:?}", parse_prta(&dsdt));
        // A 4-byte PkgLength of 0x0FFF_FFFF.
        let dsdt = table(&name(b"PRTA", &[PACKAGE_OP, 0xCF, 0xFF, 0xFF, 0xFF, 1]));
        assert_eq!(parse_prta(&dsdt), Err(PrtError::BadPkgLength { at: 42 }));
        // A PkgLength shorter than itself.
        let dsdt = table(&name(b"PRTA", &[PACKAGE_OP, 0x40, 0x00, 1]));
        assert_eq!(parse_prta(&dsdt), Err(PrtError::BadPkgLength { at: 42 }));
    }

    #[test]
    fn nested_packages_are_rejected_without_recursion() {
        // An entry whose Address is itself a package.
        let inner = package(4, &cat(&[&package(1, &int(0)), &int(0), b"LNKA", &int(0)]));
        let dsdt = table(&name(b"PRTA", &package(1, &inner)));
        assert!(matches!(parse_prta(&dsdt), Err(PrtError::UnexpectedOpcode { op: PACKAGE_OP, .. })));
        // 10 000 levels of Package(1){ Package(1){ ... } }.
        let mut nested = int(0);
        for _ in 0..10_000 {
            nested = package(1, &nested);
        }
        let dsdt = table(&name(b"PRTA", &nested));
        assert!(matches!(parse_prta(&dsdt), Err(PrtError::BadEntry { field: EntryField::ElementCount, .. })));
    }

    #[test]
    fn truncation_at_every_offset_never_panics() {
        for dsdt in [small_dsdt(), q35_dsdt().to_vec()] {
            let full = parse_prta(&dsdt).unwrap().entries().len();
            for cut in 0..dsdt.len() {
                let part = &dsdt[..cut];
                if let Ok(t) = parse_prta(part) {
                    assert!(t.entries().len() <= full, "cut at {cut}");
                }
                let _ = resolve(part);
            }
        }
        // Truncated link devices.
        let dsdt = q35_dsdt();
        let gsia = 0x15B1;
        assert_eq!(&dsdt[gsia..gsia + 2], [EXT_OP_PREFIX, DEVICE_OP]);
        // Device(GSIA) has a 2-byte PkgLength of 0x4D: it ends at 0x1600.
        let gsia_end = gsia + 2 + 0x4D;
        for cut in gsia..gsia_end {
            assert!(parse_link_gsi(&dsdt[..cut], *b"GSIA").is_err(), "cut at {cut:#x}");
        }
        assert_eq!(parse_link_gsi(&dsdt[..gsia_end], *b"GSIA").map(|l| l.gsi), Ok(16));
    }

    /// xorshift64* with a fixed seed, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_byte_flips_never_panic() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let small = small_dsdt();
        let q35 = q35_dsdt();
        // Flips inside the q35 PRTA and the GSIx devices, where they reach the decoders.
        let prta_at = parse_prta(q35).unwrap().at();
        let (lo, hi) = (prta_at, 0x1800.min(q35.len()));
        let mut outcomes = [0usize; 2];
        for round in 0..4000 {
            let mut t = if round % 2 == 0 { small.clone() } else { q35.to_vec() };
            let (from, to) = if round % 2 == 0 { (36, t.len()) } else { (lo, hi) };
            for _ in 0..1 + rng.below(4) {
                let i = from + rng.below(to - from);
                t[i] = match rng.below(3) {
                    0 => t[i] ^ (1 << rng.below(8)),
                    1 => rng.next() as u8,
                    _ => [0x00, 0x12, 0x13, 0x5B, 0x82, 0x89, 0x79, 0xFF, 0x2E, 0x2F][rng.below(10)],
                };
            }
            let ok = resolve(&t).is_ok();
            outcomes[usize::from(ok)] += 1;
            for x in 0..8u8 {
                let _ = parse_link_gsi(&t, [b'G', b'S', b'I', b'A' + x]);
            }
            let _ = parse_link_gsi(&t, *b"LNKA");
        }
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "flips should both break and spare the tables: {outcomes:?}");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0xDEAD_BEEF_0BAD_F00D);
        for _ in 0..2000 {
            let len = rng.below(300);
            let mut t: StdVec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Seed some structure so the decoders get past the pattern match.
            if len > 10 {
                let at = rng.below(len - 6);
                t[at..at + 6].copy_from_slice(b"\x08PRTA\x12");
            }
            let _ = resolve(&t);
            let _ = parse_link_gsi(&t, *b"PRTA");
        }
    }

    #[test]
    fn errors_display_readably() {
        let cases = [
            (PrtError::NotFound, "no static Name(PRTA, Package) in the DSDT"),
            (PrtError::LinkNotFound(*b"GS\x00A"), "no Device(GS?A) for a _PRT link"),
            (
                PrtError::ConflictingRoutes { slot: 3, pin: 1 },
                "_PRT routes device 3 pin INTB to two different interrupts",
            ),
            (
                PrtError::BadEntry { at: 0x44, field: EntryField::Pin },
                "_PRT entry at offset 0x44: its Pin is above 3 (INTD)",
            ),
        ];
        for (e, s) in cases {
            assert_eq!(e.to_string(), s);
        }
        assert_eq!(
            format!("{}", PrtError::UnexpectedOpcode { at: 16, op: 0x12 }),
            "unexpected AML opcode 0x12 at offset 0x10"
        );
    }
}
