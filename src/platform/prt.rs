//! The error type of the old byte-pattern AML scanner, which `crs::host_bridge_windows` still reports through
//! [`super::crs::CrsError::Aml`]. Routing itself comes from the AML evaluator (`super::namespace`); the `PRTA`
//! scanner that lived here is gone, and this type goes with `host_bridge_windows`.

#![warn(missing_docs)]

use core::fmt;

use super::aml::AmlError;

/// Most `_PRT` entries the old scanner kept (named by [`PrtError::TooManyEntries`]).
pub const MAX_PRT_ENTRIES: usize = 256;

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
