//! Local APIC in xAPIC (MMIO) or x2APIC (MSR) mode (SDM Vol. 3A ch. 11 and 11.12).

use super::cpu;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Register offsets in xAPIC MMIO space; the x2APIC MSR is 0x800 + offset/16 (SDM Table 11-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Reg {
    Id = 0x20,
    Version = 0x30,
    Tpr = 0x80,
    Eoi = 0xB0,
    Svr = 0xF0,
    Isr0 = 0x100,
    Irr0 = 0x200,
    Esr = 0x280,
    IcrLow = 0x300,
    IcrHigh = 0x310,
    LvtTimer = 0x320,
    LvtLint0 = 0x350,
    LvtLint1 = 0x360,
    LvtError = 0x370,
    TimerInitial = 0x380,
    TimerDivide = 0x3E0,
}

/// Operating mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Memory-mapped registers at the APIC base.
    XApic,
    /// MSR-based registers (x2APIC).
    X2Apic,
}

const MODE_NONE: u8 = 0;
const MODE_XAPIC: u8 = 1;
const MODE_X2APIC: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static BASE: AtomicU64 = AtomicU64::new(0xFEE0_0000);
/// How the interrupt entry's fast path ends an interrupt: 0 it cannot (no APIC yet: take the slow path),
/// 1 a write to the xAPIC EOI register at [`EOI_ADDR`], 2 a write to the x2APIC EOI MSR (0x80B).
pub(super) static EOI_KIND: AtomicU64 = AtomicU64::new(0);
/// Address of the xAPIC EOI register.
pub(super) static EOI_ADDR: AtomicU64 = AtomicU64::new(0);

/// Vector of the LAPIC spurious interrupt (SVR); low 4 bits all ones as older APICs required.
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// Vector for the LAPIC error LVT.
pub const ERROR_VECTOR: u8 = 0xFE;
/// Vector of the LAPIC timer (used only as a one-shot by `time::timers_run_by`).
pub const TIMER_VECTOR: u8 = 0xFC;

fn mode() -> Option<Mode> {
    match MODE.load(Ordering::Acquire) {
        MODE_XAPIC => Some(Mode::XApic),
        MODE_X2APIC => Some(Mode::X2Apic),
        _ => None,
    }
}

/// Reads a register (0 before [`init`]).
pub fn read(reg: Reg) -> u32 {
    read_offset(reg as u32)
}

fn read_offset(offset: u32) -> u32 {
    match mode() {
        // SAFETY: x2APIC mode is enabled, so MSRs 0x800-0x8FF exist; the offset is a valid register.
        Some(Mode::X2Apic) => unsafe { cpu::rdmsr(0x800 + (offset >> 4)) as u32 },
        Some(Mode::XApic) => {
            let addr = BASE.load(Ordering::Relaxed) + offset as u64;
            // SAFETY: the APIC page is identity-mapped uncached (boot/pvh.s maps 3-4 GiB; `init` checks the
            // base lies there) and `offset` is a register offset inside that 4 KiB page.
            unsafe { core::ptr::read_volatile(addr as *const u32) }
        }
        None => 0,
    }
}

/// Writes a register.
///
/// # Safety
/// Writes to the ICR send IPIs and writes to LVTs or the SVR change interrupt delivery for the CPU.
pub unsafe fn write(reg: Reg, value: u32) {
    match mode() {
        // SAFETY: x2APIC mode is on and `reg` is an x2APIC register; the caller vouches for the value.
        Some(Mode::X2Apic) => unsafe { cpu::wrmsr(0x800 + (reg as u32 >> 4), value as u64) },
        Some(Mode::XApic) => {
            let addr = BASE.load(Ordering::Relaxed) + reg as u32 as u64;
            // SAFETY: as in `read_offset`; the caller vouches for the value.
            unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
        }
        None => {}
    }
}

/// Errors that keep the local APIC from being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapicError {
    /// CPUID.1:EDX.APIC is clear.
    NoApic,
    /// The APIC base is outside the identity-mapped uncached window.
    BaseUnmapped(u64),
}

/// Enables the local APIC (x2APIC when `prefer_x2apic` and the CPU has it), masks LINT0 (the 8259's
/// ExtINT path: we use the IOAPIC) and sets the spurious and error vectors.
pub fn init(prefer_x2apic: bool) -> Result<Mode, LapicError> {
    let leaf1 = cpu::cpuid(1, 0);
    if leaf1.edx & (1 << 9) == 0 {
        return Err(LapicError::NoApic);
    }
    let has_x2apic = leaf1.ecx & (1 << 21) != 0;
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (checked above).
    let apic_base = unsafe { cpu::rdmsr(cpu::IA32_APIC_BASE) };
    let base = apic_base & 0x000F_FFFF_FFFF_F000;
    // x2APIC already on (a previous owner, e.g. a crashed kernel, left EXTD set): the only way back to xAPIC
    // is through the disabled state (SDM 11.12.5, Figure 11-28), so stay in x2APIC whatever was preferred
    // rather than drive an x2APIC-mode APIC through MMIO.
    let already_x2apic = apic_base & (1 << 11) != 0 && apic_base & (1 << 10) != 0;
    let mode = if (prefer_x2apic && has_x2apic) || already_x2apic {
        // SAFETY: setting EN (bit 11) and EXTD (bit 10) together is the documented xAPIC->x2APIC
        // transition (SDM Vol. 3A 11.12.5).
        unsafe { cpu::wrmsr(cpu::IA32_APIC_BASE, apic_base | (1 << 11) | (1 << 10)) };
        MODE.store(MODE_X2APIC, Ordering::Release);
        EOI_KIND.store(2, Ordering::Release);
        Mode::X2Apic
    } else {
        if !(0xC000_0000..0x1_0000_0000).contains(&base) {
            return Err(LapicError::BaseUnmapped(base));
        }
        BASE.store(base, Ordering::Relaxed);
        if apic_base & (1 << 11) == 0 {
            // SAFETY: setting the global enable bit keeps the base; documented in SDM 11.4.3.
            unsafe { cpu::wrmsr(cpu::IA32_APIC_BASE, apic_base | (1 << 11)) };
        }
        MODE.store(MODE_XAPIC, Ordering::Release);
        EOI_ADDR.store(base + Reg::Eoi as u64, Ordering::Release);
        EOI_KIND.store(1, Ordering::Release);
        Mode::XApic
    };
    // SAFETY: standard initialisation (SDM 11.4.7, 11.5.1): accept all priorities, mask LINT0 (ExtINT from
    // the 8259, which we mask and do not use), keep LINT1 as NMI, route APIC errors to ERROR_VECTOR, and
    // software-enable the APIC with the spurious vector.
    unsafe {
        write(Reg::Tpr, 0);
        write(Reg::LvtLint0, 1 << 16);
        write(Reg::LvtLint1, 0x400); // NMI delivery
        write(Reg::LvtTimer, 1 << 16);
        write(Reg::LvtError, ERROR_VECTOR as u32);
        write(Reg::Esr, 0);
        write(Reg::Esr, 0);
        write(Reg::Svr, (1 << 8) | SPURIOUS_VECTOR as u32);
    }
    Ok(mode)
}

/// Current mode, once initialised.
pub fn current_mode() -> Option<Mode> {
    mode()
}

/// APIC ID of the running CPU (SDM 11.4.6: bits 31:24 in xAPIC mode; the whole register in x2APIC).
pub fn id() -> u32 {
    let raw = read(Reg::Id);
    match mode() {
        Some(Mode::X2Apic) => raw,
        _ => raw >> 24,
    }
}

/// Signals end of interrupt (any value; SDM 11.8.5).
pub fn eoi() {
    // SAFETY: EOI only retires the highest-priority in-service vector; we call it once per interrupt.
    unsafe { write(Reg::Eoi, 0) }
}

/// Address of the xAPIC EOI register, or None in x2APIC mode (EOI is MSR 0x80B) or before [`init`].
pub fn eoi_address() -> Option<u64> {
    (mode() == Some(Mode::XApic)).then(|| BASE.load(Ordering::Relaxed) + Reg::Eoi as u64)
}

/// Whether `vector` is set in the In-Service Register (SDM 11.8.4).
pub fn in_service(vector: u8) -> bool {
    let word = read_offset(Reg::Isr0 as u32 + (vector as u32 / 32) * 0x10);
    word & (1 << (vector % 32)) != 0
}

/// Whether `vector` is pending in the Interrupt Request Register.
pub fn requested(vector: u8) -> bool {
    let word = read_offset(Reg::Irr0 as u32 + (vector as u32 / 32) * 0x10);
    word & (1 << (vector % 32)) != 0
}

/// Sets this CPU's Task Priority Register (SDM 11.8.3.1): fixed interrupts whose priority class (vector
/// bits 7:4) is at or below `tpr`'s bits 7:4 are held in the IRR; lowest-priority arbitration uses it
/// (SDM 11.6.2.4). 0 accepts every vector.
pub fn set_task_priority(tpr: u8) {
    // SAFETY: the TPR only decides which pending fixed interrupts this CPU accepts; no IPI is sent and no
    // delivery path is reconfigured.
    unsafe { write(Reg::Tpr, tpr as u32) }
}

/// This CPU's Task Priority Register.
pub fn task_priority() -> u8 {
    read(Reg::Tpr) as u8
}

/// Retires every vector left in service by a previous owner of this CPU (a crashed kernel that never sent
/// EOI): EOI until the In-Service Register is empty, at most 256 times (Linux's setup_local_APIC does the
/// same). Returns how many were retired.
pub fn drain_in_service() -> u32 {
    let mut retired = 0;
    while retired < 256 && (0..8).any(|i| read_offset(Reg::Isr0 as u32 + i * 0x10) != 0) {
        eoi();
        retired += 1;
    }
    retired
}

/// Arms the LAPIC timer to fire once on [`TIMER_VECTOR`] one bus clock from now (SDM 11.5.4: divide by
/// 1, one-shot, initial count 1). A no-op before [`init`].
pub fn fire_timer_once() {
    // SAFETY: the timer LVT gets an unmasked one-shot with TIMER_VECTOR, a system vector the dispatcher
    // counts and ends with EOI; divide configuration 1011b is "divide by 1" (SDM Figure 11-10); writing
    // the initial count starts the countdown (SDM 11.5.4), so it is written last.
    unsafe {
        write(Reg::TimerDivide, 0b1011);
        write(Reg::LvtTimer, TIMER_VECTOR as u32);
        write(Reg::TimerInitial, 1);
    }
}

/// Sends a fixed-delivery interrupt to this CPU (self IPI, SDM 11.6.1 shorthand 01).
pub fn self_ipi(vector: u8) {
    match mode() {
        // SAFETY: the x2APIC SELF IPI register (MSR 0x83F) takes just a vector (SDM 11.12.11).
        Some(Mode::X2Apic) => unsafe { cpu::wrmsr(0x83F, vector as u64) },
        // SAFETY: ICR low with shorthand "self", fixed delivery, edge: interrupts only this CPU.
        Some(Mode::XApic) => unsafe { write(Reg::IcrLow, (1 << 18) | vector as u32) },
        None => {}
    }
}
