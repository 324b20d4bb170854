//! ACPI static tables: RSDP -> RSDT/XSDT -> MADT, MCFG (and where the DSDT is).
//!
//! [`parse`] walks the tables the firmware was handed and returns a [`PlatformTables`]: what it could trust,
//! plus a list of typed [`AcpiProblem`]s for what it could not. It never panics, whatever the bytes: every
//! table is bounds-checked against a [`PhysMemory`] and checksummed before any of its contents are used, and a
//! table that fails is reported and left out (a MADT with a bad checksum gives `madt: None` and a problem).
//!
//! ## What comes from the `acpi` crate, and what does not
//! The `acpi` 5.2 crate (without `alloc`) provides the table layouts (`SdtHeader`, `Madt`, `Mcfg` and
//! the MADT entry structs), header validation (`SdtHeader::validate`: signature, OEM ids, checksum), the MADT
//! entry iterator (`Madt::entries`) and the MCFG entry slice (`Mcfg::entries`). It is not safe on
//! untrusted input on its own, so this module (in [`sdt`], [`madt`], [`mcfg`]) checks every precondition before handing memory to it:
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
//! One file per table: [`rsdp`] (finding and checking the RSDP), [`sdt`] (the common header, checksums, the
//! checked in-place views), [`madt`], [`mcfg`], [`fadt`] (DSDT pointer, fixed-hardware ports), [`hpet`], and
//! [`problem`] (what is reported); this file walks the root table and gathers [`PlatformTables`].
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

use alloc::vec::Vec;

use fadt::{fadt_io_blocks, find_dsdt};
use madt::parse_madt;
use mcfg::parse_mcfg;
use rsdp::{read_rsdp, RsdpFields};
use sdt::{le_u32, le_u64, load_sdt, Sdt, SdtFault, SDT_HEADER_LEN};

pub mod fadt;
pub mod hpet;
// `Pin::new_unchecked` on the MADT view `acpi`'s entry iterator needs.
#[allow(unsafe_code)]
pub mod madt;
pub mod mcfg;
pub mod problem;
pub mod rsdp;
// The in-place views of `acpi`'s packed table structs.
#[allow(unsafe_code)]
pub mod sdt;
#[cfg(test)]
mod testimage;

pub use hpet::{hpet_base, HpetTableError};
pub use madt::{
    decode_inti_flags, InterruptSourceOverride, IoApic, IsaIrqRoute, LocalApic, LocalApicNmi, LocalInterruptLine,
    MadtInfo, NmiSource, Polarity, TriggerMode, MAX_IO_APICS,
};
pub use mcfg::McfgEntry;
pub use problem::{AcpiProblem, EntryKind, MadtEntryFault};
pub use rsdp::{bios_rsdp_ranges, find_rsdp_bios, find_rsdp_in, OemId, BIOS_RSDP_AREA};
pub use sdt::{Signature, TableRef};


// ---------------------------------------------------------------------------------------------------------------
// Physical memory access
// ---------------------------------------------------------------------------------------------------------------

pub use crate::physmem::{IdentityMemory, PhysMemory, SliceMemory};

// ---------------------------------------------------------------------------------------------------------------
// Result types
// ---------------------------------------------------------------------------------------------------------------

/// Which root table the table list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTableKind {
    /// RSDT: 32-bit table addresses (ACPI 1.0, and QEMU's SeaBIOS tables).
    Rsdt,
    /// XSDT: 64-bit table addresses (ACPI 2.0+).
    Xsdt,
}

/// The root table that was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootTable {
    /// RSDT or XSDT.
    pub kind: RootTableKind,
    /// Where it is.
    pub table: TableRef,
}

/// Everything [`parse`] found.
///
/// Its lists are on the heap and hold every entry the tables have (real machines list 50 tables, 200+ local
/// APICs): no fixed capacity. Where the heap has no room, what was left out is a [`AcpiProblem::NoHeap`]
/// (or, for problems, counted in [`Self::problems_dropped`]); both are limits met that fail the run.
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
    pub tables: Vec<TableRef>,
    /// The MADT, if one passed the checks.
    pub madt: Option<MadtInfo>,
    /// MCFG allocations that passed the checks (empty without an MCFG, e.g. on i440fx).
    pub mcfg: Vec<McfgEntry>,
    /// The DSDT, found through the FADT, if it passed the checks.
    pub dsdt: Option<TableRef>,
    /// The fixed-hardware I/O port blocks the FADT names (PM1a/PM1b event and control, PM2 control, PM
    /// timer, GPE0, GPE1), as (first port, length): ports a resource allocator must leave alone.
    /// Eight at most: the FADT has eight such fields.
    pub fadt_io: heapless::Vec<(u16, u16), 8>,
    /// What was wrong, in the order found.
    pub problems: Vec<AcpiProblem>,
    /// Problems the heap had no room for, counted but not kept.
    pub problems_dropped: u32,
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
            fadt_io: heapless::Vec::new(),
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
        if heap_has_room(&mut self.problems) {
            self.problems.push(problem);
        } else {
            self.problems_dropped = self.problems_dropped.saturating_add(1);
        }
    }
}

/// Whether `list` can take one more entry: the heap is the one limit of the lists here, and running out of
/// it is reported, not a panic (a table as large as the heap is bad input like any other).
fn heap_has_room<T>(list: &mut Vec<T>) -> bool {
    #[cfg(test)]
    if testimage::heap_limit_reached(list.len()) {
        return false;
    }
    list.try_reserve(1).is_ok()
}

/// Appends `item` to `list`; when the heap has no room, drops it and returns the [`AcpiProblem::NoHeap`] to
/// report, once per kind (`reported` has a bit per [`EntryKind`]).
#[must_use]
fn push_on_heap<T>(list: &mut Vec<T>, item: T, kind: EntryKind, reported: &mut u8) -> Option<AcpiProblem> {
    if heap_has_room(list) {
        list.push(item);
        None
    } else if *reported & kind.bit() == 0 {
        *reported |= kind.bit();
        Some(AcpiProblem::NoHeap { kind, kept: u32::try_from(list.len()).unwrap_or(u32::MAX) })
    } else {
        None
    }
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
    let mut heap_reported = 0u8;
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
        if let Some(p) = push_on_heap(&mut out.tables, sdt.table_ref(), EntryKind::Tables, &mut heap_reported) {
            out.report(p);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;

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

    #[test]
    fn every_problem_is_kept_and_only_the_heap_limits_them() {
        let mut img = Image::new();
        let rsdt_at = img.add(&rsdt(&[0; 40]));
        img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        // 40 bad entries + MissingTable x2 = 42 problems (16 were kept once, the rest only counted).
        let t = img.parse();
        assert_eq!((t.problems.len(), t.problems_dropped), (42, 0));
        assert_eq!(t.problems[39], AcpiProblem::BadTableAddress { parent: Signature::RSDT, index: 39, address: 0 });
        let t = with_heap_limit(16, || img.parse());
        assert_eq!((t.problems.len(), t.problems_dropped), (16, 26));
        assert!(!t.is_clean());
    }

    #[test]
    fn an_xsdt_listing_more_than_32_tables_gives_every_one() {
        // Real notebooks list 40-50 tables, 20-29 of them SSDTs; 32 were kept once, and SSDTs past them (and an
        // MCFG or MADT listed late) were lost.
        let mut img = Image::new();
        let dsdt_at = img.add(&dsdt());
        let mut addrs = vec![img.add(&fadt_v3(dsdt_at as u32, dsdt_at))];
        for i in 0..60u8 {
            addrs.push(img.add(&sdt(b"SSDT", 2, &[0x10, 0x05, b'S', b'S', b'D', b'0' + i % 10])));
        }
        addrs.push(img.add(&qemu_madt().table()));
        addrs.push(img.add(&mcfg(&[QEMU_MCFG])));
        let xsdt_at = img.add(&xsdt(&addrs));
        img.put(RSDP_AT, &rsdp_v2(0, xsdt_at));
        let t = img.parse();
        assert!(t.is_clean(), "{:?}", t.problems);
        assert_eq!(t.root_kind(), Some(RootTableKind::Xsdt));
        assert_eq!(t.tables.len(), 63);
        let ssdts: StdVec<u64> = t.tables.iter().filter(|t| t.signature == Signature(*b"SSDT")).map(|t| t.address).collect();
        assert_eq!(ssdts, addrs[1..61], "every SSDT, in XSDT order");
        assert!(t.madt.is_some() && t.mcfg.len() == 1, "the MADT and MCFG listed after them are parsed");
        // Where the heap runs out, the tables left out are a capacity problem, not a silent loss.
        let t = with_heap_limit(32, || img.parse());
        assert_eq!(problems(&t), [AcpiProblem::NoHeap { kind: EntryKind::Tables, kept: 32 }]);
        assert!(t.problems[0].is_capacity());
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
            for p in &t.problems {
                let _ = p.to_string();
            }
            let _ = find_rsdp_in(&img.mem(), &[BIOS_RSDP_AREA]);
        }
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

    // ---- Real tables ---------------------------------------------------------------------------------------------

    /// Each machine of `../shared/acpi-corpus` (real firmware's tables, split by `acpixtract`) as its firmware
    /// would hand it over: every table of `xsdt-order.txt` listed in an XSDT (the DSDT and FACS through the
    /// FADT instead), the FADT pointing at the DSDT, an ACPI 2.0 RSDP. Returns the memory, the RSDP's
    /// address and the listed tables' file names.
    fn corpus_machine(dir: &std::path::Path) -> (StdVec<u8>, u64, StdVec<String>) {
        const AT: u64 = 0x10_0000;
        let order = std::fs::read_to_string(dir.join("xsdt-order.txt")).unwrap();
        let names: StdVec<String> = order.lines().map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
        let mut mem = StdVec::new();
        let place = |mem: &mut StdVec<u8>, t: &[u8]| {
            let addr = AT + mem.len() as u64;
            mem.extend_from_slice(t);
            mem.resize(mem.len().next_multiple_of(16), 0);
            addr
        };
        let dsdt_at = place(&mut mem, &std::fs::read(dir.join("dsdt.dat")).unwrap());
        let mut listed = StdVec::new();
        let mut addrs = StdVec::new();
        for n in names.iter().filter(|n| !n.starts_with("dsdt") && !n.starts_with("facs")) {
            let mut t = std::fs::read(dir.join(n)).unwrap();
            if t.starts_with(b"FACP") {
                t[fadt::FADT_DSDT_OFFSET..][..4].copy_from_slice(&(dsdt_at as u32).to_le_bytes());
                if t.len() >= fadt::FADT_X_DSDT_OFFSET + 8 {
                    t[fadt::FADT_X_DSDT_OFFSET..][..8].copy_from_slice(&dsdt_at.to_le_bytes());
                }
                let len = t.len();
                fix_checksum(&mut t, 9, 0..len);
            }
            addrs.push(place(&mut mem, &t));
            listed.push(n.clone());
        }
        let xsdt_at = place(&mut mem, &xsdt(&addrs));
        let rsdp_at = place(&mut mem, &rsdp_v2(0, xsdt_at));
        (mem, rsdp_at, listed)
    }

    #[test]
    fn every_table_of_every_corpus_machine_is_found_and_its_madt_whole() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/acpi-corpus");
        let mut machines: StdVec<_> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{}: {e} (the corpus is part of ../shared)", root.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("xsdt-order.txt").exists())
            .collect();
        machines.sort();
        assert!(machines.len() >= 30, "{} machines", machines.len());
        let (mut most_tables, mut most_ssdts, mut over_32, mut most_cpus) = (0, 0, 0, 0);
        for m in &machines {
            let (mem, rsdp_at, listed) = corpus_machine(m);
            let t = parse(rsdp_at, &SliceMemory::new(0x10_0000, &mem));
            let name = m.file_name().unwrap().to_string_lossy();
            assert!(!t.problems.iter().any(AcpiProblem::is_capacity) && t.problems_dropped == 0, "{name}: {:?}", t.problems);
            // An MSI MS-7641's AMI OEMB table has a bad checksum: reported, the rest found.
            let bad = t.problems.iter().filter(|p| matches!(p, AcpiProblem::BadSdtChecksum { .. })).count();
            assert_eq!(t.tables.len() + bad, listed.len(), "{name}: every listed table is found or reported");
            let ssdts = t.tables.iter().filter(|t| t.signature == Signature(*b"SSDT")).count();
            assert_eq!(ssdts, listed.iter().filter(|n| n.starts_with("ssdt")).count(), "{name}: every SSDT");
            assert!(t.dsdt.is_some(), "{name}: the DSDT through the FADT");
            let oracle: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(m.join("oracle.json")).unwrap()).unwrap();
            let apic = &oracle["static"]["apic"];
            if let Some(want) = apic["lapic"].as_u64() {
                let madt = t.madt.as_ref().unwrap_or_else(|| panic!("{name}: no MADT"));
                let n = |k: &str| apic[k].as_u64().unwrap() as usize;
                assert_eq!(madt.local_apics.len(), want as usize + n("x2apic"), "{name}: local APICs and x2APICs");
                assert_eq!(madt.local_apics.iter().filter(|a| a.enabled && !a.x2apic).count(), n("lapic_enabled"), "{name}");
                assert_eq!(madt.io_apics.len(), apic["ioapic"].as_array().unwrap().len(), "{name}: I/O APICs");
                assert_eq!(madt.overrides.len(), apic["iso"].as_array().unwrap().len(), "{name}: overrides");
                assert_eq!(madt.nmi_sources.len(), n("nmi_src"), "{name}: NMI sources");
                // Dell's Inspiron 3558 has four local APIC NMI entries with garbage LINT numbers and flags: each
                // is a reported problem, none is lost silently.
                let rejected = t.problems.iter().filter(|p| matches!(p, AcpiProblem::BadMadtEntry { entry_type: 4 | 0xA, .. })).count();
                assert_eq!(madt.local_apic_nmis.len() + rejected, n("lapic_nmi"), "{name}: local APIC NMIs");
                most_cpus = most_cpus.max(madt.local_apics.len());
            }
            most_tables = most_tables.max(t.tables.len());
            most_ssdts = most_ssdts.max(ssdts);
            over_32 += usize::from(t.tables.len() > 32);
        }
        eprintln!("most tables {most_tables}, most SSDTs {most_ssdts}, {over_32} machines over 32 tables, most local APIC entries {most_cpus}");
        assert!(over_32 >= 6, "{over_32} machines list more than 32 tables (32 were kept once)");
        assert!(most_tables >= 49 && most_ssdts >= 29, "{most_tables} tables, {most_ssdts} SSDTs");
    }

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
    const Q35_TABLES: &[u8] = include_bytes!("qemu-7.2-q35-tables.dat");
    const Q35_RSDP: (u64, [u8; 20]) = (
        0xF59E0,
        [
            0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x8c, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0x97, 0x22,
            0xfe, 0x0f,
        ],
    );
    const PC_TABLES: &[u8] = include_bytes!("qemu-7.2-pc-tables.dat");
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
}
