//! A virtio queue left at NO_VECTOR never interrupts (virtio 1.x 4.1.5.3: with MSI-X enabled and
//! `queue_msix_vector` NO_VECTOR, no message is sent for the queue; Cloud Hypervisor #2397 raised one).
//! On every virtio-modern device in MSI-X mode with a request queue that got no entry (fewer entries
//! than queues, or an entry the device refused): one request on that queue completes, and no interrupt
//! arrives on any of the function's vectors, nor on a vector nobody owns.

use super::{delivery, Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::virtio_modern::VirtioModern;
use crate::irq::dispatch;
use crate::modes::DeviceIrq;
use crate::time;

/// Runs the check on `dev`, whose vectors are `irq`'s; `None` when it has no queue at NO_VECTOR.
pub fn run<C: ConfigRegion>(dev: &mut VirtioModern, irq: &DeviceIrq<'_, C>) -> Option<Verdict> {
    dev.queue_without_vector()?;
    let unowned = |_: ()| dispatch::unowned().map(|(_, n)| n).sum::<u64>();
    let (before, stray_before) = (irq.total_counts(), unowned(()));
    let done = dev.request_without_vector()?;
    // The message, had one been sent, follows the used entry at once: wait as the delivery check does.
    time::delay_us(delivery::SETTLE_US);
    let (arrived, stray) = (irq.total_counts() - before, unowned(()) - stray_before);
    Some(match done {
        Err(e) => Verdict::new(Outcome::Fail, format_args!("the request on the queue without a vector did not complete: {e}")),
        Ok(r) if arrived + stray != 0 => Verdict::new(
            Outcome::Fail,
            format_args!(
                "queue {} at NO_VECTOR completed a request and {arrived} interrupt(s) arrived on the function's vectors, {stray} on unowned ones",
                r.queue
            ),
        ),
        Ok(r) => Verdict::new(
            Outcome::Pass,
            format_args!(
                "queue {} at NO_VECTOR completed a request; no interrupt in {} us (ISR status then {:#x})",
                r.queue,
                delivery::SETTLE_US,
                r.isr
            ),
        ),
    })
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut super::context::Context<'_>) {
    let (run, pci) = (&mut *ctx.run, ctx.pci);
    for dev in ctx.active.iter_mut().filter(|d| d.mode == crate::modes::IrqMode::Msix) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let crate::drivers::Device::VirtioModern(v) = &mut dev.dev else { continue };
        if let Some(verdict) = self::run(v, &dev.irq) {
            run.scenario("virtio-no-vector", Some(f.bdf), &verdict);
        }
    }
}
