//! The MP table: the input is physical memory from 0xF0000 (the BIOS area the floating pointer is searched
//! in), so a table anywhere in it, or the floating pointer alone, is reached. Every table that parses has
//! every accessor run. Seeds: SeaBIOS-shaped tables (`make-seeds.py`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::physmem::SliceMemory;
use msifw::platform::mptable;

fuzz_target!(|data: &[u8]| {
    let mem = SliceMemory::new(0xF_0000, data);
    if let Ok(Some(mp)) = mptable::discover(&mem) {
        for _ in mp.entries() {}
        for _ in mp.io_apics() {}
        for bus in 0..=255u8 {
            let _ = mp.covers_pci_bus(bus);
            let _ = mp.bus_kind(bus);
        }
        for irq in 0..128u8 {
            let _ = mp.pci_interrupt(0, irq >> 2, irq & 3);
        }
        for w in mp.warnings.iter() {
            let _ = format!("{w}");
        }
    }
});
