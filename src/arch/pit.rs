//! TSC calibration against the 8254 PIT channel 2 (1.193182 MHz), reading the counter itself rather than
//! waiting for OUT, so a short window still counts exactly (Linux's quick_pit_calibrate does the same).

use super::cpu;
use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;

/// PIT ticks in one measurement: 0.5 ms (issue 16: 2 ms before, 2.1 ms of every boot's guest time under TCG,
/// now 0.6). Both ends are read exactly (a latched count, one tick = 838 ns), so the count contributes at
/// most 2 ticks of 597 (0.34 %); the TSC brackets each latch within the few hundred nanoseconds a port
/// read takes under TCG, the midpoint of a bracket is the latch to within half of it, and a measurement
/// whose brackets add up to more than [`MAX_BRACKET_PARTS`] of the window is taken again: together under
/// 0.6 % when a measurement meets that cap, far inside what the timeouts and windows built on it allow
/// for (the tightest, the e1000e throttle fence, has 100 us of slack on 128 us). Where port reads trap
/// slowly enough that none of the [`TRIES`] does, the one with the smallest brackets is kept (its error
/// is then up to half of those brackets over the window).
const WINDOW_TICKS: u16 = 597;
/// A measurement is kept only if its two brackets together are at most 1/this of the window (0.5 %).
const MAX_BRACKET_PARTS: u64 = 200;
/// Measurements tried before the best one is taken anyway.
const TRIES: usize = 4;
/// Counter reads without progress before the PIT is taken as absent (reads of a missing PIT give
/// 0xFFFF for ever); far more than the ~1000 reads one window takes.
const MAX_STALLED_READS: u32 = 1_000_000;

/// One latched read of channel 2's count, with the TSC read just before and just after it.
struct Reading {
    count: u16,
    tsc_before: u64,
    tsc_after: u64,
}

/// Latches and reads channel 2's count (8254 data sheet: Counter Latch Command, lobyte then hibyte).
fn read_count() -> Reading {
    let tsc_before = cpu::rdtsc();
    // SAFETY: port 0x43 is the PIT mode/command register and 0x42 channel 2's data port; a latch command
    // and two reads change nothing but channel 2's read sequence, which only this module uses.
    let count = unsafe {
        Port::<u8>::new(0x43).write(0x80); // channel 2, counter latch
        let mut ch2 = Port::<u8>::new(0x42);
        let lo = ch2.read();
        let hi = ch2.read();
        u16::from_le_bytes([lo, hi])
    };
    Reading { count, tsc_before, tsc_after: cpu::rdtsc() }
}

/// One measurement: (TSC ticks per PIT window, the two brackets added up). `None` when the counter
/// does not move.
fn measure() -> Option<(u64, u64)> {
    // SAFETY: port 0x43 is the PIT mode/command register and 0x42 channel 2's data port (the speaker
    // channel, whose output is kept off through port 0x61).
    unsafe {
        Port::<u8>::new(0x43).write(0xB0); // channel 2, lobyte/hibyte, mode 0, binary
        let mut ch2 = Port::<u8>::new(0x42);
        // Counting down from 0xFFFF: 55 ms before it wraps, far beyond one window.
        ch2.write(0xFF);
        ch2.write(0xFF);
    }
    let start = read_count();
    let mut stalled = 0u32;
    let end = loop {
        let r = read_count();
        if start.count.wrapping_sub(r.count) >= WINDOW_TICKS {
            break r;
        }
        stalled += 1;
        if stalled > MAX_STALLED_READS {
            return None;
        }
    };
    let ticks = start.count.wrapping_sub(end.count) as u64;
    let mid = |r: &Reading| cpu::tsc_mid(r.tsc_before, r.tsc_after);
    let tsc = mid(&end).saturating_sub(mid(&start));
    let bracket = (start.tsc_after - start.tsc_before) + (end.tsc_after - end.tsc_before);
    // Scale to exactly WINDOW_TICKS so measurements compare; ticks is WINDOW_TICKS or a tick more.
    Some((tsc * WINDOW_TICKS as u64 / ticks.max(1), bracket))
}

/// TSC ticks per microsecond, measured over 0.5 ms of PIT time; `None` when the PIT does not count (no
/// PIT, or a gate that never opens).
pub fn tsc_per_us() -> Option<u64> {
    // SAFETY: port 0x61 is the NMI status/control port of every PC; only bit 0 (channel 2 gate) and bit 1
    // (speaker data, kept off) are changed, and its old value is restored below.
    let gate = unsafe {
        let mut ctrl = Port::<u8>::new(0x61);
        let gate = ctrl.read();
        ctrl.write((gate & !0x02) | 0x01); // gate on, speaker off
        gate
    };
    let mut best: Option<(u64, u64)> = None;
    for _ in 0..TRIES {
        let Some((tsc, bracket)) = measure() else { break };
        if best.is_none_or(|(_, b)| bracket < b) {
            best = Some((tsc, bracket));
        }
        if bracket * MAX_BRACKET_PARTS <= tsc {
            break;
        }
    }
    // SAFETY: as above; the value read before is written back.
    unsafe { Port::<u8>::new(0x61).write(gate) };
    let (tsc, _) = best?;
    // ticks per us = tsc / (WINDOW_TICKS / PIT_HZ s), in u128 so a preempted window cannot overflow.
    let rate = tsc as u128 * PIT_HZ as u128 / (WINDOW_TICKS as u128 * 1_000_000);
    Some((rate as u64).max(1))
}
