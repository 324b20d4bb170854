//! A byte image standing in for physical memory, and builders for the tables the tests put in it.

#![allow(dead_code)]

use super::*;
use super::sdt::{checksum, SDT_HEADER_LEN};
use super::fadt::{FADT_DSDT_OFFSET, FADT_X_DSDT_OFFSET};
use core::ops::Range;
pub(super) use std::{format, string::String, string::ToString, vec, vec::Vec as StdVec};

// ---- A byte image standing in for physical memory ----------------------------------------------------

/// The image covers 0xE0000..0x110000: the BIOS area plus 64 KiB above 1 MiB for tables.
pub(super) const BASE: u64 = 0xE0000;
pub(super) const SIZE: usize = 0x30000;
pub(super) const END: u64 = BASE + SIZE as u64;
/// Where QEMU's SeaBIOS puts the RSDP on q35.
pub(super) const RSDP_AT: u64 = 0xF59E0;
pub(super) const TABLES_AT: u64 = 0x100000;

pub(super) struct Image {
    pub(super) bytes: StdVec<u8>,
    pub(super) next: u64,
}

impl Image {
    pub(super) fn new() -> Self {
        Image { bytes: vec![0; SIZE], next: TABLES_AT }
    }
    pub(super) fn put(&mut self, addr: u64, data: &[u8]) {
        let at = (addr - BASE) as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }
    /// Places `data` at the next free 16-byte aligned address and returns that address.
    pub(super) fn add(&mut self, data: &[u8]) -> u64 {
        let addr = self.next;
        self.put(addr, data);
        self.next = (addr + data.len() as u64 + 15) & !15;
        addr
    }
    pub(super) fn mem(&self) -> SliceMemory<'_> {
        SliceMemory::new(BASE, &self.bytes)
    }
    pub(super) fn parse(&self) -> PlatformTables {
        parse(RSDP_AT, &self.mem())
    }
}

// ---- Table builders ---------------------------------------------------------------------------------------

/// Sets `t[at]` so that `t[range]` sums to 0.
pub(super) fn fix_checksum(t: &mut [u8], at: usize, range: Range<usize>) {
    t[at] = 0;
    t[at] = 0u8.wrapping_sub(checksum(&t[range]));
}

pub(super) fn sdt(sig: &[u8; 4], revision: u8, body: &[u8]) -> StdVec<u8> {
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
pub(super) fn with_length(mut t: StdVec<u8>, length: u32) -> StdVec<u8> {
    t[4..8].copy_from_slice(&length.to_le_bytes());
    let len = t.len().min(length as usize).max(10);
    fix_checksum(&mut t, 9, 0..len);
    t
}

pub(super) fn rsdp_v0(rsdt: u32) -> StdVec<u8> {
    let mut r = StdVec::new();
    r.extend_from_slice(b"RSD PTR \0BOCHS \0");
    r.extend_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut r, 8, 0..20);
    r
}

pub(super) fn rsdp_v2(rsdt: u32, xsdt: u64) -> StdVec<u8> {
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

pub(super) fn rsdt(entries: &[u64]) -> StdVec<u8> {
    let body: StdVec<u8> = entries.iter().flat_map(|&a| (a as u32).to_le_bytes()).collect();
    sdt(b"RSDT", 1, &body)
}

pub(super) fn xsdt(entries: &[u64]) -> StdVec<u8> {
    let body: StdVec<u8> = entries.iter().flat_map(|&a| a.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

#[derive(Clone, Default)]
pub(super) struct MadtBody(pub(super) StdVec<u8>);

impl MadtBody {
    pub(super) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    pub(super) fn lapic(self, uid: u8, id: u8, flags: u32) -> Self {
        let f = flags.to_le_bytes();
        self.raw(&[0, 8, uid, id, f[0], f[1], f[2], f[3]])
    }
    pub(super) fn ioapic(self, id: u8, address: u32, gsi_base: u32) -> Self {
        let mut e = vec![1, 12, id, 0];
        e.extend_from_slice(&address.to_le_bytes());
        e.extend_from_slice(&gsi_base.to_le_bytes());
        self.raw(&e)
    }
    pub(super) fn iso(self, bus: u8, irq: u8, gsi: u32, flags: u16) -> Self {
        let mut e = vec![2, 10, bus, irq];
        e.extend_from_slice(&gsi.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        self.raw(&e)
    }
    pub(super) fn nmi_source(self, flags: u16, gsi: u32) -> Self {
        let mut e = vec![3, 8];
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&gsi.to_le_bytes());
        self.raw(&e)
    }
    pub(super) fn lapic_nmi(self, uid: u8, flags: u16, lint: u8) -> Self {
        let f = flags.to_le_bytes();
        self.raw(&[4, 6, uid, f[0], f[1], lint])
    }
    pub(super) fn lapic_override(self, address: u64) -> Self {
        let mut e = vec![5, 12, 0, 0];
        e.extend_from_slice(&address.to_le_bytes());
        self.raw(&e)
    }
    pub(super) fn x2apic(self, x2apic_id: u32, flags: u32, uid: u32) -> Self {
        let mut e = vec![9, 16, 0, 0];
        for v in [x2apic_id, flags, uid] {
            e.extend_from_slice(&v.to_le_bytes());
        }
        self.raw(&e)
    }
    pub(super) fn x2apic_nmi(self, flags: u16, uid: u32, lint: u8) -> Self {
        let mut e = vec![0xA, 12];
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        e.extend_from_slice(&[lint, 0, 0, 0]);
        self.raw(&e)
    }
    /// The MADT: local APIC at 0xFEE00000, PCAT_COMPAT set.
    pub(super) fn table(&self) -> StdVec<u8> {
        let mut body = StdVec::new();
        body.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&self.0);
        sdt(b"APIC", 1, &body)
    }
}

/// The MADT QEMU 7.2 builds for two CPUs (hw/i386/acpi-common.c).
pub(super) fn qemu_madt() -> MadtBody {
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

pub(super) fn mcfg(entries: &[(u64, u16, u8, u8)]) -> StdVec<u8> {
    let mut body = vec![0u8; 8];
    for &(base, segment, start, end) in entries {
        body.extend_from_slice(&base.to_le_bytes());
        body.extend_from_slice(&segment.to_le_bytes());
        body.extend_from_slice(&[start, end, 0, 0, 0, 0]);
    }
    sdt(b"MCFG", 1, &body)
}

/// An ACPI 1.0 FADT (116 bytes) pointing at `dsdt`.
pub(super) fn fadt(dsdt: u32) -> StdVec<u8> {
    let mut body = vec![0u8; 116 - SDT_HEADER_LEN];
    body[FADT_DSDT_OFFSET - SDT_HEADER_LEN..][..4].copy_from_slice(&dsdt.to_le_bytes());
    sdt(b"FACP", 1, &body)
}

/// An ACPI 2.0+ FADT (244 bytes, as QEMU q35's) with both DSDT and X_DSDT.
pub(super) fn fadt_v3(dsdt: u32, x_dsdt: u64) -> StdVec<u8> {
    let mut body = vec![0u8; 244 - SDT_HEADER_LEN];
    body[FADT_DSDT_OFFSET - SDT_HEADER_LEN..][..4].copy_from_slice(&dsdt.to_le_bytes());
    body[FADT_X_DSDT_OFFSET - SDT_HEADER_LEN..][..8].copy_from_slice(&x_dsdt.to_le_bytes());
    sdt(b"FACP", 3, &body)
}

pub(super) fn dsdt() -> StdVec<u8> {
    sdt(b"DSDT", 1, &[0x08, b'P', b'I', b'C', b'F', 0x00]) // Name(PICF, Zero)
}

pub(super) const QEMU_MCFG: (u64, u16, u8, u8) = (0xB000_0000, 0, 0, 255);

/// Places a DSDT and `tables` in an image, lists them (FADT first) in an RSDT (and an XSDT if `v2`) and
/// puts the RSDP at `RSDP_AT`. Returns the image and the tables' addresses (FADT first).
pub(super) fn build(tables: &[StdVec<u8>], v2: bool) -> (Image, StdVec<u64>) {
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

pub(super) fn qemu_like(v2: bool) -> (Image, StdVec<u64>) {
    build(&[qemu_madt().table(), mcfg(&[QEMU_MCFG])], v2)
}

pub(super) fn problems(t: &PlatformTables) -> StdVec<AcpiProblem> {
    t.problems.to_vec()
}


pub(super) fn rsdp_bytes(img: &Image) -> StdVec<u8> {
    img.mem().bytes(RSDP_AT, 36).unwrap().to_vec()
}

/// xorshift64*: deterministic, so a failure reproduces.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Re-checksums every table the image's root lists (and the RSDP), so mutations reach the table walkers.
pub(super) fn refresh_checksums(img: &mut Image, tables: &[u64]) {
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

// ---- A heap that runs out ------------------------------------------------------------------------------

std::thread_local! {
    /// While set, every list [`super::parse`] builds finds no heap room past this many entries.
    static HEAP_LIMIT: core::cell::Cell<Option<usize>> = const { core::cell::Cell::new(None) };
}

/// Runs `f` as if the heap could hold only `entries` entries per list (the host's heap does not run out).
pub(super) fn with_heap_limit<R>(entries: usize, f: impl FnOnce() -> R) -> R {
    HEAP_LIMIT.with(|l| l.set(Some(entries)));
    let r = f();
    HEAP_LIMIT.with(|l| l.set(None));
    r
}

/// Whether a list of `len` entries is at the simulated heap's end.
pub(super) fn heap_limit_reached(len: usize) -> bool {
    HEAP_LIMIT.with(|l| l.get().is_some_and(|n| len >= n))
}
