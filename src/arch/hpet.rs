//! HPET (IA-PC HPET Specification 1.0a), used for one thing: a timer that fires once, soon, and says so
//! in its General Interrupt Status, without an interrupt. `time::timers_run_by` uses it as a fence: QEMU
//! emulates the HPET in its main loop with its timers on the same virtual-clock list as every device
//! model's (under KVM too, where the LAPIC timer is the kernel's), and runs that list in due order.
//!
//! The last comparator is taken, level-triggered (so its status bit latches), routed to the lowest ISA
//! line it allows, whose IOAPIC entry stays masked (the caller sees to it): it never interrupts.

use super::mmio::MmioWindow;

/// Register offsets (HPET 1.0a 2.3.1, Table 3).
mod reg {
    /// General Capabilities and ID: period in fs (63:32), last timer (12:8).
    pub const CAPABILITIES: u64 = 0x000;
    /// General Configuration: ENABLE_CNF (bit 0), LEG_RT_CNF (bit 1).
    pub const CONFIG: u64 = 0x010;
    /// General Interrupt Status: bit n latches timer n's level-triggered interrupt; write 1 to clear.
    pub const STATUS: u64 = 0x020;
    /// Main counter.
    pub const COUNTER: u64 = 0x0F0;
    /// Timer n configuration and capabilities.
    pub const fn timer_config(n: u8) -> u64 {
        0x100 + 0x20 * n as u64
    }
    /// Timer n comparator.
    pub const fn timer_comparator(n: u8) -> u64 {
        0x108 + 0x20 * n as u64
    }
}

/// Timer configuration bits (HPET 1.0a 2.3.8).
mod tn {
    /// Tn_INT_TYPE_CNF: level-triggered.
    pub const LEVEL: u64 = 1 << 1;
    /// Tn_INT_ENB_CNF.
    pub const ENABLE: u64 = 1 << 2;
    /// Tn_TYPE_CNF: periodic.
    pub const PERIODIC: u64 = 1 << 3;
    /// Tn_32MODE_CNF.
    pub const MODE32: u64 = 1 << 8;
    /// Tn_INT_ROUTE_CNF (13:9).
    pub const ROUTE_SHIFT: u64 = 9;
    pub const ROUTE_MASK: u64 = 0x1F << ROUTE_SHIFT;
    /// Tn_FSB_EN_CNF.
    pub const FSB: u64 = 1 << 14;
}

/// The HPET's register block size.
const BLOCK: u64 = 0x400;
/// How far ahead the comparator is set: a comparator QEMU finds already passed fires at once, one on
/// hardware would not until the counter wraps.
const LEAD_FS: u64 = 10_000_000_000; // 10 us

/// Why an HPET is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpetError {
    /// The block is not inside the identity-mapped uncached 3-4 GiB window, or not 1 KiB aligned.
    BaseUnmapped(u64),
    /// The capabilities register reads as absent or gives no usable period (fs).
    Absent(u64),
    /// The timer allows no ISA line (0-15) to route to.
    NoRoute(u32),
    /// The capabilities name a last timer whose registers lie beyond the 1 KiB block (HPET 1.0a 2.3.1:
    /// timers 0-23 fit).
    TimerOutsideBlock(u8),
}

impl core::fmt::Display for HpetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BaseUnmapped(b) => write!(f, "HPET block at {b:#x} is outside the uncached window or misaligned"),
            Self::Absent(c) => write!(f, "HPET capabilities {c:#x}: no HPET there"),
            Self::NoRoute(cap) => write!(f, "HPET timer routes {cap:#x} offer no ISA line"),
            Self::TimerOutsideBlock(n) => write!(f, "HPET capabilities name timer {n}, beyond the 1 KiB register block"),
        }
    }
}

/// The counter period (fs) and the last timer's index from General Capabilities and ID (HPET 1.0a 2.3.4):
/// the period non-zero and at most 100 ns (0x05F5E100 fs), the last timer's registers inside the block.
fn read_capabilities(caps: u64) -> Result<(u64, u8), HpetError> {
    let period_fs = caps >> 32;
    if caps == u64::MAX || period_fs == 0 || period_fs > 0x05F5_E100 {
        return Err(HpetError::Absent(caps));
    }
    let timer = ((caps >> 8) & 0x1F) as u8;
    if reg::timer_comparator(timer) + 8 > BLOCK {
        return Err(HpetError::TimerOutsideBlock(timer));
    }
    Ok((period_fs, timer))
}

/// One HPET, its last timer kept for [`Hpet::arm`].
#[derive(Debug, Clone, Copy)]
pub struct Hpet {
    regs: MmioWindow,
    timer: u8,
    route: u8,
    lead_ticks: u64,
}

impl Hpet {
    /// The HPET whose register block is at `base` (from a checksummed ACPI HPET table), with every timer
    /// a previous owner may have left running turned off.
    pub fn new(base: u64) -> Result<Hpet, HpetError> {
        if !(0xC000_0000..=0x1_0000_0000 - BLOCK).contains(&base) || !base.is_multiple_of(BLOCK) {
            return Err(HpetError::BaseUnmapped(base));
        }
        // SAFETY: the block lies in the identity-mapped uncached 3-4 GiB window (boot/pvh.s, checked
        // above); it comes from a checksummed ACPI table, nothing else in msifw uses the HPET, and its
        // registers affect no memory (its interrupts go to an IOAPIC input kept masked).
        let regs = unsafe { MmioWindow::new(base, BLOCK) };
        let (period_fs, timer) = read_capabilities(regs.read64(reg::CAPABILITIES))?;
        let routes = (regs.read64(reg::timer_config(timer)) >> 32) as u32;
        let isa = routes & 0xFFFF;
        if isa == 0 {
            return Err(HpetError::NoRoute(routes));
        }
        // A previous owner's timers (a crashed kernel's) must not start firing when `arm` turns the main
        // counter on: every timer's interrupt and FSB delivery off, every status bit cleared, and legacy
        // replacement routing off (HPET 1.0a 2.3.5, 2.3.8).
        for n in 0..=timer {
            let at = reg::timer_config(n);
            let config = regs.read64(at);
            regs.write64(at, config & !(tn::ENABLE | tn::FSB | tn::PERIODIC));
        }
        regs.write64(reg::STATUS, (1u64 << (u32::from(timer) + 1)) - 1);
        let general = regs.read64(reg::CONFIG);
        regs.write64(reg::CONFIG, general & !0b10);
        Ok(Hpet { regs, timer, route: isa.trailing_zeros() as u8, lead_ticks: LEAD_FS.div_ceil(period_fs) })
    }

    /// The ISA line (GSI) the timer is routed to; its IOAPIC entry must stay masked.
    pub fn route(&self) -> u8 {
        self.route
    }

    /// The timer index used.
    pub fn timer(&self) -> u8 {
        self.timer
    }

    /// Base address of the register block.
    pub fn base(&self) -> u64 {
        self.regs.base()
    }

    /// Sets the timer to fire once, [`LEAD_FS`] from now: main counter on, timer off, its status cleared,
    /// comparator set, then level-triggered one-shot on (HPET 1.0a 2.3.9.2.1: comparator before enable).
    pub fn arm(&self) {
        let config = self.regs.read64(reg::CONFIG);
        if config & 1 == 0 {
            self.regs.write64(reg::CONFIG, config | 1);
        }
        let at = reg::timer_config(self.timer);
        let base = self.regs.read64(at) & !(tn::ENABLE | tn::PERIODIC | tn::MODE32 | tn::FSB | tn::ROUTE_MASK);
        let off = base | tn::LEVEL | (self.route as u64) << tn::ROUTE_SHIFT;
        self.regs.write64(at, off);
        self.regs.write64(reg::STATUS, 1 << self.timer);
        let now = self.counter();
        self.regs.write64(reg::timer_comparator(self.timer), now.wrapping_add(self.lead_ticks));
        self.regs.write64(at, off | tn::ENABLE);
    }

    /// The main counter, read as two 32-bit halves (an HPET may take only 32-bit accesses, as QEMU 7.2's
    /// does, splitting a 64-bit read): high, low, high again, until the high half held still.
    /// A counter whose high half never holds still (a broken HPET) gives the last reading after 4 tries.
    fn counter(&self) -> u64 {
        let mut high = self.regs.read32(reg::COUNTER + 4);
        let mut low = 0;
        for _ in 0..4 {
            low = self.regs.read32(reg::COUNTER);
            let again = self.regs.read32(reg::COUNTER + 4);
            if again == high {
                break;
            }
            high = again;
        }
        u64::from(high) << 32 | u64::from(low)
    }

    /// Whether the armed timer has fired (its status bit latched).
    pub fn fired(&self) -> bool {
        self.regs.read64(reg::STATUS) & (1 << self.timer) != 0
    }

    /// Turns the timer off and clears its status (which lowers its line).
    pub fn disarm(&self) {
        let at = reg::timer_config(self.timer);
        let config = self.regs.read64(at);
        self.regs.write64(at, config & !tn::ENABLE);
        self.regs.write64(reg::STATUS, 1 << self.timer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// General Capabilities with QEMU's 10 ns period and `last` as the last timer.
    fn caps(last: u64) -> u64 {
        (10_000_000 << 32) | (last << 8)
    }

    #[test]
    fn a_last_timer_beyond_the_register_block_is_a_typed_error() {
        assert_eq!(read_capabilities(caps(2)), Ok((10_000_000, 2)), "QEMU's three timers");
        assert_eq!(read_capabilities(caps(23)), Ok((10_000_000, 23)), "timer 23 ends the 1 KiB block");
        // Its registers would be read at 0x400 and beyond: a panic of the bounds-checked window before.
        assert_eq!(read_capabilities(caps(24)), Err(HpetError::TimerOutsideBlock(24)));
        assert_eq!(read_capabilities(caps(31)), Err(HpetError::TimerOutsideBlock(31)));
        assert_eq!(read_capabilities(u64::MAX), Err(HpetError::Absent(u64::MAX)));
        assert_eq!(read_capabilities(2 << 8), Err(HpetError::Absent(2 << 8)), "no period");
    }
}
