//! One PCI function's configuration space: header, BAR sizing, capability walks (standard and extended),
//! MSI and MSI-X capability parsing and table/PBA placement. Input: 4 KiB of configuration space, then six
//! 32-bit BAR size masks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::bus::pci::caps::id;
use msifw::bus::pci::config::sim::SimConfig;
use msifw::bus::pci::enumerate::{self, Enumeration};
use msifw::bus::pci::Bdf;
use msifw::modes::{msi, msix};

fuzz_target!(|data: &[u8]| {
    let sim = SimConfig { extended: data.len() >= 4096, ..Default::default() };
    let bdf = sim.add(Bdf::new(0, 2, 0), 0, 0, 0);
    let n = data.len().min(if sim.extended { 4096 } else { 256 });
    sim.poke(bdf, 0, &data[..n]);
    let masks = data.get(4096..4120).unwrap_or(&[]);
    for i in 0..6 {
        let m = masks.get(i * 4..i * 4 + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let cur = u32::from_le_bytes(data.get(0x10 + i * 4..0x14 + i * 4).map_or([0; 4], |b| [b[0], b[1], b[2], b[3]]));
        sim.bar(bdf, i, m, cur);
    }
    let f = enumerate::read_function(&sim, bdf);
    if let Some(at) = f.caps.find(id::MSIX) {
        let cap = msix::read_capability(&sim, bdf, at);
        let _ = msix::locate(&cap, &f);
    }
    if let Some(at) = f.caps.find(id::MSI) {
        let _ = msi::read_capability(&sim, bdf, at);
    }
    // The whole bus, as enumeration would walk it (bridges included).
    let mut e = Enumeration::new();
    enumerate::enumerate(&sim, 0, 255, &mut e);
});
