//! Intel 82540EM (QEMU's `e1000`, the Bochs emulator's NIC): one interrupt cause raised through ICS and
//! delivered on INTx, its only mode (no capabilities at all: devices-2.md section 4.1).
//!
//! The interrupt registers are the e1000e's (ICR, ICS, IMS, IMC at the same offsets), the rest is not: no
//! MSI or MSI-X, so no IVAR and no EIAC, and CTRL.RST is no reset on QEMU (stored without the bit,
//! devices-2.md section 4.4) and on the 82540EM must go through the I/O BAR (Linux's e1000_reset_hw),
//! which QEMU and Bochs implement as a dummy. The driver therefore resets nothing: it stops the receive
//! and transmit units, masks and clears every cause, and sets the throttle interval, which is all that
//! decides when this device interrupts.
//!
//! The cause is TXDW (transmit descriptor written back): with the transmitter off nothing but an ICS
//! write sets it, on QEMU, on Bochs and on the chip. LSC, which the e1000e driver uses, is set by the
//! device itself on QEMU 500 ms after a PHY auto-negotiation restart and on hardware whenever a cable
//! moves (devices-2.md section 4.2): an interrupt the check did not ask for. The INTx handler asks
//! Status.Interrupt where the function has Interrupt Disable (QEMU); Bochs' e1000 has neither (PCI 2.3
//! added both) and leaves Status.Interrupt clear while it asserts, so there the handler reads ICR (as
//! Linux's e1000_intr does) and claims the interrupt when TXDW is set; ICR bit 31, which Bochs sets with
//! any cause and QEMU never (section 4.5), is not looked at.

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::irq::intx::{IntxAck, IntxCause};
use crate::modes::DeviceIrq;

/// PCI vendor:device of the 82540EM.
pub const ID: (u16, u16) = (0x8086, 0x100E);

/// Size of the memory BAR (BAR0) holding the registers: 128 KiB (8254x SDM table 4-2; QEMU's
/// `PNPMMIO_SIZE`).
pub const BAR0_SIZE: u64 = 0x2_0000;

/// Register offsets in BAR0 (8254x SDM section 13.4; all 32-bit, which QEMU and Bochs require).
pub mod reg {
    /// Device Control (13.4.1). Not written: its RST bit is no reset on QEMU.
    pub const CTRL: u64 = 0x0000;
    /// Device Status (13.4.2), read to flush posted writes, as Linux's E1000_WRITE_FLUSH does.
    pub const STATUS: u64 = 0x0008;
    /// Interrupt Cause Read (13.4.17): cleared on read, and a 1 written clears that bit.
    pub const ICR: u64 = 0x00C0;
    /// Interrupt Throttling (13.4.18): minimum gap between interrupts, in 256 ns units.
    pub const ITR: u64 = 0x00C4;
    /// Interrupt Cause Set (13.4.19): a 1 written sets that cause in ICR.
    pub const ICS: u64 = 0x00C8;
    /// Interrupt Mask Set/Read (13.4.20): a 1 written enables that cause.
    pub const IMS: u64 = 0x00D0;
    /// Interrupt Mask Clear (13.4.21): a 1 written disables that cause.
    pub const IMC: u64 = 0x00D8;
    /// Receive Control (13.4.22): 0 turns the receiver off (EN, bit 1, clear).
    pub const RCTL: u64 = 0x0100;
    /// Transmit Control (13.4.33): 0 turns the transmitter off (EN, bit 1, clear).
    pub const TCTL: u64 = 0x0400;
}

/// Cause bits of ICR, ICS, IMS and IMC (8254x SDM table 13-63).
pub mod cause {
    /// Transmit descriptor written back: the cause msifw raises.
    pub const TXDW: u32 = 1 << 0;
    /// Link status change.
    pub const LSC: u32 = 1 << 2;
    /// MDI/O access complete.
    pub const MDAC: u32 = 1 << 9;
}

/// The cause raised for source 0.
const TRIGGER: u32 = cause::TXDW;

/// Throttle interval written to ITR, in 256 ns units: 500 = 128 us, the floor QEMU applies whatever ITR
/// says (`set_interrupt_cause`, devices-2.md section 4.3), so the chip behaves as QEMU does. Bochs has
/// no throttling.
pub const THROTTLE: u32 = 500;

/// [`THROTTLE`] in microseconds (rounded up).
pub const THROTTLE_US: u64 = (THROTTLE as u64 * 256).div_ceil(1000);

/// The register writes that leave the device unable to interrupt or do DMA, in order: every cause masked
/// first, so that nothing raised while the units stop reaches the line, the receiver and transmitter off
/// (a boot ROM's PXE attempt leaves both on, devices-2.md section 4.4), the throttle interval set, and the
/// causes left pending cleared last.
pub const QUIESCE: [(u64, u32); 5] = [
    (reg::IMC, u32::MAX),
    (reg::RCTL, 0),
    (reg::TCTL, 0),
    (reg::ITR, THROTTLE),
    (reg::ICR, u32::MAX),
];

/// The e1000 driver state.
#[derive(Debug)]
pub struct E1000 {
    regs: MmioWindow,
    /// The cause is enabled in IMS (between [`E1000::enable_cause`] and [`InterruptSource::stop`]).
    started: bool,
}

impl E1000 {
    /// Maps BAR0, checks that the device answers, and quiesces it ([`QUIESCE`]).
    pub fn new(function: &Function) -> Result<E1000, DriverError> {
        let bar0 = function.bar(0).ok_or(DriverError::Bar(0))?;
        let regs = bar::window(function.bdf, bar0).map_err(|_| DriverError::Bar(0))?;
        if regs.len() < BAR0_SIZE {
            return Err(DriverError::Bar(0));
        }
        let status = regs.read32(reg::STATUS);
        if status == u32::MAX {
            return Err(DriverError::Unexpected("STATUS", status as u64));
        }
        let this = E1000 {
            regs,
            started: false,
        };
        this.quiesce();
        Ok(this)
    }

    /// Writes [`QUIESCE`], then reads STATUS so the writes have reached the device.
    fn quiesce(&self) {
        for (offset, value) in QUIESCE {
            self.regs.write32(offset, value);
        }
        let _ = self.regs.read32(reg::STATUS);
    }

    /// Enables the one cause (call once the interrupt mode is set up): IMS = TXDW. Nothing is pending
    /// after [`QUIESCE`], so this raises nothing.
    pub fn enable_cause(&mut self) {
        self.regs.write32(reg::IMS, TRIGGER);
        self.started = true;
    }
}

impl Driver for E1000 {
    const NAME: &'static str = "e1000";
    /// INTx, the only mode: one line.
    const VECTORS: u16 = 1;
    const SOURCES: usize = 1;

    fn matches(f: &Function) -> bool {
        (f.vendor, f.device) == ID
    }

    fn start(
        irq: &mut IrqRequest<'_>,
    ) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        // Quiesced before its line is enabled, so a level a previous owner left asserted never reaches
        // the handler; the cause is enabled once the line is.
        let mut dev = E1000::new(irq.function())?;
        let vectors = irq.enable(Self::VECTORS)?;
        dev.enable_cause();
        Ok((dev, vectors))
    }
}

impl InterruptSource for E1000 {
    fn sources(&self) -> usize {
        usize::from(self.started)
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources() {
            return Err(DriverError::NoSuchSource(i));
        }
        // 8254x SDM 13.4.19: writing 1 to an ICS bit sets the cause; with IMS enabling it the device
        // asserts INTA# (QEMU raises at once unless inside the throttle window, then when it ends).
        self.regs.write32(reg::ICS, TRIGGER);
        Ok(())
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources() {
            return Err(DriverError::NoSuchSource(i));
        }
        // 8254x SDM 13.4.17: writing 1 to an ICR bit clears it; with no enabled cause left the device
        // deasserts INTA#. Only this cause, so nothing else pending is lost.
        self.regs.write32(reg::ICR, TRIGGER);
        Ok(())
    }

    fn intx_ack(&self) -> Option<IntxAck> {
        // The write `acknowledge` makes, and nothing else.
        IntxAck::new(&self.regs, reg::ICR, TRIGGER)
    }

    fn intx_cause(&self) -> Option<IntxCause> {
        // 8254x SDM 13.4.17: reading ICR returns the causes and clears them, deasserting INTA#; the
        // handler reads it only for a function without Interrupt Disable (Bochs), and TXDW is the only
        // cause enabled.
        IntxCause::new(&self.regs, reg::ICR, TRIGGER)
    }

    fn min_interval_us(&self) -> u64 {
        // A second trigger inside the throttle window is postponed to its end, not lost or doubled
        // (QEMU's e1000_mit_timer re-evaluates the level once): the gap keeps a measured arrival time the
        // device's own and not the window's.
        THROTTLE_US
    }

    fn stop(&mut self) -> Result<(), DriverError> {
        self.quiesce();
        self.started = false;
        Ok(())
    }

    fn reinitialize(&mut self, _vectors: usize) -> Result<(), DriverError> {
        // A reset of the function (bus reset: QEMU's e1000_reset) cleared IMS and ITR; the units are off.
        self.quiesce();
        self.enable_cause();
        Ok(())
    }
}

impl Drop for E1000 {
    fn drop(&mut self) {
        self.quiesce();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiesce_masks_first_and_clears_last() {
        let at = |r: u64| QUIESCE.iter().position(|w| w.0 == r).unwrap();
        assert_eq!(
            QUIESCE[0],
            (reg::IMC, u32::MAX),
            "every cause masked before anything else"
        );
        assert_eq!(
            QUIESCE[QUIESCE.len() - 1],
            (reg::ICR, u32::MAX),
            "pending causes cleared last (write 1 to clear)"
        );
        assert!(
            at(reg::RCTL) < at(reg::ICR) && at(reg::TCTL) < at(reg::ICR),
            "a cause the stopping units raise is cleared too"
        );
        assert_eq!(
            QUIESCE[at(reg::RCTL)].1 & 0x2,
            0,
            "receiver enable (RCTL.EN) clear"
        );
        assert_eq!(
            QUIESCE[at(reg::TCTL)].1 & 0x2,
            0,
            "transmitter enable (TCTL.EN) clear"
        );
        assert!(
            QUIESCE
                .iter()
                .all(|w| w.0 != reg::IMS && w.0 != reg::ICS && w.0 != reg::CTRL),
            "no cause enabled or set, CTRL left alone"
        );
    }

    #[test]
    fn throttle_is_qemus_floor() {
        assert_eq!(THROTTLE_US, 128);
        assert_eq!(
            TRIGGER & (cause::LSC | cause::MDAC),
            0,
            "not a cause the device raises on its own"
        );
    }
}
