//! Instrumented interrupt entries for the dispatch benchmark (`dispatch=N`).
//!
//! One entry stores the TSC and jumps on through a pointer, to one of two paths:
//! - *handler path*: the vector's normal stub, so everything the firmware does for an interrupt
//!   (register save, dispatcher, the vector's handler, EOI, `iretq`) follows;
//! - *minimal stub*: one optional 32-bit MMIO write that deasserts a level-triggered source (nothing
//!   for edge sources), EOI, `iretq`: the least any handler must do.
//!
//! Both run the very same instrumentation, so the difference of their costs is the firmware's own.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// TSC at the last instrumented entry (0: none since [`arm`]).
static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
/// Where the entry goes on: the vector's normal stub, or the minimal body.
static TARGET: AtomicU64 = AtomicU64::new(0);
/// xAPIC EOI register address, or 0 for x2APIC (EOI through MSR 0x80B).
static EOI_ADDR: AtomicU64 = AtomicU64::new(0);
/// Address of the minimal stub's deasserting write, or 0 for none.
static QUIET_ADDR: AtomicU64 = AtomicU64::new(0);
/// The value written there.
static QUIET_VALUE: AtomicU32 = AtomicU32::new(0);
/// The path in use: 0 handler, 1 minimal.
static PATH: AtomicU32 = AtomicU32::new(0);

core::arch::global_asm!(
    r#"
    .pushsection .text.irqbench, "ax"
    .balign 16
    .global msifw_bench_entry
msifw_bench_entry:
    pushq %rax
    pushq %rdx
    rdtsc
    shlq $32, %rdx
    orq %rdx, %rax
    movq %rax, {entry}(%rip)
    popq %rdx
    popq %rax
    jmpq *{target}(%rip)

    .balign 16
    .global msifw_bench_minimal_body
msifw_bench_minimal_body:
    pushq %rax
    pushq %rdx
    movq {quiet_addr}(%rip), %rax
    testq %rax, %rax
    jz 1f
    movl {quiet_value}(%rip), %edx
    movl %edx, (%rax)
1:
    movq {eoi}(%rip), %rax
    testq %rax, %rax
    jz 2f
    movl $0, (%rax)
    jmp 3f
2:
    pushq %rcx
    movl $0x80b, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    popq %rcx
3:
    popq %rdx
    popq %rax
    iretq

    // take_pending: called with interrupts off and the measured interrupt pending (or about to be);
    // rdi = TSC deadline. Enables interrupts; the pending one is taken after the one-instruction STI
    // shadow, its path returns into the loop below, which reads the TSC the moment it sees the entry's
    // stamp. Returns that TSC (0: none by the deadline), interrupts off again. Every interrupt returns
    // into these same few instructions, whatever the code that triggered it.
    .balign 64
    .global msifw_bench_take_pending
msifw_bench_take_pending:
    sti
    nop
1:
    cmpq $0, {entry}(%rip)
    jne 2f
    rdtsc
    shlq $32, %rdx
    orq %rdx, %rax
    cmpq %rdi, %rax
    jb 1b
    cli
    xorl %eax, %eax
    ret
2:
    rdtsc
    cli
    shlq $32, %rdx
    orq %rdx, %rax
    ret
    .popsection
"#,
    entry = sym ENTRY_TSC,
    target = sym TARGET,
    quiet_addr = sym QUIET_ADDR,
    quiet_value = sym QUIET_VALUE,
    eoi = sym EOI_ADDR,
    options(att_syntax)
);

extern "C" {
    static msifw_bench_entry: u8;
    static msifw_bench_minimal_body: u8;
    fn msifw_bench_take_pending(deadline: u64) -> u64;
}

/// With interrupts off and the measured interrupt raised (pending in the local APIC, or on its way):
/// enables interrupts until the instrumented entry has run and its path returned, then disables them
/// again. Returns the TSC read right after the return, or None when no entry came by TSC `deadline`.
/// Each interrupt so returns into the same few instructions, so the path's cost does not depend on the
/// code that triggered it (where a device write's interrupt would otherwise land).
pub fn take_pending(deadline: u64) -> Option<u64> {
    debug_assert!(!super::cpu::interrupts_enabled());
    // SAFETY: the routine follows the System V ABI (argument in rdi, result in rax; clobbers rdx, flags)
    // and leaves interrupts off as it found them; the interrupt it lets in runs on this stack through
    // an entry that saves what it touches.
    let t = unsafe { msifw_bench_take_pending(deadline) };
    (t != 0).then_some(t)
}

/// Which entry a vector is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Path {
    /// The firmware's whole interrupt path, timed from its first instruction.
    Handler = 0,
    /// Deassert (if asked), EOI, return.
    Minimal = 1,
}

/// A vector under measurement; dropping it gives the vector its normal stub back.
#[derive(Debug)]
pub struct Instrumented {
    vector: u8,
}

/// Gives `vector` (a device vector or the self-IPI vector) the instrumented entry `path`; None before the
/// local APIC is set up. For the minimal stub of a level-triggered source, `quiet` is the MMIO address
/// and value of the one write that deasserts it; it must be a register of a device the caller owns whose
/// write has no other effect than acknowledging its interrupt.
pub fn instrument(vector: u8, path: Path, quiet: Option<(u64, u32)>) -> Option<Instrumented> {
    // The minimal stub sends EOI through the xAPIC register or the x2APIC MSR: it needs to know which.
    super::lapic::current_mode()?;
    PATH.store(path as u32, Ordering::SeqCst);
    arm(vector);
    EOI_ADDR.store(super::lapic::eoi_address().unwrap_or(0), Ordering::SeqCst);
    let (addr, value) = quiet.unwrap_or((0, 0));
    QUIET_ADDR.store(addr, Ordering::SeqCst);
    QUIET_VALUE.store(value, Ordering::SeqCst);
    // SAFETY: the entry saves and restores what it touches (rax, rdx) and goes on to a complete path: the
    // vector's normal stub, or the minimal body, which saves rax, rdx and rcx, sends EOI and returns with
    // iretq. `set_gate` refuses exception vectors.
    unsafe { super::idt::set_gate(vector, core::ptr::addr_of!(msifw_bench_entry) as u64) };
    Some(Instrumented { vector })
}

impl Drop for Instrumented {
    fn drop(&mut self) {
        super::idt::restore_gate(self.vector);
        QUIET_ADDR.store(0, Ordering::SeqCst);
    }
}

/// Gets ready for the next interrupt, expected on `vector`: forgets the last entry time and, on the
/// handler path, points the entry at `vector`'s normal stub (one interrupt is measured at a time, so one
/// target serves every instrumented vector).
pub fn arm(vector: u8) {
    let target = match PATH.load(Ordering::Relaxed) {
        0 => super::idt::stub_address(vector),
        _ => core::ptr::addr_of!(msifw_bench_minimal_body) as u64,
    };
    TARGET.store(target, Ordering::SeqCst);
    ENTRY_TSC.store(0, Ordering::SeqCst);
}

/// TSC at the last instrumented entry since [`arm`], if one happened.
pub fn entry() -> Option<u64> {
    match ENTRY_TSC.load(Ordering::SeqCst) {
        0 => None,
        t => Some(t),
    }
}
