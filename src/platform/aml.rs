//! The AML byte scanner left for [`super::crs`] (`host_bridge_windows` and the resource-template framing
//! `parse_template` uses): finding named objects (`Name`, `Device`, `Scope`, `Method`) by a byte-pattern
//! search, a bounds-checked cursor that decodes the few AML encodings they need (PkgLength, integer
//! constants, NameStrings, static buffers), and the framing of resource templates. It is not an
//! interpreter; the firmware's root bridges and routing come from the evaluator (`super::namespace`), and
//! the scan goes once `crs` no longer uses it.
//!
//! Every function is total: any byte string gives a value or a typed [`AmlError`], never a panic. Every read is
//! bounds-checked, every PkgLength is checked against its container, no loop runs longer than its input, nothing
//! recurses, and the pattern scans try at most [`MAX_CANDIDATES`] matches of a name.
//!
//! References: ACPI 6.5 §20.2 (AML grammar), §6.4 (resource data types).

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

use heapless::Vec;

/// Most matches of a name's byte pattern that are examined before giving up (a bound on work for hostile input).
pub const MAX_CANDIDATES: usize = 16;
/// Longest NameString prefix before the last NameSeg that a backward pattern match considers: `\`, then a
/// MultiNamePath of 8 segments (`2F 08` + 7 × 4 bytes). Deeper paths are not found (QEMU uses none).
const MAX_NAME_PREFIX: usize = 1 + 2 + 7 * 4;

// AML encodings (ACPI 6.5 §20.2 and §20.3).
pub(crate) const ZERO_OP: u8 = 0x00;
pub(crate) const ONE_OP: u8 = 0x01;
pub(crate) const NAME_OP: u8 = 0x08;
pub(crate) const BYTE_PREFIX: u8 = 0x0A;
pub(crate) const WORD_PREFIX: u8 = 0x0B;
pub(crate) const DWORD_PREFIX: u8 = 0x0C;
pub(crate) const QWORD_PREFIX: u8 = 0x0E;
#[cfg(test)]
const STRING_PREFIX: u8 = 0x0D;
pub(crate) const SCOPE_OP: u8 = 0x10;
pub(crate) const BUFFER_OP: u8 = 0x11;
pub(crate) const METHOD_OP: u8 = 0x14;
pub(crate) const DUAL_NAME_PREFIX: u8 = 0x2E;
pub(crate) const MULTI_NAME_PREFIX: u8 = 0x2F;
pub(crate) const EXT_OP_PREFIX: u8 = 0x5B;
pub(crate) const DEVICE_OP: u8 = 0x82;
pub(crate) const ROOT_CHAR: u8 = 0x5C;
pub(crate) const PARENT_PREFIX_CHAR: u8 = 0x5E;
pub(crate) const ONES_OP: u8 = 0xFF;

// Resource template framing (ACPI 6.5 §6.4).
/// Small item tag bit 7 clear; type in bits 6:3, length in bits 2:0.
const LARGE_ITEM: u8 = 0x80;
pub(crate) const SMALL_TYPE_END_TAG: u8 = 0x0F;

/// Why the AML at an offset could not be decoded. Offsets (`at`) are into the table given to the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmlError {
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
    /// An opcode the scanner does not accept where it is (a method call, a nested package, ...).
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
}

// ---------------------------------------------------------------------------------------------------------------
// Static buffers and resource templates
// ---------------------------------------------------------------------------------------------------------------

/// The initializer of `Buffer(size){ bytes }` at `at` (cut to BufferSize), with its offset in `dsdt`.
pub(crate) fn static_buffer(dsdt: &[u8], at: usize, limit: usize) -> Result<(usize, &[u8]), AmlError> {
    let mut aml = Aml::new(dsdt, at, limit);
    let op_at = aml.pos;
    let op = aml.byte()?;
    if op != BUFFER_OP {
        return Err(AmlError::UnexpectedOpcode { at: op_at, op });
    }
    let end = aml.pkg_length()?;
    let mut inner = aml.within(end);
    let size = inner.integer()?;
    // BufferSize beyond the initializer is zero-filled, which never forms an end tag; so only the initializer
    // (cut to BufferSize) can hold a valid template.
    let data_len = end.saturating_sub(inner.pos).min(usize::try_from(size).unwrap_or(usize::MAX));
    let data = dsdt.get(inner.pos..inner.pos + data_len).ok_or(AmlError::Truncated { at: inner.pos })?;
    Ok((inner.pos, data))
}

/// Every static `Name(<seg>, Buffer(){...})` directly or indirectly inside a `Device(PCI0)` or `Scope(...PCI0)`
/// body (at most [`MAX_CANDIDATES`] per body), as its initializer and that initializer's offset in `dsdt`, or the
/// error decoding it. Used for the host bridge's `_CRS` (`platform::crs`); the caller tells the host bridge's
/// template from its children's by what it holds.
pub(crate) fn pci0_static_buffers(dsdt: &[u8], seg: [u8; 4]) -> Vec<Result<(usize, &[u8]), AmlError>, MAX_CANDIDATES> {
    let mut found = Vec::new();
    for (start, end) in pci0_bodies(dsdt) {
        for hit in NameHits::within(dsdt, start, end, seg, Kind::Name).take(MAX_CANDIDATES) {
            if found.push(static_buffer(dsdt, hit.name_end, end)).is_err() {
                return found;
            }
        }
    }
    found
}

/// Whether a `Method` named `seg` lies inside a `Device(PCI0)` or `Scope(...PCI0)` body.
pub(crate) fn pci0_has_method(dsdt: &[u8], seg: [u8; 4]) -> bool {
    pci0_bodies(dsdt).iter().any(|&(start, end)| NameHits::within(dsdt, start, end, seg, Kind::Method).next().is_some())
}

/// One descriptor of a resource template (ACPI 6.5 §6.4): where it starts in the template, its body, and
/// its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourceItem<'a> {
    /// Offset of the descriptor's tag in the template.
    pub at: usize,
    /// A small item's type (bits 6:3 of its tag), or None for a large item.
    pub small_type: Option<u8>,
    /// A large item's tag byte (0 for a small item).
    pub large_tag: u8,
    /// The descriptor's data after its header.
    pub body: &'a [u8],
}

/// Why a resource template's framing is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// The data ended before an end tag, at this offset.
    NoEndTag { at: usize },
    /// A descriptor at this offset runs past the data.
    Truncated { at: usize },
}

/// The descriptors of a resource template, up to (not including) its end tag: small items (tag bit 7
/// clear, length in bits 2:0) and large items (a 16-bit length after the tag). Shared by the `_CRS`
/// readers of link devices (`prt`) and of host bridges (`crs`).
pub(crate) fn resource_items(data: &[u8]) -> impl Iterator<Item = Result<ResourceItem<'_>, TemplateError>> + '_ {
    let mut i = 0;
    let mut done = false;
    // Every item advances `i` by at least 1, so this ends within data.len() items.
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        let item = (|| {
            let at = i;
            let tag = *data.get(i).ok_or(TemplateError::NoEndTag { at })?;
            if tag & LARGE_ITEM == 0 {
                let len = usize::from(tag & 0x07);
                let body = data.get(i + 1..i + 1 + len).ok_or(TemplateError::Truncated { at })?;
                i += 1 + len;
                Ok(ResourceItem { at, small_type: Some((tag >> 3) & 0x0F), large_tag: 0, body })
            } else {
                let len = match data.get(i + 1..i + 3) {
                    Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
                    _ => return Err(TemplateError::Truncated { at }),
                };
                let body = data.get(i + 3..i + 3 + len).ok_or(TemplateError::Truncated { at })?;
                i += 3 + len;
                Ok(ResourceItem { at, small_type: None, large_tag: tag, body })
            }
        })();
        match item {
            Ok(item) if item.small_type == Some(SMALL_TYPE_END_TAG) => {
                done = true;
                None
            }
            Ok(item) => Some(Ok(item)),
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Finding named objects by byte pattern
// ---------------------------------------------------------------------------------------------------------------

/// The bodies of every `Device` or `Scope` whose name ends in `PCI0`, as `(start, end)` offsets.
pub(crate) fn pci0_bodies(dsdt: &[u8]) -> Vec<(usize, usize), MAX_CANDIDATES> {
    let mut bodies = Vec::new();
    let devices = NameHits::new(dsdt, *b"PCI0", Kind::Device).take(MAX_CANDIDATES);
    let scopes = NameHits::new(dsdt, *b"PCI0", Kind::Scope).take(MAX_CANDIDATES);
    for hit in devices.chain(scopes) {
        if bodies.push((hit.name_end, hit.body_end)).is_err() {
            break;
        }
    }
    bodies
}

/// The kind of named object a pattern match must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `NameOp NameString DataRefObject`.
    Name,
    /// `ExtOpPrefix DeviceOp PkgLength NameString TermList`.
    Device,
    /// `ScopeOp PkgLength NameString TermList`.
    Scope,
    /// `MethodOp PkgLength NameString MethodFlags TermList`.
    Method,
}

/// A validated match: the object's opcode, the end of its NameString, and (for objects with a PkgLength) the end
/// of its body; for `Name` the body end is the search limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) op_at: usize,
    pub(crate) name_end: usize,
    pub(crate) body_end: usize,
}

/// Iterates over the objects of one [`Kind`] whose NameString ends in a given NameSeg, found by scanning for the
/// NameSeg and checking the bytes before it (the opcode, PkgLength and path prefix) and, for objects with a
/// PkgLength, that their body fits the search range.
pub(crate) struct NameHits<'a> {
    aml: &'a [u8],
    lo: usize,
    hi: usize,
    next: usize,
    seg: [u8; 4],
    kind: Kind,
}

impl<'a> NameHits<'a> {
    pub(crate) fn new(aml: &'a [u8], seg: [u8; 4], kind: Kind) -> Self {
        Self::within(aml, 0, aml.len(), seg, kind)
    }

    pub(crate) fn within(aml: &'a [u8], lo: usize, hi: usize, seg: [u8; 4], kind: Kind) -> Self {
        let hi = hi.min(aml.len());
        NameHits { aml, lo, hi, next: lo, seg, kind }
    }

    /// The object whose NameString starts at `name_at` and ends at `name_end` with `self.seg`, if the bytes
    /// before `name_at` are this kind's opcode (and PkgLength).
    fn object_at(&self, name_at: usize, name_end: usize) -> Option<Hit> {
        let mut name = Aml::new(self.aml, name_at, name_end);
        if name.name_string().ok()? != Some(self.seg) || name.pos != name_end {
            return None;
        }
        let prefix = self.aml.get(self.lo..name_at)?;
        match self.kind {
            Kind::Name => match prefix {
                [.., NAME_OP] => Some(Hit { op_at: name_at - 1, name_end, body_end: self.hi }),
                _ => None,
            },
            Kind::Device => self.with_pkg_length(prefix, name_at, name_end, &[EXT_OP_PREFIX, DEVICE_OP]),
            Kind::Scope => self.with_pkg_length(prefix, name_at, name_end, &[SCOPE_OP]),
            Kind::Method => self.with_pkg_length(prefix, name_at, name_end, &[METHOD_OP]),
        }
    }

    /// Matches `op PkgLength` right before `name_at`, with the PkgLength's end inside the search range.
    fn with_pkg_length(&self, prefix: &[u8], name_at: usize, name_end: usize, op: &[u8]) -> Option<Hit> {
        (1..=4).find_map(|len_bytes| {
            let before = prefix.len().checked_sub(len_bytes)?;
            let op_len = before.checked_sub(op.len())?;
            if prefix.get(op_len..before)? != op {
                return None;
            }
            let pkg_at = name_at - len_bytes;
            let mut aml = Aml::new(self.aml, pkg_at, self.hi);
            let body_end = aml.pkg_length().ok()?;
            (aml.pos == name_at && body_end >= name_end).then_some(Hit { op_at: self.lo + op_len, name_end, body_end })
        })
    }
}

impl Iterator for NameHits<'_> {
    type Item = Hit;

    fn next(&mut self) -> Option<Hit> {
        loop {
            let window = self.aml.get(self.next..self.hi)?;
            // One 32-bit compare per position: a slice compare here costs a call per byte of the table,
            // and this scan runs a dozen times over the whole DSDT at boot.
            let seg = u32::from_le_bytes(self.seg);
            let seg_at = self.next + window.windows(4).position(|w| <[u8; 4]>::try_from(w).is_ok_and(|b| u32::from_le_bytes(b) == seg))?;
            self.next = seg_at + 1;
            let name_end = seg_at + 4;
            // The nearest plausible NameString start first: a plain NameSeg, then ever longer paths.
            let earliest = seg_at.saturating_sub(MAX_NAME_PREFIX).max(self.lo);
            if let Some(hit) = (earliest..=seg_at).rev().find_map(|name_at| self.object_at(name_at, name_end)) {
                return Some(hit);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// AML decoding
// ---------------------------------------------------------------------------------------------------------------

/// A read position in an AML byte stream, limited to `end` (the enclosing object's end); offsets are into the
/// whole table so errors can name them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aml<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
    end: usize,
}

impl<'a> Aml<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize, end: usize) -> Self {
        Aml { bytes, pos, end: end.min(bytes.len()) }
    }

    /// A cursor at the same position limited to `end` (itself checked to be within this one).
    pub(crate) fn within(&self, end: usize) -> Self {
        Aml { bytes: self.bytes, pos: self.pos, end: end.min(self.end) }
    }

    pub(crate) fn peek(&self) -> Result<u8, AmlError> {
        if self.pos >= self.end {
            return Err(AmlError::Truncated { at: self.pos });
        }
        self.bytes.get(self.pos).copied().ok_or(AmlError::Truncated { at: self.pos })
    }

    pub(crate) fn byte(&mut self) -> Result<u8, AmlError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn le(&mut self, len: usize) -> Result<u64, AmlError> {
        let mut value = 0u64;
        for i in 0..len {
            value |= u64::from(self.byte()?) << (8 * i);
        }
        Ok(value)
    }

    /// PkgLength (§20.2.4): returns the absolute end of the package, which must lie within this cursor's range.
    /// Like ACPICA, bits 5:4 of a multi-byte lead byte are ignored.
    pub(crate) fn pkg_length(&mut self) -> Result<usize, AmlError> {
        let at = self.pos;
        let lead = self.byte()?;
        let follow = usize::from(lead >> 6);
        let length = if follow == 0 {
            usize::from(lead & 0x3F)
        } else {
            let mut length = usize::from(lead & 0x0F);
            for i in 0..follow {
                length |= usize::from(self.byte()?) << (4 + 8 * i);
            }
            length
        };
        if length < 1 + follow {
            return Err(AmlError::BadPkgLength { at });
        }
        match at.checked_add(length) {
            Some(end) if end <= self.end => Ok(end),
            _ => Err(AmlError::BadPkgLength { at }),
        }
    }

    /// An integer constant (§20.2.3): ZeroOp, OneOp, OnesOp or a Byte/Word/DWord/QWord prefix.
    pub(crate) fn integer(&mut self) -> Result<u64, AmlError> {
        let at = self.pos;
        match self.byte()? {
            ZERO_OP => Ok(0),
            ONE_OP => Ok(1),
            ONES_OP => Ok(u64::MAX),
            BYTE_PREFIX => self.le(1),
            WORD_PREFIX => self.le(2),
            DWORD_PREFIX => self.le(4),
            QWORD_PREFIX => self.le(8),
            op => Err(AmlError::UnexpectedOpcode { at, op }),
        }
    }

    /// A NameString (§20.2.2); returns its last NameSeg, or `None` for the NullName.
    pub(crate) fn name_string(&mut self) -> Result<Option<[u8; 4]>, AmlError> {
        if self.peek()? == ROOT_CHAR {
            self.pos += 1;
        } else {
            while self.peek()? == PARENT_PREFIX_CHAR {
                self.pos += 1;
            }
        }
        let at = self.pos;
        let segments = match self.byte()? {
            0x00 => return Ok(None),
            DUAL_NAME_PREFIX => 2,
            MULTI_NAME_PREFIX => match self.byte()? {
                0 => return Err(AmlError::BadName { at }),
                n => n,
            },
            _ => {
                self.pos = at;
                1
            }
        };
        let mut last = [0; 4];
        for _ in 0..segments {
            last = self.name_seg()?;
        }
        Ok(Some(last))
    }

    /// A NameSeg (§20.2.2): a LeadNameChar (`A-Z`, `_`) then three NameChars (also `0-9`).
    fn name_seg(&mut self) -> Result<[u8; 4], AmlError> {
        let mut seg = [0; 4];
        for (i, c) in seg.iter_mut().enumerate() {
            let at = self.pos;
            let b = self.byte()?;
            let ok = b.is_ascii_uppercase() || b == b'_' || (i > 0 && b.is_ascii_digit());
            if !ok {
                return Err(AmlError::BadName { at });
            }
            *c = b;
        }
        Ok(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{vec, vec::Vec as StdVec};

    fn cat(parts: &[&[u8]]) -> StdVec<u8> {
        parts.concat()
    }

    #[test]
    fn pkg_lengths_are_checked_against_their_container() {
        // One byte: bits 5:0 are the length, counted from the PkgLength itself.
        assert_eq!(Aml::new(&[0x05, 0, 0, 0, 0], 0, 5).pkg_length(), Ok(5));
        // Two bytes: bits 3:0 of the lead byte, then the next byte shifted by 4: 0x21 = 33.
        let mut b = vec![0x41, 0x02];
        b.resize(33, 0);
        assert_eq!(Aml::new(&b, 0, 33).pkg_length(), Ok(33));
        assert_eq!(Aml::new(&b, 0, 32).pkg_length(), Err(AmlError::BadPkgLength { at: 0 }), "past its container");
        assert_eq!(Aml::new(&[0x40, 0x00], 0, 2).pkg_length(), Err(AmlError::BadPkgLength { at: 0 }), "shorter than itself");
        assert_eq!(Aml::new(&[0x41], 0, 1).pkg_length(), Err(AmlError::Truncated { at: 1 }));
    }

    #[test]
    fn name_strings_give_their_last_segment() {
        // The bytes, the last NameSeg, where the NameString ends.
        type Case = (&'static [u8], Option<[u8; 4]>, usize);
        let cases: [Case; 5] = [
            (b"GSIA", Some(*b"GSIA"), 4),
            (b"\\GSIA", Some(*b"GSIA"), 5),
            (b"^^GSIA", Some(*b"GSIA"), 6),
            (b"\x2e_SB_PCI0", Some(*b"PCI0"), 9),
            (b"\\\x00", None, 2),
        ];
        for (bytes, last, end) in cases {
            let mut a = Aml::new(bytes, 0, bytes.len());
            assert_eq!(a.name_string(), Ok(last), "{bytes:x?}");
            assert_eq!(a.pos, end, "{bytes:x?}");
        }
        assert_eq!(Aml::new(b"gsia", 0, 4).name_string(), Err(AmlError::BadName { at: 0 }));
        assert_eq!(Aml::new(b"1SIA", 0, 4).name_string(), Err(AmlError::BadName { at: 0 }), "a digit first");
        assert_eq!(Aml::new(b"\x2f\x00", 0, 2).name_string(), Err(AmlError::BadName { at: 0 }), "no segments");
        assert_eq!(Aml::new(b"GSI", 0, 3).name_string(), Err(AmlError::Truncated { at: 3 }));
    }

    #[test]
    fn objects_are_found_by_name_only_after_their_opcode() {
        // Scope(\_SB_){ Device(PCI0){ Name(_ADR, Zero) } }, then the bytes "PCI0" in a string.
        let device = cat(&[&[EXT_OP_PREFIX, DEVICE_OP, 11], b"PCI0", &[NAME_OP], b"_ADR", &[ZERO_OP]]);
        let scope = cat(&[&[SCOPE_OP, 19, ROOT_CHAR], b"_SB_", &device]);
        let aml = cat(&[&scope, &[STRING_PREFIX], b"PCI0", &[0]]);
        let devices: StdVec<Hit> = NameHits::new(&aml, *b"PCI0", Kind::Device).collect();
        assert_eq!(devices, [Hit { op_at: 7, name_end: 14, body_end: 20 }], "the string is not a device");
        let scopes: StdVec<Hit> = NameHits::new(&aml, *b"_SB_", Kind::Scope).collect();
        assert_eq!(scopes, [Hit { op_at: 0, name_end: 7, body_end: 20 }]);
        let names: StdVec<Hit> = NameHits::within(&aml, 14, 20, *b"_ADR", Kind::Name).collect();
        assert_eq!(names, [Hit { op_at: 14, name_end: 19, body_end: 20 }]);
        assert_eq!(NameHits::within(&aml, 20, aml.len(), *b"_ADR", Kind::Name).next(), None);
        assert_eq!(NameHits::new(&aml, *b"PCI0", Kind::Method).next(), None);
    }

    #[test]
    fn static_buffers_are_cut_to_their_size() {
        // Name(_CRS, Buffer(3){ 1, 2, 3, 4 }): BufferSize 3 with 4 initializer bytes.
        let aml = cat(&[&[NAME_OP], b"_CRS", &[BUFFER_OP, 7, BYTE_PREFIX, 3, 1, 2, 3, 4]]);
        assert_eq!(static_buffer(&aml, 5, aml.len()), Ok((9, &[1u8, 2, 3][..])));
        assert_eq!(static_buffer(&aml, 4, aml.len()), Err(AmlError::UnexpectedOpcode { at: 4, op: b'S' }));
        assert_eq!(static_buffer(&aml, 5, aml.len() - 1), Err(AmlError::BadPkgLength { at: 6 }), "past the limit");
    }

    #[test]
    fn resource_templates_are_framed_up_to_their_end_tag() {
        // An I/O descriptor (small item type 8, 7 bytes), an Extended Interrupt (large item 0x89, 6 bytes),
        // the end tag (small item type 0xF, 1 byte).
        let io = [0x47, 1, 0xF8, 0x0C, 0xF8, 0x0C, 1, 8];
        let ext = [0x89, 6, 0, 9, 1, 5, 0, 0, 0];
        let io_item = ResourceItem { at: 0, small_type: Some(8), large_tag: 0, body: &io[1..] };
        let t = cat(&[&io, &ext, &[0x79, 0]]);
        let items: StdVec<_> = resource_items(&t).collect();
        assert_eq!(items, [Ok(io_item), Ok(ResourceItem { at: 8, small_type: None, large_tag: 0x89, body: &ext[3..] })]);
        assert_eq!(resource_items(&io).collect::<StdVec<_>>(), [Ok(io_item), Err(TemplateError::NoEndTag { at: 8 })]);
        assert_eq!(resource_items(&ext[..5]).collect::<StdVec<_>>(), [Err(TemplateError::Truncated { at: 0 })]);
        assert_eq!(resource_items(&io[..4]).collect::<StdVec<_>>(), [Err(TemplateError::Truncated { at: 0 })]);
    }
}
