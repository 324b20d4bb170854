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
    use msifw::drivers::DRIVERS;
    // What `--list` prints of the firmware: its driver table (scenarios come from msifw-proto).
    let drivers: Vec<(&str, u16, usize)> = DRIVERS.iter().map(|k| (k.name(), k.wants().0, k.wants().1)).collect();
    // What `tables DIR` runs: the firmware's parsing and routing over a machine's table files.
    let catalogue = msifw_host::Catalogue { drivers: &drivers, preflight: Some(msifw::platform::preflight::preflight) };
    msifw_host::cli_main(&catalogue)
}
