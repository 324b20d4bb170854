//! Time from the TSC, calibrated once against the PIT; and fences that the machine's device-model timers
//! due by a given time have run ([`timers_run_by`]).

use crate::arch::{cpu, hpet, idt, lapic, pit};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static TSC_PER_US: AtomicU64 = AtomicU64::new(1000);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

static CALIBRATED: AtomicBool = AtomicBool::new(false);

/// TSC at the firmware's first instruction (boot/pvh.s), 0 until [`set_entry_tsc`].
static TSC_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Records the TSC the boot code read at the firmware's first instruction.
pub fn set_entry_tsc(tsc: u64) {
    TSC_AT_ENTRY.store(tsc, Ordering::Relaxed);
}

/// The TSC at the firmware's first instruction (the start of the bench's `firmware_ms`); the TSC now
/// where the boot code did not record it.
pub fn entry_tsc() -> u64 {
    match TSC_AT_ENTRY.load(Ordering::Relaxed) {
        0 => cpu::rdtsc(),
        t => t,
    }
}

/// Microseconds from the firmware's first instruction to TSC value `tsc`.
pub fn us_since_entry(tsc: u64) -> u64 {
    tsc.saturating_sub(entry_tsc()) / tsc_per_us()
}

/// Measures the TSC rate (0.5 ms against PIT channel 2, see [`pit::tsc_per_us`]) and records the boot instant. Without a PIT the
/// rate stays at an assumed 1 GHz, and [`calibrated`] says so (the report carries it as a problem).
pub fn calibrate() {
    TSC_AT_BOOT.store(cpu::rdtsc(), Ordering::Relaxed);
    if let Some(rate) = pit::tsc_per_us() {
        TSC_PER_US.store(rate, Ordering::Relaxed);
        CALIBRATED.store(true, Ordering::Relaxed);
    }
}

/// Whether [`calibrate`] measured the TSC rate (false: every timeout is off by an unknown factor).
pub fn calibrated() -> bool {
    CALIBRATED.load(Ordering::Relaxed)
}

/// TSC ticks per microsecond.
pub fn tsc_per_us() -> u64 {
    TSC_PER_US.load(Ordering::Relaxed)
}

/// Microseconds since [`calibrate`].
// Out of line, like `Deadline::after_us`: inlined at its 74 call sites it took 2.2 KB (issue 16); a call
// costs nothing next to what a time read is for.
#[inline(never)]
pub fn now_us() -> u64 {
    cpu::rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed)) / tsc_per_us()
}

/// A point in time `us` microseconds from now.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    /// `us` microseconds from now.
    #[inline(never)]
    pub fn after_us(us: u64) -> Self {
        Deadline(cpu::rdtsc().saturating_add(us.saturating_mul(tsc_per_us())))
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        cpu::rdtsc() >= self.0
    }
}

/// Polls `cond` until it holds or `us` microseconds pass. Returns whether it held.
pub fn wait_until(us: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Deadline::after_us(us);
    loop {
        if cond() {
            return true;
        }
        if deadline.expired() {
            return cond();
        }
        cpu::relax();
    }
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    let deadline = Deadline::after_us(us);
    while !deadline.expired() {
        cpu::relax();
    }
}

/// Guest time (us since boot) by which every timer of an emulator's device models that was due then is
/// known to have run (see [`timers_run_by`]).
static TIMERS_RUN_BY: AtomicU64 = AtomicU64::new(0);

/// How long [`timers_run_by`] waits for its timer (HPET or LAPIC) before giving up.
const TIMER_FENCE_TIMEOUT_US: u64 = 1_000_000;

/// Makes sure that whatever timers the machine's device models keep, due by guest time `t_us`, have run:
/// waits until `t_us`, then fires a timer once and waits until it has. A device model that moderates
/// interrupts with a timer (QEMU's e1000e throttle) acts when that timer *runs*, which on a loaded host
/// can be milliseconds after it was due. QEMU keeps its HPET's timers and (under TCG) the LAPIC timer on
/// the same virtual-clock list as every device model's and runs it in due order, so once the fence timer
/// has fired, every timer due before it has run. Under a hypervisor with an HPET table the HPET is used
/// (under KVM too); else the LAPIC timer (ordered under TCG only: KVM's LAPIC lives in the kernel). On
/// hardware it is a plain wait and one LAPIC timer interrupt.
///
/// Returns false if only the wait holds: no LAPIC yet, its timer did not interrupt within a second (this
/// time or an earlier one), or an earlier fence's timer interrupt is still pending with interrupts off.
pub fn timers_run_by(t_us: u64) -> bool {
    if TIMERS_RUN_BY.load(Ordering::Acquire) >= t_us {
        return true;
    }
    let now = now_us();
    delay_us(t_us.saturating_sub(now));
    // Without a LAPIC, or after a fence timed out once (the timer does not work here), it is a plain wait.
    if lapic::current_mode().is_none() || FENCE_FAILED.load(Ordering::Relaxed) {
        return false;
    }
    if let Some(hpet) = HPET.get() {
        let armed_at = now_us();
        hpet.arm();
        let ran = wait_until(TIMER_FENCE_TIMEOUT_US, || hpet.fired());
        hpet.disarm();
        return fenced(ran, armed_at);
    }
    // A timer interrupt still requested from an earlier fence (interrupts off since) would pass this one
    // before its own timer fired; with interrupts on it is taken at once.
    if !wait_until(10, || !lapic::requested(lapic::TIMER_VECTOR)) {
        return false;
    }
    let armed_at = now_us();
    let before = idt::interrupts(lapic::TIMER_VECTOR);
    lapic::fire_timer_once();
    // The interrupt is counted when taken; with interrupts off it waits in the IRR, which says as much.
    let ran = wait_until(TIMER_FENCE_TIMEOUT_US, || {
        idt::interrupts(lapic::TIMER_VECTOR) != before || lapic::requested(lapic::TIMER_VECTOR)
    });
    fenced(ran, armed_at)
}

fn fenced(ran: bool, armed_at: u64) -> bool {
    if ran {
        TIMERS_RUN_BY.fetch_max(armed_at, Ordering::AcqRel);
    } else {
        FENCE_FAILED.store(true, Ordering::Relaxed);
        crate::warn!("fence timer did not fire within {=u64} ms: device timer fences are plain waits from now", TIMER_FENCE_TIMEOUT_US / 1000);
    }
    ran
}

/// The HPET used for fences, once the platform has one (see [`use_hpet`]).
static HPET: spin::Once<hpet::Hpet> = spin::Once::new();

/// How fences are made, for the report: `"hpet"`, `"lapic-timer"` or `"wait"` (no LAPIC, or a fence
/// timed out).
pub fn fence_kind() -> &'static str {
    if FENCE_FAILED.load(Ordering::Relaxed) || lapic::current_mode().is_none() {
        "wait"
    } else {
        fence_timer()
    }
}

/// The timer fences use (or used, before one timed out): `"hpet"` or `"lapic-timer"`.
pub fn fence_timer() -> &'static str {
    if HPET.get().is_some() {
        "hpet"
    } else {
        "lapic-timer"
    }
}

/// Whether fences run through the HPET, whose order with the device models' timers holds under TCG and
/// KVM alike (and has not failed), on QEMU (its fw_cfg signature): the order is a fact of QEMU's main
/// loop, and the drivers' bounds on their late messages (`InterruptSource::late_message_us`) are facts
/// of QEMU's device models. Elsewhere (another hypervisor, real hardware) the windows that rely on them
/// keep their fixed lengths.
pub fn fences_ordered() -> bool {
    HPET.get().is_some() && !FENCE_FAILED.load(Ordering::Relaxed) && crate::arch::fwcfg::qemu()
}

/// Fences through `hpet` from now on, instead of the LAPIC timer: QEMU runs it in its main loop under KVM
/// as under TCG, so the fence holds under both.
pub fn use_hpet(hpet: hpet::Hpet) {
    HPET.call_once(|| hpet);
}

static FENCE_FAILED: AtomicBool = AtomicBool::new(false);

/// Whether a [`timers_run_by`] fence ever timed out (the report says so).
pub fn fence_failed() -> bool {
    FENCE_FAILED.load(Ordering::Relaxed)
}
