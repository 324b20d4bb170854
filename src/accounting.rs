//! Counts of configuration-space and MMIO accesses per function and phase, kept by the accessor layer
//! (`bus::pci::config` and `arch::mmio`). Under a hypervisor every one of them is a trap, so the counts
//! are what a VMM pays for each phase; `cargo run --release -- bench` reports them per function.
//!
//! Lock-free (the INTx handler reads configuration space in interrupt context): an open-addressed table
//! of atomic keys, each with atomic counters. Nothing is counted until a phase is set.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// What the firmware is doing while an access is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Walking the buses: probing functions, reading headers and capabilities, sizing BARs.
    Enumeration = 0,
    /// Quieting every function, then setting up each driven device's interrupts.
    Setup = 1,
    /// The checks and scenarios (not part of the benchmark figures, counted for completeness).
    Checks = 2,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; PHASES] = [Phase::Enumeration, Phase::Setup, Phase::Checks];

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Enumeration => "enumeration",
            Phase::Setup => "setup",
            Phase::Checks => "checks",
        }
    }
}

/// The kind of an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Configuration-space read (ECAM load, or an 0xCF8/0xCFC pair).
    ConfigRead = 0,
    /// Configuration-space write.
    ConfigWrite = 1,
    /// MMIO read of one of the function's BARs (registers, MSI-X table, PBA).
    MmioRead = 2,
    /// MMIO write of one of the function's BARs.
    MmioWrite = 3,
}

const PHASES: usize = 3;
const KINDS: usize = 4;
/// Table size: every function and every probed absent one of 32 buses fits (32 x 32 x 2 < 2048 + room).
const SLOTS: usize = 4096;
/// Sentinel for "not counting".
const OFF: u8 = u8::MAX;

static PHASE: AtomicU8 = AtomicU8::new(OFF);
/// Slot keys: 0 is empty, otherwise the function's 16-bit routing ID + 1.
static KEYS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
static COUNTS: [[AtomicU32; PHASES * KINDS]; SLOTS] = [const { [const { AtomicU32::new(0) }; PHASES * KINDS] }; SLOTS];
/// Accesses not counted because the table was full (reported, never silently lost).
static DROPPED: AtomicU32 = AtomicU32::new(0);

/// TSC ticks spent in writes to a function's Command register during enumeration and setup, and how many
/// there were: QEMU rebuilds its whole address space (every device's regions) on each one that changes decoding,
/// in the writing vCPU's thread, so this is the guest time those rebuilds take.
static COMMAND_TICKS: AtomicU64 = AtomicU64::new(0);
static COMMAND_WRITES: AtomicU32 = AtomicU32::new(0);

/// Whether Command-register writes are timed now: during enumeration and setup (the bench's scale figure
/// is their time).
pub fn times_command_writes() -> bool {
    matches!(PHASE.load(Ordering::Relaxed), p if p == Phase::Enumeration as u8 || p == Phase::Setup as u8)
}

/// Adds one timed Command-register write of `ticks` (made while [`times_command_writes`]).
pub fn command_write(ticks: u64) {
    COMMAND_TICKS.fetch_add(ticks, Ordering::Relaxed);
    COMMAND_WRITES.fetch_add(1, Ordering::Relaxed);
}

/// Ticks spent in Command-register writes during enumeration and setup, and their number.
pub fn command_writes() -> (u64, u32) {
    (COMMAND_TICKS.load(Ordering::Relaxed), COMMAND_WRITES.load(Ordering::Relaxed))
}

/// Counts accesses from now on under `phase`.
pub fn set_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::Relaxed);
}

/// Stops counting.
pub fn stop() {
    PHASE.store(OFF, Ordering::Relaxed);
}

/// The 16-bit routing ID of bus/device/function (PCIe 2.2.6.2): the key of a function's counters.
pub const fn routing_id(bus: u8, dev: u8, func: u8) -> u16 {
    (bus as u16) << 8 | ((dev as u16) & 31) << 3 | (func as u16) & 7
}

fn slot(id: u16, insert: bool) -> Option<usize> {
    let key = id as u32 + 1;
    // Fibonacci hashing spreads the dense routing IDs; linear probing finds the slot.
    let start = ((id as u32).wrapping_mul(0x9E37_79B9) >> 20) as usize % SLOTS;
    for i in 0..SLOTS {
        let s = (start + i) % SLOTS;
        match KEYS[s].load(Ordering::Relaxed) {
            k if k == key => return Some(s),
            0 if insert => match KEYS[s].compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(s),
                Err(k) if k == key => return Some(s),
                Err(_) => continue,
            },
            0 => return None,
            _ => continue,
        }
    }
    None
}

/// Counts one access of `kind` to the function with routing ID `id`, if a phase is set.
#[inline]
pub fn count(id: u16, kind: Kind) {
    let phase = PHASE.load(Ordering::Relaxed);
    if phase == OFF {
        return;
    }
    match slot(id, true) {
        Some(s) => {
            COUNTS[s][phase as usize * KINDS + kind as usize].fetch_add(1, Ordering::Relaxed);
        }
        None => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The counts of one function in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Configuration reads.
    pub config_reads: u32,
    /// Configuration writes.
    pub config_writes: u32,
    /// MMIO reads.
    pub mmio_reads: u32,
    /// MMIO writes.
    pub mmio_writes: u32,
}

impl Counts {
    /// All four added up.
    pub fn total(&self) -> u64 {
        self.config_reads as u64 + self.config_writes as u64 + self.mmio_reads as u64 + self.mmio_writes as u64
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.config_reads += other.config_reads;
        self.config_writes += other.config_writes;
        self.mmio_reads += other.mmio_reads;
        self.mmio_writes += other.mmio_writes;
    }
}

/// What was counted for routing ID `id` in `phase` (all zero if nothing was).
pub fn counts(id: u16, phase: Phase) -> Counts {
    let Some(s) = slot(id, false) else { return Counts::default() };
    let c = |k: Kind| COUNTS[s][phase as usize * KINDS + k as usize].load(Ordering::Relaxed);
    Counts {
        config_reads: c(Kind::ConfigRead),
        config_writes: c(Kind::ConfigWrite),
        mmio_reads: c(Kind::MmioRead),
        mmio_writes: c(Kind::MmioWrite),
    }
}

/// Every routing ID with counts, in no particular order.
pub fn ids() -> impl Iterator<Item = u16> {
    KEYS.iter().filter_map(|k| match k.load(Ordering::Relaxed) {
        0 => None,
        k => Some((k - 1) as u16),
    })
}

/// Accesses that found the table full.
pub fn dropped() -> u32 {
    DROPPED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test owns the global table (tests run in parallel threads of one process).
    #[test]
    fn counts_per_function_and_phase_only_while_a_phase_is_set() {
        let a = routing_id(0, 2, 0);
        let b = routing_id(0x12, 31, 7);
        assert_eq!(b, 0x12ff);
        count(a, Kind::ConfigRead);
        assert_eq!(counts(a, Phase::Enumeration), Counts::default(), "counted before a phase was set");
        set_phase(Phase::Enumeration);
        count(a, Kind::ConfigRead);
        count(a, Kind::ConfigRead);
        count(b, Kind::MmioWrite);
        set_phase(Phase::Setup);
        count(a, Kind::ConfigWrite);
        count(a, Kind::MmioRead);
        stop();
        count(a, Kind::MmioRead);
        assert_eq!(counts(a, Phase::Enumeration), Counts { config_reads: 2, ..Counts::default() });
        assert_eq!(counts(a, Phase::Setup), Counts { config_writes: 1, mmio_reads: 1, ..Counts::default() });
        assert_eq!(counts(b, Phase::Enumeration).mmio_writes, 1);
        assert_eq!(counts(routing_id(9, 9, 1), Phase::Setup), Counts::default());
        let mut seen: std::vec::Vec<u16> = ids().collect();
        seen.sort();
        assert_eq!(seen, [a, b]);
        // Filling every slot: the rest are dropped and counted as dropped, not lost silently.
        set_phase(Phase::Checks);
        for id in 0..=u16::MAX {
            count(id, Kind::ConfigRead);
        }
        stop();
        assert_eq!(ids().count(), SLOTS);
        assert_eq!(dropped() as usize, 0x1_0000 - SLOTS);
    }
}
