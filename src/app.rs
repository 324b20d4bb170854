//! The firmware's run: discover, enumerate, set up interrupts, drive the devices, report.

use crate::arch::exit::ExitCode;
use crate::boot::{BootInfo, PhysRead};

/// Runs everything and returns the exit code for the host.
pub fn run(boot: &BootInfo, _mem: &impl PhysRead) -> ExitCode {
    crate::println!("msifw: cmdline '{}', rsdp {:?}, {} memory regions", boot.cmdline, boot.rsdp, boot.memmap.len());
    crate::info!("msifw up");
    ExitCode::Passed
}
