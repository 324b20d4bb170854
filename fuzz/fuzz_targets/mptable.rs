//! The MP table: the input is physical memory from 0xF0000 (the BIOS area the floating pointer is searched
//! in), so a table anywhere in it, or the floating pointer alone, is reached. Before parsing, the harness
//! sets the checksum bytes of every "_MP_" on a 16-byte boundary and of the "PCMP" table (and extended
//! table) it points to inside the input, so mutations reach the entry parsers instead of stopping at a
//! checksum (bad checksums are host-tested in `platform::mptable`). Every table that parses has every
//! accessor run. Seeds: SeaBIOS-shaped tables (`make-seeds.py`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::physmem::SliceMemory;
use msifw::platform::mptable;

const BASE: u64 = 0xF_0000;

/// Makes `bytes[range]` sum to zero by setting `bytes[at]` (which lies inside `range`).
fn fix(bytes: &mut [u8], range: core::ops::Range<usize>, at: usize) {
    if range.end > bytes.len() || !range.contains(&at) {
        return;
    }
    bytes[at] = 0;
    let sum = bytes[range].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    bytes[at] = sum.wrapping_neg();
}

fn fix_checksums(bytes: &mut [u8]) {
    for fp in (0..bytes.len().saturating_sub(15)).step_by(16) {
        if &bytes[fp..fp + 4] != b"_MP_" {
            continue;
        }
        fix(bytes, fp..fp + 16, fp + 10);
        let ptr = u64::from(u32::from_le_bytes([bytes[fp + 4], bytes[fp + 5], bytes[fp + 6], bytes[fp + 7]]));
        let Some(t) = ptr.checked_sub(BASE).and_then(|t| usize::try_from(t).ok()) else {
            continue;
        };
        if t.checked_add(44).is_none_or(|end| end > bytes.len()) || &bytes[t..t + 4] != b"PCMP" {
            continue;
        }
        let length = usize::from(u16::from_le_bytes([bytes[t + 4], bytes[t + 5]]));
        let ext_length = usize::from(u16::from_le_bytes([bytes[t + 40], bytes[t + 41]]));
        // The extended checksum byte is part of the base table: set it first.
        if t + length + ext_length <= bytes.len() {
            let ext = bytes[t + length..t + length + ext_length].iter().fold(0u8, |s, b| s.wrapping_add(*b));
            bytes[t + 42] = ext.wrapping_neg();
        }
        fix(bytes, t..t + length, t + 7);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut image = data.to_vec();
    fix_checksums(&mut image);
    let mem = SliceMemory::new(BASE, &image);
    if let Ok(Some(mp)) = mptable::discover(&mem) {
        for _ in mp.entries() {}
        for _ in mp.io_apics() {}
        for bus in 0..=255u8 {
            let _ = mp.bus_kind(bus);
            if bus == 0 || mp.covers_pci_bus(bus) {
                for irq in 0..128u8 {
                    let _ = mp.pci_interrupt(bus, irq >> 2, irq & 3);
                }
            }
        }
        for w in mp.warnings.iter() {
            let _ = format!("{w}");
        }
    }
});
