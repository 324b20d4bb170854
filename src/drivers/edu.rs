//! QEMU's edu device (hw/misc/edu.c): interrupts raised by writing the IRQ raise register.

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::bus::pci::config::PlatformConfig;
use crate::modes::DeviceIrq;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::enumerate::Function;
use crate::irq::intx::IntxAck;

/// Register offsets in BAR0 (4-byte accesses only below 0x80).
pub mod reg {
    /// Identification: 0xRRrr00ed.
    pub const ID: u64 = 0x00;
    /// Liveness check: reads back the inverse of what was written.
    pub const LIVENESS: u64 = 0x04;
    /// Interrupt status.
    pub const IRQ_STATUS: u64 = 0x24;
    /// Interrupt raise: `irq_status |= value`, then an MSI (every write) or INTx assert.
    pub const IRQ_RAISE: u64 = 0x60;
    /// Interrupt acknowledge: `irq_status &= ~value`.
    pub const IRQ_ACK: u64 = 0x64;
}

/// The status bit used for triggers.
pub const TRIGGER_BIT: u32 = 0x1;

/// The edu driver state.
#[derive(Debug)]
pub struct Edu {
    regs: MmioWindow,
}

impl Edu {
    /// Maps BAR0, checks identity and liveness, clears pending status.
    pub fn new(function: &Function) -> Result<Edu, DriverError> {
        let bar0 = function.bar(0).ok_or(DriverError::Bar(0))?;
        let regs = bar::window(function.bdf, bar0).map_err(|_| DriverError::Bar(0))?;
        if regs.len() < 0x100 {
            return Err(DriverError::Bar(0));
        }
        let id = regs.read32(reg::ID);
        if id & 0xFFFF != 0x00ED {
            return Err(DriverError::Unexpected("edu ID register", id as u64));
        }
        regs.write32(reg::LIVENESS, 0x1234_5678);
        let live = regs.read32(reg::LIVENESS);
        if live != !0x1234_5678u32 {
            return Err(DriverError::Unexpected("edu liveness", live as u64));
        }
        let pending = regs.read32(reg::IRQ_STATUS);
        regs.write32(reg::IRQ_ACK, pending);
        Ok(Edu { regs })
    }
}

impl InterruptSource for Edu {
    fn sources(&self) -> usize {
        1
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i != 0 {
            return Err(DriverError::NoSuchSource(i));
        }
        self.regs.write32(reg::IRQ_RAISE, TRIGGER_BIT);
        Ok(())
    }

    fn late_message_us(&self) -> Option<u64> {
        // QEMU's edu sends its message inside the raise write (edu_raise_irq -> msi_notify); its one timer,
        // the DMA engine's, is never started here.
        Some(0)
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i != 0 {
            return Err(DriverError::NoSuchSource(i));
        }
        self.regs.write32(reg::IRQ_ACK, TRIGGER_BIT);
        Ok(())
    }

    fn intx_ack(&self) -> Option<IntxAck> {
        // IRQ_ACK clears the status bit and lowers INTx when no bit is left (edu_lower_irq).
        IntxAck::new(&self.regs, reg::IRQ_ACK, TRIGGER_BIT)
    }
}

impl Drop for Edu {
    fn drop(&mut self) {
        let pending = self.regs.read32(reg::IRQ_STATUS);
        self.regs.write32(reg::IRQ_ACK, pending);
    }
}

impl Driver for Edu {
    const NAME: &'static str = "edu";
    const VECTORS: u16 = 1;
    const SOURCES: usize = 1;

    fn matches(f: &Function) -> bool {
        (f.vendor, f.device) == (0x1234, 0x11e8)
    }

    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        let dev = Edu::new(irq.function())?;
        let vectors = irq.enable(Self::VECTORS)?;
        Ok((dev, vectors))
    }
}
