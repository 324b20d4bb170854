//! Interrupt descriptor table for all 256 vectors (SDM Vol. 3A 7.10, 7.14), shared by every CPU.
//!
//! Hand-written instead of `x86_64::structures::idt` because that table cannot take raw stub addresses for
//! the reserved vectors (15, 22-27, 31), which we also want trapped. Each vector has a 16-byte assembly
//! stub that pushes a zero error code where the CPU pushes none, pushes the vector number, and jumps to a
//! common path (the interrupt stubs on one page with the fast path, see the assembly). Exceptions (0-31) take the full path: every general-purpose register saved into an
//! [`InterruptFrame`] for the fatal report, then [`msifw_interrupt`]. Interrupts (32-255) take the lean
//! path: a vector marked fast on this CPU ([`set_fast_on`]: an allocated device vector without a handler,
//! the self-IPI vector) is counted and ended with EOI right in the entry, with three registers saved; any
//! other saves only the registers the System V ABI lets a call clobber (rax, rcx, rdx, rsi, rdi, r8-r11),
//! since the Rust dispatcher preserves the rest; no SSE state exists (soft-float target). A vector may also
//! have a one-shot acknowledge write armed on a CPU ([`arm_ack_once_on`]: an INTx function alone on its
//! line), which the entry takes with an atomic exchange and makes before counting and ending the interrupt
//! the fast way, once the function's Command/Status (read through ECAM) says it asserts INTx (Status.Interrupt
//! set, Interrupt Disable clear): a delivery it does not assert (a level delivered again after an early
//! EOI, as this host's KVM sends, or one of a function its handler holds with Interrupt Disable) goes to the
//! dispatcher uncounted, whose INTx handler accounts for it. That keeps the dispatch cost close to a bare EOI stub
//! (`cargo run --release -- bench`).
//!
//! Every per-vector flag and count the entry uses is per CPU, in the block arch::percpu keeps for each CPU
//! and the entry reaches `%gs:`-relative: CPUs taking interrupts at once share no counter, and the
//! functions without `_on` mean CPU 0 where they name one CPU and the sum over CPUs where they count.

use super::percpu;
use core::sync::atomic::{AtomicUsize, Ordering};
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

core::arch::global_asm!(
    r#"
    .pushsection .text.isr, "ax"
    // The interrupt stubs (vectors 32-255, 16 bytes each) and the entry's fast path share one 4 KiB
    // page: QEMU's TCG chains a jump to a translated block directly only within a page, so a stub on
    // another page than the fast path would take a block lookup on every interrupt, and which vectors
    // did would depend on where the linker put the table.
    .balign 4096
    .global msifw_irq_stubs
msifw_irq_stubs:
    .set vec, 32
    .rept 224
    .balign 16
    pushq $0
    pushq $vec
    jmp msifw_irq_common
    .set vec, vec + 1
    .endr

msifw_irq_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    movq 24(%rsp), %rax
    cmpb $0, %gs:{fast}(,%rax,1)
    jne 4f
    cmpq $0, {eoi_kind}(%rip)
    je 1f
    cmpq $0, %gs:{ack_once}(,%rax,8)
    je 1f
    movq %gs:{ack_status}(,%rax,8), %rcx
    movl (%rcx), %ecx
    andl $0x80400, %ecx
    cmpl $0x80000, %ecx
    jne 1f
    xorl %edx, %edx
    xchgq %rdx, %gs:{ack_once}(,%rax,8)
    testq %rdx, %rdx
    jz 1f
    movl %gs:{ack_value}(,%rax,4), %ecx
    movl %ecx, (%rdx)
4:
    movq {eoi_kind}(%rip), %rdx
    testq %rdx, %rdx
    jz 1f
    incq %gs:{counts}(,%rax,8)
    incq %gs:{fast_hits}
    cmpq $1, %rdx
    jne 2f
    movq {eoi_addr}(%rip), %rax
    movl $0, (%rax)
    jmp 3f
2:
    movl $0x80b, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
3:
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp
    iretq
1:
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq 72(%rsp), %rdi
    cld
    call msifw_irq
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp
    iretq

    // The rest of the page: the assembler refuses (".org backwards") if the code above outgrew it.
    .org msifw_irq_stubs + 4096, 0xcc

    .global msifw_isr_stubs
msifw_isr_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp msifw_isr_common
    .set vec, vec + 1
    .endr

msifw_isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call msifw_interrupt
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
    .popsection
"#,
    fast = const percpu::offsets::FAST,
    ack_once = const percpu::offsets::ACK_ONCE,
    ack_value = const percpu::offsets::ACK_VALUE,
    ack_status = const percpu::offsets::ACK_STATUS,
    counts = const percpu::offsets::COUNTS,
    fast_hits = const percpu::offsets::FAST_HITS,
    eoi_kind = sym super::lapic::EOI_KIND,
    eoi_addr = sym super::lapic::EOI_ADDR,
    options(att_syntax)
);

extern "C" {
    static msifw_isr_stubs: u8;
    static msifw_irq_stubs: u8;
}

// The entry's per-vector state lives in each CPU's block (arch::percpu), reached `%gs:`-relative:
// - `fast`: the vector's interrupts need nothing but a count and an EOI, so the entry does both itself,
//   without calling the dispatcher (set by it, through [`set_fast_on`]);
// - `counts`: interrupts delivered per vector on the CPU; the fast path and the dispatcher
//   ([`count_interrupt`]) add to it; `fast_hits`: those the fast path handled;
// - `ack_once`: the MMIO address of a device's acknowledge write that the entry makes once, for the next
//   interrupt on the vector on that CPU, before counting and ending it as on the fast path (0: none). The
//   entry takes it with an atomic exchange as it makes the write, so of the entry and [`disarm_ack_on`]
//   exactly one gets an armed write; every later interrupt goes to the dispatcher until it is armed again;
// - `ack_value`: the value of that write; `ack_status`: the ECAM address of the armed function's
//   Command/Status dword: the entry reads it and takes the interrupt as the function's (the write, the
//   count) only with Status.Interrupt (PCI 3.0 6.2.3, bit 3 of Status, bit 19 of the dword) set and
//   Command.Interrupt Disable (PCI 3.0 6.2.2, bit 10) clear: a function with INTx disabled does not drive
//   the line, whatever its Status.Interrupt says (the INTx handler holds a claimed function so, and its
//   pending status stays set until its driver acknowledges it). Any other delivery is not counted there:
//   it goes to the dispatcher.

/// Interrupts handled on the fast path since boot, on every CPU.
pub fn fast_hits() -> u64 {
    percpu::blocks().map(|b| b.fast_hits.load(Ordering::Acquire)).sum()
}

/// Interrupts handled on the fast path of CPU `cpu` since boot (0 for a CPU without a block).
pub fn fast_hits_on(cpu: usize) -> u64 {
    percpu::block(cpu).map_or(0, |b| b.fast_hits.load(Ordering::Acquire))
}

/// [`arm_ack_once_on`] for CPU 0.
pub fn arm_ack_once(vector: u8, reg: &super::mmio::MmioWindow, value: u32, status: u64) -> bool {
    arm_ack_once_on(0, vector, reg, value, status)
}

/// Has the entry of `vector` on CPU `cpu` make the 32-bit write of `value` at the start of `reg` for its
/// next interrupt there that the function asserts (Status.Interrupt set and Interrupt Disable clear in the
/// dword at `status`, the ECAM address of its Command/Status), then count and end it with no call. The caller vouches that the write only
/// acknowledges the device's interrupt (it is made in interrupt context, at any time until taken back) and
/// that `status` is the function's configuration space, mapped uncached. Refused (false) for exception
/// vectors, a CPU without a block, and a window or address too small or misaligned for the access.
pub fn arm_ack_once_on(cpu: usize, vector: u8, reg: &super::mmio::MmioWindow, value: u32, status: u64) -> bool {
    // The window is device memory by MmioWindow's contract; the entry writes 4 bytes at its base.
    let ok = vector >= 32 && reg.len() >= 4 && reg.base().is_multiple_of(4) && reg.base() != 0 && status != 0 && status.is_multiple_of(4);
    match percpu::block(cpu) {
        Some(b) if ok => {
            b.ack_value[vector as usize].store(value, Ordering::Relaxed);
            b.ack_status[vector as usize].store(status, Ordering::Relaxed);
            // Release: the entry that sees the address sees the value and status stored before it.
            b.ack_once[vector as usize].store(reg.base(), Ordering::Release);
            true
        }
        _ => false,
    }
}

/// [`disarm_ack_on`] for CPU 0.
pub fn disarm_ack(vector: u8) -> bool {
    disarm_ack_on(0, vector)
}

/// Takes back the write armed on `vector` on CPU `cpu`. Returns whether it was still armed (false: the
/// entry made it, or none was armed): the exchange here and the entry's are atomic, so exactly one of them
/// takes an armed write.
pub fn disarm_ack_on(cpu: usize, vector: u8) -> bool {
    percpu::block(cpu).is_some_and(|b| b.ack_once[vector as usize].swap(0, Ordering::AcqRel) != 0)
}

/// [`ack_armed_on`] for CPU 0.
pub fn ack_armed(vector: u8) -> bool {
    ack_armed_on(0, vector)
}

/// Whether a write is armed on `vector` on CPU `cpu`.
pub fn ack_armed_on(cpu: usize, vector: u8) -> bool {
    percpu::block(cpu).is_some_and(|b| b.ack_once[vector as usize].load(Ordering::Acquire) != 0)
}

/// [`set_fast_on`] for CPU 0.
pub fn set_fast(vector: u8, fast: bool) {
    set_fast_on(0, vector, fast);
}

/// Lets the entry of `vector` on CPU `cpu` count and end its interrupts itself (`true`), or hand them to
/// the dispatcher. Vectors 0-31 always go to the exception dispatcher.
pub fn set_fast_on(cpu: usize, vector: u8, fast: bool) {
    if let (true, Some(b)) = (vector >= 32, percpu::block(cpu)) {
        b.fast[vector as usize].store(fast, Ordering::Release);
    }
}

/// Counts an interrupt on `vector` on this CPU (the dispatcher, for the interrupts it handles). A load
/// and a store, not a locked add: only this CPU's interrupt entries write its counts, with interrupts off.
pub fn count_interrupt(vector: u8) {
    let count = &percpu::current().counts[vector as usize];
    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// Interrupts delivered on `vector` since boot, on every CPU.
pub fn interrupts(vector: u8) -> u64 {
    percpu::blocks().map(|b| b.counts[vector as usize].load(Ordering::Acquire)).sum()
}

/// Interrupts delivered on `vector` on CPU `cpu` since boot (0 for a CPU without a block).
pub fn interrupts_on(cpu: usize, vector: u8) -> u64 {
    percpu::block(cpu).map_or(0, |b| b.counts[vector as usize].load(Ordering::Acquire))
}

/// What the stub and the CPU pushed. 15 saved registers + vector + error code + the CPU's frame
/// (176 bytes, so the call into Rust happens on a 16-byte aligned stack).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InterruptFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<InterruptFrame>() == 176);

/// The function every exception (0-31) ends up in.
pub type Dispatcher = fn(&mut InterruptFrame);
/// The function every interrupt (32-255) ends up in, with its vector.
pub type IrqDispatcher = fn(u8);

static DISPATCHER: AtomicUsize = AtomicUsize::new(0);
static IRQ_DISPATCHER: AtomicUsize = AtomicUsize::new(0);

/// Installs the functions that handle exceptions and interrupts. Until they are installed, any vector is
/// fatal.
pub fn set_dispatcher(dispatcher: Dispatcher, irq: IrqDispatcher) {
    DISPATCHER.store(dispatcher as usize, Ordering::Release);
    IRQ_DISPATCHER.store(irq as usize, Ordering::Release);
}

#[no_mangle]
extern "C" fn msifw_irq(vector: u64) {
    let raw = IRQ_DISPATCHER.load(Ordering::Acquire);
    if raw == 0 {
        crate::console::fatal_interrupt(vector as u8);
    }
    // SAFETY: IRQ_DISPATCHER only ever holds 0 or an `IrqDispatcher` stored by `set_dispatcher`.
    let dispatcher: IrqDispatcher = unsafe { core::mem::transmute::<usize, IrqDispatcher>(raw) };
    dispatcher(vector as u8);
}

#[no_mangle]
extern "C" fn msifw_interrupt(frame: &mut InterruptFrame) {
    let raw = DISPATCHER.load(Ordering::Acquire);
    if raw == 0 {
        crate::console::fatal_exception(frame);
    }
    // SAFETY: DISPATCHER only ever holds 0 or a `Dispatcher` stored by `set_dispatcher`.
    let dispatcher: Dispatcher = unsafe { core::mem::transmute::<usize, Dispatcher>(raw) };
    dispatcher(frame);
}

/// One 16-byte interrupt gate (SDM Vol. 3A Figure 7-8).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(core::mem::size_of::<Gate>() == 16);

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// The IDT, shared by every CPU. Built once by [`load`] (before any CPU loads it); afterwards only
/// [`set_gate`] changes a gate (the dispatch benchmark's instrumented stubs), with one atomic store of
/// the gate's first eight bytes, so a CPU taking the vector meanwhile reads the old gate or the new one.
struct IdtCell(core::cell::UnsafeCell<Idt>);
// SAFETY: written by `load` before `lidt` (interrupts off, before any application processor runs), and
// by `set_gate` with an atomic store of the one 8-byte word that changes.
unsafe impl Sync for IdtCell {}

static IDT: IdtCell = IdtCell(core::cell::UnsafeCell::new(Idt([Gate::EMPTY; 256])));
static LOADED: AtomicUsize = AtomicUsize::new(0);

/// Kernel code selector of the boot GDT (boot/pvh.s).
const CODE_SELECTOR: u16 = 0x08;

impl Gate {
    const EMPTY: Gate = Gate { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn interrupt(addr: u64, ist: u8) -> Gate {
        Gate {
            offset_low: addr as u16,
            selector: CODE_SELECTOR,
            ist,
            type_attr: 0x8E, // present, DPL 0, 64-bit interrupt gate (IF cleared on entry)
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        }
    }
}

/// Address of the normal stub of `vector` (16 bytes each, in vector order).
pub fn stub_address(vector: u8) -> u64 {
    // Only the addresses of the two stub tables (defined by the global_asm above) are taken: exceptions
    // 0-31, then interrupts 32-255 on the fast path's page.
    if vector < 32 {
        core::ptr::addr_of!(msifw_isr_stubs) as u64 + vector as u64 * 16
    } else {
        core::ptr::addr_of!(msifw_irq_stubs) as u64 + (vector as u64 - 32) * 16
    }
}

/// Builds the IDT with a stub for every vector and loads it (the first call, on the boot processor, also
/// points its GS base at per-CPU block 0); later calls (application processors) load the same table.
pub fn load() {
    super::cpu::without_interrupts(|| {
        if LOADED.swap(1, Ordering::AcqRel) == 0 {
            // The first load is the boot processor's, at boot (or after a restart in place, which zeroes
            // LOADED): its GS base must point at per-CPU block 0 before any interrupt can reach the entry.
            // Application processors load the built table and get their GS base from `percpu::enter`.
            percpu::boot();
            // SAFETY: interrupts are off and the table is not loaded yet, so nothing else reads or writes it.
            let idt = unsafe { &mut *IDT.0.get() };
            for (vector, gate) in idt.0.iter_mut().enumerate() {
                // Exceptions (all fatal here) run on their own stack; interrupts on the interrupted one.
                let ist = if vector < 32 { super::gdt::EXCEPTION_IST } else { 0 };
                *gate = Gate::interrupt(stub_address(vector as u8), ist);
            }
        }
        let pointer = DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::new(IDT.0.get() as u64),
        };
        // SAFETY: the IDT is a static that lives forever and every gate points at a valid stub.
        unsafe { lidt(&pointer) };
    });
}

/// Points the gate of device vector `vector` (32-255) at `handler`; [`restore_gate`] undoes it.
///
/// # Safety
/// `handler` must be the address of an interrupt entry that saves and restores every register it
/// touches, ends the interrupt as the vector needs, and returns with `iretq`.
pub unsafe fn set_gate(vector: u8, handler: u64) {
    assert!(vector >= 32, "exception gates are never replaced");
    let gate = Gate::interrupt(handler, 0);
    // Every stub lies in the image, below 4 GiB: only the gate's first eight bytes (offset 15:0, selector,
    // IST, type, offset 31:16) differ between two stubs, and they change in one aligned 8-byte store.
    assert!(handler >> 32 == stub_address(vector) >> 32, "interrupt entries lie in the image, below 4 GiB");
    // SAFETY: Gate is repr(C), 16 bytes, so its first 8 bytes are a plain u64 (read out of a local).
    let low = unsafe { core::ptr::read_unaligned(&gate as *const Gate as *const u64) };
    super::cpu::without_interrupts(|| {
        // SAFETY: the IDT is 16-byte aligned and each gate 16 bytes, so its first 8 bytes are an aligned
        // u64 that only this function writes after `load`, always atomically; a CPU delivering the vector
        // meanwhile reads the whole old gate or the whole new one (the other 8 bytes are the same). The
        // caller vouches for `handler`.
        unsafe {
            let word = core::ptr::addr_of_mut!((*IDT.0.get()).0[vector as usize]) as *mut u64;
            core::sync::atomic::AtomicU64::from_ptr(word).store(low, Ordering::Release);
        }
    });
}

/// Points the gate of `vector` back at its normal stub.
pub fn restore_gate(vector: u8) {
    // SAFETY: the normal stub is a complete interrupt entry.
    unsafe { set_gate(vector, stub_address(vector)) }
}

/// Human name of an exception vector.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range", "invalid opcode",
        "device not available", "double fault", "coprocessor overrun", "invalid TSS", "segment not present",
        "stack fault", "general protection", "page fault", "reserved", "x87 FP", "alignment check",
        "machine check", "SIMD FP", "virtualization", "control protection", "reserved", "reserved",
        "reserved", "reserved", "reserved", "reserved", "hypervisor injection", "VMM communication",
        "security", "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}
