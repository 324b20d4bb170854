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
    Ldr = 0xD0,
    Dfr = 0xE0,
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
    TimerCurrent = 0x390,
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
/// Vector of the IPI that wakes an application processor to look at its mailbox (`arch::smp`): a system
/// vector outside the device range, so the interrupt entry counts it and ends it with EOI on its own.
pub const WAKE_VECTOR: u8 = 0xFB;

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
    program_local_vectors();
    Ok(mode)
}

/// The registers every CPU's local APIC gets, the BSP's in [`init`] and each AP's in [`init_ap`].
fn program_local_vectors() {
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
}

/// Errors of an application processor's local APIC set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApLapicError {
    /// The BSP's local APIC was never initialised, so the mode to match is unknown.
    BspNotInitialised,
    /// This AP's APIC base differs from the BSP's (the xAPIC registers are reached at the BSP's base).
    OtherBase(u64),
}

/// Enables an application processor's local APIC in the BSP's mode (xAPIC or x2APIC) with the same
/// register set-up as [`init`]. Runs on the AP, after INIT-SIPI (which leaves the LAPIC software-disabled,
/// SDM 11.4.7.3) or after a restart in place.
pub fn init_ap() -> Result<Mode, ApLapicError> {
    let mode = mode().ok_or(ApLapicError::BspNotInitialised)?;
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC, which the BSP checked (same CPU model).
    let apic_base = unsafe { cpu::rdmsr(cpu::IA32_APIC_BASE) };
    match mode {
        Mode::X2Apic => {
            if apic_base & (1 << 10) == 0 {
                // SDM 11.12.5, Figure 11-28: disabled -> xAPIC -> x2APIC; EXTD is set from xAPIC mode only.
                // SAFETY: the documented transitions, keeping the base.
                unsafe {
                    cpu::wrmsr(cpu::IA32_APIC_BASE, apic_base | (1 << 11));
                    cpu::wrmsr(cpu::IA32_APIC_BASE, apic_base | (1 << 11) | (1 << 10));
                }
            }
        }
        Mode::XApic => {
            let base = apic_base & 0x000F_FFFF_FFFF_F000;
            if base != BASE.load(Ordering::Relaxed) {
                return Err(ApLapicError::OtherBase(base));
            }
            if apic_base & (1 << 11) == 0 {
                // SAFETY: setting the global enable bit keeps the base (SDM 11.4.3).
                unsafe { cpu::wrmsr(cpu::IA32_APIC_BASE, apic_base | (1 << 11)) };
            }
        }
    }
    program_local_vectors();
    // LINT1 (NMI) is wired to the BSP only; an AP keeps it masked (Linux setup_local_APIC: "only the BSP
    // sees the LINT1 NMI signal"; SDM 11.5.1, mask bit 16).
    // SAFETY: masking an LVT entry only stops that input from interrupting this CPU.
    unsafe { write(Reg::LvtLint1, 0x400 | (1 << 16)) };
    Ok(mode)
}

/// Sets this CPU's logical destination for the flat model in xAPIC mode (SDM 11.6.2.2: DFR model 1111b,
/// LDR bits 31:24 a bitmap, one bit per CPU): `bit` 0-7 sets that bit, `None` leaves LDR 0 (the CPU is no
/// logical target). In x2APIC mode LDR is read-only (cluster model, SDM 11.12.10.2) and only read.
/// Returns [`logical_id`].
pub fn set_logical_flat(bit: Option<u8>) -> u32 {
    if mode() == Some(Mode::XApic) {
        let ldr = bit.filter(|&b| b < 8).map_or(0, |b| 1u32 << (24 + b as u32));
        // SAFETY: DFR and LDR only decide which logical destinations this CPU matches (SDM 11.6.2.2).
        unsafe {
            write(Reg::Dfr, 0xFFFF_FFFF);
            write(Reg::Ldr, ldr);
        }
    }
    logical_id()
}

/// This CPU's logical APIC ID: LDR bits 31:24 in xAPIC mode (the flat bitmap), the whole read-only LDR in
/// x2APIC mode ((cluster << 16) | (1 << (x2APIC ID & 15)), SDM 11.12.10.2).
pub fn logical_id() -> u32 {
    let raw = read(Reg::Ldr);
    match mode() {
        Some(Mode::X2Apic) => raw,
        _ => raw >> 24,
    }
}

/// Why an interprocessor interrupt could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiError {
    /// The local APIC is not initialised.
    NoApic,
    /// An xAPIC destination is 8 bits wide (SDM 11.6.1); this APIC ID needs x2APIC.
    DestinationTooWide(u32),
    /// The previous IPI's delivery status stayed "send pending" (ICR bit 12) for 10 ms.
    Busy,
}

/// Writes the ICR: destination `dest` (physical APIC ID) and the low word `low` (vector, delivery mode,
/// level, trigger; SDM 11.6.1, Figure 11-12; x2APIC: one 64-bit MSR write, SDM 11.12.9).
fn send_icr(dest: u32, low: u32) -> Result<(), IpiError> {
    match mode() {
        // SAFETY: the x2APIC ICR (MSR 0x830) takes the destination in bits 63:32; the caller chose `low`.
        Some(Mode::X2Apic) => unsafe { cpu::wrmsr(0x830, (u64::from(dest) << 32) | u64::from(low)) },
        Some(Mode::XApic) => {
            if dest > 0xFF {
                return Err(IpiError::DestinationTooWide(dest));
            }
            cpu::without_interrupts(|| {
                // SDM 11.6.1: software waits for the delivery status to read idle before the next IPI.
                let deadline = crate::time::Deadline::after_us(10_000);
                while read(Reg::IcrLow) & (1 << 12) != 0 {
                    if deadline.expired() {
                        return Err(IpiError::Busy);
                    }
                    cpu::relax();
                }
                // SAFETY: ICR high holds the destination in bits 31:24; writing ICR low sends (SDM 11.6.1).
                // Interrupts are off, so no handler's IPI comes between the two writes.
                unsafe {
                    write(Reg::IcrHigh, dest << 24);
                    write(Reg::IcrLow, low);
                }
                Ok(())
            })?;
        }
        None => return Err(IpiError::NoApic),
    }
    Ok(())
}

/// Sends a fixed, physical-destination, edge interrupt on `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    if let Err(e) = try_send_ipi(apic_id, vector) {
        let why = match e {
            IpiError::NoApic => "no local APIC",
            IpiError::DestinationTooWide(_) => "APIC ID beyond an xAPIC destination",
            IpiError::Busy => "ICR busy for 10 ms",
        };
        crate::warn!("IPI {=u8:#x} to APIC {=u32} not sent: {=str}", vector, apic_id, why);
    }
}

/// [`send_ipi`], saying why it could not be sent.
pub fn try_send_ipi(apic_id: u32, vector: u8) -> Result<(), IpiError> {
    // Delivery mode 000 (fixed), destination mode 0 (physical), level assert, edge (SDM Figure 11-12).
    send_icr(apic_id, (1 << 14) | u32::from(vector))
}

/// INIT (delivery mode 101b, level assert, level trigger: Linux's APIC_INT_LEVELTRIG | APIC_INT_ASSERT |
/// APIC_DM_INIT) to `apic_id` (SDM 9.4.4.1, "Typical BSP Initialization Sequence").
pub fn send_init(apic_id: u32) -> Result<(), IpiError> {
    send_icr(apic_id, 0xC500)
}

/// INIT level de-assert (SDM 11.6.1: only for Pentium and P6; harmless since). Not in x2APIC mode, which
/// does not support it (SDM 11.12.9 footnote: "INIT Level De-assert is not supported").
pub fn send_init_deassert(apic_id: u32) -> Result<(), IpiError> {
    if mode() == Some(Mode::X2Apic) {
        return Ok(());
    }
    send_icr(apic_id, 0x8500)
}

/// Start-up IPI (delivery mode 110b) with `page` (the start page: physical address `page << 12`, below
/// 1 MiB) to `apic_id` (SDM 9.4.4.1).
pub fn send_startup(apic_id: u32, page: u8) -> Result<(), IpiError> {
    send_icr(apic_id, 0x4600 | u32::from(page))
}

/// Reads the Error Status Register after writing it (SDM 11.5.3: the write latches the errors since).
pub fn read_errors() -> u32 {
    // SAFETY: writing ESR only latches its error bits.
    unsafe { write(Reg::Esr, 0) };
    read(Reg::Esr)
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
    fire_timer_after(TIMER_VECTOR, 1);
}

/// The LAPIC timer's count rate at divide by 1 (ticks per microsecond), measured against the TSC over
/// about `window_us` with its interrupt masked; the timer is left stopped. Each end is bracketed by TSC
/// reads around its register access (a trap under a hypervisor, tens of microseconds under a slow one),
/// and the midpoints are taken. `None` before [`init`] or if it does not count.
pub fn timer_ticks_per_us(window_us: u64) -> Option<u64> {
    mode()?;
    // SAFETY: the timer LVT is masked (bit 16) before the count starts, so the countdown interrupts
    // nothing; divide configuration 1011b is "divide by 1" (SDM Figure 11-10).
    unsafe {
        write(Reg::LvtTimer, 1 << 16);
        write(Reg::TimerDivide, 0b1011);
    }
    let a0 = cpu::rdtsc();
    // SAFETY: as above; writing the initial count starts the countdown (SDM 11.5.4).
    unsafe { write(Reg::TimerInitial, u32::MAX) };
    let a1 = cpu::rdtsc();
    crate::time::delay_us(window_us);
    let b0 = cpu::rdtsc();
    let counted = u32::MAX - read(Reg::TimerCurrent);
    let b1 = cpu::rdtsc();
    // SAFETY: as above: an initial count of 0 stops the (masked) timer.
    unsafe { write(Reg::TimerInitial, 0) };
    let tsc = cpu::tsc_mid(b0, b1).saturating_sub(cpu::tsc_mid(a0, a1)).max(1);
    let rate = counted as u128 * crate::time::tsc_per_us() as u128 / tsc as u128;
    (counted > 0).then_some((rate as u64).max(1))
}

/// Arms the LAPIC timer to fire once on `vector` after `ticks` ticks at divide by 1 (SDM 11.5.4). Refused
/// (false) for an exception vector (below 32) or before [`init`].
pub fn fire_timer_after(vector: u8, ticks: u32) -> bool {
    if vector < 32 || mode().is_none() {
        return false;
    }
    // SAFETY: an unmasked one-shot LVT with an interrupt vector (32 or above), which the dispatcher counts
    // (its owner's, or as unowned) and ends with EOI; divide configuration 1011b is "divide by 1" (SDM
    // Figure 11-10); the initial count, written last, starts the countdown.
    unsafe {
        write(Reg::TimerDivide, 0b1011);
        write(Reg::LvtTimer, vector as u32);
        write(Reg::TimerInitial, ticks.max(1));
    }
    true
}

/// Whether the LAPIC timer is still counting down (its current count is not 0: SDM 11.5.4).
pub fn timer_pending() -> bool {
    read(Reg::TimerCurrent) != 0
}

/// Stops the LAPIC timer and masks its LVT; returns whether its count had run out (SDM 11.5.4: a
/// one-shot's current count stays 0). Under QEMU a count that reads 0 may not have delivered its
/// interrupt yet (the timer's callback runs in the main loop), and this cancel then loses it: a caller
/// that must know fences first (`time::timers_run_by`).
pub fn cancel_timer() -> bool {
    let ran_out = !timer_pending();
    // SAFETY: an initial count of 0 stops the timer and a masked LVT (bit 16) delivers nothing (SDM 11.5.4).
    unsafe {
        write(Reg::TimerInitial, 0);
        write(Reg::LvtTimer, (1 << 16) | TIMER_VECTOR as u32);
    }
    ran_out
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
