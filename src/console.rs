//! COM1 text: early boot lines, report records, exceptions and panics. Interrupt-safe: each write runs
//! with interrupts disabled under a spin lock, so a line is never torn by an interrupt handler.

use crate::arch::{cpu, exit, idt::InterruptFrame, uart};
use core::fmt::{self, Write};

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

struct Com1;

impl Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                uart::COM1.write_byte(b'\r');
            }
            uart::COM1.write_byte(b);
        }
        Ok(())
    }
}

/// Writes formatted text to COM1.
pub fn write_fmt(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        let _guard = LOCK.lock();
        let _ = Com1.write_fmt(args);
    });
}

/// Writes to COM1 without taking the lock: for the panic and exception paths, which may interrupt a
/// holder of the lock.
pub fn write_fmt_unlocked(args: fmt::Arguments) {
    let _ = Com1.write_fmt(args);
}

/// `println!` to COM1.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Reports an interrupt that arrived before the firmware could handle one, and exits with the crash code.
pub fn fatal_interrupt(vector: u8) -> ! {
    write_fmt_unlocked(format_args!("\nmsifw: interrupt on vector {vector:#x} before the interrupt dispatcher was installed\n"));
    exit::exit(exit::ExitCode::Crashed)
}

/// Reports a CPU exception on COM1 and exits with [`exit::ExitCode::Crashed`]. Never returns.
pub fn fatal_exception(frame: &InterruptFrame) -> ! {
    write_fmt_unlocked(format_args!(
        "\nmsifw: CPU exception {} ({}) error_code={:#x} rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} cr2={:#x}\n\
         rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}\n",
        frame.vector,
        crate::arch::idt::exception_name(frame.vector),
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        cpu::cr2(),
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
    ));
    exit::exit(exit::ExitCode::Crashed)
}
