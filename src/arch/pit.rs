//! TSC calibration against the 8254 PIT channel 2 (1.193182 MHz), the way PC firmware does it.

use super::cpu;
use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;

/// TSC ticks per microsecond, measured over `ms` milliseconds of PIT time; `None` when the PIT does not
/// count (no PIT, or a gate that never opens).
pub fn tsc_per_us(ms: u64) -> Option<u64> {
    let count = (PIT_HZ * ms / 1000).min(0xFFFF) as u16;
    // SAFETY: ports 0x42/0x43/0x61 are the PIT channel 2 and the NMI status/control port of every PC; we
    // only use channel 2 (the speaker channel) with the speaker output off.
    unsafe {
        let mut ctrl = Port::<u8>::new(0x61);
        let gate = ctrl.read();
        ctrl.write((gate & !0x02) | 0x01); // gate on, speaker off
        Port::<u8>::new(0x43).write(0xB0); // channel 2, lobyte/hibyte, mode 0, binary
        let mut ch2 = Port::<u8>::new(0x42);
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        let start = cpu::rdtsc();
        let mut spins = 0u64;
        while ctrl.read() & 0x20 == 0 {
            spins += 1;
            if spins > 50_000_000 {
                ctrl.write(gate);
                return None;
            }
        }
        let end = cpu::rdtsc();
        ctrl.write(gate);
        let us = count as u64 * 1_000_000 / PIT_HZ;
        Some(((end - start) / us.max(1)).max(1))
    }
}
