//! The PCI host bridge's resource windows, read from the static `_CRS` of `\_SB.PCI0` in the DSDT, without an
//! AML interpreter.
//!
//! QEMU 7.2 (`build_dsdt`, `hw/i386/acpi-build.c`) declares, in `Scope(\_SB.PCI0)`,
//! `Name(_CRS, ResourceTemplate(){ WordBusNumber, IO(0xCF8), WordIO, WordIO, DWordMemory..., QWordMemory })`:
//! the buses, I/O and memory ranges the host bridge forwards to PCI. [`host_bridge_windows`] finds that
//! buffer with the same byte-pattern search as [`super::prt`] and [`parse_template`] decodes its resource
//! descriptors (ACPI 6.5 §6.4): Word/DWord/QWord Address Space Descriptors (§6.4.3.5.1-3), whose producer
//! ranges are the windows, and the I/O port descriptors (§6.4.2.5 I/O, §6.4.2.6 Fixed I/O), whose ranges the
//! bridge itself consumes (the 0xCF8 configuration ports) and which are kept out of the I/O windows.
//!
//! Every function is total: any byte string gives a value or a typed [`CrsError`], never a panic.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use core::fmt;

use heapless::Vec;

use super::aml;
use super::prt::PrtError;
pub use super::range::AddressRange;

/// Most windows of one kind kept.
pub const MAX_WINDOWS: usize = 8;

/// What the host bridge forwards, from its `_CRS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostWindows {
    /// Bus numbers (WordBusNumber), if declared.
    pub buses: Option<(u8, u8)>,
    /// I/O windows.
    pub io: Vec<AddressRange, MAX_WINDOWS>,
    /// Memory windows (below and above 4 GiB).
    pub mem: Vec<AddressRange, MAX_WINDOWS>,
    /// I/O ports the bridge itself consumes (configuration ports), kept out of the windows.
    pub io_consumed: Vec<AddressRange, MAX_WINDOWS>,
    /// Descriptors that were dropped (the rest of the template is still used).
    pub dropped: Vec<CrsError, MAX_WINDOWS>,
}

/// Why the host bridge's windows could not be read, or why one descriptor was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrsError {
    /// No static `Name(_CRS, Buffer)` with a bus-number descriptor inside `PCI0`.
    NotFound,
    /// `PCI0._CRS` is a Method: it needs an interpreter.
    NotStatic,
    /// The AML around the buffer is malformed.
    Aml(PrtError),
    /// A descriptor runs past the buffer (offset of its tag, relative to the template).
    Truncated {
        /// Offset of the descriptor's tag.
        at: usize,
    },
    /// No end tag before the buffer ends.
    NoEndTag,
    /// An address space descriptor shorter than its type requires (offset of its tag).
    ShortDescriptor {
        /// Offset of the descriptor's tag.
        at: usize,
    },
    /// A window with `_MIN > _MAX`, a `_LEN` that disagrees with them, or a range beyond its space.
    BadRange {
        /// Offset of the descriptor's tag.
        at: usize,
    },
    /// A window with a non-zero translation offset (bus and CPU addresses differ); not used.
    Translated {
        /// Offset of the descriptor's tag.
        at: usize,
    },
    /// A window overlapping one before it; not used.
    Overlapping {
        /// Offset of the descriptor's tag.
        at: usize,
    },
    /// More than [`MAX_WINDOWS`] windows of one kind; the rest are not used.
    TooManyWindows {
        /// Offset of the descriptor's tag.
        at: usize,
    },
}

impl fmt::Display for CrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotFound => f.write_str("no static PCI0._CRS resource template with a bus-number descriptor"),
            Self::NotStatic => f.write_str("PCI0._CRS is a Method, not a static buffer"),
            Self::Aml(e) => write!(f, "PCI0._CRS: {e}"),
            Self::Truncated { at } => write!(f, "PCI0._CRS: descriptor at {at:#x} runs past the template"),
            Self::NoEndTag => f.write_str("PCI0._CRS: resource template has no end tag"),
            Self::ShortDescriptor { at } => write!(f, "PCI0._CRS: address space descriptor at {at:#x} is too short"),
            Self::BadRange { at } => write!(f, "PCI0._CRS: window at {at:#x} has min > max or a length that disagrees; dropped"),
            Self::Translated { at } => write!(f, "PCI0._CRS: window at {at:#x} has a translation offset; dropped"),
            Self::Overlapping { at } => write!(f, "PCI0._CRS: window at {at:#x} overlaps an earlier one; dropped"),
            Self::TooManyWindows { at } => write!(f, "PCI0._CRS: more than {MAX_WINDOWS} windows of a kind; the one at {at:#x} dropped"),
        }
    }
}

// Resource descriptor types and tags (ACPI 6.5 §6.4.2, §6.4.3); the framing is `aml::resource_items`'.
const SMALL_IO: u8 = 0x08;
const SMALL_FIXED_IO: u8 = 0x09;
const LARGE_DWORD_ADDRESS: u8 = 0x87;
const LARGE_WORD_ADDRESS: u8 = 0x88;
const LARGE_QWORD_ADDRESS: u8 = 0x8A;
/// Address space descriptor Resource Type (§6.4.3.5, Table 6.50).
const RESOURCE_MEMORY: u8 = 0;
const RESOURCE_IO: u8 = 1;
const RESOURCE_BUS: u8 = 2;
/// General Flags bit 0: 1 = the device consumes this resource, 0 = it produces it for its children (a window).
const FLAG_CONSUMER: u8 = 1 << 0;
/// General Flags bits 2/3: `_MIF`/`_MAF`, minimum/maximum address fixed (then `_LEN` must equal the range).
const FLAG_MIN_FIXED: u8 = 1 << 2;
const FLAG_MAX_FIXED: u8 = 1 << 3;

/// The host bridge's windows from `PCI0._CRS` in `dsdt` (header included or not). Among the static `_CRS`
/// buffers inside `PCI0`, the first whose template decodes and holds a bus-number descriptor is the host
/// bridge's (its children's `_CRS`, like QEMU's `GPE0` or `DRAC`, hold no bus numbers).
pub fn host_bridge_windows(dsdt: &[u8]) -> Result<HostWindows, CrsError> {
    let mut first_error = None;
    for found in aml::pci0_static_buffers(dsdt, *b"_CRS") {
        match found.map_err(|e| CrsError::Aml(e.into())).and_then(|(_, data)| parse_template(data)) {
            Ok(w) if w.buses.is_some() => return Ok(w),
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if aml::pci0_has_method(dsdt, *b"_CRS") {
        return Err(CrsError::NotStatic);
    }
    Err(first_error.unwrap_or(CrsError::NotFound))
}

/// Decodes a resource template up to its end tag. A malformed framing (truncated descriptor, no end tag) is
/// an error; a well-framed but unusable window is dropped and listed in [`HostWindows::dropped`].
pub fn parse_template(data: &[u8]) -> Result<HostWindows, CrsError> {
    let mut w = HostWindows::default();
    for item in aml::resource_items(data) {
        let item = item.map_err(|e| match e {
            aml::TemplateError::NoEndTag { .. } => CrsError::NoEndTag,
            aml::TemplateError::Truncated { at } => CrsError::Truncated { at },
        })?;
        let (body, i) = (item.body, item.at);
        match (item.small_type, item.large_tag) {
            // I/O port descriptor (§6.4.2.5): information, _MIN (2), _MAX (2), _ALN, _LEN; the ports
            // _MIN.._MIN+_LEN-1 (a fixed range when _MIN == _MAX, as QEMU's 0xCF8).
            (Some(SMALL_IO), _) => {
                if let [_, lo0, lo1, _, _, _, length] = *body {
                    let start = u64::from(u16::from_le_bytes([lo0, lo1]));
                    if length > 0 {
                        let _ = w.io_consumed.push(AddressRange { start, last: start + u64::from(length) - 1 });
                    }
                }
            }
            // Fixed I/O port descriptor (§6.4.2.6): _BAS (2, 10 bits decoded), _LEN.
            (Some(SMALL_FIXED_IO), _) => {
                if let [lo0, lo1, length] = *body {
                    let start = u64::from(u16::from_le_bytes([lo0, lo1]) & 0x3FF);
                    if length > 0 {
                        let _ = w.io_consumed.push(AddressRange { start, last: start + u64::from(length) - 1 });
                    }
                }
            }
            (None, LARGE_WORD_ADDRESS) => address_space(&mut w, body, 2, i)?,
            (None, LARGE_DWORD_ADDRESS) => address_space(&mut w, body, 4, i)?,
            (None, LARGE_QWORD_ADDRESS) => address_space(&mut w, body, 8, i)?,
            _ => {}
        }
    }
    Ok(w)
}

/// One Word/DWord/QWord Address Space Descriptor body (§6.4.3.5.1-3): Resource Type, General Flags, Type
/// Specific Flags, then `_GRA`, `_MIN`, `_MAX`, `_TRA`, `_LEN`, each `width` bytes; an optional resource
/// source follows.
fn address_space(w: &mut HostWindows, body: &[u8], width: usize, at: usize) -> Result<(), CrsError> {
    let short = CrsError::ShortDescriptor { at };
    let field = |n: usize| -> Result<u64, CrsError> {
        let bytes = body.get(3 + n * width..3 + (n + 1) * width).ok_or(short)?;
        Ok(bytes.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b)))
    };
    let (&kind, rest) = body.split_first().ok_or(short)?;
    let &flags = rest.first().ok_or(short)?;
    let (min, max, translation, length) = (field(1)?, field(2)?, field(3)?, field(4)?);
    if flags & FLAG_CONSUMER != 0 {
        return Ok(());
    }
    // _LEN 0 with nothing fixed describes a range to be chosen; for a host bridge's current settings it is
    // no window at all.
    if length == 0 {
        return Ok(());
    }
    if let Err(e) = window(w, kind, flags, min, max, translation, length, at) {
        let _ = w.dropped.push(e);
    }
    Ok(())
}

/// Adds one producer range to `w`, or says why it is not used.
#[allow(clippy::too_many_arguments)]
fn window(w: &mut HostWindows, kind: u8, flags: u8, min: u64, max: u64, translation: u64, length: u64, at: usize) -> Result<(), CrsError> {
    let fixed = flags & (FLAG_MIN_FIXED | FLAG_MAX_FIXED) == FLAG_MIN_FIXED | FLAG_MAX_FIXED;
    if min > max || (fixed && max - min != length - 1) {
        return Err(CrsError::BadRange { at });
    }
    if translation != 0 {
        return Err(CrsError::Translated { at });
    }
    let range = AddressRange { start: min, last: max };
    match kind {
        RESOURCE_BUS => match (u8::try_from(min), u8::try_from(max)) {
            (Ok(first), Ok(last)) => w.buses = Some((first, last)),
            _ => return Err(CrsError::BadRange { at }),
        },
        RESOURCE_IO | RESOURCE_MEMORY => {
            if kind == RESOURCE_IO && max > 0xFFFF {
                return Err(CrsError::BadRange { at });
            }
            let list = if kind == RESOURCE_IO { &mut w.io } else { &mut w.mem };
            if list.iter().any(|r| r.overlaps(&range)) {
                return Err(CrsError::Overlapping { at });
            }
            list.push(range).map_err(|_| CrsError::TooManyWindows { at })?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec as StdVec;

    const Q35_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-q35-tables.dat");
    const PC_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-pc-tables.dat");

    fn r(start: u64, last: u64) -> AddressRange {
        AddressRange { start, last }
    }

    fn word(kind: u8, flags: u8, min: u16, max: u16, len: u16) -> StdVec<u8> {
        let mut d = vec![LARGE_WORD_ADDRESS, 13, 0, kind, flags, 0];
        for v in [0, min, max, 0, len] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d
    }

    fn dword(min: u32, max: u32, len: u32) -> StdVec<u8> {
        let mut d = vec![LARGE_DWORD_ADDRESS, 23, 0, RESOURCE_MEMORY, 0x0C, 0];
        for v in [0, min, max, 0, len] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d
    }

    fn qword(min: u64, max: u64, translation: u64, len: u64) -> StdVec<u8> {
        let mut d = vec![LARGE_QWORD_ADDRESS, 43, 0, RESOURCE_MEMORY, 0x0C, 0];
        for v in [0, min, max, translation, len] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d
    }

    const END: [u8; 2] = [0x79, 0x00];

    fn template(parts: &[StdVec<u8>]) -> StdVec<u8> {
        let mut t: StdVec<u8> = parts.concat();
        t.extend_from_slice(&END);
        t
    }

    #[test]
    fn qemu_7_2_q35_host_bridge_windows() {
        let dsdt = &Q35_TABLES[0x40..0x40 + 8263];
        let w = host_bridge_windows(dsdt).unwrap();
        assert_eq!(w.buses, Some((0, 0xFF)));
        assert_eq!(w.io.as_slice(), &[r(0, 0xCF7), r(0xD00, 0xFFFF)]);
        assert_eq!(w.io_consumed.as_slice(), &[r(0xCF8, 0xCFF)]);
        assert_eq!(
            w.mem.as_slice(),
            &[r(0xA_0000, 0xB_FFFF), r(0x1000_0000, 0xAFFF_FFFF), r(0xC000_0000, 0xFEBF_FFFF), r(0x1_0000_0000, 0x8_FFFF_FFFF)],
            "the ECAM window 0xB0000000-0xBFFFFFFF is left out by QEMU"
        );
        assert!(w.dropped.is_empty());
    }

    #[test]
    fn qemu_7_2_pc_host_bridge_windows() {
        let dsdt = &PC_TABLES[0x40..0x40 + 6416];
        let w = host_bridge_windows(dsdt).unwrap();
        assert_eq!(w.buses, Some((0, 0xFF)));
        assert!(w.mem.iter().any(|m| m.start < 1 << 32 && m.last == 0xFEBF_FFFF), "{:?}", w.mem);
        assert!(w.io.iter().any(|m| m.last == 0xFFFF));
    }

    #[test]
    fn no_pci0_crs_is_not_found() {
        assert_eq!(host_bridge_windows(b"DSDT nothing here"), Err(CrsError::NotFound));
    }

    #[test]
    fn consumer_ranges_and_zero_length_windows_are_not_windows() {
        let t = template(&[word(RESOURCE_IO, 0x0D, 0x1000, 0x1FFF, 0x1000), word(RESOURCE_IO, 0x0C, 0x2000, 0x2FFF, 0)]);
        let w = parse_template(&t).unwrap();
        assert!(w.io.is_empty() && w.dropped.is_empty(), "{w:?}");
    }

    #[test]
    fn bad_windows_are_dropped_with_a_reason() {
        let t = template(&[
            dword(0xC000_0000, 0xFEBF_FFFF, 0x3EC0_0000),
            dword(0xD000_0000, 0xD0FF_FFFF, 0x0100_0000), // inside the first
            dword(0xF000_0000, 0xE000_0000, 0x1000),      // min > max
            dword(0x8000_0000, 0x8FFF_FFFF, 0x1000),      // _LEN disagrees
            qword(1 << 32, (1 << 33) - 1, 0x1000, 1 << 32), // translated
        ]);
        let w = parse_template(&t).unwrap();
        assert_eq!(w.mem.as_slice(), &[r(0xC000_0000, 0xFEBF_FFFF)]);
        let at = |n: usize| 26 * n;
        assert_eq!(
            w.dropped.as_slice(),
            &[CrsError::Overlapping { at: at(1) }, CrsError::BadRange { at: at(2) }, CrsError::BadRange { at: at(3) }, CrsError::Translated { at: at(4) }]
        );
    }

    #[test]
    fn truncation_at_every_offset_is_an_error_not_a_panic() {
        let t = template(&[word(RESOURCE_BUS, 0x0C, 0, 0xFF, 0x100), dword(0xC000_0000, 0xFEBF_FFFF, 0x3EC0_0000)]);
        assert!(parse_template(&t).is_ok());
        for cut in 0..t.len() - 1 {
            let e = parse_template(&t[..cut]).unwrap_err();
            assert!(matches!(e, CrsError::NoEndTag | CrsError::Truncated { .. }), "cut at {cut}: {e:?}");
        }
    }

    #[test]
    fn short_address_descriptor_is_an_error() {
        // A DWord descriptor whose length field says 10 bytes: fields past it are missing.
        let mut t = vec![LARGE_DWORD_ADDRESS, 10, 0];
        t.extend_from_slice(&[0; 10]);
        t.extend_from_slice(&END);
        assert_eq!(parse_template(&t), Err(CrsError::ShortDescriptor { at: 0 }));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let len = (seed % 64) as usize;
            let mut t = StdVec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                t.push(seed as u8);
            }
            let _ = parse_template(&t);
            let _ = host_bridge_windows(&t);
        }
    }
}
