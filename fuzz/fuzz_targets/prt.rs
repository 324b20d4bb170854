//! The DSDT's APIC-mode routing package (PRTA) and the GSI link devices' _CRS. Input: a DSDT (seeds:
//! the real q35 and pc DSDTs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::platform::prt;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = prt::resolve(data) {
        for slot in 0..32 {
            for pin in 0..4 {
                let _ = r.gsi(slot, pin);
            }
        }
    }
    let _ = prt::parse_prta(data);
    let _ = prt::parse_link_gsi(data, *b"GSIA");
});
