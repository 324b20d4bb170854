//! Masking: an interrupt raised while its vector is masked is not delivered, sets the Pending Bit, and
//! is delivered exactly once when the vector is unmasked (PCIe 4.0 6.1.4.5 and 7.7.2.5; Linux relies on
//! it in msi_set_affinity and VFIO relies on it when it masks around reconfiguration).

use super::{Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::modes::DeviceIrq;
use crate::time;

/// How long a masked interrupt is watched for (it must not arrive).
pub const MASKED_WATCH_US: u64 = 3_000;

/// Which mask is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// The entry's own Mask Bit (MSI-X Vector Control, or the MSI Mask Bits).
    PerVector,
    /// MSI-X Function Mask.
    Function,
}

impl Mask {
    /// Scenario name for a function in `mode`.
    pub fn scenario(self, mode: crate::modes::IrqMode) -> &'static str {
        match (self, mode) {
            (Mask::PerVector, crate::modes::IrqMode::Msi) => "msi-vector-mask",
            (Mask::PerVector, _) => "msix-vector-mask",
            (Mask::Function, _) => "msix-function-mask",
        }
    }
}

fn set<C: ConfigRegion>(irq: &mut DeviceIrq<'_, C>, mask: Mask, i: usize, on: bool) -> bool {
    match mask {
        Mask::PerVector => irq.mask(i, on),
        Mask::Function => irq.function_mask(on),
    }
}

/// For every source: mask, trigger, check nothing arrives and the pending bit is set, unmask, check
/// exactly one delivery and the pending bit clear, acknowledge.
pub fn run<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>, mask: Mask) -> Verdict {
    let n = source.sources().min(irq.vectors().len());
    let mut checked = 0;
    for i in 0..n {
        let vector = irq.vectors()[i];
        let before = irq.count(i);
        time::delay_us(source.min_interval_us());
        if !set(irq, mask, i, true) {
            return Verdict::new(Outcome::Skip, format_args!("entry {i} cannot be masked this way"));
        }
        if let Err(e) = source.trigger(i) {
            set(irq, mask, i, false);
            return Verdict::new(Outcome::Fail, format_args!("source {i}: trigger failed: {e}"));
        }
        // The device may raise the interrupt asynchronously (an NVMe completion comes from QEMU's main
        // loop): wait for the Pending Bit, or for a delivery that must not happen, then keep watching a
        // little longer for a late delivery.
        let supports_pending = irq.pending(i).is_some();
        let raised = time::wait_until(super::delivery::ARRIVAL_TIMEOUT_US, || {
            irq.count(i) != before || !supports_pending || irq.pending(i) == Some(true)
        });
        time::delay_us(MASKED_WATCH_US);
        let leaked = irq.count(i) - before;
        let pending = irq.pending(i);
        set(irq, mask, i, false);
        if leaked != 0 {
            return Verdict::new(Outcome::Fail, format_args!("entry {i} (vector {vector:#x}): {leaked} interrupt(s) delivered while masked"));
        }
        match pending {
            Some(true) => {}
            Some(false) => {
                let why = if raised { "cleared again" } else { "never set" };
                return Verdict::new(
                    Outcome::Fail,
                    format_args!("entry {i}: Pending Bit {why} while a masked interrupt was outstanding ({} ms)", super::delivery::ARRIVAL_TIMEOUT_US / 1000),
                );
            }
            None => return Verdict::new(Outcome::Skip, format_args!("the function has no pending bits")),
        }
        if !time::wait_until(super::delivery::ARRIVAL_TIMEOUT_US, || irq.count(i) > before) {
            return Verdict::new(Outcome::Fail, format_args!("entry {i} (vector {vector:#x}): pending interrupt not delivered on unmask"));
        }
        time::delay_us(super::delivery::SETTLE_US);
        let got = irq.count(i) - before;
        if got != 1 {
            return Verdict::new(Outcome::Fail, format_args!("entry {i} (vector {vector:#x}): {got} deliveries on unmask, expected exactly 1"));
        }
        if irq.pending(i) == Some(true) {
            return Verdict::new(Outcome::Fail, format_args!("entry {i}: Pending Bit still set after delivery"));
        }
        if let Err(e) = source.acknowledge(i) {
            return Verdict::new(Outcome::Fail, format_args!("source {i}: acknowledge failed: {e}"));
        }
        irq.rearm(i);
        checked += 1;
    }
    Verdict::new(
        Outcome::Pass,
        format_args!("{checked} entr{} masked: pending set, nothing delivered; delivered exactly once on unmask", if checked == 1 { "y" } else { "ies" }),
    )
}
