//! Leaving the firmware: QEMU's isa-debug-exit device (iobase 0xf4), else halt.

use super::{cpu, uart};
use x86_64::instructions::port::Port;

/// What the firmware tells the host (docs/protocol.md). QEMU exits with `(code << 1) | 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Every scenario passed.
    Passed = 0,
    /// At least one scenario failed.
    Failed = 1,
    /// Panic or CPU exception.
    Crashed = 2,
}

/// Drains both UARTs, writes the exit port and, when no debug-exit device is present (a real machine),
/// halts.
pub fn exit(code: ExitCode) -> ! {
    cpu::disable_interrupts();
    uart::COM2.drain();
    uart::COM1.drain();
    // SAFETY: port 0xf4 is isa-debug-exit under QEMU; on a machine without it the write goes nowhere
    // (0xf4 is unassigned on PC platforms), and either way no memory is touched.
    unsafe { Port::<u32>::new(0xf4).write(code as u32) };
    cpu::halt_forever()
}
