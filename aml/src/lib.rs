//! A bounded AML namespace and evaluator for what PCI interrupt routing needs (ACPI 6.5 §5, §19, §20).
//!
//! [`Aml`] loads the DSDT and every SSDT into one namespace (Scope, Device, Name, Method, Alias, External,
//! Processor / PowerResource / ThermalZone as scopes, OperationRegion and its Field, IndexField and BankField
//! units) and evaluates control methods the way the spec's interpreter does: If / Else / While, Return,
//! Package / VarPackage, method calls with arguments and locals, integer and logical operators, Store,
//! buffers and the CreateXField buffer fields `_CRS` methods patch, names found by the search rules of §5.3.
//! [`pci`] asks it what routing needs: every root bridge with `_STA`, `_BBN`, `_SEG`, `_UID`, `_CRS`, `_ADR`,
//! every `_PRT` below it, the PNP0C0F link devices.
//!
//! Everything is bounded: each evaluation has a step, nesting-depth and memory budget ([`Limits`]); an
//! opcode it does not evaluate, a malformed table, or an operation-region access the caller's [`Regions`]
//! cannot answer ends that one evaluation with a typed [`Error`] naming the opcode, the table offset and
//! the scope (method) it was in. No input makes it panic, loop or allocate without bound.
//!
//! Operation regions are the caller's: the evaluator computes the address of each field access and asks
//! a [`Regions`] implementation. [`Overlay`] answers what was written during the evaluations (the
//! `\_PIC(1)` flag kept in an NVS field) and, when asked to, reads everything else as zero, which is what
//! ACPICA's `acpiexec` simulates.

#![no_std]
#![forbid(unsafe_code)]
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

extern crate alloc;

mod eval;
mod name;
pub mod pci;
mod region;
pub mod resource;
#[cfg(test)]
mod tests;

pub use eval::{Aml, Limits, Node, NodeId, Obj, ROOT};
pub use region::{Overlay, Regions};

use alloc::vec::Vec;

/// An AML data object as the evaluator holds it (ACPI 6.5 §19.3.5).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Value {
    /// Uninitialized (a Local not yet stored to, a missing package element, a method without Return).
    #[default]
    None,
    /// An Integer (64 bits, or 32 when the DSDT's revision is below 2).
    Int(u64),
    /// A String (without its terminating NUL).
    Str(Vec<u8>),
    /// A Buffer.
    Buf(Vec<u8>),
    /// A Package.
    Pkg(Vec<Value>),
    /// A reference to a named object: a package element naming a device (a `_PRT` link), `RefOf`, or
    /// a Device / Mutex / OperationRegion read as an operand.
    Node(NodeId),
}

/// Which budget an evaluation ran past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// More terms executed than [`Limits::steps`] (a loop polling hardware ends here).
    Steps,
    /// Calls and nested expressions deeper than [`Limits::depth`].
    Depth,
    /// More bytes of strings, buffers, packages and temporary names than [`Limits::memory`].
    Memory,
}

/// Why an evaluation (or part of a table load) could not be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An opcode this evaluator does not know (`0x5Bxx` for the extended ones).
    UnknownOpcode(u16),
    /// A known opcode it does not evaluate statically (Load, LoadTable, Timer, DataTableRegion, ...).
    Unsupported(u16),
    /// An operation-region access the [`Regions`] could not answer: the address space (ACPI 6.5
    /// §19.6.100) and the region's node.
    Region {
        /// The region's address space id (0 SystemMemory, 1 SystemIO, 2 PCI_Config, 3 EmbeddedControl...).
        space: u8,
        /// The OperationRegion.
        region: NodeId,
    },
    /// A name that resolves to nothing (§5.3 search rules), or an External never defined.
    NotFound,
    /// A name defined twice (the second definition is ignored, as ACPICA does).
    Exists,
    /// Bytes that are not AML (truncated, a length past its package, a bad table header).
    Malformed,
    /// An operand of the wrong type (an index past a package, a field of a non-buffer, ...).
    Type,
    /// Division by zero.
    DivideByZero,
    /// The AML executed `Fatal`.
    Fatal,
    /// A budget ran out.
    Budget(Budget),
}

/// An error with where it happened: table (load order), byte offset in it, and the method or scope
/// being evaluated ([`Aml::path`] names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The table, by load order (0 = the first table loaded).
    pub table: u16,
    /// The byte offset in that table.
    pub offset: u32,
    /// The scope or method being evaluated.
    pub scope: NodeId,
}
