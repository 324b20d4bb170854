//! Application processors (SDM Vol. 3A 9.4, "Multiple-Processor (MP) Initialization"): every enabled
//! CPU of the MADT is started with INIT-SIPI-SIPI (SDM 9.4.4.1) from a real-mode trampoline copied to a
//! free page below 1 MiB, goes 16 -> 32 -> 64-bit on the BSP's page tables (SDM 10.8.5), gets its own
//! stack (with an unmapped guard page), GDT and TSS (an IST stack for exceptions), the shared IDT, its
//! local APIC in the BSP's mode (and a logical ID), and idles in `hlt` serving a mailbox: [`call_on`]
//! runs a function there with interrupts off, [`take_offline`] parks it (`cli; hlt`), [`bring_online`]
//! starts it again with INIT-SIPI-SIPI.
//!
//! Facts this relies on (`smp-ir.md` §1): under SeaBIOS (PVH and GRUB boots) the APs are parked in
//! `cli; hlt` in protected mode, not waiting for SIPI, so INIT comes first; an NMI to such a parked AP
//! triple-faults the machine, so none is ever sent; QEMU needs no INIT/SIPI delays, real hardware gets
//! Linux's (10 ms after INIT unless a hypervisor is present, 200 us between the SIPIs). APs start one at a
//! time: each takes the stack the BSP put in [`PARAMS`] for its APIC ID, and one that comes late (after
//! its timeout) halts instead of taking another CPU's stack.

#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use super::{cpu, gdt, idt, lapic, paging, percpu};
use crate::boot::MemRegion;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    /* The real-mode trampoline, copied to the start page (SIPI vector = page number). The AP starts with
     * CS = page << 8, IP = 0 (SDM 9.4.4.1; smp-ir.md §1.2). Everything it needs lies in the page, except
     * the jump target and the GDT, which are in the image below 4 GiB (absolute addresses). */
    .pushsection .rodata.ap_trampoline, "a"
    .balign 16
    .global msifw_ap_trampoline
msifw_ap_trampoline:
    .code16
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lock incl msifw_ap_tramp_entries - msifw_ap_trampoline
    /* 32-bit operand size: a 16-bit lgdt would take only 24 bits of the base (Linux trampoline_64.S). */
    lgdtl msifw_ap_tramp_gdtr - msifw_ap_trampoline
    movl %cr0, %eax
    orl $1, %eax                        /* CR0.PE */
    movl %eax, %cr0
    ljmpl $0x18, $msifw_ap_start32
    .balign 4
msifw_ap_tramp_entries:
    .long 0
    .balign 4
    .word 0
msifw_ap_tramp_gdtr:
    .word msifw_ap_gdt_end - msifw_ap_gdt - 1
    .long msifw_ap_gdt
    .global msifw_ap_trampoline_end
msifw_ap_trampoline_end:
    .code64
    .balign 8
msifw_ap_gdt:
    .quad 0                             /* null */
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF            /* 0x10: data */
    .quad 0x00CF9A000000FFFF            /* 0x18: 32-bit code */
msifw_ap_gdt_end:
    .popsection

    .pushsection .text.ap, "ax"
    .code32
msifw_ap_start32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    /* IA-32e mode on the BSP's identity tables (SDM 10.8.5): PAE, CR3, EFER.LME, then paging. */
    movl %cr4, %eax
    orl $0x20, %eax                     /* CR4.PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx              /* IA32_EFER */
    rdmsr
    orl $0x100, %eax                    /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax               /* CR0.PG | CR0.PE */
    movl %eax, %cr0
    ljmpl $0x08, $msifw_ap_long64
    .code64
msifw_ap_long64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    /* Who am I: the initial APIC ID (CPUID.1:EBX[31:24], or CPUID.0BH:EDX, the x2APIC ID, when the BSP
     * runs x2APIC). Only the AP the BSP is starting takes the stack in the parameters. */
    movl $1, %eax
    xorl %ecx, %ecx
    cpuid
    shrl $24, %ebx
    cmpl $0, {params}+4(%rip)
    je 1f
    movl $0xB, %eax
    xorl %ecx, %ecx
    cpuid
    movl %edx, %ebx
1:  cmpl {params}(%rip), %ebx
    jne 2f
    movq {params}+8(%rip), %rsp
    movq {params}+16(%rip), %rdi
    xorl %ebp, %ebp
    call {ap_main}
2:  cli
    hlt
    jmp 2b
    .popsection
"#,
    params = sym PARAMS,
    ap_main = sym ap_main,
    options(att_syntax)
);

extern "C" {
    static msifw_ap_trampoline: u8;
    static msifw_ap_trampoline_end: u8;
}

/// What the BSP hands the AP it is starting (read by the assembly above at fixed offsets).
#[repr(C)]
struct ApParams {
    /// Offset 0: the APIC ID of the AP being started (`u32::MAX`: none).
    apic_id: AtomicU32,
    /// Offset 4: nonzero when the BSP runs x2APIC (the AP compares its x2APIC ID).
    x2apic: AtomicU32,
    /// Offset 8: its stack top.
    stack_top: AtomicU64,
    /// Offset 16: its index.
    index: AtomicU64,
}

static PARAMS: ApParams =
    ApParams { apic_id: AtomicU32::new(u32::MAX), x2apic: AtomicU32::new(0), stack_top: AtomicU64::new(0), index: AtomicU64::new(0) };

/// Size of each AP's stack, above its guard page.
const STACK_SIZE: usize = 64 * 1024;
/// Size of each AP's exception (IST) stack.
const IST_SIZE: usize = 16 * 1024;
/// How long an AP has to reach its idle loop after the SIPIs: Linux waits 10 s for a first sign of life;
/// under TCG with many vCPUs on a loaded host an AP takes tens of milliseconds.
pub const START_TIMEOUT_US: u64 = 3_000_000;
/// How long a freshly started CPU has to answer its first mailbox call.
const PING_TIMEOUT_US: u64 = 1_000_000;
/// How long a CPU has to answer a park request before it is stopped with INIT.
const PARK_TIMEOUT_US: u64 = 500_000;

/// Why a CPU did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// It did not reach its idle loop within [`START_TIMEOUT_US`] of the SIPIs.
    Timeout,
    /// No free 4 KiB page of RAM below 1 MiB for the trampoline (memory map, boot information).
    NoTrampolinePage,
    /// The INIT or SIPI could not be sent.
    Ipi(lapic::IpiError),
    /// No heap for its stacks.
    NoMemory,
    /// Its local APIC could not be set up like the BSP's.
    Lapic(lapic::ApLapicError),
    /// A function run on it through [`call_on`] did not return in time; it was stopped with INIT.
    Stuck,
    /// The MADT lists its APIC ID twice; only the first entry is used.
    DuplicateApicId,
    /// It came up but a function sent to it through its mailbox did not run there (no answer, or it ran
    /// on a CPU with another APIC ID).
    NoAnswer,
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Timeout => write!(f, "did not come up within {} ms of INIT-SIPI-SIPI", START_TIMEOUT_US / 1000),
            StartError::NoTrampolinePage => write!(f, "no free RAM page below 1 MiB for the start-up trampoline"),
            StartError::Ipi(e) => write!(f, "INIT/SIPI not sent: {e:?}"),
            StartError::NoMemory => write!(f, "no heap for its stacks"),
            StartError::Lapic(e) => write!(f, "local APIC not set up: {e:?}"),
            StartError::Stuck => write!(f, "a function run on it did not return; stopped with INIT"),
            StartError::DuplicateApicId => write!(f, "its APIC ID is listed twice in the MADT"),
            StartError::NoAnswer => write!(f, "came up but did not run a function sent to its mailbox"),
        }
    }
}

/// A CPU's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuState {
    /// Running: the BSP, or an AP idling in `hlt` with interrupts on, serving its mailbox.
    Online,
    /// Not running msifw's code: parked (`cli; hlt`) or being started.
    Offline,
    /// It did not start.
    Failed(StartError),
}

/// One CPU, as [`cpus`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// Index: 0 the BSP, then the MADT's order.
    pub index: usize,
    /// Local APIC ID (x2APIC ID in x2APIC mode).
    pub apic_id: u32,
    /// ACPI processor UID from the MADT (`u32::MAX` for a BSP the MADT does not list).
    pub acpi_uid: u32,
    /// Logical APIC ID: xAPIC flat bitmap (LDR 31:24, bit = index for index < 8, else 0), or the x2APIC
    /// read-only cluster LDR. 0 until the CPU has run.
    pub logical_id: u32,
    /// State.
    pub state: CpuState,
}

/// Errors of [`call_on`], [`take_offline`] and [`bring_online`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpError {
    /// No CPU has this index.
    NoSuchCpu(usize),
    /// The CPU is not online.
    NotOnline(usize),
    /// The CPU is online already.
    AlreadyOnline(usize),
    /// The CPU has no mailbox: it is the BSP (index 0), which runs the firmware, called from an AP.
    NoMailbox(usize),
    /// It did not take the request in time (nothing ran there).
    Timeout(usize),
    /// The function ran past the timeout; the CPU was stopped with INIT and is Failed(Stuck).
    Stuck(usize),
    /// Starting it again failed.
    Start(usize, StartError),
}

const MAIL_IDLE: u8 = 0;
const MAIL_CALL: u8 = 1;
const MAIL_RUNNING: u8 = 2;
const MAIL_DONE: u8 = 3;
const MAIL_PARK: u8 = 4;
const MAIL_PARKED: u8 = 5;

/// `*const dyn Fn` kept in the mailbox while its caller waits.
#[derive(Clone, Copy)]
struct CallPtr(*const (dyn Fn() + Sync + 'static));
// SAFETY: the pointee is `Sync` and outlives every use: `call_on` does not return while the AP may still
// run it (it waits for MAIL_DONE, withdraws the request, or stops the CPU with INIT).
unsafe impl Send for CallPtr {}

struct Slot {
    apic_id: u32,
    acpi_uid: u32,
    logical_id: AtomicU32,
    state: spin::Mutex<CpuState>,
    /// While starting: the AP claims Online from it; the BSP's timeout turns it into Failed.
    starting: spin::Mutex<bool>,
    mailbox: AtomicU8,
    call: spin::Mutex<Option<CallPtr>>,
    /// Serialises callers of this CPU's mailbox.
    callers: spin::Mutex<()>,
    stack_top: AtomicU64,
    ist_top: AtomicU64,
}

impl Slot {
    fn new(apic_id: u32, acpi_uid: u32) -> Slot {
        Slot {
            apic_id,
            acpi_uid,
            logical_id: AtomicU32::new(0),
            state: spin::Mutex::new(CpuState::Offline),
            starting: spin::Mutex::new(false),
            mailbox: AtomicU8::new(MAIL_IDLE),
            call: spin::Mutex::new(None),
            callers: spin::Mutex::new(()),
            stack_top: AtomicU64::new(0),
            ist_top: AtomicU64::new(0),
        }
    }
}

static SLOTS: spin::Once<Vec<Slot>> = spin::Once::new();
/// The trampoline's page, once chosen and written.
static TRAMPOLINE: AtomicU64 = AtomicU64::new(0);
/// Low memory the trampoline must not overwrite (the boot information: hvm_start_info and what it points
/// at, or the Multiboot2 information), registered by the entry before anything else runs.
static LOW_IN_USE: spin::Mutex<heapless::Vec<Range<u64>, 8>> = spin::Mutex::new(heapless::Vec::new());
/// More low ranges were registered than held: no trampoline page is chosen (it could overwrite one).
static LOW_OVERFLOW: AtomicU8 = AtomicU8::new(0);

/// A CPU index that gets INIT but no SIPI (`selftest=ap-no-sipi`), or `usize::MAX`.
static WITHHOLD_SIPI: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(usize::MAX);

/// Makes [`start`] send CPU `index` its INIT but no SIPI, so that it never starts: the check that a CPU
/// which does not come up is reported (`selftest=ap-no-sipi`).
pub fn withhold_sipi(index: usize) {
    WITHHOLD_SIPI.store(index, Ordering::Relaxed);
}

fn slots() -> &'static [Slot] {
    SLOTS.get().map_or(&[], |s| s.as_slice())
}

/// Marks `range` of low memory as in use (boot information a restart in place reads again).
pub fn reserve_low(range: Range<u64>) {
    if range.start < range.end && LOW_IN_USE.lock().push(range).is_err() {
        LOW_OVERFLOW.store(1, Ordering::Relaxed);
    }
}

/// The low ranges `hvm_start_info` at `addr` occupies with what it points at (the structure, the command
/// line, the memory map, the module list; empty where absent), for [`reserve_low`]. Layout: Xen's
/// `start_info.h` (version 1). No heap: it runs before the heap exists.
pub fn pvh_ranges(mem: &impl crate::physmem::PhysMemory, addr: u64) -> [Range<u64>; 4] {
    let u32_at = |a: u64| mem.bytes(a, 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |a: u64| mem.bytes(a, 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let cmdline = u64_at(addr + 0x18);
    let cmdline_len = if cmdline == 0 { 0 } else { (0..4096u64).find(|&i| mem.bytes(cmdline + i, 1).is_none_or(|b| b[0] == 0)).unwrap_or(4096) + 1 };
    let memmap = u64_at(addr + 0x28);
    let memmap_len = if memmap == 0 { 0 } else { u64::from(u32_at(addr + 0x30)).saturating_mul(24) };
    let modlist = u64_at(addr + 0x10);
    let modlist_len = if modlist == 0 { 0 } else { u64::from(u32_at(addr + 0x0C)).saturating_mul(32) };
    [
        addr..addr.saturating_add(0x38),
        cmdline..cmdline.saturating_add(cmdline_len),
        memmap..memmap.saturating_add(memmap_len),
        modlist..modlist.saturating_add(modlist_len),
    ]
}

/// The highest 4 KiB page in 0x1000-0x9FFFF that lies wholly in RAM (E820 type 1) and overlaps nothing in
/// `in_use`: page 0 holds the real-mode IVT (and a negative control's sentinel), 0xA0000 up is VGA and
/// ROM, and a SIPI vector is a page number below 0x100 (SDM 9.4.4.1). Linux also takes the top of low
/// memory (its real-mode blob, `reserve_real_mode`).
pub fn choose_trampoline_page(memmap: &[MemRegion], in_use: &[Range<u64>]) -> Option<u64> {
    (1..0xA0u64).rev().map(|p| p << 12).find(|&page| {
        let end = page + 0x1000;
        memmap.iter().any(|m| m.kind == 1 && m.addr <= page && m.addr.saturating_add(m.size) >= end)
            && !in_use.iter().any(|u| u.start < end && page < u.end)
    })
}

/// An enabled MADT entry, as [`start`] takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuEntry {
    /// Local APIC or x2APIC ID.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub acpi_uid: u32,
}

/// The order CPUs get their indices: the BSP (APIC ID `bsp`) first, then `entries` in table order, each
/// APIC ID once. Returns the list and the entries left out as duplicates.
pub fn index_order(bsp: u32, entries: &[CpuEntry]) -> (Vec<CpuEntry>, Vec<CpuEntry>) {
    let mut order = Vec::with_capacity(entries.len() + 1);
    order.push(entries.iter().copied().find(|e| e.apic_id == bsp).unwrap_or(CpuEntry { apic_id: bsp, acpi_uid: u32::MAX }));
    let mut duplicates = Vec::new();
    for e in entries.iter().filter(|e| e.apic_id != bsp) {
        if order.iter().any(|o| o.apic_id == e.apic_id) {
            duplicates.push(*e);
        } else {
            order.push(*e);
        }
    }
    // The BSP listed twice is a duplicate too.
    duplicates.extend(entries.iter().filter(|e| e.apic_id == bsp).skip(1).copied());
    (order, duplicates)
}

/// Starts every CPU of `entries` (the MADT's enabled ones) but the one running this, the BSP, which gets
/// index 0. `memmap`: where the trampoline may go. Returns the CPUs as [`cpus`] does, plus the entries
/// left out as duplicate APIC IDs. Called once per boot (and again after a restart in place, which begins
/// from scratch: [`park_all`] left the APs halted, INIT takes them back).
pub fn start(entries: &[CpuEntry], memmap: &[MemRegion]) -> Vec<CpuEntry> {
    let bsp = lapic::id();
    let (order, duplicates) = index_order(bsp, entries);
    let ids: Vec<u32> = order.iter().map(|e| e.apic_id).collect();
    SLOTS.call_once(|| order.iter().map(|e| Slot::new(e.apic_id, e.acpi_uid)).collect());
    percpu::init(&ids);
    let slots = slots();
    let bsp_logical = lapic::set_logical_flat(Some(0));
    slots[0].logical_id.store(bsp_logical, Ordering::Relaxed);
    *slots[0].state.lock() = CpuState::Online;
    PARAMS.x2apic.store(u32::from(lapic::current_mode() == Some(lapic::Mode::X2Apic)), Ordering::Relaxed);

    if slots.len() > 1 {
        let page = if LOW_OVERFLOW.load(Ordering::Relaxed) != 0 { None } else { choose_trampoline_page(memmap, &LOW_IN_USE.lock()) };
        match page {
            Some(page) => install_trampoline(page),
            None => {
                for s in &slots[1..] {
                    *s.state.lock() = CpuState::Failed(StartError::NoTrampolinePage);
                }
                return duplicates;
            }
        }
        // Every AP's stacks (and guard pages) first: unmapping a guard page splits a 2 MiB page, which is
        // done before any AP runs, so no AP holds a stale translation of it.
        for s in &slots[1..] {
            if let Err(e) = ensure_stacks(s) {
                *s.state.lock() = CpuState::Failed(e);
            }
        }
        for (index, s) in slots.iter().enumerate().skip(1) {
            if !matches!(*s.state.lock(), CpuState::Failed(_)) {
                let _ = start_one(index);
            }
        }
    }
    duplicates
}

/// Copies the trampoline to `page` (filled with INT3 first, as kvm-unit-tests does, so an AP that strays
/// in the page faults rather than runs on).
fn install_trampoline(page: u64) {
    // Only the addresses of the assembly's symbols are taken.
    let start = core::ptr::addr_of!(msifw_ap_trampoline) as usize;
    let end = core::ptr::addr_of!(msifw_ap_trampoline_end) as usize;
    // SAFETY: `page` is a 4 KiB page of RAM below 1 MiB that the memory map gives as free and that holds
    // no boot information (choose_trampoline_page), identity-mapped writable by boot/pvh.s; nothing of
    // Rust's lives there. The blob (under 100 bytes) fits the page.
    unsafe {
        let dst = page as *mut u8;
        core::ptr::write_bytes(dst, 0xCC, 4096);
        core::ptr::copy_nonoverlapping(start as *const u8, dst, end - start);
    }
    TRAMPOLINE.store(page, Ordering::Release);
}

/// How many times APs entered the trampoline (its counter, in the page).
pub fn trampoline_entries() -> u32 {
    let page = TRAMPOLINE.load(Ordering::Acquire);
    if page == 0 {
        return 0;
    }
    let offset = {
        extern "C" {
            static msifw_ap_tramp_entries: u8;
        }
        // Only the addresses are taken.
        core::ptr::addr_of!(msifw_ap_tramp_entries) as u64 - core::ptr::addr_of!(msifw_ap_trampoline) as u64
    };
    // SAFETY: the counter lies inside the trampoline page written by `install_trampoline`, 4-aligned;
    // APs increment it with a locked add, so an atomic view of it is sound.
    unsafe { (*((page + offset) as *const AtomicU32)).load(Ordering::Acquire) }
}

/// Allocates `size` bytes, 4 KiB aligned, never freed (a CPU's stack lives as long as the firmware).
fn alloc_pages(size: usize) -> Option<u64> {
    let layout = core::alloc::Layout::from_size_align(size, 4096).ok()?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc::alloc(layout) };
    (!p.is_null()).then_some(p as u64)
}

/// Gives CPU `index` its stacks (once; a restart of the CPU reuses them).
fn ensure_stacks(slot: &Slot) -> Result<(), StartError> {
    if slot.stack_top.load(Ordering::Relaxed) != 0 {
        return Ok(());
    }
    let stack = alloc_pages(4096 + STACK_SIZE).ok_or(StartError::NoMemory)?;
    // The lowest page is the guard: overflowing the stack faults there (and is reported on the IST stack).
    if let Err(e) = paging::unmap_4k(stack) {
        crate::warn!("AP stack guard page not set up: {=str}", if e == paging::PagingError::PoolExhausted { "no page for a page table" } else { "out of range" });
    }
    let ist = alloc_pages(IST_SIZE).ok_or(StartError::NoMemory)?;
    slot.stack_top.store(stack + 4096 + STACK_SIZE as u64, Ordering::Relaxed);
    slot.ist_top.store(ist + IST_SIZE as u64, Ordering::Relaxed);
    Ok(())
}

/// INIT-SIPI-SIPI to CPU `index` and wait for it to come up (SDM 9.4.4.1; Linux
/// `wakeup_secondary_cpu_via_init`).
fn start_one(index: usize) -> Result<(), StartError> {
    let slot = &slots()[index];
    let fail = |e: StartError| {
        *slot.state.lock() = CpuState::Failed(e);
        crate::warn!("CPU {=usize} (APIC ID {=u32}) did not start", index, slot.apic_id);
        Err(e)
    };
    if let Err(e) = ensure_stacks(slot) {
        return fail(e);
    }
    let page = TRAMPOLINE.load(Ordering::Acquire);
    if page == 0 {
        return fail(StartError::NoTrampolinePage);
    }
    *slot.state.lock() = CpuState::Offline;
    slot.mailbox.store(MAIL_IDLE, Ordering::Relaxed);
    *slot.starting.lock() = true;
    PARAMS.stack_top.store(slot.stack_top.load(Ordering::Relaxed), Ordering::Relaxed);
    PARAMS.index.store(index as u64, Ordering::Relaxed);
    // Last: the AP checks its APIC ID against this before it takes the rest.
    PARAMS.apic_id.store(slot.apic_id, Ordering::Release);
    let t0 = crate::time::now_us();
    let vector = (page >> 12) as u8;
    // Under a hypervisor the INIT and SIPI delays real hardware needs are left out (smp-ir.md §1.4).
    let hw = !cpu::under_hypervisor();
    let sent = (|| {
        lapic::read_errors();
        lapic::send_init(slot.apic_id)?;
        lapic::send_init_deassert(slot.apic_id)?;
        if hw {
            crate::time::delay_us(10_000);
        }
        if WITHHOLD_SIPI.load(Ordering::Relaxed) == index {
            return Ok(());
        }
        lapic::send_startup(slot.apic_id, vector)?;
        // A second SIPI only if the first did not take (an AP that left wait-for-SIPI ignores it anyway).
        if !crate::time::wait_until(if hw { 200 } else { 1_000 }, || !*slot.starting.lock()) {
            lapic::send_startup(slot.apic_id, vector)?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        *slot.starting.lock() = false;
        PARAMS.apic_id.store(u32::MAX, Ordering::Release);
        return fail(StartError::Ipi(e));
    }
    let came = crate::time::wait_until(START_TIMEOUT_US, || !*slot.starting.lock());
    PARAMS.apic_id.store(u32::MAX, Ordering::Release);
    if !came {
        let mut starting = slot.starting.lock();
        if *starting {
            // Too late from here on: if it still arrives, it finds `starting` false and halts.
            *starting = false;
            drop(starting);
            return fail(StartError::Timeout);
        }
    }
    let state = *slot.state.lock();
    match state {
        CpuState::Online => {
            // Online only once it answers: a function sent through its mailbox runs there and reads this
            // CPU's APIC ID.
            let seen = AtomicU32::new(u32::MAX);
            let answered = call_on_unlocked(index, slot, &|| seen.store(lapic::id(), Ordering::Release), PING_TIMEOUT_US).is_ok();
            if !answered || seen.load(Ordering::Acquire) != slot.apic_id {
                if answered {
                    crate::warn!("CPU {=usize}: its mailbox function ran on APIC ID {=u32}", index, seen.load(Ordering::Acquire));
                }
                return fail(StartError::NoAnswer);
            }
            crate::debug!("CPU {=usize} (APIC ID {=u32}) online in {=u64} us", index, slot.apic_id, crate::time::now_us() - t0);
            Ok(())
        }
        CpuState::Failed(e) => Err(e),
        CpuState::Offline => fail(StartError::Timeout),
    }
}

/// The AP's Rust entry, on its own stack (from the assembly above).
extern "C" fn ap_main(index: u64) -> ! {
    let index = index as usize;
    // First: the GS base (after INIT it is 0), which the interrupt entry and `percpu::index` read.
    percpu::enter(index);
    let Some(slot) = slots().get(index) else { park_self() };
    let claim = |state: CpuState| {
        let mut starting = slot.starting.lock();
        if !*starting {
            // The BSP gave up on it (timeout): it stays out.
            return false;
        }
        *slot.state.lock() = state;
        *starting = false;
        true
    };
    if let Err(e) = lapic::init_ap() {
        claim(CpuState::Failed(StartError::Lapic(e)));
        park_self();
    }
    let logical = lapic::set_logical_flat(u8::try_from(index).ok().filter(|&i| i < 8));
    slot.logical_id.store(logical, Ordering::Relaxed);
    gdt::init_ap(slot.ist_top.load(Ordering::Relaxed));
    idt::load();
    if !claim(CpuState::Online) {
        park_self();
    }
    idle(slot)
}

/// Halts this CPU for good, interrupts off (until INIT).
fn park_self() -> ! {
    cpu::halt_forever()
}

/// The AP's idle loop: with interrupts off, serve the mailbox; then `sti; hlt` (an interrupt, such as the
/// wake IPI, arriving after the check is taken after STI's one-instruction shadow and ends the HLT).
fn idle(slot: &Slot) -> ! {
    loop {
        cpu::disable_interrupts();
        match slot.mailbox.load(Ordering::Acquire) {
            // Taken with a compare-exchange: a caller that timed out withdraws the request the same way,
            // and only one of the two can win.
            MAIL_CALL if slot.mailbox.compare_exchange(MAIL_CALL, MAIL_RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() => {
                let call = *slot.call.lock();
                if let Some(CallPtr(f)) = call {
                    // SAFETY: the caller of `call_on` keeps `f` alive until MAIL_DONE (or stops this CPU).
                    unsafe { (*f)() };
                }
                slot.mailbox.store(MAIL_DONE, Ordering::Release);
            }
            MAIL_PARK => {
                *slot.state.lock() = CpuState::Offline;
                slot.mailbox.store(MAIL_PARKED, Ordering::Release);
                park_self();
            }
            _ => {}
        }
        // SAFETY: enables interrupts and halts; the IDT and this CPU's LAPIC are set up.
        unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
    }
}

/// Every CPU, in index order (index 0 = the BSP). Before [`start`]: the running CPU alone.
pub fn cpus() -> Vec<Cpu> {
    let slots = slots();
    if slots.is_empty() {
        return alloc::vec![Cpu { index: 0, apic_id: lapic::id(), acpi_uid: u32::MAX, logical_id: lapic::logical_id(), state: CpuState::Online }];
    }
    slots
        .iter()
        .enumerate()
        .map(|(index, s)| Cpu {
            index,
            apic_id: s.apic_id,
            acpi_uid: s.acpi_uid,
            logical_id: s.logical_id.load(Ordering::Relaxed),
            state: *s.state.lock(),
        })
        .collect()
}

/// Indices of the online CPUs.
pub fn online() -> Vec<usize> {
    if slots().is_empty() {
        return alloc::vec![0];
    }
    slots().iter().enumerate().filter(|(_, s)| *s.state.lock() == CpuState::Online).map(|(i, _)| i).collect()
}

/// APIC ID of CPU `index`.
pub fn apic_id(index: usize) -> Option<u32> {
    match slots().get(index) {
        Some(s) => Some(s.apic_id),
        None if index == 0 && slots().is_empty() => Some(lapic::id()),
        None => None,
    }
}

/// Runs `f` on CPU `index` with interrupts off there and waits for it (at most `timeout_us` for the CPU
/// to take it and as long again for it to return). On the caller's own CPU it runs inline.
pub fn call_on(index: usize, f: &(dyn Fn() + Sync), timeout_us: u64) -> Result<(), SmpError> {
    if index == percpu::index() {
        cpu::without_interrupts(f);
        return Ok(());
    }
    let slot = slots().get(index).ok_or(SmpError::NoSuchCpu(index))?;
    if index == 0 {
        return Err(SmpError::NoMailbox(0));
    }
    let deadline = crate::time::Deadline::after_us(timeout_us);
    let _caller = loop {
        if let Some(g) = slot.callers.try_lock() {
            break g;
        }
        if deadline.expired() {
            return Err(SmpError::Timeout(index));
        }
        cpu::relax();
    };
    call_on_unlocked(index, slot, f, timeout_us)
}

/// [`call_on`] for a caller that holds `slot.callers` (or starts the CPU, so that no other caller can reach
/// it yet).
fn call_on_unlocked(index: usize, slot: &Slot, f: &(dyn Fn() + Sync), timeout_us: u64) -> Result<(), SmpError> {
    if *slot.state.lock() != CpuState::Online {
        return Err(SmpError::NotOnline(index));
    }
    let ptr = f as *const (dyn Fn() + Sync + '_);
    // SAFETY: only the lifetime is widened; this function does not return while the AP may use the pointer
    // (see CallPtr).
    let ptr: *const (dyn Fn() + Sync + 'static) = unsafe { core::mem::transmute(ptr) };
    *slot.call.lock() = Some(CallPtr(ptr));
    slot.mailbox.store(MAIL_CALL, Ordering::Release);
    lapic::send_ipi(slot.apic_id, lapic::WAKE_VECTOR);
    let done = || slot.mailbox.load(Ordering::Acquire) == MAIL_DONE;
    if crate::time::wait_until(timeout_us, done) {
        slot.mailbox.store(MAIL_IDLE, Ordering::Release);
        *slot.call.lock() = None;
        return Ok(());
    }
    // Not taken yet: withdraw it; nothing ran.
    if slot.mailbox.compare_exchange(MAIL_CALL, MAIL_IDLE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        *slot.call.lock() = None;
        return Err(SmpError::Timeout(index));
    }
    // Running: give it as long again, then stop the CPU so that it cannot use `f` after we return.
    if crate::time::wait_until(timeout_us, done) {
        slot.mailbox.store(MAIL_IDLE, Ordering::Release);
        *slot.call.lock() = None;
        return Ok(());
    }
    stop_with_init(slot);
    *slot.state.lock() = CpuState::Failed(StartError::Stuck);
    *slot.call.lock() = None;
    Err(SmpError::Stuck(index))
}

/// INIT to the CPU: it stops whatever it runs and waits for a SIPI (SDM 9.4.4.1; smp-ir.md §1.2). Given a
/// few milliseconds, since a vCPU takes the INIT when its thread next looks.
fn stop_with_init(slot: &Slot) {
    let _ = lapic::send_init(slot.apic_id);
    let _ = lapic::send_init_deassert(slot.apic_id);
    crate::time::delay_us(10_000);
}

/// Takes CPU `index` offline: it stops accepting interrupts (interrupts off, halted); state Offline.
pub fn take_offline(index: usize) -> Result<(), SmpError> {
    let slot = slots().get(index).ok_or(SmpError::NoSuchCpu(index))?;
    if index == 0 || index == percpu::index() {
        return Err(SmpError::NoMailbox(index));
    }
    let _caller = slot.callers.lock();
    if *slot.state.lock() != CpuState::Online {
        return Err(SmpError::NotOnline(index));
    }
    slot.mailbox.store(MAIL_PARK, Ordering::Release);
    lapic::send_ipi(slot.apic_id, lapic::WAKE_VECTOR);
    if crate::time::wait_until(PARK_TIMEOUT_US, || slot.mailbox.load(Ordering::Acquire) == MAIL_PARKED) {
        return Ok(());
    }
    stop_with_init(slot);
    *slot.state.lock() = CpuState::Offline;
    Err(SmpError::Timeout(index))
}

/// Starts CPU `index` again (INIT-SIPI-SIPI; the LAPIC, GDT and TSS are set up anew); state Online.
pub fn bring_online(index: usize) -> Result<(), SmpError> {
    let slot = slots().get(index).ok_or(SmpError::NoSuchCpu(index))?;
    if index == 0 {
        return Err(SmpError::NoMailbox(0));
    }
    let _caller = slot.callers.lock();
    if *slot.state.lock() == CpuState::Online {
        return Err(SmpError::AlreadyOnline(index));
    }
    start_one(index).map_err(|e| SmpError::Start(index, e))
}

/// Stops every AP before a restart in place (as a crash kernel's entry stops the other CPUs): each
/// parks itself (`cli; hlt`), or gets INIT if it does not answer. The next run starts them again.
pub fn park_all() {
    for (index, slot) in slots().iter().enumerate().skip(1) {
        if *slot.state.lock() == CpuState::Online && take_offline(index).is_err() {
            stop_with_init(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physmem::SliceMemory;

    fn ram(addr: u64, size: u64) -> MemRegion {
        MemRegion { addr, size, kind: 1 }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn trampoline_goes_to_the_highest_free_low_page() {
        // QEMU's map: RAM to 0x9FC00 (the EBDA above), reserved 0xF0000-0xFFFFF.
        let map = [ram(0, 0x9FC00), MemRegion { addr: 0xF0000, size: 0x10000, kind: 2 }, ram(0x100000, 0x7F00000)];
        assert_eq!(choose_trampoline_page(&map, &[]), Some(0x9E000));
        // A boot information block in that page pushes it down.
        assert_eq!(choose_trampoline_page(&map, &[0x9E800..0x9E838]), Some(0x9D000));
        assert_eq!(choose_trampoline_page(&map, &[0x9D000..0x9F000]), Some(0x9C000));
        // Page 0 is never taken, nor a page only partly RAM.
        assert_eq!(choose_trampoline_page(&[ram(0, 0x1000)], &[]), None);
        assert_eq!(choose_trampoline_page(&[ram(0x1000, 0x800)], &[]), None);
        assert_eq!(choose_trampoline_page(&[ram(0x1000, 0x1000)], &[]), Some(0x1000));
        // Nothing free: no page.
        assert_eq!(choose_trampoline_page(&map, &[0..0xA0000]), None);
        assert_eq!(choose_trampoline_page(&[MemRegion { addr: 0, size: 0xA0000, kind: 2 }], &[]), None);
    }

    #[test]
    fn bsp_first_then_table_order_without_duplicates() {
        let e = |apic_id, acpi_uid| CpuEntry { apic_id, acpi_uid };
        let (order, dup) = index_order(2, &[e(0, 0), e(1, 1), e(2, 2), e(4, 3), e(1, 9)]);
        assert_eq!(order, [e(2, 2), e(0, 0), e(1, 1), e(4, 3)]);
        assert_eq!(dup, [e(1, 9)]);
        // A BSP the table does not list still gets index 0.
        let (order, dup) = index_order(7, &[e(0, 0)]);
        assert_eq!(order, [e(7, u32::MAX), e(0, 0)]);
        assert!(dup.is_empty());
        let (_, dup) = index_order(0, &[e(0, 0), e(0, 5)]);
        assert_eq!(dup, [e(0, 5)]);
    }

    #[test]
    fn pvh_start_info_ranges() {
        let base = 0x6000u64;
        let mut m = vec![0u8; 0x3000];
        m[0x0C..0x10].copy_from_slice(&1u32.to_le_bytes());
        m[0x10..0x18].copy_from_slice(&(base + 0x100).to_le_bytes());
        m[0x18..0x20].copy_from_slice(&(base + 0x1000).to_le_bytes());
        m[0x28..0x30].copy_from_slice(&(base + 0x2000).to_le_bytes());
        m[0x30..0x34].copy_from_slice(&3u32.to_le_bytes());
        m[0x1000..0x1005].copy_from_slice(b"nomsi");
        let mem = SliceMemory::new(base, &m);
        let r = pvh_ranges(&mem, base);
        assert_eq!(r, [base..base + 0x38, base + 0x1000..base + 0x1006, base + 0x2000..base + 0x2000 + 72, base + 0x100..base + 0x120]);
    }
}
