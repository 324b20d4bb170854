//! The `msifw` binary. Built for `x86_64-unknown-none` it is the firmware image (PVH and Multiboot2
//! entries in boot/pvh.s); built for the host it is the launcher behind `cargo run`, which builds that image and
//! boots it in QEMU (host/).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("../boot/pvh.s"), options(att_syntax));

/// Rust entry, called by boot/pvh.s in long mode.
#[cfg(target_os = "none")]
#[no_mangle]
extern "C" fn msifw_entry(info: u32, flags: u32) -> ! {
    msifw::firmware::start(info, flags)
}

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    use msifw::drivers::DriverKind;
    // What `--list` prints. The lead re-points these at the DRIVERS table and msifw-proto's names after the merge.
    const DRIVERS: [DriverKind; 5] = [
        DriverKind::E1000e,
        DriverKind::Nvme,
        DriverKind::Edu,
        DriverKind::VirtioNet,
        DriverKind::PciePort,
    ];
    let drivers = DRIVERS.map(DriverKind::name);
    let catalogue = msifw_host::Catalogue {
        drivers: &drivers,
        scenarios: msifw::cmdline::SCENARIOS,
        own_run: msifw::cmdline::OWN_RUN,
    };
    msifw_host::cli_main(&catalogue)
}
