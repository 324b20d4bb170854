//! Time from the TSC, calibrated once against the PIT.

use crate::arch::{cpu, pit};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static TSC_PER_US: AtomicU64 = AtomicU64::new(1000);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

static CALIBRATED: AtomicBool = AtomicBool::new(false);

/// Measures the TSC rate (2 ms against PIT channel 2, see [`pit::tsc_per_us`]) and records the boot instant. Without a PIT the
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
pub fn now_us() -> u64 {
    cpu::rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed)) / tsc_per_us()
}

/// A point in time `us` microseconds from now.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    /// `us` microseconds from now.
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
