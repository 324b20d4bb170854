//! Host bridge discovery: every PNP0A03/PNP0A08 device of a DSDT or SSDT with its _SEG, _BBN, _UID, _CRS bus
//! range, _CBA and _PRT kind, then the root buses to enumerate and an ECAM window from a _CBA checked against
//! fixed claims. Input: a definition block (seeds: the real q35 and pc DSDTs, and the DSDTs of q35 with
//! pxb-pcie expanders, pc with pxb expanders and microvm with pcie=on, captured from QEMU by make-seeds.py).
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::platform::ecam::{self, Claim, EcamSource, EcamWindow, Owner};
use msifw::platform::hostbridge;

fuzz_target!(|data: &[u8]| {
    let mut bridges = hostbridge::HostBridges::default();
    bridges.add_table(data, 0);
    // The same block again as a second table: names and offsets must not mix up or overflow.
    bridges.add_table(data, 1);
    for b in bridges.bridges.iter() {
        let _ = (b.buses(), b.segment());
    }
    let (roots, problems) = hostbridge::root_buses(&bridges);
    for w in roots.windows(2) {
        assert!(w[0].first <= w[0].last && w[0].last < w[1].first, "root bus ranges overlap: {roots:?}");
    }
    for p in problems.iter() {
        let _ = p.misses_functions();
    }
    let claims = [Claim { start: 0, end: 0x1000_0000, owner: Owner::Memory(1) }, Claim { start: 0xFEC0_0000, end: 0xFEC0_1000, owner: Owner::IoApic(0) }];
    for r in roots.iter() {
        if let Some(base) = r.cba {
            let w = EcamWindow { base, bus_start: r.first, bus_end: r.last, source: EcamSource::Cba(r.bridge) };
            let _ = ecam::check_window(&w, &claims);
        }
    }
});
