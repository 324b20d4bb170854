//! Intel 82574L (QEMU e1000e): interrupt causes raised through ICS (qemu-7.2-facts.md section 1).
//! In MSI-X mode IVAR routes RxQ0, RxQ1, TxQ0, TxQ1 and Other to entries 0-4.

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::bus::pci::config::PlatformConfig;
use crate::modes::{DeviceIrq, IrqMode};
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::enumerate::Function;

/// Register offsets in BAR0 (e1000_regs.h).
pub mod reg {
    /// Device Status.
    pub const STATUS: u64 = 0x0008;
    /// Interrupt Cause Read (write 1 to clear).
    pub const ICR: u64 = 0x00C0;
    /// Interrupt Cause Set.
    pub const ICS: u64 = 0x00C8;
    /// Interrupt Mask Set.
    pub const IMS: u64 = 0x00D0;
    /// Interrupt Mask Clear.
    pub const IMC: u64 = 0x00D8;
    /// Extended Interrupt Auto Clear.
    pub const EIAC: u64 = 0x00DC;
    /// Interrupt Vector Allocation.
    pub const IVAR: u64 = 0x00E4;
    /// Interrupt Throttling Rate (MSI, INTx).
    pub const ITR: u64 = 0x00C4;
    /// Extended Interrupt Throttle Rate of MSI-X vector n: EITR + 4n.
    pub const EITR: u64 = 0x00E8;
}

/// Throttle interval programmed into ITR and every EITR, in 256 ns units: 500 = 128 us, the smallest
/// value QEMU accepts (`E1000E_MIN_XITR`); a real 82574 honours it the same way.
pub const THROTTLE: u32 = 500;

/// [`THROTTLE`] in microseconds (rounded up).
pub const THROTTLE_US: u64 = (THROTTLE as u64 * 256).div_ceil(1000);

/// Added to [`THROTTLE_US`] when fencing the throttle timer: covers the guest's TSC calibration error
/// against the emulator's clock (a few percent at most) with room to spare.
const THROTTLE_SLACK_US: u64 = 100;

/// Cause bits.
pub mod cause {
    /// Link status change (an "other" cause).
    pub const LSC: u32 = 1 << 2;
    /// Receive queue 0.
    pub const RXQ0: u32 = 1 << 20;
    /// Receive queue 1.
    pub const RXQ1: u32 = 1 << 21;
    /// Transmit queue 0.
    pub const TXQ0: u32 = 1 << 22;
    /// Transmit queue 1.
    pub const TXQ1: u32 = 1 << 23;
    /// Other causes (MSI-X vector of LSC and friends).
    pub const OTHER: u32 = 1 << 24;
}

/// IVAR mapping RxQ0..Other to vectors 0..4, each with the valid bit (0x8): fields at shifts 0, 4, 8, 12, 16.
pub const IVAR_ALL_FIVE: u32 = 0x000C_BA98;

/// IVAR for the first `n` causes on vectors 0..n; the rest left invalid (never enabled in IMS either).
pub const fn ivar_for(n: usize) -> u32 {
    let mut ivar = 0;
    let mut i = 0;
    while i < n && i < 5 {
        ivar |= (0x8 | i as u32) << (4 * i);
        i += 1;
    }
    ivar
}

/// Causes raised for sources 0-4 in MSI-X mode (4 = LSC, delivered through Other).
const MSIX_CAUSES: [u32; 5] = [cause::RXQ0, cause::RXQ1, cause::TXQ0, cause::TXQ1, cause::LSC];

/// The e1000e driver state.
#[derive(Debug)]
pub struct E1000e {
    regs: MmioWindow,
    msix: bool,
    sources: usize,
    /// When each source was last triggered (us since boot), to keep [`InterruptSource::min_interval_us`].
    last_trigger: [Option<u64>; 5],
}

impl E1000e {
    /// Maps BAR0 and silences the device: all causes masked, pending causes cleared, no auto-clear.
    pub fn new(function: &Function) -> Result<E1000e, DriverError> {
        let bar0 = function.bar(0).ok_or(DriverError::Bar(0))?;
        let regs = bar::window(function.bdf, bar0).map_err(|_| DriverError::Bar(0))?;
        if regs.len() < 0x20000 {
            return Err(DriverError::Bar(0));
        }
        let status = regs.read32(reg::STATUS);
        if status == u32::MAX {
            return Err(DriverError::Unexpected("STATUS", status as u64));
        }
        let this = E1000e { regs, msix: false, sources: 0, last_trigger: [None; 5] };
        this.silence();
        Ok(this)
    }

    /// All causes masked and cleared, no auto-clear, and a known moderation interval on both QEMU and
    /// hardware: at most one interrupt per 128 us per vector.
    fn silence(&self) {
        self.regs.write32(reg::IMC, u32::MAX);
        self.regs.write32(reg::EIAC, 0);
        self.regs.write32(reg::ICR, u32::MAX);
        self.regs.write32(reg::ITR, THROTTLE);
        for n in 0..5 {
            self.regs.write32(reg::EITR + 4 * n, THROTTLE);
        }
    }

    /// Routes the five MSI-X causes to entries 0-4 (call after MSI-X is enabled with 5 vectors).
    pub fn use_msix(&mut self, vectors: usize) {
        self.msix = true;
        self.sources = vectors.min(5);
        self.regs.write32(reg::IVAR, ivar_for(self.sources));
        let mut ims = 0;
        for c in &MSIX_CAUSES[..self.sources] {
            ims |= if *c == cause::LSC { cause::LSC | cause::OTHER } else { *c };
        }
        self.regs.write32(reg::IMS, ims);
    }

    /// One interrupt source (MSI or INTx): LSC.
    pub fn use_single(&mut self) {
        self.msix = false;
        self.sources = 1;
        self.regs.write32(reg::IMS, cause::LSC);
    }

    /// Masks every cause at the device.
    pub fn quiesce(&mut self) {
        self.regs.write32(reg::IMC, u32::MAX);
        self.regs.write32(reg::ICR, u32::MAX);
    }
}

impl InterruptSource for E1000e {
    fn sources(&self) -> usize {
        self.sources
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources {
            return Err(DriverError::NoSuchSource(i));
        }
        // A caller that triggers the same source again too early is held back here rather than
        // provoking the throttle bug (callers driving several sources schedule around it). The interval
        // is not enough on its own: QEMU's throttle timer must also have *run*, which a loaded host can
        // delay by milliseconds, so the timers due by then are fenced too.
        if let Some(at) = self.last_trigger[i] {
            let since = crate::time::now_us().saturating_sub(at);
            crate::time::delay_us(self.min_interval_us().saturating_sub(since));
            crate::time::timers_run_by(at + THROTTLE_US + THROTTLE_SLACK_US);
        }
        let c = if self.msix { MSIX_CAUSES[i] } else { cause::LSC };
        self.regs.write32(reg::ICS, c);
        self.last_trigger[i] = Some(crate::time::now_us());
        Ok(())
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources {
            return Err(DriverError::NoSuchSource(i));
        }
        // Write-1-to-clear re-arms the cause (e1000e_set_icr); in MSI-X mode a read would not clear it.
        let c = if self.msix { MSIX_CAUSES[i] } else { cause::LSC };
        let extra = if c == cause::LSC { cause::OTHER } else { 0 };
        self.regs.write32(reg::ICR, c | extra);
        Ok(())
    }

    fn stop(&mut self) -> Result<(), DriverError> {
        self.silence();
        Ok(())
    }

    fn late_message_us(&self) -> Option<u64> {
        // This device's throttle timer (the hazard modes::msix's DISABLE_SETTLE_US is for, and the extra
        // message delivery's settle watches for): one per vector, armed with each message at most
        // THROTTLE_US (as programmed here) before it runs. Once the fence has run every timer due
        // THROTTLE_US + THROTTLE_SLACK_US after the last message (or the Function Mask), none is left.
        Some(THROTTLE_US + THROTTLE_SLACK_US)
    }

    fn reinitialize(&mut self, vectors: usize) -> Result<(), DriverError> {
        // A bus reset cleared IMS, IVAR and the throttle registers (qemu-7.2-facts.md section 1).
        self.silence();
        if self.msix {
            self.use_msix(vectors);
        } else {
            self.use_single();
        }
        Ok(())
    }

    fn intx_ack(&self) -> Option<crate::irq::intx::IntxAck> {
        // In INTx mode (LSC through IMS): the write-1-to-clear of LSC that `acknowledge` makes clears ICR,
        // and with no cause left QEMU lowers the line (e1000e_set_icr, e1000e_update_interrupt_state).
        if self.msix {
            return None;
        }
        crate::irq::intx::IntxAck::new(&self.regs, reg::ICR, cause::LSC | cause::OTHER)
    }

    fn min_interval_us(&self) -> u64 {
        // The throttle interval is 128 us. Re-triggering while its timer is pending (due, or due but not
        // yet run by QEMU's main loop) makes QEMU 7.2 postpone the message and then, because its
        // per-vector "postponed" flag is never cleared (eitr_intr_pending, removed in QEMU 8.0), send an
        // extra message every time that vector's throttle timer expires from then on. `trigger` fences
        // the timer (time::timers_run_by). Through the HPET that covers however late the host runs it,
        // and the interval only has to cover the throttle itself; otherwise (no HPET, and KVM's LAPIC
        // timer is not ordered with QEMU's) 1 ms leaves room for lateness, as far as a wait can.
        if crate::time::fences_ordered() {
            THROTTLE_US + THROTTLE_SLACK_US
        } else {
            1000
        }
    }
}

impl Drop for E1000e {
    fn drop(&mut self) {
        self.quiesce();
    }
}

impl Driver for E1000e {
    const NAME: &'static str = "e1000e";
    /// One per cause: RX queue 0 and 1, TX queue 0 and 1, other (link status).
    const VECTORS: u16 = 5;
    const SOURCES: usize = 5;

    fn matches(f: &Function) -> bool {
        (f.vendor, f.device) == (0x8086, 0x10d3)
    }

    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        let mut dev = E1000e::new(irq.function())?;
        let vectors = irq.enable(Self::VECTORS)?;
        if irq.mode() == IrqMode::Msix {
            dev.use_msix(vectors.vectors().len());
        } else {
            dev.use_single();
        }
        Ok((dev, vectors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ivar_maps_only_the_vectors_granted() {
        assert_eq!(ivar_for(5), IVAR_ALL_FIVE);
        assert_eq!(ivar_for(1), 0x8);
        assert_eq!(ivar_for(2), 0x98);
        assert_eq!(ivar_for(0), 0);
    }
}
