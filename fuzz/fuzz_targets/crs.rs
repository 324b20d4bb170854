//! The host bridge's windows: PCI0._CRS found in a DSDT and its resource template decoded, then turned into
//! the allocator's root windows. Input: a DSDT (seeds: the real q35 and pc DSDTs), also decoded as a bare
//! resource template.
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::bus::pci::assign::{Space, Windows};
use msifw::platform::crs;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = crs::host_bridge_windows(data) {
        let mut w = Windows::from_host(&h);
        for r in h.mem.iter() {
            w.exclude(Space::Mem, *r);
        }
    }
    let _ = crs::parse_template(data);
});
