//! The firmware command line (QEMU -append).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data) {
        let (opts, _errors) = msifw::cmdline::parse(s);
        let _ = opts.override_for(msifw::bus::pci::Bdf::new(0, 3, 0));
    }
});
