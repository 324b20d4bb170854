//! The PCI host bridge's resource windows, read from the static `_CRS` of `\_SB.PCI0` in the DSDT, without an
//! AML interpreter.
//!
//! QEMU 7.2 (`build_dsdt`, `hw/i386/acpi-build.c`) declares, in `Scope(\_SB.PCI0)`,
//! `Name(_CRS, ResourceTemplate(){ WordBusNumber, IO(0xCF8), WordIO, WordIO, DWordMemory..., QWordMemory })`:
//! the buses, I/O and memory ranges the host bridge forwards to PCI. [`host_bridge_windows`] finds that
//! buffer with the same byte-pattern search as [`super::prt`] and [`parse_template`] decodes its resource
//! descriptors (ACPI 6.5 §6.4): Word/DWord/QWord Address Space Descriptors (§6.4.3.5.1-3), whose producer
//! ranges are the windows and whose bus-number range is the root bus range (producer or consumer, as Linux
//! takes it), and the I/O port descriptors (§6.4.2.5 I/O, §6.4.2.6 Fixed I/O), whose ranges the
//! bridge itself consumes (the 0xCF8 configuration ports) and which are kept out of the I/O windows.
//!
//! Every window is kept, on the heap: real host bridges list 14-18 memory windows (one per legacy ROM
//! segment and PCI hole), and a template holds at most one per 16 bytes.
//!
//! Every function is total: any byte string gives a value or a typed [`CrsError`], never a panic.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use core::fmt;

use alloc::vec::Vec;

use super::aml;
use super::prt::PrtError;
pub use super::range::AddressRange;

/// What the host bridge forwards, from its `_CRS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostWindows {
    /// Bus numbers (a Word/DWord/QWord bus-number descriptor, producer or consumer), if declared.
    pub buses: Option<(u8, u8)>,
    /// I/O windows.
    pub io: Vec<AddressRange>,
    /// Memory windows (below and above 4 GiB).
    pub mem: Vec<AddressRange>,
    /// I/O ports the bridge itself consumes (configuration ports), kept out of the windows.
    pub io_consumed: Vec<AddressRange>,
    /// Descriptors that were dropped (the rest of the template is still used).
    pub dropped: Vec<CrsError>,
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
        }
    }
}

// Resource descriptor types and tags (ACPI 6.5 §6.4.2, §6.4.3); the framing is `aml::resource_items`'.
const SMALL_IO: u8 = 0x08;
const SMALL_FIXED_IO: u8 = 0x09;
const LARGE_DWORD_ADDRESS: u8 = 0x87;
const LARGE_WORD_ADDRESS: u8 = 0x88;
const LARGE_QWORD_ADDRESS: u8 = 0x8A;
const LARGE_EXTENDED_ADDRESS: u8 = 0x8B;
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
                        w.io_consumed.push(AddressRange { start, last: start + u64::from(length) - 1 });
                    }
                }
            }
            // Fixed I/O port descriptor (§6.4.2.6): _BAS (2, 10 bits decoded), _LEN.
            (Some(SMALL_FIXED_IO), _) => {
                if let [lo0, lo1, length] = *body {
                    let start = u64::from(u16::from_le_bytes([lo0, lo1]) & 0x3FF);
                    if length > 0 {
                        w.io_consumed.push(AddressRange { start, last: start + u64::from(length) - 1 });
                    }
                }
            }
            (None, LARGE_WORD_ADDRESS) => address_space(&mut w, body, 2, 3, i)?,
            (None, LARGE_DWORD_ADDRESS) => address_space(&mut w, body, 4, 3, i)?,
            (None, LARGE_QWORD_ADDRESS) => address_space(&mut w, body, 8, 3, i)?,
            // Extended Address Space Descriptor (§6.4.3.5.4): Revision ID and a reserved byte before the
            // QWord fields (Linux's acpi_resource_to_address64 reads it like the others).
            (None, LARGE_EXTENDED_ADDRESS) => address_space(&mut w, body, 8, 5, i)?,
            _ => {}
        }
    }
    Ok(w)
}

/// One Word/DWord/QWord/Extended Address Space Descriptor body (§6.4.3.5.1-4): Resource Type, General Flags,
/// Type Specific Flags, (Extended: Revision ID, reserved,) then from byte `first` `_GRA`, `_MIN`, `_MAX`,
/// `_TRA`, `_LEN`, each `width` bytes; a resource source or type-specific attributes follow.
fn address_space(w: &mut HostWindows, body: &[u8], width: usize, first: usize, at: usize) -> Result<(), CrsError> {
    let short = CrsError::ShortDescriptor { at };
    let field = |n: usize| -> Result<u64, CrsError> {
        let bytes = body.get(first + n * width..first + (n + 1) * width).ok_or(short)?;
        Ok(bytes.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b)))
    };
    let (&kind, rest) = body.split_first().ok_or(short)?;
    let &flags = rest.first().ok_or(short)?;
    let (min, max, translation, length) = (field(1)?, field(2)?, field(3)?, field(4)?);
    // _LEN 0 with nothing fixed describes a range to be chosen; for a host bridge's current settings it is
    // no window at all (nor a bus range: Linux skips those too).
    if length == 0 {
        return Ok(());
    }
    let result = if kind == RESOURCE_BUS {
        bus_range(w, min, length, at)
    } else if flags & FLAG_CONSUMER != 0 {
        return Ok(());
    } else {
        window(w, kind, flags, min, max, translation, length, at)
    };
    if let Err(e) = result {
        w.dropped.push(e);
    }
    Ok(())
}

/// The root bus range, as Linux's `acpi_pci_root_add` reads it (drivers/acpi/pci_root.c,
/// `get_root_bridge_busnr_callback`): any bus-number address descriptor with a non-zero `_LEN`, whether it
/// says producer or consumer (HP ProLiant G5s mark theirs a consumer), gives `_MIN ..= _MIN + _LEN - 1`; the
/// last one wins. A range past bus 255 is not used.
fn bus_range(w: &mut HostWindows, min: u64, length: u64, at: usize) -> Result<(), CrsError> {
    let last = min.checked_add(length - 1).ok_or(CrsError::BadRange { at })?;
    match (u8::try_from(min), u8::try_from(last)) {
        (Ok(first), Ok(last)) => w.buses = Some((first, last)),
        _ => return Err(CrsError::BadRange { at }),
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
        RESOURCE_IO | RESOURCE_MEMORY => {
            if kind == RESOURCE_IO && max > 0xFFFF {
                return Err(CrsError::BadRange { at });
            }
            let list = if kind == RESOURCE_IO { &mut w.io } else { &mut w.mem };
            if list.iter().any(|r| r.overlaps(&range)) {
                return Err(CrsError::Overlapping { at });
            }
            list.push(range);
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
    fn a_host_bridge_with_twenty_memory_windows_keeps_them_all() {
        // Intel firmware lists a window per 16 KiB legacy ROM segment (0xC0000-0xDFFFF) and the PCI holes:
        // 14-18 memory windows on the corpus' machines. 8 of a kind were kept once.
        let mut parts = vec![word(RESOURCE_BUS, 0x0C, 0, 0xFE, 0xFF), word(RESOURCE_IO, 0x0C, 0, 0xCF7, 0xCF8)];
        let segments: StdVec<AddressRange> = (0..16u32).map(|i| r(0xC_0000 + u64::from(i) * 0x4000, 0xC_3FFF + u64::from(i) * 0x4000)).collect();
        for s in &segments {
            parts.push(dword(s.start as u32, s.last as u32, 0x4000));
        }
        parts.push(dword(0xA_0000, 0xB_FFFF, 0x2_0000));
        parts.push(dword(0x8000_0000, 0xDFFF_FFFF, 0x6000_0000));
        parts.push(dword(0xFC80_0000, 0xFE7F_FFFF, 0x0200_0000));
        parts.push(qword(1 << 36, (1 << 37) - 1, 0, 1 << 36));
        for i in 0..12u16 {
            parts.push(word(RESOURCE_IO, 0x0C, 0x1000 + i * 0x1000, 0x1FFF + i * 0x1000, 0x1000));
        }
        let w = parse_template(&template(&parts)).unwrap();
        assert!(w.dropped.is_empty(), "{:?}", w.dropped);
        assert_eq!(w.buses, Some((0, 0xFE)));
        assert_eq!(w.mem.len(), 20);
        assert_eq!(w.mem[..16], segments[..]);
        assert_eq!(w.mem[19], r(1 << 36, (1 << 37) - 1));
        assert_eq!(w.io.len(), 13);
        assert_eq!(w.io[12], r(0xC000, 0xCFFF));
    }

    #[test]
    fn extended_address_space_descriptors_are_windows_too() {
        // ExtendedMemory (§6.4.3.5.4): type, flags, type flags, revision 1, reserved, _GRA, _MIN, _MAX, _TRA,
        // _LEN, type-specific attributes; it was skipped, and its window lost.
        let mut d = vec![LARGE_EXTENDED_ADDRESS, 53, 0, RESOURCE_MEMORY, 0x0C, 0, 1, 0];
        for v in [0u64, 1 << 40, (1 << 41) - 1, 0, 1 << 40, 0] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        let mut bus = vec![LARGE_EXTENDED_ADDRESS, 53, 0, RESOURCE_BUS, 0x0C, 0, 1, 0];
        for v in [0u64, 0x80, 0xBF, 0, 0x40, 0] {
            bus.extend_from_slice(&v.to_le_bytes());
        }
        let w = parse_template(&template(&[bus, d.clone()])).unwrap();
        assert_eq!((w.buses, w.mem.as_slice()), (Some((0x80, 0xBF)), &[r(1 << 40, (1 << 41) - 1)][..]));
        // One cut before its last field is too short.
        d[1] = 5 + 8 * 4 + 7;
        d.truncate(3 + 5 + 8 * 4 + 7);
        assert_eq!(parse_template(&template(&[d])), Err(CrsError::ShortDescriptor { at: 0 }));
    }

    #[test]
    fn a_consumer_bus_number_descriptor_is_the_root_bus_range_as_linux_takes_it() {
        // HP ProLiant DL360/DL380 G5 `PCI0._CRS`: WordBusNumber (ResourceConsumer, MinNotFixed, MaxNotFixed,
        // ..., 0x0000, 0x0000, 0x007F, 0x0000, 0x0080), as ACPICA evaluated it (corpus oracle.json).
        let g5 = [0x88, 0x0D, 0x00, 0x02, 0x01, 0x00, 0, 0, 0, 0, 0x7F, 0, 0, 0, 0x80, 0];
        let w = parse_template(&template(&[g5.to_vec()])).unwrap();
        assert_eq!(w.buses, Some((0, 0x7F)), "Linux's acpi_pci_root_add reads it whatever the consumer bit says");
        // _MIN + _LEN - 1 is the last bus (Linux's `get_root_bridge_busnr_callback`); _LEN 0 gives none.
        let w = parse_template(&template(&[word(RESOURCE_BUS, 0x01, 0x40, 0x40, 0x10)])).unwrap();
        assert_eq!(w.buses, Some((0x40, 0x4F)));
        let w = parse_template(&template(&[word(RESOURCE_BUS, 0x0D, 0x40, 0x7F, 0)])).unwrap();
        assert_eq!((w.buses, w.dropped.len()), (None, 0));
        // A range past bus 255 is not used, and says so.
        let w = parse_template(&template(&[word(RESOURCE_BUS, 0x01, 0x80, 0x17F, 0x100)])).unwrap();
        assert_eq!((w.buses, w.dropped.as_slice()), (None, &[CrsError::BadRange { at: 0 }][..]));
        // Consumer I/O and memory ranges are still no windows.
        let t = template(&[g5.to_vec(), word(RESOURCE_IO, 0x0D, 0x1000, 0x1FFF, 0x1000)]);
        assert!(parse_template(&t).unwrap().io.is_empty());
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

    /// Every root bridge's `_CRS` on 31 real machines (`../shared/acpi-corpus`, as ACPICA evaluated it with
    /// zero-filled operation regions): every window is kept or dropped with a reason, none is lost to a
    /// capacity, and the bus range is Linux's.
    #[test]
    fn every_corpus_host_bridge_crs_window_is_kept() {
        use std::path::Path;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/acpi-corpus");
        let mut machines: StdVec<_> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{}: {e} (the corpus is part of ../shared)", root.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("oracle.json").exists())
            .collect();
        machines.sort();
        assert!(machines.len() >= 30, "{} machines", machines.len());
        let pairs = |v: &serde_json::Value| -> StdVec<AddressRange> {
            v.as_array().unwrap().iter().map(|p| r(p[0].as_u64().unwrap(), p[1].as_u64().unwrap())).collect()
        };
        let (mut bridges, mut most_mem, mut over_8, mut consumer_bus) = (0, 0, 0, 0);
        for m in &machines {
            let oracle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(m.join("oracle.json")).unwrap()).unwrap();
            for rb in oracle["root_bridges"].as_array().unwrap() {
                let Some(hex) = rb["crs"]["hex"].as_str() else { continue };
                let what = format!("{}: {}", m.display(), rb["path"]);
                let bytes: StdVec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
                let w = parse_template(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
                let windows = &rb["crs"]["windows"];
                let (want_io, want_mem) = (pairs(&windows["producer"]["io"]), pairs(&windows["producer"]["mem"]));
                // Linux's bus range: the last bus-number descriptor, producer or consumer.
                let want_bus = pairs(&windows["any"]["bus"]).last().map(|b| (b.start as u8, b.last as u8));
                assert_eq!(w.buses, want_bus, "{what}: bus range");
                consumer_bus += usize::from(pairs(&windows["producer"]["bus"]).is_empty() && want_bus.is_some());
                assert!(w.io.iter().all(|x| want_io.contains(x)), "{what}: {:?} not in {want_io:?}", w.io);
                assert!(w.mem.iter().all(|x| want_mem.contains(x)), "{what}: {:?} not in {want_mem:?}", w.mem);
                assert_eq!(
                    w.io.len() + w.mem.len() + w.dropped.len(),
                    want_io.len() + want_mem.len(),
                    "{what}: every window kept or dropped with a reason ({:?})",
                    w.dropped
                );
                bridges += 1;
                most_mem = most_mem.max(w.mem.len());
                over_8 += usize::from(w.mem.len() > 8);
            }
        }
        assert!(bridges >= 40, "{bridges} root bridges with a _CRS");
        eprintln!("{bridges} root bridges; most memory windows kept for one: {most_mem}; {over_8} with more than 8");
        assert!(most_mem >= 17, "the most memory windows of one bridge: {most_mem}");
        assert!(over_8 >= 15, "{over_8} bridges with more than 8 memory windows (8 were kept once)");
        assert_eq!(consumer_bus, 2, "the two ProLiant G5s give their root bus range in a consumer descriptor");
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
